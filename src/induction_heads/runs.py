"""Who holds a run of the workflow, and picking up after one that was killed.

Snakemake locks its working directory (``.snakemake/locks/``) while it runs and releases the lock
when it ends, even on an error or Ctrl-C. A run killed outright (``kill -9``, the OOM killer, a
lost machine) leaves the lock behind, and the jobs it was running marked incomplete: the next run
refuses ("Directory cannot be locked") until someone runs ``snakemake --unlock``. Whether that is
safe depends on whether the run is really gone, which Snakemake cannot know.

:func:`guarded_run` (what ``scripts/run.sh`` calls) starts Snakemake in a process group of its
own and records the run in ``.snakemake/run-owners/<pid>.json``: the pid, the host, the process's
start time (so a reused pid is not taken for it) and the lock files it took. Before starting a run
it looks at the locks there:

* none: start;
* every lock belongs to a recorded run whose process group has ended on this host: the run is
  gone; ``snakemake --unlock``, then run with ``--rerun-incomplete`` (the killed jobs' outputs
  are redone: Snakemake marks a job's outputs incomplete until it finishes, so nothing half-written
  is taken for complete), and say so;
* a recorded run still alive, its jobs still running after Snakemake itself died, a run on another
  host, or a lock no run of this module took: leave everything alone, say who holds it, and stop.

Dry runs (``-n``) change nothing; they only say what the next real run will do.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

OWNERS_DIR = "run-owners"  # under .snakemake/
DRY_RUN_FLAGS = {"-n", "--dry-run", "--dryrun"}
# Snakemake modes that never lock the directory: passed through untouched.
NON_LOCKING_FLAGS = {"--unlock", "--summary", "-S", "--detailed-summary", "-D", "--list-rules",
                     "-l", "--list-target-rules", "--lt", "--version", "-v", "--help", "-h",
                     "--report", "--lint", "--dag", "--rulegraph", "--filegraph"}


def snakemake_dir(workdir: Path) -> Path:
    return Path(workdir) / ".snakemake"


def lock_files(workdir: Path) -> list[Path]:
    folder = snakemake_dir(workdir) / "locks"
    return sorted(folder.glob("*.lock")) if folder.is_dir() else []


def _lock_id(path: Path) -> list:
    st = path.stat()
    return [path.name, st.st_ino, st.st_mtime_ns]


def process_start(pid: int) -> str | None:
    """When the process started: boot id + clock ticks since boot (Linux); None if it is gone
    or this is not Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return f"{boot}:{fields[19]}"  # field 22 of stat: starttime


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (from /proc; [] elsewhere or when it is empty)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
            out.append(int(stat.parent.name))
    return sorted(out)


@dataclass
class Owner:
    """One run started by :func:`guarded_run`: its Snakemake process leads a process group."""

    pid: int
    host: str
    start: str | None  # process_start(pid) when it was recorded
    started_at: str
    command: list[str]
    locks: list[list] = field(default_factory=list)  # [name, inode, mtime_ns] of its lock files

    @property
    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started_at}: {' '.join(self.command)}"

    def leader_alive(self) -> bool:
        if self.start is not None and process_start(self.pid) is not None:
            return process_start(self.pid) == self.start
        try:  # no /proc: whether the pid exists at all
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def owner_path(workdir: Path, pid: int) -> Path:
    return snakemake_dir(workdir) / OWNERS_DIR / f"{pid}.json"


def write_owner(workdir: Path, owner: Owner) -> None:
    path = owner_path(workdir, owner.pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(owner), indent=1) + "\n")
    os.replace(tmp, path)


