"""Every scorecard criterion gives PASS on metrics made to pass, FAIL on metrics made to fail,
and "not run" when what it needs is absent; ARENA's reference numbers likewise."""

from __future__ import annotations

import pytest

from induction_heads.metrics import Metrics
from induction_heads.report import scorecard as S
from induction_heads.report.collect import load_run

from .report_synthetic import ANALYSES, ROLES, make_run, mark_not_applicable

# The analysis each criterion needs (absent → "not run").
NEEDS = {
    "icl_copying": "head_scores", "prev_token_head": "head_scores",
    "induction_last_layer": "head_scores", "none_in_control": "head_scores",
    "ablation_removes": "ablation", "ov_copies": "ov_circuit",
    "k_composition": "composition_scores", "positional_qk": "qk_circuit",
    "fuzzy": "fuzzy_induction", "formation": "training_dynamics", "key_path": "path_patching",
    "icl_final": "training_dynamics", "icl_before": "training_dynamics",
    "icl_cooccurs": "training_dynamics", "loss_bump": "training_dynamics",
}


def outcomes(paths, roles=ROLES):
    return {row.criterion.id: row.outcome for row in S.evaluate(load_run(paths, roles))}


@pytest.fixture(scope="module")
def passing(tmp_path_factory):
    return outcomes(make_run(tmp_path_factory.mktemp("pass"), passing=True, figures=False))


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    return outcomes(make_run(tmp_path_factory.mktemp("fail"), passing=False, figures=False))


def test_every_criterion_is_tested():
    assert set(NEEDS) == {c.id for c in S.CRITERIA}


@pytest.mark.parametrize("cid", sorted(NEEDS))
def test_criterion_passes_and_fails(cid, passing, failing):
    assert passing[cid].status == S.PASS, passing[cid].observed
    assert failing[cid].status == S.FAIL, failing[cid].observed
    assert passing[cid].observed and failing[cid].observed  # the values are shown


@pytest.mark.parametrize("cid", sorted(NEEDS))
def test_criterion_not_run_without_its_analysis(cid, tmp_path):
    analyses = [a for a in ANALYSES if a != NEEDS[cid]]
    got = outcomes(make_run(tmp_path, analyses=analyses, figures=False))
    assert got[cid].status == S.NOT_RUN
    assert got[cid].observed.startswith("missing")


def test_control_claim_not_run_without_a_control(tmp_path):
    got = outcomes(make_run(tmp_path, analyses=("head_scores",), control=False, figures=False))
    assert got["none_in_control"].status == S.NOT_RUN
    assert got["icl_copying"].status == S.PASS


def test_fuzzy_without_interval_fails(tmp_path):
    m = Metrics("fuzzy_induction", "attn2l-s0", tmp_path / "f")
    m.add("fuzzy_prefix_minus_unrelated", 0.3, "no interval")
    m.add("fuzzy_prefix_minus_shuffled_positional", 0.3, "no interval")
    got = outcomes([m.write()])
    assert got["fuzzy"].status == S.FAIL and "no interval" in got["fuzzy"].observed


def test_last_layer_from_the_head_scores_table(tmp_path):
    """Without n_layers anywhere, the table of every head says which layer is last."""
    m = Metrics("head_scores", "attn2l-s0", tmp_path / "h")
    m.add("best_induction_score", 0.9, "")
    m.add("best_induction_head", "1.0", "")
    m.table("head_scores", ["head", "induction"], [["0.0", 0.1], ["1.0", 0.9], ["2.0", 0.2]], "")
    got = outcomes([m.write()])
    assert got["induction_last_layer"].status == S.FAIL  # layer 1 is not the last of three
    assert "last layer = 2" in got["induction_last_layer"].observed


def test_training_dynamics_found_under_the_family_name(tmp_path):
    paths = make_run(tmp_path, analyses=("head_scores",), figures=False)
    m = Metrics("training_dynamics", "attn2l", tmp_path / "attn2l" / "training_dynamics")
    m.add("formation_fraction", 1.0, "")
    run = load_run(paths + [m.write()], ROLES)
    assert run.role("attn2l") == "main"  # the family takes its seeds' role
    got = {r.criterion.id: r.outcome for r in S.evaluate(run)}
    assert got["formation"].status == S.PASS


