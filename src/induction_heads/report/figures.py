"""Figures for the report: the flat ``figures/`` folder, SVG markup to inline, and the attention
example (the data of the interactive view, and its static heatmaps for the PDF)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..naming import FIGURE_FORMATS, report_figure_stem
from .collect import AnalysisResult, Run

ATTENTION_EXAMPLE = "attention_example.json"


@dataclass
class FigureFile:
    """One figure of one model and analysis, after it was copied into ``figures/``."""

    model: str
    analysis: str
    name: str
    caption: str
    files: dict[str, Path]  # format → path under figures/

    @property
    def stem(self) -> str:
        return report_figure_stem(self.model, self.analysis, self.name)


def export_figures(run: Run, figures_dir: Path) -> tuple[list[FigureFile], list[str]]:
    """Copy every figure to ``figures/<model>__<analysis>__<figure>.<ext>``; return the figures
    and a warning for each file a metrics.json names but that is not on disk."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    out, warnings = [], []
    for model in run.models():
        for analysis, result in sorted(run.results[model].items()):
            for name, entry in result.figures.items():
                fig = FigureFile(model, analysis, name, entry.get("caption", ""), {})
                for fmt in FIGURE_FORMATS:
                    src = result.folder / entry[fmt] if entry.get(fmt) else None
                    if src is None or not src.is_file():
                        warnings.append(f"{model}/{analysis}: figure {name!r} has no {fmt} file")
                        continue
                    dst = figures_dir / f"{fig.stem}.{fmt}"
                    shutil.copyfile(src, dst)
                    fig.files[fmt] = dst
                out.append(fig)
    return out, warnings


_PROLOGUE = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", re.S)
_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(path: Path, prefix: str) -> str:
    """SVG markup to paste into HTML: no XML prologue or doctype, and every id prefixed so that
    two figures' clip paths and images cannot collide in one document."""
    text = _PROLOGUE.sub("", path.read_text()).strip()
    ids = set(_ID.findall(text))
    for old in sorted(ids, key=len, reverse=True):
        new = f"{prefix}-{old}"
        text = text.replace(f'id="{old}"', f'id="{new}"').replace(f"#{old})", f"#{new})")
        text = text.replace(f'href="#{old}"', f'href="#{new}"')
    return text


# ---------------------------------------------------------------- attention example


def load_attention_example(result: AnalysisResult | None) -> dict[str, Any] | None:
    """``attention_example.json`` beside the head-scores metrics, checked; ``None`` if absent."""
    if result is None:
        return None
    path = result.folder / ATTENTION_EXAMPLE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    tokens, heads = data.get("tokens"), data.get("heads")
    if not isinstance(tokens, list) or not isinstance(heads, dict) or not heads:
        raise ValueError(f"{path}: expected {{'tokens': [...], 'heads': {{'L.H': [[...]]}}}}")
    n = len(tokens)
    for label, pattern in heads.items():
        if len(pattern) != n or any(len(row) != n for row in pattern):
            raise ValueError(f"{path}: head {label} pattern is not {n} × {n} (one per token)")
    return {"tokens": [str(t) for t in tokens], "heads": heads}


def key_heads(result: AnalysisResult) -> list[str]:
    """The heads the story is about, best first: previous-token and induction heads."""
    names = ("best_prev_token_head", "best_induction_head", "prev_token_heads", "induction_heads")
    heads: list[str] = []
    for name in names:
        value = result.metrics.get(name, {}).get("value")
        for label in value if isinstance(value, list) else [value]:
            if label is not None and str(label) not in heads:
                heads.append(str(label))
    return heads


def attention_figure(example: dict[str, Any], model: str, heads: list[str] | None = None,
                     max_heads: int = 6):
    """Static heatmaps of the key heads (the PDF's stand-in for the interactive view): the
    ``heads`` given first, in order, then the example's others, ``max_heads`` at most."""
    import matplotlib.pyplot as plt
    import numpy as np

    from ..plots import SEQUENTIAL

    order = [h for h in (heads or []) if h in example["heads"]]
    labels = (order + [h for h in example["heads"] if h not in order])[:max_heads]
    n_tok = len(example["tokens"])
    cols = min(3, len(labels))
    rows = -(-len(labels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(labels):]:
        ax.axis("off")
    for ax, label in zip(axes.flat, labels):
        im = ax.imshow(np.asarray(example["heads"][label], dtype=float), cmap=SEQUENTIAL,
                       vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"head {label}", fontsize=9)
        ax.set_xlabel("key position", fontsize=8)
        ax.set_ylabel("query position", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(False)
        if n_tok <= 24:  # short examples: the tokens themselves are readable on the axes
            ticks = [repr(t)[1:-1] for t in example["tokens"]]
            ax.set_xticks(range(n_tok), ticks, rotation=90, fontsize=6)
            ax.set_yticks(range(n_tok), ticks, fontsize=6)
    fig.colorbar(im, ax=axes, shrink=0.8, label="attention")
    fig.suptitle(f"{model}: attention on the example sequence ({n_tok} tokens)", fontsize=10)
    return fig


def save_attention_figure(example: dict[str, Any], model: str, figures_dir: Path,
                          heads: list[str] | None = None) -> FigureFile:
    """Write the static attention heatmaps to ``figures/`` in every format."""
    import matplotlib.pyplot as plt

    from ..plots import use_style

    use_style()
    fig = attention_figure(example, model, heads)
    stem = report_figure_stem(model, "head_scores", "attention_example")
    files = {}
    for fmt in FIGURE_FORMATS:
        files[fmt] = figures_dir / f"{stem}.{fmt}"
        fig.savefig(files[fmt], format=fmt, bbox_inches="tight",
                    dpi=150 if fmt == "png" else None,
                    metadata={"Date": None} if fmt == "svg" else None)
    plt.close(fig)
    caption = ("Attention patterns of the key heads on the example sequence (query rows attend "
               "to key columns). The HTML report has an interactive view of the same data.")
    return FigureFile(model, "head_scores", "attention_example", caption, files)
