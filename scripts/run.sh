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
  *) .venv/bin/snakemake --cores 1 "$@" --report results/report/snakemake-report.zip >/dev/null 2>&1 \
       && echo "run: results/report/report.html, report.pdf, snakemake-report.zip" ;;
esac
