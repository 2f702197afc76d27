"""Head ablation tables (docs/methods/ablation.md): loss increase per ablated head, circuit-only loss, and
induction scores after an ablation.

Definitions
-----------
* **Zero-ablation** of head ``L.H`` replaces its ``z`` (``blocks.L.attn.hook_z[..., H, :]``) by 0,
  so the head writes nothing (the layer's ``b_O`` is not the head's and stays).
* **Mean-ablation** replaces its ``z`` at every position by the mean of its clean ``z`` over *every
  batch row and every position* of the tokens being evaluated — one ``d_head`` vector per head.
  ``W_O`` is linear, so this is also the mean of the head's output. Means always come from the
  clean run, also when several heads are ablated together.
* **Loss** is the next-token cross-entropy (nats) at the scored prediction positions (position
  ``i`` predicts token ``i + 1``; see :func:`attribution.repeat_positions` for the repeats of
  ``BOS + r + r``); a head's **loss increase** is the mean over batch and scored positions of the
  ablated minus the clean loss.

Two implementations of the per-head table, which must agree (tests check 1e-4):

* :func:`ablation_losses_reference` — one TransformerLens forward pass per head with a hook;
* :func:`ablation_losses_fast` — one clean pass, then for each layer-``L`` head: add
  ``(replacement − z) W_O`` to the cached residual stream after layer ``L`` and recompute only the
  later layers (their queries, keys and values change; earlier and same-layer heads do not),
  batched over the heads of a layer; unembed only the scored positions. A last-layer head changes
  the logits by ``(replacement − z) W_O W_U``, a rank-``d_head`` update of the clean logits, which
  is cheaper than unembedding the residual stream whenever many positions are scored.

:func:`ablation_flops` counts the matrix-multiply FLOPs of both paths (the benchmark's prediction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from . import scores
from .attribution import check_attn_only
from .naming import head_label, parse_head_label

AblationKind = Literal["zero", "mean"]
KINDS: tuple[AblationKind, ...] = ("zero", "mean")
_MAX_LOGIT_ELEMENTS = 1 << 24  # rows × d_vocab per unembedding chunk (64 MiB in float32)


@dataclass
class AblationLosses:
    """Per-token losses at the scored positions, clean and with each head ablated."""

    clean: Float[Tensor, "batch n_scored"]
    ablated: Float[Tensor, "layer head batch n_scored"]

    def increase(self) -> Float[Tensor, "layer head"]:
        """Mean ablated minus mean clean loss, per head."""
        return self.ablated.mean(dim=(-2, -1)) - self.clean.mean()


# --------------------------------------------------------------------------- shared pieces


def all_positions(n_pos: int) -> Int[Tensor, "n"]:
    """Every prediction position of a sequence of ``n_pos`` tokens (``0 … n_pos − 2``)."""
    return torch.arange(n_pos - 1)


def head_replacements(
    z: Sequence[Float[Tensor, "batch pos head d_head"]], kind: AblationKind
) -> Float[Tensor, "layer head d_head"]:
    """What each head's ``z`` is replaced by: zeros, or its mean over batch and position."""
    stacked = torch.stack([zl.mean(dim=(0, 1)) for zl in z])
    if kind == "mean":
        return stacked
    if kind == "zero":
        return torch.zeros_like(stacked)
    raise ValueError(f"ablation kind must be one of {KINDS}, got {kind!r}")


def _validate_positions(positions: Int[Tensor, "n"], n_pos: int) -> Int[Tensor, "n"]:
    positions = torch.as_tensor(positions, dtype=torch.long)
    if positions.numel() == 0 or int(positions.min()) < 0 or int(positions.max()) > n_pos - 2:
        raise ValueError(f"scored positions must lie in 0 … {n_pos - 2} (position i predicts i + 1)")
    return positions


