"""Try a change to the training recipe on one seed, and watch the induction circuit form.

Trains one model of a config's family with your overrides and, every ``--every`` steps, prints one
JSON line of :func:`induction_heads.dynamics.circuit_progress` (best previous-token and induction
scores, the best last-layer OV copying accuracy, repeat losses, held-out loss); at the end, the
first step where the heads count as formed (induction >= 0.5 and second-repeat loss at most half
the first) and the training time without the probes. This is how the default recipe was chosen. It reads the tokenizer and token streams of an earlier run
(``snakemake results/data/tokenizer.json`` builds them, and the held-out corpus split) and writes nothing under results/.

    .venv/bin/python scripts/recipe_trial.py --seed 0 --set steps=2000 --set tied_unembed_init=false
    .venv/bin/python scripts/recipe_trial.py --family attn2l --arch d_model=96 --arch d_head=24
"""

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch
import yaml

from induction_heads.architecture import to_hooked_transformer
from induction_heads.config import training_config_dict, validate_config
from induction_heads.corpus import read_documents
from induction_heads.datasets import document_windows, repeated_random_tokens
from induction_heads.dynamics import circuit_progress, first_formed_step
from induction_heads.tokenizer import bos_id, document_ids, load_tokenizer, ordinary_token_ids
from induction_heads.training import ARCH_KEYS, model_and_sampler, train, training_config_from_dict


def key_value(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    return key, yaml.safe_load(value)  # 2000 -> int, false -> bool, 0.003 -> float


parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--configfile", type=Path, default=Path("config/config.yaml"))
parser.add_argument("--family", default="attn2l", help="a `source: train` model of the config")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                    help="override a `training:` key (repeatable)")  # fmt: skip
parser.add_argument("--arch", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                    help=f"override an architecture key: {', '.join(ARCH_KEYS)}")  # fmt: skip
parser.add_argument("--every", type=int, default=100, help="probe every N steps")
parser.add_argument("--data-dir", type=Path, default=Path("results/data"))
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()

torch.set_num_threads(args.threads)
config = validate_config(yaml.safe_load(args.configfile.read_text()))
arch = {**{k: config["models"][args.family][k] for k in ARCH_KEYS}, **dict(args.arch)}
training = {**training_config_dict(config, args.family), **dict(args.set)}
cfg = training_config_from_dict(training, seed=args.seed, threads=args.threads)
cfg = dataclasses.replace(cfg, checkpoints=tuple(range(0, cfg.steps + 1, args.every)))
model, sampler = model_and_sampler(arch, cfg, args.data_dir / "tokenizer.json", args.data_dir / "train_stream.npy")

tok = load_tokenizer(args.data_dir / "tokenizer.json")
bos = bos_id(tok)
seq_len = config["data"]["repeated_tokens"]["seq_len"]
rep = repeated_random_tokens(ordinary_token_ids(tok), seq_len, batch=24, seed=0, bos=bos)
docs = document_ids(tok, read_documents(args.data_dir / "corpus" / "heldout.txt"), bos)
held = document_windows(docs, model.cfg.n_ctx, bos, n_seq=24, seed=0).tokens

probes: list[dict] = []
probe_time = 0.0


def probe(step: int, state: dict) -> None:
    global probe_time
    t0 = time.perf_counter()
    hooked = to_hooked_transformer(model.cfg, state)
    record = {"step": step, **{k: round(v, 3) for k, v in circuit_progress(hooked, rep, seq_len, held).items()}}
    probes.append(record)
    print(json.dumps(record), flush=True)
    probe_time += time.perf_counter() - t0


t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    train(model, sampler, cfg, probe, Path(tmp) / "train_log.jsonl", progress=False)
print(json.dumps({
    "family": args.family, "seed": args.seed, "arch": arch, "overrides": dict(args.set),
    "steps": cfg.steps, "formed_at_step": first_formed_step(probes), "final": probes[-1],
    "train_s_without_probes": round(time.perf_counter() - t0 - probe_time, 1),
}))  # fmt: skip
