"""The fused unembedding + cross-entropy against the unfused form and a float64 gradient check."""

import torch
import torch.nn.functional as F

from induction_heads.unembed_loss import unembed_cross_entropy


def _inputs(n=37, d=16, vocab=101, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    resid = torch.randn(n, d, generator=g, dtype=dtype) * 3  # large logits: the row max matters
    w_u = torch.randn(d, vocab, generator=g, dtype=dtype)
    b_u = torch.randn(vocab, generator=g, dtype=dtype)
    targets = torch.randint(0, vocab, (n,), generator=g)
    return [t.requires_grad_() for t in (resid, w_u, b_u)], targets


def test_loss_and_gradients_equal_the_unfused_cross_entropy():
    (resid, w_u, b_u), targets = _inputs()
    fused = unembed_cross_entropy(resid, w_u, b_u, targets)
    fused_grads = torch.autograd.grad(fused * 2.5, (resid, w_u, b_u))  # a non-unit upstream gradient
    reference = F.cross_entropy(F.linear(resid, w_u.T, b_u), targets)
    reference_grads = torch.autograd.grad(reference * 2.5, (resid, w_u, b_u))
    torch.testing.assert_close(fused, reference, rtol=1e-6, atol=1e-6)
    for got, want in zip(fused_grads, reference_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_gradients_pass_a_float64_gradient_check():
    (resid, w_u, b_u), targets = _inputs(n=6, d=4, vocab=9, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda r, w, b: unembed_cross_entropy(r, w, b, targets), (resid, w_u, b_u)
    )


def test_a_non_contiguous_residual_gives_the_same_loss():
    (resid, w_u, b_u), targets = _inputs(n=20)
    wide = torch.cat([resid, resid], 1)[:, : resid.shape[1]]  # same values, strided rows
    assert not wide.is_contiguous()
    torch.testing.assert_close(
        unembed_cross_entropy(wide, w_u, b_u, targets), unembed_cross_entropy(resid, w_u, b_u, targets)
    )
