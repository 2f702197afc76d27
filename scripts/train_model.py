"""Train one attention-only model (one seed). Called by rule `train_model` (workflow/rules/models.smk).

    python scripts/train_model.py --name attn2l-s0 --arch '{"n_layers": 2, ...}' \
        --training '{"steps": 2000, ...}' --seed 0 --tokenizer results/data/tokenizer.json \
        --stream results/data/train_stream.npy --out-dir results/models/attn2l-s0
"""

import argparse
import json
from pathlib import Path

from induction_heads.training import train_model_to_dir, training_config_from_dict
from induction_heads.weights import device_from_config

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--name", required=True)
parser.add_argument("--arch", type=json.loads, required=True)
parser.add_argument("--training", type=json.loads, required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--tokenizer", type=Path, required=True)
parser.add_argument("--stream", type=Path, required=True)
parser.add_argument("--out-dir", type=Path, required=True)
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()
cfg = training_config_from_dict(args.training, seed=args.seed, threads=args.threads)
summary = train_model_to_dir(
    args.name, args.arch, cfg, args.tokenizer, args.stream, args.out_dir,
    device=device_from_config(args.device),
)  # fmt: skip
print(json.dumps({k: v for k, v in summary.items() if k != "training_config"}))
