"""Model weights on disk: save, load and verify; obtain them from the hub or the user's disk.

Every model lives in ``results/models/<name>/`` as

* ``weights.pt``   — a TransformerLens state dict (loaded with ``weights_only=True``: never
  unpickles code),
* ``config.json``  — the ``HookedTransformerConfig`` fields (:func:`architecture.config_to_dict`),
* ``model_info.json`` — source, the sha256 of ``weights.pt``, seed, tokenizer path, …

:func:`load_model` refuses a ``weights.pt`` whose sha256 differs from the one recorded.
We always build the ``HookedTransformer`` ourselves (never ``from_pretrained``, which contacts the
hub even when the files are cached).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
    tokenizer: str | None = None  # path of tokenizer.json, if the model has one here
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
    atomic_write_text(model_dir / INFO_FILE, json.dumps(info.__dict__, indent=2) + "\n")
    return info


def read_info(model_dir: str | Path) -> ModelInfo:
    path = Path(model_dir) / INFO_FILE
    if not path.exists():
        raise WeightsError(f"{path} is missing: the model was not (completely) built")
    return ModelInfo(**json.loads(path.read_text()))


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


# --------------------------------------------------------------------------- hub and local

# Buffers that TransformerLens computes itself: the causal mask (TransformerLens <= 2 saved it as
# [n_ctx, n_ctx]; 3.x keeps an empty [0, 0] placeholder) and the masking value. Saved state dicts
# (ARENA's ``attn_only_2L_half.pth`` among them) carry the old shapes, so they are dropped on load.
_COMPUTED_BUFFERS = (".mask", ".IGNORE")

OFFLINE_ALTERNATIVES = (
    "Offline alternatives: pre-fill the Hugging Face cache on a machine with access "
    "(`hf download {repo_id} {filename}`, then copy its HF_HOME here and set HF_HUB_OFFLINE=1), "
    "or download the file yourself and use `source: local` with `weights: <path>` and "
    "`config: <config json>` in the model's config entry."
)


def learned_parameters(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """The state dict without the buffers TransformerLens recomputes (see ``_COMPUTED_BUFFERS``)."""
    return {k: v for k, v in state_dict.items() if not k.endswith(_COMPUTED_BUFFERS)}


def verify_sha256(path: Path, expected: str | None, what: str) -> str:
    """Return the file's sha256; refuse it if it differs from ``expected`` (or none is pinned)."""
    actual = sha256_file(path)
    if expected is None:
        raise WeightsError(
            f"{what} ({path}): no sha256 is pinned in the config, so the file cannot be "
            f"verified. Its sha256 is {actual}; check it against the publisher (the hub shows an "
            f"LFS file's sha256 on its page) and set `sha256: {actual}` in the config entry."
        )
    if actual != expected.lower():
        raise WeightsError(
            f"{what} ({path}): sha256 mismatch — expected {expected.lower()}, got {actual}. The "
            f"file is corrupt or not the one the config names; it was refused."
        )
    return actual


def _hub_error(repo_id: str, filename: str, reason: str) -> WeightsError:
    return WeightsError(
        f"could not obtain {filename} from the hub repo {repo_id}: {reason}\n"
        + OFFLINE_ALTERNATIVES.format(repo_id=repo_id, filename=filename)
    )


def download_from_hub(repo_id: str, filename: str, revision: str | None = None) -> Path:
    """Fetch one file with ``huggingface_hub`` (honours ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``,
    ``HF_HOME``/``HF_HUB_CACHE``), with an error that names the offline alternatives.

    The cache is consulted first, without any request: the file is verified by its pinned sha256
    anyway. Before downloading, one HEAD request without retries checks that the endpoint answers,
    so an unreachable hub fails in seconds (``hf_hub_download`` alone retries a refused connection
    with back-off for about half a minute before giving up).
    """
    import httpx2
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        cached = hf_hub_download(
            repo_id=repo_id, filename=filename, revision=revision, local_files_only=True
        )
        return Path(cached)
    except LocalEntryNotFoundError:
        pass
    except Exception as exc:  # e.g. a malformed repo id: no point going online
        raise _hub_error(repo_id, filename, f"{type(exc).__name__}: {exc}") from exc
    if constants.is_offline_mode():
        raise _hub_error(
            repo_id,
            filename,
            f"it is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
            "and HF_HUB_OFFLINE is set",
        )
    url = hf_hub_url(repo_id, filename, revision=revision)
    try:
        get_hf_file_metadata(url, timeout=constants.HF_HUB_ETAG_TIMEOUT, retry_on_errors=False)
    except (httpx2.TransportError, OfflineModeIsEnabled) as exc:
        reason = f"the hub ({constants.ENDPOINT}) cannot be reached: {type(exc).__name__}: {exc}"
        raise _hub_error(repo_id, filename, reason) from exc
    except HfHubHTTPError as exc:
        raise _hub_error(repo_id, filename, f"{type(exc).__name__}: {exc}") from exc
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision))
    except Exception as exc:
        raise _hub_error(repo_id, filename, f"{type(exc).__name__}: {exc}") from exc


def _config_from_entry(d: dict[str, Any], where: str) -> HookedTransformerConfig:
    """A model config from a config entry / JSON file. ``tokenizer_name`` is dropped: given one,
    ``HookedTransformer`` fetches that tokenizer from the hub when it is built."""
    d = {k: v for k, v in d.items() if k != "tokenizer_name"}
    try:
        return config_from_dict(d)
    except Exception as exc:
        raise WeightsError(
            f"{where} is not a valid model config: {type(exc).__name__}: {exc}"
        ) from exc