def _ablation_hook(
    heads: Sequence[int], replacement: Float[Tensor, "head d_head"]
) -> Callable[[Tensor, object], Tensor]:
    """A ``hook_z`` hook that overwrites the listed heads' ``z`` with their replacement."""
    idx = list(heads)

    def hook(z: Float[Tensor, "batch pos head d_head"], hook) -> Tensor:
        z = z.clone()
        z[:, :, idx] = replacement[idx].to(z.dtype)
        return z

    return hook


def _hooks_for(
    ablate: dict[int, list[int]], replacements: Float[Tensor, "layer head d_head"]
) -> list[tuple[str, Callable]]:
    return [
        (f"blocks.{layer}.attn.hook_z", _ablation_hook(heads, replacements[layer]))
        for layer, heads in ablate.items()
        if heads
    ]


def _token_losses(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"], positions
) -> Float[Tensor, "batch n_scored"]:
    """Cross-entropy of predicting ``tokens[:, i + 1]`` at each scored position ``i``."""
    lp = logits[:, positions].log_softmax(-1)
    return -lp.gather(-1, tokens[:, positions + 1, None])[..., 0]


@torch.no_grad()
def _clean_z_and_losses(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], positions
) -> tuple[list[Tensor], Float[Tensor, "batch n_scored"]]:
    logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_z"))
    z = [cache["z", layer] for layer in range(model.cfg.n_layers)]
    return z, _token_losses(logits, tokens, positions)


# --------------------------------------------------------------------------- reference


@torch.no_grad()
def ablation_losses_reference(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    positions: Int[Tensor, "n"],
    kind: AblationKind,
) -> AblationLosses:
    """One full TransformerLens forward pass per head, with a ``hook_z`` hook (the reference)."""
    check_attn_only(model)
    tokens = tokens.to(model.cfg.device)
    positions = _validate_positions(positions, tokens.shape[1])
    z, clean = _clean_z_and_losses(model, tokens, positions)
    repl = head_replacements(z, kind)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    ablated = torch.empty(n_layers, n_heads, *clean.shape)
    for layer in range(n_layers):
        for head in range(n_heads):
            logits = model.run_with_hooks(tokens, fwd_hooks=_hooks_for({layer: [head]}, repl))
            ablated[layer, head] = _token_losses(logits, tokens, positions).cpu()
    return AblationLosses(clean=clean.cpu(), ablated=ablated)


# --------------------------------------------------------------------------- fast


@dataclass
class _LayerWeights:
    """One layer's attention weights as fused 2-D matrices (one matmul for Q and K, one for V)."""

    w_qk: Float[Tensor, "two_hd d_model"]
    b_qk: Float[Tensor, "two_hd"]
    w_v: Float[Tensor, "hd d_model"]
    b_v: Float[Tensor, "hd"]
    w_o: Float[Tensor, "d_model hd"]
    b_o: Float[Tensor, "d_model"]
    scale: float


def _layer_weights(model: HookedTransformer, layer: int) -> _LayerWeights:
    attn = model.blocks[layer].attn
    d_model = model.cfg.d_model

    def flat(w: Tensor) -> Tensor:  # [head d_model d_head] -> [head·d_head, d_model]
        return w.permute(0, 2, 1).reshape(-1, d_model)

    return _LayerWeights(
        w_qk=torch.cat([flat(attn.W_Q), flat(attn.W_K)]),
        b_qk=torch.cat([attn.b_Q.reshape(-1), attn.b_K.reshape(-1)]),
        w_v=flat(attn.W_V),
        b_v=attn.b_V.reshape(-1),
        w_o=attn.W_O.reshape(-1, d_model).T.contiguous(),
        b_o=attn.b_O,
        scale=float(attn.attn_scale),
    )


