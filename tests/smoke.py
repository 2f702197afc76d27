"""Running Snakemake from the tests: the command, the smoke config's arguments, reading a plan,
and numbers.json without the fields that measure time (they differ between any two runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
DOWNLOADS = ROOT / "results" / "downloads"  # filled by scripts/setup.sh; shared with the smoke runs
SMOKE_ARGS = ["--configfile", str(ROOT / "config/smoke.yaml"), "--config", f"downloads_dir={DOWNLOADS}"]
TIMING_METRICS = {"tokens_per_second", "training_wall_time_s"}  # training throughput and wall time


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(workdir, *args, check=True):
    proc = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
        capture_output=True, text=True, env=env(),
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def planned_jobs(proc) -> dict[str, int]:
    """The job-stats table of a dry run: rule -> count."""
    counts, in_table = {}, False
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
            elif parts and not set(parts[0]) <= {"-"}:
                break
    return counts


def numbers_without_timing(workdir: Path) -> dict:
    """results/report/numbers.json, less the metrics that measure time."""
    numbers = json.loads((Path(workdir) / "results/report/numbers.json").read_text())
    return {k: v for k, v in numbers.items() if k.rsplit("/", 1)[-1] not in TIMING_METRICS}
