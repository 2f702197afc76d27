"""The workflow configuration: validation, and the plan derived from it.

``validate_config`` is called by the Snakefile before any rule is scheduled. It checks the config
against the schema (``workflow/schemas/config.schema.yaml``, with each analysis's parameters from
:mod:`induction_heads.contracts`), fills the defaults, then runs the checks a schema cannot
express (the table :data:`induction_heads.config_checks.CHECKS`). Every problem, of either kind,
is one :class:`ConfigError` naming the key, the value found and what was expected::

    config error at analyses.head_scores.thresholds.induction: 1.7; expected a number in [0, 1]

All problems are reported at once, one line each.

The *plan* helpers say which model instances exist (a trained family gives one per seed:
``attn2l-s0``, ``attn2l-s1``…), which are analysed, and which analyses apply to which model.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .contracts import CONTRACTS, analyses_schema

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# Analyses in report order: per model, and of a whole trained family (every seed).
ANALYSES = tuple(name for name, c in CONTRACTS.items() if not c.family)
FAMILY_ANALYSES = tuple(name for name, c in CONTRACTS.items() if c.family)


class Plain(str):
    """A value shown as it is in a message (a sentence about the value, not the value itself)."""


MISSING = Plain("missing")


def show(value: Any) -> str:
    """A value as the user wrote it, roughly: JSON (strings quoted, so "1.10" is not 1.1)."""
    if isinstance(value, Plain):
        return str(value)
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
# The keys of a trained model entry that give its shape (here, not in training.py: the rules read
# them while planning, and importing torch for a tuple would cost every plan seconds).
ARCH_KEYS = ("n_layers", "d_model", "n_heads", "d_head", "n_ctx")


class ConfigError(ValueError):
    """One problem with the configuration: ``key`` (dotted, ``[i]`` for list items), the
    ``value`` found there and what was ``expected`` (empty: the value says it all). ``errors`` holds every problem when several
    are raised together (:meth:`combine`); the message has one line per problem."""

    def __init__(self, key: str, value: Any, expected: str):
        self.key, self.value, self.expected = key, value, expected
        self.errors: list[ConfigError] = [self]
        super().__init__(self.line)

    @property
    def line(self) -> str:
        expected = f"; expected {self.expected}" if self.expected else ""
        return f"config error at {self.key}: {show(self.value)}{expected}"

    @classmethod
    def combine(cls, errors: list[ConfigError]) -> ConfigError:
        unique = list({e.line: e for e in errors}.values())
        first = unique[0]
        combined = cls(first.key, first.value, first.expected)
        combined.errors = unique
        combined.args = ("\n".join(e.line for e in unique),)
        return combined


def key_path(path) -> str:
    """``["models", "attn2l", "seeds", 0]`` → ``models.attn2l.seeds[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


# --------------------------------------------------------------------------- the schema


def _validator_with_defaults(schema: dict):
    """A Draft 2020-12 validator that also fills ``default`` values (as snakemake.utils does)."""
    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    cls = jsonschema.validators.extend(base, {"properties": set_defaults})
    return cls(schema)


def _overrides_of(block: dict, description: str | None = None, expected: str | None = None) -> dict:
    """A model entry's override of a shared block (``training``, a section of ``data``): any of
    its keys, none required, no defaults (a default here would override the shared value)."""
    props = {k: {p: v for p, v in sub.items() if p != "default"} for k, sub in block["properties"].items()}
    schema = {"type": "object", "additionalProperties": False, "properties": props}
    if description:
        schema |= {"description": description, "x-expected": expected}
    return schema


# The sections of ``data`` a model entry may override (the synonym candidates are shared by all).
PER_MODEL_DATA = ("repeated_tokens", "heldout")


def _data_overrides_of(data: dict) -> dict:
    """A model entry's ``data:``: overrides of the :data:`PER_MODEL_DATA` sections."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: _overrides_of(data["properties"][name]) for name in PER_MODEL_DATA},
        "description": "overrides of the shared `data` keys (repeated_tokens, heldout), for this model only",
        "x-expected": "a mapping with repeated_tokens and/or heldout",
    }


@functools.cache
def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """The YAML schema, with the parts derived in code: ``analyses`` from the contracts and a
    model entry's ``training`` overrides from the shared ``training`` block. Parsed once per
    process (the Snakefile needs it for every trained family); callers must not modify it. A model
    entry's ``data`` overrides come from the shared ``data`` block the same way."""
    schema = yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schema["properties"]["analyses"] = analyses_schema()
    schema["$defs"]["training_overrides"] = _overrides_of(
        schema["$defs"]["training"], "overrides of the shared `training` keys, for this model only",
        "a mapping of `training` keys",
    )
    schema["$defs"]["data_overrides"] = _data_overrides_of(schema["properties"]["data"])
    return schema


def _resolve(sub: dict, root: dict) -> dict:
    while isinstance(sub, dict) and "$ref" in sub:
        node = root
        for part in sub["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        sub = node
    return sub if isinstance(sub, dict) else {}


def _range(schema: dict) -> str:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    parts = [f">= {lo}" if lo is not None else None, f"> {xlo}" if xlo is not None else None,
             f"<= {hi}" if hi is not None else None, f"< {xhi}" if xhi is not None else None]  # fmt: skip
    parts = [p for p in parts if p]
    return (" " + " and ".join(parts)) if parts else ""


_ARTICLE = {"integer": "an integer", "number": "a number", "string": "a string",
            "boolean": "true or false", "array": "a list", "object": "a mapping", "null": "null"}  # fmt: skip


def describe(schema: dict, root: dict | None = None) -> str:
    """What a (sub)schema accepts, in words; an ``x-expected`` entry says it best where present."""
    schema = _resolve(schema, root or {})
    if "x-expected" in schema:
        return schema["x-expected"]
    if "enum" in schema:
        return "one of " + ", ".join(show(v) for v in schema["enum"])
    if "const" in schema:
        return show(schema["const"])
    types = schema.get("type", [])
    words = []
    for t in [types] if isinstance(types, str) else types:
        word = _ARTICLE.get(t, t)
        if t in ("integer", "number"):
            word += _range(schema)
        elif t == "string" and "pattern" in schema:
            word += f" matching {schema['pattern']}"
        elif t == "object" and schema.get("properties"):
            word += " with keys " + ", ".join(sorted(schema["properties"]))
        elif t == "array":
            if schema.get("minItems"):
                word += f" of at least {schema['minItems']}"
            if "items" in schema:
                word += f" (each: {describe(schema['items'], root)})"
            if schema.get("uniqueItems"):
                word += ", no repeats"
        words.append(word)
    return " or ".join(words) or "a valid value"


def _unknown_key(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"one of the keys {', '.join(known)}{hint}"


def _alternative(sub: dict, root: dict) -> str:
    """One branch of a oneOf/anyOf in words (a branch that only requires keys: "keys a, b")."""
    if set(sub) == {"required"}:
        return "keys " + ", ".join(sub["required"])
    return describe(sub, root)


def schema_errors(config: dict, schema: dict) -> list[ConfigError]:
    """Validate (filling defaults in place); every schema violation as a :class:`ConfigError`."""
    out = []
    for e in _validator_with_defaults(schema).iter_errors(config):
        path, kw = list(e.absolute_path), e.validator
        if "propertyNames" in e.schema_path:  # e.instance is the offending name itself
            out.append(ConfigError(key_path([*path, e.instance]), e.instance, "a name: " + describe(e.schema, schema)))
        elif kw == "additionalProperties" and e.validator_value is False:
            known = sorted(e.schema.get("properties", {}))
            for extra in (k for k in e.instance if k not in known):
                out.append(ConfigError(key_path([*path, extra]), e.instance[extra], _unknown_key(extra, known)))
        elif kw in ("oneOf", "anyOf"):
            options = " | ".join(_alternative(sub, schema) for sub in e.validator_value)
            out.append(ConfigError(key_path(path), e.instance, f"{'exactly ' if kw == 'oneOf' else ''}one of: {options}"))
        elif kw == "required":
            for name in (n for n in e.validator_value if n not in e.instance):
                sub = e.schema.get("properties", {}).get(name)
                out.append(ConfigError(key_path([*path, name]), MISSING, describe(sub, schema) if sub else "a value"))
        else:
            expected = describe(e.schema, schema)
            if kw == "type" and isinstance(e.instance, str) and _reads_as_number(e.instance):
                expected += (" (this is text: quoted in the YAML, or a nested `--config` value, "
                             "which Snakemake reads as text; use a config file)")  # fmt: skip
            out.append(ConfigError(key_path(path), e.instance, expected))
    return sorted(out, key=lambda e: e.key)


def _reads_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.lower() in ("true", "false")
    return True


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate ``config`` in place (filling defaults) and run the plan-time checks; raise one
    :class:`ConfigError` listing every problem. The checks run only on a config the schema
    accepts, so each may rely on the types, ranges and defaults the schema guarantees."""
    errors = schema_errors(config, load_schema(schema_path))
    if not errors:
        from .config_checks import CHECKS  # they use the plan helpers below

        errors = [err for check in CHECKS for err in check(config)]
    if errors:
        raise ConfigError.combine(errors)
    return config


def training_config_dict(config: dict, family: str) -> dict:
    """The shared ``training`` block with the model's own overrides applied."""
    merged = copy.deepcopy(config["training"])
    merged.update(config["models"][family].get("training", {}))
    return merged


def data_config_dict(config: dict, family: str) -> dict:
    """The shared ``data`` block with the model entry's own ``data`` overrides applied (per section).

    The shared repeated-token length follows a model whose context is too short for it: BOS +
    2 x seq_len is capped at the model's n_ctx. A length the entry sets itself is never changed
    (one that does not fit is a plan-time error)."""
    merged = copy.deepcopy(config["data"])
    entry = config["models"][family]
    for section, values in entry.get("data", {}).items():
        merged[section] = {**merged[section], **values}
    rep = merged["repeated_tokens"]
    if "seq_len" not in entry.get("data", {}).get("repeated_tokens", {}):
        n_ctx = _declared_n_ctx(family, entry)
        if n_ctx is not None and 1 + 2 * rep["seq_len"] > n_ctx:
            rep["seq_len"] = (n_ctx - 1) // 2
    return merged


def _declared_n_ctx(family: str, entry: dict) -> int | None:
    """The context an entry declares (None when it cannot be known before anything is loaded)."""
    from .model_plan import SourceProblem, declared_shape

    try:
        return declared_shape(family, entry).get("n_ctx")
    except SourceProblem:
        return None  # the entry's own plan-time error says why


def override_key(config: dict, family: str, block: str, key: str) -> str:
    """Where a merged value came from: the model entry's override (``models.<family>.<block>.<key>``)
    or the shared block (``<block>.<key>``); ``block`` is dotted (``training``, ``data.heldout``)."""
    node = config["models"][family]
    for part in block.split("."):
        node = node.get(part, {})
    return f"models.{family}.{block}.{key}" if key in node else f"{block}.{key}"


# --------------------------------------------------------------------------- the plan


def trained_families(config: dict) -> dict[str, dict]:
    return {
        n: s for n, s in config["models"].items() if s["source"] == "train" and s.get("enabled", True)
    }


def model_instances(config: dict) -> dict[str, dict]:
    """Every model the workflow builds (see :mod:`induction_heads.model_plan`)."""
    from .model_plan import model_instances as instances

    return instances(config)


def checkpoint_schedule(spec: Iterable[dict], steps: int) -> list[int]:
    """Expand ``[{"start":…, "stop":…, "every":…}, …]`` into sorted steps; always has 0 and ``steps``."""
    out = {0, steps}
    for part in spec:
        start, stop, every = int(part["start"]), int(part["stop"]), int(part["every"])
        if every <= 0:
            raise ValueError(f"checkpoint 'every' must be positive, got {every}")
        out.update(range(start, min(stop, steps) + 1, every))
    return sorted(s for s in out if 0 <= s <= steps)


def analyses_for(config: dict, model: str) -> list[str]:
    """The per-model analyses that run on ``model``, in report order: every configured one on a
    primary instance, the head scores on a published checkpoint, nothing on other trained seeds.
    An analysis the model cannot support still runs and records why (applicability.py), so every
    model's section of the report says something."""
    from .model_plan import CHECKPOINT_ANALYSES

    inst = model_instances(config)[model]
    if inst["primary"]:
        wanted = ANALYSES
    elif inst["source"] == "huggingface":
        wanted = CHECKPOINT_ANALYSES
    else:
        return []
    return [a for a in wanted if a in config["analyses"]]


def roles(config: dict) -> dict[str, str]:
    """Primary model name → role (main / control / arena / other), for the report."""
    return {m: i["role"] for m, i in model_instances(config).items() if i["primary"]}
