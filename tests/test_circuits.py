"""circuits.py against brute-force references (dense matrices on a tiny vocabulary) and against
the planted model, whose answers are known by construction."""

from __future__ import annotations

import math
import resource

import pytest
import torch
from transformer_lens import FactoredMatrix, HookedTransformer

from induction_heads import circuits
from induction_heads.applicability import NO_EARLIER_PREV_TOKEN_HEAD, NotApplicable
from induction_heads.architecture import attn_only_config
from induction_heads.planted import distinct_repeated_tokens, planted_induction_model

from .conftest import noisy_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny() -> HookedTransformer:
    """A random 2-layer attention-only model with non-zero biases (so bias handling is tested)."""
    return noisy_model(2, seed=1, d_model=16, n_heads=3, d_head=4, n_ctx=12, d_vocab=40)


@pytest.fixture(scope="module")
def planted():
    return planted_induction_model()


def dense_topk(m: torch.Tensor, k: int, first_row: int = 0) -> float:
    """Reference: the fraction of rows whose own index (rows start at ``first_row``) is among
    torch.topk's k indices."""
    idx = torch.topk(m, k, dim=-1).indices
    own = torch.arange(first_row, first_row + m.shape[0])[:, None]
    return (idx == own).any(-1).float().mean().item()


# ---------------------------------------------------------------- sampled accuracy (large vocabularies)


