"""Fuzzy-induction sequences, targets and measures, on the planted induction model.

The planted model (d_vocab 32) matches tokens exactly and nothing else, so with token ids as
"words" and fake synonym pairs (2k+1, 2k+2): exact repeats give prefix-matching attention ≈ 1 for
head 1.0, and every other condition gives the no-match attention (uniform over the keys).
"""

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from induction_heads import attribution, fuzzy, planted
from induction_heads.applicability import TOO_FEW_SYNONYM_PAIRS, TOO_FEW_UNRELATED_PAIRS, NotApplicable
from induction_heads.architecture import attn_only_config

N = 5  # pairs per sequence
PAIRS = np.array([(2 * k + 1, 2 * k + 2) for k in range(15)])


@pytest.fixture(scope="module")
def model():
    return planted.planted_induction_model()[0]


@pytest.fixture(scope="module")
def seqs():
    return fuzzy.make_sequences(PAIRS, n_sequences=40, n_pairs_per_sequence=N, seed=0)


@pytest.fixture(scope="module")
def measures(model, seqs):
    return fuzzy.all_measures(model, seqs, heads=["1.0", "0.0"], batch_size=16)


# --------------------------------------------------------------------------- sequences


def test_sequences_are_seeded(seqs):
    again = fuzzy.make_sequences(PAIRS, n_sequences=40, n_pairs_per_sequence=N, seed=0)
    other = fuzzy.make_sequences(PAIRS, n_sequences=40, n_pairs_per_sequence=N, seed=1)
    for c in fuzzy.CONDITIONS:
        assert torch.equal(seqs.tokens(c), again.tokens(c))
    assert not torch.equal(seqs.tokens("synonym"), other.tokens("synonym"))


def test_sequence_structure(seqs):
    partner = {a: b for a, b in PAIRS.tolist()} | {b: a for a, b in PAIRS.tolist()}
    for c in fuzzy.CONDITIONS:
        t = seqs.tokens(c)
        assert t.shape == (40, 1 + 2 * N) and bool((t[:, 0] == 0).all())
        assert torch.equal(t[:, 1 : N + 1], seqs.first)  # shared first halves
    for i in range(40):
        w, ws, u = seqs.first[i].tolist(), seqs.synonyms[i].tolist(), seqs.unrelated[i].tolist()
        assert [partner[x] for x in w] == ws  # each w*ᵢ is wᵢ's partner
        assert len(set(w + ws + u)) == 3 * N  # all distinct
        assert not {partner[x] for x in u} & set(w + ws)  # u: no synonym in the sequence
        assert all(p != s for s, p in enumerate(seqs.perm[i].tolist()))  # a derangement
    assert sorted(seqs.tokens("shuffled")[0, N + 1 :].tolist()) == sorted(seqs.synonyms[0].tolist())
    # both directions of a pair occur
    flipped = [(w % 2 == 0) for w in seqs.first.ravel().tolist()]
    assert 0 < np.mean(flipped) < 1


def test_too_few_pairs_is_not_applicable():
    with pytest.raises(NotApplicable) as err:
        fuzzy.make_sequences(PAIRS[:3], n_sequences=1, n_pairs_per_sequence=4, seed=0)
    assert err.value.reason == TOO_FEW_UNRELATED_PAIRS.format(needed=4, available=3)


def test_require_pairs():
    fuzzy.require_pairs(8, 4)  # enough: no error
    with pytest.raises(NotApplicable) as err:
        fuzzy.require_pairs(0, 4)
    assert err.value.reason == TOO_FEW_SYNONYM_PAIRS.format(needed=8, available=0)


def test_slot_targets_by_hand():
    s = fuzzy.FuzzySequences(
        first=torch.tensor([[11, 12, 13]]),
        synonyms=torch.tensor([[21, 22, 23]]),
        unrelated=torch.tensor([[31, 32, 33]]),
        perm=torch.tensor([[2, 0, 1]]),
        bos=0,
    )
    assert s.tokens("shuffled").tolist() == [[0, 11, 12, 13, 23, 21, 22]]
    t = fuzzy.slot_targets(s, "synonym")
    assert t.query_pos.tolist() == [[4, 5, 6]]
    assert t.key_pos[t.valid].tolist() == [2, 3]
    assert t.exact_token[t.valid].tolist() == [12, 13]
    assert t.fuzzy_token[t.valid].tolist() == [22, 23]
    t = fuzzy.slot_targets(s, "shuffled")  # slot 0 holds w₃* (no successor): invalid
    assert t.valid.tolist() == [[False, True, True]]
    assert t.key_pos[t.valid].tolist() == [2, 3]  # after w₁ (query w₁*), after w₂ (query w₂*)
    assert t.exact_token[t.valid].tolist() == [12, 13]
    assert t.fuzzy_token[t.valid].tolist() == [22, 23]