def test_other_models_listed_separately(tmp_path):
    run = load_run(make_run(tmp_path, analyses=("head_scores",), arena=True, figures=False), ROLES)
    others = S.evaluate_others(run)
    assert {r.model for r in others} == {"attn_only_2L_half"}
    assert all(not r.criterion.needs_control for r in others)


# ---------------------------------------------------------------- ARENA's published numbers


def arena_run(tmp_path, good: bool):
    """attn_only_2L_half metrics close to (or far from) ARENA's published numbers."""
    model, root = "attn_only_2L_half", tmp_path / "attn_only_2L_half"
    hs = Metrics("head_scores", model, root / "head_scores")
    hs.add("best_induction_head", "1.4" if good else "1.2", "")
    hs.add("best_prev_token_head", "0.7" if good else "0.3", "")
    hs.add("best_prev_token_score", 0.9, "")
    rows = [[f"{l}.{h}", 0.7 if (good and f"{l}.{h}" in ("1.4", "1.10")) else 0.1]
            for l in range(2) for h in range(12)]
    hs.table("head_scores", ["head", "induction"], rows, "scores")
    ov = Metrics("ov_circuit", model, root / "ov_circuit")
    ov.add("ov_top1_best_induction_head", 0.31 if good else 0.2, "")
    ov.add("ov_top1_effective", 0.95 if good else 0.5, "")
    qk = Metrics("qk_circuit", model, root / "qk_circuit")
    qk.add("prev_token_positional_subdiagonal", 0.997 if good else 0.9, "")
    ab = Metrics("ablation", model, root / "ablation")
    ab.add("top_ablation_heads", ["1.4", "0.7", "1.10", "0.1"] if good else ["0.1", "1.4"], "")
    return load_run([m.write() for m in (hs, ov, qk, ab)])


@pytest.mark.parametrize("good", [True, False])
def test_arena_references(tmp_path, good):
    run = arena_run(tmp_path, good)
    assert S.arena_models(run) == ["attn_only_2L_half"]  # recognised by name, no role given
    results = S.evaluate_references(run, "attn_only_2L_half")
    assert len(results) == len(S.ARENA_REFERENCES)
    want = S.PASS if good else S.FAIL
    assert {ref.id: out.status for ref, out in results} == {r.id: want for r in S.ARENA_REFERENCES}


def test_arena_references_not_run_when_absent(tmp_path):
    run = load_run(make_run(tmp_path, analyses=("head_scores",), control=False, figures=False))
    results = S.evaluate_references(run, "attn_only_2L_half")
    assert all(out.status == S.NOT_RUN for _, out in results)


def test_a_not_applicable_analysis_makes_its_claims_na_not_fail(tmp_path):
    paths = make_run(tmp_path, passing=True, figures=False)
    reason = "needs learned absolute position embeddings (W_pos); this model's positional_embedding_type is rotary"
    mark_not_applicable(paths, "attn2l-s0", "qk_circuit", reason)
    got = outcomes(paths)
    assert got["positional_qk"].status == S.NOT_APPLICABLE
    assert got["positional_qk"].observed == f"n/a (qk_circuit not applicable to attn2l-s0: {reason})"
    assert {i for i, o in got.items() if o.status != S.PASS} == {"positional_qk"}


def test_icl_final_fails_when_the_interval_is_below_zero_but_too_wide(tmp_path):
    """Below 0 is not enough: the interval must also be at most a third of |score| wide."""
    m = Metrics("training_dynamics", "attn2l-s0", tmp_path / "d")
    m.add("seeds", [0], "")
    m.add("final_icl_score_s0", -0.3, "", ci=[-0.45, -0.05])
    got = outcomes([m.write()])
    assert got["icl_final"].status == S.FAIL and "width" in got["icl_final"].observed
    m.add("final_icl_score_s0", -0.3, "", ci=[-0.34, -0.25])
    assert outcomes([m.write()])["icl_final"].status == S.PASS
