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


# --------------------------------------------------------------------------------------------
# Heads: ARENA's "L.H" labels (layer 1 head 4 is "1.4"), written without leading zeros so that a
# label compares equal as a string wherever it appears (config, metrics.json, tables).

HEAD_LABEL_REGEX = r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
_HEAD_LABEL = re.compile(rf"^{HEAD_LABEL_REGEX}$")


def head_label(layer: int, head: int) -> str:
    """ARENA's head naming: layer 1 head 4 is "1.4"."""
    return f"{int(layer)}.{int(head)}"


def parse_head_label(label: str) -> tuple[int, int]:
    """``"1.10"`` → ``(1, 10)``; anything else (a float such as 1.1, "1.x", "01.2") is refused."""
    if not isinstance(label, str) or not _HEAD_LABEL.match(label):
        raise ValueError(f'head label {label!r}: expected a string "L.H" such as "1.10" (layer.head)')
    layer, head = label.split(".")
    return int(layer), int(head)


def head_labels(n_layers: int, n_heads: int) -> list[str]:
    """Every head of a model, layer by layer: "0.0", "0.1", …"""
    return [head_label(layer, head) for layer in range(n_layers) for head in range(n_heads)]


# --------------------------------------------------------------------------------------------
# Figure files. An analysis writes each figure as results/<model>/<analysis>/<figure>.<format>;
# the report copies it to a flat folder as figures/<model>__<analysis>__<figure>.<format>.

FIGURE_FORMATS = ("svg", "png", "pdf")


def figure_file(figure: str, fmt: str) -> str:
    """A figure's file name inside its analysis folder."""
    return f"{figure}.{fmt}"


def report_figure_stem(model: str, analysis: str, figure: str) -> str:
    """A figure's name (without extension) in the report's flat ``figures/`` folder."""
    return f"{model}__{analysis}__{figure}"
