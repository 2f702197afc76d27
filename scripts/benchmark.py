"""Where the time goes: the training step against this machine's matmul rate, and the last run's
time per rule. Everything is measured in this one run, side by side, so the ratios compare.

    .venv/bin/python scripts/benchmark.py                      # default config, every trained family
    .venv/bin/python scripts/benchmark.py --models attn2l --steps 100 --results results

Prints, per trained model family: the step's median wall time (drawing the batch included), its
FLOPs (counted from the shapes: see ``induction_heads.benchmarking``), the rate achieved, the
matmul probe's rate (a square fp32 product at the job's thread count), their ratio, tokens per
second, the step in ``--jobs`` training processes at once (as the DAG runs them, one per core:
they share the caches and the memory bandwidth), and the share of each torch operation
(profiler). Then what every notebook job pays
to start and stop (with and without Python's final garbage collection, which the project skips),
and the time per rule of the run under ``--results`` (its Snakemake benchmark files), if there is one.
"""

import argparse
import platform
import resource
from pathlib import Path

import torch
import yaml

from induction_heads import benchmarking as B
from induction_heads.config import trained_families, validate_config
from induction_heads.training import prepare_process
from induction_heads.weights import device_from_config

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
parser.add_argument("--models", nargs="*", help="trained families to time (default: all)")
parser.add_argument("--steps", type=int, default=60, help="timed steps per family")
parser.add_argument("--warmup", type=int, default=10)
parser.add_argument("--profile-steps", type=int, default=10)
parser.add_argument("--threads", type=int, help="default: the config's threads_per_job")
parser.add_argument("--device", help="default: the config's device")
parser.add_argument("--jobs", type=int, default=2,
                    help="also time the step in this many training processes at once (1: skip)")
parser.add_argument("--unfused", action="store_true",
                    help="also time the step with the unfused unembedding + F.cross_entropy, for comparison")
parser.add_argument("--notebook-repeats", type=int, default=3,
                    help="papermill runs of an imports-only notebook, with and without the final GC (0: skip)")
parser.add_argument("--results", type=Path, default=Path("results"), help="a run's results folder")
parser.add_argument("--against", type=Path, metavar="RESULTS",
                    help="another run's results folder (e.g. a baseline run on this machine): rules side by side")
args = parser.parse_args()

config = validate_config(yaml.safe_load(args.config.read_text()))
threads = args.threads or config["threads_per_job"]
device = device_from_config(args.device or config["device"])
prepare_process(threads)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


where = torch.cuda.get_device_name(device) if device.startswith("cuda") else cpu_name()
print(f"machine: {where}; torch {torch.__version__}, CPU capability "
      f"{torch.backends.cpu.get_cpu_capability()}; {threads} thread(s); device {device}")  # fmt: skip
probe = B.matmul_rate(device)
print(f"matmul probe: fp32 1024x1024x1024 product, {probe / 1e9:.1f} GFLOP/s (best of ~1 s)\n")

families = trained_families(config)
for family in args.models or list(families):
    bench = B.bench_training(config, family, threads, device)
    cfg, train_cfg = bench.cfg, bench.train_cfg
    flops = B.training_step_flops(cfg, train_cfg.batch_size)
    seconds = B.median(B.time_steps(bench.step, args.steps, args.warmup, device))
    rate = flops.total / seconds
    tokens = train_cfg.batch_size * cfg.n_ctx
    print(f"{family}: {cfg.n_layers} layer(s), d_model {cfg.d_model}, vocab {cfg.d_vocab}, "
          f"batch {train_cfg.batch_size} x {cfg.n_ctx} tokens")  # fmt: skip
    print(f"  training step     {seconds * 1e3:8.1f} ms   (median of {args.steps}; drawing the batch included)")
    print(f"  FLOPs per step    {flops.total / 1e9:8.3f} G    (forward {flops.forward / 1e9:.3f}: projections "
          f"{flops.attention_projections / 1e9:.3f}, attention {flops.attention_scores / 1e9:.3f}, "
          f"unembedding {flops.unembed / 1e9:.3f}; backward 2x forward)")  # fmt: skip
    print(f"  achieved          {rate / 1e9:8.1f} GFLOP/s = {rate / probe:.2f} of the matmul probe")
    print(f"  tokens per second {tokens / seconds:8.0f}")
    if args.jobs > 1:
        each = B.concurrent_step_seconds(config, family, threads, device, args.jobs, args.steps, args.warmup)
        print(f"  {args.jobs} jobs at once  {' '.join(f'{v * 1e3:.1f}' for v in each)} ms each "
              f"({B.median(each) / seconds:.2f} of the step alone; the DAG runs one training job per core)")
    if args.unfused:
        unfused = B.median(B.time_steps(bench.unfused_step, args.steps, args.warmup, device))
        print(f"  unfused loss step {unfused * 1e3:8.1f} ms   (fused / unfused = {seconds / unfused:.2f})")
    if not device.startswith("cuda"):
        print(f"  where the time goes (torch profiler, {args.profile_steps} steps; shares of CPU time):")
        for name, share in B.operation_breakdown(bench.step, args.profile_steps):
            print(f"    {share:6.1%}  {name}")
    print()