def copying_matrix(d_vocab: int, seed: int) -> FactoredMatrix:
    """A low-rank circuit whose diagonal wins in roughly a third of the rows."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d_vocab, 32, generator=g)
    return FactoredMatrix(a, 0.5 * a.T + torch.randn(32, d_vocab, generator=g))


def test_vocab_sample_is_seeded_distinct_sorted_and_none_when_it_covers_the_vocabulary():
    rows = circuits.vocab_sample(1000, 50, seed=3)
    assert torch.equal(rows, circuits.vocab_sample(1000, 50, seed=3))
    assert not torch.equal(rows, circuits.vocab_sample(1000, 50, seed=4))
    assert len(set(rows.tolist())) == 50 and torch.equal(rows, rows.sort().values)
    assert circuits.vocab_sample(1000, 1000, seed=0) is None
    assert circuits.vocab_sample(1000, None, seed=0) is None


def test_proportion_interval_is_exact_on_the_whole_population_and_shrinks_with_the_sample():
    assert circuits.proportion_interval(0.3, 500, 500) == (0.3, 0.3)
    widths = [hi - lo for lo, hi in (circuits.proportion_interval(0.3, n, 10_000) for n in (100, 1000, 9000))]
    assert widths[0] > widths[1] > widths[2] > 0
    # Far from the population size the correction vanishes: the plain Wilson interval.
    lo, hi = circuits.proportion_interval(0.3, 100, 10**9)
    z = 1.96
    centre = (0.3 + z * z / 200) / (1 + z * z / 100)
    half = z * math.sqrt(0.3 * 0.7 / 100 + z * z / 40_000) / (1 + z * z / 100)
    assert (lo, hi) == pytest.approx((centre - half, centre + half), rel=1e-6)


def test_sampled_ov_accuracy_covers_the_exact_one_at_the_stated_rate():
    """The approximation against the exact computation: over 200 seeded samples of 60 of 600
    source tokens, the 95 % interval holds the exact accuracy about 95 % of the time, and the
    estimates average to it (unbiased)."""
    d_vocab, n = 600, 60
    fm = copying_matrix(d_vocab, seed=0)
    exact = circuits.diagonal_topk_accuracy(fm, (1,))[1]
    assert 0.15 < exact < 0.85  # a proportion the interval can miss on either side
    estimates, covered = [], 0
    for seed in range(200):
        rows = circuits.vocab_sample(d_vocab, n, seed)
        p = circuits.diagonal_topk_accuracy(fm, (1,), rows=rows)[1]
        lo, hi = circuits.sampled_interval(p, rows, d_vocab)
        estimates.append(p)
        covered += lo <= exact <= hi
    assert 0.90 <= covered / 200 <= 0.995
    assert sum(estimates) / len(estimates) == pytest.approx(exact, abs=0.02)


def test_ov_accuracy_on_a_sample_equals_the_dense_rows_it_names(tiny):
    rows = circuits.vocab_sample(tiny.cfg.d_vocab, 15, seed=2)
    dense = (tiny.W_E @ tiny.W_V[1, 2] @ tiny.W_O[1, 2] @ tiny.W_U)[rows]
    got = circuits.ov_topk_all_heads(tiny, (1, 5), chunk_size=4, rows=rows)
    hits5 = (torch.topk(dense, 5, dim=-1).indices == rows[:, None]).any(-1).float().mean().item()
    assert got[5][1, 2].item() == pytest.approx(hits5)


# ---------------------------------------------------------------- top-k accuracy


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_diagonal_topk_matches_dense(chunk_size):
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(30, 3, generator=gen), torch.randn(3, 30, generator=gen)
    a[:10] *= 0  # some rows with ties everywhere
    a[10:20] = b.T[10:20] * 5  # some rows with a strong diagonal
    dense = a @ b
    got = circuits.diagonal_topk_accuracy(FactoredMatrix(a, b), (1, 5), chunk_size)
    # Rows 0-9 are all-zero: ties count against the diagonal, topk would pick arbitrarily.
    assert got[1] == pytest.approx(dense_topk(dense[10:], 1, 10) * 20 / 30)
    assert got[5] == pytest.approx(dense_topk(dense[10:], 5, 10) * 20 / 30)


def test_diagonal_topk_ties_count_against():
    zeros = FactoredMatrix(torch.zeros(8, 2), torch.zeros(2, 8))
    assert circuits.diagonal_topk_accuracy(zeros, (1,))[1] == 0.0
    eye = FactoredMatrix(torch.eye(8), torch.eye(8))
    assert circuits.diagonal_topk_accuracy(eye, (1,))[1] == 1.0


def test_diagonal_topk_memory_stays_chunk_bounded(monkeypatch):
    """d_vocab = 50 000, rank 16: the full matrix would be 10 GB; blocks must stay chunk × d_vocab
    and the process's peak RSS must not grow by anything like that (rows sub-sampled for speed)."""
    d_vocab, chunk = 50_000, 256
    gen = torch.Generator().manual_seed(0)
    fm = FactoredMatrix(torch.randn(d_vocab, 16, generator=gen), torch.randn(16, d_vocab, generator=gen))
    seen: list[int] = []
    real = circuits.iter_row_blocks

    def probe(*args, **kwargs):
        for rows, block in real(*args, **kwargs):
            seen.append(block.numel())
            yield rows, block

    monkeypatch.setattr(circuits, "iter_row_blocks", probe)
    rows = torch.arange(0, d_vocab, 25)  # 2000 rows spread over the vocabulary
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    acc = circuits.diagonal_topk_accuracy(fm, (1, 5), chunk_size=chunk, rows=rows)
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    assert 0.0 <= acc[1] <= acc[5] <= 1.0
    assert seen and max(seen) <= chunk * d_vocab
    assert sum(seen) == len(rows) * d_vocab
    full_bytes = d_vocab**2 * 4
    assert growth < full_bytes / 20  # far below 10 GB (a block is 51 MB)


# ---------------------------------------------------------------- studied heads


def head_metrics(**values) -> dict:
    return {"analysis": "head_scores", "metrics": {k: {"value": v} for k, v in values.items()}}


def test_studied_heads_and_fallback():
    m = head_metrics(induction_heads=["1.2", "1.0"], prev_token_heads=[],
                     best_induction_head="1.2", best_prev_token_head="0.3")  # fmt: skip
    heads = circuits.studied_heads(m)
    assert heads.induction == ["1.2", "1.0"] and heads.prev_token == ["0.3"]
    assert list(heads.notes) == ["prev_token"] and "0.3" in heads.notes["prev_token"]
    assert circuits.best_pair(heads) == ("0.3", "1.2")


