"""scripts/run_snakemake.py (induction_heads.runs) on a toy workflow: a killed run is unlocked and
its half-written job redone; a live run, a run whose jobs outlived it, and a lock nobody recorded
are left alone. The same logic on the real smoke DAG: tests/test_interrupted_runs.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from induction_heads import runs

ROOT = Path(__file__).resolve().parents[1]
GUARD = [sys.executable, str(ROOT / "scripts" / "run_snakemake.py")]

# One job: writes the first half of its output, waits for a "go" file, writes the second half.
TOY = """
rule all:
    input: "out.txt"

rule slow:
    output: "out.txt"
    shell: "echo first > {output}; while [ ! -e go ]; do sleep 0.2; done; echo second >> {output}"
"""


@pytest.fixture
def toy(tmp_path):
    (tmp_path / "Snakefile").write_text(TOY)
    return tmp_path


def guard_args(workdir: Path) -> list[str]:
    return ["-s", str(workdir / "Snakefile"), "--directory", str(workdir), "--cores", "1"]


def start_in_background(workdir: Path) -> subprocess.Popen:
    """A guarded run whose job is waiting for its "go" file, with its lock taken and recorded."""
    proc = subprocess.Popen([*GUARD, *guard_args(workdir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        owners = runs.read_owners(workdir)
        if (workdir / "out.txt").exists() and owners and owners[0].locks:
            return proc
        assert proc.poll() is None, "the guarded run ended early"
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the toy job never started")


def guarded(workdir: Path) -> tuple[int, str]:
    said: list[str] = []
    return runs.guarded_run(guard_args(workdir), say=said.append), "\n".join(said)


def test_a_run_that_ends_leaves_no_record_and_no_lock(toy):
    (toy / "go").touch()
    code, said = guarded(toy)
    assert code == 0 and said == ""
    assert (toy / "out.txt").read_text() == "first\nsecond\n"
    assert runs.read_owners(toy) == [] and runs.lock_files(toy) == []


def test_a_killed_run_is_unlocked_and_its_job_redone(toy):
    proc = start_in_background(toy)
    leader = runs.read_owners(toy)[0].pid
    os.killpg(leader, signal.SIGKILL)  # Snakemake and its job, at once: like a lost machine
    proc.wait(timeout=60)
    assert runs.lock_files(toy), "a killed Snakemake leaves its lock"
    assert (toy / "out.txt").read_text() == "first\n"  # half-written, marked incomplete
    assert runs.lock_state(toy).kind == "stale"
    (toy / "go").touch()
    code, said = guarded(toy)
    assert code == 0, said
    assert f"pid {leader}" in said and "unlocking and rerunning its incomplete jobs" in said
    assert (toy / "out.txt").read_text() == "first\nsecond\n"  # redone, not taken as complete
    assert runs.read_owners(toy) == [] and runs.lock_files(toy) == []


def test_a_live_run_is_left_alone(toy):
    proc = start_in_background(toy)
    try:
        leader = runs.read_owners(toy)[0].pid
        code, said = guarded(toy)
        assert code == 1 and "a run is in progress" in said and f"pid {leader}" in said
        assert runs.lock_files(toy) and (toy / "out.txt").read_text() == "first\n"
        # a dry run only says so (Snakemake plans while the directory is locked)
        notes: list[str] = []
        assert runs.guarded_run([*guard_args(toy), "-n"], say=notes.append) == 0
        assert "a run is in progress" in notes[0] and runs.lock_files(toy)
    finally:
        (toy / "go").touch()
        assert proc.wait(timeout=120) == 0
    assert (toy / "out.txt").read_text() == "first\nsecond\n"


def test_jobs_that_outlive_their_snakemake_block_the_next_run(toy):
    proc = start_in_background(toy)
    leader = runs.read_owners(toy)[0].pid
    os.kill(leader, signal.SIGKILL)  # only Snakemake: its job's shell keeps running
    proc.wait(timeout=60)
    try:
        code, said = guarded(toy)
        assert code == 1 and "its jobs still run" in said and f"kill -- -{leader}" in said
    finally:
        os.killpg(leader, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while runs.group_members(leader) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runs.lock_state(toy).kind == "stale"


def test_a_lock_nobody_recorded_is_left_alone(toy):
    locks = toy / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text(str(toy / "out.txt") + "\n")
    code, said = guarded(toy)
    assert code == 1 and "did not start" in said and "--unlock" in said
    assert (locks / "0.output.lock").exists() and not (toy / "out.txt").exists()


def test_a_reused_pid_is_not_taken_for_the_run(toy):
    """A record whose pid now belongs to another process (another start time) is a dead run."""
    owner = runs.Owner(os.getpid(), runs.socket.gethostname(), "another-boot:1", "then", ["snakemake"])
    assert not owner.leader_alive()
    assert runs.Owner(os.getpid(), "h", runs.process_start(os.getpid()), "now", []).leader_alive()
    runs.write_owner(toy, owner)
    assert json.loads(runs.owner_path(toy, os.getpid()).read_text())["start"] == "another-boot:1"
    assert runs.lock_state(toy).kind == "free" and runs.lock_state(toy).dead == [owner]
