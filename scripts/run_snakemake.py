#!/usr/bin/env python
"""Snakemake, run so that a killed run is picked up again (``scripts/run.sh`` calls this).

    .venv/bin/python scripts/run_snakemake.py --cores 2 [any snakemake arguments]

Records who holds the run (``.snakemake/run-owners/``); when the last run was killed holding
Snakemake's lock, unlocks and reruns its incomplete jobs; when a live run holds it, says so and
stops. All logic is in :mod:`induction_heads.runs`.
"""

import sys

from induction_heads.runs import guarded_run

if __name__ == "__main__":
    sys.exit(guarded_run(sys.argv[1:], say=lambda line: print(line, file=sys.stderr, flush=True)))