def test_best_pair_skips_prev_heads_in_later_layers():
    heads = circuits.StudiedHeads(induction=["1.1"], prev_token=["1.0", "0.2", "0.1"], notes={})
    assert circuits.best_pair(heads) == ("0.2", "1.1")
    with pytest.raises(NotApplicable) as err:
        circuits.best_pair(circuits.StudiedHeads(["1.1"], ["1.0", "1.3"], {}))
    assert err.value.reason == NO_EARLIER_PREV_TOKEN_HEAD.format(prev_heads="1.0, 1.3",
                                                                 induction_head="1.1")


# ---------------------------------------------------------------- OV circuit


def dense_ov(model, heads) -> torch.Tensor:
    return sum(
        model.W_E @ model.W_V[layer, h] @ model.W_O[layer, h] @ model.W_U for layer, h in heads
    )


@pytest.mark.parametrize("heads", [[(0, 1)], [(1, 2)], [(1, 0), (1, 2)], [(0, 0), (1, 1), (1, 2)]])
def test_ov_circuit_matches_dense(tiny, heads):
    fm = circuits.ov_circuit(tiny, heads)
    assert fm.mdim == len(heads) * tiny.cfg.d_head  # factored, never d_vocab inside
    torch.testing.assert_close(fm.AB, dense_ov(tiny, heads), atol=1e-4, rtol=1e-4)
    got = circuits.ov_topk_accuracy(tiny, heads, chunk_size=9)
    dense = dense_ov(tiny, heads)
    assert got[1] == pytest.approx(dense_topk(dense, 1))
    assert got[5] == pytest.approx(dense_topk(dense, 5))


def test_ov_topk_all_heads(tiny):
    table = circuits.ov_topk_all_heads(tiny, (1, 5), chunk_size=16)
    assert table[1].shape == (2, 3)
    assert table[5][1, 2].item() == pytest.approx(dense_topk(dense_ov(tiny, [(1, 2)]), 5))


def test_ov_copying_scores_match_dense_eigenvalues(tiny):
    got = circuits.ov_copying_scores(tiny)
    assert got.shape == (2, 3)
    for layer in range(2):
        for h in range(3):
            ev = torch.linalg.eigvals(dense_ov(tiny, [(layer, h)]).double())
            expected = (ev.sum().real / ev.abs().sum()).item()
            assert got[layer, h].item() == pytest.approx(expected, abs=1e-4)


def test_planted_ov(planted):
    model, circuit = planted
    acc = circuits.ov_topk_accuracy(model, [circuit.induction_head])
    assert acc == {1: 1.0, 5: 1.0}
    scores = circuits.ov_copying_scores(model)
    assert scores[circuit.induction_head].item() == pytest.approx(1.0)
    assert scores[circuit.prev_token_head].item() == 0.0  # its OV writes nothing W_U reads


