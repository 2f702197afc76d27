"""dynamics.py: the formation-window detector on synthetic curves with a known step, the ICL score
by hand, the per-checkpoint evaluation against direct calls of the score functions, and the
training-dynamics notebook on tiny hand-made checkpoints (a planted induction circuit that
"forms" between two checkpoints, beside a random 1-layer control)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer

from induction_heads import dynamics as D
from induction_heads import scores as S
from induction_heads.architecture import attn_only_config, config_to_dict
from induction_heads.circuits import ov_topk_accuracy
from induction_heads.composition import composition_scores
from induction_heads.planted import distinct_repeated_tokens, planted_induction_model

from .conftest import noisy_model

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

# A schedule like the default config's: sparse early, dense later.
STEPS = np.array(sorted(set(range(0, 401, 100)) | set(range(400, 3001, 50))))


def logistic(steps, centre=1500.0, width=80.0, low=0.05, high=0.7):
    return low + (high - low) / (1 + np.exp(-(np.asarray(steps, float) - centre) / width))


# --------------------------------------------------------------------------- formation window


def test_window_contains_known_step_of_logistic():
    w = D.formation_window(STEPS, logistic(STEPS), threshold=0.3)
    assert w is not None
    assert w.start <= 1500 <= w.end
    assert abs(w.step - 1500) <= 25  # the steepest 50-step interval straddles the centre
    # 20 %→80 % of a logistic spans ±width·ln 4 ≈ ±111 around the centre; ends snap to checkpoints
    assert 1350 <= w.start <= 1400 and 1600 <= w.end <= 1650
    assert w.label == f"{w.start}-{w.end}"


def test_window_follows_the_step_when_it_moves():
    w = D.formation_window(STEPS, logistic(STEPS, centre=2300), threshold=0.3)
    assert w is not None and w.start <= 2300 <= w.end and abs(w.step - 2300) <= 25


def test_flat_curve_did_not_form():
    assert D.formation_window(STEPS, np.full(len(STEPS), 0.05), threshold=0.3) is None


def test_rise_below_threshold_did_not_form():
    curve = logistic(STEPS, high=0.25)  # rises clearly, but never reaches the threshold
    assert D.formation_window(STEPS, curve, threshold=0.3) is None
    assert D.formation_window(STEPS, curve, threshold=0.2) is not None


def test_noisy_logistic_within_tolerance():
    rng = np.random.default_rng(0)
    for trial in range(5):
        noisy = logistic(STEPS) + rng.normal(0, 0.03, len(STEPS))
        w = D.formation_window(STEPS, noisy, threshold=0.3, smooth_width=5)
        assert w is not None, trial
        assert w.start <= 1500 <= w.end, (trial, w)
        assert abs(w.step - 1500) <= 150, (trial, w)


def test_window_unsorted_input_and_bad_input():
    order = np.random.default_rng(1).permutation(len(STEPS))
    w = D.formation_window(STEPS[order], logistic(STEPS)[order], threshold=0.3)
    assert w == D.formation_window(STEPS, logistic(STEPS), threshold=0.3)
    with pytest.raises(ValueError):
        D.formation_window([0, 1, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        D.formation_window([0, 1], [0.1, float("nan")])


def test_smooth_keeps_ends_and_averages():
    np.testing.assert_allclose(D.smooth([0, 3, 6, 9], 3), [1.5, 3, 6, 7.5])
    np.testing.assert_allclose(D.smooth([1, 5], 1), [1, 5])


def test_slope_in_window_exact_on_a_line():
    steps = np.arange(0, 1001, 50)
    loss = 5.0 - 0.002 * steps + np.where(steps > 600, 1.0, 0.0)  # a jump outside the window
    assert D.slope_in_window(steps, loss, 100, 500) == pytest.approx(-0.002)
    assert D.slope_in_window(steps, loss, 110, 140) is None  # no checkpoint inside


def test_seed_formation_slope_of_loss_in_window():
    records = [{"step": int(s), "best_induction_score": float(v), "heldout_loss": 6.0 - 1e-3 * s}
               for s, v in zip(STEPS, logistic(STEPS))]  # fmt: skip
    out = D.seed_formation(records, threshold=0.3)
    assert out["window"].start <= 1500 <= out["window"].end
    assert out["loss_slope_per_step"] == pytest.approx(-1e-3)
    flat = [dict(r, best_induction_score=0.05) for r in records]
    assert D.seed_formation(flat) == {"window": None, "loss_slope_per_step": None}


# --------------------------------------------------------------------------- aggregation


def test_aggregate_mean_and_bands_on_common_steps():
    a = [{"step": s, "x": v} for s, v in [(0, 1.0), (10, 2.0), (20, 3.0)]]
    b = [{"step": s, "x": v} for s, v in [(0, 3.0), (10, 6.0)]]  # stopped early: step 20 missing
    band = D.aggregate([a, b], "x")
    np.testing.assert_array_equal(band.steps, [0, 10])
    np.testing.assert_allclose(band.mean, [2.0, 4.0])
    np.testing.assert_allclose(band.lo, [1.0, 2.0])
    np.testing.assert_allclose(band.hi, [3.0, 6.0])
    sd = D.aggregate([a, b], "x", band="std")
    np.testing.assert_allclose(sd.hi - sd.mean, [1.0, 2.0])
    none = D.aggregate([[{"step": 0, "x": None}]], "x")
    assert np.isnan(none.mean).all()
    with pytest.raises(ValueError):
        D.aggregate([a], "x", band="iqr")


def test_formation_fraction_and_best_score_max():
    w = D.formation_window(STEPS, logistic(STEPS))
    assert D.formation_fraction([w, None, w]) == pytest.approx(2 / 3)
    assert D.formation_fraction([None]) == 0.0
    runs = [[{"best_induction_score": 0.1}, {"best_induction_score": 0.2}], [{"best_induction_score": 0.15}]]
    assert D.best_score_max(runs) == pytest.approx(0.2)


def test_train_log_at_matches_weights_after_step_minus_one_updates():
    log = [{"step": 1, "loss": 9.0}, {"step": 26, "loss": 5.0}, {"step": 51, "loss": 4.0}]
    assert D.train_log_at(log, 0)["loss"] == 9.0  # record 1 = loss of the step-0 weights
    assert D.train_log_at(log, 25)["loss"] == 5.0
    assert D.train_log_at(log, 50)["loss"] == 4.0
    # Record 11's loss was computed on the weights after 10 updates, i.e. checkpoint 10's.
    assert D.train_log_at([{"step": 10, "loss": 2.0}, {"step": 11, "loss": 1.0}], 10)["loss"] == 1.0
    assert D.train_log_at([], 10) is None
    assert D.tokens_per_step([{"step": 2, "tokens": 100}]) == 50


# --------------------------------------------------------------------------- tiny checkpoints

# The planted circuit's attention sharpness at each checkpoint: it "forms" between 20 and 30.
SHARPNESS = {0: 0.1, 10: 0.1, 20: 1.0, 30: 40.0, 40: 40.0}
SEQ_LEN = 12


def _write_model_dir(model_dir: Path, states: dict[int, HookedTransformer], seed: int) -> None:
    """A trained-model folder as the pipeline writes it: config, checkpoints, log, info."""
    ckpt = model_dir / "checkpoints"
    ckpt.mkdir(parents=True)
    cfg = next(iter(states.values())).cfg
    (model_dir / "config.json").write_text(json.dumps(config_to_dict(cfg)))
    for step, model in states.items():
        torch.save(model.state_dict(), ckpt / f"step_{step:06d}.pt")
    last = max(states)
    log = [{"step": s + 1, "loss": 5.0 - 0.01 * s, "tokens": (s + 1) * 128} for s in range(0, last + 1, 5)]
    (model_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    info = {"name": model_dir.name, "source": "train", "sha256": f"sha-{model_dir.name}", "seed": seed,
            "tokenizer": None, "extra": {"wall_time_s": 2.5, "tokens_per_s": 1000.0 + seed}}  # fmt: skip
    (model_dir / "model_info.json").write_text(json.dumps(info))


def _write_data_dir(data_dir: Path, d_vocab: int, n_ctx: int) -> None:
    data_dir.mkdir(parents=True)
    rep = distinct_repeated_tokens(d_vocab, SEQ_LEN, batch=6, seed=0)
    gen = torch.Generator().manual_seed(0)
    held = torch.randint(1, d_vocab, (5, n_ctx), generator=gen)
    held[:, 0] = 0  # BOS
    torch.save({"tokens": rep, "seq_len": SEQ_LEN, "seed": 0}, data_dir / "repeated_tokens.pt")
    torch.save({"tokens": held}, data_dir / "heldout_tokens.pt")


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> Path:
    """results/ with two seeds of a planted 2L family and one seed of a random 1L control."""
    root = tmp_path_factory.mktemp("results")
    for seed in (0, 1):
        states = {s: planted_induction_model(sharpness=k, seed=seed)[0] for s, k in SHARPNESS.items()}
        _write_model_dir(root / "models" / f"fam2l-s{seed}", states, seed)
        _write_data_dir(root / "data" / f"fam2l-s{seed}", d_vocab=32, n_ctx=64)
    cfg = attn_only_config(n_layers=1, d_model=16, n_heads=2, d_head=8, n_ctx=64, d_vocab=32)
    control = {}
    for step in SHARPNESS:
        torch.manual_seed(step)
        control[step] = HookedTransformer(cfg).eval()
    _write_model_dir(root / "models" / "ctl1l-s0", control, 0)
    _write_data_dir(root / "data" / "ctl1l-s0", d_vocab=32, n_ctx=64)
    return root


@pytest.fixture(scope="module")
def evaluated(tiny_results) -> dict[str, Path]:
    """Every model's dynamics.jsonl, written as the rule does."""
    out = {}
    for model_dir in sorted((tiny_results / "models").iterdir()):
        records = D.evaluate_checkpoints(model_dir, tiny_results / "data" / model_dir.name, n_boot=200,
                                         progress=False)  # fmt: skip
        out[model_dir.name] = D.write_jsonl(records, model_dir / "dynamics.jsonl")
    return out


