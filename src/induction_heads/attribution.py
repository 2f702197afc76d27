"""Direct logit attribution (DLA) (docs/methods/logit_attribution.md).

The final residual stream is a sum of the parts that wrote to it,

    resid_final = W_E[token] (+ W_pos[pos]) + Σ_layers Σ_heads z^{L.H} W_O^{L.H} + Σ_layers mlp_out^L + Σ_layers b_O^L

(``W_pos`` only with standard position embeddings: shortformer and rotary positions feed queries
and keys only; ``mlp_out`` only where there are MLPs; ``b_V`` is part of each head's ``z``). The
final normalisation is linear once its per-token scale is fixed: with that scale taken from the
model's own run (``ln_final.hook_scale``), LayerNorm maps ``x`` to ``centre(x) · w / scale + b``,
so the logit of the correct token ``t`` is each part ``x`` times the *effective direction*
``centre(w ⊙ W_U[:, t]) / scale`` (no centring under RMSNorm; the plain ``W_U[:, t]`` without a
normalisation), plus ``b · W_U[:, t] + b_U[t]``. The parts:

* ``direct``: the embedding path;
* ``pos``: the position embedding (zero unless it enters the residual stream);
* ``heads[L, H]``: each head's output;
* ``mlps[L]``: each MLP's output (none in an attention-only model);
* ``bias``: the attention output biases, the final normalisation's bias and ``b_U``,

and they sum to the logit — :meth:`LogitAttribution.max_abs_error` checks that against the
model's own logits. In ARENA's architecture (attention only, no LayerNorm, shortformer) the scale
is 1 and the parts are the plain products of ARENA's exercise. Position ``i`` predicts token
``i + 1``, as in :func:`scores.per_token_loss`.

With ``centered=True`` the unembedding is centred over the vocabulary first (``W_U`` and ``b_U``
minus their mean over tokens), so the parts sum to *the correct logit minus the mean logit*: the
part of the logit that softmax sees, free of any shift shared by all tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from .applicability import attn_only_problems, dla_problems
from .naming import head_label, parse_head_label


def check_attn_only(model: HookedTransformer) -> None:
    """Refuse models whose residual stream holds more than embeddings, head outputs and biases."""
    problems = attn_only_problems(model.cfg)
    if problems:
        raise ValueError("model is not an ARENA-style attention-only transformer: " + "; ".join(problems))


def repeat_positions(seq_len: int) -> tuple[Int[Tensor, "n_first"], Int[Tensor, "n_second"]]:
    """Prediction positions scored on the first and second repeat of ``BOS + r + r``.

    The same positions as :func:`scores.repeat_losses`: position ``i`` predicts token ``i + 1``;
    the first repeat scores ``1 … seq_len − 1``, the second ``seq_len + 1 … 2·seq_len − 1`` (the
    first token of each repeat cannot be predicted by copying).
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    return torch.arange(1, seq_len), torch.arange(seq_len + 1, 2 * seq_len)


