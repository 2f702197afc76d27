"""Build the synonym-pair tables of the fuzzy-induction analysis. Called by the synonym rules.

Stage 1, once (tokenizer-independent WordNet candidates)::

    python scripts/build_synonyms.py --wordnet-deb-dir results/data/debs \
        --out results/data/synonyms.tsv --counts results/data/synonyms_counts.json

Stage 2, per model (the pairs whose words are single tokens of its tokenizer)::

    python scripts/build_synonyms.py --tokenizer results/data/tokenizer.json \
        --candidates results/data/synonyms.tsv --candidate-counts results/data/synonyms_counts.json \
        --out results/data/attn2l-s0/synonym_pairs.tsv \
        --counts results/data/attn2l-s0/synonym_pairs_counts.json
"""

import argparse
import json
from pathlib import Path

from induction_heads import wordnet

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
source = parser.add_mutually_exclusive_group()
source.add_argument("--wordnet-dir", type=Path, help="stage 1: a folder with WordNet's data.* / index.*")
source.add_argument("--wordnet-deb-dir", type=Path, help="stage 1: fetch/cache wordnet-base's .deb here")
parser.add_argument("--tokenizer", type=Path, help="stage 2: the model's tokenizer.json")
parser.add_argument("--candidates", type=Path, help="stage 2: the stage-1 table")
parser.add_argument("--candidate-counts", type=Path, help="stage 2: the stage-1 counts (optional)")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--counts", type=Path, required=True)
parser.add_argument("--max-sense-rank", type=int, default=8)
parser.add_argument("--stem-len", type=int, default=4)
parser.add_argument("--max-edit", type=int, default=2)
args = parser.parse_args()

if args.tokenizer:
    if not args.candidates:
        parser.error("--tokenizer (stage 2) needs --candidates")
    counts = wordnet.build_model_pairs(
        args.candidates, args.tokenizer, args.out, args.counts, args.candidate_counts
    )
else:
    if args.wordnet_dir:
        wn_dir = args.wordnet_dir
    elif args.wordnet_deb_dir:
        wn_dir = wordnet.fetch_wordnet(args.wordnet_deb_dir, args.wordnet_deb_dir / "unpacked")
    else:
        parser.error("stage 1 needs --wordnet-dir or --wordnet-deb-dir (stage 2 needs --tokenizer)")
    counts = wordnet.build_candidate_table(
        wn_dir, args.out, args.counts,
        max_sense_rank=args.max_sense_rank, stem_len=args.stem_len, max_edit=args.max_edit,
    )  # fmt: skip
print(json.dumps(counts, indent=2))
