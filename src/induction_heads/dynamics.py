"""Induction heads over training (docs/methods/training_dynamics.md): the phase change.

Four jobs, one section each:

1. **Per-checkpoint evaluation** of one trained model (:func:`evaluate_checkpoints`): at every
   saved step, the training loss (from ``train_log.jsonl``), the held-out summary of
   :meth:`icl.HeldoutSet.summary` (loss overall, by position bin, per token and per window; the
   in-context learning score; document-clustered intervals), the best induction and
   previous-token scores (and their heads), plus the
   *final* model's induction head traced back through training (its induction score and OV top-1
   copying accuracy) and the K-composition score between the final previous-token and induction
   heads. Written as JSON lines (``results/models/<model>/dynamics.jsonl``) by
   ``scripts/evaluate_checkpoints.py``.
2. **Formation window** (:func:`formation_window`): where a score curve rises fastest, and the
   20 %→80 % span of its rise around that point; ``None`` when the curve never reaches a threshold.
3. **In-context learning over training** (:func:`icl_over_training`, :func:`seed_loss_bump`): the
   ICL score at the end, before formation and where it changes, beside the formation window; the
   loss bump of the held-out loss (definitions: ``docs/methods/in_context_learning.md``).
4. **Aggregation across seeds** (:func:`aggregate`, :func:`formation_fraction`).

Step convention: checkpoint ``step_N.pt`` holds the weights after ``N`` optimiser updates. The
training log's record ``{"step": s, "loss": …}`` holds the loss of the batch seen by the weights
after ``s - 1`` updates (the loss is computed before the update that makes it step ``s``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from . import scores as S
from .circuits import ov_topk_accuracy, ov_topk_all_heads
from .composition import composition_scores
from .datasets import load_token_set
from .icl import EARLY, LATE, HeldoutSet, cluster_bootstrap, loss_bump
from .metrics import atomic_write_text
from .naming import parse_head_label
from .weights import checkpoint_steps, load_checkpoint, read_info

# --------------------------------------------------------------------------------------------
# The training log


def read_jsonl(path: str | Path) -> list[dict]:
    """Every JSON line of ``path`` (blank lines skipped)."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(records: Sequence[dict], path: str | Path) -> Path:
    """Write ``records`` as JSON lines, atomically (a half-written file is never seen as done)."""
    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return path


def train_log_at(log: Sequence[dict], step: int) -> dict | None:
    """The training-log record whose weights are nearest to checkpoint ``step`` (ties: earlier).

    A record ``{"step": s}`` was computed on the weights after ``s - 1`` updates (module docstring).
    """
    if not log:
        return None
    return min(log, key=lambda r: (abs(r["step"] - 1 - step), r["step"]))


def tokens_per_step(log: Sequence[dict]) -> float | None:
    """Training tokens per optimiser update (constant batch shape), from the log."""
    rec = next((r for r in log if r.get("step")), None)
    return None if rec is None else rec["tokens"] / rec["step"]


# --------------------------------------------------------------------------------------------
# Per-checkpoint evaluation


@dataclass(frozen=True)
class TracedHeads:
    """The final model's heads whose quantities are traced back through training."""

    induction: str  # "L.H"
    prev_token: str  # "L.H"; in an earlier layer than ``induction`` when the model has one

    @property
    def composes(self) -> bool:
        """K-composition needs the previous-token head in an earlier layer."""
        return parse_head_label(self.prev_token)[0] < parse_head_label(self.induction)[0]


def select_traced_heads(
    patterns: Float[Tensor, "layer batch head q k"], seq_len: int
) -> TracedHeads:
    """The best induction head (in layers ≥ 1 when there are several layers: a layer-0 head cannot
    be an induction head) and the best previous-token head in a layer before it."""
    sc = S.head_scores(patterns, seq_len)
    n_layers = sc["induction"].shape[0]
    ind_label, _ = S.best_head(sc["induction"], S.induction_layers(n_layers))
    ind_layer = parse_head_label(ind_label)[0]
    prev_layers = list(range(ind_layer)) if ind_layer > 0 else None
    prev_label, _ = S.best_head(sc["previous_token"], prev_layers)
    return TracedHeads(induction=ind_label, prev_token=prev_label)


