"""Download a repository's files from the Hugging Face hub (or its cache), verified and locked.

:func:`fetch_files` is the only function here that may touch the network. It

1. reads the lock of (repo, revision); if there is one, takes the locked commit and file list;
2. otherwise resolves the revision to a commit (``/api/models/<repo>/revision/<rev>``, or the
   local cache when ``HF_HUB_OFFLINE=1``) and picks the files it needs from the repository's
   listing;
3. takes each file from the cache, or downloads it at that *commit* (never the moving branch);
4. verifies the bytes — against the hub's own identifier at first download (the blob's name in the
   cache is the ``X-Linked-Etag``/``ETag`` the hub sent), against the lock afterwards, and against
   a sha256 pinned in the config whenever there is one — and writes the lock.

An unreachable hub fails at once (one request, no retries) with the offline alternatives.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .lock import Lock, LockError, check_hub_id, lock_path, read_lock, write_lock

OFFLINE_ALTERNATIVES = (
    "Offline alternatives: on a machine with access run `python scripts/fetch_models.py "
    "<your config files>` (it fills HF_HOME and writes the lock files), copy HF_HOME and the lock "
    "files here and set HF_HUB_OFFLINE=1; or save the model with `save_pretrained` and point a "
    "`source: local` entry at that folder (`path: <folder>`)."
)


class HubError(RuntimeError):
    """A file that cannot be obtained; the message says why and what to do offline."""


@dataclass
class RepoFiles:
    """Verified files of one repository at one commit."""

    repo_id: str
    revision: str
    commit: str
    paths: dict[str, Path]  # repo filename -> file in the HF cache
    sha256: dict[str, str]
    lock_file: Path
    sizes: dict[str, int]

    @property
    def folder(self) -> Path:
        """The cache snapshot folder that holds every file (as `save_pretrained` laid it out)."""
        return next(iter(self.paths.values())).parent if self.paths else Path()


def _error(repo_id: str, what: str, reason: str) -> HubError:
    return HubError(f"could not obtain {what} of the hub repo {repo_id}: {reason}\n{OFFLINE_ALTERNATIVES}")


def _repo_cache(repo_id: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def _resolve_from_cache(repo_id: str, revision: str) -> tuple[str, list[str]] | None:
    """(commit, files) of a revision already in the cache, else None."""
    cache = _repo_cache(repo_id)
    ref = cache / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snapshot = cache / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    files = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if not p.is_dir())
    return commit, files


def _online_listing(repo_id: str, revision: str) -> tuple[str, list[str], dict[str, int]]:
    """(commit, files, sizes) from the hub's API: one request, no retries."""
    import httpx2
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi().model_info(
            repo_id, revision=revision, files_metadata=True, timeout=constants.HF_HUB_ETAG_TIMEOUT
        )
    except httpx2.TransportError as exc:
        raise _error(repo_id, f"revision {revision!r}",
                     f"the hub ({constants.ENDPOINT}) cannot be reached: {type(exc).__name__}: {exc}") from exc  # fmt: skip
    except HfHubHTTPError as exc:
        raise _error(repo_id, f"revision {revision!r}", f"{type(exc).__name__}: {exc}") from exc
    sizes = {s.rfilename: s.size for s in info.siblings or [] if s.size is not None}
    return info.sha, [s.rfilename for s in info.siblings or []], sizes


def resolve(repo_id: str, revision: str) -> tuple[str, list[str], dict[str, int]]:
    """The commit a revision points to now, the repository's files there, and their sizes."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        cached = _resolve_from_cache(repo_id, revision)
        if cached is None:
            raise _error(repo_id, f"revision {revision!r}",
                         f"it is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set")  # fmt: skip
        return cached[0], cached[1], {}
    return _online_listing(repo_id, revision)


def _cached_or_download(repo_id: str, filename: str, commit: str) -> Path:
    import httpx2
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, revision=commit, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if constants.is_offline_mode():
        raise _error(repo_id, filename,
                     f"commit {commit} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set")  # fmt: skip
    url = hf_hub_url(repo_id, filename, revision=commit)
    try:  # one probe without retries: hf_hub_download alone retries a dead hub for ~30 s
        get_hf_file_metadata(url, timeout=constants.HF_HUB_ETAG_TIMEOUT, retry_on_errors=False)
        return Path(hf_hub_download(repo_id, filename, revision=commit))
    except httpx2.TransportError as exc:
        raise _error(repo_id, filename, f"the hub ({constants.ENDPOINT}) cannot be reached: {exc}") from exc
    except HfHubHTTPError as exc:
        raise _error(repo_id, filename, f"{type(exc).__name__}: {exc}") from exc


def _hub_id(path: Path) -> str:
    """The hub's identifier of a cached file: the cache names each blob by the etag the hub sent."""
    target = Path(os.path.realpath(path))
    if target.parent.name != "blobs":
        raise LockError(f"{path} is not a file of the Hugging Face cache (no blob behind it)")
    return target.name


def fetch_files(
    repo_id: str,
    revision: str,
    select: Callable[[list[str]], list[str]],
    lock_dir: str | Path,
    pins: dict[str, str] | None = None,
) -> RepoFiles:
    """The files ``select`` picks from the repository at ``revision``, verified and locked."""
    pins = {k: v.lower() for k, v in (pins or {}).items()}
    path_of_lock = lock_path(lock_dir, repo_id, revision)
    lock = read_lock(path_of_lock)
    if lock is None:
        commit, listing, _ = resolve(repo_id, revision)
        lock = Lock(repo_id, revision, commit, listing=sorted(listing))
    paths, shas, added = {}, {}, False
    for filename in select(lock.listing):
        path = paths[filename] = _cached_or_download(repo_id, filename, lock.commit)
        if filename in lock.files:  # locked: the bytes must be the locked ones
            shas[filename] = lock.verify(filename, path, pins.get(filename))
            continue
        # first use: the bytes must be what the hub says they are at that commit
        what = f"{repo_id}@{lock.commit[:12]}: {filename}"
        sha = shas[filename] = check_hub_id(path, _hub_id(path), what)
        if filename in pins and pins[filename] != sha:
            raise LockError(f"{what} has sha256 {sha}, but the config pins {pins[filename]}: refused")
        lock.files[filename] = {"sha256": sha, "hub_id": _hub_id(path), "size": path.stat().st_size}
        added = True
    if added:
        write_lock(path_of_lock, lock)
    sizes = {f: lock.files[f]["size"] for f in paths}
    return RepoFiles(repo_id, revision, lock.commit, paths, shas, path_of_lock, sizes)
