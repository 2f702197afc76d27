"""Path patching of the previous-token head into the induction head's key, query and value
inputs: the planted circuit puts the whole effect on the key path, and the hooked runs equal a
reference that recomputes the induction head by hand from patched inputs."""

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from induction_heads import path_patching as PP
from induction_heads.planted import distinct_repeated_tokens

from .conftest import noisy_model

SEQ_LEN = 8


def test_shuffle_first_repeat_permutes_only_the_first_repeat():
    toks = distinct_repeated_tokens(30, SEQ_LEN, 6, seed=0)
    cor = PP.shuffle_first_repeat(toks, SEQ_LEN, seed=1)
    assert torch.equal(cor[:, 0], toks[:, 0]) and torch.equal(cor[:, 1 + SEQ_LEN :], toks[:, 1 + SEQ_LEN :])
    assert torch.equal(cor[:, 1 : 1 + SEQ_LEN].sort(-1).values, toks[:, 1 : 1 + SEQ_LEN].sort(-1).values)
    assert not torch.equal(cor, toks)
    with pytest.raises(ValueError, match="BOS \\+ r \\+ r"):
        PP.shuffle_first_repeat(toks[:, :-1], SEQ_LEN, seed=1)


def test_planted_circuit_puts_the_whole_effect_on_the_key_path(planted):
    model, circuit = planted
    toks = distinct_repeated_tokens(32, 20, 12, seed=1)
    cor = PP.shuffle_first_repeat(toks, 20, seed=0)
    res = PP.path_patching(model, toks, cor, 20, circuit.prev_token_head, circuit.induction_head)
    assert res.induction_clean.mean() > 0.99 and res.loss_clean.mean() < 0.01
    assert res.induction_change("key").mean() < -0.9
    assert res.loss_change("key").mean() > 5
    for path in ("query", "value"):  # 1.0 reads the previous-token subspace through its keys only
        assert res.induction_change(path).abs().max() < 1e-6
        assert res.loss_change(path).abs().max() < 1e-5
    torch.testing.assert_close(res.loss["all"], res.loss["key"])
    shares = PP.path_shares({p: res.loss_change(p).numpy() for p in PP.PATHS}, n_boot=200)
    assert shares["key"][0] == pytest.approx(1.0) and shares["key"][1][0] == pytest.approx(1.0)
    assert shares["query"][0] == pytest.approx(0.0, abs=1e-6)


def reference(model, clean, corrupted, sender, receiver, paths):
    """By hand, for an attention-only shortformer model whose receiver is in the last layer: the
    sender's output change from the cached z, the receiver's q, k, v recomputed from the cached
    residual stream with it added, its pattern, and the logits as the clean ones plus the change
    in the receiver's output."""
    (ls, hs), (lr, hr) = sender, receiver
    assert lr == model.cfg.n_layers - 1
    logits, cache = model.run_with_cache(clean)
    _, cache_c = model.run_with_cache(corrupted)
    delta = torch.einsum("bpd,dm->bpm", cache_c["z", ls][:, :, hs] - cache["z", ls][:, :, hs], model.W_O[ls, hs])
    resid, pos = cache[f"blocks.{lr}.hook_resid_pre"], cache["hook_pos_embed"]

    def inp(path):
        return resid + (delta if path in paths else 0)

    q = (inp("query") + pos) @ model.W_Q[lr, hr] + model.b_Q[lr, hr]
    k = (inp("key") + pos) @ model.W_K[lr, hr] + model.b_K[lr, hr]
    v = inp("value") @ model.W_V[lr, hr] + model.b_V[lr, hr]
    n = clean.shape[1]
    scores = torch.einsum("bqd,bkd->bqk", q, k) / model.cfg.d_head**0.5
    scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
    pattern = scores.softmax(-1)
    z = torch.einsum("bqk,bkd->bqd", pattern, v)
    new_logits = logits + (z - cache["z", lr][:, :, hr]) @ model.W_O[lr, hr] @ model.W_U
    return pattern, new_logits


