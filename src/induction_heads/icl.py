"""In-context learning on natural text: loss by context position, the ICL score, the loss bump.

Definitions (``docs/methods/in_context_learning.md`` states them with the default numbers):

* **Held-out windows** lie inside one document, BOS first (:func:`datasets.document_windows`);
  the loss at token ``t`` (``loss[:, t - 1]``) is the loss of predicting token ``t`` from the
  ``t`` tokens before it.
* **Intervals** are percentile bootstraps *clustered by document*: windows of one document share
  its style and vocabulary, so they are resampled together (:func:`cluster_bootstrap`).
* **ICL score** (Olsson et al.'s convention, late minus early, negative = the model uses its
  context): the mean loss over a late window of tokens minus the mean over an early window, per
  held-out window, averaged (:func:`icl_score`). The windows are fractions of the context
  (:class:`IclWindows`).
* **Loss bump** (:func:`loss_bump`): a smooth learning curve on a log-token axis — a power law, a
  straight line — is convex (its slope never decreases); a bump (a local rise) or a sudden
  steepening (the loss falling faster for a while) makes the slope *decrease* somewhere. The rule
  flags the largest such decrease that is beyond a noise bound taken from the bootstrap of the
  curve itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
from jaxtyping import Float, Int
from torch import Tensor

from .icl_windows import EARLY, LATE, IclWindows  # noqa: F401  (re-exported)

# --------------------------------------------------------------------------------------------
# The clustered bootstrap


def cluster_bootstrap(
    values: Float[np.ndarray, "n *k"], clusters: Int[np.ndarray, "n"], n_boot: int = 2000,
    seed: int = 0,
) -> Float[np.ndarray, "n_boot *k"]:
    """Bootstrap replicates of the mean of ``values`` over its rows, resampling whole clusters.

    Each replicate draws as many clusters as there are, with replacement, and takes the mean over
    every row of the drawn clusters (a cluster drawn twice counts twice): the pooled mean, whose
    plain estimate is ``values.mean(0)``. Columns (``k``) share the resampled clusters, so
    replicates of differences between columns are paired.
    """
    x = np.asarray(values, dtype=np.float64)
    ids = np.asarray(clusters)
    if x.ndim == 0 or len(x) != len(ids) or len(x) == 0:
        raise ValueError(f"cluster_bootstrap: {x.shape[:1]} values for {ids.shape} cluster labels")
    _, inverse = np.unique(ids, return_inverse=True)
    n_clusters = int(inverse.max()) + 1
    flat = x.reshape(len(x), -1)
    sums = np.zeros((n_clusters, flat.shape[1]))
    np.add.at(sums, inverse, flat)
    counts = np.bincount(inverse, minlength=n_clusters).astype(np.float64)
    # How often each cluster is drawn in n_clusters draws with replacement: multinomial counts.
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_boot)
    reps = (weights @ sums) / (weights @ counts)[:, None]
    return reps.reshape((n_boot, *x.shape[1:]))


def percentile_ci(
    replicates: Float[np.ndarray, "n_boot *k"], level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """The ``level`` percentile interval of bootstrap replicates, per column."""
    alpha = (1 - level) / 2
    return np.quantile(replicates, alpha, axis=0), np.quantile(replicates, 1 - alpha, axis=0)


def cluster_bootstrap_ci(
    values: Float[np.ndarray, "n"], clusters: Int[np.ndarray, "n"], n_boot: int = 2000,
    level: float = 0.95, seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values``, resampling whole clusters."""
    lo, hi = percentile_ci(cluster_bootstrap(values, clusters, n_boot, seed), level)
    return float(lo), float(hi)


# --------------------------------------------------------------------------------------------
# Loss by position and the ICL score


@dataclass(frozen=True)
class Estimate:
    value: float
    ci: tuple[float, float]
    n: int  # rows (windows)
    n_clusters: int  # documents

    def as_dict(self) -> dict:
        return {"value": self.value, "ci": list(self.ci), "n": self.n, "n_clusters": self.n_clusters}


