"""In-context learning on natural text: held-out windows, the clustered bootstrap, the ICL score,
loss by position and the loss-bump rule (src/induction_heads/icl.py)."""

import numpy as np
import pytest
import torch

from induction_heads import icl
from induction_heads import scores as S
from induction_heads.datasets import document_windows, stream_windows
from induction_heads.metrics import bootstrap_ci
from induction_heads.planted import planted_induction_model
from tests.conftest import noisy_model

# --------------------------------------------------------------------------- held-out windows


def test_document_windows_stay_inside_one_document():
    docs = [np.arange(100, 100 + n) for n in (25, 9, 40, 10)]  # window body: 9 tokens
    w = document_windows(docs, n_ctx=10, bos=0, seed=1)
    # 25 // 9 + 9 // 9 + 40 // 9 + 10 // 9 = 2 + 1 + 4 + 1 windows, BOS first.
    assert len(w.tokens) == 8 and (w.tokens[:, 0] == 0).all()
    for row, d, off in zip(w.tokens, w.doc, w.offset):
        assert row[1:].tolist() == docs[d][off : off + 9].tolist()
    assert sorted(zip(w.doc.tolist(), w.offset.tolist())) == [
        (0, 0), (0, 9), (1, 0), (2, 0), (2, 9), (2, 18), (2, 27), (3, 0)]  # fmt: skip
    assert w.doc.tolist() != sorted(w.doc.tolist())  # shuffled: a prefix is a random sample
    first3 = document_windows(docs, n_ctx=10, bos=0, n_seq=3, seed=1)
    assert torch.equal(first3.tokens, w.tokens[:3])
    with pytest.raises(ValueError, match="hold out more text"):
        document_windows(docs, n_ctx=10, bos=0, n_seq=9)


def test_stream_windows_straddle_documents_and_name_the_first_tokens_document():
    docs = [np.arange(100, 105), np.arange(200, 207), np.arange(300, 306)]  # 18 tokens: 4 slots of 4
    w = stream_windows(docs, n_ctx=5, bos=0, n_seq=9, seed=0)  # asks for more than fit: all 4
    stream = np.concatenate(docs)
    assert w.offset.tolist() == [0, 4, 8, 12] and w.doc.tolist() == [0, 0, 1, 2]
    assert (w.tokens[:, 0] == 0).all()
    for row, off in zip(w.tokens, w.offset):
        assert row[1:].tolist() == stream[off : off + 4].tolist()
    assert w.tokens[1, 1:].tolist() == [104, 200, 201, 202]  # straddles documents 0 and 1


# --------------------------------------------------------------------------- clustered bootstrap


def _clustered_sample(rng, n_clusters=30, sd_cluster=1.0, sd_within=1.0):
    sizes = rng.integers(2, 20, n_clusters)
    effect = rng.normal(0.0, sd_cluster, n_clusters)
    doc = np.repeat(np.arange(n_clusters), sizes)
    return effect[doc] + rng.normal(0.0, sd_within, len(doc)), doc


def test_cluster_bootstrap_covers_the_true_mean_at_the_stated_rate():
    """Synthetic data with document effects (true mean 0): the 95 % clustered interval covers 0
    in about 95 % of 600 replications, while the naive interval (windows as independent) does not."""
    rng = np.random.default_rng(0)
    clustered = naive = 0
    n_rep = 600
    for rep in range(n_rep):
        x, doc = _clustered_sample(rng)
        lo, hi = icl.cluster_bootstrap_ci(x, doc, n_boot=400, seed=rep)
        clustered += lo <= 0 <= hi
        lo, hi = bootstrap_ci(x, n_boot=400, seed=rep)
        naive += lo <= 0 <= hi
    assert 0.92 <= clustered / n_rep <= 0.98, clustered / n_rep
    assert naive / n_rep < 0.8, naive / n_rep


def test_cluster_bootstrap_with_singleton_clusters_is_the_plain_bootstrap():
    x = np.random.default_rng(1).exponential(size=200)
    lo, hi = icl.cluster_bootstrap_ci(x, np.arange(200), n_boot=4000, seed=0)
    ref_lo, ref_hi = bootstrap_ci(x, n_boot=4000, seed=0)
    assert lo == pytest.approx(ref_lo, abs=0.02) and hi == pytest.approx(ref_hi, abs=0.02)


