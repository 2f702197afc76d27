"""Figures of in-context learning on natural text (the computations are in :mod:`.icl` and
:mod:`.dynamics`): loss by context position with its intervals, the per-token loss over training
as a heatmap, and the held-out loss on a log-token axis with the loss bump beside the induction
formation window."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .icl import IclWindows, log_position_bins
from .plots import PALETTE


def _shade_icl_windows(ax, windows: IclWindows) -> None:
    for (start, stop), name in ((windows.early, "early"), (windows.late, "late")):
        ax.axvspan(start - 0.5, stop - 0.5, color="grey", alpha=0.12, lw=0)
        ax.text((start + stop - 1) / 2, 1.0, name, transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=7, color="grey")  # fmt: skip


def position_curve_figure(
    curves: Sequence[tuple[str, dict]], windows: IclWindows, title: str, ax=None
):
    """Held-out loss by context position: one line per ``(label, loss_by_position dict)`` at the
    bins' centres, its clustered interval as a band; the ICL score's windows shaded."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.2, 3.6))
    for k, (label, c) in enumerate(curves):
        centre = (np.asarray(c["start"]) + np.asarray(c["stop"]) - 1) / 2
        color = PALETTE[k % len(PALETTE)]
        ax.plot(centre, c["mean"], marker="o", ms=3, lw=1.2, color=color, label=label)
        ax.fill_between(centre, c["lo"], c["hi"], color=color, alpha=0.2, lw=0)
    _shade_icl_windows(ax, windows)
    ax.set_xlabel("token position in the window (bin centre)")
    ax.set_ylabel("held-out loss (nats)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    return ax.figure


def heatmap_rows(loss_by_token: Sequence[float], n_bins: int = 16) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The per-token loss averaged into about ``n_bins`` log-spaced position bins."""
    loss = np.asarray(loss_by_token, dtype=float)
    bins = log_position_bins(len(loss), n_bins)
    return bins, np.array([loss[a - 1 : b - 1].mean() for a, b in bins])


def per_token_heatmap(
    runs: Sequence[Sequence[dict]], titles: Sequence[str], formations, bumps, windows: IclWindows,
    n_bins: int = 16,
):
    """Per-token held-out loss over training, one column of panels per seed: rows are log-spaced
    token positions, columns checkpoints. Top: the loss; bottom: the loss minus the same
    checkpoint's early-window loss (blue: later tokens predicted better than early ones). The
    induction formation window is drawn as solid lines, the loss bump's as dashed lines."""
    import matplotlib.pyplot as plt

    n = len(runs)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n + 1.2, 6.2), squeeze=False, sharey=True)
    e0, e1 = windows.early
    for col, (run, title, formation, bump) in enumerate(zip(runs, titles, formations, bumps)):
        ordered = sorted(run, key=lambda r: r["step"])
        steps = np.array([r["step"] for r in ordered], dtype=float)
        rows = [heatmap_rows(r["loss_by_token"], n_bins) for r in ordered]
        bins, grid = rows[0][0], np.stack([g for _, g in rows], axis=1)  # [bin checkpoint]
        early = np.array([np.mean(r["loss_by_token"][e0 - 1 : e1 - 1]) for r in ordered])
        edges_y = np.array([b[0] for b in bins] + [bins[-1][1]], dtype=float)
        edges_x = _edges(steps)
        for row, (values, cmap, label) in enumerate((
            (grid, "rocket_r", "loss (nats)"),
            (grid - early[None, :], "vlag", "loss − early-window loss"),
        )):  # fmt: skip
            ax = axes[row, col]
            lim = np.nanmax(np.abs(values)) if row == 1 else None
            mesh = ax.pcolormesh(edges_x, edges_y, values, cmap=cmap, shading="flat",
                                 vmin=-lim if lim else None, vmax=lim)  # fmt: skip
            ax.set_yscale("log")
            fig.colorbar(mesh, ax=ax, label=label, fraction=0.05, pad=0.02)
            if formation is not None:
                for x in (formation.start, formation.end):
                    ax.axvline(x, color="black", lw=1.0)
            if bump is not None:
                for x in (bump.start, bump.end):
                    ax.axvline(x, color="black", lw=1.0, ls="--")
            if col == 0:
                ax.set_ylabel("token position (log)")
        axes[0, col].set_title(title)
        axes[1, col].set_xlabel("training step")
    fig.tight_layout()
    return fig


def _edges(steps: np.ndarray) -> np.ndarray:
    """Cell edges halfway between checkpoints (the first and last cells as wide as their
    neighbours' halves)."""
    mid = (steps[:-1] + steps[1:]) / 2
    first, last = steps[0] - (mid[0] - steps[0]), steps[-1] + (steps[-1] - mid[-1])
    return np.concatenate([[first], mid, [last]])


def bump_figure(
    runs: Sequence[Sequence[dict]], titles: Sequence[str], formations, bumps, icl_changes
):
    """Held-out loss and ICL score on a log axis of training tokens, one column per seed: the
    induction formation window shaded, the ICL score's change window hatched and the loss bump's
    window between dashed lines."""
    import matplotlib.pyplot as plt

    n = len(runs)
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n + 0.8, 5.0), squeeze=False, sharex="col")
    for col, (run, title, formation, bump, change) in enumerate(zip(runs, titles, formations, bumps, icl_changes)):
        ordered = [r for r in sorted(run, key=lambda r: r["step"]) if r.get("tokens")]
        if not ordered:
            continue
        to_tokens = _step_to_tokens(ordered)
        tokens = np.array([r["tokens"] for r in ordered], dtype=float)
        for row, (key, label) in enumerate((("heldout_loss", "held-out loss (nats)"), ("icl_score", "ICL score (nats)"))):
            ax = axes[row, col]
            y = np.array([r[key] for r in ordered])
            ci_key = "heldout_loss_ci" if key == "heldout_loss" else "icl_ci"
            ax.plot(tokens, y, marker="o", ms=2.5, lw=1.0, color=PALETTE[col % len(PALETTE)])
            if all(r.get(ci_key) for r in ordered):
                ci = np.array([r[ci_key] for r in ordered])
                ax.fill_between(tokens, ci[:, 0], ci[:, 1], color=PALETTE[col % len(PALETTE)], alpha=0.2, lw=0)
            if formation is not None:
                ax.axvspan(to_tokens(formation.start), to_tokens(formation.end), color="grey", alpha=0.18,
                           lw=0, label="induction formation window")  # fmt: skip
            if change is not None and row == 1:
                ax.axvspan(to_tokens(change.start), to_tokens(change.end), fill=False, hatch="//",
                           edgecolor="grey", lw=0, label="ICL change window")  # fmt: skip
            if bump is not None and row == 0:
                for x in (bump.start, bump.end):
                    ax.axvline(to_tokens(x), color="black", lw=0.9, ls="--")
                ax.axvline(to_tokens(bump.step), color="black", lw=0.9, ls=":", label="loss bump")
            ax.set_xscale("log")
            if col == 0:
                ax.set_ylabel(label)
            if row == 1:
                ax.axhline(0, color="grey", lw=0.7)
                ax.set_xlabel("training tokens (log)")
        axes[0, col].set_title(title)
    handles, labels = {}, []
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=3, fontsize=7,
                   frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def _step_to_tokens(ordered: Sequence[dict]):
    per_step = ordered[-1]["tokens"] / ordered[-1]["step"]
    return lambda step: step * per_step
