"""Path patching: a causal test of K-composition between a previous-token head and an
induction head.

Set-up. The *clean* sequences are repeated random tokens ``BOS + r + r``; the *corrupted* ones
are the same tokens with the first repeat shuffled, ``BOS + shuffle(r) + r``
(:func:`shuffle_first_repeat`). In the corrupted run the previous-token head (the *sender*)
writes, at each first-repeat position, a different previous token.

Patching a path. Let ``Δ = out_sender(corrupted) − out_sender(clean)`` be the change in the
sender's output ``z W_O`` at every position. The clean run is repeated with ``Δ`` added to the
*receiver*'s (the induction head's) key input only, its query input only, its value input only,
or all three (``paths``). Only that one input of that one head changes: every other head, later
layers included, reads the clean sender output, so only the direct path sender → receiver input
is patched; what the receiver then writes flows on through the rest of the model as usual.
TransformerLens's split inputs (``use_split_qkv_input``, hooks ``blocks.L.hook_{q,k,v}_input``
of shape ``[batch, pos, head, d_model]``) carry one residual stream per head and input, before the
block's LayerNorm (which is recomputed on the patched input) and before the shortformer
positional embedding is added.

Measures, per sequence (so intervals come from a bootstrap over sequences):

* the receiver's **induction score** (attention along offset ``seq_len − 1``, queries in the second
  repeat, as :func:`scores.head_scores`), patched minus clean;
* the **second-repeat loss** (positions of :func:`attribution.repeat_positions`, clean tokens as
  targets), patched minus clean.

The K-composition account predicts that the key path carries the effect: the induction head
finds the token after the earlier copy through keys built by the previous-token head; the query
(the current token) and the value (the token to copy) do not need it. The value path cannot move
the attention pattern at all (the pattern depends on queries and keys only): its induction-score
change is 0 by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from .attribution import repeat_positions
from .metrics import bootstrap_means

PATHS = ("key", "query", "value")
ALL = "all"  # the three inputs at once
_HOOK = {"key": "k", "query": "q", "value": "v"}

Head = tuple[int, int]


def shuffle_first_repeat(tokens: Int[Tensor, "batch pos"], seq_len: int, seed: int) -> Int[Tensor, "batch pos"]:
    """The corrupted sequences: each row's first repeat (positions ``1 … seq_len`` of
    ``BOS + r + r``) permuted, seeded; the rest unchanged."""
    if tokens.shape[1] != 1 + 2 * seq_len:
        raise ValueError(f"tokens have {tokens.shape[1]} positions; BOS + r + r needs {1 + 2 * seq_len}")
    gen = torch.Generator().manual_seed(seed)
    out = tokens.clone()
    for row in out:
        row[1 : 1 + seq_len] = row[1 : 1 + seq_len][torch.randperm(seq_len, generator=gen)]
    return out


def check_patchable(model: HookedTransformer, sender: Head, receiver: Head) -> None:
    """Refuse what path patching of one head's inputs cannot express."""
    cfg = model.cfg
    n_kv = getattr(cfg, "n_key_value_heads", None)
    if n_kv is not None and n_kv != cfg.n_heads:
        raise ValueError(
            f"grouped-query attention ({n_kv} key/value heads for {cfg.n_heads} query heads): a key "
            "or value input is shared by several heads, so one head's key path cannot be patched alone"
        )
    if sender[0] >= receiver[0]:
        raise ValueError(f"the sender {sender} must be in an earlier layer than the receiver {receiver}")


@contextmanager
def split_qkv_inputs(model: HookedTransformer):
    """TransformerLens's per-head query/key/value inputs, switched on for the block only."""
    before = model.cfg.use_split_qkv_input
    model.set_use_split_qkv_input(True)
    try:
        yield model
    finally:
        model.set_use_split_qkv_input(before)


@torch.no_grad()
def head_output(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], head: Head
) -> Float[Tensor, "batch pos d_model"]:
    """What ``head`` writes into the residual stream, ``z W_O`` (no ``b_O``: it is the layer's)."""
    layer, h = head
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{layer}.attn.hook_z")
    return cache["z", layer][:, :, h] @ model.W_O[layer, h]


@torch.no_grad()
def patched_run(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    delta: Float[Tensor, "batch pos d_model"] | None,
    receiver: Head,
    paths: Sequence[str],
) -> tuple[Float[Tensor, "batch pos d_vocab"], Float[Tensor, "batch q k"]]:
    """The model's logits and the receiver's attention pattern with ``delta`` added to the
    receiver's inputs named in ``paths`` (none, or ``delta=None``: the clean run)."""
    layer, h = receiver
    unknown = set(paths) - set(PATHS)
    if unknown:
        raise ValueError(f"paths must be among {PATHS}, got {sorted(unknown)}")
    kept: dict[str, Tensor] = {}

    def add_delta(x: Float[Tensor, "batch pos head d_model"], hook) -> Tensor:
        x = x.clone()
        x[:, :, h] += delta.to(x.dtype)
        return x

    def keep_pattern(pattern: Float[Tensor, "batch head q k"], hook) -> None:
        kept["pattern"] = pattern[:, h].detach()

    hooks = [(f"blocks.{layer}.attn.hook_pattern", keep_pattern)]
    if delta is not None:
        hooks += [(f"blocks.{layer}.hook_{_HOOK[p]}_input", add_delta) for p in paths]
    with split_qkv_inputs(model):
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return logits, kept["pattern"]


