"""attribution.py against independent references: TransformerLens's own logits, per-head outputs
from ``hook_result`` (``use_attn_result=True``), and the planted model whose answer is known."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformer

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


def test_share_needs_heads_and_models_must_be_attention_only():
    model = noisy_model(1)
    attr = attribution.logit_attribution(model, random_tokens(30, 1, 5))
    with pytest.raises(ValueError, match="at least one head"):
        attr.share([], torch.arange(2))
    assert attr.top_head(torch.arange(4)) in {"0.0", "0.1", "0.2"}
    cfg = attn_only_config(n_layers=1, d_model=8, n_heads=2, d_head=4, n_ctx=8, d_vocab=10)
    cfg.positional_embedding_type = "standard"
    with pytest.raises(ValueError, match="shortformer"):
        attribution.logit_attribution(HookedTransformer(cfg), random_tokens(10, 1, 5))