def read_owners(workdir: Path) -> list[Owner]:
    folder = snakemake_dir(workdir) / OWNERS_DIR
    owners = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            owners.append(Owner(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # an unreadable record proves nothing; its lock counts as foreign
    return owners


@dataclass
class LockState:
    """What holds the directory: ``free``, ``stale`` (only dead runs' locks), or ``busy``."""

    kind: str
    message: str = ""
    dead: list[Owner] = field(default_factory=list)


def lock_state(workdir: Path, host: str | None = None) -> LockState:
    host = host or socket.gethostname()
    locks = lock_files(workdir)
    owners = read_owners(workdir)
    if not locks:
        return LockState("free", dead=[o for o in owners if o.host == host and not o.leader_alive()])
    present = {tuple(_lock_id(p)) for p in locks}
    claimed: set[tuple] = set()
    dead, reasons = [], []
    for owner in owners:
        mine = {tuple(lock) for lock in owner.locks} & present
        if not mine:
            continue
        claimed |= mine
        if owner.host != host:
            reasons.append(f"a run on another host holds it ({owner.describe}); this machine "
                           "cannot tell whether it still runs")
        elif owner.leader_alive():
            reasons.append(f"a run is in progress ({owner.describe})")
        elif members := group_members(owner.pid):
            reasons.append(f"its Snakemake ({owner.describe}) was killed but its jobs still run "
                           f"(pids {', '.join(map(str, members))}): wait for them or kill them "
                           f"(kill -- -{owner.pid}), then run again")
        else:
            dead.append(owner)
    if present - claimed:
        reasons.append("a Snakemake run this script did not start holds it (no record in "
                       f"{snakemake_dir(workdir) / OWNERS_DIR}); if no Snakemake is running here, "
                       "`snakemake --unlock`, then run again with --rerun-incomplete")
    if reasons:
        return LockState("busy", "; ".join(reasons), dead)
    return LockState("stale", "", dead)


def _snakemake_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def _workdir(args: Sequence[str]) -> Path:
    for i, arg in enumerate(args):
        if arg in ("-d", "--directory") and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--directory="):
            return Path(arg.split("=", 1)[1])
    return Path.cwd()


def guarded_run(args: Sequence[str], say: Callable[[str], None] = print,
                host: str | None = None) -> int:
    """Run ``snakemake <args>`` as described in the module docstring; returns its exit status."""
    args = list(args)
    if NON_LOCKING_FLAGS & set(args):
        return subprocess.call(_snakemake_command(args))
    workdir = _workdir(args)
    state = lock_state(workdir, host)
    dry = bool(DRY_RUN_FLAGS & set(args))
    if state.kind == "busy":
        if dry:
            # Snakemake marks the running jobs' outputs incomplete and refuses to plan around
            # them; --rerun-incomplete lists them among the jobs still to do, which they are.
            say(f"run: note: {workdir} is locked: {state.message}; the plan below counts its "
                "jobs in progress as still to run")
            return subprocess.call(_snakemake_command([*args, "--rerun-incomplete"]))
        say(f"run: not starting: {workdir} is locked: {state.message}")
        return 1
    if state.kind == "stale":
        who = "; ".join(o.describe for o in state.dead)
        if dry:
            say(f"run: note: the last run ({who}) was killed holding its lock; the next run will "
                "unlock and rerun its incomplete jobs")
            return subprocess.call(_snakemake_command([*args, "--rerun-incomplete"]))
        say(f"run: the last run ({who}) ended without releasing its lock (it was killed); "
            "unlocking and rerunning its incomplete jobs (--rerun-incomplete)")
        # the run's own arguments say which workflow, config and directory; --unlock ignores the rest
        unlocked = subprocess.run(_snakemake_command([*args, "--unlock"]), capture_output=True, text=True)
        if unlocked.returncode != 0:
            say(f"run: `snakemake --unlock` failed:\n{unlocked.stdout}{unlocked.stderr}")
            return unlocked.returncode
        args.append("--rerun-incomplete")
    for owner in state.dead:
        owner_path(workdir, owner.pid).unlink(missing_ok=True)
    if dry:
        return subprocess.call(_snakemake_command(args))
    return _run_recorded(args, workdir, host or socket.gethostname())


def _run_recorded(args: list[str], workdir: Path, host: str) -> int:
    """Start Snakemake in its own process group, record it, and wait; signals are passed on to
    the whole group (as a terminal's Ctrl-C would reach Snakemake and its jobs)."""
    proc = subprocess.Popen(_snakemake_command(args), start_new_session=True)
    owner = Owner(proc.pid, host, process_start(proc.pid),
                  dt.datetime.now().astimezone().isoformat(timespec="seconds"), ["snakemake", *args])
    write_owner(workdir, owner)

    def forward(signum, _frame):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while proc.poll() is None:  # the record follows the lock files Snakemake takes
            locks = [_lock_id(p) for p in lock_files(workdir)]
            if locks and locks != owner.locks:
                owner.locks = locks
                write_owner(workdir, owner)
            time.sleep(0.5)
        returncode = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if returncode >= 0:  # Snakemake ended by itself and released its locks
        owner_path(workdir, proc.pid).unlink(missing_ok=True)
    # killed by a signal: the record stays, so the next run knows the lock is a dead run's
    return returncode if returncode >= 0 else 128 - returncode
