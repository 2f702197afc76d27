"""Model weights on disk in this project's layout: save, load and verify.

Every model lives in ``results/models/<name>/`` as

* ``weights.pt``   — a TransformerLens state dict (loaded with ``weights_only=True``: never
  unpickles code),
* ``config.json``  — the ``HookedTransformerConfig`` fields (:func:`architecture.config_to_dict`),
* ``model_info.json`` — source, the sha256 of ``weights.pt``, seed, tokenizer path (relative to
  the model folder, so a moved or copied ``results/`` still finds it), …

:func:`load_model` refuses a ``weights.pt`` whose sha256 differs from the one recorded.
We always build the ``HookedTransformer`` ourselves (never ``from_pretrained``, which contacts the
hub even when the files are cached). How models that are not trained here get into this layout is
:mod:`induction_heads.sources`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from .architecture import config_from_dict, config_to_dict, to_hooked_transformer
from .metrics import atomic_write_text

WEIGHTS_FILE, CONFIG_FILE, INFO_FILE = "weights.pt", "config.json", "model_info.json"


class WeightsError(RuntimeError):
    """Weights missing, corrupt, unverifiable or not matching their config."""


@dataclass
class ModelInfo:
    name: str
    source: str  # "train" | "huggingface" | "local"
    sha256: str
    seed: int | None = None
    tokenizer: str | None = None  # tokenizer.json; on disk relative to the model folder, resolved by read_info
    extra: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def device_from_config(device: str) -> str:
    """``auto`` → CUDA where present, else CPU; anything else is passed through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def save_model(
    model_dir: str | Path,
    cfg: HookedTransformerConfig,
    state_dict: dict[str, Tensor],
    info: ModelInfo,
) -> ModelInfo:
    """Write weights, config and info; ``info.sha256`` is set from the written file.

    The weights are written to a temporary name and renamed, and ``model_info.json`` (which
    holds the checksum) is written last, so an interrupted save never looks complete.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f".{WEIGHTS_FILE}.tmp"
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, tmp)
    os.replace(tmp, model_dir / WEIGHTS_FILE)
    info.sha256 = sha256_file(model_dir / WEIGHTS_FILE)
    atomic_write_text(model_dir / CONFIG_FILE, json.dumps(config_to_dict(cfg), indent=2) + "\n")
    record = dict(info.__dict__)
    if info.tokenizer is not None:  # stored relative to the folder: results/ may move or be copied
        record["tokenizer"] = os.path.relpath(Path(info.tokenizer).resolve(), model_dir.resolve())
    atomic_write_text(model_dir / INFO_FILE, json.dumps(record, indent=2) + "\n")
    return info


def read_info(model_dir: str | Path) -> ModelInfo:
    path = Path(model_dir) / INFO_FILE
    if not path.exists():
        raise WeightsError(f"{path} is missing: the model was not (completely) built")
    info = ModelInfo(**json.loads(path.read_text()))
    if info.tokenizer is not None and not Path(info.tokenizer).is_absolute():
        info.tokenizer = str((Path(model_dir) / info.tokenizer).resolve())
    return info


def read_config(model_dir: str | Path, device: str = "cpu") -> HookedTransformerConfig:
    path = Path(model_dir) / CONFIG_FILE
    if not path.exists():
        raise WeightsError(f"{path} is missing")
    return config_from_dict(json.loads(path.read_text()), device=device)


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.pt``/``.pth`` (``weights_only=True``) or ``.safetensors``."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file or one that needs unpickling code
        raise WeightsError(f"cannot load {path} as a plain state dict: {exc}") from exc
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return obj


def load_model(model_dir: str | Path, device: str = "cpu") -> tuple[HookedTransformer, ModelInfo]:
    """Load a model folder, verifying the weights' sha256 against ``model_info.json``."""
    model_dir = Path(model_dir)
    info = read_info(model_dir)
    if not (model_dir / WEIGHTS_FILE).exists():
        raise WeightsError(f"{model_dir / WEIGHTS_FILE} is missing; delete {model_dir} and rerun")
    actual = sha256_file(model_dir / WEIGHTS_FILE)
    if actual != info.sha256:
        raise WeightsError(
            f"{model_dir / WEIGHTS_FILE} has sha256 {actual}, but {INFO_FILE} records "
            f"{info.sha256}: the file changed after it was built; delete {model_dir} and rerun"
        )
    device = device_from_config(device)
    cfg = read_config(model_dir, device=device)
    return to_hooked_transformer(cfg, load_state_dict_file(model_dir / WEIGHTS_FILE), device), info


def load_checkpoint(
    model_dir: str | Path, step: int, device: str = "cpu"
) -> HookedTransformer:
    """A training checkpoint of a trained model as a HookedTransformer."""
    path = Path(model_dir) / "checkpoints" / f"step_{step:06d}.pt"
    cfg = read_config(model_dir, device=device_from_config(device))
    return to_hooked_transformer(cfg, load_state_dict_file(path), cfg.device)


def checkpoint_steps(model_dir: str | Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (Path(model_dir) / "checkpoints").glob("step_*.pt"))