def test_copying_score_values():
    ev = torch.tensor([[2.0, 1.0, 0.0], [2.0, -2.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.complex64)
    assert circuits.copying_score(ev).tolist() == [1.0, 0.0, 0.0]
    pair = torch.tensor([1 + 1j, 1 - 1j, -1])  # a complex-conjugate pair and a negative one
    expected = 1.0 / (2 * 2**0.5 + 1)
    assert circuits.copying_score(pair).item() == pytest.approx(expected)


# ---------------------------------------------------------------- positional QK


def loop_positional_pattern(model, layer, h) -> torch.Tensor:
    """Reference: explicit per-query softmax over keys j <= i."""
    q = model.W_pos @ model.W_Q[layer, h]
    k = model.W_pos @ model.W_K[layer, h]
    n = q.shape[0]
    out = torch.zeros(n, n)
    for i in range(n):
        s = [float(q[i] @ k[j]) / math.sqrt(model.cfg.d_head) for j in range(i + 1)]
        m = max(s)
        e = [math.exp(x - m) for x in s]
        out[i, : i + 1] = torch.tensor(e) / sum(e)
    return out


def test_positional_pattern_matches_loop(tiny):
    got = circuits.positional_qk_pattern(tiny, (1, 2))
    torch.testing.assert_close(got, loop_positional_pattern(tiny, 1, 2), atol=1e-5, rtol=1e-5)
    sub = circuits.subdiagonal_mean(got)
    assert sub.item() == pytest.approx(sum(got[i, i - 1].item() for i in range(1, 12)) / 11)
    with_bias = circuits.positional_qk_pattern(tiny, (1, 2), include_bias=True)
    assert not torch.allclose(with_bias, got)  # the biases are non-zero in this model


def test_planted_positional_prev_token(planted):
    model, circuit = planted
    scores = circuits.positional_prev_token_scores(model)
    assert scores[circuit.prev_token_head].item() > 0.99
    assert scores[circuit.induction_head].item() < 0.5  # token-based, not positional
    assert scores.argmax().item() == 0  # 0.0 is the most positional previous-token head


# ---------------------------------------------------------------- K-composition circuit


def test_kcomp_circuit_matches_dense(tiny):
    prev, ind = (0, 2), (1, 1)
    dense = (
        tiny.W_E @ tiny.W_Q[1, 1] @ tiny.W_K[1, 1].T
        @ (tiny.W_V[0, 2] @ tiny.W_O[0, 2]).T @ tiny.W_E.T
    )  # fmt: skip
    fm = circuits.kcomp_circuit(tiny, prev, ind)
    torch.testing.assert_close(fm.AB, dense, atol=1e-4, rtol=1e-4)
    table = circuits.kcomp_top1_matrix(tiny, [(0, 0), prev], [ind, (0, 1)], chunk_size=6)
    assert table[1, 0].item() == pytest.approx(dense_topk(dense, 1))
    assert torch.isnan(table[:, 1]).all()  # 0.x -> 0.1 is not a composition
    with pytest.raises(ValueError, match="earlier layer"):
        circuits.kcomp_circuit(tiny, ind, prev)


def test_planted_kcomp(planted):
    model, circuit = planted
    fm = circuits.kcomp_circuit(model, circuit.prev_token_head, circuit.induction_head)
    assert circuits.diagonal_topk_accuracy(fm, (1,))[1] == 1.0
    decoy = circuits.kcomp_top1_matrix(model, [(0, 1)], [circuit.induction_head])
    assert decoy.item() < 1.0


# ---------------------------------------------------------------- QK decomposition


@pytest.mark.parametrize("head", [(0, 1), (1, 2)])
def test_decomposition_sums_to_attention_scores(tiny, head):
    tokens = torch.randint(0, 40, (2, 9), generator=torch.Generator().manual_seed(2))
    decomp = circuits.decompose_attention_scores(tiny, tokens, head)
    n_comp = 2 + head[0] * 3 + 1
    assert decomp.scores.shape == (n_comp, n_comp, 2, 9, 9)
    assert decomp.names[:2] == ["embed", "pos_embed"] and decomp.names[-1] == "bias"
    _, cache = tiny.run_with_cache(tokens)
    real = cache["attn_scores", head[0]][:, head[1]]  # [batch q k], masked above the diagonal
    causal = torch.ones(9, 9, dtype=torch.bool).tril()
    total = decomp.scores.sum((0, 1))
    torch.testing.assert_close(total[:, causal], real[:, causal], atol=1e-4, rtol=1e-4)
    spreads = circuits.score_spreads(decomp)
    assert spreads.shape == (n_comp, n_comp) and (spreads >= 0).all()


def test_decomposition_names_the_planted_key_path(planted):
    """On the planted model, the induction head's scores vary through (embed query × 0.0 key)."""
    model, circuit = planted
    tokens = distinct_repeated_tokens(32, 10, 2)
    decomp = circuits.decompose_attention_scores(model, tokens, circuit.induction_head)
    spreads = circuits.score_spreads(decomp)
    i, j = divmod(spreads.argmax().item(), spreads.shape[1])
    assert (decomp.names[i], decomp.names[j]) == ("embed", "0.0")


def test_decomposition_rejects_layernorm():
    cfg = attn_only_config(n_layers=2, d_model=8, n_heads=2, d_head=4, n_ctx=6, d_vocab=10)
    cfg.normalization_type = "LN"
    model = HookedTransformer(cfg)
    with pytest.raises(ValueError, match="LayerNorm"):
        circuits.decompose_attention_scores(model, torch.zeros(1, 4, dtype=torch.long), (1, 0))
