"""Do two runs of the workflow give the same results? (Used to check that a run through the SLURM
executor equals a local run of the same config, `scripts/slurm_test.sh`.)

Compared: every number of the report (``results/report/numbers.json``: value, CI, unit), the set
of analyses that ran (``results/**/metrics.json``), and the sha256 of every model's weights
(``results/models/*/model_info.json``). Left out: measured timings, i.e. numbers whose unit is
seconds or a rate per second (``training_wall_time_s``, ``tokens_per_second``), which differ
between any two runs. Everything else is deterministic for a config on one machine, so it is
compared exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

TIMING_UNITS = frozenset({"s", "tokens / s"})


def _numbers(workdir: Path) -> dict[str, dict]:
    path = workdir / "results" / "report" / "numbers.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is {workdir} the working directory of a finished run?")
    return json.loads(path.read_text())


def _weights(workdir: Path) -> dict[str, str | None]:
    infos = sorted((workdir / "results" / "models").glob("*/model_info.json"))
    return {p.parent.name: json.loads(p.read_text()).get("sha256") for p in infos}


def _analyses(workdir: Path) -> set[str]:
    results = workdir / "results"
    return {
        str(p.parent.relative_to(results))
        for p in results.glob("*/*/metrics.json")
        if p.parts[-3] not in ("models", "data", "logs", "benchmarks", "report")
    }


def _same(a, b) -> bool:
    # as JSON text, so that NaN equals NaN
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def run_differences(run_a: Path, run_b: Path) -> list[str]:
    """Every difference between the results of two working directories (empty: the runs agree)."""
    run_a, run_b = Path(run_a), Path(run_b)
    diffs: list[str] = []
    num_a, num_b = _numbers(run_a), _numbers(run_b)
    for key in sorted(num_a.keys() ^ num_b.keys()):
        diffs.append(f"numbers.json: {key} only in {run_a if key in num_a else run_b}")
    for key in sorted(num_a.keys() & num_b.keys()):
        a, b = num_a[key], num_b[key]
        if a.get("unit") in TIMING_UNITS and b.get("unit") in TIMING_UNITS:
            continue
        for field in ("value", "ci", "unit"):
            if not _same(a.get(field), b.get(field)):
                diffs.append(f"numbers.json: {key} {field}: {a.get(field)!r} != {b.get(field)!r}")
    wa, wb = _weights(run_a), _weights(run_b)
    for model in sorted(wa.keys() | wb.keys()):
        if wa.get(model) != wb.get(model):
            diffs.append(f"weights of {model}: sha256 {wa.get(model)} != {wb.get(model)}")
    aa, ab = _analyses(run_a), _analyses(run_b)
    for analysis in sorted(aa ^ ab):
        diffs.append(f"analysis {analysis}: metrics.json only in {run_a if analysis in aa else run_b}")
    return diffs
