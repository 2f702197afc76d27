"""Head scores, losses and detectors against hand-computed and brute-force references."""

import pytest
import torch
from transformer_lens.head_detector import detect_head

from induction_heads import scores as S
from induction_heads.planted import distinct_repeated_tokens

from .conftest import noisy_model


def random_patterns(n_layers=2, batch=3, n_heads=2, n_pos=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    raw = torch.rand(n_layers, batch, n_heads, n_pos, n_pos, generator=gen).tril()
    return raw / raw.sum(-1, keepdim=True)


def brute_force_scores(p, seq_len):
    """One loop per definition of docs/methods/head_scores.md, written out position by position."""
    L, B, H, n, _ = p.shape
    out = {k: torch.zeros(L, H) for k in S.SCORE_NAMES}
    for l in range(L):
        for h in range(H):
            cur = [p[l, b, h, i, i] for b in range(B) for i in range(1, n)]
            prev = [p[l, b, h, i, i - 1] for b in range(B) for i in range(1, n)]
            first = [p[l, b, h, i, 0] for b in range(B) for i in range(1, n)]
            second = range(seq_len + 1, 2 * seq_len + 1)
            dup = [p[l, b, h, i, i - seq_len] for b in range(B) for i in second]
            ind = [p[l, b, h, i, i - seq_len + 1] for b in range(B) for i in second]
            for name, vals in zip(S.SCORE_NAMES, (cur, prev, first, dup, ind)):
                out[name][l, h] = sum(vals) / len(vals)
    return out


def test_head_scores_match_brute_force():
    p = random_patterns(n_pos=9)
    got = S.head_scores(p, seq_len=4)
    want = brute_force_scores(p, seq_len=4)
    for name in S.SCORE_NAMES:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6)


def test_head_scores_on_hand_made_patterns():
    """seq_len 3: positions BOS a b c a b c. Head 0 always looks one back (a previous-token
    head); head 1 looks at itself in the first repeat and seq_len - 1 = 2 back in the second
    (an induction head)."""
    n = 7
    prev = torch.zeros(n, n)
    prev[0, 0] = 1
    for i in range(1, n):
        prev[i, i - 1] = 1
    ind = torch.eye(n)
    for i in (4, 5, 6):
        ind[i] = torch.nn.functional.one_hot(torch.tensor(i - 2), n).float()
    p = torch.stack([prev, ind])[None, None]  # [layer=1, batch=1, head=2, q, k]
    s = S.head_scores(p, seq_len=3)
    assert s["previous_token"].tolist() == [[1.0, 0.0]]
    assert s["induction"].tolist() == [[0.0, 1.0]]
    assert s["current_token"].tolist() == [[0.0, 0.5]]  # head 1: queries 1-3 of 1-6
    assert s["duplicate_token"].tolist() == [[0.0, 0.0]]
    assert s["first_token"][0].tolist() == pytest.approx([1 / 6, 0.0])  # head 0: query 1 looks at BOS


def test_head_scores_reject_wrong_length():
    with pytest.raises(ValueError, match="BOS"):
        S.head_scores(random_patterns(n_pos=8), seq_len=4)


def test_planted_model_scores_are_known_by_construction(planted):
    model, circuit = planted
    tokens = distinct_repeated_tokens(model.cfg.d_vocab, seq_len=20, batch=8)
    scores = S.head_scores(S.attention_patterns(model, tokens), 20)
    assert scores["previous_token"][circuit.prev_token_head] > 0.999
    assert scores["induction"][circuit.induction_head] > 0.999
    assert S.best_head(scores["induction"]) == ("1.0", pytest.approx(1.0, abs=1e-3))
    assert S.detect_heads(scores["previous_token"], 0.5) == ["0.0"]
    assert S.detect_heads(scores["induction"], 0.5) == ["1.0"]
    # decoy heads attend almost uniformly: far from every threshold
    assert scores["induction"][0, 1] < 0.2 and scores["induction"][1, 1] < 0.2


def test_planted_model_copies_in_context(planted):
    model, _ = planted
    tokens = distinct_repeated_tokens(model.cfg.d_vocab, seq_len=20, batch=8)
    first, second = S.repeat_losses(S.per_token_loss(model, tokens), 20)
    assert second.max() < 1e-3  # the planted induction head predicts every second-repeat token
    assert first.min() > 1.0


def test_cached_patterns_equal_recomputation(tiny_model):
    tokens = torch.randint(0, 40, (2, 17))
    torch.testing.assert_close(
        S.attention_patterns(tiny_model, tokens), S.patterns_from_qk(tiny_model, tokens)
    )


def test_per_token_loss_matches_transformer_lens(tiny_model):
    tokens = torch.randint(0, 40, (5, 12))
    ours = S.per_token_loss(tiny_model, tokens, batch_size=2)
    theirs = tiny_model(tokens, return_type="loss", loss_per_token=True)
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-5)


