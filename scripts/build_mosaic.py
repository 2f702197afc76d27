"""Assemble the induction mosaic from every model's scores. Called by rule `mosaic`.

    python scripts/build_mosaic.py results/mosaic/*/scores.json --threshold 0.4 --out-dir results/mosaic/mosaic
"""

import argparse
import json
from pathlib import Path

from induction_heads.mosaic import write_mosaic
from induction_heads.plots import use_style

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("scores", type=Path, nargs="+")
parser.add_argument("--threshold", type=float, required=True)
parser.add_argument("--out-dir", type=Path, required=True)
args = parser.parse_args()

use_style()
results = {(r := json.loads(p.read_text()))["model"]: r for p in args.scores}
print("wrote", write_mosaic(results, args.threshold, args.out_dir))
