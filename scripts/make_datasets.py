"""Build one model's token sets (repeated random tokens, held-out text). Called by rule `datasets`.

    python scripts/make_datasets.py --model-dir results/models/attn2l-s0 \
        --heldout results/data/corpus/heldout.txt --out-dir results/data/attn2l-s0 \
        --seq-len 50 --batch 100
"""

import argparse
import json
from pathlib import Path

from induction_heads.datasets import build_model_datasets

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model-dir", type=Path, required=True)
parser.add_argument("--heldout", type=Path, required=True)
parser.add_argument("--out-dir", type=Path, required=True)
parser.add_argument("--seq-len", type=int, required=True)
parser.add_argument("--batch", type=int, required=True)
parser.add_argument("--rep-seed", type=int, default=0)
parser.add_argument("--n-heldout", type=int, default=None,
                    help="held-out windows to keep (default: every whole window inside a document)")
parser.add_argument("--heldout-seed", type=int, default=0)
parser.add_argument("--max-ctx", type=int, default=None, help="cap on held-out window length")
args = parser.parse_args()
summary = build_model_datasets(
    args.model_dir, args.heldout, args.out_dir, args.seq_len, args.batch, args.rep_seed,
    args.n_heldout, args.heldout_seed, args.max_ctx,
)  # fmt: skip
print(json.dumps(summary))
