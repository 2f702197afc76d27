"""Synthetic runs for the report tests: small metrics.json files with real matplotlib figures,
written through ``metrics.Metrics`` exactly as the analysis notebooks write them.

``passing=True`` makes every scorecard claim hold, ``passing=False`` makes every one fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402

from induction_heads.metrics import Metrics  # noqa: E402

# The headline heatmap is drawn in pure magenta so a test can find it on the rendered page.
MAGENTA = LinearSegmentedColormap.from_list("magenta", ["#ff00ff", "#ff00ff"])
ANALYSES = ("head_scores", "logit_attribution", "ablation", "ov_circuit", "qk_circuit",
            "k_composition", "composition_scores", "olsson_scores", "path_patching", "fuzzy_induction",
            "training_dynamics")
SHA = "ab" * 32
DRAW = True  # make_run(figures=False) turns drawing off: the scorecard tests need no figures


def _heatmap(m: Metrics, name: str, caption: str, cmap="viridis") -> None:
    if not DRAW:
        return
    fig, ax = plt.subplots(figsize=(3.6, 1.8))
    ax.imshow(np.linspace(0, 1, 8).reshape(2, 4), cmap=cmap, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(name.replace("_", " "))
    m.figure(name, fig, caption)
    plt.close(fig)


def _line(m: Metrics, name: str, caption: str) -> None:
    if not DRAW:
        return
    fig, ax = plt.subplots(figsize=(4, 2))
    x = np.arange(20)
    ax.plot(x, np.exp(-x / 5), label="first")
    ax.plot(x, np.exp(-x / 2), label="second")
    ax.legend()
    ax.set_title(name.replace("_", " "))
    m.figure(name, fig, caption)
    plt.close(fig)


def _head_scores(m: Metrics, good: bool, control: bool) -> None:
    induction = 0.05 if control else (0.85 if good else 0.3)
    m.add("loss_first_repeat", 7.0, "Mean loss on the first repeat.", unit="nats",
          ci=[6.9, 7.1])
    second = 6.9 if control else (0.6 if good else 5.0)
    if control and not good:
        second = 2.0
    m.add("loss_second_repeat", second, "Mean loss on the second repeat.", unit="nats",
          ci=[second - 0.1, second + 0.1])
    m.add("best_induction_score", induction if good or not control else 0.4,
          "Best induction score.", ci=[induction - 0.02, induction + 0.02])
    m.add("best_induction_head", "0.1" if control else ("1.2" if good else "0.3"),
          "Head with the best induction score.")
    m.add("best_prev_token_score", 0.81 if good else 0.3, "Best previous-token score.")
    m.add("best_prev_token_head", "0.3" if good else "1.1", "Best previous-token head.")
    m.add("n_layers", 1 if control else 2, "Layers.")
    m.add("induction_heads", [] if control else ["1.2", "1.0"], "Heads above threshold.")
    m.text("summary", f"The best induction head scores {induction:.2f}.")
    _heatmap(m, "induction_scores", "Induction score of every head: look for layer 1.",
             cmap=MAGENTA if not control else "viridis")
    _line(m, "loss_per_position", "Loss per position: it drops in the second repeat.")


def _write_attention_example(out: Path) -> None:
    tokens = ["<bos>", " the", " cat", " sat", "\n", " the", " cat"]
    n = len(tokens)
    prev = np.eye(n, k=-1)
    prev[0, 0] = 1
    heads = {"0.3": prev.tolist(), "1.2": np.tril(np.ones((n, n)) / np.arange(1, n + 1)[:, None]).tolist()}
    (out / "attention_example.json").write_text(json.dumps({"tokens": tokens, "heads": heads}))


def _analysis(m: Metrics, analysis: str, good: bool) -> None:
    """Metrics of one analysis that make its scorecard criterion pass (good) or fail."""
    if analysis == "ablation":
        m.add("induction_score_before_prev_ablation", 0.8, "Before.")
        m.add("induction_score_after_prev_ablation", 0.1 if good else 0.6, "After.")
        m.add("top_ablation_heads", ["0.7", "1.4", "1.10"] if good else ["0.1"], "Top heads.")
        m.table("zero_ablation", ["head", "loss increase"], [["0.3", 2.5], ["1.2", 1.9]],
                "Loss increase on the second repeat when each head is zero-ablated.")
    elif analysis == "ov_circuit":
        m.add("ov_top1_best_induction_head", 0.31 if good else 0.005, "Top-1.")
        m.add("ov_chance_top1", 0.001, "Chance.")
        m.add("ov_top1_effective", 0.95, "Effective top-1.")
    elif analysis == "composition_scores":
        m.add("k_composition_z_best_pair", 6.0 if good else 1.0, "z of the best pair.")
    elif analysis == "qk_circuit":
        m.add("prev_token_positional_subdiagonal", 0.998 if good else 0.2, "Sub-diagonal.")
    elif analysis == "fuzzy_induction":
        ci = [0.02, 0.08] if good else [-0.03, 0.05]
        m.add("fuzzy_prefix_minus_unrelated", 0.05, "Fuzzy minus unrelated.", ci=[0.01, 0.09])
        m.add("fuzzy_prefix_minus_shuffled_positional", sum(ci) / 2, "Fuzzy minus shuffled key.", ci=ci)
    elif analysis == "path_patching":
        m.add("key_path_loss_share", 0.9 if good else 0.3, "Key path's share of the loss effect.")
        m.add("key_path_loss_change", 2.0 if good else 0.05, "Key-path loss change.",
              ci=[1.5, 2.5] if good else [-0.1, 0.2], unit="nats")
        m.text("path_patching_summary", "The key path carries the effect.")
        _line(m, "path_patching_bars", "Change per path.")
    elif analysis == "training_dynamics":
        m.add("formation_fraction", 1.0 if good else 0.67, "Fraction of seeds that formed.")
        m.add("seeds", [0, 1], "Seeds.")
        for s in (0, 1):
            final, ci = (-0.3, [-0.34, -0.26]) if good else (-0.05, [-0.12, 0.02])
            m.add(f"final_icl_score_s{s}", final, "Final ICL score.", ci=ci)
            m.add(f"icl_before_formation_s{s}", -0.05 if good else -0.04, "ICL before formation.")
            m.add(f"icl_cooccurs_s{s}", good, "ICL change inside the formation window.")
            m.add(f"icl_lag_s{s}", 50.0 if good else 900.0, "Lag.")
            m.add(f"formation_window_s{s}", "1600-2000", "Formation window.")
            m.add(f"loss_bump_window_s{s}", "1500-1900" if good else "200-500", "Loss bump window.")
    else:
        m.add(f"{analysis}_score", 0.5, f"A score of {analysis}.")
    _line(m, f"{analysis}_curve", f"What to look at in {analysis.replace('_', ' ')}.")


def make_run(root: Path, *, passing: bool = True, analyses=ANALYSES, control: bool = True,
             arena: bool = False, attention_example: bool = True,
             figures: bool = True) -> list[Path]:
    """Write a synthetic run under ``root``; returns the metrics.json paths."""
    global DRAW
    DRAW = figures
    models = ["attn2l-s0"] + (["attn1l-s0"] if control else []) + (
        ["attn_only_2L_half"] if arena else [])
    paths = []
    for model in models:
        is_control = model == "attn1l-s0"
        for analysis in analyses:
            if is_control and analysis != "head_scores":
                continue
            out = root / model / analysis
            m = Metrics(analysis, model, out, params={"n_layers": 1 if is_control else 2},
                        seed=0, weights_sha256=SHA)
            if analysis == "head_scores":
                _head_scores(m, passing, is_control)
                if attention_example and not is_control:
                    _write_attention_example(out)
            else:
                _analysis(m, analysis, passing)
            paths.append(m.write())
    return paths


ROLES = {"attn2l-s0": "main", "attn1l-s0": "control"}


def mark_not_applicable(paths: list[Path], model: str, analysis: str, reason: str) -> None:
    """Rewrite one result of a synthetic run as the notebook writes a not-applicable one."""
    path = next(p for p in paths if p.parent.name == analysis and p.parent.parent.name == model)
    for figure in (path.parent / "figures").glob("*"):
        figure.unlink()
    Metrics(analysis, model, path.parent, seed=0, weights_sha256=SHA).not_applicable(reason)
