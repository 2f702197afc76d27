#!/usr/bin/env bash
# The SLURM test (root only): on a one-node SLURM brought up on this machine (scripts/slurm_node.sh),
# run the smoke config through the SLURM profile (profiles/slurm), then check that
#   1. every job that is not a local rule went through SLURM: the number of sbatch submissions in
#      slurmctld's log (`_slurm_rpc_submit_batch_job`) and of batch jobs slurmd launched equal the
#      number of non-local jobs of the run, and local + non-local jobs make the whole plan;
#   2. the results equal those of a local run of the same config (scripts/compare_runs.py:
#      every number of the report except timings, every weight checksum, the same analyses);
# and stop the daemons, whatever happened.
# Usage: bash scripts/slurm_test.sh [WORKDIR]          (default: a new directory under /tmp)
#   LOCAL_RUN=<dir>  reuse the working directory of a finished local run of config/smoke.yaml
#                    (with the same downloads_dir) instead of running it here
#   SLURM_TEST_TIMEOUT=<s>  limit for each of the two Snakemake runs (default 1500)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d /tmp/slurm-test.XXXXXX)}
export SLURM_NODE_DIR=${SLURM_NODE_DIR:-/tmp/induction-heads-slurm}
LIMIT=${SLURM_TEST_TIMEOUT:-1500}
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "slurm_test: no $PY; run bash scripts/setup.sh first" >&2; exit 1; }
# The same arguments for both runs; jobs inherit this environment (sbatch --export=ALL).
ARGS=(-s "$ROOT/Snakefile" --configfile "$ROOT/config/smoke.yaml"
      --config "downloads_dir=$ROOT/results/downloads")
# Test-cluster settings, not part of the profile: this cluster has no accounting database (sacct
# cannot answer, squeue can: MinJobAge=300), and its jobs are short (first status check after 1 s).
TEST_CLUSTER=(--slurm-status-command squeue --slurm-init-seconds-before-status-checks 1)

fail() { echo "slurm_test: FAIL: $*" >&2; exit 1; }

trap 'bash "$ROOT/scripts/slurm_node.sh" down' EXIT
bash "$ROOT/scripts/slurm_node.sh" up

mkdir -p "$WORK/slurm"
echo "slurm_test: the smoke config through SLURM in $WORK/slurm"
start=$(date +%s)
if ! (cd "$WORK/slurm" && timeout "$LIMIT" "$ROOT/.venv/bin/snakemake" --profile "$ROOT/profiles/slurm" \
        "${TEST_CLUSTER[@]}" "${ARGS[@]}" >"$WORK/slurm.log" 2>&1); then
  tail -40 "$WORK/slurm.log" >&2
  for f in "$WORK"/slurm/.snakemake/slurm_logs/*/*/*.log "$WORK"/slurm/.snakemake/slurm_logs/*/*.log; do
    [ -f "$f" ] && { echo "== $f" >&2; tail -15 "$f" >&2; }
  done
  fail "the SLURM run failed (log: $WORK/slurm.log)"
fi
echo "slurm_test: SLURM run took $(( $(date +%s) - start )) s"

# 1. Every non-local job went through SLURM. In a run with a remote executor Snakemake announces
# each job as "rule X:" when it is submitted and "localrule X:" when it runs here.
remote=$(grep -c '^rule [A-Za-z_0-9]*:$' "$WORK/slurm.log" || true)
local_jobs=$(grep -c '^localrule [A-Za-z_0-9]*:$' "$WORK/slurm.log" || true)
planned=$(awk '$1 == "total" {print $2; exit}' "$WORK/slurm.log")
submitted=$(grep -c '_slurm_rpc_submit_batch_job: JobId=' "$SLURM_NODE_DIR/slurmctld.log" || true)
launched=$(grep -c 'Launching batch job' "$SLURM_NODE_DIR/slurmd.log" || true)
echo "slurm_test: $planned jobs planned: $remote through SLURM, $local_jobs local;" \
  "slurmctld accepted $submitted batch jobs, slurmd launched $launched"
[ "$remote" -gt 0 ] || fail "no job was submitted to SLURM"
[ "$submitted" = "$remote" ] || fail "$remote non-local jobs but $submitted sbatch submissions in slurmctld's log"
[ "$launched" = "$remote" ] || fail "$remote non-local jobs but slurmd launched $launched batch jobs"
[ "$((remote + local_jobs))" = "$planned" ] || fail "$remote + $local_jobs jobs ran, $planned were planned"

# 2. The same results as a local run.
if [ -n "${LOCAL_RUN:-}" ]; then
  local_dir=$LOCAL_RUN
else
  local_dir="$WORK/local"
  mkdir -p "$local_dir"
  echo "slurm_test: the same config locally in $local_dir"
  (cd "$local_dir" && timeout "$LIMIT" "$ROOT/.venv/bin/snakemake" --cores 2 "${ARGS[@]}" \
      >"$WORK/local.log" 2>&1) || { tail -30 "$WORK/local.log" >&2; fail "the local run failed"; }
fi
PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$ROOT/scripts/compare_runs.py" \
  "$local_dir" "$WORK/slurm" || fail "the SLURM run's results differ from the local run's"
echo "slurm_test: PASS"