def test_cluster_bootstrap_replicates_are_pooled_means_of_drawn_clusters():
    """Every replicate is the mean over the windows of some multiset of whole clusters: with two
    clusters of known sizes and means, only the three possible draws can come out."""
    x = np.array([1.0, 1.0, 1.0, 4.0])  # cluster 0: three windows of 1; cluster 1: one of 4
    reps = icl.cluster_bootstrap(x, np.array([0, 0, 0, 1]), n_boot=200, seed=0)
    assert set(np.round(reps, 6)) <= {1.0, 4.0, round(7 / 4, 6)}
    two_col = icl.cluster_bootstrap(np.stack([x, 2 * x], 1), np.array([0, 0, 0, 1]), n_boot=50, seed=0)
    np.testing.assert_allclose(two_col[:, 1], 2 * two_col[:, 0])  # columns share the draws


# --------------------------------------------------------------------------- ICL score and curve


def test_icl_windows_scale_with_the_context():
    w = icl.IclWindows.scaled(128)
    assert (w.early, w.late) == ((8, 16), (96, 128))
    assert w.label == "tokens 96-127 minus tokens 8-15"
    assert icl.IclWindows.scaled(256).late == (192, 256)
    with pytest.raises(ValueError, match="early"):
        icl.IclWindows.scaled(128, early=(0.5, 0.9), late=(0.75, 1.0))
    bad = icl.IclWindows.unchecked(128, (0.5, 0.9), (0.75, 1.0))  # what the plan-time check reports
    assert (bad.early, bad.late) == ((64, 115), (96, 128))
    assert icl.IclWindows.from_dict(w.as_dict()) == w


def test_icl_score_and_position_curve_by_hand():
    # loss[:, t - 1] is token t's loss; tokens 1-2 early, 3-4 late.
    loss = torch.tensor([[4.0, 2.0, 1.0, 1.0], [6.0, 6.0, 3.0, 5.0], [2.0, 2.0, 2.0, 2.0]])
    windows = icl.IclWindows((1, 3), (3, 5))
    np.testing.assert_allclose(icl.per_window_icl(loss, windows), [1.0 - 3.0, 4.0 - 6.0, 0.0])
    est = icl.icl_score(loss, np.array([0, 0, 1]), windows, n_boot=200)
    assert est.value == pytest.approx(-4 / 3) and (est.n, est.n_clusters) == (3, 2)
    assert est.ci[0] <= est.value <= est.ci[1]
    curve = icl.loss_by_position(loss, np.array([0, 1, 2]), bin_width=2, n_boot=200)
    assert curve.start.tolist() == [1, 3] and curve.stop.tolist() == [3, 5]
    np.testing.assert_allclose(curve.mean, [(3 + 6 + 2) / 3, (1 + 4 + 2) / 3])
    assert (curve.lo <= curve.mean).all() and (curve.mean <= curve.hi).all()


def _markov_documents(rng, n_docs, length, d_vocab):
    """Documents of iid tokens, each from its own token distribution: position carries no
    information, and documents differ (so the clusters matter)."""
    docs = []
    for _ in range(n_docs):
        p = rng.dirichlet(np.full(d_vocab - 1, 0.5))
        docs.append(1 + rng.choice(d_vocab - 1, size=length, p=p))
    return docs


def test_icl_score_of_a_model_that_ignores_its_context_is_zero_within_its_interval():
    """Zero every attention output: the logits depend on the current token only, so the loss at
    a late position is distributed as at an early one and the score's interval holds 0. The
    planted induction model on the same windows made to repeat does use its context (control)."""
    model = noisy_model(2, seed=0, n_ctx=64, d_vocab=30)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_O.zero_()
            block.attn.b_O.zero_()
    rng = np.random.default_rng(0)
    held = document_windows(_markov_documents(rng, 40, 4 * 63, 30), n_ctx=64, bos=0)
    windows = icl.IclWindows.scaled(64)
    est = icl.icl_score(S.per_token_loss(model, held.tokens), held.doc, windows, n_boot=1000)
    assert est.ci[0] <= 0.0 <= est.ci[1], est
    assert abs(est.value) < 0.1

    planted, _ = planted_induction_model(d_vocab=32, n_ctx=64)
    period = held.tokens[:, 1:17]  # each window: 16 tokens repeated (after BOS)
    repeating = torch.cat([held.tokens[:, :1], period.repeat(1, 4)[:, :63]], dim=1)
    est = icl.icl_score(S.per_token_loss(planted, repeating), held.doc, windows, n_boot=1000)
    assert est.ci[1] < -1.0, est


