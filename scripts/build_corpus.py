"""Build the offline corpus (train / held-out split). Called by rule `corpus` (workflow/rules/data.smk).

    python scripts/build_corpus.py --sources austen kjv --out-dir results/data/corpus
"""

import argparse
import json
from pathlib import Path

from induction_heads.corpus import build_corpus

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--sources", nargs="+", required=True)
parser.add_argument("--out-dir", type=Path, required=True)
parser.add_argument("--package-dir", type=Path, required=True, help="where .deb files are cached")
parser.add_argument("--heldout-fraction", type=float, default=0.05)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--max-documents", type=int, default=None)
args = parser.parse_args()
info = build_corpus(
    args.sources, args.out_dir, args.package_dir, args.heldout_fraction, args.seed, args.max_documents
)
print(json.dumps(info, indent=2))