def kcomp_score(model: HookedTransformer, heads: TracedHeads) -> float | None:
    """Elhage K-composition score between the traced previous-token and induction heads;
    ``None`` when undefined (heads in one layer, or a zero weight matrix: 0/0)."""
    if not heads.composes:
        return None
    (lp, hp), (li, hi) = parse_head_label(heads.prev_token), parse_head_label(heads.induction)
    score = float(composition_scores(model)["K"][lp, hp, li, hi])
    return score if np.isfinite(score) else None


@dataclass(frozen=True)
class Behaviour:
    """What one model state does on the two token sets (the inputs of every per-checkpoint
    quantity)."""

    held_loss: Float[Tensor, "n_seq pos_minus_1"]
    first_repeat: Float[Tensor, "batch"]  # per-sequence mean loss
    second_repeat: Float[Tensor, "batch"]
    scores: dict[str, Float[Tensor, "layer head"]]  # S.head_scores on the repeated tokens


@torch.no_grad()
def behaviour(
    model: HookedTransformer,
    rep_tokens: Int[Tensor, "batch pos"],
    seq_len: int,
    held_tokens: Int[Tensor, "n_seq n_ctx"],
    batch_size: int = 64,
) -> Behaviour:
    patterns, rep_loss = S.patterns_and_loss(model, rep_tokens)  # one pass over the repeated tokens
    first, second = S.repeat_losses(rep_loss, seq_len)
    return Behaviour(
        held_loss=S.per_token_loss(model, held_tokens, batch_size),
        first_repeat=first,
        second_repeat=second,
        scores=S.head_scores(patterns, seq_len),
    )


