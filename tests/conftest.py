"""Shared fixtures. Tests run on 2 shared cores: one torch thread, tiny models, and one real run
of the whole DAG on config/smoke.yaml that every workflow test reads."""

import matplotlib
import pytest
import torch
from transformer_lens import HookedTransformer

from induction_heads.architecture import attn_only_config
from induction_heads.planted import planted_induction_model

matplotlib.use("Agg")  # tests draw to files; the library leaves the backend to its callers
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def planted():
    """The hand-built model: 0.0 previous-token head, 1.0 induction head (see planted.py)."""
    return planted_induction_model()


def noisy_model(
    n_layers: int = 2,
    seed: int = 0,
    weight_std: float = 0.3,
    bias_std: float = 0.5,
    init_seed: int | None = None,
    **shape,
) -> HookedTransformer:
    """A small seeded attention-only model whose every parameter, biases included, is random
    (non-zero biases, so tests catch a forgotten bias term)."""
    shape = dict(d_model=16, n_heads=3, d_head=4, n_ctx=24, d_vocab=30) | shape
    model = HookedTransformer(attn_only_config(n_layers=n_layers, seed=seed, **shape))
    gen = torch.Generator().manual_seed(seed if init_seed is None else init_seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (bias_std if ".b_" in name else weight_std))
    return model.eval()


@pytest.fixture
def tiny_model():
    return noisy_model(2, seed=0, weight_std=0.16, bias_std=0.1, d_model=24, n_heads=3, d_head=8,
                       n_ctx=32, d_vocab=40)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The whole DAG on config/smoke.yaml, run once in a temporary directory: (workdir, args); read by
    tests/test_workflow.py, and the local reference tests/test_slurm.py compares its SLURM run with."""
    from .smoke import SMOKE_ARGS, snakemake

    workdir = tmp_path_factory.mktemp("smoke")
    snakemake(workdir, *SMOKE_ARGS)
    return workdir, list(SMOKE_ARGS)
