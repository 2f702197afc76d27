"""Why is later text not predicted better? A one-seed diagnostic of held-out loss by context position.

Two subcommands:

``train`` trains one variant of a config's family (the config's recipe with ``--set`` overrides)
into ``--out-dir`` with checkpoints every ``--every`` steps (``train_model_to_dir``, as the
workflow does). ``evaluate`` reads one or more such folders and prints, per variant, the held-out
loss of the final weights in 16-token position bins on two sets of held-out windows:

* ``stream``: windows cut from the held-out documents joined without BOS, at seeded
  non-overlapping offsets (the old held-out set: windows may straddle documents);
* ``document``: every whole window inside one document, BOS first
  (:func:`induction_heads.datasets.document_windows`, what the workflow uses now);

plus the ICL score (clustered by document), the loss in the ICL score's early and late windows
split by what exact induction would do there (:func:`induction_heads.icl.induction_targets`:
copyable, misleading, unmatched), the largest attention of any head to the token 63 back (the
distance at which the half-row repeats recur), the best induction score, the repeat-loss ratio
and the first checkpoint where the heads count as formed. It writes nothing under results/ unless
``--out-dir`` says so.

    .venv/bin/python scripts/icl_diagnostic.py train --variant base --out-dir /tmp/diag/base
    .venv/bin/python scripts/icl_diagnostic.py train --variant no-reptext \\
        --set frac_repeated_text=0 --out-dir /tmp/diag/no-reptext
    .venv/bin/python scripts/icl_diagnostic.py evaluate /tmp/diag/base /tmp/diag/no-reptext
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml


def key_value(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    return key, yaml.safe_load(value)  # 2000 -> int, false -> bool, 0.003 -> float


def train(args) -> None:
    from induction_heads.config import training_config_dict, validate_config
    from induction_heads.training import ARCH_KEYS, train_model_to_dir, training_config_from_dict

    config = validate_config(yaml.safe_load(args.configfile.read_text()))
    arch = {k: config["models"][args.family][k] for k in ARCH_KEYS}
    training = {**training_config_dict(config, args.family), **dict(args.set)}
    training["checkpoints"] = [{"start": 0, "stop": int(training["steps"]), "every": args.every}]
    cfg = training_config_from_dict(training, seed=args.seed, threads=args.threads)
    summary = train_model_to_dir(f"{args.variant}-s{args.seed}", arch, cfg, args.data_dir / "tokenizer.json",
                                 args.data_dir / "train_stream.npy", args.out_dir, progress=False)  # fmt: skip
    (args.out_dir / "variant.json").write_text(json.dumps(
        {"variant": args.variant, "family": args.family, "seed": args.seed, "overrides": dict(args.set),
         "wall_time_s": summary["wall_time_s"]}, indent=1))  # fmt: skip
    print(json.dumps({"variant": args.variant, "wall_time_s": summary["wall_time_s"]}))


def evaluate(args) -> None:
    from induction_heads import icl
    from induction_heads import scores as S
    from induction_heads.corpus import read_documents
    from induction_heads.datasets import document_windows, repeated_random_tokens, stream_windows
    from induction_heads.dynamics import circuit_progress, first_formed_step
    from induction_heads.tokenizer import bos_id, document_ids, load_tokenizer, ordinary_token_ids
    from induction_heads.weights import checkpoint_steps, load_checkpoint

    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.data_dir / "tokenizer.json")
    bos = bos_id(tok)
    docs = document_ids(tok, read_documents(args.heldout), bos)
    rep = repeated_random_tokens(ordinary_token_ids(tok), 50, batch=50, seed=0, bos=bos)
    out = []
    for model_dir in args.model_dirs:
        variant = json.loads((model_dir / "variant.json").read_text())
        steps = checkpoint_steps(model_dir)
        final = load_checkpoint(model_dir, steps[-1])
        n_ctx = final.cfg.n_ctx
        windows = {"document": document_windows(docs, n_ctx, bos)}
        windows["stream"] = stream_windows(docs, n_ctx, bos, len(windows["document"].tokens), seed=0)
        row = {"variant": variant["variant"], "overrides": variant["overrides"],
               "wall_time_s": variant["wall_time_s"]}  # fmt: skip
        for kind, w in windows.items():
            loss = S.per_token_loss(final, w.tokens)
            curve = icl.loss_by_position(loss, w.doc, bin_width=16, n_boot=args.n_boot, seed=0)
            score = icl.icl_score(loss, w.doc, icl.IclWindows.scaled(n_ctx), n_boot=args.n_boot, seed=0)
            row[kind] = {"n_windows": len(w.tokens), "n_documents": int(len(np.unique(w.doc))),
                         "bins": [round(float(m), 3) for m in curve.mean],
                         "icl_score": round(score.value, 3), "icl_ci": [round(c, 3) for c in score.ci]}  # fmt: skip
        progress = [{"step": step, **circuit_progress(load_checkpoint(model_dir, step), rep, 50,
                                                      windows["document"].tokens[:24])}
                    for step in steps]  # fmt: skip
        # Where exact induction could help (copyable) or mislead, early and late: the final
        # loss of each kind of prediction in the ICL score's two windows.
        doc_w = windows["document"]
        kinds = icl.loss_by_prediction_kind(S.per_token_loss(final, doc_w.tokens), doc_w.tokens,
                                            icl.IclWindows.scaled(n_ctx))  # fmt: skip
        row.update({k: round(v, 3) for k, v in kinds.items()})
        # A head that attends a fixed distance back (the half-row repeat's 63 tokens) on text.
        offset = (n_ctx - 1) // 2
        at_offset = S.attention_at_offset(S.attention_patterns(final, doc_w.tokens[:200]), offset)
        row[f"max_attention_at_offset_{offset}"] = round(float(at_offset.max()), 3)
        row["formed_at_step"] = first_formed_step(progress)
        row["final_induction_score"] = round(progress[-1]["best_induction_score"], 3)
        row["final_loss_ratio"] = round(progress[-1]["loss_ratio"], 3)
        print(json.dumps(row), flush=True)
        out.append(row)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--configfile", type=Path, default=Path("config/config.yaml"))
parser.add_argument("--data-dir", type=Path, default=Path("results/data"))
parser.add_argument("--threads", type=int, default=1)
sub = parser.add_subparsers(dest="command", required=True)
p_train = sub.add_parser("train")
p_train.add_argument("--variant", required=True)
p_train.add_argument("--family", default="attn2l")
p_train.add_argument("--seed", type=int, default=0)
p_train.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                     help="override a `training:` key (repeatable)")  # fmt: skip
p_train.add_argument("--every", type=int, default=250, help="checkpoint every N steps")
p_train.add_argument("--out-dir", type=Path, required=True)
p_eval = sub.add_parser("evaluate")
p_eval.add_argument("model_dirs", type=Path, nargs="+")
p_eval.add_argument("--heldout", type=Path, default=Path("results/data/corpus/heldout.txt"))
p_eval.add_argument("--n-boot", type=int, default=1000)
p_eval.add_argument("--out", type=Path, default=None)
args = parser.parse_args()
t0 = time.perf_counter()
{"train": train, "evaluate": evaluate}[args.command](args)
