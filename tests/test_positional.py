"""The positional-embedding ablation, next-token accuracy and the per-token loss's batching,
against models whose answer is known by construction and TransformerLens's own forward pass."""

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from induction_heads import positional as P
from induction_heads import scores as S
from induction_heads.planted import distinct_repeated_tokens

SEQ_LEN = 12


@pytest.fixture(scope="module")
def rep_tokens(planted):
    model, _ = planted
    return distinct_repeated_tokens(model.cfg.d_vocab, SEQ_LEN, batch=8, seed=1)


def test_uniform_head_scores_the_mean_inverse_key_count():
    """Query ``i`` of a uniform head gives ``1 / (i + 1)`` to each key; the induction score
    averages it over the second repeat's queries ``seq_len + 1 … 2·seq_len``."""
    for seq_len in (3, 12, 50):
        expected = np.mean([1 / (i + 1) for i in range(seq_len + 1, 2 * seq_len + 1)])
        assert P.uniform_induction_score(seq_len) == pytest.approx(expected, rel=1e-6)


def content_only_induction_score(seq_len: int, sharpness: float) -> float:
    """The planted induction head 1.0's score once 0.0 attends uniformly, by hand: key ``j``'s
    previous-token subspace holds the mean one-hot of tokens ``0 … j``, so a query whose token
    first occurred at ``i − seq_len`` scores ``sharpness · n_j / (j + 1)`` on key ``j``, with
    ``n_j`` its occurrences among tokens ``0 … j`` (0, then 1, then 2 at ``j = i``)."""
    out = []
    for i in range(seq_len + 1, 2 * seq_len + 1):
        j = np.arange(i + 1)
        n_j = (j >= i - seq_len).astype(float) + (j == i)
        logits = sharpness * n_j / (j + 1)
        out.append(np.exp(logits[i - seq_len + 1]) / np.exp(logits).sum())
    return float(np.mean(out))


def test_planted_positional_prev_token_head_becomes_uniform_and_induction_falls_to_chance(planted, rep_tokens):
    """The planted previous-token head 0.0 finds the previous token through W_pos alone: without
    it every query-key score is 0, so it attends uniformly (its previous-token score is exactly
    the uniform one), and the induction head 1.0 built on it keeps only the weak content signal
    computed by hand: from 1.0 to about twice a uniform head's score."""
    model, circuit = planted
    before = S.head_scores(S.attention_patterns(model, rep_tokens), SEQ_LEN)
    after = P.scores_without_positions(model, rep_tokens, SEQ_LEN)
    (pl, ph), (il, ih) = circuit.prev_token_head, circuit.induction_head
    uniform_prev = np.mean([1 / (i + 1) for i in range(1, 1 + 2 * SEQ_LEN)])
    assert before["previous_token"][pl, ph] > 0.99
    assert float(after["previous_token"][pl, ph]) == pytest.approx(uniform_prev, abs=1e-5)
    assert before["induction"][il, ih] > 0.99
    expected = content_only_induction_score(SEQ_LEN, sharpness=40.0)  # planted_induction_model's default
    assert float(after["induction"][il, ih]) == pytest.approx(expected, abs=0.01)
    assert expected < 3 * P.uniform_induction_score(SEQ_LEN)


def random_model(positional_embedding_type: str) -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=24, d_vocab=30, attn_only=True,
                                  positional_embedding_type=positional_embedding_type, device="cpu", seed=0)  # fmt: skip
    model = HookedTransformer(cfg)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():  # large random weights: positions visibly change every pattern
            p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
    return model.eval()


def test_zero_ablating_the_hook_equals_a_model_whose_w_pos_is_zero():
    """The hook-based ablation against the same model rebuilt with ``W_pos = 0``, for an additive
    (standard) and a shortformer embedding."""
    tokens = torch.randint(1, 30, (4, 1 + 2 * 5), generator=torch.Generator().manual_seed(0))
    for kind in ("standard", "shortformer"):
        model = random_model(kind)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        state["pos_embed.W_pos"].zero_()
        zeroed = HookedTransformer(model.cfg)
        zeroed.load_state_dict(state)
        reference = S.attention_patterns(zeroed, tokens)
        assert not torch.allclose(reference, S.attention_patterns(model, tokens), atol=1e-3)
        assert torch.allclose(P.patterns_without_positions(model, tokens), reference, atol=1e-6)


def test_rotary_models_have_no_embedding_to_ablate():
    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, n_ctx=12, d_vocab=30, attn_only=True,
                                  positional_embedding_type="rotary", rotary_dim=4, device="cpu", seed=0)  # fmt: skip
    model = HookedTransformer(cfg)
    assert "rotary" in P.no_embedding_reason(model)
    with pytest.raises(ValueError, match="no positional embedding to ablate"):
        P.patterns_without_positions(model, torch.zeros(1, 5, dtype=torch.long))


def test_ablation_rows_give_each_studied_heads_scores_and_drop():
    before = {"induction": torch.tensor([[0.1, 0.2], [0.9, 0.3]]), "previous_token": torch.tensor([[0.8, 0.1], [0, 0]])}
    after = {"induction": torch.tensor([[0.1, 0.2], [0.05, 0.3]]), "previous_token": torch.tensor([[0.1, 0.1], [0, 0]])}
    rows = P.ablation_rows(before, after, {"induction": [(1, 0)], "previous_token": [(0, 0)]})
    assert rows == [["1.0", "induction", 0.9, 0.05, 0.85], ["0.0", "previous-token", 0.8, 0.1, 0.7]]


def test_hits_are_the_top1_guess_and_the_planted_model_copies_the_second_repeat(planted, rep_tokens):
    """Against a slow reference (each position's argmax of TransformerLens's logits), and by
    construction: the planted induction head predicts every second-repeat token it can copy."""
    model, _ = planted
    loss, hits = S.per_token_loss_and_hits(model, rep_tokens, batch_size=3)
    logits = model(rep_tokens)
    slow = torch.tensor([[int(logits[b, i].argmax()) == int(rep_tokens[b, i + 1]) for i in range(rep_tokens.shape[1] - 1)]
                         for b in range(rep_tokens.shape[0])])  # fmt: skip
    assert torch.equal(hits, slow)
    assert torch.allclose(loss, S.per_token_loss(model, rep_tokens), atol=1e-6)
    first, second = S.repeat_losses(hits.float(), SEQ_LEN)
    assert float(second.mean()) == 1.0
    assert float(first.mean()) < 0.5


def test_rows_per_batch_follow_the_logits_size_and_give_the_same_losses(planted, rep_tokens):
    assert S.rows_per_batch(128, 3072) == 64  # the trained models: the cap
    assert S.rows_per_batch(1024, 50257) == 1  # GPT-2 small's whole context: one row at a time
    assert S.rows_per_batch(256, 50257) == 3
    model, _ = planted
    one_at_a_time = S.per_token_loss(model, rep_tokens, batch_size=1)
    assert torch.allclose(S.per_token_loss(model, rep_tokens), one_at_a_time, atol=1e-6)


def test_every_head_rows_pair_each_score_with_and_without():
    before = {"induction": torch.tensor([[0.1, 0.2]]), "previous_token": torch.tensor([[0.8, 0.3]])}
    after = {"induction": torch.tensor([[0.01, 0.02]]), "previous_token": torch.tensor([[0.05, 0.04]])}
    assert P.every_head_rows(before, after) == [["0.0", 0.8, 0.05, 0.1, 0.01], ["0.1", 0.3, 0.04, 0.2, 0.02]]
