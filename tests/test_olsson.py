"""Olsson et al.'s prefix-matching and copying scores, checked against slow loop references and
against the planted circuit (whose answers are known by construction), and the anti-induction
test on a planted anti-induction head."""

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from induction_heads import olsson as O
from induction_heads.planted import planted_induction_model

from .conftest import noisy_model


def slow_successor_mask(tokens):
    b, n = tokens.shape
    mask = torch.zeros(b, n, n, dtype=torch.bool)
    for s in range(b):
        for q in range(n):
            for j in range(q):
                if tokens[s, j] == tokens[s, q]:
                    mask[s, q, j + 1] = True
    return mask


def slow_prefix(model, tokens):
    """Loop reference: per sequence, per head, sum attention to successors, average over queries."""
    _, cache = model.run_with_cache(tokens)
    mask = slow_successor_mask(tokens)
    out = torch.zeros(len(tokens), model.cfg.n_layers, model.cfg.n_heads)
    for s in range(len(tokens)):
        queries = [q for q in range(tokens.shape[1]) if mask[s, q].any()]
        for layer in range(model.cfg.n_layers):
            for h in range(model.cfg.n_heads):
                pat = cache["pattern", layer][s, h]
                out[s, layer, h] = sum(float(pat[q][mask[s, q]].sum()) for q in queries) / len(queries)
    return out


def slow_shares(model, tokens, n_tokens):
    """Loop reference on an attention-only model without LayerNorm: the value vector from the
    residual stream by hand, every logit of the vocabulary, then the share on the sample."""
    _, cache = model.run_with_cache(tokens)
    out = torch.zeros(len(tokens), model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        resid = cache[f"blocks.{layer}.hook_resid_pre"]
        for h in range(model.cfg.n_heads):
            for s in range(len(tokens)):
                sample = tokens[s, 1 : 1 + n_tokens].tolist()
                shares = []
                for j in range(1, 1 + n_tokens):
                    v = resid[s, j] @ model.W_V[layer, h] + model.b_V[layer, h]
                    logits = v @ model.W_O[layer, h] @ model.W_U  # [d_vocab]
                    raised = (logits - logits.mean()).clamp(min=0)
                    total = sum(float(raised[t]) for t in sample)
                    shares.append(float(raised[tokens[s, j]]) / total if total > 0 else 1 / n_tokens)
                out[s, layer, h] = float(np.mean(shares))
    return out


@pytest.fixture
def rand_tokens():
    model = noisy_model(2, seed=3, d_vocab=30, n_ctx=24)
    toks = O.repeated_sequences(np.arange(1, 30), 5, 4, 6, seed=2, bos=0)
    return model, toks


def test_token_pool_drops_the_most_and_least_common():
    freq = np.array([1000, 50, 40, 30, 20, 10, 5, 0, 0, 7])  # id 0 is BOS (not ordinary)
    pool = O.token_pool(np.arange(1, 10), freq, exclude_common=0.1, exclude_rare=0.3)
    # ranking 1(50) 2(40) 3(30) 4(20) 5(10) 9(7) 6(5) 7(0) 8(0): drop ceil(0.9) = 1 first and
    # ceil(2.7) = 3 last (6, 7, 8; ties by id)
    assert pool.ids.tolist() == [2, 3, 4, 5, 9]
    assert "held-out" in pool.rule
    fallback = O.token_pool(np.arange(1, 10), None)
    assert fallback.ids.tolist() == list(range(1, 10)) and "no token frequencies" in fallback.rule
    with pytest.raises(ValueError, match="exclude_common"):
        O.token_pool(np.arange(5), freq, exclude_common=0.6, exclude_rare=0.5)


def test_repeated_sequences_are_distinct_repeats_after_bos():
    toks = O.repeated_sequences(np.arange(3, 40), 7, 4, 5, seed=0, bos=1)
    assert toks.shape == (5, 1 + 28) and (toks[:, 0] == 1).all()
    r = toks[:, 1:8]
    assert all(len(set(row.tolist())) == 7 for row in r)
    assert torch.equal(toks[:, 1:], r.repeat(1, 4))
    assert torch.equal(toks, O.repeated_sequences(np.arange(3, 40), 7, 4, 5, seed=0, bos=1))
    with pytest.raises(ValueError, match="fewer than n_tokens"):
        O.repeated_sequences(np.arange(3), 7, 4, 5, seed=0, bos=1)


def test_successor_mask_matches_loops_with_duplicate_tokens():
    toks = torch.randint(0, 4, (3, 12), generator=torch.Generator().manual_seed(0))
    assert torch.equal(O.successor_mask(toks), slow_successor_mask(toks))


def test_prefix_matching_matches_loop_reference(rand_tokens):
    model, toks = rand_tokens
    fast = O.prefix_matching(model, toks, batch_size=4)
    torch.testing.assert_close(fast, slow_prefix(model, toks), atol=1e-5, rtol=0)
    assert fast.std() > 0.01  # a random model: the scores differ between heads


def test_copying_shares_match_full_vocabulary_reference(rand_tokens):
    model, toks = rand_tokens
    fast = O.copying_shares(model, toks, 5, first=1, batch_size=4)
    torch.testing.assert_close(fast, slow_shares(model, toks, 5), atol=1e-5, rtol=0)
    assert fast.std() > 0.01


def test_copying_score_is_anchored_at_chance():
    c = 0.04
    assert O.copying_score(1.0, c) == pytest.approx(1.0)
    assert O.copying_score(c, c) == pytest.approx(0.0)
    assert O.copying_score(0.0, c) == pytest.approx(-1.0)
    assert O.copying_score(c / 2, c) == pytest.approx(-0.5)
    t = O.copying_score(torch.tensor([0.0, c, 1.0]), c)
    torch.testing.assert_close(t, torch.tensor([-1.0, 0.0, 1.0]))


def _planted_scores(anti: bool):
    model, circuit = planted_induction_model(anti_induction=anti)
    toks = O.repeated_sequences(np.arange(1, 32), 10, 4, 12, seed=0, bos=0)
    return circuit, O.olsson_scores(model, toks, 10)


def test_planted_induction_head_prefix_matches_and_copies():
    circuit, sc = _planted_scores(anti=False)
    prefix, copying = sc.prefix_mean(), sc.copying()
    assert prefix[circuit.induction_head] > 0.99
    assert copying[circuit.induction_head] > 0.99
    assert prefix[circuit.prev_token_head] < 0.01  # it attends to the previous token instead
    ci = sc.intervals(n_boot=200)
    lo, hi = ci["copying"][circuit.induction_head]
    assert lo <= float(copying[circuit.induction_head]) <= hi
    found = O.anti_induction_heads(sc, None, 0.4, 0.4)
    assert found.candidates == ["1.0"] and found.heads == []


def test_planted_anti_induction_head_is_found():
    circuit, sc = _planted_scores(anti=True)
    anti = circuit.anti_induction_head
    assert sc.prefix_mean()[anti] > 0.99  # attends like the induction head
    assert sc.copying()[anti] < -0.99  # but suppresses the token it attends to
    found = O.anti_induction_heads(sc, None, prefix_threshold=0.4, induction_threshold=0.4)
    assert found.candidates == ["1.0", "1.1"]
    assert found.heads == ["1.1"] and found.rejected == [False, True]
    assert found.pvalues[1] <= 0.05 / 2 < found.pvalues[0]
    # our induction score alone can make a head a candidate
    induction = torch.zeros(2, 2)
    induction[0, 1] = 0.9
    assert O.anti_induction_heads(sc, induction, 2.0, 0.4).candidates == ["0.1"]


def test_holm_and_bootstrap_p_values():
    # Holm at 0.05 over 4: 0.01 <= 0.05/4, 0.015 <= 0.05/3, then 0.03 > 0.05/2 stops
    assert O.holm_reject([0.03, 0.01, 0.5, 0.015], 0.05) == [False, True, False, True]
    assert O.holm_reject([0.03, 0.01, 0.5, 0.02], 0.05) == [False, True, False, False]  # 0.02 > 0.05/3
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(-1, 0.1, 40), rng.normal(1, 0.1, 40)], axis=1)
    p = O.bootstrap_p_below(x, 0.0, 999, seed=0)
    assert p[0] == pytest.approx(1 / 1000) and p[1] == pytest.approx(1.0)


