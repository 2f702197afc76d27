"""Obtain a model that is not trained here: `source: huggingface` (download + sha256) or
`source: local` (files on your disk). Called by rule `obtain_model`.

    python scripts/obtain_model.py --name attn_only_2L_half --entry '{"source": "huggingface", ...}' \
        --out-dir results/models/attn_only_2L_half
"""

import argparse
import json
from pathlib import Path

from induction_heads.weights import build_hub_model, build_local_model

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--name", required=True)
parser.add_argument("--entry", type=json.loads, required=True)
parser.add_argument("--out-dir", type=Path, required=True)
args = parser.parse_args()
args.out_dir.mkdir(parents=True, exist_ok=True)
build = {"huggingface": build_hub_model, "local": build_local_model}[args.entry["source"]]
info = build(args.entry, args.name, args.out_dir)
print(json.dumps(info.__dict__, indent=2))
