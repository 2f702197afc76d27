# Analyses: one parameterized notebook per analysis and model (papermill), plus the analyses of a
# whole trained family (training dynamics). The executed notebook is the rule's log, so a failed
# one survives for debugging; metrics.json (written last) marks the job complete, and the figures/
# folder beside it is a declared output too (a report() directory: Snakemake's own report shows it).

# The files notebooks read, by the name of their path parameter (a contract's `files`).
NOTEBOOK_FILES = {
    "head_scores_path": lambda m: f"results/{m}/head_scores/metrics.json",
    "pairs_path": lambda m: f"results/data/{m}/synonym_pairs.tsv",
    "pairs_counts_path": lambda m: f"results/data/{m}/synonym_pairs_counts.json",
    "tokenizer_path": tokenizer_path,
    # Olsson's copying score is set beside OV top-1 when the OV-circuit analysis runs on the model.
    "ov_circuit_path": lambda m: (
        f"results/{m}/ov_circuit/metrics.json" if "ov_circuit" in plan.analyses_for(config, m) else ""
    ),
}


def analysis_files(wc):
    """The files this notebook reads, by parameter name (relative to the working directory);
    an optional file that is not made for this model is the empty string."""
    return {name: NOTEBOOK_FILES[name](wc.model) for name in CONTRACTS[wc.analysis].files}


def analysis_inputs(wc):
    files = analysis_files(wc)
    if "tokenizer_path" in files:
        files["tokenizer_path"] = tokenizer_input(wc.model)
    return {
        "notebook": notebook(wc.analysis),
        "info": f"{model_dir(wc.model)}/model_info.json",
        "repeated": f"results/data/{wc.model}/repeated_tokens.pt",
        "heldout": f"results/data/{wc.model}/heldout_tokens.pt",
        **{name: path for name, path in files.items() if path},
    }


def analysis_parameters(wc):
    common = dict(
        model_name=wc.model,
        model_dir=absolute(model_dir(wc.model)),
        data_dir=absolute(f"results/data/{wc.model}"),
        out_dir=absolute(f"results/{wc.model}/{wc.analysis}"),
        device=DEVICE,
        seed=MODELS[wc.model]["seed"] or 0,
        **{name: MODEL_VALUES[name](MODELS[wc.model]["spec"]) for name in CONTRACTS[wc.analysis].from_model},
    )
    files = {name: absolute(path) if path else "" for name, path in analysis_files(wc).items()}
    return notebook_parameters(wc.analysis, common, files)


rule analysis:
    input:
        unpack(analysis_inputs),
    output:
        metrics="results/{model}/{analysis}/metrics.json",
        figures=figures_output("results/{model}/{analysis}/figures"),
    wildcard_constraints:
        analysis="|".join(plan.ANALYSES),  # per-model analyses; training_dynamics has its own rule
    params:
        parameters=analysis_parameters,
    threads: THREADS
    resources:
        # trained models: measured (<= 1.1 GB, < 2 min); published ones (50k vocabularies): a guess,
        # doubled when a job is resubmitted (the profile's retries)
        mem_mb=lambda wc, attempt: (3000 if wc.model in TRAINED else 8000) * attempt,
        runtime=lambda wc, attempt: (30 if wc.model in TRAINED else 120) * attempt,
        gpu=int(DEVICE.startswith("cuda")),
    log:
        notebook="results/logs/{model}/{analysis}.ipynb",
        parameters="results/logs/{model}/{analysis}.parameters.yaml",
        stderr="results/logs/{model}/{analysis}.log",
    benchmark:
        "results/benchmarks/{model}/{analysis}.tsv"
    shell:
        ANALYSIS_COMMAND
