"""Induction heads, replicated offline: models, data, analyses and report. See README.md."""

import atexit
import gc
import os

# At exit Python's last garbage collection walks every object torch, transformers and matplotlib
# made at import: ~1 s per process, ~2 s per notebook kernel (measured by scripts/benchmark.py),
# paid by every job of the DAG. Freezing them first skips that walk; objects are still released
# and files closed by reference counting, and the operating system frees the memory.
# INDUCTION_HEADS_FINAL_GC=1 keeps the collection (to time it, or to debug a finaliser).
if os.environ.get("INDUCTION_HEADS_FINAL_GC") != "1":
    atexit.register(gc.freeze)
