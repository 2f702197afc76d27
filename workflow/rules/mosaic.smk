# The induction mosaic (config/mosaic.yaml): every head's induction and previous-token scores of
# many published models, one job per model (src/induction_heads/mosaic.py). A model that fails to
# download, convert or run is recorded with its reason, and the mosaic builds from the others.

MOSAIC = config["mosaic"]["models"]

# On a cluster these run on the submitting machine: they download from the hub (as obtain_model).
localrules: mosaic_scores


rule mosaic_scores:
    output:
        "results/mosaic/{entry}/scores.json",
    wildcard_constraints:
        entry=one_of(MOSAIC),
    params:
        entry=lambda wc: as_json(MOSAIC[wc.entry]),
        lock_dir=config["lock_dir"],
        seq_len=config["mosaic"]["seq_len"],
        batch=config["mosaic"]["batch"],
        seed=config["mosaic"]["seed"],
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=60,
    log:
        "results/logs/mosaic/{entry}.log",
    benchmark:
        "results/benchmarks/mosaic/{entry}.tsv"
    shell:
        f"OMP_NUM_THREADS={{threads}} python {script('mosaic_scores.py')} --name {{wildcards.entry}} "
        "--entry {params.entry} --lock-dir {params.lock_dir} --seq-len {params.seq_len} "
        f"--batch {{params.batch}} --seed {{params.seed}} --device {DEVICE} --out {{output}} > {{log}} 2>&1"


rule mosaic:
    input:
        expand("results/mosaic/{entry}/scores.json", entry=sorted(MOSAIC)),
    output:
        metrics="results/mosaic/mosaic/metrics.json",
        figures=figures_output("results/mosaic/mosaic/figures", analysis="mosaic", subcategory="all models"),
    params:
        threshold=config["mosaic"]["threshold"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/logs/mosaic/mosaic.log",
    benchmark:
        "results/benchmarks/mosaic/mosaic.tsv"
    shell:
        f"python {script('build_mosaic.py')} {{input}} --threshold {{params.threshold}} "
        "--out-dir results/mosaic/mosaic > {log} 2>&1"


def mosaic_targets():
    return ["results/mosaic/mosaic/metrics.json"] if MOSAIC else []
