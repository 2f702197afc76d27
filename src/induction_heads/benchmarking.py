"""Measurements for ``scripts/benchmark.py``: the training step against the machine's matmul rate,
where the step's time goes, and the time per rule of a finished run.

FLOPs are counted from the shapes, two per multiply-add, for every matrix product of the
training step: forward, plus twice the forward for the backward pass (the gradients with respect
to each product's input and to its weight). Causal attention is counted as the lower triangle of
the score matrix, the work a causal kernel cannot skip, so the count is not inflated by entries the
mask discards. Embedding lookups, the softmax and the optimiser are not counted: they are the
overhead the ratio exposes.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformer_lens import HookedTransformerConfig


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def matmul_rate(device: str = "cpu", n: int = 1024, seconds: float = 1.0) -> float:
    """FLOP/s of a square fp32 ``n × n`` matrix product at the current thread count: the best of
    repeated timings over about ``seconds`` (the best, because interference only slows it)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    _synchronize(device)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        _synchronize(device)
        best = min(best, (time.perf_counter() - t0) / 4)
    return 2 * n**3 / best


@dataclass(frozen=True)
class StepFlops:
    """Forward FLOPs of one training step by part; ``total`` adds the backward pass (2×)."""

    attention_projections: float  # W_Q, W_K, W_V, W_O
    attention_scores: float  # q·k and pattern·v, causal triangle
    unembed: float

    @property
    def forward(self) -> float:
        return self.attention_projections + self.attention_scores + self.unembed

    @property
    def total(self) -> float:
        return 3 * self.forward


def training_step_flops(cfg: HookedTransformerConfig, batch: int) -> StepFlops:
    """FLOPs of one step of the attention-only trainer on ``batch`` rows of ``cfg.n_ctx`` tokens
    (the unembedding skips the last position, as the trainer does)."""
    t, d, h, dh = cfg.n_ctx, cfg.d_model, cfg.n_heads, cfg.d_head
    tokens = batch * t
    projections = cfg.n_layers * 2 * tokens * d * (4 * h * dh)  # Q, K, V in; O out
    pairs = t * (t + 1) // 2  # query-key pairs a causal head attends over
    scores = cfg.n_layers * 2 * (2 * batch * h * pairs * dh)  # q·k, then pattern·v
    unembed = 2 * batch * (t - 1) * d * cfg.d_vocab
    return StepFlops(float(projections), float(scores), float(unembed))


def time_steps(step: Callable[[], object], n_steps: int, n_warmup: int, device: str) -> list[float]:
    """Wall seconds of each of ``n_steps`` calls of ``step`` after ``n_warmup`` untimed ones."""
    for _ in range(n_warmup):
        step()
    _synchronize(device)
    times = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        step()
        _synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class BenchTraining:
    """One trained family's model, optimiser and batch sampler, set up as training sets them up,
    on a random token stream (a step's cost does not depend on the text)."""

    cfg: HookedTransformerConfig
    train_cfg: object  # training.TrainingConfig
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object
    sampler: object  # training.BatchSampler
    device: str

    def step(self):
        from .training import training_step

        tokens = self.sampler.sample().to(self.device)
        return training_step(self.model, self.opt, self.sched, tokens, self.train_cfg.grad_clip)

    def unfused_step(self) -> None:
        """The same step with the unembedding and the loss unfused (logits, then F.cross_entropy):
        what the fused loss is compared with."""
        import torch.nn.functional as F

        tokens = self.sampler.sample().to(self.device)
        logits = self.model(tokens, drop_last=True)
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train_cfg.grad_clip, foreach=True)
        self.opt.step()
        self.sched.step()


def bench_training(config: dict, family: str, threads: int, device: str) -> BenchTraining:
    import numpy as np

    from .architecture import AttnOnlyTransformer, attn_only_config
    from .config import trained_families, training_config_dict
    from .training import BatchSampler, initialise, make_optimizer, training_config_from_dict

    spec = trained_families(config)[family]
    train_cfg = training_config_from_dict(training_config_dict(config, family), seed=0, threads=threads)
    vocab = config["tokenizer"]["vocab_size"]
    arch = {k: spec[k] for k in ("n_layers", "d_model", "n_heads", "d_head", "n_ctx")}
    cfg = attn_only_config(**arch, d_vocab=vocab)
    torch.manual_seed(0)
    model = AttnOnlyTransformer(cfg)
    initialise(model, train_cfg)
    model.to(device).train()
    stream = np.random.default_rng(0).integers(1, vocab, size=64 * cfg.n_ctx * train_cfg.batch_size)
    sampler = BatchSampler(stream, cfg.n_ctx, train_cfg, np.arange(1, vocab), bos=0)
    opt, sched = make_optimizer(model, train_cfg)
    return BenchTraining(cfg, train_cfg, model, opt, sched, sampler, device)


def _timed_job(spec_path: str, index: int) -> None:
    """A worker of :func:`concurrent_step_seconds` (run as ``python -c``, so that no script's
    top level is re-run): set up, say so, wait for the signal, time, print the median."""
    import json

    from .training import prepare_process

    spec = json.loads(Path(spec_path).read_text())
    prepare_process(spec["threads"])
    bench = bench_training(spec["config"], spec["family"], spec["threads"], spec["device"])
    folder = Path(spec_path).parent
    (folder / f"ready.{index}").touch()
    while not (folder / "go").exists():  # every job starts timing together, as the DAG's jobs overlap
        time.sleep(0.01)
    print(median(time_steps(bench.step, spec["n_steps"], spec["n_warmup"], spec["device"])))


