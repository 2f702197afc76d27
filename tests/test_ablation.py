"""ablation.py: the fast path against the hooked reference, the reference against edited weights
(an implementation that uses no hooks at all), and the planted model whose circuit is known."""

from __future__ import annotations

import copy

import pytest
import torch
from transformer_lens import HookedTransformer

from induction_heads import ablation, attribution, scores
from induction_heads.architecture import attn_only_config
from induction_heads.planted import distinct_repeated_tokens, planted_induction_model

from .conftest import noisy_model as conftest_noisy_model

torch.set_num_threads(1)


def noisy_model(n_layers: int, seed: int = 0, **overrides) -> HookedTransformer:
    """A small seeded attention-only model with every parameter (biases too) random."""
    return conftest_noisy_model(n_layers, seed, weight_std=0.4, init_seed=seed + 100, **overrides)


def repeated(d_vocab: int, seq_len: int, batch: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=gen)
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), r, r], dim=1)


def edited_weights_losses(model, tokens, positions, layer, head, replacement):
    """Independent reference: ablate by editing weights — W_O of the head set to 0 and its
    replacement's output ``replacement @ W_O`` folded into the layer's b_O — then a plain forward."""
    edited = copy.deepcopy(model)
    with torch.no_grad():
        attn = edited.blocks[layer].attn
        attn.b_O += replacement @ attn.W_O[head]
        attn.W_O[head] = 0.0
    logits = edited(tokens)
    lp = logits[:, positions].log_softmax(-1)
    return -lp.gather(-1, tokens[:, positions + 1, None])[..., 0]


# ---------------------------------------------------------------- fast == reference


@pytest.mark.parametrize("n_layers", [2, 3])
@pytest.mark.parametrize("kind", ablation.KINDS)
@pytest.mark.parametrize("scored", ["second_repeat", "all", "one"])
def test_fast_matches_reference(n_layers, kind, scored):
    model = noisy_model(n_layers, seed=n_layers)
    seq_len = 8
    tokens = repeated(30, seq_len, batch=3)
    positions = {
        "second_repeat": attribution.repeat_positions(seq_len)[1],
        "all": ablation.all_positions(tokens.shape[1]),
        "one": torch.tensor([12]),  # few rows: the last layer takes the unembedding path
    }[scored]
    ref = ablation.ablation_losses_reference(model, tokens, positions, kind)
    fast = ablation.ablation_losses_fast(model, tokens, positions, kind)
    assert fast.ablated.shape == (n_layers, 3, 3, len(positions))
    assert (fast.ablated - ref.ablated).abs().max() < 1e-4
    assert (fast.clean - ref.clean).abs().max() < 1e-4
    assert (fast.increase() - ref.increase()).abs().max() < 1e-4
    assert ref.increase().abs().max() > 1e-3  # the heads matter: the comparison is not vacuous


def test_both_unembedding_paths_are_exercised():
    cfg = noisy_model(2).cfg
    assert ablation._use_low_rank(cfg, rows=3 * 7)
    assert not ablation._use_low_rank(cfg, rows=3 * 1)


@pytest.mark.parametrize("kind", ablation.KINDS)
def test_reference_matches_edited_weights(kind):
    model = noisy_model(2, seed=7)
    tokens = repeated(30, 6, batch=2, seed=3)
    positions = ablation.all_positions(tokens.shape[1])
    ref = ablation.ablation_losses_reference(model, tokens, positions, kind)
    _, cache = model.run_with_cache(tokens)
    for layer, head in [(0, 1), (1, 2)]:
        z = cache["z", layer][:, :, head]
        replacement = z.mean(dim=(0, 1)) if kind == "mean" else torch.zeros(z.shape[-1])
        want = edited_weights_losses(model, tokens, positions, layer, head, replacement)
        torch.testing.assert_close(ref.ablated[layer, head], want.detach(), atol=1e-5, rtol=1e-5)


def test_mean_replacement_is_the_mean_over_batch_and_position():
    z = [torch.arange(24.0).view(2, 3, 1, 4), torch.ones(2, 3, 1, 4)]
    repl = ablation.head_replacements(z, "mean")
    torch.testing.assert_close(repl[0, 0], torch.tensor([10.0, 11.0, 12.0, 13.0]))
    torch.testing.assert_close(repl[1, 0], torch.ones(4))
    assert ablation.head_replacements(z, "zero").abs().max() == 0
    with pytest.raises(ValueError, match="ablation kind"):
        ablation.head_replacements(z, "resample")


# ---------------------------------------------------------------- planted circuit


@pytest.fixture(scope="module")
def planted():
    model, circuit = planted_induction_model()
    seq_len = 20
    tokens = distinct_repeated_tokens(model.cfg.d_vocab, seq_len, batch=6)
    return model, circuit, tokens, seq_len