def test_spearman():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert O.spearman(x, x**3) == pytest.approx(1.0)
    assert O.spearman(x, -x) == pytest.approx(-1.0)
    assert O.average_ranks(np.array([5.0, 1.0, 5.0])).tolist() == [2.5, 1.0, 2.5]
    assert np.isnan(O.spearman(x, np.ones(4)))


def test_copying_through_a_final_layernorm_matches_reference():
    """With LayerNorm and MLPs: the direct path through the final LayerNorm as the model runs it
    (centre, divide by the cached scale, times its weight) gives the same shares."""
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=24,
                                  d_vocab=30, act_fn="gelu", normalization_type="LN", seed=0)
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():
        model.ln_final.w.copy_(torch.rand(16, generator=torch.Generator().manual_seed(1)) * 2)
    toks = O.repeated_sequences(np.arange(1, 30), 5, 4, 4, seed=0, bos=0)
    sc = O.olsson_scores(model, toks, 5)
    assert torch.isfinite(sc.prefix).all() and ((sc.prefix >= 0) & (sc.prefix <= 1 + 1e-6)).all()
    _, cache = model.run_with_cache(toks)
    scale = cache["ln_final.hook_scale"]  # [b pos 1]
    for layer, h in ((0, 1), (1, 0)):
        for s in range(len(toks)):
            sample = toks[s, 1:6]
            shares = []
            for j in range(1, 6):
                o = cache["v", layer][s, j, h] @ model.W_O[layer, h]
                logits = ((o - o.mean()) / scale[s, j] * model.ln_final.w) @ model.W_U
                raised = (logits - logits.mean()).clamp(min=0)
                shares.append(float(raised[toks[s, j]] / raised[sample].sum()))
            assert float(sc.share[s, layer, h]) == pytest.approx(np.mean(shares), abs=1e-5)
    with pytest.raises(ValueError, match="do not fit"):
        O.check_fits(model, 25, 4)


def test_sequences_must_fit_the_context(planted):
    model, _ = planted  # n_ctx 64
    O.check_fits(model, 15, 4)  # 61 positions
    with pytest.raises(ValueError, match="do not fit the model's context"):
        O.check_fits(model, 25, 4)
