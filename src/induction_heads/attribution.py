"""Direct logit attribution (DLA) for attention-only models (docs/methods/logit_attribution.md).

In the ARENA architecture (attention only, no LayerNorm, shortformer positional embeddings) the
final residual stream is exactly

    resid_final = W_E[token] + Σ_layers Σ_heads z^{L.H} W_O^{L.H} + Σ_layers b_O^L

(the positional embedding feeds queries and keys only, and ``b_V`` is part of each head's ``z``).
Unembedding is linear, so the logit of the correct next token splits into

* ``direct``: the embedding path ``W_E[tok] · W_U[:, correct]``;
* ``heads[L, H]``: each head's output ``z W_O · W_U[:, correct]``;
* ``bias``: ``Σ_L b_O^L · W_U[:, correct] + b_U[correct]``,

and the parts sum to the logit — :meth:`LogitAttribution.max_abs_error` checks that against the
model's own logits. Position ``i`` predicts token ``i + 1``, as in :func:`scores.per_token_loss`.

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

from .naming import head_label, parse_head_label


def attn_only_problems(cfg) -> list[str]:
    """Why a model's residual stream holds more than embeddings, head outputs and biases (empty:
    it does not); ``cfg`` is a ``HookedTransformerConfig``."""
    problems = []
    if not cfg.attn_only:
        problems.append("attn_only must be True (MLPs would add terms)")
    if cfg.normalization_type is not None:
        problems.append(f"normalization_type must be None, not {cfg.normalization_type!r}")
    if cfg.positional_embedding_type != "shortformer":
        problems.append(
            f"positional_embedding_type must be 'shortformer', not {cfg.positional_embedding_type!r}"
        )
    if getattr(cfg, "attn_scores_soft_cap", -1.0) > 0 or getattr(cfg, "use_attention_sinks", False):
        problems.append("attention soft-capping and attention sinks are not supported")
    if getattr(cfg, "output_logits_soft_cap", -1.0) > 0:
        problems.append("output logit soft-capping is not supported")
    return problems


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
    bias: Float[Tensor, "batch pos"]  # Σ b_O and b_U

    def total(self) -> Float[Tensor, "batch pos"]:
        """The sum of the parts (should equal :attr:`logits`)."""
        return self.direct + self.heads.sum(dim=(-2, -1)) + self.bias

    def max_abs_error(self) -> float:
        """Largest absolute difference between the sum of the parts and the model's logit."""
        return float((self.total() - self.logits).abs().max())

    def head_means(self, positions: Int[Tensor, "n"]) -> Float[Tensor, "layer head"]:
        """Each head's part, averaged over the batch and the given positions."""
        return self.heads[:, positions].mean(dim=(0, 1))

    def part_means(self, positions: Int[Tensor, "n"]) -> dict[str, float]:
        """The mean logit and the mean of each non-head part over the batch and ``positions``."""
        return {
            "logit": float(self.logits[:, positions].mean()),
            "direct": float(self.direct[:, positions].mean()),
            "bias": float(self.bias[:, positions].mean()),
            "heads": float(self.heads[:, positions].sum(dim=(-2, -1)).mean()),
        }

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


@torch.no_grad()
def logit_attribution(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], centered: bool = False
) -> LogitAttribution:
    """Split the correct-next-token logit at positions ``0 … pos − 2`` into its parts.

    Head outputs come from the cached ``blocks.L.attn.hook_z`` times ``W_O``; see the module
    docstring for the parts and for ``centered``.
    """
    check_attn_only(model)
    tokens = tokens.to(model.cfg.device)
    targets = tokens[:, 1:]
    logits, cache = model.run_with_cache(
        tokens, names_filter=lambda n: n.endswith("hook_z") or n == "hook_embed"
    )
    u, b_u = _unembed_columns(model, targets, centered)  # [batch pos d_model], [batch pos]
    correct = logits[:, :-1].gather(-1, targets[..., None])[..., 0]
    if centered:
        correct = correct - logits[:, :-1].mean(-1)

    direct = (cache["hook_embed"][:, :-1] * u).sum(-1)
    heads = []
    for layer in range(model.cfg.n_layers):
        z = cache["z", layer][:, :-1]  # [batch pos head d_head]
        # Project the logit direction back through W_O (d_head per head) instead of materialising
        # every head's d_model output: same product, far less memory.
        direction = torch.einsum("hdm,bpm->bphd", model.W_O[layer], u)
        heads.append((z * direction).sum(-1))
    bias = (model.b_O.sum(0) * u).sum(-1) + b_u
    return LogitAttribution(
        logits=correct.cpu(),
        direct=direct.cpu(),
        heads=torch.stack(heads, dim=-2).cpu(),
        bias=bias.cpu(),
    )


def dla_max_abs_error(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> float:
    """Largest |Σ parts − logit| of :func:`logit_attribution` on ``tokens``."""
    return logit_attribution(model, tokens).max_abs_error()