def _fit(
    cfg: HookedTransformerConfig, state_dict: dict[str, Tensor], what: str, where: str
) -> None:
    try:
        to_hooked_transformer(cfg, state_dict)
    except ValueError as exc:
        raise WeightsError(f"{what} does not fit {where}: {exc}") from exc


def _check_tokenizer(path: Path, cfg: HookedTransformerConfig, what: str) -> None:
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise WeightsError(f"{what} ({path}) is not a `tokenizers` tokenizer.json: {exc}") from exc
    if tok.get_vocab_size(with_added_tokens=True) > cfg.d_vocab:
        raise WeightsError(
            f"{what} ({path}) has {tok.get_vocab_size(with_added_tokens=True)} tokens, more than "
            f"the model's d_vocab {cfg.d_vocab}"
        )


def build_hub_model(entry: dict[str, Any], name: str, model_dir: Path) -> ModelInfo:
    """``source: huggingface``: download, verify, check it fits the config, save in our layout.

    Every file is verified before it is loaded. With ``sha256: null`` nothing is loaded: the error
    prints the sha256 of each downloaded file so that it can be checked and pinned.
    """
    model_dir = Path(model_dir)
    repo_id, filename = entry["repo_id"], entry["filename"]
    files = [("weights", repo_id, filename, entry.get("revision"), entry.get("sha256"))]
    if entry.get("tokenizer"):
        tok = entry["tokenizer"]
        files.append(
            ("tokenizer", tok["repo_id"], tok["filename"], tok.get("revision"), tok.get("sha256"))
        )
    paths, shas, unpinned, keys = {}, {}, [], []
    for what, repo, fname, revision, expected in files:
        path = paths[what] = download_from_hub(repo, fname, revision)
        if expected is None:
            unpinned.append(f"  {what}: {repo}/{fname} ({path})\n    sha256: {sha256_file(path)}")
            keys.append("`sha256`" if what == "weights" else "`tokenizer: {sha256: …}`")
        else:
            shas[what] = verify_sha256(path, expected, f"model {name!r}: {what} {repo}/{fname}")
    if unpinned:
        raise WeightsError(
            f"model {name!r}: no sha256 is pinned for these downloaded files, so they cannot be "
            f"verified and were not loaded:\n" + "\n".join(unpinned) + "\nCheck each against the "
            f"publisher (the hub shows an LFS file's sha256 on its page) and set "
            f"{' and '.join(keys)} in the model's config entry."
        )
    cfg = _config_from_entry(entry["config"], f"model {name!r}: the `config` of its entry")
    state_dict = learned_parameters(load_state_dict_file(paths["weights"]))
    _fit(cfg, state_dict, f"model {name!r}: {repo_id}/{filename}", "the `config` of its entry")
    model_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = None
    if "tokenizer" in paths:
        _check_tokenizer(paths["tokenizer"], cfg, f"model {name!r}: tokenizer")
        shutil.copyfile(paths["tokenizer"], model_dir / "tokenizer.json")
        tokenizer = str(model_dir / "tokenizer.json")
    extra = {
        "repo_id": repo_id,
        "filename": filename,
        "revision": entry.get("revision"),
        "download_sha256": shas["weights"],
        "tokenizer_sha256": shas.get("tokenizer"),
    }
    info = ModelInfo(name=name, source="huggingface", sha256="", tokenizer=tokenizer, extra=extra)
    return save_model(model_dir, cfg, state_dict, info)


def build_local_model(entry: dict[str, Any], name: str, model_dir: Path) -> ModelInfo:
    """``source: local``: a state-dict file and a config JSON on the user's disk."""
    model_dir = Path(model_dir)
    weights, config = Path(entry["weights"]), Path(entry["config"])
    tokenizer_src = Path(entry["tokenizer"]) if entry.get("tokenizer") else None
    for what, path in (("weights", weights), ("config", config), ("tokenizer", tokenizer_src)):
        if path is not None and not path.is_file():
            raise WeightsError(f"model {name!r}: its `{what}` file {path} does not exist")
    try:
        config_dict = json.loads(config.read_text())
    except ValueError as exc:
        raise WeightsError(f"model {name!r}: {config} is not valid JSON: {exc}") from exc
    if not isinstance(config_dict, dict):
        raise WeightsError(f"model {name!r}: {config} does not hold a JSON object of config fields")
    cfg = _config_from_entry(config_dict, f"model {name!r}: {config}")
    sha = None
    if entry.get("sha256"):
        sha = verify_sha256(weights, entry["sha256"], f"model {name!r}: weights")
    state_dict = learned_parameters(load_state_dict_file(weights))
    _fit(cfg, state_dict, f"model {name!r}: {weights}", str(config))
    model_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = None
    if tokenizer_src is not None:
        _check_tokenizer(tokenizer_src, cfg, f"model {name!r}: tokenizer")
        shutil.copyfile(tokenizer_src, model_dir / "tokenizer.json")
        tokenizer = str(model_dir / "tokenizer.json")
    extra = {
        "weights": str(weights),
        "config": str(config),
        "weights_sha256": sha or sha256_file(weights),
    }
    info = ModelInfo(name=name, source="local", sha256="", tokenizer=tokenizer, extra=extra)
    return save_model(model_dir, cfg, state_dict, info)
