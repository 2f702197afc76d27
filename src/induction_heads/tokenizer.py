"""Byte-level BPE tokenizer trained on the training split, with a BOS token.

The tokenizer is saved as a single ``tokenizer.json`` (the ``tokenizers`` library's format) that
every later rule loads. Token id 0 is BOS; all other ids are "ordinary" tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS_TOKEN = "<|BOS|>"
SPECIAL_TOKENS = (BOS_TOKEN,)


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Train byte-level BPE with ``vocab_size`` tokens in total (BOS included)."""
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (bytes + BOS)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    if tok.token_to_id(BOS_TOKEN) != 0:
        raise AssertionError("BOS must be token 0")
    return tok


def load_tokenizer(path: str | Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))


def bos_id(tok: Tokenizer) -> int:
    return tok.token_to_id(BOS_TOKEN)


def ordinary_token_ids(tok: Tokenizer) -> np.ndarray:
    """All token ids that are not special tokens (what random-token sequences draw from)."""
    special = {tok.token_to_id(t) for t in SPECIAL_TOKENS}
    return np.array([i for i in range(tok.get_vocab_size()) if i not in special], dtype=np.int64)


def encode_documents(tok: Tokenizer, docs: list[str]) -> np.ndarray:
    """Concatenate documents into one token stream, each document preceded by BOS."""
    bos = bos_id(tok)
    pieces = []
    for enc in tok.encode_batch(docs):
        pieces.append(np.array([bos, *enc.ids], dtype=np.int32))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)


def single_token_id(tok: Tokenizer, text: str) -> int | None:
    """The id of ``text`` if it encodes to exactly one token, else None."""
    ids = tok.encode(text).ids
    return ids[0] if len(ids) == 1 else None


def build_tokenizer(
    train_txt: Path, heldout_txt: Path, vocab_size: int, out_tokenizer: Path, out_dir: Path
) -> dict:
    """Train on ``train_txt``; save the tokenizer and both splits as token streams (.npy)."""
    from .corpus import read_documents

    train_docs, heldout_docs = read_documents(Path(train_txt)), read_documents(Path(heldout_txt))
    tok = train_tokenizer(train_docs, vocab_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    streams = {"train": encode_documents(tok, train_docs), "heldout": encode_documents(tok, heldout_docs)}
    for split, ids in streams.items():
        np.save(out_dir / f"{split}_stream.npy", ids)
    tmp = Path(out_tokenizer).with_name(".tokenizer.json.tmp")
    tok.save(str(tmp))
    tmp.replace(out_tokenizer)  # written last: the rule's marker of completion
    return {"vocab_size": tok.get_vocab_size(), **{f"{k}_tokens": int(len(v)) for k, v in streams.items()}}