@pytest.mark.parametrize("kind", ablation.KINDS)
def test_planted_ablation_removes_induction(planted, kind):
    model, circuit, tokens, seq_len = planted
    _, second = attribution.repeat_positions(seq_len)
    chance = torch.log(torch.tensor(float(model.cfg.d_vocab)))
    table = ablation.ablation_losses_fast(model, tokens, second, kind)
    clean = float(table.clean.mean())
    assert clean < 0.05  # the planted circuit predicts the second repeat
    ablated = table.ablated.mean(dim=(-2, -1))
    for layer, head in (circuit.prev_token_head, circuit.induction_head):
        # Without either head nothing predicts the second repeat: loss at chance, ln(d_vocab).
        # (The first repeat's own loss is *above* chance here: with no match, the planted
        # induction head copies earlier tokens confidently and wrongly.)
        assert ablated[layer, head] == pytest.approx(float(chance), abs=0.3)
    increase = table.increase()
    for layer, head in [(0, 1), (1, 1)]:  # decoys
        assert abs(float(increase[layer, head])) < 0.05
    assert set(ablation.ranked_heads(increase)[:2]) == {"0.0", "1.0"}


def test_planted_induction_score_after_ablating_the_previous_token_head(planted):
    model, _, tokens, seq_len = planted
    before = scores.induction_scores(model, tokens, seq_len)
    after = ablation.induction_scores_after_ablation(model, tokens, seq_len, "0.0", "zero")
    assert before[1, 0] > 0.9
    assert after[1, 0] < 0.1
    decoy = ablation.induction_scores_after_ablation(model, tokens, seq_len, "0.1", "zero")
    assert decoy[1, 0] > 0.9


def test_planted_circuit_only_loss(planted):
    model, _, tokens, seq_len = planted
    _, second = attribution.repeat_positions(seq_len)
    kept = ablation.circuit_only_loss(model, tokens, second, ["0.0", "1.0"], "mean")
    assert float(kept.mean()) < 0.05  # the circuit alone does the task
    broken = ablation.circuit_only_loss(model, tokens, second, ["0.0", "1.1"], "mean")
    assert float(broken.mean()) > 2.0
    with pytest.raises(ValueError, match="not in a 2-layer"):
        ablation.circuit_only_loss(model, tokens, second, ["2.0"], "zero")


# ---------------------------------------------------------------- small helpers


def test_ranked_heads_largest_first():
    increase = torch.tensor([[0.1, 2.0, -1.0], [0.5, 0.0, 3.0]])
    assert ablation.ranked_heads(increase) == ["1.2", "0.1", "1.0", "0.0", "1.1", "0.2"]


def test_positions_out_of_range_are_refused():
    model = noisy_model(2)
    tokens = repeated(30, 4, batch=1)
    with pytest.raises(ValueError, match="scored positions"):
        ablation.ablation_losses_fast(model, tokens, torch.tensor([tokens.shape[1] - 1]), "zero")


def test_flop_counts_by_hand():
    # 1 layer, d_model 2, 1 head of d_head 1, d_vocab 3; batch 1, 2 positions, 1 scored.
    cfg = attn_only_config(n_layers=1, d_model=2, n_heads=1, d_head=1, n_ctx=4, d_vocab=3)
    # attention layer: Q,K,V,O 4·2·(1·2)·2·1 = 32; scores and pattern·V 2·2·1·1·2·2·1 = 16 → 48.
    assert ablation.attention_layer_flops(cfg, batch=1, n_pos=2) == 48
    # reference: (clean + 1 head) × (48 + unembedding 2·2·2·3 = 24) = 144.
    # fast: clean 48 + 2·1·2·3 = 12 → 60; the head (1 row: the full unembedding is cheaper than
    # the rank-1 update) adds Δresid 2·2·1·2 = 8 and 12 → 20; total 80.
    assert ablation.ablation_flops(cfg, batch=1, n_pos=2, n_scored=1) == {"reference": 144, "fast": 80}
    # d_model 4, 3 positions, 2 scored: rank-1 update wins (1·4 + 2·1 < 2·4).
    cfg = attn_only_config(n_layers=1, d_model=4, n_heads=1, d_head=1, n_ctx=4, d_vocab=3)
    # layer: 4·2·3·4·1 = 96 + 2·2·1·3·3·1 = 36 → 132; reference 2·(132 + 2·3·4·3 = 72) = 408;
    # fast: 132 + 2·2·4·3 = 48 → 180, plus W_O W_U 2·1·4·3 = 24 and update 2·2·1·3 = 12 → 216.
    assert ablation.ablation_flops(cfg, batch=1, n_pos=3, n_scored=2) == {"reference": 408, "fast": 216}