def test_evaluation_matches_direct_score_calls(tiny_results, evaluated):
    records = D.read_jsonl(evaluated["fam2l-s0"])
    assert [r["step"] for r in records] == sorted(SHARPNESS)
    data = tiny_results / "data" / "fam2l-s0"
    rep = torch.load(data / "repeated_tokens.pt")["tokens"]
    held = torch.load(data / "heldout_tokens.pt")["tokens"]
    for rec in records:
        model = planted_induction_model(sharpness=SHARPNESS[rec["step"]], seed=0)[0]
        sc = S.head_scores(S.attention_patterns(model, rep), SEQ_LEN)
        held_loss = S.per_token_loss(model, held)
        assert rec["heldout_loss"] == pytest.approx(float(held_loss.mean()), rel=1e-5)
        # Default ICL windows scaled to the 64-token windows: tokens 48-63 minus tokens 4-7.
        late, early = held_loss[:, 47:63].mean(1), held_loss[:, 3:7].mean(1)
        assert rec["icl_score"] == pytest.approx(float((late - early).mean()), rel=1e-4, abs=1e-6)
        assert rec["icl_windows"] == {"early": [4, 8], "late": [48, 64]}
        assert rec["icl_ci"][0] <= rec["icl_score"] <= rec["icl_ci"][1]
        np.testing.assert_allclose(rec["loss_by_token"], held_loss.mean(0).numpy(), atol=1e-4)
        np.testing.assert_allclose(rec["heldout_window_loss"], held_loss.mean(1).numpy(), atol=1e-4)
        assert rec["loss_by_position"]["start"] == [1, 17, 33, 49]
        assert rec["loss_by_position"]["mean"][0] == pytest.approx(float(held_loss[:, :16].mean()), abs=1e-4)
        assert (rec["n_heldout_windows"], rec["n_heldout_documents"]) == (5, 5)  # no labels: a cluster each
        assert (rec["best_induction_head"], rec["best_induction_score"]) == pytest.approx(
            S.best_head(sc["induction"]))
        assert rec["best_prev_token_score"] == pytest.approx(S.best_head(sc["previous_token"])[1])
        # The planted circuit is 0.0 → 1.0; it is the final model's circuit, traced back.
        assert (rec["traced_prev_token_head"], rec["traced_induction_head"]) == ("0.0", "1.0")
        assert rec["traced_induction_score"] == pytest.approx(float(sc["induction"][1, 0]))
        assert rec["traced_ov_top1"] == pytest.approx(ov_topk_accuracy(model, [(1, 0)], ks=(1,))[1])
        assert rec["kcomp_score"] == pytest.approx(float(composition_scores(model)["K"][0, 0, 1, 0]))
        assert rec["tokens"] == rec["step"] * 128
        assert rec["train_loss"] == pytest.approx(5.0 - 0.01 * rec["step"])  # record step+1
        assert rec["seed"] == 0
    # The planted head is sharp only from step 30: the evaluation sees the formation.
    assert records[0]["traced_induction_score"] < 0.3 < records[-1]["traced_induction_score"]
    window = D.seed_formation(records, threshold=0.3, smooth_width=1)["window"]
    assert window is not None and window.start <= 25 <= window.end


