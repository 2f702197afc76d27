"""Head scores without positional information: the seed notebook's GPT-2 experiment.

A previous-token head must know *where* the previous token is, and in a model with an additive
positional embedding (``standard``, or ``shortformer`` where it enters queries and keys only) that
information comes from ``W_pos``. Zero-ablating ``hook_pos_embed`` and scoring every head again
shows which heads depend on it: an induction head built on a positional previous-token head falls
to the score of a head that attends uniformly (:func:`uniform_induction_score`). Rotary and ALiBi
models put position inside attention itself, so there is no embedding to ablate.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from .naming import head_label
from .scores import attention_patterns, head_scores

POS_HOOK = "hook_pos_embed"
ABLATABLE = ("standard", "shortformer")  # positional_embedding_type values with an embedding to zero


def no_embedding_reason(model: HookedTransformer) -> str | None:
    """Why the positional embedding cannot be ablated (``None`` when it can)."""
    kind = model.cfg.positional_embedding_type
    if kind in ABLATABLE:
        return None
    return f"{kind} positions are applied inside attention: the model has no positional embedding to ablate"


def _zero(activation: Tensor, hook) -> Tensor:
    return torch.zeros_like(activation)


@torch.no_grad()
def patterns_without_positions(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "layer batch head q k"]:
    """Every layer's attention pattern with the positional embedding set to zero."""
    if (reason := no_embedding_reason(model)) is not None:
        raise ValueError(reason)
    with model.hooks(fwd_hooks=[(POS_HOOK, _zero)]):
        return attention_patterns(model, tokens)


def scores_without_positions(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], seq_len: int
) -> dict[str, Float[Tensor, "layer head"]]:
    """The five head scores (:func:`scores.head_scores`) with ``hook_pos_embed`` zero-ablated."""
    return head_scores(patterns_without_positions(model, tokens), seq_len)


def uniform_induction_score(seq_len: int) -> float:
    """The induction score of a head attending uniformly to every key it may see (BOS included):
    the chance level a head without positional or content information falls to."""
    n = 1 + 2 * seq_len
    uniform = torch.tril(torch.ones(n, n))
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None, None]  # [layer batch head q k]
    return float(head_scores(uniform, seq_len)["induction"][0, 0])


def ablation_rows(
    before: dict[str, Float[Tensor, "layer head"]],
    after: dict[str, Float[Tensor, "layer head"]],
    heads: dict[str, list[tuple[int, int]]],
) -> list[list]:
    """One row per studied head: ``[head, kind, score with positions, without, drop]``; ``heads``
    maps a score name (``induction``, ``previous_token``) to the heads of that kind."""
    rows = []
    for kind, labels in heads.items():
        for layer, head in labels:
            b, a = float(before[kind][layer, head]), float(after[kind][layer, head])
            rows.append([head_label(layer, head), kind.replace("_", "-"), round(b, 4), round(a, 4), round(b - a, 4)])
    return rows


EVERY_HEAD_COLUMNS = ["head", "previous-token", "previous-token without W_pos", "induction", "induction without W_pos"]


def every_head_rows(
    before: dict[str, Float[Tensor, "layer head"]], after: dict[str, Float[Tensor, "layer head"]]
) -> list[list]:
    """One row per head (:data:`EVERY_HEAD_COLUMNS`): its previous-token and induction scores with
    and without the positional embedding."""
    n_layers, n_heads = before["induction"].shape
    return [[head_label(layer, head)] + [round(float(s[kind][layer, head]), 4)
                                         for kind in ("previous_token", "induction") for s in (before, after)]
            for layer in range(n_layers) for head in range(n_heads)]  # fmt: skip
