"""Obtain a model that is not trained here (`source: huggingface` or `source: local`) into this
project's model layout, verified against its lock file. Called by rule `obtain_model`.

    python scripts/obtain_model.py --name pythia-70m@step1000 --entry '{"source": "huggingface", ...}' \
        --revision step1000 --lock-dir config/locks --out-dir results/models/pythia-70m@step1000
"""

import argparse
import json
import sys
from pathlib import Path

from induction_heads.sources import obtain
from induction_heads.sources.build import ERRORS

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--name", required=True)
parser.add_argument("--entry", type=json.loads, required=True)
parser.add_argument("--revision", default=None)
parser.add_argument("--lock-dir", type=Path, default=Path("config/locks"))
parser.add_argument("--out-dir", type=Path, required=True)
args = parser.parse_args()
try:
    info = obtain(args.entry, args.name, args.out_dir, args.lock_dir, args.revision)
except ERRORS as exc:
    sys.exit(f"{type(exc).__name__}: {exc}")
print(json.dumps(info.__dict__, indent=2))