# --------------------------------------------------------------------------- measures


def uniform_attention(n: int) -> float:
    """Mean attention to one key if a query at n + s spreads evenly over its n + s + 1 keys."""
    return float(np.mean([1 / (n + s + 1) for s in range(1, n)]))


def test_exact_repeat_prefix_attention_is_one(measures):
    att = measures["exact"]["prefix_attention"][:, 1, 0]
    assert att.min() > 0.95


@pytest.mark.parametrize("condition", ["unrelated", "synonym", "shuffled"])
def test_no_match_prefix_attention_is_chance(measures, condition):
    # the planted head only matches exact tokens: these conditions have no match at all
    att = measures[condition]["prefix_attention"][:, 1, 0].mean()
    assert att < 0.2
    if condition != "shuffled":  # shuffled slots are a different subset of query positions
        assert abs(att - uniform_attention(N)) < 0.02


def test_exact_repeat_copies(measures):
    ex = measures["exact"]
    assert ex["loss_second_half"].max() < 0.05
    assert ex["logprob_exact"].min() > -0.05
    assert measures["unrelated"]["loss_second_half"].mean() > 1.0
    # head 1.0 writes the attended token with the unembedding scale (20); 0.0 writes nothing to W_U
    assert np.allclose(ex["dla_exact"][:, 0], 20.0, atol=1.0)
    assert np.allclose(ex["dla_exact"][:, 1], 0.0, atol=1e-4)
    assert np.allclose(ex["dla_fuzzy"][:, 0], 0.0, atol=1.0)


def test_shapes(measures, model):
    for m in measures.values():
        assert m["prefix_attention"].shape == (40, model.cfg.n_layers, model.cfg.n_heads)
        assert m["dla_exact"].shape == (40, 2)
        for k in ("loss_second_half", "logprob_exact", "logprob_fuzzy", "logit_exact", "logit_fuzzy"):
            assert m[k].shape == (40,)


@torch.no_grad()
def test_dla_of_all_heads_plus_direct_path_is_the_logit(model, seqs):
    tokens = seqs.tokens("synonym")
    tg = fuzzy.slot_targets(seqs, "synonym")
    logits, cache = model.run_with_cache(tokens)
    b = torch.arange(tokens.shape[0])[:, None]
    total = torch.zeros(tg.query_pos.shape)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            total += fuzzy.head_dla(model, cache["z", layer], layer, head, tg.query_pos, tg.exact_token)
    direct = model.W_E[tokens[b, tg.query_pos]] + sum(model.b_O[layer] for layer in range(2))
    total += (direct * model.W_U.T[tg.exact_token]).sum(-1) + model.b_U[tg.exact_token]
    assert torch.allclose(total, logits[b, tg.query_pos, tg.exact_token], atol=1e-3)


@torch.no_grad()
def test_dla_through_a_final_layernorm_equals_the_logit_attribution_parts():
    """On a model with LayerNorm and MLPs, each head's part read through the cached final scale
    equals attribution.logit_attribution's part (itself checked against TransformerLens)."""
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=16, d_vocab=32,
                                  act_fn="gelu", normalization_type="LN", device="cpu", seed=0)  # fmt: skip
    model = HookedTransformer(cfg)
    tokens = torch.randint(1, 32, (3, 12), generator=torch.Generator().manual_seed(0))
    query_pos = torch.tensor([[2, 5, 9]]).expand(3, -1)
    b = torch.arange(3)[:, None]
    target = tokens[b, query_pos + 1]
    _, cache = model.run_with_cache(tokens)
    parts = attribution.logit_attribution(model, tokens).heads  # [batch pos layer head]
    for layer, head in [(0, 1), (1, 0)]:
        got = fuzzy.head_dla(model, cache["z", layer], layer, head, query_pos, target, cache["ln_final.hook_scale"])
        torch.testing.assert_close(got, parts[b, query_pos, layer, head], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="scale"):
        fuzzy.head_dla(model, cache["z", 0], 0, 0, query_pos, target)


def test_mean_head_pattern_shows_the_induction_stripe(model, seqs):
    pat = fuzzy.mean_head_pattern(model, seqs, "exact", "1.0")
    assert pat.shape == (1 + 2 * N, 1 + 2 * N)
    stripe = [pat[N + s, s + 1].item() for s in range(1, N)]
    assert min(stripe) > 0.95


