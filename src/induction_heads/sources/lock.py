"""Lock files: what a published model's download was, so every later run loads the same bytes.

One lock per repository and revision, ``<lock_dir>/<owner>--<repo>@<revision>.json``::

    {"repo_id": "EleutherAI/pythia-70m", "revision": "step1000", "commit": "<40 hex>",
     "listing": [every file of the repository at that commit],
     "files": {"config.json":       {"sha256": "…", "hub_id": "<git blob sha1>", "size": 570},
               "model.safetensors": {"sha256": "…", "hub_id": "<sha256 = LFS oid>", "size": …}}}

``hub_id`` is the hub's own identifier of the file at that commit: for an LFS file the sha256 in
its ``X-Linked-Etag`` header, for an ordinary git file (config.json …) the git-blob SHA-1 in its
``ETag``. At first download both are checked against the bytes; afterwards the locally computed
``sha256`` is what every use is verified against. Locks are written atomically (temporary file +
rename), so jobs obtaining the same repository in parallel cannot leave a half-written one.
Commit them beside your config: they make the run reproducible.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..naming import revision_slug
from ..weights import sha256_file


class LockError(RuntimeError):
    """Bytes that do not match their lock (or the hub's identifier); the message names both values."""


def git_blob_sha1(path: str | Path) -> str:
    """Git's object id of a file: sha1(b"blob <size>\\0" + bytes) — what the hub's ETag holds for a
    file stored in git rather than LFS."""
    path = Path(path)
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def check_hub_id(path: Path, hub_id: str, what: str) -> str:
    """Verify freshly downloaded bytes against the hub's identifier; return their sha256."""
    actual_sha256 = sha256_file(path)
    hub_id = hub_id.strip('"').lower()
    if len(hub_id) == 64:
        actual, kind = actual_sha256, "sha256 (LFS)"
    elif len(hub_id) == 40:
        actual, kind = git_blob_sha1(path), "git-blob SHA-1"
    else:
        raise LockError(f"{what}: the hub gave an identifier {hub_id!r} that is neither a sha256 nor a git SHA-1")
    if actual != hub_id:
        raise LockError(
            f"{what}: the downloaded bytes do not match the hub's {kind}: the hub says {hub_id}, "
            f"the file ({path}) has {actual}. Refused; delete it from the Hugging Face cache and retry."
        )
    return actual_sha256


@dataclass
class Lock:
    repo_id: str
    revision: str
    commit: str
    files: dict[str, dict] = field(default_factory=dict)
    listing: list[str] = field(default_factory=list)  # every file of the repository at `commit`

    def verify(self, filename: str, path: Path, pinned: str | None = None) -> str:
        """Refuse ``path`` unless its sha256 is the locked one (or the one pinned in the config,
        which overrides the lock). Returns the sha256."""
        actual = sha256_file(path)
        expected, source = (pinned.lower(), "the sha256 pinned in the config") if pinned else (
            self.files[filename]["sha256"], "the lock file"
        )
        if actual != expected:
            raise LockError(
                f"{self.repo_id}@{self.commit[:12]}: {filename} ({path}) has sha256 {actual}, but "
                f"{source} says {expected}. The file changed after it was locked (a corrupt or "
                f"tampered cache?): refused. Delete it from the Hugging Face cache and rerun, or, if "
                f"the new file is intended, delete the lock file."
            )
        return actual


def lock_path(lock_dir: str | Path, repo_id: str, revision: str) -> Path:
    return Path(lock_dir) / f"{repo_id.replace('/', '--')}@{revision_slug(revision)}.json"


def read_lock(path: Path) -> Lock | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return Lock(data["repo_id"], data["revision"], data["commit"], data["files"],
                    data.get("listing", sorted(data["files"])))
    except (ValueError, KeyError) as exc:
        raise LockError(f"lock file {path} is not a valid lock ({exc}); delete it to re-lock") from exc


def write_lock(path: Path, lock: Lock) -> None:
    """Atomic: parallel writers of the same lock each rename a complete file into place."""
    from ..metrics import atomic_write_text

    atomic_write_text(path, json.dumps(lock.__dict__, indent=2, sort_keys=True) + "\n")
