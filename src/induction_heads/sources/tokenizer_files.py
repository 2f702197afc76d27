"""A published model's tokenizer, from the files its repository (or folder) holds.

``tokenizer.json`` is used as it is. A repository with only ``vocab.json`` + ``merges.txt``
(OPT's, older GPT-2 uploads) is turned into one by ``transformers``' own tokenizer classes,
offline. ``tokenizer_config.json`` and ``special_tokens_map.json`` say which token is BOS.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tokenizers import Tokenizer

TOKENIZER_JSON = "tokenizer.json"
CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
VOCAB_FILES = ("vocab.json", "merges.txt")


class TokenizerFilesError(ValueError):
    pass


def select_tokenizer_files(listing: list[str]) -> list[str]:
    present = set(listing)
    configs = [f for f in CONFIG_FILES if f in present]
    if TOKENIZER_JSON in present:
        return [TOKENIZER_JSON, *configs]
    if all(f in present for f in VOCAB_FILES):
        return [*VOCAB_FILES, *configs]
    raise TokenizerFilesError(
        f"no tokenizer: the repository has neither {TOKENIZER_JSON} nor {' + '.join(VOCAB_FILES)}"
    )


def token_config(paths: dict[str, Path]) -> dict:
    """tokenizer_config.json with special_tokens_map.json on top (their special-token keys)."""
    merged: dict = {}
    for name in CONFIG_FILES:
        if name in paths:
            try:
                merged.update(json.loads(Path(paths[name]).read_text()))
            except ValueError as exc:
                raise TokenizerFilesError(f"{paths[name]} is not valid JSON: {exc}") from exc
    return merged


def build_tokenizer(paths: dict[str, Path], where: str) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` from the selected files (names → local paths)."""
    if TOKENIZER_JSON in paths:
        try:
            return Tokenizer.from_file(str(paths[TOKENIZER_JSON]))
        except Exception as exc:
            raise TokenizerFilesError(f"{where}: {paths[TOKENIZER_JSON]} is not a tokenizer.json: {exc}") from exc
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="ih-tok-") as tmp:
        for name, path in paths.items():
            shutil.copyfile(path, Path(tmp) / name)
        try:
            fast = AutoTokenizer.from_pretrained(tmp, local_files_only=True)
        except Exception as exc:
            raise TokenizerFilesError(f"{where}: transformers cannot build a tokenizer from {sorted(paths)}: {exc}") from exc
    return fast.backend_tokenizer


def folder_tokenizer_paths(folder: Path) -> dict[str, Path]:
    """The tokenizer files of a local model folder."""
    listing = sorted(p.name for p in Path(folder).iterdir() if p.is_file())
    return {name: Path(folder) / name for name in select_tokenizer_files(listing)}
