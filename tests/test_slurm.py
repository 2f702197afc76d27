"""The SLURM profile on a real SLURM. scripts/slurm_test.sh brings up a one-node cluster on this
machine (slurm-wlm + munge from Debian, slurmctld + slurmd on localhost), runs config/smoke.yaml
through `snakemake --profile profiles/slurm`, checks that every non-local job was an sbatch job and
that the results equal those of the local smoke run, and stops the daemons. Here the log of that
run and slurmctld's log are read again, independently of the script. Needs root; skipped, saying
why, where it is not or where apt-get cannot install SLURM."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from induction_heads.run_compare import run_differences

ROOT = Path(__file__).resolve().parents[1]
SLURM_DIR = Path("/tmp/induction-heads-slurm")  # scripts/slurm_node.sh's default SLURM_NODE_DIR
# The rules that run on the submitting machine (`localrules:` in workflow/rules/*.smk; `all` has no action).
LOCAL_RULES = {"all", "corpus", "synonym_candidates", "effective_config"}


@pytest.mark.workflow
def test_smoke_run_through_slurm(request, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: installs slurm-wlm and munge, writes /etc/slurm/slurm.conf, runs the daemons")
    local_run, _ = request.getfixturevalue("smoke_run")  # the local run to compare with
    env = {**os.environ, "LOCAL_RUN": str(local_run), "SLURM_NODE_DIR": str(SLURM_DIR)}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm_test.sh"), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=3600,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    if proc.returncode == 77:
        pytest.skip(f"SLURM cannot be installed here: {output.strip().splitlines()[-1]}")
    assert proc.returncode == 0, f"scripts/slurm_test.sh failed:\n{output[-5000:]}"

    # Every job Snakemake ran is either a local rule, announced "localrule X:", or went to SLURM,
    # announced "rule X:" when submitted; slurmctld logged one batch submission per remote job.
    log = (tmp_path / "slurm.log").read_text()
    remote = re.findall(r"^rule (\w+):$", log, re.MULTILINE)
    local = re.findall(r"^localrule (\w+):$", log, re.MULTILINE)
    submissions = re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", (SLURM_DIR / "slurmctld.log").read_text())
    assert set(local) == LOCAL_RULES
    assert {"tokenizer", "train_model", "datasets", "analysis", "evaluate_checkpoints", "training_dynamics",
            "synonym_pairs", "report"} == set(remote)  # fmt: skip
    assert len(submissions) == len(remote) == len(set(submissions))
    assert f"{len(remote) + len(local)} of {len(remote) + len(local)} steps (100%) done" in log

    # The script compared the results; compare them again here.
    slurm_run = tmp_path / "slurm"
    assert run_differences(local_run, slurm_run) == []
    numbers = json.loads((slurm_run / "results/report/numbers.json").read_text())
    assert any(key.endswith("/head_scores/best_induction_score") for key in numbers)


def write_run(workdir: Path, numbers: dict, weights: dict[str, str]) -> Path:
    """A stand-in for a run's working directory: numbers.json, model_info.json, one metrics.json."""
    (workdir / "results/report").mkdir(parents=True)
    (workdir / "results/report/numbers.json").write_text(json.dumps(numbers))
    for model, sha in weights.items():
        (workdir / f"results/models/{model}").mkdir(parents=True)
        (workdir / f"results/models/{model}/model_info.json").write_text(json.dumps({"sha256": sha}))
        (workdir / f"results/{model}/head_scores").mkdir(parents=True)
        (workdir / f"results/{model}/head_scores/metrics.json").write_text("{}")
    return workdir


def number(value, unit=None, ci=None):
    return {"model": "m", "analysis": "a", "value": value, "ci": ci, "unit": unit, "description": ""}


def test_run_differences_sees_results_and_ignores_timings(tmp_path):
    base = {"m/a/score": number(0.5, ci=[0.4, 0.6]), "m/a/nan": number(float("nan")),
            "m/a/wall_time": number(3.2, "s"), "m/a/rate": number(100.0, "tokens / s")}  # fmt: skip
    a = write_run(tmp_path / "a", base, {"m-s0": "aa"})
    timing = write_run(tmp_path / "t", base | {"m/a/wall_time": number(9.9, "s"),
                                              "m/a/rate": number(7.0, "tokens / s")}, {"m-s0": "aa"})  # fmt: skip
    assert run_differences(a, timing) == []
    other = write_run(tmp_path / "o", base | {"m/a/score": number(0.5, ci=[0.4, 0.61])}, {"m-s0": "ab", "m-s1": "c"})
    diffs = run_differences(a, other)
    assert any("m/a/score ci" in d for d in diffs)
    assert any("weights of m-s0" in d for d in diffs) and any("weights of m-s1" in d for d in diffs)
    assert any("analysis m-s1/head_scores" in d for d in diffs)
    assert len(diffs) == 4
