# Shared helpers of the rule files: paths, the model plan, notebook parameters.
# The plan itself (which models and analyses exist) is computed in src/induction_heads/config.py.

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


def per_model_analysis_targets():
    return [
        f"results/{m}/{a}/metrics.json" for m in PRIMARY for a in plan.analyses_for(config, m)
    ]


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
