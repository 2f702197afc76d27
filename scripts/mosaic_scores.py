"""Score every head of one published model for the induction mosaic. Called by rule `mosaic_scores`.

Any failure (download, checksum, conversion, scoring) is written to the output as the model's
reason, with the traceback in the log, and the job succeeds: the mosaic lists the model as failed
and builds from the others.

    python scripts/mosaic_scores.py --name gpt2 --entry '{"source": "huggingface", ...}' \
        --lock-dir config/locks --seq-len 50 --batch 20 --out results/mosaic/gpt2/scores.json
"""

import argparse
import json
import traceback
from pathlib import Path

from induction_heads.metrics import atomic_write_text
from induction_heads.mosaic import failure, score_model

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--name", required=True)
parser.add_argument("--entry", type=json.loads, required=True)
parser.add_argument("--lock-dir", type=Path, default=Path("config/locks"))
parser.add_argument("--seq-len", type=int, required=True)
parser.add_argument("--batch", type=int, required=True)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()
try:
    result = score_model(args.entry, args.name, args.lock_dir, args.seq_len, args.batch, args.seed, args.device)
except Exception as exc:  # noqa: BLE001 - every failure is this model's reason, not the run's
    traceback.print_exc()
    result = failure(exc)
print(json.dumps({k: v for k, v in result.items() if k not in ("induction", "previous_token")}))
args.out.parent.mkdir(parents=True, exist_ok=True)
atomic_write_text(args.out, json.dumps({"model": args.name, **result}, indent=1))