def induction_per_sequence(pattern: Float[Tensor, "batch q k"], seq_len: int) -> Float[Tensor, "batch"]:
    """One head's induction score per sequence on ``BOS + r + r``: mean attention from each
    second-repeat query ``i`` to ``i − (seq_len − 1)`` (the token after the earlier copy)."""
    queries = torch.arange(1 + seq_len, 1 + 2 * seq_len, device=pattern.device)
    return pattern[:, queries, queries - (seq_len - 1)].mean(-1)


def second_repeat_loss(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"], seq_len: int
) -> Float[Tensor, "batch"]:
    """Mean next-token loss per sequence on the second repeat (:func:`attribution.repeat_positions`)."""
    _, second = repeat_positions(seq_len)
    second = second.to(logits.device)
    lp = logits[:, second].log_softmax(-1)
    return -lp.gather(-1, tokens[:, second + 1, None])[..., 0].mean(-1)


@dataclass
class PathPatching:
    """Per-sequence measures of the clean run and of every patched path."""

    sender: Head
    receiver: Head
    induction_clean: Float[Tensor, "batch"]
    loss_clean: Float[Tensor, "batch"]
    induction: dict[str, Tensor] = field(default_factory=dict)  # path -> [batch]
    loss: dict[str, Tensor] = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        return list(self.induction)

    def induction_change(self, path: str) -> Float[Tensor, "batch"]:
        return self.induction[path] - self.induction_clean

    def loss_change(self, path: str) -> Float[Tensor, "batch"]:
        return self.loss[path] - self.loss_clean


@torch.no_grad()
def path_patching(
    model: HookedTransformer,
    clean: Int[Tensor, "batch pos"],
    corrupted: Int[Tensor, "batch pos"],
    seq_len: int,
    sender: Head,
    receiver: Head,
    paths: Sequence[str] = (*PATHS, ALL),
    batch_size: int = 16,
) -> PathPatching:
    """Patch the sender's corrupted-run output into each of the receiver's inputs (module
    docstring); ``"all"`` patches the three at once."""
    check_patchable(model, sender, receiver)
    if clean.shape != corrupted.shape:
        raise ValueError(f"clean {tuple(clean.shape)} and corrupted {tuple(corrupted.shape)} differ in shape")
    if clean.shape[1] != 1 + 2 * seq_len:
        raise ValueError(f"tokens have {clean.shape[1]} positions; BOS + r + r needs {1 + 2 * seq_len}")
    device = model.cfg.device
    parts: dict[str, list[list[Tensor]]] = {"clean": [[], []], **{p: [[], []] for p in paths}}
    for start in range(0, len(clean), batch_size):
        cl = clean[start : start + batch_size].to(device)
        co = corrupted[start : start + batch_size].to(device)
        delta = head_output(model, co, sender) - head_output(model, cl, sender)
        for name in ("clean", *paths):
            which = () if name == "clean" else (PATHS if name == ALL else (name,))
            logits, pattern = patched_run(model, cl, delta, receiver, which)
            parts[name][0].append(induction_per_sequence(pattern, seq_len).cpu())
            parts[name][1].append(second_repeat_loss(logits, cl, seq_len).cpu())
    cat = {name: (torch.cat(a), torch.cat(b)) for name, (a, b) in parts.items()}
    result = PathPatching(sender, receiver, *cat.pop("clean"))
    for name, (ind, loss) in cat.items():
        result.induction[name], result.loss[name] = ind, loss
    return result


def path_shares(
    changes: dict[str, np.ndarray], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, tuple[float, float]]]:
    """Each single path's share of the summed absolute mean change of the single paths
    (``|mean Δ_p| / Σ_q |mean Δ_q|``), with a percentile bootstrap interval over sequences
    (the same resampled sequences for every path). A share is NaN when no path changes anything."""
    names = [p for p in PATHS if p in changes]
    x = np.stack([np.asarray(changes[p], dtype=np.float64) for p in names], axis=1)  # [n path]

    def shares(means: np.ndarray) -> np.ndarray:
        a = np.abs(means)
        total = a.sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, a / total, np.nan)

    point = shares(x.mean(0))
    boot = shares(bootstrap_means(x, n_boot, seed))  # [B path]
    alpha = (1 - level) / 2
    out = {}
    for i, p in enumerate(names):
        col = boot[:, i][~np.isnan(boot[:, i])]
        ci = (float(np.quantile(col, alpha)), float(np.quantile(col, 1 - alpha))) if col.size else (np.nan, np.nan)
        out[p] = (float(point[i]), ci)
    return out
