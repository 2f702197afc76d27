"""Assemble the induction mosaic from every model's scores. Called by rule `mosaic`.

    python scripts/build_mosaic.py results/mosaic/*/scores.json --threshold 0.4 --out-dir results/mosaic/mosaic
"""

import argparse
import json
from pathlib import Path

from induction_heads.metrics import Metrics
from induction_heads.mosaic import mosaic_figure, mosaic_rows
from induction_heads.plots import use_style

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("scores", type=Path, nargs="+")
parser.add_argument("--threshold", type=float, required=True)
parser.add_argument("--out-dir", type=Path, required=True)
args = parser.parse_args()

use_style()
results = {(r := json.loads(p.read_text()))["model"]: r for p in args.scores}
scored = [m for m, r in results.items() if r["status"] == "ok"]
failed = {m: r["reason"] for m, r in results.items() if r["status"] != "ok"}
metrics = Metrics("mosaic", "mosaic", args.out_dir, params={"threshold": args.threshold, "models": list(results)})
metrics.add("mosaic_models_scored", scored, "models whose every head was scored")
metrics.add("mosaic_models_failed", sorted(failed), "models that could not be obtained or scored (reasons in the table)")
metrics.table("mosaic", ["model", "parameters", "layers x heads", "best induction head", "induction score",
                         f"heads >= {args.threshold}", "best previous-token score", "failed: reason"],
              mosaic_rows(results, args.threshold),
              "Every model of the mosaic: its best induction head (layers 1+ of a multi-layer model) and "
              "how many heads reach the threshold; a model that failed to download or convert, with its reason.")
for model, reason in failed.items():
    metrics.text(f"mosaic_failed_{model}", f"{model} is not in the mosaic: {reason}")
if scored:
    for kind in ("induction", "previous_token"):
        metrics.figure(f"mosaic_{kind}", mosaic_figure(results, kind),
                       f"{kind.replace('_', '-').capitalize()} score of every head of every model (layer × head, "
                       "one colour scale), on repeated random tokens of each model's own tokenizer.")
print("wrote", metrics.write())
