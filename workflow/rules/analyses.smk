# Analyses: one parameterized notebook per analysis and model (papermill), plus the analyses of a
# whole trained family (training dynamics). The executed notebook is the rule's log, so a failed
# one survives for debugging; metrics.json (written last) marks the job complete, and the figures/
# folder beside it is a declared output too (a report() directory: Snakemake's own report shows it).


def analysis_inputs(wc):
    inputs = {
        "notebook": notebook(wc.analysis),
        "info": f"results/models/{wc.model}/model_info.json",
        "repeated": f"results/data/{wc.model}/repeated_tokens.pt",
        "heldout": f"results/data/{wc.model}/heldout_tokens.pt",
    }
    if wc.analysis != "head_scores":
        inputs["head_scores"] = f"results/{wc.model}/head_scores/metrics.json"
    if wc.analysis == "fuzzy_induction":
        inputs["pairs"] = f"results/data/{wc.model}/synonym_pairs.tsv"
    return inputs


def analysis_params(wc):
    """Everything the notebook's `parameters` cell receives (absolute paths: papermill's kernel
    runs in the notebook's folder)."""
    absolute = lambda p: str(Path(p).resolve())
    params = dict(config["analyses"].get(wc.analysis) or {})
    params.update(
        model_name=wc.model,
        model_dir=absolute(model_dir(wc.model)),
        data_dir=absolute(f"results/data/{wc.model}"),
        out_dir=absolute(f"results/{wc.model}/{wc.analysis}"),
        device=DEVICE,
        seed=MODELS[wc.model]["seed"] or 0,
    )
    if wc.analysis != "head_scores":
        params["head_scores_path"] = absolute(f"results/{wc.model}/head_scores/metrics.json")
    if wc.analysis == "fuzzy_induction":
        params["pairs_path"] = absolute(f"results/data/{wc.model}/synonym_pairs.tsv")
        params["pairs_counts_path"] = absolute(f"results/data/{wc.model}/synonym_pairs_counts.json")
        params["tokenizer_path"] = absolute(f"results/models/{wc.model}/tokenizer.json") if MODELS[
            wc.model
        ]["source"] != "train" else absolute("results/data/tokenizer.json")
    return papermill_args(params)


rule analysis:
    input:
        unpack(analysis_inputs),
    output:
        metrics="results/{model}/{analysis}/metrics.json",
        figures=figures_output("results/{model}/{analysis}/figures"),
    params:
        cli=analysis_params,
    threads: THREADS
    log:
        notebook="results/logs/{model}/{analysis}.ipynb",
        stderr="results/logs/{model}/{analysis}.log",
    benchmark:
        "results/benchmarks/{model}/{analysis}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} papermill --no-progress-bar {input.notebook} {log.notebook} "
        "{params.cli} > {log.stderr} 2>&1"
