# Training dynamics (docs/methods/training_dynamics.md): every checkpoint of every trained seed is evaluated in its own job
# (so `--cores N` runs seeds side by side), then one notebook per non-control family draws the
# phase-change figure with the control family beside it. Parameters: config["analyses"]["training_dynamics"];
# the ICL windows and position bins are those of head_scores.

CONTROL_FAMILIES = [f for f, s in plan.trained_families(config).items() if s.get("role") == "control"]
DYNAMICS_FAMILIES = [f for f in plan.trained_families(config) if f not in CONTROL_FAMILIES]


def dynamics_settings():
    """The analysis's parameters, with the ICL windows and position bins of head_scores (the
    checkpoint evaluation measures the same score as the final model's)."""
    own = config["analyses"].get("training_dynamics") or CONTRACTS["training_dynamics"].defaults()
    head = config["analyses"]["head_scores"]
    return {**own, **{k: head[k] for k in ("icl_early", "icl_late", "position_bin")}}


def family_seeds(family):
    return [m for m, i in TRAINED.items() if i["family"] == family]


def dynamics_path(model):
    return f"results/models/{model}/dynamics.jsonl"


def control_models():
    return [m for fam in CONTROL_FAMILIES for m in family_seeds(fam)]


def dynamics_families():
    """The families whose training dynamics the report shows (the control is drawn beside them)."""
    return DYNAMICS_FAMILIES if "training_dynamics" in config["analyses"] else []


def dynamics_models():
    """Every seed whose checkpoints are evaluated: those of the shown families and the control's."""
    families = dynamics_families()
    return [m for fam in families for m in family_seeds(fam)] + (control_models() if families else [])


rule evaluate_checkpoints:
    input:
        info="results/models/{model}/model_info.json",
        repeated="results/data/{model}/repeated_tokens.pt",
        heldout="results/data/{model}/heldout_tokens.pt",
    output:
        dynamics="results/models/{model}/dynamics.jsonl",
    wildcard_constraints:
        model=one_of(TRAINED),
    params:
        icl=lambda wc: "--icl-early {} {} --icl-late {} {} --bin-width {} --n-boot {}".format(
            *dynamics_settings()["icl_early"], *dynamics_settings()["icl_late"],
            dynamics_settings()["position_bin"], dynamics_settings()["n_bootstrap"],
        ),
        limits=lambda wc: " ".join(
            f"--{key.replace('_', '-')} {dynamics_settings()[key]}"
            for key in ("max_heldout", "max_repeated")
            if dynamics_settings()[key] is not None
        ),
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=int(DEVICE.startswith("cuda")),
    log:
        "results/logs/models/{model}/evaluate_checkpoints.log",
    benchmark:
        "results/benchmarks/models/{model}/evaluate_checkpoints.tsv"
    shell:
        f"python {script('evaluate_checkpoints.py')} --model-dir results/models/{{wildcards.model}} "
        "--data-dir results/data/{wildcards.model} --out {output.dynamics} {params.icl} "
        "{params.limits} --device {DEVICE} --threads {threads} > {log} 2>&1"


def training_dynamics_inputs(wc):
    every = [m for fam in plan.trained_families(config) for m in family_seeds(fam)]
    return {
        "notebook": notebook("training_dynamics"),
        "dynamics_paths": [dynamics_path(m) for m in family_seeds(wc.family)],
        "control_paths": [dynamics_path(m) for m in control_models()],
        "train_info_paths": [f"results/models/{m}/model_info.json" for m in every],
    }


def training_dynamics_parameters(wc):
    inputs = training_dynamics_inputs(wc)
    common = dict(
        model_name=wc.family,
        out_dir=absolute(f"results/{wc.family}/training_dynamics"),
        device=DEVICE,
        seed=config["models"][wc.family]["seeds"][0],
    )
    files = {name: [absolute(p) for p in inputs[name]] for name in CONTRACTS["training_dynamics"].files}
    return notebook_parameters("training_dynamics", common, files)


rule training_dynamics:
    input:
        unpack(training_dynamics_inputs),
    output:
        metrics="results/{family}/training_dynamics/metrics.json",
        figures=figures_output("results/{family}/training_dynamics/figures", "training_dynamics", "{family}"),
    wildcard_constraints:
        family=one_of(DYNAMICS_FAMILIES),
    params:
        parameters=training_dynamics_parameters,
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        notebook="results/logs/{family}/training_dynamics.ipynb",
        parameters="results/logs/{family}/training_dynamics.parameters.yaml",
        stderr="results/logs/{family}/training_dynamics.log",
    benchmark:
        "results/benchmarks/{family}/training_dynamics.tsv"
    shell:
        PAPERMILL


