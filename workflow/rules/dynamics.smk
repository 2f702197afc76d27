# Training dynamics (docs/methods/training_dynamics.md): every checkpoint of every trained seed is evaluated in its own job
# (so `--cores N` runs seeds side by side), then one notebook per non-control family draws the
# phase-change figure with the control family beside it. Parameters: config["analyses"]["training_dynamics"];
# the ICL positions default to those of head_scores.

CONTROL_FAMILIES = [f for f, s in plan.trained_families(config).items() if s.get("role") == "control"]
DYNAMICS_FAMILIES = [f for f in plan.trained_families(config) if f not in CONTROL_FAMILIES]


def dynamics_settings():
    """The analysis's parameters, with the ICL positions of head_scores unless set here."""
    head = config["analyses"]["head_scores"]
    settings = {"icl_late": head.get("icl_late", 100), "icl_early": head.get("icl_early", 10)}
    settings.update(config["analyses"].get("training_dynamics") or {})
    return settings


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
        icl=lambda wc: f"--icl-late {dynamics_settings()['icl_late']} "
        f"--icl-early {dynamics_settings()['icl_early']}",
        limits=lambda wc: " ".join(
            f"--{key.replace('_', '-')} {dynamics_settings()[key]}"
            for key in ("max_heldout", "max_repeated")
            if dynamics_settings().get(key)
        ),
    threads: THREADS
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
        "dynamics": [dynamics_path(m) for m in family_seeds(wc.family)],
        "control": [dynamics_path(m) for m in control_models()],
        "infos": [f"results/models/{m}/model_info.json" for m in every],
    }


def training_dynamics_params(wc):
    """The notebook's `parameters` cell (absolute paths: papermill's kernel runs in notebooks/)."""
    absolute = lambda p: str(Path(p).resolve())
    inputs = training_dynamics_inputs(wc)
    params = {k: v for k, v in dynamics_settings().items() if k not in ("max_heldout", "max_repeated")}
    params.update(
        model_name=wc.family,
        out_dir=absolute(f"results/{wc.family}/training_dynamics"),
        device=DEVICE,
        seed=config["models"][wc.family]["seeds"][0],
        dynamics_paths=[absolute(p) for p in inputs["dynamics"]],
        control_paths=[absolute(p) for p in inputs["control"]],
        train_info_paths=[absolute(p) for p in inputs["infos"]],
    )
    return papermill_args(params)


rule training_dynamics:
    input:
        unpack(training_dynamics_inputs),
    output:
        metrics="results/{family}/training_dynamics/metrics.json",
        figures=figures_output("results/{family}/training_dynamics/figures", "training_dynamics", "{family}"),
    wildcard_constraints:
        family=one_of(DYNAMICS_FAMILIES),
    params:
        cli=training_dynamics_params,
    threads: THREADS
    log:
        notebook="results/logs/{family}/training_dynamics.ipynb",
        stderr="results/logs/{family}/training_dynamics.log",
    benchmark:
        "results/benchmarks/{family}/training_dynamics.tsv"
    shell:
        "OMP_NUM_THREADS={threads} papermill --no-progress-bar {input.notebook} {log.notebook} "
        "{params.cli} > {log.stderr} 2>&1"


# `results/<family>/training_dynamics/metrics.json` also matches rule `analysis`'s pattern.
ruleorder: training_dynamics > analysis
