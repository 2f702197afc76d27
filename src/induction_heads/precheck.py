"""Decide before a notebook kernel starts, from a model's config (and for one reason from the
analysis's input files), that an analysis does not apply to it:
``python -m induction_heads.precheck ANALYSIS NOTEBOOK PARAMETERS NOTEBOOK_LOG``.

The analysis rule runs this first. A kernel with TransformerLens loaded takes ~5 s to start, and a
published model's registry entry can rule out several analyses by architecture alone (LayerNorm,
rotary positions, one layer). For those the answer is the same sentence the notebook's own
:func:`applicability.stop_if_not_applicable` would write — both call :func:`applicability.reason_for`
— so this writes that ``metrics.json`` and, as the rule's log, the notebook with a first cell that
says why no cell ran. Reasons found in the data (no earlier previous-token head, too few synonym
pairs) still come from the notebook, except the one an input file already decides: too few
synonym pairs in the model's vocabulary (:data:`FILE_REASONS`).

Exit status: 0 when it wrote the not-applicable result, :data:`APPLIES` when the notebook must run.
Nothing here imports torch or TransformerLens.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from .applicability import config_view, reason_for, too_few_pairs_reason
from .contracts import CONTRACTS
from .metrics import Metrics
from .wordnet import read_pairs

APPLIES = 3  # exit status: the analysis may apply; run the notebook


def static_reason(analysis: str, model_dir: str | Path) -> str | None:
    """The not-applicable reason of ``analysis`` for the model in ``model_dir`` (from its
    ``config.json``), or ``None`` if its architecture does not rule it out."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    return reason_for(analysis, config_view(cfg))


def _fuzzy_pairs(parameters: dict) -> str | None:
    pairs = read_pairs(parameters["pairs_path"])
    return too_few_pairs_reason(len(pairs), parameters["n_pairs_per_sequence"])


# Data reasons a rule's input files already decide (the notebook makes the same check, with the
# same function, for a run without this step): analysis -> reason from its parameters.
FILE_REASONS = {"fuzzy_induction": _fuzzy_pairs}


def reason_before_kernel(analysis: str, parameters: dict) -> str | None:
    """The architecture's reason, else one the input files decide, else ``None``."""
    reason = static_reason(analysis, parameters["model_dir"])
    if reason is None and analysis in FILE_REASONS:
        reason = FILE_REASONS[analysis](parameters)
    return reason


def log_notebook(notebook: dict, reason: str) -> dict:
    """``notebook`` (nbformat JSON) with a first markdown cell giving ``reason``."""
    note = {
        "cell_type": "markdown",
        "metadata": {},
        "source": [f"**Not applicable** to this model: {reason}.\n\n",
                   "Decided before the kernel started, from the model's `config.json` or the "
                   "analysis's input files (`induction_heads.precheck`); no cell below was run."],  # fmt: skip
    }
    if notebook.get("nbformat", 4) >= 4 and notebook.get("nbformat_minor", 0) >= 5:
        note["id"] = "not-applicable"
    return {**notebook, "cells": [note, *notebook["cells"]]}


def write_not_applicable(analysis: str, parameters: dict, reason: str, notebook_path: Path,
                         log_path: Path) -> Path:  # fmt: skip
    """The not-applicable ``metrics.json`` (as the notebook writes it) and the log notebook."""
    info = json.loads((Path(parameters["model_dir"]) / "model_info.json").read_text())
    settings = {k: v for k, v in parameters.items()
                if k not in CONTRACTS[analysis].common and k not in CONTRACTS[analysis].files}  # fmt: skip
    metrics = Metrics(analysis, parameters["model_name"], parameters["out_dir"], params=settings,
                      seed=parameters["seed"], weights_sha256=info["sha256"])  # fmt: skip
    notebook = json.loads(Path(notebook_path).read_text())
    Path(log_path).write_text(json.dumps(log_notebook(notebook, reason), indent=1) + "\n")
    return metrics.not_applicable(reason)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m induction_heads.precheck ANALYSIS NOTEBOOK PARAMETERS NOTEBOOK_LOG",
              file=sys.stderr)  # fmt: skip
        return 2
    analysis, notebook_path, parameters_path, log_path = argv
    parameters = yaml.safe_load(Path(parameters_path).read_text())
    reason = reason_before_kernel(analysis, parameters)
    if reason is None:
        return APPLIES
    path = write_not_applicable(analysis, parameters, reason, Path(notebook_path), Path(log_path))
    print(f"not applicable to {parameters['model_name']}: {reason}\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
