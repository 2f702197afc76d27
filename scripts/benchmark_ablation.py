"""Time the per-head ablation table: hooked reference vs fast path, against the FLOP prediction.

    .venv/bin/python scripts/benchmark_ablation.py                 # both shapes, 1 thread
    .venv/bin/python scripts/benchmark_ablation.py --shapes default --repeats 5

Models have random weights (timing does not depend on them): the project's default trained shape
and ARENA's ``attn_only_2L_half`` shape. Tokens are ``BOS + r + r``; the scored positions are the
second repeat. The predicted speed-up is the ratio of :func:`ablation.ablation_flops` counts.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformer_lens import HookedTransformer

from induction_heads import ablation
from induction_heads.architecture import attn_only_config
from induction_heads.attribution import repeat_positions

SHAPES = {
    "default": dict(n_layers=2, d_model=128, n_heads=4, d_head=32, n_ctx=128, d_vocab=3072),
    "arena": dict(n_layers=2, d_model=768, n_heads=12, d_head=64, n_ctx=2048, d_vocab=48262),
}


def best_time(fn, repeats: int) -> tuple[float, object]:
    """Fastest of ``repeats`` calls and the last result."""
    result, times = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench(name: str, batch: int, seq_len: int, kind: str, repeats: int) -> dict:
    cfg = attn_only_config(seed=0, **SHAPES[name])
    model = HookedTransformer(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    r = torch.randint(1, cfg.d_vocab, (batch, seq_len), generator=gen)
    tokens = torch.cat([torch.zeros(batch, 1, dtype=torch.long), r, r], dim=1)
    positions = repeat_positions(seq_len)[1]
    for method in ("reference", "fast"):  # warm-up on a tiny input (lazy initialisation)
        ablation.ablation_losses(model, tokens[:1, :9], torch.arange(5, 7), kind, method)
    t_ref, ref = best_time(
        lambda: ablation.ablation_losses_reference(model, tokens, positions, kind), repeats
    )
    t_fast, fast = best_time(
        lambda: ablation.ablation_losses_fast(model, tokens, positions, kind), repeats
    )
    flops = ablation.ablation_flops(cfg, batch, tokens.shape[1], len(positions))
    return {
        "shape": name,
        "heads": cfg.n_layers * cfg.n_heads,
        "ref_s": t_ref,
        "fast_s": t_fast,
        "measured": t_ref / t_fast,
        "predicted": flops["reference"] / flops["fast"],
        "ref_gflop": flops["reference"] / 1e9,
        "fast_gflop": flops["fast"] / 1e9,
        "max_diff": float((ref.ablated - fast.ablated).abs().max()),
    }


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'shape':<8} {'heads':>5} {'ref GFLOP':>10} {'fast GFLOP':>10} {'ref s':>8} {'fast s':>8}"
        f" {'measured':>9} {'predicted':>9} {'meas/pred':>9} {'max |diff|':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['shape']:<8} {r['heads']:>5} {r['ref_gflop']:>10.2f} {r['fast_gflop']:>10.2f}"
            f" {r['ref_s']:>8.3f} {r['fast_s']:>8.3f} {r['measured']:>8.2f}x {r['predicted']:>8.2f}x"
            f" {r['measured'] / r['predicted']:>9.2f} {r['max_diff']:>10.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["default", "arena"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--kind", choices=ablation.KINDS, default="zero")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per path (best is kept)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch}, seq_len {args.seq_len} (BOS + r + r), {args.kind}-ablation, "
          f"second repeat scored, {args.threads} thread(s), best of {args.repeats}")
    rows = [bench(s, args.batch, args.seq_len, args.kind, args.repeats) for s in args.shapes]
    print_table(rows)


if __name__ == "__main__":
    main()