@dataclass
class LogitAttribution:
    """The correct-next-token logit at every position, and its parts."""

    logits: Float[Tensor, "batch pos"]  # the model's own logit of the correct next token
    direct: Float[Tensor, "batch pos"]  # embedding path
    heads: Float[Tensor, "batch pos layer head"]  # each head's output
    bias: Float[Tensor, "batch pos"]  # Σ b_O, the final normalisation's bias and b_U
    pos: Float[Tensor, "batch pos"] | None = None  # position embedding (standard positions only)
    mlps: Float[Tensor, "batch pos layer"] | None = None  # each MLP's output (models with MLPs)

    def total(self) -> Float[Tensor, "batch pos"]:
        """The sum of the parts (should equal :attr:`logits`)."""
        total = self.direct + self.heads.sum(dim=(-2, -1)) + self.bias
        if self.pos is not None:
            total = total + self.pos
        if self.mlps is not None:
            total = total + self.mlps.sum(-1)
        return total

    def max_abs_error(self) -> float:
        """Largest absolute difference between the sum of the parts and the model's logit."""
        return float((self.total() - self.logits).abs().max())

    def head_means(self, positions: Int[Tensor, "n"]) -> Float[Tensor, "layer head"]:
        """Each head's part, averaged over the batch and the given positions."""
        return self.heads[:, positions].mean(dim=(0, 1))

    def part_means(self, positions: Int[Tensor, "n"]) -> dict[str, float]:
        """The mean logit and the mean of each part that is not a single head ("pos" and
        "mlp L" only where the model has them) over the batch and ``positions``."""
        means = {
            "logit": float(self.logits[:, positions].mean()),
            "direct": float(self.direct[:, positions].mean()),
            "bias": float(self.bias[:, positions].mean()),
            "heads": float(self.heads[:, positions].sum(dim=(-2, -1)).mean()),
        }
        if self.pos is not None:
            means["pos"] = float(self.pos[:, positions].mean())
        if self.mlps is not None:
            for layer, value in enumerate(self.mlps[:, positions].mean(dim=(0, 1)).tolist()):
                means[f"mlp {layer}"] = value
        return means

    def carried_by(self, labels: Sequence[str]) -> Float[Tensor, "batch pos"]:
        """The summed part of the heads ``labels`` ("L.H") at every position."""
        if not labels:
            raise ValueError("carried_by needs at least one head label")
        return sum(self.heads[..., layer, head] for layer, head in map(parse_head_label, labels))

    def share(self, labels: Sequence[str], positions: Int[Tensor, "n"]) -> float:
        """Fraction of the mean correct logit over ``positions`` carried by the heads ``labels``."""
        carried = self.carried_by(labels)[:, positions]
        return float(carried.mean() / self.logits[:, positions].mean())

    def top_head(self, positions: Int[Tensor, "n"]) -> str:
        """Label of the head with the largest mean part over ``positions``."""
        means = self.head_means(positions)
        index = int(means.flatten().argmax())
        return head_label(index // means.shape[1], index % means.shape[1])


def _unembed_columns(
    model: HookedTransformer, targets: Int[Tensor, "batch pos"], centered: bool
) -> tuple[Float[Tensor, "batch pos d_model"], Float[Tensor, "batch pos"]]:
    """``W_U[:, target]`` and ``b_U[target]`` (centred over the vocabulary if asked)."""
    w_u, b_u = model.W_U, model.b_U
    if centered:
        w_u = w_u - w_u.mean(dim=-1, keepdim=True)
        b_u = b_u - b_u.mean()
    return w_u.T[targets], b_u[targets]


def through_final_norm(
    model: HookedTransformer, u: Float[Tensor, "batch pos d_model"], scale: Float[Tensor, "batch pos 1"] | None
) -> tuple[Float[Tensor, "batch pos d_model"], Float[Tensor, "batch pos"]]:
    """The effective direction of unembedding columns ``u`` for a residual-stream part, and the
    constant the final normalisation adds: with the per-token ``scale`` of the model's own run,
    a part ``x`` contributes ``x · direction`` and the norm's bias ``offset``.

    LayerNorm: ``centre(x) · (w ⊙ u) / scale = x · centre(w ⊙ u) / scale``, offset ``b · u``;
    RMSNorm: no centring; no normalisation: ``u`` itself. ``w`` and ``b`` are 1 and 0 once folded
    (``LNPre``/``RMSPre``)."""
    norm_type = model.cfg.normalization_type
    if norm_type is None:
        return u, torch.zeros(u.shape[:-1], device=u.device, dtype=u.dtype)
    ln = model.ln_final
    weight, bias = getattr(ln, "w", None), getattr(ln, "b", None)
    direction = u * weight if weight is not None else u
    if norm_type in ("LN", "LNPre"):
        direction = direction - direction.mean(-1, keepdim=True)
    offset = (u * bias).sum(-1) if bias is not None else torch.zeros(u.shape[:-1], device=u.device, dtype=u.dtype)
    return direction / scale, offset


def check_linear_logit_path(model: HookedTransformer) -> None:
    """Refuse models whose logits are not a linear read of the residual-stream parts."""
    problems = dla_problems(model.cfg)
    if problems:
        raise ValueError("direct logit attribution does not apply to this model: " + "; ".join(problems))


@torch.no_grad()
def logit_attribution(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], centered: bool = False
) -> LogitAttribution:
    """Split the correct-next-token logit at positions ``0 … pos − 2`` into its parts.

    Head outputs come from the cached ``blocks.L.attn.hook_z`` times ``W_O``, MLP outputs from
    ``blocks.L.hook_mlp_out``, the final normalisation's scale from ``ln_final.hook_scale``; see
    the module docstring for the parts and for ``centered``.
    """
    check_linear_logit_path(model)
    cfg = model.cfg
    tokens = tokens.to(cfg.device)
    targets = tokens[:, 1:]
    has_pos = cfg.positional_embedding_type == "standard"  # the only kind that enters the residual
    has_mlps = not cfg.attn_only
    wanted = {"hook_embed", "hook_pos_embed", "ln_final.hook_scale"}
    logits, cache = model.run_with_cache(
        tokens, names_filter=lambda n: n.endswith(("hook_z", "hook_mlp_out")) or n in wanted
    )
    u, b_u = _unembed_columns(model, targets, centered)  # [batch pos d_model], [batch pos]
    scale = cache["ln_final.hook_scale"][:, :-1] if cfg.normalization_type is not None else None
    u, norm_offset = through_final_norm(model, u, scale)
    correct = logits[:, :-1].gather(-1, targets[..., None])[..., 0]
    if centered:
        correct = correct - logits[:, :-1].mean(-1)

    def read(part: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos"]:
        return (part[:, :-1] * u).sum(-1)

    heads = []
    for layer in range(cfg.n_layers):
        z = cache["z", layer][:, :-1]  # [batch pos head d_head]
        # Project the logit direction back through W_O (d_head per head) instead of materialising
        # every head's d_model output: same product, far less memory.
        direction = torch.einsum("hdm,bpm->bphd", model.W_O[layer], u)
        heads.append((z * direction).sum(-1))
    mlps = [read(cache["mlp_out", layer]) for layer in range(cfg.n_layers)] if has_mlps else None
    bias = (model.b_O.sum(0) * u).sum(-1) + norm_offset + b_u
    return LogitAttribution(
        logits=correct.cpu(),
        direct=read(cache["hook_embed"]).cpu(),
        heads=torch.stack(heads, dim=-2).cpu(),
        bias=bias.cpu(),
        pos=read(cache["hook_pos_embed"]).cpu() if has_pos else None,
        mlps=torch.stack(mlps, dim=-1).cpu() if has_mlps else None,
    )


def dla_max_abs_error(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> float:
    """Largest |Σ parts − logit| of :func:`logit_attribution` on ``tokens``."""
    return logit_attribution(model, tokens).max_abs_error()
