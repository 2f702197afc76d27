# Shared helpers of the rule files: paths, the model plan, notebook parameters.
# The plan itself (which models and analyses exist) is computed in src/induction_heads/config.py.

import functools
import json
import re
import shlex
from pathlib import Path

from induction_heads import config as plan
from induction_heads.naming import INSTANCE_REGEX

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


def as_json(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def papermill_args(params):
    """`-p name value` for scalars, `-y` (YAML) for lists and mappings."""
    out = []
    for key, value in sorted(params.items()):
        if isinstance(value, (list, dict)):
            out += ["-y", shlex.quote(json.dumps({key: value}))]
        else:
            out += ["-p", key, shlex.quote(str(value))]
    return " ".join(out)


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