def concurrent_step_seconds(
    config: dict, family: str, threads: int, device: str, n_jobs: int, n_steps: int, n_warmup: int
) -> list[float]:
    """The median step time of each of ``n_jobs`` training processes run at once (the DAG runs
    one training job per core): what the machine's shared caches and memory bandwidth leave each."""
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"config": config, "family": family, "threads": threads, "device": device,
                                    "n_steps": n_steps, "n_warmup": n_warmup}))  # fmt: skip
        code = "import sys; from induction_heads.benchmarking import _timed_job; _timed_job(sys.argv[1], int(sys.argv[2]))"
        jobs = [subprocess.Popen([sys.executable, "-c", code, str(spec), str(i)], stdout=subprocess.PIPE, text=True)
                for i in range(n_jobs)]  # fmt: skip
        while not all((Path(tmp) / f"ready.{i}").exists() for i in range(n_jobs)):
            if any(job.poll() not in (None, 0) for job in jobs):
                raise RuntimeError("a benchmark job failed before it was ready")
            time.sleep(0.05)
        (Path(tmp) / "go").touch()
        outputs = [job.communicate()[0] for job in jobs]
        if any(job.returncode for job in jobs):
            raise RuntimeError("a concurrent benchmark job failed")
    return [float(out.strip().splitlines()[-1]) for out in outputs]


def operation_breakdown(step: Callable[[], object], n_steps: int, top: int = 8) -> list[tuple[str, float]]:
    """Share of the step's self CPU time per torch operation (torch profiler over ``n_steps``),
    the ``top`` largest and the rest as ``"other"``. Shares, not times: the profiler slows every
    operation, so only the proportions carry over to an unprofiled step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n_steps):
            step()
    rows = [(e.key, e.self_cpu_time_total) for e in prof.key_averages() if e.self_cpu_time_total > 0]
    rows.sort(key=lambda r: -r[1])
    total = sum(t for _, t in rows)
    shares = [(name, t / total) for name, t in rows[:top]]
    rest = sum(t for _, t in rows[top:]) / total
    return shares + ([("other", rest)] if rest > 0 else [])


@dataclass(frozen=True)
class RuleTime:
    rule: str
    jobs: int
    seconds: float  # summed over the rule's jobs
    longest: float
    max_rss_mb: float


def rule_times(benchmark_dir: Path) -> list[RuleTime]:
    """Time per rule of the run whose Snakemake benchmark files (``<rule>.tsv``, one per job)
    lie under ``benchmark_dir``, largest first."""
    by_rule: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for path in sorted(Path(benchmark_dir).rglob("*.tsv")):
        with open(path) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows:
            last = rows[-1]  # a rerun appends nothing: Snakemake rewrites the file
            rss = float(last["max_rss"]) if last.get("max_rss", "NA") != "NA" else float("nan")
            by_rule[path.stem].append((float(last["s"]), rss))
    out = [
        RuleTime(rule, len(jobs), sum(s for s, _ in jobs), max(s for s, _ in jobs),
                 max(r for _, r in jobs))  # fmt: skip
        for rule, jobs in by_rule.items()
    ]
    return sorted(out, key=lambda r: -r.seconds)


def run_wall_time(benchmark_dir: Path) -> float:
    """Wall seconds of the run whose benchmark files lie under ``benchmark_dir``: from the first
    job's start (its file's time less its duration) to the last job's end (Snakemake writes each
    file when its job ends)."""
    starts, ends = [], []
    for path in Path(benchmark_dir).rglob("*.tsv"):
        with open(path) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows:
            end = path.stat().st_mtime
            starts.append(end - float(rows[-1]["s"]))
            ends.append(end)
    if not ends:
        raise FileNotFoundError(f"no benchmark files under {benchmark_dir}")
    return max(ends) - min(starts)


# The analysis notebooks' first import cell, as far as start-up is concerned.
NOTEBOOK_IMPORTS = (
    "import torch\nimport transformer_lens\nimport matplotlib.pyplot\nimport seaborn\n"
    "import induction_heads.plots, induction_heads.scores"
)


def notebook_job_seconds(repeats: int = 3) -> dict[bool, list[float]]:
    """Wall seconds of papermill running a notebook that only imports what the analyses import
    (:data:`NOTEBOOK_IMPORTS`): the start-up and shutdown every notebook job pays, keyed by whether
    Python's final garbage collection ran (``INDUCTION_HEADS_FINAL_GC``, see
    ``induction_heads/__init__``). The two settings alternate, so a busy machine slows both alike.
    papermill and the kernel are this interpreter's (its ``bin/`` first on PATH)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    bin_dir = str(Path(sys.executable).parent)
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": NOTEBOOK_IMPORTS}  # fmt: skip
    notebook = {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    seconds: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "imports.ipynb", Path(tmp) / "out.ipynb"
        src.write_text(json.dumps(notebook))
        for _ in range(repeats):
            for final_gc in seconds:
                env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                       "INDUCTION_HEADS_FINAL_GC": "1" if final_gc else "0"}  # fmt: skip
                start = time.perf_counter()
                subprocess.run([str(Path(bin_dir) / "papermill"), "--no-progress-bar", str(src), str(out)],
                               env=env, check=True, capture_output=True)  # fmt: skip
                seconds[final_gc].append(time.perf_counter() - start)
    return seconds
