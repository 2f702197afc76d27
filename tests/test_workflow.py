"""The workflow end to end: dry runs of the shipped configs, a bad config refused before any
rule, and one real run of the whole DAG on config/smoke.yaml in a temporary directory (then: a
second run does nothing, and changing one analysis parameter reruns only what depends on it)."""

import json
from pathlib import Path

import pytest
import yaml

from .smoke import ROOT, planned_jobs, snakemake

pytestmark = pytest.mark.workflow


def test_default_config_plan(tmp_path):
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config/config.yaml")))
    assert jobs["train_model"] == 6  # 2 families x 3 seeds, one job each
    assert jobs["evaluate_checkpoints"] == 6
    assert jobs["training_dynamics"] == 1  # the control family is drawn beside the 2L family
    assert jobs["analysis"] == 10 + 10  # every analysis on both; 1L records three as not applicable
    assert jobs["report"] == 1
    # the report's benchmark inputs name these jobs' files: they must not add any job
    assert jobs["datasets"] == 6 and jobs["synonym_pairs"] == 2 and jobs["effective_config"] == 1


def test_bad_config_fails_before_any_rule_naming_the_key(tmp_path):
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cfg["training"]["lr"] = "fast"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "config error at training.lr" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


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
    # the notebooks whose parameter changed (the 1-layer model's records "not applicable" with its
    # parameters) and the report (with its copy of the effective config)
    assert jobs == {"analysis": 2, "effective_config": 1, "report": 1, "all": 1}, jobs
    for model in ("attn2l-s0", "attn1l-s0"):
        assert f"results/{model}/composition_scores/metrics.json" in proc.stdout + proc.stderr


def test_a_models_own_data_settings_rerun_only_that_model(smoke_run, tmp_path):
    """models.<entry>.data overrides the shared data block for that entry's instances only."""
    workdir, args = smoke_run
    change = tmp_path / "change.yaml"
    change.write_text(yaml.safe_dump({"models": {"attn1l": {"data": {"repeated_tokens": {"seq_len": 16}}}}}))
    proc = snakemake(workdir, "-n", "-p", args[0], args[1], str(change), *args[2:])
    out = proc.stdout + proc.stderr
    datasets = [line for line in out.splitlines() if "make_datasets.py" in line]
    assert len(datasets) == 1 and "--model-dir results/models/attn1l-s0 " in datasets[0], datasets
    assert "--seq-len 16 " in datasets[0]
    outputs = [ln.split("output:", 1)[1] for ln in out.splitlines() if ln.strip().startswith("output:")]
    assert any("results/attn1l-s0/head_scores/" in o for o in outputs), outputs
    # the 2-layer seeds keep their data and analyses (only the report and the figures that show
    # the control beside them are redone)
    assert not [o for o in outputs if "results/data/attn2l" in o or "results/attn2l-s" in o], outputs


def job_inputs(proc, rule: str) -> list[str]:
    """The input files of the (first) job of ``rule`` in a dry run's listing."""
    lines = (proc.stdout + proc.stderr).splitlines()
    start = lines.index(f"rule {rule}:")
    line = next(ln for ln in lines[start + 1:] if ln.strip().startswith("input:"))
    return [f.strip() for f in line.split("input:", 1)[1].split(",")]


def test_the_report_reads_only_declared_inputs(smoke_run):
    """Template, stylesheet, captions and every job's benchmark file are inputs of the report
    (editing report/style.css reruns it); the benchmarks are exactly the files the run wrote."""
    workdir, args = smoke_run
    inputs = job_inputs(snakemake(workdir, "-n", "--forcerun", "report", *args), "report")
    for source in ("template.html.j2", "style.css", "captions.yaml"):
        assert str(ROOT / "report" / source) in inputs
    declared = {f for f in inputs if f.startswith("results/benchmarks/")}
    written = {str(p.relative_to(workdir)) for p in (workdir / "results/benchmarks").rglob("*.tsv")}
    assert declared == written - {"results/benchmarks/report/report.tsv"}
    html = (workdir / "results/report/report.html").read_text()
    assert all(f.removeprefix("results/benchmarks/").removesuffix(".tsv") in html for f in declared)


def test_snakemakes_own_report_shows_the_figures_of_report_html(smoke_run, tmp_path):
    """Every figure is a report() output: the archive of `snakemake --report` holds one SVG per
    figure of report.html (each model's panel, and the attention heatmaps the report draws)."""
    import zipfile
    from collections import Counter

    workdir, args = smoke_run
    archive = tmp_path / "snakemake-report.zip"
    snakemake(workdir, *args, "--report", str(archive))
    in_archive = Counter(Path(n).name for n in zipfile.ZipFile(archive).namelist() if n.endswith(".svg"))
    html = (workdir / "results/report/report.html").read_text()
    stems = [p.stem for p in (workdir / "results/report/figures").glob("*.svg")]  # <model>__<analysis>__<name>
    for stem in stems:
        model, analysis, name = stem.split("__")
        if name != "attention_example":  # the others say where their files are, under the figure
            assert f"figures/{stem}." in html or f"figures/*__{analysis}__{name}." in html, stem
    expected = Counter(s + ".svg" if s.endswith("__attention_example") else s.split("__")[-1] + ".svg"
                       for s in stems)
    assert len(stems) > 20 and in_archive == expected


def test_the_main_text_gives_each_analysis_at_most_about_a_page(smoke_run):
    """On paper, each section of the main text (figure, one table, sentences) takes no more pages
    than it has analyses, plus one for where its start falls on a page; the long metric lists
    are in the appendix."""
    import html as html_text
    import re
    import shutil
    import subprocess

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) missing")
    workdir, _ = smoke_run
    report = workdir / "results/report"
    html = (report / "report.html").read_text()
    main = html[:html.index('<section id="appendix"')]
    sections = re.findall(r'<section id="([^"]+)" class="analysis">\s*<h2><span class="secno">(\d+)</span> ([^<]+)</h2>', main)
    blocks = {sid: main.split(f'<section id="{sid}"', 1)[1].split("</section>", 1)[0].count('<div class="block"')
              for sid, _, _ in sections}
    pages = subprocess.run(["pdftotext", "-layout", str(report / "report.pdf"), "-"], capture_output=True,
                           text=True, check=True, timeout=120).stdout.split("\f")

    def page_of(number: str, title: str) -> int:
        title = html_text.unescape(title.strip())  # the heading as printed: &#39; is '
        heading = re.compile(rf"^\s*{number}\s+{re.escape(title)}\s*$", re.M)
        return next(i for i, text in enumerate(pages) if heading.search(text))

    starts = [page_of(no, title) for _, no, title in sections] + [
        page_of("A", "Every metric, table and further figure")]
    for (sid, _, title), start, end in zip(sections, starts, starts[1:]):
        assert end - start <= blocks[sid] + 1, f"section {title!r} spans pages {start + 1}-{end + 1}"
