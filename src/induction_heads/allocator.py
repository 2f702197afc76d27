"""Keep freed memory in the process (glibc's allocator only; elsewhere nothing changes).

By default glibc hands a freed block of a few megabytes back to the operating system, so a job
that allocates a tensor of that size again and again (each training step's ``[tokens, vocab]``
logits, the ablation's batches) lands on fresh pages every time, which the kernel must fault in
and zero: about a fifth of a training step on the 2-core machines measured (``scripts/benchmark.py``).
Serving blocks up to 32 MB from the heap, and never trimming it below 1 GB, reuses the pages.
Torch-free: the Snakefile puts :data:`JOB_ENVIRONMENT` into every job's environment.
"""

from __future__ import annotations

import ctypes

MMAP_THRESHOLD = 32 * 2**20  # the largest value glibc accepts
TRIM_THRESHOLD = 2**30

# glibc reads these at start-up (the trailing underscore is part of the names).
JOB_ENVIRONMENT = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
}


def keep_freed_memory() -> bool:
    """The same settings for the running process; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # macOS, musl: nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))
