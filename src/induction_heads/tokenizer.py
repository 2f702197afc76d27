"""Tokenizers: the byte-level BPE trained here, and the facts the analyses need of any tokenizer.

The trained tokenizer is saved as a single ``tokenizer.json`` (the ``tokenizers`` library's
format). Its token id 0 is BOS; all other ids are "ordinary" tokens.

A published model brings its own tokenizer (GPT-2's, GPT-NeoX's, OPT's …). What the pipeline
needs of it is :class:`TokenizerFacts`: which id is BOS, which ids are special (never drawn as
random tokens, never a synonym), the unknown token if any, and its size — which may be smaller
than the model's ``d_vocab`` (Pythia pads its embedding to 50304 for 50277 tokens), never larger.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
    """BOS of the tokenizer trained here (use :class:`TokenizerFacts` for any other)."""
    return tok.token_to_id(BOS_TOKEN)


# Names under which tokenizers commonly keep their BOS, tried in order when nothing says which.
BOS_CANDIDATES = (BOS_TOKEN, "<|endoftext|>", "<s>", "<bos>", "[BOS]", "<|begin_of_text|>")


class TokenizerError(ValueError):
    pass


@dataclass(frozen=True)
class TokenizerFacts:
    bos_id: int
    special_ids: tuple[int, ...]
    vocab_size: int  # ids 0 … vocab_size-1, added tokens included
    unk_id: int | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "special_ids": list(self.special_ids)}

    @classmethod
    def from_dict(cls, d: dict) -> "TokenizerFacts":
        return cls(d["bos_id"], tuple(d["special_ids"]), d["vocab_size"], d.get("unk_id"))


def _token_content(value) -> str | None:
    """A special token as tokenizer_config.json / special_tokens_map.json write it."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def tokenizer_facts(
    tok: Tokenizer,
    d_vocab: int,
    bos_token_id: int | None = None,
    token_config: dict | None = None,
    where: str = "tokenizer",
) -> TokenizerFacts:
    """BOS from ``bos_token_id`` (the config entry), else the tokenizer's own ``bos_token``
    (``token_config``: tokenizer_config.json merged with special_tokens_map.json), else a special
    token with a usual BOS name; special ids = the tokenizer's special added tokens and its
    declared bos/eos/unk/pad tokens. Refuses a tokenizer larger than ``d_vocab``."""
    token_config = token_config or {}
    size = tok.get_vocab_size(with_added_tokens=True)
    if size > d_vocab:
        raise TokenizerError(f"{where} has {size} tokens, more than the model's d_vocab {d_vocab}")
    special = {t.content: i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    declared = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        content = _token_content(token_config.get(key))
        if content is not None and tok.token_to_id(content) is not None:
            declared[key] = tok.token_to_id(content)
    if bos_token_id is not None:
        bos = bos_token_id
    elif "bos_token" in declared:
        bos = declared["bos_token"]
    else:
        bos = next((tok.token_to_id(n) for n in BOS_CANDIDATES if tok.token_to_id(n) is not None), None)
    if bos is None:
        raise TokenizerError(
            f"{where}: no BOS token found (no bos_token in its config, none of {BOS_CANDIDATES}); "
            f"set `bos_token_id` in the model's config entry"
        )
    if not 0 <= bos < d_vocab:
        raise TokenizerError(f"{where}: BOS id {bos} is outside the model's vocabulary (d_vocab {d_vocab})")
    unk = declared.get("unk_token")
    if unk is None and getattr(tok.model, "unk_token", None):
        unk = tok.token_to_id(tok.model.unk_token)
    ids = set(special.values()) | set(declared.values()) | {bos}
    return TokenizerFacts(int(bos), tuple(sorted(int(i) for i in ids)), int(size), unk)


def ordinary_token_ids(tok: Tokenizer, facts: TokenizerFacts | None = None) -> np.ndarray:
    """All token ids that are not special tokens (what random-token sequences draw from)."""
    if facts is None:
        special = {tok.token_to_id(t) for t in SPECIAL_TOKENS}
        size = tok.get_vocab_size()
    else:
        special, size = set(facts.special_ids), facts.vocab_size
    return np.array([i for i in range(size) if i not in special], dtype=np.int64)


def encode_documents(tok: Tokenizer, docs: list[str], bos: int | None = None) -> np.ndarray:
    """Concatenate documents into one token stream, each document preceded by BOS (the trained
    tokenizer's own unless ``bos`` is given)."""
    bos = bos_id(tok) if bos is None else bos
    pieces = []
    for enc in tok.encode_batch(docs):
        pieces.append(np.array([bos, *enc.ids], dtype=np.int32))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)


def document_ids(tok: Tokenizer, docs: list[str], bos: int) -> list[np.ndarray]:
    """Each document's token ids on its own (int64), without any BOS that a hub tokenizer's
    post-processor adds: the windows built from them put the model's BOS first themselves."""
    out = []
    for enc in tok.encode_batch(docs):
        ids = np.asarray(enc.ids, dtype=np.int64)
        out.append(ids[ids != bos])
    return out


def single_token_id(tok: Tokenizer, text: str) -> int | None:
    """The id of ``text`` if it encodes to exactly one token, else None."""
    ids = tok.encode(text, add_special_tokens=False).ids
    return ids[0] if len(ids) == 1 else None


def unusable_ids(tok: Tokenizer) -> set[int]:
    """Ids that are never a word: special added tokens and the unknown token."""
    out = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    unk = getattr(tok.model, "unk_token", None)
    if unk and tok.token_to_id(unk) is not None:
        out.add(tok.token_to_id(unk))
    return out


def in_text_prefix(tok: Tokenizer) -> str:
    """How a word appears mid-sentence in this tokenizer's tokens: with its leading space
    (byte-level BPEs: " the" is one token) or without (tokenizers that split on whitespace)."""
    probe = " the"
    return " " if tok.decode(tok.encode(probe, add_special_tokens=False).ids) == probe else ""


def word_token_id(tok: Tokenizer, word: str, prefix: str, unusable: set[int]) -> int | None:
    """The token of ``prefix + word`` if it is exactly one ordinary token that decodes back to
    the same text (so no unknown token, no special token, no lossy normalisation), else None."""
    text = prefix + word
    token = single_token_id(tok, text)
    if token is None or token in unusable:
        return None
    return token if tok.decode([token], skip_special_tokens=False) == text else None


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
