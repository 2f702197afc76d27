"""How a model comes in. One interface for every source; the analyses never see past it.

:func:`obtain` turns a config entry into a model folder in this project's layout
(``weights.pt``, ``config.json``, ``model_info.json``, ``tokenizer.json`` — see
:mod:`induction_heads.weights`) with its provenance: where the weights came from (repository,
revision, the commit it resolved to, the lock file, every file's sha256), which architecture and
conversion, how TransformerLens processed the weights (LayerNorm folding, centring), and the
tokenizer's BOS and special tokens.

Sources:

``train``
    trained here (rule ``train_model``; not handled by this package).
``huggingface``
    ``repo_id`` + ``revision`` on the hub: a transformers model (``format: transformers``) or a
    TransformerLens state dict (``format: transformer_lens``: ARENA's and NeelNanda's layouts).
``local``
    a folder as ``save_pretrained`` writes it (``path:``), or a TransformerLens state dict and its
    config (``weights:`` + ``config:``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .architectures import NATIVE_ARCHITECTURE, SUPPORTED_ARCHITECTURES, TRANSFORMERS_ARCHITECTURES

__all__ = ["NATIVE_ARCHITECTURE", "SUPPORTED_ARCHITECTURES", "TRANSFORMERS_ARCHITECTURES", "obtain"]


def obtain(entry: dict[str, Any], name: str, out_dir: Path, lock_dir: Path, revision: str | None = None):
    """Build ``out_dir`` for model instance ``name`` from its config ``entry``; returns its ModelInfo."""
    from .build import obtain_huggingface, obtain_local

    if entry["source"] == "huggingface":
        return obtain_huggingface(entry, name, Path(out_dir), Path(lock_dir), revision)
    if entry["source"] == "local":
        return obtain_local(entry, name, Path(out_dir))
    raise ValueError(f"model {name!r}: source {entry['source']!r} is not obtained by this package")
