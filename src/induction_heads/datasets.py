"""Token sets that the analyses read: repeated random tokens and held-out natural text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor


def repeated_random_tokens(
    ordinary_ids: np.ndarray, seq_len: int, batch: int, seed: int, bos: int | None
) -> Int[Tensor, "batch pos"]:
    """``BOS + r + r`` with ``r`` uniform over ``ordinary_ids`` (docs/methods/head_scores.md), seeded.

    With ``bos=None`` (a model without a BOS token) the sequences are ``r + r``.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    gen = torch.Generator().manual_seed(seed)
    ids = torch.as_tensor(np.asarray(ordinary_ids), dtype=torch.long)
    r = ids[torch.randint(len(ids), (batch, seq_len), generator=gen)]
    parts = [r, r] if bos is None else [torch.full((batch, 1), bos, dtype=torch.long), r, r]
    return torch.cat(parts, dim=1)


def heldout_windows(
    stream: np.ndarray, n_ctx: int, n_seq: int, bos: int, seed: int
) -> Int[Tensor, "n_seq n_ctx"]:
    """``n_seq`` windows of held-out text, each ``BOS`` + ``n_ctx - 1`` tokens, at seeded offsets.

    Windows don't overlap (offsets are drawn from disjoint slots) so each is an independent sample.
    """
    body = n_ctx - 1
    n_slots = len(stream) // body
    if n_slots < n_seq:
        raise ValueError(
            f"held-out text has {len(stream)} tokens: room for {n_slots} windows of {body}, "
            f"not {n_seq}; lower n_heldout_sequences or hold out more text"
        )
    slots = np.sort(np.random.default_rng(seed).choice(n_slots, size=n_seq, replace=False))
    rows = np.stack([stream[s * body : (s + 1) * body] for s in slots]).astype(np.int64)
    return torch.cat([torch.full((n_seq, 1), bos), torch.from_numpy(rows)], dim=1)


def save_token_set(path: str | Path, tokens: Tensor, **meta) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"tokens": tokens.long().contiguous(), **meta}, tmp)
    tmp.replace(path)


def load_token_set(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def model_tokenizer(cfg, info):
    """(tokenizer, TokenizerFacts) of a model (its config and ModelInfo): the facts recorded when
    it was obtained, or, for models trained here, read off the project's own tokenizer."""
    from .tokenizer import TokenizerFacts, load_tokenizer, tokenizer_facts

    if info.tokenizer is None:
        raise ValueError(
            f"model {info.name!r} has no tokenizer: give its config entry a `tokenizer` so held-out "
            f"text can be encoded"
        )
    tok = load_tokenizer(info.tokenizer)
    recorded = info.extra.get("tokenizer_facts")
    facts = TokenizerFacts.from_dict(recorded) if recorded else tokenizer_facts(tok, cfg.d_vocab, where=info.tokenizer)
    return tok, facts


def build_model_datasets(
    model_dir: Path,
    heldout_txt: Path,
    out_dir: Path,
    seq_len: int,
    batch: int,
    rep_seed: int,
    n_heldout: int,
    heldout_seed: int,
    max_ctx: int | None = None,
) -> dict:
    """Write ``repeated_tokens.pt`` and ``heldout_tokens.pt`` for one model.

    Random tokens are drawn from the model's ordinary vocabulary (its tokenizer's non-special ids);
    held-out text is the corpus's held-out split encoded with the model's own tokenizer, each
    document after the model's BOS, in windows of the model's context (at most ``max_ctx`` tokens).
    Every window starts with BOS; the token sets are built here, never by a model's
    ``prepend_bos`` default (which differs between architectures).
    """
    from .corpus import read_documents
    from .tokenizer import encode_documents, ordinary_token_ids
    from .weights import read_config, read_info

    cfg, info = read_config(model_dir), read_info(model_dir)
    tok, facts = model_tokenizer(cfg, info)
    bos = facts.bos_id
    ordinary = ordinary_token_ids(tok, facts)
    ordinary = ordinary[ordinary < cfg.d_vocab]
    if 1 + 2 * seq_len > cfg.n_ctx:
        raise ValueError(f"model {info.name!r}: seq_len {seq_len}: BOS + 2·seq_len exceeds n_ctx {cfg.n_ctx}")
    rep = repeated_random_tokens(ordinary, seq_len, batch, rep_seed, bos)
    save_token_set(Path(out_dir) / "repeated_tokens.pt", rep, seq_len=seq_len, seed=rep_seed, bos=bos)
    docs = read_documents(Path(heldout_txt))
    stream = encode_documents(tok, docs, bos)
    stream = stream[stream != bos]
    ctx = cfg.n_ctx if max_ctx is None else min(cfg.n_ctx, max_ctx)
    held = heldout_windows(stream, ctx, n_heldout, bos, heldout_seed)
    save_token_set(Path(out_dir) / "heldout_tokens.pt", held, seed=heldout_seed, bos=bos)
    return {"repeated": list(rep.shape), "heldout": list(held.shape), "bos": bos}
