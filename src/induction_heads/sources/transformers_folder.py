"""A model folder as Hugging Face ``save_pretrained`` writes it (``config.json`` + safetensors or
``.bin`` weights), converted by TransformerLens's own config mapping and weight converters.

The folder is staged under a neutral name first: TransformerLens routes any path containing
"llama" or "gemma" by name instead of by ``config.json``, and a GPT-2 config written by
transformers 5 has no ``n_ctx`` (TransformerLens reads it; it equals ``n_positions``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from transformer_lens import HookedTransformer, HookedTransformerConfig

from .processing import Processing, build_processed, default_processing, with_folded_norm

from .architectures import TRANSFORMERS_ARCHITECTURES as SUPPORTED

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


class FolderError(ValueError):
    pass


def select_model_files(listing: list[str]) -> list[str]:
    """config.json and the weights (one file, or an index and its shards)."""
    if "config.json" not in listing:
        raise FolderError("the repository has no config.json: not a transformers model")
    for name in WEIGHT_FILES:
        if name in listing:
            return ["config.json", name]
    for index in INDEX_FILES:
        if index in listing:
            stem = index.split(".")[0]  # model / pytorch_model
            shards = [f for f in listing if f.startswith(f"{stem}-") and "-of-" in f]
            return ["config.json", index, *sorted(shards)]
    raise FolderError(f"no weights found (looked for {', '.join(WEIGHT_FILES + INDEX_FILES)})")


def read_hf_config(folder: Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FolderError(f"{folder} has no config.json: not a model folder as save_pretrained writes it")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise FolderError(f"{path} is not valid JSON: {exc}") from exc


def architecture_of(hf_config: dict, where: str) -> str:
    archs = hf_config.get("architectures") or []
    if not archs:
        raise FolderError(f"{where}: config.json names no `architectures`")
    if archs[0] not in SUPPORTED:
        raise FolderError(
            f"{where}: architecture {archs[0]!r} is not supported; supported: {', '.join(SUPPORTED)} "
            f"(transformers folders) and TransformerLens state dicts"
        )
    return archs[0]


def declared_shape(hf_config: dict) -> dict[str, int]:
    """n_ctx and d_vocab as config.json states them (for checks before anything is loaded)."""
    n_ctx = next((hf_config[k] for k in ("n_ctx", "n_positions", "max_position_embeddings") if k in hf_config), None)
    return {"n_ctx": n_ctx, "d_vocab": hf_config.get("vocab_size")}


def _stage(folder: Path, files: list[str], staging: Path) -> Path:
    staged = staging / "model"
    staged.mkdir()
    for name in files:
        if name == "config.json":
            continue
        (staged / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.realpath(folder / name), staged / name)
    hf_config = read_hf_config(folder)
    if hf_config.get("model_type") == "gpt2" and "n_ctx" not in hf_config:
        hf_config["n_ctx"] = hf_config["n_positions"]
    (staged / "config.json").write_text(json.dumps(hf_config))
    return staged


def load_transformers_folder(
    folder: Path, files: list[str], device: str = "cpu"
) -> tuple[HookedTransformer, Processing, str]:
    """(processed HookedTransformer, the processing applied, architecture) of a model folder."""
    import transformer_lens.loading_from_pretrained as tl_loading
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    arch = architecture_of(read_hf_config(folder), str(folder))
    with tempfile.TemporaryDirectory(prefix="ih-stage-") as tmp:
        staged = _stage(folder, files, Path(tmp))
        hf_model = AutoModelForCausalLM.from_pretrained(staged, local_files_only=True).eval()
        cfg = tl_loading.get_pretrained_model_config(
            str(staged), hf_cfg=hf_model.config.to_dict(), fold_ln=False, device=device,
            default_prepend_bos=False,
        )  # fmt: skip
        processing = default_processing(cfg)
        cfg = HookedTransformerConfig.from_dict(with_folded_norm(cfg.to_dict(), processing))
        state_dict = tl_loading.get_pretrained_state_dict(str(staged), cfg, hf_model=hf_model)
    return build_processed(cfg, state_dict, processing), processing, arch
