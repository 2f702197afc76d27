#!/usr/bin/env bash
# The one command: set up (idempotent), run the whole DAG on the default config (offline),
# then write Snakemake's own report archive. Extra arguments go to snakemake, e.g.
#   bash scripts/run.sh --configfile config/config.yaml config/hub.yaml
#   bash scripts/run.sh -n            # show the plan only
# A run that was killed (kill -9, a lost machine) is picked up: the next run.sh unlocks the
# directory and reruns the jobs that were cut short, saying so; a run still in progress is left
# alone (see src/induction_heads/runs.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/run_snakemake.py --cores "${CORES:-all}" "$@"
case " $* " in
  *" -n "*|*" --dry-run "*|*" --dryrun "*) ;;
  *) mkdir -p results/report  # a run of one target may not have made it
     if .venv/bin/snakemake --cores 1 "$@" --report results/report/snakemake-report.zip >/dev/null 2>&1; then
       echo "run: done; snakemake-report.zip written (the whole DAG also writes results/report/report.html, .pdf)"
     else  # the run itself succeeded: say so, and why the archive is missing, without failing
       echo "run: done; snakemake's report archive was not written (rerun with --report to see why)"
     fi ;;
esac
