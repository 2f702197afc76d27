"""The unembedding fused with the next-token cross-entropy, for training on a CPU.

``F.cross_entropy(F.linear(resid, W_U.T, b_U), targets)`` keeps the logits, their log-softmax
and, in the backward pass, a zero-filled tensor of the same ``[tokens, vocab]`` shape for the
gradient of the picked entries: three full passes over memory besides the matrix products, and
at vocabulary 3072 about a third of a training step on a 2-core CPU. Here the forward pass turns
the logits into unnormalised probabilities in their own memory and the backward pass makes the
logits' gradient from those in one pass: two ``[tokens, vocab]`` tensors, no zero fill, no
log-softmax kept. Same arithmetic as log-softmax (subtract the row maximum, exponentiate,
sum); ``tests/test_unembed_loss.py`` checks loss and gradients against the unfused form and
against a float64 gradient check.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


class _UnembedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, resid: Tensor, w_u: Tensor, b_u: Tensor, targets: Tensor) -> Tensor:
        logits = torch.addmm(b_u, resid, w_u)  # [n vocab]
        target_logit = logits.gather(1, targets[:, None]).squeeze(1)  # [n]
        row_max = logits.amax(1, keepdim=True)  # [n 1]
        probs = logits.sub_(row_max).exp_()  # unnormalised softmax, in the logits' memory
        total = probs.sum(1)  # [n]
        losses = row_max.squeeze(1) + total.log() - target_logit  # -log softmax at the target
        ctx.save_for_backward(resid, w_u, probs, total, targets)
        return losses.mean()

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        resid, w_u, probs, total, targets = ctx.saved_tensors
        n = resid.shape[0]
        scale = grad_loss / n  # d(mean)/d(loss of one token)
        grad_logits = probs * (scale / total)[:, None]  # softmax · scale  [n vocab]
        grad_logits[torch.arange(n, device=targets.device), targets] -= scale
        grad_resid = grad_logits @ w_u.T if ctx.needs_input_grad[0] else None
        grad_w = resid.T @ grad_logits if ctx.needs_input_grad[1] else None
        grad_b = grad_logits.sum(0) if ctx.needs_input_grad[2] else None
        return grad_resid, grad_w, grad_b, None


def unembed_cross_entropy(
    resid: Float[Tensor, "n d_model"],
    w_u: Float[Tensor, "d_model vocab"],
    b_u: Float[Tensor, "vocab"],
    targets: Int[Tensor, "n"],
) -> Float[Tensor, ""]:
    """Mean cross-entropy of ``targets`` under the logits ``resid @ w_u + b_u``, without
    a log-softmax tensor (see the module docstring)."""
    return _UnembedCrossEntropy.apply(resid.contiguous(), w_u, b_u, targets)
