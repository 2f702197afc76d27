"""Fill the Hugging Face cache with everything a config needs, so a run can go offline.

``python scripts/fetch_models.py config/config.yaml config/hub.yaml`` lists what each published
model instance downloads (files and sizes, from the hub's listing), prints the total and the free
space where the cache lives, refuses if it does not fit, then downloads, verifies and writes the
lock files. Copy ``HF_HOME`` and the lock folder to the offline machine and set ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hub import _repo_cache, resolve
from .tl_native import select_native_files
from .tokenizer_files import select_tokenizer_files
from .transformers_folder import select_model_files


@dataclass
class PlannedDownload:
    instance: str
    repo_id: str
    revision: str
    files: list[str]
    bytes_total: int
    bytes_missing: int  # not yet in the local cache


def _cached(repo_id: str, commit: str, filename: str) -> bool:
    return (_repo_cache(repo_id) / "snapshots" / commit / filename).exists()


def _plan_repo(instance: str, repo_id: str, revision: str, select) -> PlannedDownload:
    commit, listing, sizes = resolve(repo_id, revision)
    files = select(listing)
    total = sum(sizes.get(f, 0) for f in files)
    missing = sum(sizes.get(f, 0) for f in files if not _cached(repo_id, commit, f))
    return PlannedDownload(instance, repo_id, revision, files, total, missing)


def plan_downloads(instances: dict[str, dict[str, Any]]) -> list[PlannedDownload]:
    """What every `source: huggingface` instance of a plan downloads (model and tokenizer repos).

    A tokenizer named only in the model repo's config.json (NeelNanda's toys) is fetched with the
    model; it is small (a few MB) and not counted here."""
    from .build import tokenizer_repo

    plans: list[PlannedDownload] = []
    for name, inst in instances.items():
        if inst["source"] != "huggingface":
            continue
        entry, revision = inst["spec"], inst["revision"]
        if entry.get("format", "transformers") == "transformers":
            select = select_model_files
            names_tokenizer = True
        else:
            inline = entry.get("config")
            select = lambda ls, e=entry, i=inline: select_native_files(ls, e.get("weights_file"), i is None)  # noqa: E731
            names_tokenizer = bool(entry.get("tokenizer") or inline)
        plans.append(_plan_repo(name, entry["repo_id"], revision, select))
        if names_tokenizer:
            tok_repo, tok_rev = tokenizer_repo(entry, revision, entry.get("config"))
            plans.append(_plan_repo(f"{name} (tokenizer)", tok_repo, tok_rev, select_tokenizer_files))
    return plans


class NotEnoughSpace(RuntimeError):
    pass


def check_space(plans: list[PlannedDownload], cache: Path) -> tuple[int, int]:
    """(bytes to download, bytes free where the cache lives); refuses when they do not fit."""
    total, free = sum(p.bytes_missing for p in plans), free_bytes(cache)
    if total > free:
        raise NotEnoughSpace(f"not enough disk space in {cache}: {total / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free")
    return total, free


def free_bytes(where: Path) -> int:
    where = Path(where)
    while not where.exists():
        where = where.parent
    return shutil.disk_usage(where).free


def fetch_all(instances: dict[str, dict[str, Any]], lock_dir: Path) -> list[str]:
    """Download and lock every published instance; returns one line per instance."""
    from .build import download_huggingface

    lines = []
    for name, inst in instances.items():
        if inst["source"] != "huggingface":
            continue
        model_files, tok_files, _ = download_huggingface(inst["spec"], inst["revision"], lock_dir)
        lines.append(f"{name}: {model_files.repo_id}@{model_files.commit[:12]} ({len(model_files.paths)} files), "
                     f"tokenizer {tok_files.repo_id}@{tok_files.commit[:12]}; lock {model_files.lock_file}")  # fmt: skip
    return lines
