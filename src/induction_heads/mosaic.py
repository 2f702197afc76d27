"""The induction mosaic: per-head induction and previous-token scores of many published models.

One job per model (:func:`score_model`) obtains the model as rule ``obtain_model`` does (verified
against its lock file), builds repeated random tokens from the model's own tokenizer and BOS, and
scores every head (:func:`scores.head_scores`). A model that fails to download, convert or run is
recorded with its reason (:func:`failure`) so the rest of the mosaic still builds. The aggregate
(:func:`mosaic_rows`, :func:`mosaic_figure`) draws one layer × head heatmap per model on one
colour scale.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .plots import SEQUENTIAL

SCORES = ("induction", "previous_token")


def score_model(entry: dict, name: str, lock_dir: Path, seq_len: int, batch: int, seed: int,
                device: str = "cpu") -> dict[str, Any]:
    """The head scores of one published model: ``{status: "ok", n_layers, n_heads, n_params,
    seq_len, induction: [[...]], previous_token: [[...]], ...}``; the converted weights are
    written to a temporary folder and dropped (the hub cache keeps the download)."""
    import torch

    from .datasets import repeated_tokens_for
    from .scores import attention_patterns, head_scores
    from .sources import obtain
    from .weights import load_model

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="ih-mosaic-") as tmp:
        obtain(entry, name, Path(tmp), lock_dir, entry.get("revision"))
        model, info = load_model(tmp, device)
        seq_len = min(seq_len, (model.cfg.n_ctx - 1) // 2)
        tokens = repeated_tokens_for(tmp, seq_len, batch, seed)
        scores = head_scores(attention_patterns(model, tokens), seq_len)
    return {
        "status": "ok",
        "n_layers": model.cfg.n_layers,
        "n_heads": model.cfg.n_heads,
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "seq_len": seq_len,
        "batch": int(tokens.shape[0]),
        "weights_sha256": info.sha256,
        **{kind: scores[kind].tolist() for kind in SCORES},
    }


def failure(exc: BaseException) -> dict[str, Any]:
    """What a mosaic job records when its model cannot be scored."""
    return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}".strip()}


def best(matrix: list[list[float]], first_layer: int = 0) -> tuple[str, float]:
    """(label "L.H", score) of the highest entry at or after ``first_layer`` (the whole model when
    it has no such layer): :func:`scores.best_head` on the stored matrix."""
    from .scores import best_head

    scores = torch_matrix(matrix)
    return best_head(scores, list(range(first_layer, scores.shape[0])) or None)


def torch_matrix(matrix: list[list[float]]):
    import torch

    return torch.tensor(matrix, dtype=torch.float64)


def mosaic_rows(results: dict[str, dict], threshold: float) -> list[list]:
    """One row per model: model, parameters, layers × heads, best induction head (layers 1+ of a
    multi-layer model, as the head scores search), its score, heads at or above the threshold,
    best previous-token score, and the failure reason (empty when it was scored)."""
    from .scores import detect_heads, induction_layers

    rows = []
    for model, r in results.items():
        if r["status"] != "ok":
            rows.append([model, "", "", "", None, None, None, r["reason"]])
            continue
        layers = induction_layers(r["n_layers"])
        head, score = best(r["induction"], first_layer=layers[0] if layers else 0)
        n_above = len(detect_heads(torch_matrix(r["induction"]), threshold, layers))
        rows.append([model, r["n_params"], f"{r['n_layers']} x {r['n_heads']}", head, round(score, 4), n_above,
                     round(best(r["previous_token"])[1], 4), ""])  # fmt: skip
    return rows


def write_mosaic(results: dict[str, dict], threshold: float, out_dir: Path) -> Path:
    """The mosaic's metrics.json: the scored and failed models, the table, a sentence per failure
    and the two figures (induction, previous-token)."""
    from .metrics import Metrics

    scored = [m for m, r in results.items() if r["status"] == "ok"]
    failed = {m: r["reason"] for m, r in results.items() if r["status"] != "ok"}
    metrics = Metrics("mosaic", "mosaic", out_dir, params={"threshold": threshold, "models": list(results)})
    metrics.add("mosaic_models_scored", scored, "models whose every head was scored")
    metrics.add("mosaic_models_failed", sorted(failed), "models that could not be obtained or scored (reasons in the table)")
    metrics.table("mosaic", ["model", "parameters", "layers x heads", "best induction head", "induction score",
                             f"heads >= {threshold}", "best previous-token score", "failed: reason"],
                  mosaic_rows(results, threshold),
                  "Every model of the mosaic: its best induction head (layers 1+ of a multi-layer model) and "
                  "how many heads reach the threshold; a model that failed to download or convert, with its reason.")
    for model, reason in failed.items():
        metrics.text(f"mosaic_failed_{model}", f"{model} is not in the mosaic: {reason}")
    if scored:
        for kind in SCORES:
            metrics.figure(f"mosaic_{kind}", mosaic_figure(results, kind),
                           f"{kind.replace('_', '-').capitalize()} score of every head of every model (layer × head, "
                           "one colour scale), on repeated random tokens of each model's own tokenizer.")
    return metrics.write()


def mosaic_figure(results: dict[str, dict], kind: str = "induction", columns: int = 4):
    """One layer × head heatmap per scored model, on one colour scale (0 to 1), with one colour bar."""
    scored = {m: np.asarray(r[kind], dtype=float) for m, r in results.items() if r["status"] == "ok"}
    if not scored:
        raise ValueError("no model of the mosaic could be scored")
    n = len(scored)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols + 0.8, 2.7 * rows + 0.6), squeeze=False,
                             layout="constrained")
    image = None
    for ax, (model, scores) in zip(axes.flat, scored.items()):
        image = ax.imshow(scores, vmin=0.0, vmax=1.0, cmap=SEQUENTIAL, aspect="auto", interpolation="nearest")
        ax.grid(False)  # the style's grid would cut every cell
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("head", fontsize=8)
        ax.set_ylabel("layer", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xticks(range(0, scores.shape[1], max(1, scores.shape[1] // 6)))
        ax.set_yticks(range(0, scores.shape[0], max(1, scores.shape[0] // 6)))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=f"{kind.replace('_', '-')} score")
    fig.suptitle(f"{kind.replace('_', '-').capitalize()} scores of every head, one panel per model", fontweight="bold")
    return fig
