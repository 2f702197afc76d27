#!/usr/bin/env python
"""How long a rerun with nothing to do takes to plan: this checkout beside a baseline commit.

    .venv/bin/python scripts/benchmark_noop.py                          # default config vs 6f97b0d
    .venv/bin/python scripts/benchmark_noop.py --config config/smoke.yaml --repeats 7

For each tree (the baseline as a ``git worktree add --detach`` in a temporary folder, and this
checkout) it makes a work directory in which every output of the config's DAG exists and is up
to date, without running anything: ``snakemake --summary`` lists the outputs of the whole DAG, each
is created empty (a folder where the output is a directory: a name without a suffix), and
``snakemake --touch`` gives them the DAG's time order. It checks that ``snakemake -n`` then has
nothing to do, and times it (the wall clock of the whole command, as a user waits for it),
alternating between the two trees so that a busy machine slows both alike, and the processor
time it used (user + system, of the command and its children: what a shared machine's load
does not inflate); it prints every timing, the medians and their ratios. Both trees run with this checkout's interpreter, each with
its own ``src/`` first on ``PYTHONPATH``; the config file is each tree's own copy of ``--config``.

Touched outputs carry no Snakemake metadata, so the rerun triggers that read it (params, code)
find nothing to compare: what is measured is parsing the workflow and building the DAG, which is
what a no-op costs (reading the metadata of a real run adds well under a second).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "6f97b0d"


def snakemake(tree: Path, workdir: Path, config: str, *args: str, check: bool = True):
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(tree / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(tree / config), "--cores", "1", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def complete_outputs(tree: Path, workdir: Path, config: str) -> int:
    """Make every output of the DAG exist and be up to date; returns how many there are."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = snakemake(tree, workdir, config, "--summary").stdout.splitlines()
    outputs = [line.split("\t")[0] for line in lines[1:] if "\t" in line]
    for out in outputs:
        path = workdir / out
        if "." in path.name:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:  # a directory output (figures/)
            path.mkdir(parents=True, exist_ok=True)
    snakemake(tree, workdir, config, "--touch")
    plan = snakemake(tree, workdir, config, "-n")
    if "Nothing to be done" not in plan.stdout + plan.stderr:
        sys.exit(f"{tree}: the touched work directory still has jobs to run:\n{plan.stdout[-3000:]}")
    return len(outputs)


def time_noop(tree: Path, workdir: Path, config: str) -> tuple[float, float]:
    """(wall clock, processor time) of one no-op plan, in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    snakemake(tree, workdir, config, "-n")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default=BASELINE, help=f"commit to compare with (default {BASELINE})")
    ap.add_argument("--config", default="config/config.yaml", help="config file, relative to each tree")
    ap.add_argument("--repeats", type=int, default=5, help="timed no-op runs per tree")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="noop-bench-") as tmp:
        tmp = Path(tmp)
        base = tmp / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(base),
                        args.baseline], check=True)
        try:
            trees = {f"baseline {args.baseline}": base, "this checkout": ROOT}
            for label, tree in trees.items():
                n = complete_outputs(tree, tmp / "work" / label.split()[0], args.config)
                print(f"{label}: {n} outputs made up to date")
            times: dict[str, list[tuple[float, float]]] = {label: [] for label in trees}
            for _ in range(args.repeats):
                for label, tree in trees.items():
                    times[label].append(time_noop(tree, tmp / "work" / label.split()[0], args.config))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=False)
    print(f"no-op `snakemake -n` on {args.config}, {args.repeats} runs each (seconds):")
    medians = {}
    for label, values in times.items():
        wall, cpu = ([v[i] for v in values] for i in (0, 1))
        medians[label] = statistics.median(wall), statistics.median(cpu)
        print(f"  {label:<20} wall median {medians[label][0]:6.2f} (runs {' '.join(f'{v:.2f}' for v in wall)})"
              f"   cpu median {medians[label][1]:6.2f} (runs {' '.join(f'{v:.2f}' for v in cpu)})")
    base, ours = medians[f"baseline {args.baseline}"], medians["this checkout"]
    print(f"  ratio this / baseline: wall {ours[0] / base[0]:.2f}, cpu {ours[1] / base[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
