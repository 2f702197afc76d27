"""Runs of the smoke DAG killed with SIGKILL at known points, then picked up by
scripts/run_snakemake.py (what scripts/run.sh runs): the result is the uninterrupted run's.

In a copy of the session's smoke run (its results and Snakemake's records), attn2l-s0 is trained
again and killed right after its step-20 checkpoint is written; the next run is killed inside the
head-scores notebook, its figures drawn and metrics.json not yet written; the run after that is
left to finish the whole DAG. It must unlock both times, redo what was cut short, and end with
the same numbers.json as the uninterrupted run (training throughput and wall time aside).

That is also the determinism check of two runs of the smoke config: in the copy every number of
numbers.json is computed again (attn2l-s0 is retrained; every notebook reruns, because the copy's
absolute paths are new notebook parameters; the report is rebuilt). Reused from the first run
are the data stage, the other seeds' training and their checkpoint evaluations.
The kill points are the test hooks of induction_heads.testhooks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from induction_heads import runs
from induction_heads.testhooks import ENV_DIR, ENV_POINT, reached_file

from .smoke import ROOT, env, numbers_without_timing

pytestmark = pytest.mark.workflow

GUARD = [sys.executable, str(ROOT / "scripts" / "run_snakemake.py")]
MODEL = "results/models/attn2l-s0"
HEAD_SCORES = "results/attn2l-s0/head_scores"


def guarded(workdir: Path, args: list[str], *extra: str, pause: str | None = None,
            background: bool = False):
    """scripts/run_snakemake.py on ``workdir``; with ``pause``, the run stops at that test hook."""
    run_env = env()
    if pause:
        run_env |= {ENV_POINT: pause, ENV_DIR: str(workdir / "pauses")}
    # targets before ``args``: the smoke args end in --config, which would swallow them
    cmd = [*GUARD, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           *extra, *args]
    if background:  # output to a file: a pipe nobody reads would stall a long run
        log = open(workdir.parent / f"{pause}.log", "w+")
        proc = subprocess.Popen(cmd, env=run_env, stdout=log, stderr=subprocess.STDOUT, text=True)
        proc.log = log
        return proc
    return subprocess.run(cmd, env=run_env, capture_output=True, text=True)


def kill_at(workdir: Path, proc: subprocess.Popen, point: str, timeout: float = 600) -> str:
    """Wait until the run reaches the hook ``point``, then SIGKILL Snakemake and every job of it
    (its process group), as a lost machine would; returns what the run printed."""
    marker = reached_file(workdir / "pauses", point)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {point}:\n{output(proc)[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run did not reach {point} in {timeout} s")
        time.sleep(0.5)
    leader = runs.read_owners(workdir)[0].pid
    os.killpg(leader, signal.SIGKILL)
    proc.wait(timeout=60)
    return output(proc)


def output(proc) -> str:
    proc.log.seek(0)
    return proc.log.read()


@pytest.fixture(scope="module")
def interrupted(smoke_run, tmp_path_factory):
    reference, args = smoke_run
    workdir = tmp_path_factory.mktemp("interrupted") / "run"
    shutil.copytree(reference, workdir, symlinks=True)  # results and .snakemake, mtimes kept
    steps = {}

    # 1. retrain attn2l-s0, killed inside training right after its step-20 checkpoint
    # --force reruns only the target's job (--forcerun train_model would take the target as a
    # rule name and retrain every seed, and the first to reach step 20 need not be this one)
    proc = guarded(workdir, args, f"{MODEL}/model_info.json", "--force",
                   pause="checkpoint_saved:20", background=True)
    kill_at(workdir, proc, "checkpoint_saved:20")
    steps["training"] = {
        "locks": runs.lock_files(workdir), "info": (workdir / MODEL / "model_info.json").exists(),
        "checkpoint": (workdir / MODEL / "checkpoints/step_000020.pt").exists(),
        "incomplete": list((workdir / ".snakemake/incomplete").rglob("*")),
    }

    # 2. the next run, killed inside the head-scores notebook before it writes metrics.json
    proc = guarded(workdir, args, f"{HEAD_SCORES}/metrics.json", pause="metrics_write:head_scores",
                   background=True)
    said = kill_at(workdir, proc, "metrics_write:head_scores")
    steps["notebook"] = {
        "said": said, "locks": runs.lock_files(workdir),
        "metrics": (workdir / HEAD_SCORES / "metrics.json").exists(),
        "figures": sorted(p.name for p in (workdir / HEAD_SCORES / "figures").glob("*.svg")),
        "info": (workdir / MODEL / "model_info.json").exists(),
    }

    # 3. the run after that finishes everything
    steps["final"] = guarded(workdir, args)
    return reference, workdir, steps


def test_a_run_killed_in_training_leaves_its_lock_and_no_model(interrupted):
    _, _, steps = interrupted
    killed = steps["training"]
    assert killed["locks"], "Snakemake's lock stays behind a SIGKILL"
    assert killed["checkpoint"] and not killed["info"]  # killed after a checkpoint, before the end
    assert killed["incomplete"], "the training job's outputs are marked incomplete"


def test_the_next_run_unlocks_retrains_and_is_killed_in_the_notebook(interrupted):
    _, _, steps = interrupted
    killed = steps["notebook"]
    assert "unlocking and rerunning its incomplete jobs" in killed["said"]
    assert killed["info"], "the model was trained again to the end"
    assert killed["figures"] and not killed["metrics"]  # figures drawn, metrics.json not written
    assert killed["locks"]


def test_the_last_run_finishes_with_the_uninterrupted_runs_numbers(interrupted):
    reference, workdir, steps = interrupted
    final = steps["final"]
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "unlocking and rerunning its incomplete jobs" in final.stderr
    assert runs.lock_files(workdir) == [] and runs.read_owners(workdir) == []
    # nothing half-written survived: the same weights, the same head-scores results
    info = lambda root: json.loads((root / MODEL / "model_info.json").read_text())  # noqa: E731
    assert info(workdir)["sha256"] == info(reference)["sha256"]
    # retrained: written again (the copy kept the reference's mtimes); its wall time, rounded to
    # 0.1 s, can coincide
    weights = lambda root: (root / MODEL / "weights.pt").stat().st_mtime  # noqa: E731
    assert weights(workdir) > weights(reference)
    metrics = lambda root: json.loads((root / HEAD_SCORES / "metrics.json").read_text())  # noqa: E731
    assert metrics(workdir)["metrics"] == metrics(reference)["metrics"]
    assert sorted(p.name for p in (workdir / HEAD_SCORES / "figures").iterdir()) == sorted(
        p.name for p in (reference / HEAD_SCORES / "figures").iterdir())
    # and the whole report: every number as in the uninterrupted run
    ours, theirs = numbers_without_timing(workdir), numbers_without_timing(reference)
    assert ours.keys() == theirs.keys()
    different = [k for k in ours if ours[k] != theirs[k]]
    assert not different, f"{len(different)} numbers differ, e.g. {different[:5]}"
    assert (workdir / "results/report/numbers.json").stat().st_mtime > (
        reference / "results/report/numbers.json").stat().st_mtime  # rebuilt, not copied