def window_mean(loss: Float[Tensor, "n pos_minus_1"], tokens: tuple[int, int]) -> Float[np.ndarray, "n"]:
    """Per-row mean loss over the tokens ``[start, stop)`` (loss columns ``start - 1 … stop - 2``)."""
    start, stop = tokens
    if not 1 <= start < stop <= loss.shape[1] + 1:
        raise ValueError(f"tokens {tokens} are outside the {loss.shape[1]} predicted tokens")
    return np.asarray(loss[:, start - 1 : stop - 1], dtype=np.float64).mean(axis=1)


def per_window_icl(loss: Float[Tensor, "n pos_minus_1"], windows: IclWindows) -> Float[np.ndarray, "n"]:
    """Each held-out window's ICL score: late-window mean loss minus early-window mean loss."""
    return window_mean(loss, windows.late) - window_mean(loss, windows.early)


def icl_score(
    loss: Float[Tensor, "n pos_minus_1"], doc: Int[np.ndarray, "n"], windows: IclWindows,
    n_boot: int = 2000, level: float = 0.95, seed: int = 0,
) -> Estimate:
    """The ICL score (mean over held-out windows) with its document-clustered bootstrap interval."""
    per = per_window_icl(loss, windows)
    return Estimate(float(per.mean()), cluster_bootstrap_ci(per, doc, n_boot, level, seed),
                    len(per), int(len(np.unique(doc))))  # fmt: skip


@dataclass(frozen=True)
class PositionCurve:
    """Mean held-out loss per bin of token positions, with a clustered interval per bin."""

    start: np.ndarray  # first token of each bin
    stop: np.ndarray  # one past its last token
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def as_dict(self, digits: int = 4) -> dict:
        r = lambda a: [round(float(v), digits) for v in a]  # noqa: E731
        return {"start": [int(v) for v in self.start], "stop": [int(v) for v in self.stop],
                "mean": r(self.mean), "lo": r(self.lo), "hi": r(self.hi)}  # fmt: skip


def position_bins(n_tokens: int, width: int) -> list[tuple[int, int]]:
    """Bins ``[start, stop)`` of ``width`` predicted tokens covering tokens ``1 … n_tokens``."""
    if width < 1:
        raise ValueError(f"bin width must be positive, got {width}")
    return [(s, min(s + width, n_tokens + 1)) for s in range(1, n_tokens + 1, width)]


def log_position_bins(n_tokens: int, n_bins: int) -> list[tuple[int, int]]:
    """About ``n_bins`` bins of tokens ``1 … n_tokens``, evenly spaced on a log axis (the first
    bins are single tokens): the heatmap's rows."""
    edges = np.unique(np.round(np.geomspace(1, n_tokens + 1, n_bins + 1)).astype(int))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def loss_by_position(
    loss: Float[Tensor, "n pos_minus_1"], doc: Int[np.ndarray, "n"], bin_width: int = 16,
    bins: Sequence[tuple[int, int]] | None = None, n_boot: int = 2000, level: float = 0.95,
    seed: int = 0,
) -> PositionCurve:
    """Mean loss per bin of token positions (``bin_width`` tokens, or the given ``bins``), with a
    document-clustered percentile interval per bin (the bins share the resampled documents)."""
    bins = list(bins) if bins is not None else position_bins(loss.shape[1], bin_width)
    per = np.stack([window_mean(loss, b) for b in bins], axis=1)  # [n bin]
    lo, hi = percentile_ci(cluster_bootstrap(per, doc, n_boot, seed), level)
    return PositionCurve(np.array([b[0] for b in bins]), np.array([b[1] for b in bins]),
                         per.mean(axis=0), lo, hi)  # fmt: skip


