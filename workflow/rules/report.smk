# Report: every metrics.json and figure -> report.html, report.pdf, numbers.{json,csv,tex}, figures/.
# Everything the report reads is a declared input: the analyses' results, the template, stylesheet
# and captions under report/, and the benchmark file of every job it depends on.

import hashlib

import yaml

EFFECTIVE_CONFIG_TEXT = yaml.safe_dump(config, sort_keys=False)
REPORT_SOURCES = {name: str(ROOT / "report" / name) for name in ("template.html.j2", "style.css", "captions.yaml")}

# On a cluster this runs on the submitting machine: it only writes a file.
localrules: effective_config


rule effective_config:
    output:
        "results/report/config.effective.yaml",
    params:
        # The digest (not the text) is the parameter: any change to the config reruns this rule,
        # and Snakemake's "params have changed" message stays one line instead of the whole config.
        digest=hashlib.sha256(EFFECTIVE_CONFIG_TEXT.encode()).hexdigest()[:16],
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    log:
        "results/logs/report/effective_config.log",
    benchmark:
        "results/benchmarks/report/effective_config.tsv"
    run:
        Path(output[0]).write_text(EFFECTIVE_CONFIG_TEXT)
        Path(log[0]).write_text(f"wrote {output[0]} (config sha256 {params.digest}…)\n")


def report_benchmarks(wc):
    """The benchmark file of every job the report depends on: the same plan as the targets
    (the analysed models, the trained families' dynamics), rule by rule."""
    evaluated = dynamics_models()
    built = set(ANALYSED) | set(evaluated) | (set(TRAINED) if evaluated else set())
    fuzzy = [m for m, analyses in ANALYSED.items() if "fuzzy_induction" in analyses]
    files = [rules.corpus.benchmark, rules.effective_config.benchmark]
    if built & set(TRAINED):
        files.append(rules.tokenizer.benchmark)
    if fuzzy:
        files.append(rules.synonym_candidates.benchmark)
    files += expand(rules.train_model.benchmark, model=sorted(built & set(TRAINED)))
    files += expand(rules.obtain_model.benchmark, model=sorted(built & set(EXTERNAL)))
    files += expand(rules.datasets.benchmark, model=sorted(set(ANALYSED) | set(evaluated)))
    files += expand(rules.synonym_pairs.benchmark, model=fuzzy)
    files += expand(rules.evaluate_checkpoints.benchmark, model=evaluated)
    files += [rules.analysis.benchmark.format(model=m, analysis=a) for m, aa in ANALYSED.items() for a in aa]
    files += [rules.training_dynamics.benchmark.format(family=f) for f in dynamics_families()]
    if MOSAIC:
        files += expand(rules.mosaic_scores.benchmark, entry=sorted(MOSAIC)) + [rules.mosaic.benchmark]
    return files


rule report:
    input:
        metrics=per_model_analysis_targets() + family_analysis_targets() + mosaic_targets(),
        config=rules.effective_config.output[0],
        corpus=rules.corpus.output.info,
        benchmarks=report_benchmarks,
        **REPORT_SOURCES,
    output:
        html=report("results/report/report.html", caption="../../report/snakemake/report.rst", category="Report"),
        numbers="results/report/numbers.json",
        numbers_csv="results/report/numbers.csv",
        numbers_tex="results/report/numbers.tex",
        pdf=(
            report("results/report/report.pdf", caption="../../report/snakemake/report.rst", category="Report")
            if config["report"]["pdf"]
            else []
        ),
        # every figure, copied flat for reuse; the attention heatmaps are drawn here (from the
        # head scores' attention_example.json), so Snakemake's report takes those from this folder
        figures=report(
            directory("results/report/figures"),
            patterns=["{model}__head_scores__attention_example.svg"],
            caption="../../report/snakemake/attention.rst",
            category=lambda wc: analysis_title("head_scores"),
            subcategory="{model}",
        ),
    params:
        roles=as_json(plan.roles(config)),
        pdf="" if config["report"]["pdf"] else "--no-pdf",
        sources=str(ROOT / "report"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    shell:
        f"python {script('build_report.py')} --metrics {{input.metrics}} "
        "--benchmarks {input.benchmarks} --sources {params.sources} "
        "--config {input.config} --roles {params.roles} --corpus-info {input.corpus} "
        "--out-dir results/report {params.pdf} > {log} 2>&1"
