"""Which model instances a config asks for, what each declares, and the checks that need no download.

A config entry under ``models:`` becomes instances (:mod:`induction_heads.naming`):

* ``source: train`` → one per seed, ``<entry>-s<seed>``; the first seed is *primary* (analysed);
* ``source: huggingface`` → ``<entry>`` at its ``revision`` (primary), plus ``<entry>@<rev>`` for
  each of its ``checkpoints`` (published training checkpoints; they get the head scores only);
* ``source: local`` → ``<entry>`` (primary).

:func:`declared_shape` says what an instance's model looks like before anything is downloaded
(layers, context, vocabulary, MLPs or not), from the entry (trained and hub models declare it) or
from the local files; the checks that can be made at plan time use it, and the rule that obtains
the weights checks the entry's declarations against the real files again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .naming import instance_name
from .sources import NATIVE_ARCHITECTURE, SUPPORTED_ARCHITECTURES

# Analyses that run on published checkpoints (non-primary hub instances).
CHECKPOINT_ANALYSES = ("head_scores",)


def model_instances(config: dict) -> dict[str, dict[str, Any]]:
    """Every model the workflow builds: name → {family, source, role, seed, revision, primary, spec}."""
    out: dict[str, dict[str, Any]] = {}
    for entry, spec in config["models"].items():
        if not spec.get("enabled", True):
            continue
        base = {"family": entry, "source": spec["source"], "role": spec.get("role", "other"), "spec": spec}
        if spec["source"] == "train":
            for i, seed in enumerate(spec["seeds"]):
                out[instance_name(entry, seed=seed)] = {**base, "seed": seed, "revision": None, "primary": i == 0}
        elif spec["source"] == "huggingface":
            out[entry] = {**base, "seed": None, "revision": spec.get("revision") or "main", "primary": True}
            for rev in spec.get("checkpoints") or []:
                out[instance_name(entry, revision=rev)] = {**base, "seed": None, "revision": rev, "primary": False}
        else:
            out[entry] = {**base, "seed": None, "revision": None, "primary": True}
    return out


def mosaic_instances(config: dict) -> dict[str, dict[str, Any]]:
    """The mosaic's models (``mosaic.models``) in :func:`model_instances`' form, named
    ``mosaic/<entry>`` (an entry may share its name with one under ``models:``)."""
    return {
        f"mosaic/{entry}": {"family": entry, "source": spec["source"], "role": "mosaic", "spec": spec, "seed": None,
                            "revision": spec.get("revision") or ("main" if spec["source"] == "huggingface" else None),
                            "primary": False}  # fmt: skip
        for entry, spec in (config.get("mosaic") or {}).get("models", {}).items()
    }


class SourceProblem(ValueError):
    """An entry that cannot work, found before any rule runs: (key, message), and where they say it
    better, the offending ``value`` and what was ``expected`` (a :class:`ConfigError`'s parts)."""

    def __init__(self, key: str, message: str, *, value: Any = None, expected: str | None = None):
        super().__init__(f"config error at {key}: {message}")
        self.key, self.message, self.value, self.expected = key, message, value, expected


def _missing(key: str, path: Path | str, what: str = "an existing file") -> SourceProblem:
    return SourceProblem(key, f"{path} does not exist", value=str(path),
                         expected=f"{what} (relative paths are read from {Path.cwd()})")  # fmt: skip


def _read_json(path: Path, key: str) -> dict:
    if not path.is_file():
        raise _missing(key, path)
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise SourceProblem(key, f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SourceProblem(key, f"{path} does not hold a JSON object")
    return data


def _first(d: dict, *keys: str):
    return next((d[k] for k in keys if d.get(k) is not None), None)


def declared_shape(entry: str, spec: dict, vocab_size: int | None = None) -> dict[str, Any]:
    """{n_layers, n_heads, n_ctx, d_vocab, has_mlp, architecture} of an entry, without downloading
    anything (None where the entry does not say).

    Raises :class:`SourceProblem` for what is certain not to work: a missing local file, an
    architecture whose conversion is not supported.
    """
    key = f"models.{entry}"
    if spec["source"] == "train":
        return {"n_layers": spec["n_layers"], "n_heads": spec["n_heads"], "n_ctx": spec["n_ctx"],
                "d_vocab": vocab_size, "has_mlp": False, "architecture": "trained here"}  # fmt: skip
    if spec["source"] == "huggingface":
        fmt = spec.get("format", "transformers")
        arch = spec.get("architecture") if fmt == "transformers" else NATIVE_ARCHITECTURE
        if fmt == "transformers" and arch not in SUPPORTED_ARCHITECTURES:
            raise SourceProblem(f"{key}.architecture", f"{arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES[:-1])} (format: transformers) and TransformerLens state dicts (format: transformer_lens)")  # fmt: skip
        inline = spec.get("config") or {}
        return {"n_layers": spec.get("n_layers", inline.get("n_layers")), "n_heads": inline.get("n_heads"),
                "n_ctx": spec["n_ctx"], "d_vocab": spec["d_vocab"],
                "has_mlp": spec.get("has_mlp", not inline.get("attn_only", False)),
                "architecture": arch}  # fmt: skip
    # local
    if spec.get("path"):
        folder = Path(spec["path"])
        if not folder.is_dir():
            raise SourceProblem(f"{key}.path", f"{folder} is not a folder (expected a model folder as save_pretrained writes it)")
        hf = _read_json(folder / "config.json", f"{key}.path")
        arch = (hf.get("architectures") or [None])[0]
        if arch not in SUPPORTED_ARCHITECTURES[:-1]:
            raise SourceProblem(f"{key}.path", f"{folder}/config.json names architecture {arch!r}; supported: {', '.join(SUPPORTED_ARCHITECTURES[:-1])}")  # fmt: skip
        return {"n_layers": _first(hf, "n_layer", "num_hidden_layers", "num_layers"),
                "n_heads": _first(hf, "n_head", "num_attention_heads", "num_heads"),
                "n_ctx": _first(hf, "n_ctx", "n_positions", "max_position_embeddings"),
                "d_vocab": hf.get("vocab_size"), "has_mlp": True, "architecture": arch}  # fmt: skip
    for what in ("weights", "config", "tokenizer"):
        if not spec.get(what):
            raise SourceProblem(key, f"a local state dict needs `{what}` (or give `path:` to a transformers model folder)")
        if not Path(spec[what]).exists():
            raise _missing(f"{key}.{what}", spec[what])
    cfg = _read_json(Path(spec["config"]), f"{key}.config")
    return {"n_layers": cfg.get("n_layers"), "n_heads": cfg.get("n_heads"), "n_ctx": cfg.get("n_ctx"),
            "d_vocab": cfg.get("d_vocab"), "has_mlp": not cfg.get("attn_only", False),
            "architecture": NATIVE_ARCHITECTURE}  # fmt: skip