def test_control_has_no_kcomposition(evaluated):
    records = D.read_jsonl(evaluated["ctl1l-s0"])
    assert all(r["kcomp_score"] is None for r in records)
    assert all(r["traced_induction_head"].startswith("0.") for r in records)
    assert D.seed_formation(records, threshold=0.3)["window"] is None


def test_missing_checkpoints_is_a_clear_error(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(FileNotFoundError, match="checkpoints"):
        D.evaluate_checkpoints(tmp_path / "m", tmp_path, progress=False)


def test_notebook_on_tiny_checkpoints(tiny_results, evaluated, tmp_path):
    papermill = pytest.importorskip("papermill")
    out_dir = tmp_path / "fam2l" / "training_dynamics"
    infos = [str(tiny_results / "models" / m / "model_info.json") for m in sorted(evaluated)]
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "training_dynamics.ipynb"), str(tmp_path / "executed.ipynb"),
        parameters=dict(
            model_name="fam2l", out_dir=str(out_dir), device="cpu", seed=0,
            dynamics_paths=[str(evaluated["fam2l-s0"]), str(evaluated["fam2l-s1"])],
            control_paths=[str(evaluated["ctl1l-s0"])], train_info_paths=infos,
            formation_threshold=0.3, smooth_width=1, n_bootstrap=200,
        ),
        progress_bar=False, kernel_name="python3",
    )  # fmt: skip
    m = json.loads((out_dir / "metrics.json").read_text())
    value = lambda name: m["metrics"][name]["value"]  # noqa: E731
    assert m["analysis"] == "training_dynamics" and m["model"] == "fam2l"
    assert m["weights_sha256"] == "sha-fam2l-s0"
    assert value("n_seeds") == 2 and value("formation_fraction") == 1.0
    for seed in (0, 1):
        assert 20 <= value(f"formation_step_s{seed}") <= 30
        start, end = map(int, value(f"formation_window_s{seed}").split("-"))
        assert start <= 25 <= end
        assert value(f"final_induction_score_s{seed}") > 0.3
        assert math.isfinite(value(f"loss_slope_in_window_s{seed}"))
    assert value("control_best_induction_score_max") < 0.3
    assert value("tokens_per_second") == pytest.approx(1000.5)  # the family's seeds only
    assert value("training_wall_time_s") == pytest.approx(7.5)  # every seed of both families
    assert len(m["tables"]["seeds"]["rows"]) == 2
    assert "formed in 2 of 2 seeds" in m["text"]["conclusion"]
    assert value("seeds") == [0, 1] and value("n_heldout_windows") == 5
    for seed in (0, 1):
        assert math.isfinite(value(f"final_icl_score_s{seed}"))
        lo, hi = m["metrics"][f"final_icl_score_s{seed}"]["ci"]
        assert lo <= value(f"final_icl_score_s{seed}") <= hi
        assert f"icl_cooccurs_s{seed}" in m["metrics"] and f"loss_bump_window_s{seed}" in m["metrics"]
    assert len(m["tables"]["icl"]["rows"]) == 2
    assert "control_final_icl_score_s0" in m["metrics"]
    for name in ("phase_change", "heldout_loss_by_position", "per_token_loss", "loss_bump"):
        for fmt in ("svg", "png", "pdf"):
            assert (out_dir / m["figures"][name][fmt]).exists()


