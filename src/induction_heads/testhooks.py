"""Test hook: named points where a test can stop a run and kill it at a known moment.

Outside tests this does nothing (one environment lookup). A test that wants to kill a run at a
deterministic place sets, for that run only::

    INDUCTION_HEADS_TEST_PAUSE=checkpoint_saved:20     # the point's name
    INDUCTION_HEADS_TEST_PAUSE_DIR=/tmp/…               # where the "reached" file goes

The first process that reaches :func:`pause_point` with that name writes
``<dir>/<name>.reached`` (its content: the pid) and sleeps, so the test can SIGKILL the whole run
there; if nobody does within ``INDUCTION_HEADS_TEST_PAUSE_S`` seconds (default 300), it carries on.
Points in the code:

* ``checkpoint_saved:<step>`` — training, right after the checkpoint of that step was renamed
  into place (:func:`induction_heads.training.train_model_to_dir`);
* ``metrics_write:<analysis>`` — an analysis notebook, its figures drawn, just before
  ``metrics.json`` (the rule's marker output) is written (:meth:`induction_heads.metrics.Metrics.write`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_POINT, ENV_DIR, ENV_TIMEOUT = (
    "INDUCTION_HEADS_TEST_PAUSE", "INDUCTION_HEADS_TEST_PAUSE_DIR", "INDUCTION_HEADS_TEST_PAUSE_S",
)  # fmt: skip


def reached_file(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"{name.replace('/', '_')}.reached"


def pause_point(name: str) -> None:
    """Pause here if a test asked for this point (see the module docstring); else return."""
    if os.environ.get(ENV_POINT) != name:
        return
    directory = os.environ.get(ENV_DIR)
    if not directory:
        raise RuntimeError(f"{ENV_POINT}={name} is set but {ENV_DIR} is not")
    marker = reached_file(directory, name)
    if marker.exists():  # only the first arrival pauses
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{marker.name}.tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, marker)  # the test polls for this file: it must never see it half-written
    time.sleep(float(os.environ.get(ENV_TIMEOUT, "300")))
