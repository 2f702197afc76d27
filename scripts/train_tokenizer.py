"""Train the byte-level BPE tokenizer and encode both splits. Called by rule `tokenizer`.

    python scripts/train_tokenizer.py --train results/data/corpus/train.txt \
        --heldout results/data/corpus/heldout.txt --vocab-size 3072 --out results/data/tokenizer.json
"""

import argparse
import json
from pathlib import Path

from induction_heads.tokenizer import build_tokenizer

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--train", type=Path, required=True)
parser.add_argument("--heldout", type=Path, required=True)
parser.add_argument("--vocab-size", type=int, required=True)
parser.add_argument("--out", type=Path, required=True, help="tokenizer.json; streams go beside it")
args = parser.parse_args()
summary = build_tokenizer(args.train, args.heldout, args.vocab_size, args.out, args.out.parent)
print(json.dumps(summary))
