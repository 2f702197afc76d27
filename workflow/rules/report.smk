# Report: every metrics.json and figure -> report.html, report.pdf, numbers.{json,csv,tex}, figures/.

import hashlib

import yaml

EFFECTIVE_CONFIG_TEXT = yaml.safe_dump(config, sort_keys=False)


rule effective_config:
    output:
        "results/report/config.effective.yaml",
    params:
        # The digest (not the text) is the parameter: any change to the config reruns this rule,
        # and Snakemake's "params have changed" message stays one line instead of the whole config.
        digest=hashlib.sha256(EFFECTIVE_CONFIG_TEXT.encode()).hexdigest()[:16],
    log:
        "results/logs/report/effective_config.log",
    run:
        Path(output[0]).write_text(EFFECTIVE_CONFIG_TEXT)
        Path(log[0]).write_text(f"wrote {output[0]} (config sha256 {params.digest}…)\n")


rule report:
    input:
        metrics=per_model_analysis_targets() + family_analysis_targets(),
        config=rules.effective_config.output[0],
        corpus=rules.corpus.output.info,
    output:
        html="results/report/report.html",
        numbers="results/report/numbers.json",
        pdf="results/report/report.pdf" if config["report"]["pdf"] else [],
    params:
        roles=as_json(plan.roles(config)),
        pdf="" if config["report"]["pdf"] else "--no-pdf",
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    shell:
        f"python {script('build_report.py')} --metrics {{input.metrics}} "
        "--benchmarks $(find results/benchmarks -name '*.tsv' | sort) "
        "--config {input.config} --roles {params.roles} --corpus-info {input.corpus} "
        "--out-dir results/report {params.pdf} > {log} 2>&1"