# --------------------------------------------------------------------------- statistics


def test_paired_bootstrap_of_a_constant_difference_has_zero_width():
    rng = np.random.default_rng(0)
    a = rng.normal(size=100)
    lo, hi = fuzzy.paired_bootstrap_ci(a + 0.3, a)
    assert lo == pytest.approx(0.3) and hi == pytest.approx(0.3)


def test_paired_bootstrap_is_narrower_than_unpaired_when_sequences_vary():
    rng = np.random.default_rng(0)
    shared = rng.normal(scale=5.0, size=200)  # per-sequence variation both conditions share
    a, b = shared + 0.2 + rng.normal(scale=0.1, size=200), shared
    lo, hi = fuzzy.paired_bootstrap_ci(a, b)
    assert 0 < lo < 0.2 < hi
    assert hi - lo < 0.1


def test_bootstrap_interval_covers_the_true_mean_at_about_95_percent():
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(200):
        x = rng.normal(loc=1.0, size=60)
        lo, hi = fuzzy.paired_bootstrap_ci(x, np.zeros_like(x), n_boot=500, seed=i)
        hits += lo <= 1.0 <= hi
    assert 0.88 <= hits / 200 <= 0.99


def test_paired_bootstrap_needs_paired_samples():
    with pytest.raises(ValueError, match="one length"):
        fuzzy.paired_bootstrap_ci(np.zeros(3), np.zeros(4))


def test_summarize_and_verdict():
    x = {"synonym": np.full(50, 1.0), "shuffled": np.full(50, 0.5), "exact": np.full(50, 1.0)}
    levels, diffs = fuzzy.summarize(x, n_boot=100)
    assert levels["shuffled"].mean == pytest.approx(0.5)
    assert set(diffs) == {"shuffled", "exact"}
    assert diffs["shuffled"].above_zero and not diffs["exact"].above_zero
    assert "exceeds the shuffled control" in fuzzy.verdict(diffs["shuffled"], "It", "shuffled")
    assert "indistinguishable" in fuzzy.verdict(diffs["exact"], "It", "exact")
    assert "falls below" in fuzzy.verdict(fuzzy.Estimate(-1, -2, -0.5), "It", "x")


def test_head_table_rows(measures):
    rows = fuzzy.head_table(measures, layers=[1], n_boot=100)
    assert [r[0] for r in rows] == ["1.0", "1.1"]
    assert rows[0][6] > 0.95  # exact column of 1.0


def test_positional_prefix_attention(measures):
    for c in ("synonym", "exact", "unrelated"):  # same key as prefix_attention there
        assert np.allclose(measures[c]["prefix_attention_positional"], measures[c]["prefix_attention"])
    shuffled = measures["shuffled"]["prefix_attention_positional"][:, 1, 0].mean()
    assert abs(shuffled - uniform_attention(N)) < 0.02  # key s+1 never matches a shuffled query


def test_conclusion_follows_the_intervals():
    yes, no = fuzzy.Estimate(0.2, 0.1, 0.3), fuzzy.Estimate(0.0, -0.1, 0.1)
    both = fuzzy.conclusion("1.4", {"unrelated": yes, "shuffled": no}, yes, {"unrelated": yes}, {"unrelated": yes})
    assert both.endswith("shows fuzzy prefix matching and shows fuzzy copying.")
    assert "Head 1.4" in both
    neither = fuzzy.conclusion("1.4", {"unrelated": yes, "shuffled": yes}, no, {"unrelated": yes}, {"unrelated": no})
    assert neither.endswith("does not show fuzzy prefix matching and does not show fuzzy copying.")


def test_record_measure_names(tmp_path):
    from induction_heads.metrics import Metrics

    m = Metrics("fuzzy_induction", "toy", tmp_path)
    x = {"synonym": np.ones(20), "exact": np.zeros(20), "unrelated": np.zeros(20), "shuffled": np.ones(20)}
    fuzzy.record_measure(m, "fuzzy_prefix_attention", x, "attention", diff_base="fuzzy_prefix", n_boot=50)
    assert set(m.data["metrics"]) == {
        "fuzzy_prefix_attention", "fuzzy_prefix_attention_exact", "fuzzy_prefix_attention_unrelated",
        "fuzzy_prefix_attention_shuffled", "fuzzy_prefix_minus_exact", "fuzzy_prefix_minus_unrelated",
        "fuzzy_prefix_minus_shuffled",
    }  # fmt: skip
    assert m.data["metrics"]["fuzzy_prefix_minus_exact"]["ci"] == [1.0, 1.0]