def induction_targets(tokens: Int[Tensor, "n pos"]) -> tuple[np.ndarray, np.ndarray]:
    """Which predictions exact induction could get right, as loss-column masks ``[n, pos - 1]``.

    Column ``i`` predicts token ``i + 1`` from token ``i``. ``matched``: token ``i`` occurred
    earlier in the window (after BOS); ``copyable``: and the token after its most recent earlier
    occurrence is token ``i + 1`` (copying it is right). A diagnostic of where an induction head
    can help on natural text and where copying would mislead.
    """
    rows = np.asarray(tokens)
    matched = np.zeros((rows.shape[0], rows.shape[1] - 1), dtype=bool)
    copyable = np.zeros_like(matched)
    for b, row in enumerate(rows):
        last: dict[int, int] = {}
        for i in range(1, len(row) - 1):
            t = int(row[i])
            if t in last:
                matched[b, i] = True
                copyable[b, i] = row[last[t] + 1] == row[i + 1]
            last[t] = i
    return matched, copyable


def loss_by_prediction_kind(
    loss: Float[Tensor, "n pos_minus_1"], tokens: Int[Tensor, "n pos"], windows: IclWindows
) -> dict[str, float]:
    """In each ICL window (``early``, ``late``), the share of predictions exact induction would get
    right and the mean loss of three kinds of prediction (:func:`induction_targets`):
    ``copyable`` (copying the token after the last earlier occurrence is right), ``misleading``
    (the current token occurred before, but copying would be wrong) and ``unmatched`` (its first
    occurrence). A kind with no prediction in a window has loss NaN."""
    loss = np.asarray(loss, dtype=np.float64)
    matched, copyable = induction_targets(tokens)
    out = {}
    for name, (start, stop) in (("early", windows.early), ("late", windows.late)):
        cols = slice(start - 1, stop - 1)
        L, m, c = loss[:, cols], matched[:, cols], copyable[:, cols]
        out[f"{name}_copyable_share"] = float(c.mean())
        for kind, mask in (("copyable", c), ("misleading", m & ~c), ("unmatched", ~m)):
            out[f"{name}_loss_{kind}"] = float(L[mask].mean()) if mask.any() else float("nan")
    return out


# --------------------------------------------------------------------------------------------
# The loss bump


@dataclass(frozen=True)
class LossBump:
    """A stretch where the curve's slope on the log-token axis falls beyond the noise bound.

    ``start``/``end``: the checkpoints (steps) that open the earlier interval and close the later
    one; ``step``: the checkpoint between them furthest above the straight line (on the log-token
    axis) joining the curve at ``start`` and ``end`` (a bump's top, a steepening's knee); ``z``: the
    fall of the slope in units of its bootstrap standard deviation; ``bound``: the z needed
    (Bonferroni over the pairs of intervals compared).
    """

    step: int
    start: int
    end: int
    slope_before: float  # nats per decade of tokens
    slope_after: float
    z: float
    bound: float

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def label(self) -> str:
        return f"{self.start}-{self.end}"