def test_circuit_progress_sees_a_planted_circuit_and_not_a_random_model():
    planted, _ = planted_induction_model(d_vocab=32, n_ctx=64)
    rep = distinct_repeated_tokens(32, seq_len=20, batch=8)
    held = torch.randint(0, 32, (4, 64), generator=torch.Generator().manual_seed(0))
    got = D.circuit_progress(planted, rep, 20, held)
    assert got["best_induction_score"] > 0.95
    assert got["best_prev_token_score"] > 0.95
    assert got["best_last_layer_ov_top1"] == 1.0  # identity OV
    assert got["loss_ratio"] < 0.05
    random_model = noisy_model(2, weight_std=0.02, bias_std=0.02, d_vocab=32, n_ctx=64)
    got = D.circuit_progress(random_model, rep, 20, held)
    assert got["best_induction_score"] < 0.2
    assert got["best_last_layer_ov_top1"] < 0.3
    assert got["loss_ratio"] == pytest.approx(1.0, abs=0.05)


def test_first_formed_step_needs_both_bars():
    probes = [
        {"step": 0, "best_induction_score": 0.02, "loss_ratio": 1.0},
        {"step": 100, "best_induction_score": 0.6, "loss_ratio": 0.7},  # attends, barely predicts
        {"step": 200, "best_induction_score": 0.45, "loss_ratio": 0.3},  # predicts, attention short
        {"step": 300, "best_induction_score": 0.5, "loss_ratio": 0.5},
    ]
    assert D.first_formed_step(probes) == 300
    assert D.first_formed_step(probes[:3]) is None
    assert D.first_formed_step(probes, min_induction=0.4, max_loss_ratio=0.3) == 200
