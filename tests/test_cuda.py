"""On CUDA the analyses give the CPU's answers (`device: auto` picks CUDA where a node has one).

These catch tensors left on the wrong device (the fuzzy-induction DLA did, until a run of the
default DAG on an H100). They need a GPU, so they are skipped elsewhere; the CPU answers
themselves are checked against references in the other test files.
"""

import copy

import numpy as np
import pytest
import torch

from induction_heads import ablation, circuits, composition, dynamics, fuzzy, olsson, path_patching
from induction_heads.datasets import repeated_random_tokens

from .test_training import train_tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SEQ_LEN = 20


@pytest.fixture(scope="module")
def models(planted):
    """The planted induction model, once on the CPU and once on the GPU."""
    return planted[0], copy.deepcopy(planted[0]).to("cuda")


@pytest.fixture(scope="module")
def rep_tokens():
    return repeated_random_tokens(np.arange(1, 32), SEQ_LEN, batch=12, seed=0, bos=0)


def close(a, b, atol=1e-4):
    a, b = (torch.as_tensor(x).detach().cpu().double() for x in (a, b))
    return torch.allclose(a, b, atol=atol, rtol=1e-4, equal_nan=True)  # NaN: pairs that cannot compose


def test_the_gpu_model_really_is_on_the_gpu(models):
    assert models[1].W_O.device.type == "cuda" and models[1].cfg.device.startswith("cuda")


def test_fuzzy_measures(models):
    pairs = np.array([(2 * k + 1, 2 * k + 2) for k in range(15)])
    seqs = fuzzy.make_sequences(pairs, n_sequences=24, n_pairs_per_sequence=5, seed=0)
    cpu, gpu = (fuzzy.all_measures(m, seqs, heads=["1.0", "0.0"], batch_size=8) for m in models)
    for condition in cpu:
        for name in cpu[condition]:
            assert close(cpu[condition][name], gpu[condition][name]), (condition, name)


@pytest.mark.parametrize("kind", ablation.KINDS)
def test_ablation_table(models, rep_tokens, kind):
    positions = ablation.all_positions(rep_tokens.shape[1])
    cpu, gpu = (ablation.ablation_losses_fast(m, rep_tokens, positions, kind) for m in models)
    assert close(cpu.clean, gpu.clean) and close(cpu.ablated, gpu.ablated, atol=1e-3)
    ref = ablation.ablation_losses_reference(models[1], rep_tokens, positions, kind)
    assert close(ref.ablated, gpu.ablated, atol=1e-3)


def test_weight_circuits(models):
    cpu_ov, gpu_ov = (circuits.ov_topk_all_heads(m, ks=(1, 5), chunk_size=8) for m in models)
    assert all(close(cpu_ov[k], gpu_ov[k]) for k in (1, 5))
    cpu_c, gpu_c = (composition.composition_scores(m) for m in models)
    assert all(close(cpu_c[k], gpu_c[k]) for k in cpu_c)


def test_olsson_scores(models):
    toks = olsson.repeated_sequences(np.arange(1, 32), 10, 4, 8, seed=0, bos=0)
    cpu, gpu = (olsson.olsson_scores(m, toks, 10, batch_size=4) for m in models)
    assert close(cpu.prefix, gpu.prefix) and close(cpu.share, gpu.share)


def test_path_patching(models, rep_tokens):
    corrupted = path_patching.shuffle_first_repeat(rep_tokens, SEQ_LEN, seed=0)
    cpu, gpu = (path_patching.path_patching(m, rep_tokens, corrupted, SEQ_LEN, (0, 0), (1, 0), batch_size=6)
                for m in models)
    assert close(cpu.loss_clean, gpu.loss_clean, atol=1e-3)
    for path in cpu.paths:
        assert close(cpu.induction[path], gpu.induction[path]) and close(cpu.loss[path], gpu.loss[path], atol=1e-3)


def test_circuit_progress(models, rep_tokens):
    held = rep_tokens[:, :32]
    cpu, gpu = (dynamics.circuit_progress(m, rep_tokens, SEQ_LEN, held) for m in models)
    assert cpu.keys() == gpu.keys()
    assert all(abs(cpu[k] - gpu[k]) < 1e-3 for k in cpu), (cpu, gpu)


def test_training_runs_and_learns_on_the_gpu(tmp_path):
    model, saved, records = train_tiny(tmp_path / "log.jsonl", device="cuda")
    assert records[-1]["loss"] < records[0]["loss"] - 0.5
    assert all(t.device.type == "cpu" for t in saved[30].values())  # checkpoints load anywhere
    assert next(model.parameters()).device.type == "cuda"