def loss_bump(
    steps: Sequence[int], tokens: Sequence[float], loss: Sequence[float],
    replicates: Float[np.ndarray, "n_boot n"], alpha: float = 0.05,
) -> LossBump | None:
    """Detect a loss bump: a decrease of the slope on the log-token axis beyond the noise.

    On ``x = log10(tokens)`` (checkpoints with ``tokens > 0``), the slope of interval ``i`` is
    ``s_i = ΔL / Δx``. A power law or a straight line has ``s_i`` non-decreasing in ``i``; for every
    pair of intervals ``i < j`` the fall ``s_i − s_j`` is compared with its standard deviation over
    ``replicates`` (bootstrap replicates of the whole curve, so the noise of neighbouring points
    and their correlation are accounted for). The bump is the pair with the largest standardised
    fall, if that exceeds ``Φ⁻¹(1 − alpha / n_pairs)``; ``None`` otherwise.
    """
    steps, t = np.asarray(steps), np.asarray(tokens, dtype=np.float64)
    y, reps = np.asarray(loss, dtype=np.float64), np.asarray(replicates, dtype=np.float64)
    if not (len(steps) == len(t) == len(y) == reps.shape[1]):
        raise ValueError(f"loss_bump: {len(steps)} steps, {len(t)} tokens, {len(y)} losses, "
                         f"{reps.shape[1]} replicate columns")  # fmt: skip
    keep = t > 0
    steps, x, y, reps = steps[keep], np.log10(t[keep]), y[keep], reps[:, keep]
    if len(x) < 4:
        return None
    dx = np.diff(x)
    slope, rep_slope = np.diff(y) / dx, np.diff(reps, axis=1) / dx  # [interval], [boot interval]
    i, j = np.triu_indices(len(slope), k=1)
    fall = slope[i] - slope[j]
    sd = (rep_slope[:, i] - rep_slope[:, j]).std(axis=0)
    z = np.where(sd > 0, fall / np.where(sd > 0, sd, 1), np.where(fall > 0, np.inf, 0.0))
    bound = NormalDist().inv_cdf(1 - alpha / len(fall))
    best = int(np.argmax(z))
    if not z[best] > bound:
        return None
    a, b = int(i[best]), int(j[best])  # intervals a (x[a]→x[a+1]) and b (x[b]→x[b+1])
    chord = y[a] + (y[b + 1] - y[a]) * (x - x[a]) / (x[b + 1] - x[a])
    peak = a + 1 + int(np.argmax((y - chord)[a + 1 : b + 1]))  # furthest above the chord
    return LossBump(step=int(steps[peak]), start=int(steps[a]), end=int(steps[b + 1]),
                    slope_before=float(slope[a]), slope_after=float(slope[b]), z=float(z[best]),
                    bound=bound)  # fmt: skip


# --------------------------------------------------------------------------------------------
# One model state's held-out summary (a record of the per-checkpoint evaluation)


@dataclass(frozen=True)
class HeldoutSet:
    """Held-out windows with their documents, and how they are summarised."""

    tokens: Int[Tensor, "n n_ctx"]
    doc: Int[np.ndarray, "n"]
    windows: IclWindows
    bin_width: int = 16
    n_boot: int = 1000
    seed: int = 0

    @classmethod
    def load(
        cls, path, early: Sequence[float] = EARLY, late: Sequence[float] = LATE,
        max_n: int | None = None, bin_width: int = 16, n_boot: int = 1000, seed: int = 0,
    ) -> HeldoutSet:
        """From a ``heldout_tokens.pt`` (:func:`datasets.build_model_datasets`), with the ICL
        windows ``early``/``late`` as fractions of the windows' length
        (:meth:`IclWindows.scaled`); a set saved without document labels gets one cluster per
        window."""
        from .datasets import load_token_set

        data = load_token_set(path)
        tokens = data["tokens"][:max_n]
        doc = data.get("doc")
        doc = np.arange(len(tokens)) if doc is None else np.asarray(doc)[: len(tokens)]
        return cls(tokens, doc, IclWindows.scaled(tokens.shape[1], early, late), bin_width, n_boot, seed)

    def summary(self, loss: Float[Tensor, "n pos_minus_1"]) -> dict:
        """Held-out loss (overall, by position bin, per token, per window) and the ICL score,
        with document-clustered intervals."""
        per_window = np.asarray(loss, dtype=np.float64).mean(axis=1)
        overall = cluster_bootstrap_ci(per_window, self.doc, self.n_boot, seed=self.seed)
        score = icl_score(loss, self.doc, self.windows, self.n_boot, seed=self.seed)
        curve = loss_by_position(loss, self.doc, self.bin_width, n_boot=self.n_boot, seed=self.seed)
        return {
            "heldout_loss": float(per_window.mean()),
            "heldout_loss_ci": list(overall),
            "icl_score": score.value,
            "icl_ci": list(score.ci),
            "icl_windows": self.windows.as_dict(),
            "n_heldout_windows": score.n,
            "n_heldout_documents": score.n_clusters,
            "loss_by_position": curve.as_dict(),
            "loss_by_token": [round(float(v), 4) for v in np.asarray(loss).mean(axis=0)],
            "heldout_window_loss": [round(float(v), 4) for v in per_window],
            "heldout_window_doc": [int(d) for d in self.doc],
        }
