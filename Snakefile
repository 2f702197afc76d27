# induction-heads: a reproducible replication of induction heads (Elhage et al. 2021, Olsson et
# al. 2022, ARENA). Run `bash scripts/run.sh` (or `snakemake --cores all` inside .venv).
# This file only validates the config and includes one rule file per stage.

import os
import sys

from induction_heads.allocator import JOB_ENVIRONMENT
from induction_heads.config import validate_config

configfile: "config/config.yaml"
report: "report/snakemake/workflow.rst"  # front page of `snakemake --report`

# Validate (and fill defaults) before any rule is scheduled; errors name the offending key.
try:
    validate_config(config)
except ValueError as err:
    sys.exit(f"\n{err}\n")

# Rules call `python`, `papermill` …: use the interpreter Snakemake itself runs in (the venv).
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("PYTHONUNBUFFERED", "1")
os.environ.setdefault("MPLBACKEND", "Agg")  # jobs draw to files; no display needed
# Keep freed memory in each job's process: glibc returned big blocks to the OS, and faulting
# the pages back in cost a fifth of a training step (src/induction_heads/allocator.py).
for _name, _value in JOB_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/mosaic.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        report_targets(),
    default_target: True