def test_induction_targets_by_hand():
    #            BOS  a  b  c  a  b  a  c
    tokens = torch.tensor([[0, 1, 2, 3, 1, 2, 1, 3]])
    matched, copyable = icl.induction_targets(tokens)
    # column i predicts token i + 1 from token i: a (col 4) was seen at 1, followed by b = next: copyable;
    # b (col 5) seen at 2, followed by c, but next is a: matched only; a (col 6): last seen at 4,
    # followed by b, next is c: matched only.
    assert matched[0].tolist() == [False, False, False, False, True, True, True]
    assert copyable[0].tolist() == [False, False, False, False, True, False, False]


# --------------------------------------------------------------------------- the loss bump

STEPS = np.array([250, 500, 750, 1000, *range(1100, 2501, 100)])
TOKENS = STEPS * 1016.0
SIGMA = 0.004  # noise of each checkpoint's loss


def _replicates(rng, n=2000):
    return rng.normal(0.0, SIGMA, (n, len(STEPS)))


def _power_law(tokens):
    return 3.0 + 40.0 * tokens**-0.3


@pytest.mark.parametrize("centre", [1400, 1900])
def test_loss_bump_finds_a_planted_bump_at_its_step(centre):
    rng = np.random.default_rng(0)
    x, x0 = np.log10(TOKENS), np.log10(centre * 1016.0)
    loss = _power_law(TOKENS) + 0.05 * np.exp(-0.5 * ((x - x0) / 0.03) ** 2) + rng.normal(0, SIGMA, len(x))
    bump = icl.loss_bump(STEPS, TOKENS, loss, loss + _replicates(rng))
    assert bump is not None
    assert bump.step == centre  # the checkpoint at the bump's peak
    assert bump.start < centre < bump.end and bump.z > bump.bound


@pytest.mark.parametrize("kind", ["power_law", "straight_line"])
def test_loss_bump_finds_nothing_in_a_smooth_curve(kind):
    """Without noise: never. With noise of the stated size: at most at the rule's stated
    false-alarm rate (alpha = 0.05) over 100 curves."""
    smooth = _power_law(TOKENS) if kind == "power_law" else 7.0 - 0.8 * np.log10(TOKENS)
    rng = np.random.default_rng(0)
    assert icl.loss_bump(STEPS, TOKENS, smooth, smooth + _replicates(rng)) is None
    alarms = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        loss = smooth + rng.normal(0, SIGMA, len(STEPS))
        alarms += icl.loss_bump(STEPS, TOKENS, loss, loss + _replicates(rng, 500), alpha=0.05) is not None
    assert alarms <= 6, alarms


def test_loss_bump_finds_a_sudden_steepening():
    """A phase change: the loss falls faster for a while (a drop of 0.08 nats around step 1600)."""
    rng = np.random.default_rng(3)
    drop = 0.08 / (1 + np.exp(-(STEPS - 1600) / 60.0))
    loss = _power_law(TOKENS) - drop + rng.normal(0, SIGMA, len(STEPS))
    bump = icl.loss_bump(STEPS, TOKENS, loss, loss + _replicates(rng))
    assert bump is not None and bump.start <= 1600 <= bump.end


def test_loss_by_prediction_kind_on_a_hand_made_window():
    # BOS 5 6 5 6 5 7: predicting from tokens 1, 2 (first occurrences), 3 and 4 (copying the token
    # after the earlier occurrence is right), 5 (5 was followed by 6 before; the next token is 7).
    tokens = torch.tensor([[0, 5, 6, 5, 6, 5, 7]])
    loss = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])  # loss column i predicts token i + 1
    got = icl.loss_by_prediction_kind(loss, tokens, icl.IclWindows((1, 3), (3, 7)))
    assert got["early_copyable_share"] == 0.0 and got["early_loss_unmatched"] == 1.5
    assert np.isnan(got["early_loss_copyable"]) and np.isnan(got["early_loss_misleading"])
    assert got["late_copyable_share"] == 0.5
    assert (got["late_loss_copyable"], got["late_loss_misleading"], got["late_loss_unmatched"]) == (4.5, 6.0, 3.0)
