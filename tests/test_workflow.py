"""The workflow end to end: dry runs of the shipped configs, a bad config refused before any
rule, and one real run of the whole DAG on config/smoke.yaml in a temporary directory (then: a
second run does nothing, and changing one analysis parameter reruns only what depends on it)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
DOWNLOADS = ROOT / "results" / "downloads"  # filled by scripts/setup.sh; shared with the smoke run

pytestmark = pytest.mark.workflow


def snakemake(workdir, *args, check=True):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def planned_jobs(proc) -> dict[str, int]:
    """The job-stats table of a dry run: rule -> count."""
    counts, in_table = {}, False
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
            elif parts and not set(parts[0]) <= {"-"}:
                break
    return counts


def test_default_config_plan(tmp_path):
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config/config.yaml")))
    assert jobs["train_model"] == 6  # 2 families x 3 seeds, one job each
    assert jobs["evaluate_checkpoints"] == 6
    assert jobs["training_dynamics"] == 1  # the control family is drawn beside the 2L family
    assert jobs["analysis"] == 10 + 7  # 2L: every analysis; 1L: all but the three that need 2 layers
    assert jobs["report"] == 1


def test_bad_config_fails_before_any_rule_naming_the_key(tmp_path):
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cfg["training"]["lr"] = "fast"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "config error at training.lr" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    args = ["--configfile", str(ROOT / "config/smoke.yaml"), "--config", f"downloads_dir={DOWNLOADS}"]
    snakemake(workdir, *args)
    return workdir, args


def test_smoke_run_builds_the_report(smoke_run):
    workdir, _ = smoke_run
    report = workdir / "results" / "report"
    html = (report / "report.html").read_text()
    assert (report / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert "<svg" in html and 'id="scorecard"' in html
    numbers = json.loads((report / "numbers.json").read_text())
    assert any("best_induction_score" in key for key in numbers)
    assert (report / "numbers.tex").read_text().count("\\newcommand") > 20
    analyses = {p.parent.name for p in (workdir / "results" / "attn2l-s0").glob("*/metrics.json")}
    assert analyses == {"head_scores", "logit_attribution", "ablation", "ov_circuit", "qk_circuit",
                        "k_composition", "composition_scores", "olsson_scores", "path_patching",
                        "fuzzy_induction"}  # fmt: skip
    assert (workdir / "results/attn2l/training_dynamics/metrics.json").exists()
    figures = list((report / "figures").glob("*.svg"))
    assert figures and all(f.with_suffix(".png").exists() and f.with_suffix(".pdf").exists() for f in figures)
    # the executed notebook is kept as the rule's log, beside the parameters file it was run with
    assert (workdir / "results/logs/attn2l-s0/head_scores.ipynb").exists()
    params = yaml.safe_load((workdir / "results/logs/attn2l-s0/head_scores.parameters.yaml").read_text())
    smoke = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())["analyses"]["head_scores"]
    assert params["thresholds"] == smoke["thresholds"] and params["icl_late"] == smoke["icl_late"]
    assert params["model_name"] == "attn2l-s0" and params["example_len"] == 15  # a contract default


def test_second_run_does_nothing(smoke_run):
    workdir, args = smoke_run
    proc = snakemake(workdir, "-n", *args)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_one_parameter_reruns_only_its_dependents(smoke_run, tmp_path):
    workdir, args = smoke_run
    # a second config file changes one value (nested `--config` values reach Snakemake as strings)
    change = tmp_path / "change.yaml"
    change.write_text(yaml.safe_dump({"analyses": {"composition_scores": {"n_baseline_samples": 60}}}))
    proc = snakemake(workdir, "-n", args[0], args[1], str(change), *args[2:])
    jobs = planned_jobs(proc)
    # the notebook whose parameter changed, and the report (with its copy of the effective config)
    assert jobs == {"analysis": 1, "effective_config": 1, "report": 1, "all": 1}, jobs
    assert "results/attn2l-s0/composition_scores/metrics.json" in proc.stdout + proc.stderr
