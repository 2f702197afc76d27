# Models: train the default ones (one job per seed), or obtain weights from the hub / your disk
# (src/induction_heads/sources: verified against config/locks/, converted by TransformerLens).
# Every model ends as results/models/<model>/{weights.pt, config.json, model_info.json};
# model_info.json (with the weights' sha256) is written last and is the rule's marker output.

# On a cluster this runs on the submitting machine: it may download from the hub.
localrules: obtain_model


def trained_arch(wc):
    spec = TRAINED[wc.model]["spec"]
    return {k: spec[k] for k in plan.ARCH_KEYS}


rule train_model:
    input:
        tokenizer=rules.tokenizer.output.tokenizer,
        stream=rules.tokenizer.output.train_stream,
    output:
        info="results/models/{model}/model_info.json",
        weights="results/models/{model}/weights.pt",
        log_jsonl="results/models/{model}/train_log.jsonl",
    wildcard_constraints:
        model=one_of(TRAINED),
    params:
        arch=lambda wc: as_json(trained_arch(wc)),
        training=lambda wc: as_json(plan.training_config_dict(config, TRAINED[wc.model]["family"])),
        seed=lambda wc: TRAINED[wc.model]["seed"],
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=int(DEVICE.startswith("cuda")),
        train_jobs=1,
    log:
        "results/logs/models/{model}/train.log",
    benchmark:
        "results/benchmarks/models/{model}/train.tsv"
    shell:
        f"python {script('train_model.py')} --name {{wildcards.model}} --arch {{params.arch}} "
        "--training {params.training} --seed {params.seed} --tokenizer {input.tokenizer} "
        "--stream {input.stream} --out-dir results/models/{wildcards.model} "
        "--device {DEVICE} --threads {threads} > {log} 2>&1"


rule obtain_model:
    output:
        info="results/models/{model}/model_info.json",
        weights="results/models/{model}/weights.pt",
    wildcard_constraints:
        model=one_of(EXTERNAL),
    params:
        entry=lambda wc: as_json(EXTERNAL[wc.model]["spec"]),
        revision=lambda wc: (
            f"--revision {shlex.quote(EXTERNAL[wc.model]['revision'])}" if EXTERNAL[wc.model]["revision"] else ""
        ),
        lock_dir=config["lock_dir"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        "results/logs/models/{model}/obtain.log",
    benchmark:
        "results/benchmarks/models/{model}/obtain.tsv"
    shell:
        f"python {script('obtain_model.py')} --name {{wildcards.model}} --entry {{params.entry}} "
        "{params.revision} --lock-dir {params.lock_dir} "
        "--out-dir results/models/{wildcards.model} > {log} 2>&1"