@pytest.mark.parametrize("paths", [("key",), ("query",), ("value",), PP.PATHS])
def test_hooked_patching_equals_hand_reference(paths):
    model = noisy_model(2, seed=5, weight_std=0.4, bias_std=0.3, d_model=16, n_heads=3, d_head=8,
                        n_ctx=24, d_vocab=30)
    clean = distinct_repeated_tokens(30, SEQ_LEN, 5, seed=2)
    corrupted = PP.shuffle_first_repeat(clean, SEQ_LEN, seed=3)
    sender, receiver = (0, 2), (1, 1)
    ref_pattern, ref_logits = reference(model, clean, corrupted, sender, receiver, paths)
    delta = PP.head_output(model, corrupted, sender) - PP.head_output(model, clean, sender)
    logits, pattern = PP.patched_run(model, clean, delta, receiver, paths)
    torch.testing.assert_close(pattern, ref_pattern, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)
    name = paths[0] if len(paths) == 1 else PP.ALL
    res = PP.path_patching(model, clean, corrupted, SEQ_LEN, sender, receiver, paths=[name], batch_size=2)
    torch.testing.assert_close(res.induction[name], PP.induction_per_sequence(ref_pattern, SEQ_LEN))
    torch.testing.assert_close(res.loss[name], PP.second_repeat_loss(ref_logits, clean, SEQ_LEN), atol=1e-4, rtol=1e-4)
    assert res.loss_change(name).abs().max() > 1e-3  # the patch does something in a random model
    if paths == ("value",):
        assert res.induction_change(name).abs().max() < 1e-6  # values never move the pattern
    assert not model.cfg.use_split_qkv_input  # switched back off


def test_clean_equals_the_unhooked_model():
    model = noisy_model(3, seed=1, d_model=16, n_heads=2, d_head=8, n_ctx=24, d_vocab=30)
    clean = distinct_repeated_tokens(30, SEQ_LEN, 3, seed=0)
    logits, pattern = PP.patched_run(model, clean, None, (2, 1), ())
    expected, cache = model.run_with_cache(clean)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(pattern, cache["pattern", 2][:, 1])
    # identical corrupted and clean sequences: nothing changes on any path
    res = PP.path_patching(model, clean, clean, SEQ_LEN, (0, 0), (2, 1))
    for path in res.paths:
        assert res.loss_change(path).abs().max() < 1e-5


def test_refuses_what_it_cannot_patch():
    model = noisy_model(2, seed=0)
    with pytest.raises(ValueError, match="earlier layer"):
        PP.check_patchable(model, (1, 0), (1, 1))
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=4, d_head=4, n_ctx=24, d_vocab=30,
                                  attn_only=True, n_key_value_heads=2, act_fn="relu")
    with pytest.raises(ValueError, match="grouped-query"):
        PP.check_patchable(HookedTransformer(cfg), (0, 0), (1, 0))


def test_path_shares():
    changes = {"key": np.array([3.0, 3.0]), "query": np.array([-1.0, -1.0]), "value": np.zeros(2)}
    shares = PP.path_shares(changes, n_boot=50)
    assert shares["key"][0] == pytest.approx(0.75) and shares["query"][0] == pytest.approx(0.25)
    assert shares["key"][1] == pytest.approx((0.75, 0.75))
    assert np.isnan(PP.path_shares({p: np.zeros(3) for p in PP.PATHS}, n_boot=10)["key"][0])


@pytest.mark.parametrize("arch", [
    dict(normalization_type="LN", positional_embedding_type="standard"),  # GPT-2 style
    dict(normalization_type="LN", positional_embedding_type="rotary", rotary_dim=8,
         parallel_attn_mlp=True),  # GPT-NeoX (Pythia) style
])
def test_runs_on_models_with_layernorm_and_mlps(arch):
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=24,
                                  d_vocab=30, act_fn="gelu", seed=0, **arch)
    model = HookedTransformer(cfg).eval()
    clean = distinct_repeated_tokens(30, SEQ_LEN, 4, seed=0)
    corrupted = PP.shuffle_first_repeat(clean, SEQ_LEN, seed=1)
    same = PP.path_patching(model, clean, clean, SEQ_LEN, (0, 0), (1, 1))
    assert all(same.loss_change(p).abs().max() < 1e-5 for p in same.paths)
    res = PP.path_patching(model, clean, corrupted, SEQ_LEN, (0, 0), (1, 1))
    assert all(torch.isfinite(res.loss_change(p)).all() for p in res.paths)
    assert res.loss_change("key").abs().max() > 0  # the patch reaches the receiver
    assert res.induction_change("value").abs().max() < 1e-6
