"""The benchmark's FLOP count against torch's own FLOP counter, and its reading of benchmark files."""

import os

import torch
from torch.utils.flop_counter import FlopCounterMode

from induction_heads import benchmarking as B
from induction_heads.architecture import AttnOnlyTransformer, attn_only_config


def test_step_flops_match_torchs_flop_counter():
    cfg = attn_only_config(n_layers=2, d_model=32, n_heads=4, d_head=8, n_ctx=16, d_vocab=50)
    model = AttnOnlyTransformer(cfg)
    tokens = torch.randint(0, 50, (3, 16))
    counter = FlopCounterMode(display=False)
    with counter:
        model.next_token_loss(tokens)
    ours = B.training_step_flops(cfg, batch=3)
    # torch counts the matrix products (its counter does not know the CPU's fused attention) ...
    assert counter.get_total_flops() == ours.attention_projections + ours.unembed
    # ... and the attention products, written out, over the full square of query-key pairs.
    q = k = v = torch.randn(3, cfg.n_heads, cfg.n_ctx, cfg.d_head)
    dense = FlopCounterMode(display=False)
    with dense:
        (q @ k.transpose(-1, -2)).softmax(-1) @ v
    t = cfg.n_ctx
    assert ours.attention_scores == cfg.n_layers * dense.get_total_flops() * (t * (t + 1) // 2) / (t * t)
    assert ours.total == 3 * ours.forward


def _benchmark_file(path, seconds, rss, end_time):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\n" f"{seconds}\t0:00:00\t{rss}\n")
    os.utime(path, (end_time, end_time))


def test_rule_times_sum_jobs_per_rule_and_the_wall_time_spans_the_run(tmp_path):
    _benchmark_file(tmp_path / "models/a-s0/train.tsv", 100.0, 600, end_time=1100)
    _benchmark_file(tmp_path / "models/a-s1/train.tsv", 90.0, 650, end_time=1095)
    _benchmark_file(tmp_path / "a-s0/ov_circuit.tsv", 8.0, 700, end_time=1200)
    times = {t.rule: t for t in B.rule_times(tmp_path)}
    assert times["train"] == B.RuleTime("train", 2, 190.0, 100.0, 650.0)
    assert times["ov_circuit"].jobs == 1
    assert B.run_wall_time(tmp_path) == 1200 - (1100 - 100)  # first start 1000, last end 1200


def test_the_matmul_probe_reports_a_positive_rate():
    assert B.matmul_rate(n=64, seconds=0.05) > 0


def test_concurrent_jobs_each_time_the_same_training_step_as_one_job_does():
    """The concurrent timing builds each job's step as the single-job timing does (same model,
    same first batch), and every job reports a time."""
    from pathlib import Path

    import yaml

    from induction_heads.config import validate_config

    config = validate_config(yaml.safe_load((Path(__file__).parents[1] / "config/smoke.yaml").read_text()))
    a, b = (B.bench_training(config, "attn2l", 1, "cpu") for _ in range(2))
    assert torch.equal(a.sampler.sample(), b.sampler.sample())
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert float(a.step()) == float(b.step())  # the loss of the first step
    seconds = B.concurrent_step_seconds(config, "attn2l", 1, "cpu", n_jobs=2, n_steps=2, n_warmup=1)
    assert len(seconds) == 2 and all(s > 0 for s in seconds)
