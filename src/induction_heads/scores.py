"""Head attention scores, sequence losses and head detectors (docs/methods/head_scores.md).

Conventions: ``tokens`` of repeated random sequences are ``BOS + r + r`` with ``len(r) = seq_len``,
so position 0 is BOS, the first repeat is positions ``1 … seq_len`` and the second repeat is
positions ``seq_len + 1 … 2·seq_len``.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from .naming import head_label, parse_head_label

SCORE_NAMES = ("current_token", "previous_token", "first_token", "duplicate_token", "induction")


@torch.no_grad()
def attention_patterns(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "layer batch head q k"]:
    """Every layer's attention pattern (from TransformerLens's cache). The unembedding is not
    computed: at a vocabulary of 50k it would be most of the cost."""
    _, cache = model.run_with_cache(
        tokens.to(model.cfg.device), names_filter=_is_pattern, return_type=None
    )
    return _stacked_patterns(model, cache)


@torch.no_grad()
def patterns_and_loss(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> tuple[Float[Tensor, "layer batch head q k"], Float[Tensor, "batch pos_minus_1"]]:
    """The attention patterns and the per-token loss (:func:`next_token_losses`) from one forward
    pass, where both are needed of the same tokens."""
    tokens = tokens.to(model.cfg.device)
    logits, cache = model.run_with_cache(tokens, names_filter=_is_pattern)
    return _stacked_patterns(model, cache), next_token_losses(logits, tokens).cpu()


def _is_pattern(hook_name: str) -> bool:
    return hook_name.endswith("hook_pattern")


def _stacked_patterns(model: HookedTransformer, cache) -> Float[Tensor, "layer batch head q k"]:
    return torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)]).cpu()


@torch.no_grad()
def patterns_from_qk(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "layer batch head q k"]:
    """Recompute each layer's pattern from the cached queries and keys (a sanity check of the
    cache): ``softmax(mask(q·k / scale))`` — with the rotated queries and keys of a rotary model,
    each layer's own scale (√d_head unless the architecture says otherwise) and its own mask
    (causal, or GPT-Neo's local window)."""
    rotary = model.cfg.positional_embedding_type == "rotary"
    q_name, k_name = ("hook_rot_q", "hook_rot_k") if rotary else ("hook_q", "hook_k")
    _, cache = model.run_with_cache(
        tokens.to(model.cfg.device), names_filter=lambda n: n.endswith((q_name, k_name))
    )
    out = []
    n = tokens.shape[1]
    for layer in range(model.cfg.n_layers):
        attn = model.blocks[layer].attn
        q = cache[f"blocks.{layer}.attn.{q_name}"]  # [batch pos head d_head]
        k = cache[f"blocks.{layer}.attn.{k_name}"]
        if k.shape[2] != q.shape[2]:  # grouped-query attention: each key head serves several queries
            k = k.repeat_interleave(q.shape[2] // k.shape[2], dim=2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / attn.attn_scale
        mask = attn._make_causal_mask(n, n, 0, scores.device)[0, 0]  # [q k]
        scores = scores.masked_fill(~mask, float("-inf"))
        out.append(scores.softmax(-1))
    return torch.stack(out).cpu()


def _diagonal_mean(
    patterns: Float[Tensor, "layer batch head q k"], offset: int, first_query: int
) -> Float[Tensor, "layer head"]:
    """Mean attention from query ``i`` to key ``i - offset``, over batch and queries ``i >= first_query``."""
    diag = patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)  # [layer batch head n_q]; i = j + offset
    start = max(0, first_query - offset)
    if start >= diag.shape[-1]:
        raise ValueError(f"no query at or after position {first_query} has a key at offset {offset}")
    return diag[..., start:].mean(dim=(1, -1))


def head_scores(
    patterns: Float[Tensor, "layer batch head q k"], seq_len: int
) -> dict[str, Float[Tensor, "layer head"]]:
    """The five attention scores (docs/methods/head_scores.md) on repeated random tokens ``BOS + r + r``.

    * current-token: the diagonal, over every query after BOS;
    * previous-token: the first sub-diagonal, over every query after BOS;
    * first-token: column 0 (BOS), over every query after BOS;
    * duplicate-token: offset ``seq_len`` (the same token earlier), queries in the second repeat;
    * induction: offset ``seq_len - 1`` (the token after the earlier copy), queries in the second repeat.
    """
    n_pos = patterns.shape[-1]
    if n_pos != 1 + 2 * seq_len:
        raise ValueError(f"patterns cover {n_pos} positions; BOS + r + r needs {1 + 2 * seq_len}")
    second = seq_len + 1
    return {
        "current_token": _diagonal_mean(patterns, 0, 1),
        "previous_token": _diagonal_mean(patterns, 1, 1),
        "first_token": patterns[..., 1:, 0].mean(dim=(1, -1)),
        "duplicate_token": _diagonal_mean(patterns, seq_len, second),
        "induction": _diagonal_mean(patterns, seq_len - 1, second),
    }


def induction_scores(
    model: HookedTransformer, rep_tokens: Int[Tensor, "batch pos"], seq_len: int
) -> Float[Tensor, "layer head"]:
    return head_scores(attention_patterns(model, rep_tokens), seq_len)["induction"]


def attention_at_offset(patterns: Float[Tensor, "layer batch head q k"], offset: int) -> Float[Tensor, "layer head"]:
    """Each head's mean attention from a query to the key ``offset`` positions before it (over
    every query that has one): a head that attends by distance alone scores high on any text."""
    return patterns.diagonal(offset=-offset, dim1=-2, dim2=-1).mean(dim=(1, -1))


@torch.no_grad()
def per_token_loss(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], batch_size: int | None = None
) -> Float[Tensor, "batch pos_minus_1"]:
    """Loss of predicting token ``i + 1`` at position ``i`` (nats), in batches
    (``None``: as many rows as :func:`rows_per_batch` allows)."""
    return _per_token(model, tokens, batch_size, with_hits=False)[0]