def _attention_z(
    w: _LayerWeights, resid: Float[Tensor, "batch pos d_model"], pos_embed: Float[Tensor, "pos d_model"],
    n_heads: int,
) -> Float[Tensor, "batch pos head d_head"]:
    """The layer's ``z`` (same arithmetic as TransformerLens; shortformer: Q and K see the
    positional embedding, V does not)."""
    batch, n_pos, _ = resid.shape
    qk = F.linear(resid + pos_embed, w.w_qk, w.b_qk).view(batch, n_pos, 2 * n_heads, -1)
    q, k = qk.transpose(1, 2).chunk(2, dim=1)  # [batch head pos d_head] each
    v = F.linear(resid, w.w_v, w.b_v).view(batch, n_pos, n_heads, -1).transpose(1, 2)
    z = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / w.scale)
    return z.transpose(1, 2)


def _attention_out(
    w: _LayerWeights, resid: Float[Tensor, "batch pos d_model"], pos_embed: Tensor, n_heads: int
) -> Float[Tensor, "batch pos d_model"]:
    z = _attention_z(w, resid, pos_embed, n_heads)
    return F.linear(z.flatten(-2), w.w_o, w.b_o)


def _losses_from_logit_rows(
    rows: Int[Tensor, "n"], logits_fn: Callable[[slice], Tensor], targets: Int[Tensor, "n"], n_vocab: int
) -> Float[Tensor, "n"]:
    """Cross-entropy row by row chunk, so no more than ``_MAX_LOGIT_ELEMENTS`` logits live at once."""
    chunk = max(1, _MAX_LOGIT_ELEMENTS // n_vocab)
    out = torch.empty(len(rows), device=targets.device)
    for start in range(0, len(rows), chunk):
        sl = slice(start, start + chunk)
        out[sl] = F.cross_entropy(logits_fn(sl), targets[sl], reduction="none")
    return out


def _unembed_losses(
    model: HookedTransformer, resid: Float[Tensor, "rows d_model"], targets: Int[Tensor, "rows"]
) -> Float[Tensor, "rows"]:
    w_u, b_u = model.W_U, model.b_U
    return _losses_from_logit_rows(
        torch.arange(len(resid)), lambda sl: resid[sl] @ w_u + b_u, targets, model.cfg.d_vocab_out
    )


def _use_low_rank(cfg: HookedTransformerConfig, rows: int) -> bool:
    """Whether a last-layer head's rank-``d_head`` logit update beats unembedding ``rows`` rows:
    ``d_head·d_model·d_vocab`` (``W_O W_U``) + ``rows·d_head·d_vocab`` < ``rows·d_model·d_vocab``."""
    return cfg.d_head * cfg.d_model + rows * cfg.d_head < rows * cfg.d_model


@torch.no_grad()
def ablation_losses_fast(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    positions: Int[Tensor, "n"],
    kind: AblationKind,
) -> AblationLosses:
    """The per-head table from one clean pass plus the downstream recomputation (module docstring)."""
    check_attn_only(model)
    cfg = model.cfg
    n_layers, n_heads = cfg.n_layers, cfg.n_heads
    tokens = tokens.to(cfg.device)
    batch, n_pos = tokens.shape
    positions = _validate_positions(positions, n_pos).to(cfg.device)
    targets = tokens[:, positions + 1]  # [batch n_scored]
    weights = [_layer_weights(model, layer) for layer in range(n_layers)]
    pos_embed = model.W_pos[:n_pos]

    # Clean pass: the residual stream after every layer and every layer's z.
    resid = [model.W_E[tokens]]
    zs = []
    for w in weights:
        zs.append(_attention_z(w, resid[-1], pos_embed, n_heads))
        resid.append(resid[-1] + F.linear(zs[-1].flatten(-2), w.w_o, w.b_o))
    final = resid[-1][:, positions]  # [batch n_scored d_model]
    clean_logits = final @ model.W_U + model.b_U  # also reused by the low-rank path
    clean = F.cross_entropy(clean_logits.flatten(0, 1), targets.flatten(), reduction="none")
    clean = clean.view(batch, -1)
    repl = head_replacements(zs, kind)

    ablated = torch.empty(n_layers, n_heads, *targets.shape, device=cfg.device)
    rows = targets.numel()
    for layer in range(n_layers):
        dz = repl[layer][:, None, None, :] - zs[layer].permute(2, 0, 1, 3)  # [head batch pos d_head]
        w_o = model.W_O[layer]  # [head d_head d_model]
        if layer == n_layers - 1 and _use_low_rank(cfg, rows):
            for head in range(n_heads):
                # Logits change by (replacement − z) W_O W_U: a rank-d_head update.
                w_ou = w_o[head] @ model.W_U  # [d_head d_vocab]
                dzh = dz[head][:, positions].flatten(0, 1)  # [rows d_head]
                ablated[layer, head] = _losses_from_logit_rows(
                    torch.arange(rows),
                    lambda sl: clean_logits.flatten(0, 1)[sl] + dzh[sl] @ w_ou,
                    targets.flatten(), cfg.d_vocab_out,
                ).view_as(targets)
            continue
        # Every head of the layer at once, as a batch of n_heads·batch sequences.
        h = resid[layer + 1][None] + torch.einsum("hbpd,hdm->hbpm", dz, w_o)
        h = h.flatten(0, 1)  # [head·batch pos d_model]
        for later in range(layer + 1, n_layers):
            h = h + _attention_out(weights[later], h, pos_embed, n_heads)
        h = h[:, positions].flatten(0, 1)  # [head·batch·n_scored d_model]
        losses = _unembed_losses(model, h, targets.flatten().repeat(n_heads))
        ablated[layer] = losses.view(n_heads, *targets.shape)
    return AblationLosses(clean=clean.cpu(), ablated=ablated.cpu())


def ablation_losses(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    positions: Int[Tensor, "n"],
    kind: AblationKind,
    method: Literal["fast", "reference"] = "fast",
) -> AblationLosses:
    """Per-head ablation losses by either implementation."""
    if method == "fast":
        return ablation_losses_fast(model, tokens, positions, kind)
    if method == "reference":
        return ablation_losses_reference(model, tokens, positions, kind)
    raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")


# --------------------------------------------------------------------------- derived tables


def ranked_heads(increase: Float[Tensor, "layer head"]) -> list[str]:
    """Head labels sorted by loss increase, largest first."""
    order = increase.flatten().argsort(descending=True, stable=True)
    n_heads = increase.shape[1]
    return [head_label(int(i) // n_heads, int(i) % n_heads) for i in order]


def _heads_by_layer(labels: Iterable[str], n_layers: int, n_heads: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {layer: [] for layer in range(n_layers)}
    for label in labels:
        layer, head = parse_head_label(label)
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"head {label!r} is not in a {n_layers}-layer, {n_heads}-head model")
        out[layer].append(head)
    return out


@torch.no_grad()
def loss_with_ablated_heads(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    positions: Int[Tensor, "n"],
    heads: Sequence[str],
    kind: AblationKind,
) -> Float[Tensor, "batch n_scored"]:
    """Per-token loss with every head in ``heads`` ablated at once (one hooked forward pass)."""
    check_attn_only(model)
    cfg = model.cfg
    tokens = tokens.to(cfg.device)
    positions = _validate_positions(positions, tokens.shape[1])
    ablate = _heads_by_layer(heads, cfg.n_layers, cfg.n_heads)
    z, _ = _clean_z_and_losses(model, tokens, positions)
    logits = model.run_with_hooks(tokens, fwd_hooks=_hooks_for(ablate, head_replacements(z, kind)))
    return _token_losses(logits, tokens, positions).cpu()


def circuit_only_loss(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    positions: Int[Tensor, "n"],
    circuit: Sequence[str],
    kind: AblationKind,
) -> Float[Tensor, "batch n_scored"]:
    """Per-token loss when every head *outside* ``circuit`` ("L.H" labels) is ablated."""
    cfg = model.cfg
    _heads_by_layer(circuit, cfg.n_layers, cfg.n_heads)  # validates the labels
    keep = set(circuit)
    outside = [
        head_label(layer, head)
        for layer in range(cfg.n_layers)
        for head in range(cfg.n_heads)
        if head_label(layer, head) not in keep
    ]
    return loss_with_ablated_heads(model, tokens, positions, outside, kind)


@torch.no_grad()
def induction_scores_after_ablation(
    model: HookedTransformer,
    rep_tokens: Int[Tensor, "batch pos"],
    seq_len: int,
    head: str,
    kind: AblationKind = "zero",
) -> Float[Tensor, "layer head"]:
    """Every head's induction score (:func:`scores.head_scores`) with ``head`` ablated."""
    check_attn_only(model)
    cfg = model.cfg
    tokens = rep_tokens.to(cfg.device)
    ablate = _heads_by_layer([head], cfg.n_layers, cfg.n_heads)
    z, _ = _clean_z_and_losses(model, tokens, all_positions(tokens.shape[1]))
    patterns: dict[int, Tensor] = {}

    def keep_pattern(pattern: Tensor, hook) -> None:
        patterns[hook.layer()] = pattern.detach().cpu()

    hooks = _hooks_for(ablate, head_replacements(z, kind))
    hooks += [(f"blocks.{layer}.attn.hook_pattern", keep_pattern) for layer in range(cfg.n_layers)]
    model.run_with_hooks(tokens, fwd_hooks=hooks)
    stacked = torch.stack([patterns[layer] for layer in range(cfg.n_layers)])
    return scores.head_scores(stacked, seq_len)["induction"]


# --------------------------------------------------------------------------- FLOP counts


def attention_layer_flops(cfg: HookedTransformerConfig, batch: int, n_pos: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of one attention layer on ``batch`` sequences: Q, K, V,
    the full ``n_pos × n_pos`` score and pattern·V products, and the output projection."""
    hd = cfg.n_heads * cfg.d_head
    projections = 4 * 2 * batch * n_pos * cfg.d_model * hd  # Q, K, V, O
    attention = 2 * 2 * batch * cfg.n_heads * n_pos * n_pos * cfg.d_head  # q·k and pattern·v
    return projections + attention


def unembed_flops(cfg: HookedTransformerConfig, rows: int) -> int:
    return 2 * rows * cfg.d_model * cfg.d_vocab_out


def ablation_flops(
    cfg: HookedTransformerConfig, batch: int, n_pos: int, n_scored: int
) -> dict[str, int]:
    """Matmul FLOPs of the per-head ablation table by each implementation.

    * reference: a clean pass plus one pass per head, each ``n_layers`` attention layers and an
      unembedding of every position (TransformerLens unembeds them all);
    * fast: a clean pass unembedding the scored positions only; per layer-``L`` head, the residual
      update ``(replacement − z) W_O`` and layers ``L+1 …`` on all positions, then an unembedding
      of the scored positions — or, for last-layer heads where it is cheaper, ``W_O W_U`` and the
      rank-``d_head`` logit update.

    Softmaxes, embeddings look-ups and additions are not counted.
    """
    forward = cfg.n_layers * attention_layer_flops(cfg, batch, n_pos)
    rows = batch * n_scored
    reference = (1 + cfg.n_layers * cfg.n_heads) * (forward + unembed_flops(cfg, batch * n_pos))
    fast = forward + unembed_flops(cfg, rows)
    for layer in range(cfg.n_layers):
        if layer == cfg.n_layers - 1 and _use_low_rank(cfg, rows):
            w_ou = 2 * cfg.d_head * cfg.d_model * cfg.d_vocab_out
            per_head = w_ou + 2 * rows * cfg.d_head * cfg.d_vocab_out
        else:
            delta = 2 * batch * n_pos * cfg.d_head * cfg.d_model
            later = (cfg.n_layers - 1 - layer) * attention_layer_flops(cfg, batch, n_pos)
            per_head = delta + later + unembed_flops(cfg, rows)
        fast += cfg.n_heads * per_head
    return {"reference": reference, "fast": fast}
