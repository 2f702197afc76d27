"""Evaluate every training checkpoint of one trained model. Called by rule `evaluate_checkpoints`
(workflow/rules/dynamics.smk); the logic is `induction_heads.dynamics.evaluate_checkpoints`.

    python scripts/evaluate_checkpoints.py --model-dir results/models/attn2l-s0 \
        --data-dir results/data/attn2l-s0 --out results/models/attn2l-s0/dynamics.jsonl \
        --icl-early 0.0625 0.125 --icl-late 0.75 1.0
"""

import argparse
from pathlib import Path

import torch

from induction_heads.dynamics import evaluate_checkpoints, write_jsonl
from induction_heads.icl import EARLY, LATE
from induction_heads.weights import device_from_config

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model-dir", type=Path, required=True)
parser.add_argument("--data-dir", type=Path, required=True, help="holds repeated_tokens.pt, heldout_tokens.pt")
parser.add_argument("--out", type=Path, required=True, help="JSON-lines file, one record per checkpoint")
parser.add_argument("--icl-early", type=float, nargs=2, default=EARLY, metavar=("START", "STOP"),
                    help="ICL score: mean loss over the late window minus over this one (fractions of the context)")
parser.add_argument("--icl-late", type=float, nargs=2, default=LATE, metavar=("START", "STOP"))
parser.add_argument("--bin-width", type=int, default=16, help="tokens per bin of the loss-by-position curve")
parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of each interval")
parser.add_argument("--max-heldout", type=int, default=None, help="use the first N held-out sequences")
parser.add_argument("--max-repeated", type=int, default=None, help="use the first N repeated sequences")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()
torch.set_num_threads(args.threads)
records = evaluate_checkpoints(
    args.model_dir, args.data_dir, args.icl_early, args.icl_late,
    device=device_from_config(args.device), max_heldout=args.max_heldout,
    max_repeated=args.max_repeated, batch_size=args.batch_size, bin_width=args.bin_width,
    n_boot=args.n_boot,
)  # fmt: skip
print("wrote", write_jsonl(records, args.out), f"({len(records)} checkpoints)")
