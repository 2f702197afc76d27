# Shared helpers of the rule files: paths, the model plan, notebook parameters.
# The plan itself (which models and analyses exist) is computed in src/induction_heads/config.py;
# each analysis's parameters are declared in src/induction_heads/contracts.py.

import functools
import json
import re
import shlex
from pathlib import Path

from induction_heads import config as plan
from induction_heads.naming import INSTANCE_REGEX
from induction_heads.contracts import CONTRACTS, MODEL_VALUES, parameters_yaml

ROOT = Path(workflow.basedir)
MODELS = plan.model_instances(config)
TRAINED = {m: i for m, i in MODELS.items() if i["source"] == "train"}
EXTERNAL = {m: i for m, i in MODELS.items() if i["source"] != "train"}
PRIMARY = [m for m, i in MODELS.items() if i["primary"]]
DEVICE = config["device"]
THREADS = config["threads_per_job"]

wildcard_constraints:
    model=INSTANCE_REGEX,
    family=INSTANCE_REGEX,
    analysis="[a-z_]+",


def one_of(names):
    """A wildcard constraint matching exactly these names (they may hold '.', '@' …)."""
    return "|".join(re.escape(n) for n in names) or "^$"


def script(name):
    return str(ROOT / "scripts" / name)


def notebook(name):
    return str(ROOT / "notebooks" / f"{name}.ipynb")


def model_dir(model):
    return f"results/models/{model}"


def absolute(path):
    """Paths handed to notebooks are absolute: papermill's kernel runs in the notebook's folder."""
    return str(Path(path).resolve())


def tokenizer_path(model):
    """Trained models share results/data/tokenizer.json; the others bring theirs into their folder."""
    if MODELS[model]["source"] == "train":
        return "results/data/tokenizer.json"
    return f"{model_dir(model)}/tokenizer.json"


def tokenizer_input(model):
    """What a rule reading the tokenizer waits for: an obtained model's tokenizer.json is written
    before its model_info.json, the marker output of rule obtain_model."""
    if MODELS[model]["source"] == "train":
        return tokenizer_path(model)
    return f"{model_dir(model)}/model_info.json"


def as_json(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def notebook_parameters(analysis, common, files):
    """The YAML text of a notebook's parameters (its contract's settings from the config, the
    common ones, the files it reads). The rule writes it to the log folder and runs
    `papermill -f` on it, so every value reaches the notebook with its type ("1.10" stays a
    string); as a rule parameter, a changed value reruns that notebook only."""
    contract = CONTRACTS[analysis]
    return parameters_yaml(contract.notebook_parameters(config["analyses"][analysis], common, files))


# The shell command of a notebook rule (its params.parameters from notebook_parameters; its
# logs: the executed notebook, the parameters file and papermill's output).
_WRITE_PARAMETERS = "printf '%s' {params.parameters:q} > {log.parameters}"
_RUN_NOTEBOOK = (
    "OMP_NUM_THREADS={threads} papermill --no-progress-bar {input.notebook} {log.notebook} "
    "-f {log.parameters} > {log.stderr} 2>&1"
)
PAPERMILL = f"{_WRITE_PARAMETERS} && {_RUN_NOTEBOOK}"

# A per-model analysis first checks the model's config alone (src/induction_heads/precheck.py):
# an analysis its architecture rules out is recorded as not applicable without starting a
# kernel (~5 s a job); exit status 3 means it may apply, and the notebook runs.
ANALYSIS_COMMAND = (
    _WRITE_PARAMETERS + " && {{ python -m induction_heads.precheck {wildcards.analysis} "
    "{input.notebook} {log.parameters} {log.notebook} > {log.stderr} 2>&1 || "
    "{{ test $? -eq 3 && " + _RUN_NOTEBOOK + "; }}; }}"
)


# model -> the analyses that run on it (the primary instances); computed once per parse.
ANALYSED = {m: analyses for m in PRIMARY if (analyses := plan.analyses_for(config, m))}


def per_model_analysis_targets():
    return [f"results/{m}/{a}/metrics.json" for m, analyses in ANALYSED.items() for a in analyses]


# ------------------------------------------------------------------ figures in Snakemake's report


@functools.cache
def analysis_title(analysis):
    """The analysis's title in report/captions.yaml (read when Snakemake's report is built)."""
    import yaml

    titles = yaml.safe_load((ROOT / "report" / "captions.yaml").read_text()).get("analysis_titles") or {}
    return titles.get(analysis, analysis.replace("_", " ").capitalize())


def figure_labels(wildcards, output):
    """Model, figure and the caption the notebook gave it (from the job's metrics.json)."""
    entry = json.loads(Path(output.metrics).read_text())["figures"].get(wildcards.figure, {})
    caption = entry.get("caption", "").replace("{", "(").replace("}", ")")  # braces read as wildcards
    return {"figure": wildcards.figure, "caption": caption}


def figures_output(folder, analysis=None, subcategory="{model}"):
    """An analysis's figures/ folder as a `report()` directory: `snakemake --report` shows every
    SVG in it, under the analysis's title, with the notebook's caption (the same figures as
    report.html; the PNG and PDF copies are for reuse)."""
    return report(
        directory(folder),
        patterns=["{figure}.svg"],
        caption="../../report/snakemake/figure.rst",
        category=lambda wc: analysis_title(analysis or wc.analysis),
        subcategory=subcategory,
        labels=figure_labels,
    )


def family_analysis_targets():
    if "training_dynamics" not in config["analyses"]:
        return []
    return [
        f"results/{fam}/training_dynamics/metrics.json"
        for fam, spec in plan.trained_families(config).items()
        if spec.get("role") != "control"
    ]


def report_targets():
    targets = ["results/report/report.html", "results/report/numbers.json"]
    if config["report"]["pdf"]:
        targets.append("results/report/report.pdf")
    return targets
