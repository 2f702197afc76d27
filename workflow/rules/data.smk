# Data: the offline corpus, the tokenizer, and each model's token sets.

# On a cluster these run on the submitting machine: they may `apt-get download` a package.
localrules: corpus, synonym_candidates


rule corpus:
    output:
        train="results/data/corpus/train.txt",
        heldout="results/data/corpus/heldout.txt",
        info="results/data/corpus/corpus.json",
    params:
        sources=" ".join(config["corpus"]["sources"]),
        max_docs=(
            f"--max-documents {config['corpus']['max_documents']}"
            if config["corpus"]["max_documents"]
            else ""
        ),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/data/corpus.log",
    benchmark:
        "results/benchmarks/data/corpus.tsv"
    shell:
        f"python {script('build_corpus.py')} --sources {{params.sources}} --out-dir results/data/corpus "
        "--package-dir {config[downloads_dir]}/debian "
        "--heldout-fraction {config[corpus][heldout_fraction]} --seed {config[corpus][seed]} "
        "{params.max_docs} > {log} 2>&1"


rule tokenizer:
    input:
        train=rules.corpus.output.train,
        heldout=rules.corpus.output.heldout,
    output:
        tokenizer="results/data/tokenizer.json",
        train_stream="results/data/train_stream.npy",
        heldout_stream="results/data/heldout_stream.npy",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/data/tokenizer.log",
    benchmark:
        "results/benchmarks/data/tokenizer.tsv"
    shell:
        f"python {script('train_tokenizer.py')} --train {{input.train}} --heldout {{input.heldout}} "
        "--vocab-size {config[tokenizer][vocab_size]} --out {output.tokenizer} > {log} 2>&1"


def model_data(model):
    """The data settings of one model instance: the shared `data` block and its entry's `data:`."""
    return plan.data_config_dict(config, MODELS[model]["family"])


rule datasets:
    input:
        info="results/models/{model}/model_info.json",
        heldout=rules.corpus.output.heldout,
    output:
        repeated="results/data/{model}/repeated_tokens.pt",
        heldout="results/data/{model}/heldout_tokens.pt",
    params:
        rep=lambda wc: model_data(wc.model)["repeated_tokens"],
        held=lambda wc: model_data(wc.model)["heldout"],
        n_held=lambda wc: (
            f"--n-heldout {model_data(wc.model)['heldout']['n_sequences']}"
            if model_data(wc.model)["heldout"]["n_sequences"]
            else ""
        ),
        max_ctx=lambda wc: (
            f"--max-ctx {MODELS[wc.model]['spec']['heldout_ctx']}"
            if "heldout_ctx" in MODELS[wc.model]["spec"]
            else ""
        ),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/data/{model}/datasets.log",
    benchmark:
        "results/benchmarks/data/{model}/datasets.tsv"
    shell:
        f"python {script('make_datasets.py')} --model-dir results/models/{{wildcards.model}} "
        "--heldout {input.heldout} --out-dir results/data/{wildcards.model} "
        "--seq-len {params.rep[seq_len]} --batch {params.rep[batch]} --rep-seed {params.rep[seed]} "
        "{params.n_held} --heldout-seed {params.held[seed]} "
        "{params.max_ctx} > {log} 2>&1"


rule synonym_candidates:
    output:
        table="results/data/synonyms.tsv",
        counts="results/data/synonyms_counts.json",
    params:
        rank=config["data"]["synonyms"]["max_sense_rank"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/data/synonym_candidates.log",
    benchmark:
        "results/benchmarks/data/synonym_candidates.tsv"
    shell:
        f"python {script('build_synonyms.py')} --wordnet-deb-dir {{config[downloads_dir]}}/debian "
        "--out {output.table} --counts {output.counts} --max-sense-rank {params.rank} > {log} 2>&1"


rule synonym_pairs:
    input:
        candidates=rules.synonym_candidates.output.table,
        counts=rules.synonym_candidates.output.counts,
        tokenizer=lambda wc: tokenizer_input(wc.model),
    output:
        pairs="results/data/{model}/synonym_pairs.tsv",
        counts="results/data/{model}/synonym_pairs_counts.json",
    params:
        tokenizer=lambda wc: tokenizer_path(wc.model),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/data/{model}/synonym_pairs.log",
    benchmark:
        "results/benchmarks/data/{model}/synonym_pairs.tsv"
    shell:
        f"python {script('build_synonyms.py')} --tokenizer {{params.tokenizer}} "
        "--candidates {input.candidates} --candidate-counts {input.counts} "
        "--out {output.pairs} --counts {output.counts} > {log} 2>&1"
