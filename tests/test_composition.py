"""composition.py against naive dense norms, and against the planted model."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformer

from induction_heads import composition
from induction_heads.architecture import attn_only_config
from induction_heads.planted import planted_induction_model

from .conftest import noisy_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def three_layer() -> HookedTransformer:
    return noisy_model(3, seed=3, bias_std=0.3, d_model=12, n_heads=2, d_head=3, n_ctx=8, d_vocab=20)


def naive_score(w_a: torch.Tensor, w_b: torch.Tensor) -> float:
    n = torch.linalg.norm
    return (n(w_a @ w_b) / (n(w_a) * n(w_b))).item()


def test_scores_match_dense_norms(three_layer):
    m = three_layer
    got = composition.composition_scores(m)
    for la in range(3):
        for lb in range(3):
            for ha in range(2):
                for hb in range(2):
                    if la >= lb:
                        assert all(torch.isnan(got[k][la, ha, lb, hb]) for k in "QKV")
                        continue
                    ov_a = m.W_V[la, ha] @ m.W_O[la, ha]
                    qk_b = m.W_Q[lb, hb] @ m.W_K[lb, hb].T
                    ov_b = m.W_V[lb, hb] @ m.W_O[lb, hb]
                    for kind, w_b in (("Q", qk_b), ("K", qk_b.T), ("V", ov_b)):
                        expected = naive_score(ov_a, w_b)
                        assert got[kind][la, ha, lb, hb].item() == pytest.approx(expected, rel=1e-4)


def test_q_and_k_differ(three_layer):
    got = composition.composition_scores(three_layer)
    assert not torch.allclose(got["Q"][0, :, 1], got["K"][0, :, 1])  # the side matters


def test_planted_pair_has_the_largest_k_composition():
    model, circuit = planted_induction_model()
    scores = composition.composition_scores(model)["K"]
    (la, ha), (lb, hb) = circuit.prev_token_head, circuit.induction_head
    assert scores[la, ha, lb, hb] == torch.nan_to_num(scores, nan=-1.0).max()
    baseline = composition.model_baseline(model, n_samples=50, seed=0)
    assert baseline.z("K", scores[la, ha, lb, hb]) > 3


def test_baseline_seeded_and_scale_invariant():
    stds = {"W_Q": 0.1, "W_K": 0.2, "W_V": 0.3, "W_O": 0.4}
    a = composition.random_baseline(12, 3, stds, n_samples=40, seed=5, batch_size=15)
    b = composition.random_baseline(12, 3, stds, n_samples=40, seed=5, batch_size=15)
    c = composition.random_baseline(12, 3, stds, n_samples=40, seed=6, batch_size=15)
    assert all(torch.equal(a.samples[k], b.samples[k]) for k in "QKV")
    assert not torch.equal(a.samples["K"], c.samples["K"])
    assert all(a.samples[k].shape == (40,) for k in "QKV")
    # Rescaling every factor leaves the scores unchanged (the norms cancel).
    scaled = composition.random_baseline(12, 3, {k: 7 * v for k, v in stds.items()}, 40, 5, 15)
    torch.testing.assert_close(scaled.samples["V"], a.samples["V"], rtol=1e-4, atol=1e-6)
    assert 0 < a.mean("K") < 1 and a.std("K") > 0


def test_baseline_matches_naive_sampling():
    """The batched sampler's distribution agrees with naive dense random products."""
    d_model, d_head, n = 12, 3, 300
    stds = {k: 1.0 for k in ("W_Q", "W_K", "W_V", "W_O")}
    base = composition.random_baseline(d_model, d_head, stds, n_samples=n, seed=0)
    gen = torch.Generator().manual_seed(123)
    r = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    naive = torch.tensor([
        naive_score(r(d_model, d_head) @ r(d_head, d_model), r(d_model, d_head) @ r(d_head, d_model))
        for _ in range(n)
    ])  # fmt: skip
    assert base.mean("V") == pytest.approx(naive.mean().item(), abs=4 * naive.std().item() / n**0.5)


def test_z_scores_and_pair_matrix(three_layer):
    scores = composition.composition_scores(three_layer)
    base = composition.model_baseline(three_layer, n_samples=20, seed=0)
    z = composition.z_scores(scores, base)
    expected = (scores["K"][0, 1, 2, 0] - base.mean("K")) / base.std("K")
    assert z["K"][0, 1, 2, 0].item() == pytest.approx(expected.item())
    matrix, rows, cols = composition.pair_matrix(scores["K"])
    assert matrix.shape == (4, 4) and rows == ["0.0", "0.1", "1.0", "1.1"]
    assert cols == ["1.0", "1.1", "2.0", "2.1"]
    assert matrix[3, 1].item() != matrix[3, 1].item()  # 1.1 -> 1.1: NaN
    assert matrix[1, 2].item() == scores["K"][0, 1, 2, 0].item()


def test_require_layers():
    cfg = attn_only_config(n_layers=1, d_model=8, n_heads=2, d_head=4, n_ctx=6, d_vocab=10)
    with pytest.raises(ValueError, match="at least 2 layers"):
        composition.require_layers(HookedTransformer(cfg))
