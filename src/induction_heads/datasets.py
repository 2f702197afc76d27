"""Token sets that the analyses read: repeated random tokens and held-out natural text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class HeldoutWindows:
    """Windows of held-out text, BOS first, and where each came from."""

    tokens: Int[Tensor, "n_seq n_ctx"]
    doc: Int[np.ndarray, "n_seq"]  # index of the document the window lies in (the bootstrap's cluster)
    offset: Int[np.ndarray, "n_seq"]  # its first token's position within that document


def document_windows(
    docs: Sequence[np.ndarray], n_ctx: int, bos: int, n_seq: int | None = None, seed: int = 0
) -> HeldoutWindows:
    """Every whole window of ``n_ctx - 1`` consecutive tokens inside one document, BOS first.

    A window never straddles two documents (the text after BOS is one document's), so the loss at
    position ``t`` is the loss with ``t`` tokens of that document's context. Each document gives
    ``len // (n_ctx - 1)`` disjoint windows (its tail is dropped). The windows come in a seeded
    shuffled order, so the first ``k`` of them are a random sample; ``n_seq`` keeps the first
    ``n_seq`` (``None``: all of them).
    """
    body = n_ctx - 1
    starts = [(i, s) for i, d in enumerate(docs) for s in range(0, len(d) - body + 1, body)]
    if not starts or (n_seq is not None and len(starts) < n_seq):
        raise ValueError(
            f"held-out text ({len(docs)} documents, {sum(map(len, docs))} tokens) has "
            f"{len(starts)} whole windows of {body} tokens inside a document, not "
            f"{n_seq or 'at least one'}; lower n_sequences or hold out more text"
        )
    order = np.random.default_rng(seed).permutation(len(starts))[:n_seq]
    doc = np.array([starts[k][0] for k in order], dtype=np.int64)
    offset = np.array([starts[k][1] for k in order], dtype=np.int64)
    rows = np.stack([np.asarray(docs[i][s : s + body]) for i, s in zip(doc, offset)]).astype(np.int64)
    tokens = torch.cat([torch.full((len(rows), 1), bos), torch.from_numpy(rows)], dim=1)
    return HeldoutWindows(tokens, doc, offset)


def stream_windows(
    docs: Sequence[np.ndarray], n_ctx: int, bos: int, n_seq: int, seed: int = 0
) -> HeldoutWindows:
    """The earlier held-out set, kept to compare with :func:`document_windows`: the documents
    joined without BOS, ``n_seq`` windows of ``n_ctx - 1`` tokens at seeded disjoint slots (at most
    as many as fit), BOS first; a window may straddle documents, and ``doc`` is that of its first
    token."""
    stream = np.concatenate(docs)
    owner = np.concatenate([np.full(len(d), i) for i, d in enumerate(docs)])
    body = n_ctx - 1
    n_slots = len(stream) // body
    slots = np.sort(np.random.default_rng(seed).choice(n_slots, size=min(n_seq, n_slots), replace=False))
    rows = np.stack([stream[s * body : (s + 1) * body] for s in slots]).astype(np.int64)
    tokens = torch.cat([torch.full((len(rows), 1), bos), torch.from_numpy(rows)], dim=1)
    return HeldoutWindows(tokens, owner[slots * body], slots * body)


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


def repeated_tokens_for(model_dir: str | Path, seq_len: int, batch: int, seed: int) -> Int[Tensor, "batch pos"]:
    """``BOS + r + r`` for a model folder: ``r`` drawn from the ordinary (non-special) tokens of
    the model's own tokenizer that its embedding has, after the model's BOS."""
    from .tokenizer import ordinary_token_ids
    from .weights import read_config, read_info

    cfg, info = read_config(model_dir), read_info(model_dir)
    tok, facts = model_tokenizer(cfg, info)
    ordinary = ordinary_token_ids(tok, facts)
    ordinary = ordinary[ordinary < cfg.d_vocab]
    if 1 + 2 * seq_len > cfg.n_ctx:
        raise ValueError(f"model {info.name!r}: seq_len {seq_len}: BOS + 2·seq_len exceeds n_ctx {cfg.n_ctx}")
    return repeated_random_tokens(ordinary, seq_len, batch, seed, facts.bos_id)


def build_model_datasets(
    model_dir: Path,
    heldout_txt: Path,
    out_dir: Path,
    seq_len: int,
    batch: int,
    rep_seed: int,
    n_heldout: int | None,
    heldout_seed: int,
    max_ctx: int | None = None,
) -> dict:
    """Write ``repeated_tokens.pt`` and ``heldout_tokens.pt`` for one model.

    Random tokens are drawn from the model's ordinary vocabulary (its tokenizer's non-special ids);
    held-out text is the corpus's held-out split encoded with the model's own tokenizer document by
    document, in windows of the model's context (at most ``max_ctx`` tokens) that lie inside one
    document, each after the model's BOS (:func:`document_windows`; ``n_heldout=None``: every such
    window). The token sets are built here, never by a model's ``prepend_bos`` default (which
    differs between architectures).
    """
    from .corpus import read_documents
    from .tokenizer import document_ids
    from .weights import read_config, read_info

    cfg, info = read_config(model_dir), read_info(model_dir)
    tok, facts = model_tokenizer(cfg, info)
    bos = facts.bos_id
    rep = repeated_tokens_for(model_dir, seq_len, batch, rep_seed)
    save_token_set(Path(out_dir) / "repeated_tokens.pt", rep, seq_len=seq_len, seed=rep_seed, bos=bos)
    docs = document_ids(tok, read_documents(Path(heldout_txt)), bos)
    ctx = cfg.n_ctx if max_ctx is None else min(cfg.n_ctx, max_ctx)
    held = document_windows(docs, ctx, bos, n_heldout, heldout_seed)
    save_token_set(Path(out_dir) / "heldout_tokens.pt", held.tokens, seed=heldout_seed, bos=bos,
                   doc=torch.from_numpy(held.doc), offset=torch.from_numpy(held.offset),
                   n_documents=len(docs))  # fmt: skip
    return {"repeated": list(rep.shape), "heldout": list(held.tokens.shape), "bos": bos,
            "heldout_documents": int(len(np.unique(held.doc)))}  # fmt: skip
