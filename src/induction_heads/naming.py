"""Names: model instances, their file paths and Snakemake wildcards, in one place.

A config entry (``attn2l``, ``pythia-70m``, ``gpt2-medium``) becomes one or more *instances*:

* a trained family gives one per seed: ``attn2l-s0``, ``attn2l-s1`` …
* a published model gives one, or one per revision when the entry lists revisions (training
  checkpoints): ``pythia-70m@step1000``.

An instance name is at the same time a folder name (``results/<instance>/…``), a Snakemake wildcard
value (it matches :data:`INSTANCE_REGEX`, which has no ``/``) and, through
:func:`report.numbers.camel`, a LaTeX macro name (``PythiaSevenZeroMStepOneZeroZeroZero``).
"""

from __future__ import annotations

import re

# An entry name under `models:` — also what the schema's propertyNames enforce.
ENTRY_REGEX = r"[A-Za-z][A-Za-z0-9._-]*"
# A revision inside an instance name: a branch, tag or commit, with anything but [A-Za-z0-9._-]
# (e.g. the "/" of "refs/pr/1") replaced by "_".
REVISION_REGEX = r"[A-Za-z0-9._-]+"
INSTANCE_REGEX = rf"{ENTRY_REGEX}(@{REVISION_REGEX})?"

_ENTRY = re.compile(rf"^{ENTRY_REGEX}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def check_entry_name(name: str) -> str:
    if not _ENTRY.match(name) or name.endswith((".", "-")) or ".." in name:
        raise ValueError(
            f"model name {name!r}: expected a letter, then letters, digits, '.', '_' or '-' "
            f"(e.g. 'pythia-70m', 'gpt2-medium', 'attn2l')"
        )
    return name


def revision_slug(revision: str) -> str:
    """A revision as it appears in an instance name: ``step1000`` stays, ``refs/pr/1`` → ``refs_pr_1``."""
    if not revision:
        raise ValueError("a revision must be a non-empty string")
    return _UNSAFE.sub("_", revision)


def instance_name(entry: str, *, seed: int | None = None, revision: str | None = None) -> str:
    """The instance of ``entry``: ``<entry>-s<seed>`` for a trained seed, ``<entry>@<revision>``
    for a published revision, else ``<entry>`` itself."""
    check_entry_name(entry)
    if seed is not None and revision is not None:
        raise ValueError("an instance has a seed (trained here) or a revision (published), not both")
    if seed is not None:
        if int(seed) < 0:
            raise ValueError(f"seed {seed}: expected a non-negative integer")
        return f"{entry}-s{int(seed)}"
    if revision is not None:
        return f"{entry}@{revision_slug(revision)}"
    return entry