@torch.no_grad()
def evaluate_model(
    model: HookedTransformer,
    rep_tokens: Int[Tensor, "batch pos"],
    seq_len: int,
    held: HeldoutSet,
    traced: TracedHeads,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Every per-checkpoint quantity of one model state (no step or training-log fields)."""
    b = behaviour(model, rep_tokens, seq_len, held.tokens, batch_size)
    sc = b.scores
    ind_head, ind_score = S.best_head(sc["induction"])
    prev_head, prev_score = S.best_head(sc["previous_token"])
    li, hi = parse_head_label(traced.induction)
    lp, hp = parse_head_label(traced.prev_token)
    return {
        **held.summary(b.held_loss),
        "loss_first_repeat": float(b.first_repeat.mean()),
        "loss_second_repeat": float(b.second_repeat.mean()),
        "loss_ratio": float(b.second_repeat.mean() / b.first_repeat.mean()),
        "best_induction_score": ind_score,
        "best_induction_head": ind_head,
        "best_prev_token_score": prev_score,
        "best_prev_token_head": prev_head,
        "traced_induction_head": traced.induction,
        "traced_induction_score": float(sc["induction"][li, hi]),
        "traced_prev_token_head": traced.prev_token,
        "traced_prev_token_score": float(sc["previous_token"][lp, hp]),
        "traced_ov_top1": ov_topk_accuracy(model, [(li, hi)], ks=(1,))[1],
        "kcomp_score": kcomp_score(model, traced),
        "induction_scores": sc["induction"].tolist(),  # [layer][head], for per-head plots
        "prev_token_scores": sc["previous_token"].tolist(),
    }


@torch.no_grad()
def circuit_progress(
    model: HookedTransformer,
    rep_tokens: Int[Tensor, "batch pos"],
    seq_len: int,
    held_tokens: Int[Tensor, "n_seq n_ctx"],
) -> dict[str, float]:
    """How far each half of the induction circuit has come, with no heads chosen in advance (for
    recipe trials, where the final heads are not known yet): the best previous-token score in
    layer 0, the best induction score where induction heads are searched, the best OV top-1
    copying accuracy of a last-layer head, the repeat losses and the held-out loss."""
    b = behaviour(model, rep_tokens, seq_len, held_tokens)
    n_layers = model.cfg.n_layers
    return {
        "best_induction_score": S.best_head(b.scores["induction"], S.induction_layers(n_layers))[1],
        "best_prev_token_score": S.best_head(b.scores["previous_token"], [0])[1],
        "best_last_layer_ov_top1": float(ov_topk_all_heads(model, ks=(1,))[1][n_layers - 1].max()),
        "loss_first_repeat": float(b.first_repeat.mean()),
        "loss_second_repeat": float(b.second_repeat.mean()),
        "loss_ratio": float(b.second_repeat.mean() / b.first_repeat.mean()),
        "heldout_loss": float(b.held_loss.mean()),
    }


def first_formed_step(
    progress: Sequence[dict], min_induction: float = 0.5, max_loss_ratio: float = 0.5
) -> int | None:
    """The first probed step (records of :func:`circuit_progress` with a ``step``) where the heads
    count as formed by the bars the training recipe was chosen with: an induction score of at least ``min_induction`` and a
    second-repeat loss at most ``max_loss_ratio`` of the first; ``None`` if none is."""
    return next(
        (r["step"] for r in progress
         if r["best_induction_score"] >= min_induction and r["loss_ratio"] <= max_loss_ratio),
        None,
    )  # fmt: skip


def evaluate_checkpoints(
    model_dir: str | Path,
    data_dir: str | Path,
    icl_early: Sequence[float] = EARLY,
    icl_late: Sequence[float] = LATE,
    device: str = "cpu",
    max_heldout: int | None = None,
    max_repeated: int | None = None,
    batch_size: int = 64,
    bin_width: int = 16,
    n_boot: int = 1000,
    progress: bool = True,
) -> list[dict]:
    """One record per checkpoint of the trained model in ``model_dir`` (see module docstring).

    ``data_dir`` holds the model's ``repeated_tokens.pt`` and ``heldout_tokens.pt``. Held-out text
    is summarised by :meth:`HeldoutSet.summary` (loss by position in ``bin_width``-token bins, the
    ICL score over the windows ``icl_early``/``icl_late``, fractions of the context, each with a
    document-clustered interval). The traced heads are chosen on the last checkpoint
    (the final weights). ``max_heldout`` and ``max_repeated`` keep the first N sequences of each
    token set (the held-out windows are stored in a random order, so the first N are a sample).
    """
    model_dir, data_dir = Path(model_dir), Path(data_dir)
    steps = checkpoint_steps(model_dir)
    if not steps:
        raise FileNotFoundError(f"{model_dir / 'checkpoints'} holds no step_*.pt checkpoints")
    rep = load_token_set(data_dir / "repeated_tokens.pt")
    rep_tokens, seq_len = rep["tokens"][:max_repeated], int(rep["seq_len"])
    held = HeldoutSet.load(data_dir / "heldout_tokens.pt", icl_early, icl_late, max_heldout, bin_width, n_boot)
    log_path = model_dir / "train_log.jsonl"
    log = read_jsonl(log_path) if log_path.exists() else []
    per_step = tokens_per_step(log)
    info = read_info(model_dir) if (model_dir / "model_info.json").exists() else None

    final = load_checkpoint(model_dir, steps[-1], device)
    traced = select_traced_heads(S.attention_patterns(final, rep_tokens), seq_len)
    records = []
    for step in tqdm(steps, desc=f"checkpoints {model_dir.name}", disable=not progress):
        model = load_checkpoint(model_dir, step, device)
        logged = train_log_at(log, step)
        records.append({
            "model": model_dir.name,
            "seed": None if info is None else info.seed,
            "step": step,
            "tokens": None if per_step is None else int(round(step * per_step)),
            "train_loss": None if logged is None else logged["loss"],
            "train_loss_log_step": None if logged is None else logged["step"],
            **evaluate_model(model, rep_tokens, seq_len, held, traced, batch_size),
        })  # fmt: skip
    return records


# --------------------------------------------------------------------------------------------
# Formation window


@dataclass(frozen=True)
class FormationWindow:
    """Where a score curve rises fastest (``step``) and the span of its rise (``start``–``end``).

    ``baseline`` is the smoothed curve's first value, ``top`` its maximum; ``max_slope`` is in
    score units per step.
    """

    step: float
    start: int
    end: int
    baseline: float
    top: float
    max_slope: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def label(self) -> str:
        return f"{self.start}-{self.end}"


def smooth(values: Float[np.ndarray, "n"], width: int) -> Float[np.ndarray, "n"]:
    """Centred moving average over ``width`` neighbouring checkpoints; the window shrinks at the
    ends (no padding, so the first and last values are not pulled towards zero)."""
    values = np.asarray(values, dtype=float)
    if width <= 1:
        return values.copy()
    half = width // 2
    return np.array(
        [values[max(0, i - half) : i + half + 1].mean() for i in range(len(values))]
    )


def formation_window(
    steps: Sequence[int],
    values: Sequence[float],
    threshold: float = 0.3,
    smooth_width: int = 3,
    low: float = 0.2,
    high: float = 0.8,
) -> FormationWindow | None:
    """Detect the formation of a head from its score curve (e.g. induction score per step).

    Definition (on the curve smoothed by :func:`smooth` over ``smooth_width`` checkpoints):

    * *did not form* (``None``) when the smoothed curve never reaches ``threshold``;
    * the **formation step** is the midpoint of the interval between consecutive checkpoints with
      the largest slope ``Δscore / Δstep``;
    * the **window** runs from the last checkpoint at or before that interval where the smoothed
      score is at most ``baseline + low·(top − baseline)`` to the first checkpoint at or after it
      where the score is at least ``baseline + high·(top − baseline)`` (``baseline``: the smoothed
      first value; ``top``: the smoothed maximum). Without such a checkpoint it stops at the
      first / last checkpoint. The window's ends are checkpoints, and it contains the step.
    """
    x = np.asarray(steps, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need matching 1-D steps and values with >= 2 points, got {x.shape}, {y.shape}")
    order = np.argsort(x)
    x, y = x[order], smooth(y[order], smooth_width)
    if not np.isfinite(y).all():
        raise ValueError("formation_window: the curve has non-finite values")
    if y.max() < threshold:
        return None
    slopes = np.diff(y) / np.diff(x)
    i = int(np.argmax(slopes))  # steepest interval: x[i] → x[i + 1]
    baseline, top = float(y[0]), float(y.max())
    lo_level, hi_level = baseline + low * (top - baseline), baseline + high * (top - baseline)
    below = [j for j in range(i + 1) if y[j] <= lo_level]
    above = [j for j in range(i + 1, len(y)) if y[j] >= hi_level]
    start = below[-1] if below else 0
    end = above[0] if above else len(x) - 1
    return FormationWindow(
        step=float((x[i] + x[i + 1]) / 2), start=int(x[start]), end=int(x[end]),
        baseline=baseline, top=top, max_slope=float(slopes[i]),
    )  # fmt: skip


def slope_in_window(
    steps: Sequence[int], values: Sequence[float], start: float, end: float
) -> float | None:
    """Least-squares slope (units per step) of ``values`` over the checkpoints in
    ``[start, end]``; ``None`` with fewer than two checkpoints there."""
    x, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    inside = (x >= start) & (x <= end) & np.isfinite(y)
    if inside.sum() < 2:
        return None
    return float(np.polyfit(x[inside], y[inside], 1)[0])


def curve(records: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one quantity from a model's records (``None`` → NaN)."""
    steps = np.array([r["step"] for r in records], dtype=float)
    values = np.array([np.nan if r.get(key) is None else r[key] for r in records], dtype=float)
    return steps, values


def seed_formation(
    records: Sequence[dict],
    metric: str = "best_induction_score",
    threshold: float = 0.3,
    smooth_width: int = 3,
    low: float = 0.2,
    high: float = 0.8,
) -> dict[str, Any]:
    """Formation summary of one seed: the window (or ``None``) and the held-out loss slope in it."""
    window = formation_window(*curve(records, metric), threshold, smooth_width, low, high)
    slope = None
    if window is not None:
        slope = slope_in_window(*curve(records, "heldout_loss"), window.start, window.end)
    return {"window": window, "loss_slope_per_step": slope}


# --------------------------------------------------------------------------------------------
# In-context learning over training: the ICL score's change and the loss bump


@dataclass(frozen=True)
class IclOverTraining:
    """One seed's ICL score over training, set beside its induction formation window.

    ``change``: the formation window (:func:`formation_window`) of the *negated* ICL score, i.e.
    where the score falls fastest; ``None`` when it never falls to ``-threshold``. ``before``: the
    score at the first checkpoint of the induction formation window (the last one before the
    heads form). ``lag``: the ICL change step minus the induction formation step. ``cooccurs``:
    the ICL change step lies inside the induction formation window.
    """

    final: float
    final_ci: tuple[float, float] | None
    before: float | None
    before_step: int | None
    change: FormationWindow | None
    lag: float | None
    cooccurs: bool | None


def icl_over_training(
    records: Sequence[dict],
    formation: FormationWindow | None,
    threshold: float = 0.05,
    smooth_width: int = 3,
    low: float = 0.2,
    high: float = 0.8,
) -> IclOverTraining:
    """The ICL score at the end, before formation, and where it changes (see the class)."""
    steps, icl = curve(records, "icl_score")
    last = max(records, key=lambda r: r["step"])
    ci = last.get("icl_ci")
    change = formation_window(steps, -icl, threshold, smooth_width, low, high)
    before = before_step = None
    if formation is not None:
        before_step = int(formation.start)
        before = float(icl[list(steps).index(before_step)])
    lag = cooccurs = None
    if change is not None and formation is not None:
        lag = change.step - formation.step
        cooccurs = bool(formation.start <= change.step <= formation.end)
    return IclOverTraining(float(last["icl_score"]), None if ci is None else (float(ci[0]), float(ci[1])),
                           before, before_step, change, lag, cooccurs)  # fmt: skip


def heldout_replicates(
    records: Sequence[dict], key: str = "heldout_window_loss", n_boot: int = 1000, seed: int = 0
) -> Float[np.ndarray, "n_boot n_checkpoints"]:
    """Bootstrap replicates of the held-out loss curve over training, resampling documents: every
    checkpoint of a replicate uses the same documents (the checkpoints are evaluated on the same
    windows), so the noise of a change between checkpoints is the noise of a paired difference."""
    ordered = sorted(records, key=lambda r: r["step"])
    per_window = np.array([r[key] for r in ordered], dtype=np.float64).T  # [window checkpoint]
    doc = np.asarray(ordered[0]["heldout_window_doc"])
    return cluster_bootstrap(per_window, doc, n_boot, seed)


def seed_loss_bump(records: Sequence[dict], alpha: float = 0.05, n_boot: int = 1000, seed: int = 0):
    """The loss bump (:func:`icl.loss_bump`) of one seed's held-out loss on the log-token axis."""
    ordered = sorted(records, key=lambda r: r["step"])
    if any(r.get("tokens") is None for r in ordered):
        return None  # no training log: no token axis
    return loss_bump([r["step"] for r in ordered], [r["tokens"] for r in ordered],
                     [r["heldout_loss"] for r in ordered], heldout_replicates(ordered, n_boot=n_boot, seed=seed),
                     alpha)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Aggregation across seeds


@dataclass(frozen=True)
class Band:
    steps: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: int  # seeds


def aggregate(runs: Sequence[Sequence[dict]], key: str, band: str = "minmax") -> Band:
    """Mean and band of ``key`` across seeds at the steps every seed has.

    ``band``: ``"minmax"`` (the range over seeds) or ``"std"`` (mean ± one standard deviation).
    """
    if not runs:
        raise ValueError("aggregate needs at least one run")
    common = sorted(set.intersection(*({r["step"] for r in run} for run in runs)))
    if not common:
        raise ValueError(f"the runs share no checkpoint step; cannot aggregate {key!r}")
    table = np.array([[_value_at(run, s, key) for s in common] for run in runs])  # [seed step]
    if band not in ("minmax", "std"):
        raise ValueError(f"band must be 'minmax' or 'std', got {band!r}")
    if not np.isfinite(table).any():  # e.g. K-composition of a 1-layer model: not defined
        nan = np.full(len(common), np.nan)
        return Band(np.array(common, dtype=float), nan, nan, nan, len(runs))
    mean = np.nanmean(table, axis=0)
    if band == "minmax":
        lo, hi = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
    elif band == "std":
        sd = np.nanstd(table, axis=0)
        lo, hi = mean - sd, mean + sd
    return Band(np.array(common, dtype=float), mean, lo, hi, len(runs))


def _value_at(run: Sequence[dict], step: int, key: str) -> float:
    rec = next(r for r in run if r["step"] == step)
    return np.nan if rec.get(key) is None else float(rec[key])


def formation_fraction(windows: Sequence[FormationWindow | None]) -> float:
    """Fraction of seeds whose curve formed (a window was detected)."""
    if not windows:
        raise ValueError("formation_fraction needs at least one seed")
    return sum(w is not None for w in windows) / len(windows)


def best_score_max(runs: Sequence[Sequence[dict]], key: str = "best_induction_score") -> float:
    """The largest value of ``key`` over every seed and checkpoint (e.g. of the 1L control)."""
    return float(max(r[key] for run in runs for r in run))



# --------------------------------------------------------------------------------------------
# The phase-change figure (Olsson et al. 2022, fig. "phase change")

# (record key, panel title) in the order the panels are stacked.
PANELS: tuple[tuple[str, str], ...] = (
    ("heldout_loss", "held-out loss\n(nats)"),
    ("icl_score", "ICL score\n(nats)"),
    ("best_induction_score", "best induction\nscore"),
    ("best_prev_token_score", "best prev-token\nscore"),
    ("traced_ov_top1", "OV top-1 of final\ninduction head"),
    ("kcomp_score", "K-composition of\nfinal heads"),
)


def _draw_column(axes, runs, windows, title, color, band, threshold_key, threshold, ylabels=True):
    """One column of stacked panels: per-seed lines, the mean with its band, shaded windows."""
    from .plots import PALETTE, line_with_band

    for ax, (key, label) in zip(axes, PANELS):
        for k, run in enumerate(runs):
            steps, values = curve(run, key)
            ax.plot(steps, values, lw=0.7, alpha=0.5, color=PALETTE[k % len(PALETTE)] if color is None else color)
        agg = aggregate(runs, key, band)
        if np.isfinite(agg.mean).any():
            line_with_band(ax, agg.steps, agg.mean, agg.lo, agg.hi, color="black" if color is None else color,
                           label=f"mean, {band} over {agg.n} seeds")  # fmt: skip
        else:
            ax.text(0.5, 0.5, "n/a (needs 2 layers)", transform=ax.transAxes, ha="center", color="grey")
        for k, window in enumerate(windows):
            if window is not None:
                shade = PALETTE[k % len(PALETTE)]
                ax.axvspan(window.start, window.end, color=shade, alpha=0.12, lw=0)
                ax.axvline(window.step, color=shade, lw=0.8, ls="--")
        if key == threshold_key:
            ax.axhline(threshold, color="grey", lw=0.8, ls=":")
        if ylabels:
            ax.set_ylabel(label, fontsize=8)
    axes[0].set_title(title)
    axes[-1].set_xlabel("training step")


def phase_change_figure(
    runs: Sequence[Sequence[dict]],
    windows: Sequence[FormationWindow | None],
    title: str,
    control_runs: Sequence[Sequence[dict]] = (),
    control_title: str = "control",
    band: str = "minmax",
    threshold_key: str = "best_induction_score",
    threshold: float = 0.3,
):
    """Metrics stacked on one step axis, each seed's formation window shaded (its own colour,
    dashed line at the formation step), the mean and band across seeds in black; the control
    family's runs in a second column, in grey, with rows sharing their y axis."""
    import matplotlib.pyplot as plt

    n_cols = 2 if control_runs else 1
    fig, axes = plt.subplots(len(PANELS), n_cols, figsize=(4.2 * n_cols + 1, 1.55 * len(PANELS) + 1),
                             sharex="col", sharey="row", squeeze=False)  # fmt: skip
    _draw_column(axes[:, 0], runs, windows, title, None, band, threshold_key, threshold)
    if control_runs:
        control_windows = [None] * len(control_runs)  # the control's curves get no shading
        _draw_column(axes[:, 1], control_runs, control_windows, control_title, "grey", band,
                     threshold_key, threshold, ylabels=False)  # fmt: skip
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
