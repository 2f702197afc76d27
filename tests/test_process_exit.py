"""Importing the package skips Python's final garbage collection (induction_heads/__init__.py),
unless INDUCTION_HEADS_FINAL_GC=1. What it saves per job is measured by scripts/benchmark.py."""

import os
import subprocess
import sys

import pytest

# Run the exit handlers as interpreter shutdown would, then report what they froze.
PROBE = "import atexit, gc, induction_heads; atexit._run_exitfuncs(); print(gc.get_freeze_count())"


@pytest.mark.parametrize("setting, frozen", [(None, True), ("0", True), ("1", False)])
def test_exit_freezes_the_heap_unless_told_not_to(setting, frozen):
    env = {k: v for k, v in os.environ.items() if k != "INDUCTION_HEADS_FINAL_GC"}
    if setting is not None:
        env["INDUCTION_HEADS_FINAL_GC"] = setting
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert (int(out.stdout) > 0) is frozen

