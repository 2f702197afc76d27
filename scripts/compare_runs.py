"""Exit 0 when two working directories of the workflow hold the same results, else list the
differences and exit 1 (what is compared: src/induction_heads/run_compare.py).

    python scripts/compare_runs.py <workdir of run A> <workdir of run B>
"""

import argparse
import sys
from pathlib import Path

from induction_heads.run_compare import run_differences

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("run_a", type=Path)
parser.add_argument("run_b", type=Path)
args = parser.parse_args()
diffs = run_differences(args.run_a, args.run_b)
for line in diffs:
    print(line)
print(f"compare_runs: {len(diffs)} difference(s) between {args.run_a} and {args.run_b}")
sys.exit(1 if diffs else 0)