if args.notebook_repeats:
    print("notebook job start-up and shutdown (papermill on a notebook that only imports what the analyses do):")
    timed = B.notebook_job_seconds(args.notebook_repeats)
    with_gc, without = B.median(timed[True]), B.median(timed[False])
    print(f"  with the final garbage collection    {with_gc:6.2f} s  (runs {' '.join(f'{v:.2f}' for v in timed[True])})")
    print(f"  without (the project's default)      {without:6.2f} s  (runs {' '.join(f'{v:.2f}' for v in timed[False])})")
    print(f"  ratio {without / with_gc:.2f}\n")

peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"peak RSS of this benchmark: {peak_mb:.0f} MB\n")

bench_dir = args.results / "benchmarks"
times = B.rule_times(bench_dir) if bench_dir.is_dir() else []
if not times:
    print(f"no finished run under {args.results} (its benchmarks/ folder holds each job's time)")
elif args.against is None:
    total = sum(t.seconds for t in times)
    print(f"time per rule of the run under {args.results}: wall {B.run_wall_time(bench_dir):.0f} s, "
          f"job time {total:.0f} s")  # fmt: skip
    print(f"  {'rule':<26}{'jobs':>5}{'seconds':>10}{'share':>8}{'longest':>9}{'max RSS MB':>12}")
    for t in times:
        print(f"  {t.rule:<26}{t.jobs:>5}{t.seconds:>10.1f}{t.seconds / total:>8.1%}{t.longest:>9.1f}"
              f"{t.max_rss_mb:>12.0f}")  # fmt: skip
else:
    base_dir = args.against / "benchmarks"
    base = {t.rule: t for t in B.rule_times(base_dir)}
    ours = {t.rule: t for t in times}
    wall, base_wall = B.run_wall_time(bench_dir), B.run_wall_time(base_dir)
    job, base_job = sum(t.seconds for t in times), sum(t.seconds for t in base.values())
    print(f"this run ({args.results}) against {args.against}:")
    print(f"  wall      {wall:8.0f} s vs {base_wall:8.0f} s = {wall / base_wall:.2f}")
    print(f"  job time  {job:8.0f} s vs {base_job:8.0f} s = {job / base_job:.2f}")
    print(f"  {'rule':<26}{'jobs':>10}{'seconds':>20}{'ratio':>8}{'max RSS MB':>16}")
    for rule in sorted(set(ours) | set(base), key=lambda r: -(base[r].seconds if r in base else 0)):
        a_, b_ = ours.get(rule), base.get(rule)
        jobs = f"{a_.jobs if a_ else 0} / {b_.jobs if b_ else 0}"
        secs = f"{a_.seconds if a_ else 0:.1f} / {b_.seconds if b_ else 0:.1f}"
        ratio = f"{a_.seconds / b_.seconds:.2f}" if a_ and b_ and b_.seconds else "-"
        rss = f"{a_.max_rss_mb if a_ else 0:.0f} / {b_.max_rss_mb if b_ else 0:.0f}"
        print(f"  {rule:<26}{jobs:>10}{secs:>20}{ratio:>8}{rss:>16}")
