#!/usr/bin/env bash
# The test command: set up (idempotent), then the whole test suite — unit tests, the report
# tests and one end-to-end smoke run of the DAG on config/smoke.yaml. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pytest "$@"
