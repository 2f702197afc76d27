"""Obtain one model instance from the hub or the user's disk, into this project's model layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformer_lens import HookedTransformer

from ..tokenizer import TokenizerError, tokenizer_facts
from ..weights import ModelInfo, WeightsError, save_model, sha256_file
from .hub import HubError, RepoFiles, fetch_files
from .lock import LockError
from .processing import Processing
from .tl_native import NativeError, config_dict_from, load_native, select_native_files
from .tokenizer_files import (
    TokenizerFilesError,
    build_tokenizer,
    folder_tokenizer_paths,
    select_tokenizer_files,
    token_config,
)
from .transformers_folder import (
    FolderError,
    architecture_of,
    load_transformers_folder,
    read_hf_config,
    select_model_files,
)

ERRORS = (HubError, LockError, NativeError, FolderError, TokenizerFilesError, TokenizerError, WeightsError)


def _pins(entry: dict[str, Any], default_file: str | None = None) -> dict[str, str]:
    """``sha256:`` of an entry: a mapping file → sha256, or one sha256 for the weights file."""
    pins = entry.get("sha256")
    if pins is None:
        return {}
    if isinstance(pins, str):
        if default_file is None:
            raise WeightsError("`sha256:` as one value needs a single weights file; give a mapping file → sha256")
        return {default_file: pins}
    return dict(pins)


def _save(
    model: HookedTransformer,
    name: str,
    source: str,
    out_dir: Path,
    tokenizer_paths: dict[str, Path],
    entry: dict[str, Any],
    processing: Processing,
    provenance: dict[str, Any],
) -> ModelInfo:
    """Check the tokenizer against the model, then write weights, config, tokenizer and info."""
    where = f"model {name!r}: tokenizer"
    tok = build_tokenizer(tokenizer_paths, where)
    facts = tokenizer_facts(tok, model.cfg.d_vocab, entry.get("bos_token_id"), token_config(tokenizer_paths), where)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    model.cfg.model_name = name
    extra = {
        **provenance,
        "processing": processing.as_dict(),
        "tokenizer_facts": facts.as_dict(),
        "n_ctx": model.cfg.n_ctx,
        "d_vocab": model.cfg.d_vocab,
        "has_mlp": not model.cfg.attn_only,
        "normalization_type": model.cfg.normalization_type,
    }
    info = ModelInfo(name=name, source=source, sha256="", tokenizer=str(out_dir / "tokenizer.json"), extra=extra)
    return save_model(out_dir, model.cfg, model.state_dict(), info)


def _files_provenance(files: RepoFiles) -> dict[str, Any]:
    return {
        "repo_id": files.repo_id,
        "revision": files.revision,
        "commit": files.commit,
        "lock_file": str(files.lock_file),
        "files": {f: {"sha256": files.sha256[f], "size": files.sizes.get(f)} for f in files.paths},
    }


def tokenizer_repo(entry: dict[str, Any], revision: str, native_fields: dict | None) -> tuple[str, str]:
    """(repo, revision) of an entry's tokenizer: the entry's ``tokenizer:``, else a
    TransformerLens config's ``tokenizer_name``, else the model's own repository."""
    spec = entry.get("tokenizer") or {}
    default = (native_fields or {}).get("tokenizer_name")
    repo = spec.get("repo_id") or default or entry["repo_id"]
    return repo, spec.get("revision") or (revision if repo == entry["repo_id"] else "main")


def download_huggingface(
    entry: dict[str, Any], revision: str, lock_dir: Path
) -> tuple[RepoFiles, RepoFiles, dict | None]:
    """Download (or take from the cache) and verify the model's and its tokenizer's files;
    returns (model files, tokenizer files, TransformerLens config fields or None)."""
    repo_id = entry["repo_id"]
    if entry.get("format", "transformers") == "transformers":
        model_files = fetch_files(repo_id, revision, select_model_files, lock_dir, _pins(entry))
        architecture_of(read_hf_config(model_files.folder), repo_id)  # refuse before fetching more
        fields = None
    else:
        inline = entry.get("config")
        select = lambda listing: select_native_files(listing, entry.get("weights_file"), inline is None)  # noqa: E731
        model_files = fetch_files(repo_id, revision, select, lock_dir, _pins(entry, entry.get("weights_file")))
        fields = config_dict_from(inline, model_files.paths.get("config.json"), repo_id)
    tok_repo, tok_revision = tokenizer_repo(entry, revision, fields)
    tok_pins = _pins(entry.get("tokenizer") or {})
    tok_files = fetch_files(tok_repo, tok_revision, select_tokenizer_files, lock_dir, tok_pins)
    return model_files, tok_files, fields


def obtain_huggingface(
    entry: dict[str, Any], name: str, out_dir: Path, lock_dir: Path, revision: str | None
) -> ModelInfo:
    repo_id = entry["repo_id"]
    revision = revision or entry.get("revision") or "main"
    model_files, tok_files, fields = download_huggingface(entry, revision, lock_dir)
    if fields is None:
        model, processing, arch = load_transformers_folder(model_files.folder, sorted(model_files.paths))
        declared = entry.get("architecture")
        if declared and declared != arch:
            raise FolderError(f"model {name!r}: the entry says architecture {declared!r}, {repo_id}'s config.json says {arch!r}")
    else:
        weights = next(p for f, p in model_files.paths.items() if f != "config.json")
        model, processing = load_native(fields, weights, name)
        arch = model.cfg.original_architecture or "transformer_lens"
    provenance = {
        "format": entry.get("format", "transformers"),
        "architecture": arch,
        "weights": _files_provenance(model_files),
        "tokenizer_source": _files_provenance(tok_files),
    }
    _check_declared(entry, model, name)
    return _save(model, name, "huggingface", out_dir, tok_files.paths, entry, processing, provenance)


def obtain_local(entry: dict[str, Any], name: str, out_dir: Path) -> ModelInfo:
    if entry.get("path"):
        folder = Path(entry["path"])
        if not folder.is_dir():
            raise WeightsError(f"model {name!r}: its `path` {folder} is not a folder")
        files = select_model_files(sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()))
        pins = _pins(entry)
        shas = {}
        for f in files:
            shas[f] = sha256_file(folder / f)
            if f in pins and pins[f].lower() != shas[f]:
                raise WeightsError(f"model {name!r}: {folder / f} has sha256 {shas[f]}, the config pins {pins[f]}: refused")
        model, processing, arch = load_transformers_folder(folder, files)
        tok_paths = folder_tokenizer_paths(Path(entry["tokenizer"]) if entry.get("tokenizer") else folder)
        provenance = {"format": "transformers", "architecture": arch, "path": str(folder.resolve()),
                      "files": {f: {"sha256": s} for f, s in shas.items()}}  # fmt: skip
    else:
        weights, config = Path(entry["weights"]), Path(entry["config"])
        for what, path in (("weights", weights), ("config", config)):
            if not path.is_file():
                raise WeightsError(f"model {name!r}: its `{what}` file {path} does not exist")
        sha = sha256_file(weights)
        pinned = _pins(entry, weights.name).get(weights.name)
        if pinned and pinned.lower() != sha:
            raise WeightsError(f"model {name!r}: weights {weights} sha256 mismatch — expected {pinned.lower()}, got {sha}: refused")
        try:
            fields = config_dict_from(None, config, name)
        except ValueError as exc:
            raise WeightsError(f"model {name!r}: {config} is not a valid config JSON: {exc}") from exc
        try:
            model, processing = load_native(fields, weights, name)
        except NativeError as exc:
            raise WeightsError(f"model {name!r}: {exc} ({config})") from exc
        arch = "transformer_lens"
        if not entry.get("tokenizer"):
            raise WeightsError(f"model {name!r}: a `local` state dict needs a `tokenizer` (tokenizer.json or a folder)")
        tok = Path(entry["tokenizer"])
        if not tok.exists():
            raise WeightsError(f"model {name!r}: its `tokenizer` {tok} does not exist")
        tok_paths = folder_tokenizer_paths(tok) if tok.is_dir() else {"tokenizer.json": tok}
        provenance = {"format": "transformer_lens", "architecture": arch, "weights": str(weights.resolve()),
                      "config": str(config.resolve()), "weights_sha256": sha}  # fmt: skip
    _check_declared(entry, model, name)
    return _save(model, name, "local", out_dir, tok_paths, entry, processing, provenance)


def _check_declared(entry: dict[str, Any], model: HookedTransformer, name: str) -> None:
    """The entry's n_ctx / d_vocab (used for checks at plan time) must be the real ones."""
    for key in ("n_ctx", "d_vocab"):
        if entry.get(key) is not None and entry[key] != getattr(model.cfg, key):
            raise WeightsError(
                f"model {name!r}: the entry declares {key} {entry[key]}, the weights have "
                f"{getattr(model.cfg, key)}; fix `{key}` in its config entry"
            )
