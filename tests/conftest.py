"""Shared fixtures. Tests run on 2 shared cores: one torch thread, tiny models."""

import pytest
import torch
from transformer_lens import HookedTransformer

from induction_heads.architecture import attn_only_config
from induction_heads.planted import planted_induction_model

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def planted():
    """The hand-built model: 0.0 previous-token head, 1.0 induction head (see planted.py)."""
    return planted_induction_model()


def random_attn_only(n_layers=2, d_model=24, n_heads=3, d_head=8, n_ctx=32, d_vocab=40, seed=0):
    cfg = attn_only_config(
        n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_head, n_ctx=n_ctx,
        d_vocab=d_vocab, seed=seed,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = HookedTransformer(cfg)
    with torch.no_grad():  # non-zero biases, so tests catch a forgotten bias term
        for name, p in model.named_parameters():
            if ".b_" in name:
                p.normal_(0, 0.1)
    return model.eval()


@pytest.fixture
def tiny_model():
    return random_attn_only()
