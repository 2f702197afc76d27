"""Download every published model a config needs into the Hugging Face cache (HF_HOME), verify
it and write its lock files, so the run can then go offline (HF_HUB_OFFLINE=1).

    python scripts/fetch_models.py config/config.yaml config/hub.yaml          # plan, ask, fetch
    python scripts/fetch_models.py config/config.yaml config/hub.yaml --yes    # no question
    python scripts/fetch_models.py config/config.yaml config/hub.yaml --dry-run

Config files merge as `snakemake --configfile a.yaml b.yaml` merges them.
"""

import argparse
import sys
from pathlib import Path

import yaml
from huggingface_hub import constants
from snakemake.utils import update_config

from induction_heads.config import ConfigError, model_instances, validate_config
from induction_heads.model_plan import mosaic_instances
from induction_heads.sources.build import ERRORS
from induction_heads.sources.fetch import NotEnoughSpace, check_space, fetch_all, plan_downloads

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("configs", nargs="+", type=Path)
parser.add_argument("--yes", action="store_true", help="do not ask before downloading")
parser.add_argument("--dry-run", action="store_true", help="print the plan only")
args = parser.parse_args()

config: dict = {}
for path in args.configs:
    update_config(config, yaml.safe_load(path.read_text()) or {})
try:
    config = validate_config(config)
    instances = {**model_instances(config), **mosaic_instances(config)}  # the mosaic's models too
    plans = plan_downloads(instances)
except (ConfigError, *ERRORS) as exc:
    sys.exit(f"fetch_models: {exc}")
for p in plans:
    print(f"{p.instance:32s} {p.repo_id}@{p.revision}: {len(p.files)} files, "
          f"{p.bytes_total / 1e6:8.1f} MB ({p.bytes_missing / 1e6:.1f} MB to download)")
try:
    total, free = check_space(plans, Path(constants.HF_HUB_CACHE))
except NotEnoughSpace as exc:
    sys.exit(f"fetch_models: {exc}")
print(f"total to download: {total / 1e6:.1f} MB into {constants.HF_HUB_CACHE} ({free / 1e9:.1f} GB free)")
if args.dry_run or not plans:
    sys.exit(0)
if not args.yes and input("download? [y/N] ").strip().lower() not in ("y", "yes"):
    sys.exit("fetch_models: nothing downloaded")
try:
    for line in fetch_all(instances, Path(config["lock_dir"])):
        print(line)
except ERRORS as exc:
    sys.exit(f"fetch_models: {exc}")
print("done: copy HF_HOME and the lock files to the offline machine, then set HF_HUB_OFFLINE=1")