def test_patterns_and_loss_of_one_pass_equal_transformer_lens(tiny_model):
    tokens = torch.randint(0, 40, (3, 15))
    patterns, loss = S.patterns_and_loss(tiny_model, tokens)
    torch.testing.assert_close(patterns, S.patterns_from_qk(tiny_model, tokens))
    theirs = tiny_model(tokens, return_type="loss", loss_per_token=True)
    torch.testing.assert_close(loss, theirs.detach(), rtol=1e-5, atol=1e-5)


def test_repeat_losses_pick_the_right_predictions():
    seq_len = 3
    loss = torch.arange(6.0)[None]  # loss[:, i] predicts token i + 1
    first, second = S.repeat_losses(loss, seq_len)
    # first repeat: tokens 2, 3 (loss[1], loss[2]); second: tokens 5, 6 (loss[4], loss[5])
    assert first.item() == pytest.approx(1.5) and second.item() == pytest.approx(4.5)


def test_detectors_order_and_threshold():
    scores = torch.tensor([[0.1, 0.7], [0.9, 0.65]])
    assert S.detect_heads(scores, 0.6) == ["1.0", "0.1", "1.1"]
    assert S.detect_heads(scores, 0.95) == []
    assert S.best_head(scores, layers=[0]) == ("0.1", pytest.approx(0.7))


@pytest.mark.parametrize("kind", ["previous_token_head", "induction_head"])
def test_scores_agree_with_transformer_lens_head_detector(kind):
    """TransformerLens's detect_head ("mul") divides by every query row, ours by the valid ones:
    on BOS + r + r (distinct tokens) theirs = ours × (#valid queries / #queries)."""
    model = noisy_model(2, seed=3, weight_std=0.16, bias_std=0.1, d_model=24, d_head=8, n_ctx=64, d_vocab=40)
    seq_len = 12
    tokens = distinct_repeated_tokens(40, seq_len, batch=1, seed=1)
    ours = S.head_scores(S.attention_patterns(model, tokens), seq_len)
    model.to_tokens = lambda seq, **_: seq[None]  # our models have no TL tokenizer; pass ids through
    theirs = detect_head(model, tokens[0], kind)
    n = tokens.shape[1]
    if kind == "previous_token_head":
        expected = ours["previous_token"] * (n - 1) / n
    else:
        expected = ours["induction"] * seq_len / n
    torch.testing.assert_close(theirs, expected, rtol=1e-4, atol=1e-5)


def test_head_summary_searches_induction_heads_in_later_layers_and_adds_aliases():
    scores = {name: torch.zeros(2, 2) for name in S.SCORE_NAMES}
    scores["induction"] = torch.tensor([[0.9, 0.0], [0.6, 0.2]])  # layer 0 can't be an induction head
    scores["previous_token"] = torch.tensor([[0.8, 0.1], [0.0, 0.0]])
    rows = {name: value for name, value, _ in S.head_summary(scores, dict.fromkeys(S.SCORE_NAMES, 0.5))}
    assert rows["best_induction_head"] == "1.0" and rows["induction_heads"] == ["1.0"]
    assert rows["best_prev_token_head"] == rows["best_previous_token_head"] == "0.0"
    assert rows["prev_token_heads"] == ["0.0"] and rows["best_prev_token_score"] == pytest.approx(0.8)
    one_layer = {name: s[:1] for name, s in scores.items()}
    assert {n: v for n, v, _ in S.head_summary(one_layer, dict.fromkeys(S.SCORE_NAMES, 0.5))}[
        "best_induction_head"] == "0.0"


def test_attention_at_offset_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(2, 3, 4, 6, 6, generator=g)  # [layer batch head q k]
    got = S.attention_at_offset(patterns, 2)
    for layer in range(2):
        for head in range(4):
            values = [patterns[layer, b, head, q, q - 2] for b in range(3) for q in range(2, 6)]
            assert torch.isclose(got[layer, head], torch.stack(values).mean())


def test_published_heads_are_found_by_the_threshold_and_a_missing_head_is_an_error():
    scores = {"induction": torch.tensor([[0.0, 0.1], [0.5, 0.39]]), "previous_token": torch.tensor([[0.9, 0.2], [0.0, 0.0]])}
    thresholds = {"induction": 0.4, "previous_token": 0.4}
    published = {"induction": ["1.0", "1.1"], "previous_token": ["0.1"], "source": "a paper"}
    rows, metrics = S.published_head_rows(published, scores, thresholds)
    assert rows == [["1.0", "induction", 0.5, 0.4, "yes"], ["1.1", "induction", 0.39, 0.4, "no"],
                    ["0.1", "previous-token", 0.2, 0.4, "no"]]
    values = {name: value for name, value, _ in metrics}
    assert values == {"published_induction_heads_found": ["1.0"], "published_induction_heads_missed": ["1.1"],
                      "published_prev_token_heads_found": [], "published_prev_token_heads_missed": ["0.1"]}
    assert "a paper" in metrics[0][2]
    assert S.published_head_rows({}, scores, thresholds) == ([], [])
    with pytest.raises(ValueError, match="2.0 is not a head of this model"):
        S.published_head_rows({"induction": ["2.0"]}, scores, thresholds)