@torch.no_grad()
def per_token_loss_and_hits(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], batch_size: int | None = None
) -> tuple[Float[Tensor, "batch pos_minus_1"], Bool[Tensor, "batch pos_minus_1"]]:
    """The loss of predicting token ``i + 1`` at position ``i`` and whether that token is the
    model's top-1 guess there (a tie goes to the lower token id, as ``argmax`` breaks it)."""
    return _per_token(model, tokens, batch_size, with_hits=True)


LOGITS_BUDGET_BYTES = 512 * 2**20  # a batch's fp32 logits and the loss's temporaries (about 3 copies)
MAX_ROWS = 64


def rows_per_batch(n_pos: int, d_vocab: int, budget_bytes: int = LOGITS_BUDGET_BYTES, most: int = MAX_ROWS) -> int:
    """Rows of ``n_pos`` tokens whose logits fit the budget: 64 for the trained models
    (128 x 3072), 1 for GPT-2 small's whole context (1024 x 50257 is 206 MB a row)."""
    return max(1, min(most, budget_bytes // (3 * 4 * n_pos * d_vocab)))


def _per_token(model: HookedTransformer, tokens: Tensor, batch_size: int | None, with_hits: bool):
    batch_size = batch_size or rows_per_batch(tokens.shape[1], model.cfg.d_vocab)
    losses, hits = [], []
    for chunk in tokens.split(batch_size):
        chunk = chunk.to(model.cfg.device)
        logits = model(chunk, return_type="logits")
        losses.append(next_token_losses(logits, chunk).cpu())
        if with_hits:
            hits.append((logits[:, :-1].argmax(-1) == chunk[:, 1:]).cpu())
    return torch.cat(losses), (torch.cat(hits) if with_hits else None)


def next_token_losses(
    logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos_minus_1"]:
    """``-log p(tokens[:, i + 1])`` from the logits at position ``i``, as the log-sum-exp minus the
    target's logit: no log-softmax tensor of the logits' size is written (half the time of
    ``log_softmax`` + ``gather`` on CPU)."""
    logits = logits[:, :-1].float()
    return torch.logsumexp(logits, dim=-1) - logits.gather(-1, tokens[:, 1:, None])[..., 0]


def repeat_losses(
    loss: Float[Tensor, "batch pos_minus_1"], seq_len: int
) -> tuple[Float[Tensor, "batch"], Float[Tensor, "batch"]]:
    """Per-sequence mean loss on the first repeat and on the second repeat.

    The prediction of the first token of ``r`` (at BOS) and of the first token of the second repeat
    (at the last token of the first) cannot use copying, so the first repeat scores positions
    predicting tokens ``2 … seq_len`` and the second repeat those predicting tokens
    ``seq_len + 2 … 2·seq_len``.
    """
    if loss.shape[1] != 2 * seq_len:
        raise ValueError(f"loss covers {loss.shape[1]} predictions; BOS + r + r gives {2 * seq_len}")
    # loss[:, i] predicts token i + 1.
    first = loss[:, 1:seq_len].mean(-1)
    second = loss[:, seq_len + 1 :].mean(-1)
    return first, second


def detect_heads(
    scores: Float[Tensor, "layer head"], threshold: float, layers: list[int] | None = None
) -> list[str]:
    """Labels ("L.H") of the heads scoring at least ``threshold``, best first."""
    found = []
    for layer in range(scores.shape[0]) if layers is None else layers:
        for head in range(scores.shape[1]):
            if float(scores[layer, head]) >= threshold:
                found.append((float(scores[layer, head]), head_label(layer, head)))
    return [label for _, label in sorted(found, key=lambda x: -x[0])]


def best_head(scores: Float[Tensor, "layer head"], layers: list[int] | None = None) -> tuple[str, float]:
    """The label and score of the highest-scoring head (optionally within ``layers``)."""
    best = (-1.0, "")
    for layer in range(scores.shape[0]) if layers is None else layers:
        for head in range(scores.shape[1]):
            best = max(best, (float(scores[layer, head]), head_label(layer, head)))
    return best[1], best[0]


def induction_layers(n_layers: int) -> list[int] | None:
    """Where induction heads are searched: layers 1+ of a multi-layer model (an induction head
    needs an earlier previous-token head); every layer (``None``) of a one-layer model."""
    return list(range(1, n_layers)) or None


def head_summary(
    scores: dict[str, Float[Tensor, "layer head"]], thresholds: dict[str, float]
) -> list[tuple[str, object, str]]:
    """``(metric name, value, description)`` for every score: the best head, its score and the
    detected heads. Induction heads are searched in layers 1+ of a multi-layer model (they need
    an earlier previous-token head); ``prev_token_*`` aliases are what later analyses read."""
    n_layers = next(iter(scores.values())).shape[0]
    later = induction_layers(n_layers)
    rows: list[tuple[str, object, str]] = []
    for name, score in scores.items():
        layers = later if name == "induction" else None
        where = " in layers 1+" if layers else ""
        pretty = name.replace("_", "-")
        label, value = best_head(score, layers)
        rows += [
            (f"best_{name}_score", value, f"highest {pretty} score of any head{where}"),
            (f"best_{name}_head", label, f"the head with the highest {pretty} score{where}"),
            (f"{name}_heads", detect_heads(score, thresholds[name], layers),
             f"heads{where} with {pretty} score >= {thresholds[name]}, best first"),
        ]  # fmt: skip
    aliases = {r[0].replace("previous_token", "prev_token"): r for r in rows if "previous_token" in r[0]}
    return rows + [(alias, value, desc) for alias, (_, value, desc) in aliases.items()]


NAMED_KINDS = {"induction": "induction", "previous_token": "prev_token"}  # config key -> metric stem


def named_head_rows(named: dict[str, list[str]], n_layers: int, n_heads: int) -> list[tuple[str, object, str]]:
    """``(metric name, heads, description)`` for the heads a model entry names to study
    (``models.<m>.heads``): ``studied_induction_heads`` / ``studied_prev_token_heads``, which
    :func:`circuits.studied_heads` prefers to the detected ones. A head the model does not have
    is an error (the plan-time check cannot know every published model's head count)."""
    rows = []
    for kind, labels in named.items():
        for label in labels:
            layer, head = parse_head_label(label)
            if layer >= n_layers or head >= n_heads:
                raise ValueError(f"models.<entry>.heads.{kind}: {label} is not a head of this model "
                                 f"({n_layers} layers x {n_heads} heads)")  # fmt: skip
        if labels:
            rows.append((f"studied_{NAMED_KINDS[kind]}_heads", list(labels),
                         f"{kind.replace('_', '-')} heads named in the config: every analysis studies these"))  # fmt: skip
    return rows


def published_head_rows(
    published: dict, scores: dict[str, Float[Tensor, "layer head"]], thresholds: dict[str, float]
) -> tuple[list[list], list[tuple[str, object, str]]]:
    """Heads a paper names for this model (``models.<m>.published_heads``) against the detector:
    table rows ``[head, kind, score, threshold, found]`` and the metrics
    ``published_<kind>_heads_found`` / ``_missed`` (a head is found when its score reaches the
    threshold). A head the model does not have is an error."""
    rows, metrics = [], []
    source = published.get("source", "the config")
    for kind, labels in published.items():
        if kind == "source" or not labels:
            continue
        score, found, missed = scores[kind], [], []
        for label in labels:
            layer, head = parse_head_label(label)
            if layer >= score.shape[0] or head >= score.shape[1]:
                raise ValueError(f"models.<entry>.published_heads.{kind}: {label} is not a head of this model "
                                 f"({score.shape[0]} layers x {score.shape[1]} heads)")  # fmt: skip
            value = float(score[layer, head])
            hit = value >= thresholds[kind]
            (found if hit else missed).append(label)
            rows.append([label, kind.replace("_", "-"), round(value, 4), thresholds[kind], "yes" if hit else "no"])
        stem, words = NAMED_KINDS[kind], kind.replace("_", "-")
        metrics += [(f"published_{stem}_heads_found", found, f"{words} heads named by {source} that the detector finds"),
                    (f"published_{stem}_heads_missed", missed, f"{words} heads named by {source} below the threshold")]  # fmt: skip
    return rows, metrics
