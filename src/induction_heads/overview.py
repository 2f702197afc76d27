"""Figures and the interactive-view example of the model-overview (head scores) analysis."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from .metrics import atomic_write_text
from .naming import head_label
from .plots import PALETTE, head_heatmap, line_with_band
from .scores import SCORE_NAMES, attention_patterns


def score_panel_figure(scores: dict[str, Float[Tensor, "layer head"]], model_name: str):
    """The five head scores side by side, one layer × head heatmap each."""
    n_layers, n_heads = next(iter(scores.values())).shape
    fig, axes = plt.subplots(
        1, len(SCORE_NAMES), figsize=(2.2 * len(SCORE_NAMES) + 0.35 * n_heads, 0.55 * n_layers + 1.5)
    )
    for ax, name in zip(axes, SCORE_NAMES):
        head_heatmap(scores[name].numpy(), name.replace("_", "-"), ax=ax, annotate=n_heads <= 6)
        ax.collections[0].colorbar.remove()
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.suptitle(f"Head attention scores — {model_name}", fontweight="bold")
    fig.tight_layout()
    return fig


def positional_ablation_figure(
    before: dict[str, Float[Tensor, "layer head"]], after: dict[str, Float[Tensor, "layer head"]], model_name: str
):
    """Previous-token (top) and induction (bottom) scores with (left) and without (right) the
    positional embedding: four layer × head heatmaps on one colour scale (0 to 1)."""
    n_layers, n_heads = before["induction"].shape
    fig, axes = plt.subplots(2, 2, figsize=(2 * (0.5 * n_heads + 1.4) + 0.9, 2 * (0.45 * n_layers + 1.0) + 0.5),
                             squeeze=False)  # fmt: skip
    for row, name in enumerate(("previous_token", "induction")):
        for col, (scores, which) in enumerate(((before, "with"), (after, "without"))):
            ax = axes[row, col]
            head_heatmap(scores[name].numpy(), f"{name.replace('_', '-')}, {which} W_pos", ax=ax, annotate=n_heads <= 8)
            if col == 0:
                ax.collections[0].colorbar.remove()
            else:
                ax.set_ylabel("")
            if row == 0:
                ax.set_xlabel("")
    fig.suptitle(f"Without the positional embedding — {model_name}", fontweight="bold")
    fig.tight_layout()
    return fig


def per_position_loss_figure(loss: Float[Tensor, "batch n_pred"], seq_len: int, model_name: str):
    """Mean loss at each position of ``BOS + r + r`` with a 95% band (normal approximation)."""
    x = np.arange(1, loss.shape[1] + 1)  # the position of the predicted token
    mean = loss.mean(0).numpy()
    sem = (loss.std(0) / max(1, loss.shape[0]) ** 0.5).numpy()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    line_with_band(ax, x, mean, mean - 1.96 * sem, mean + 1.96 * sem, label="loss", color=PALETTE[0])
    ax.axvspan(seq_len + 0.5, 2 * seq_len + 0.5, color=PALETTE[2], alpha=0.08, label="second repeat")
    ax.set_xlabel("position of the predicted token")
    ax.set_ylabel("loss (nats)")
    ax.set_title(f"Loss per position on repeated random tokens — {model_name}")
    ax.legend(loc="upper right", frameon=False)
    fig.tight_layout()
    return fig


def attention_example(
    model: HookedTransformer,
    tokens: Int[Tensor, " pos"],
    example_len: int,
    path: str | Path,
    tokenizer=None,
) -> dict:
    """Write ``{"tokens": [...], "heads": {"L.H": [[q × k]]}}`` for a short ``BOS + r' + r'``
    (``r'`` = the first ``example_len`` tokens of ``r``), for the report's interactive view."""
    r = tokens[1 : 1 + example_len]
    example = torch.cat([tokens[:1], r, r])[None]
    patterns = attention_patterns(model, example)[:, 0]  # [layer head q k]
    if tokenizer is not None:  # a `tokenizers.Tokenizer`: show each token as text
        labels = [tokenizer.decode([int(t)], skip_special_tokens=False) for t in example[0]]
    else:
        labels = [f"#{int(t)}" for t in example[0]]
    data = {
        "tokens": labels,
        "heads": {
            head_label(layer, head): np.round(patterns[layer, head].numpy(), 4).tolist()
            for layer in range(patterns.shape[0])
            for head in range(patterns.shape[1])
        },
    }
    atomic_write_text(Path(path), json.dumps(data))
    return data
