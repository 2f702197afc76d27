"""attribution.py against independent references: TransformerLens's own logits, per-head outputs
from ``hook_result`` (``use_attn_result=True``), and the planted model whose answer is known."""

from __future__ import annotations

import copy

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from induction_heads import attribution, scores
from induction_heads.architecture import attn_only_config
from induction_heads.planted import distinct_repeated_tokens, planted_induction_model

from .conftest import noisy_model as conftest_noisy_model

torch.set_num_threads(1)


def noisy_model(n_layers: int, seed: int = 0, **overrides) -> HookedTransformer:
    """A small seeded attention-only model whose every parameter, biases included, is random."""
    return conftest_noisy_model(n_layers, seed, **overrides)


def random_tokens(d_vocab: int, batch: int, n_pos: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, d_vocab, (batch, n_pos), generator=gen)
    tokens[:, 0] = 0
    return tokens


@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("centered", [False, True])
def test_parts_sum_to_the_logit(n_layers, centered):
    model = noisy_model(n_layers, seed=n_layers)
    tokens = random_tokens(30, 3, 17)
    attr = attribution.logit_attribution(model, tokens, centered=centered)
    logits = model(tokens)[:, :-1]
    correct = logits.gather(-1, tokens[:, 1:, None])[..., 0]
    if centered:
        correct = correct - logits.mean(-1)
    # The logits the attribution reports are the model's own (an independent forward pass).
    torch.testing.assert_close(attr.logits, correct.detach(), atol=1e-5, rtol=0)
    assert attr.heads.shape == (3, 16, n_layers, 3)
    assert attr.max_abs_error() < 1e-4
    assert attribution.dla_max_abs_error(model, tokens) < 1e-3


def test_each_head_part_matches_hook_result():
    """Per-head parts against TransformerLens's explicit per-head outputs, unembedded by hand."""
    model = noisy_model(2, seed=5)
    tokens = random_tokens(30, 2, 13, seed=1)
    attr = attribution.logit_attribution(model, tokens)
    model.cfg.use_attn_result = True
    try:
        _, cache = model.run_with_cache(tokens)
    finally:
        model.cfg.use_attn_result = False
    w_u = model.W_U.detach()
    for layer in range(2):
        result = cache["result", layer][:, :-1]  # [batch pos head d_model]
        logit_of_all = result @ w_u  # [batch pos head d_vocab]
        expected = logit_of_all.gather(-1, tokens[:, 1:, None, None].expand(-1, -1, 3, 1))[..., 0]
        torch.testing.assert_close(attr.heads[:, :, layer], expected, atol=1e-5, rtol=1e-5)
    direct = (model.W_E[tokens[:, :-1]] @ w_u).gather(-1, tokens[:, 1:, None])[..., 0]
    torch.testing.assert_close(attr.direct, direct.detach(), atol=1e-5, rtol=1e-5)


def test_the_check_fails_when_a_part_is_wrong():
    model = noisy_model(2)
    attr = attribution.logit_attribution(model, random_tokens(30, 2, 9))
    attr.bias = torch.zeros_like(attr.bias)  # drop a part: the sum no longer matches
    assert attr.max_abs_error() > 1e-2


def test_planted_induction_head_carries_the_second_repeat():
    model, circuit = planted_induction_model()
    seq_len = 20
    tokens = distinct_repeated_tokens(model.cfg.d_vocab, seq_len, batch=6)
    attr = attribution.logit_attribution(model, tokens)
    first, second = attribution.repeat_positions(seq_len)
    label = "{}.{}".format(*circuit.induction_head)
    assert attr.max_abs_error() < 1e-3
    assert attr.share([label], second) > 0.95
    assert attr.top_head(second) == label
    torch.testing.assert_close(attr.carried_by([label, "0.1"]),
                               attr.heads[..., 1, 0] + attr.heads[..., 0, 1])
    means_second, means_first = attr.head_means(second), attr.head_means(first)
    assert means_second[circuit.induction_head] > 15.0  # unembed_scale 20 × attention ≈ 1
    assert abs(float(means_first[circuit.induction_head])) < 1.0  # nothing to copy yet
    # Every other head (decoys, and 0.0 which writes outside what W_U reads) carries ~nothing.
    others = means_second.clone()
    others[circuit.induction_head] = 0.0
    assert others.abs().max() < 0.1


def test_repeat_positions_match_repeat_losses():
    seq_len = 7
    loss = torch.randn(4, 2 * seq_len)
    first, second = attribution.repeat_positions(seq_len)
    want_first, want_second = scores.repeat_losses(loss, seq_len)
    torch.testing.assert_close(loss[:, first].mean(-1), want_first)
    torch.testing.assert_close(loss[:, second].mean(-1), want_second)


