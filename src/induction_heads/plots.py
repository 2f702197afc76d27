"""The one plotting style of the project (matplotlib + seaborn), and the shared figure helpers.

Call :func:`use_style` once (notebooks do it in their first cell). Figures are saved through
:meth:`induction_heads.metrics.Metrics.figure`, which writes SVG, PNG and PDF.

Importing this module leaves matplotlib's backend alone: whoever runs the code chooses it (the
Snakefile sets ``MPLBACKEND=Agg`` for every rule, ``scripts/build_report.py`` and the tests
select Agg themselves; an interactive session keeps its own).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

# Head labels are named in one place; re-exported here for older imports.
from .naming import head_label, parse_head_label  # noqa: E402, F401

PALETTE = sns.color_palette("colorblind")
SEQUENTIAL = "rocket_r"
DIVERGING = "vlag"


def use_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.1)
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "svg.fonttype": "none",  # text stays text in SVG (searchable, small)
            "svg.hashsalt": "induction-heads",  # deterministic SVG ids
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.autolayout": False,
        }
    )


def head_heatmap(
    scores: np.ndarray,
    title: str,
    *,
    cbar_label: str = "score",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    cmap: str = SEQUENTIAL,
    annotate: bool = True,
    ax: plt.Axes | None = None,
):
    """A layer × head heatmap with ARENA labels (rows: layers, columns: heads)."""
    scores = np.asarray(scores, dtype=float)
    n_layers, n_heads = scores.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(max(3.2, 0.75 * n_heads + 1.6), 0.6 * n_layers + 1.4))
    sns.heatmap(
        scores,
        ax=ax,
        vmin=vmin,
        vmax=vmax,
        cmap=cmap,
        annot=annotate and n_heads <= 16,
        fmt=".2f",
        cbar_kws={"label": cbar_label},
        linewidths=0.5,
        linecolor="white",
        square=False,
    )
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_yticklabels(range(n_layers), rotation=0)
    ax.set_title(title)
    return ax.figure


def line_with_band(
    ax: plt.Axes,
    x: Sequence[float],
    mean: Sequence[float],
    lo: Sequence[float] | None = None,
    hi: Sequence[float] | None = None,
    label: str | None = None,
    color=None,
):
    """A line with a shaded band (a confidence interval, or a spread across seeds)."""
    (line,) = ax.plot(x, mean, label=label, color=color, lw=1.6)
    if lo is not None and hi is not None:
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return line