def test_share_needs_heads():
    model = noisy_model(1)
    attr = attribution.logit_attribution(model, random_tokens(30, 1, 5))
    with pytest.raises(ValueError, match="at least one head"):
        attr.share([], torch.arange(2))
    assert attr.top_head(torch.arange(4)) in {"0.0", "0.1", "0.2"}


# ---------------------------------------------------------------- models with LayerNorm and MLPs


def randomised(model: HookedTransformer, seed: int) -> HookedTransformer:
    """Every parameter random (biases and LayerNorm weights too), so each term is exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            base = 1.0 if name.endswith(".w") and "ln" in name else 0.0
            param.copy_(base + 0.3 * torch.randn(param.shape, generator=gen))
    return model


def lm_config(**kw) -> HookedTransformerConfig:
    base = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=12, d_vocab=30, act_fn="gelu",
                normalization_type="LN", positional_embedding_type="standard", device="cpu", seed=0)
    return HookedTransformerConfig(**{**base, **kw})


LM_CONFIGS = {
    "gpt2-like, LN unfolded": lm_config(),
    "neox-like, rotary + parallel attention": lm_config(positional_embedding_type="rotary", rotary_dim=4,
                                                         parallel_attn_mlp=True),
    "rms": lm_config(normalization_type="RMS", positional_embedding_type="rotary", rotary_dim=4),
    "ln, attention only": lm_config(attn_only=True, positional_embedding_type="shortformer"),
}


def folded(model: HookedTransformer) -> HookedTransformer:
    """The same model with LayerNorm folded and writing weights centred, as the pipeline loads
    published weights."""
    out = HookedTransformer(copy.deepcopy(model.cfg))  # folding rewrites the config's normalization_type
    # b_V stays in each head's z (TransformerLens's default moves it into b_O: a bias part)
    out.load_and_process_state_dict(model.state_dict(), fold_ln=True, center_writing_weights=True,
                                    center_unembed=False, fold_value_biases=False)  # fmt: skip
    return out


@pytest.mark.parametrize("name", LM_CONFIGS)
def test_parts_match_transformer_lens_own_residual_decomposition(name):
    """Against TransformerLens's own DLA: ``get_full_resid_decomposition`` read by ``logit_attrs``
    on the correct token (which puts each component through the cached final-LayerNorm scale;
    it assumes folded weights). Unfolded, the parts must be the same — folding moves the
    LayerNorm's weight and bias into W_U and b_U, and centring is undone by the LayerNorm — and
    in both the parts sum to the model's own logit."""
    raw = randomised(HookedTransformer(LM_CONFIGS[name]), seed=3)
    if raw.cfg.positional_embedding_type == "shortformer":
        # TransformerLens's folding is not exact for shortformer (nor does the pipeline fold it):
        # compare the model itself, with a final LayerNorm logit_attrs can read (w = 1, b = 0)
        with torch.no_grad():
            raw.ln_final.w.fill_(1.0)
            raw.ln_final.b.zero_()
    model = raw if raw.cfg.positional_embedding_type == "shortformer" else folded(raw)
    tokens = random_tokens(30, 3, 10, seed=1)
    attr, attr_raw = attribution.logit_attribution(model, tokens), attribution.logit_attribution(raw, tokens)
    assert attr.max_abs_error() < 1e-4 and attr_raw.max_abs_error() < 1e-4

    _, cache = model.run_with_cache(tokens)
    stack, labels = cache.get_full_resid_decomposition(expand_neurons=False, return_labels=True)
    predicting = list(range(tokens.shape[1] - 1))  # positions 0 … pos − 2
    reference = cache.logit_attrs(stack[:, :, :-1], tokens=tokens[:, 1:], pos_slice=predicting)  # [component batch pos]
    ref = dict(zip(labels, reference))
    cfg = model.cfg
    close = dict(atol=1e-4, rtol=1e-4)
    for layer in range(cfg.n_layers):
        for head in range(cfg.n_heads):
            torch.testing.assert_close(attr.heads[..., layer, head], ref[f"L{layer}H{head}"], **close)
        if cfg.attn_only:
            assert attr.mlps is None
        else:
            torch.testing.assert_close(attr.mlps[..., layer], ref[f"{layer}_mlp_out"], **close)
    torch.testing.assert_close(attr.direct, ref["embed"], **close)
    if cfg.positional_embedding_type == "standard":
        torch.testing.assert_close(attr.pos, ref["pos_embed"], **close)
    else:
        assert attr.pos is None  # shortformer and rotary positions never enter the residual stream
    for part in ("logits", "direct", "heads", "bias", "pos", "mlps"):
        if getattr(attr, part) is not None:
            torch.testing.assert_close(getattr(attr_raw, part), getattr(attr, part), **close)


def test_the_logit_path_must_be_linear():
    cfg = lm_config(output_logits_soft_cap=30.0)
    with pytest.raises(ValueError, match="soft-capping"):
        attribution.logit_attribution(HookedTransformer(cfg), random_tokens(30, 1, 5))
