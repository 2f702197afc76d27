"""The workflow configuration: validation against the schema, and the plan derived from it.

``validate_config`` is called by the Snakefile before any rule is scheduled. It fills schema
defaults and raises :class:`ConfigError` with a message that names the offending key
(``config error at training.steps: 'many' is not of type 'integer'``).

The *plan* helpers say which model instances exist (a trained family gives one per seed:
``attn2l-s0``, ``attn2l-s1``…), which are analysed, and which analyses apply to which model.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# Analyses in report order, with what a model needs for each.
ANALYSES: dict[str, dict[str, Any]] = {
    "head_scores": {"min_layers": 1},
    "logit_attribution": {"min_layers": 1},
    "ablation": {"min_layers": 1},
    "ov_circuit": {"min_layers": 1},
    "qk_circuit": {"min_layers": 1},
    "k_composition": {"min_layers": 2},
    "composition_scores": {"min_layers": 2},
    "fuzzy_induction": {"min_layers": 1, "needs_tokenizer": True},
}
# Analyses of a whole trained family (every seed), not of one model.
FAMILY_ANALYSES = ("training_dynamics",)
# The keys of a trained model entry that give its shape (here, not in training.py: the rules read
# them while planning, and importing torch for a tuple would cost every plan seconds).
ARCH_KEYS = ("n_layers", "d_model", "n_heads", "d_head", "n_ctx")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def _key_path(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


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


@functools.cache
def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """The schema, parsed once per process (the Snakefile needs it for every trained family);
    callers must not modify it."""
    return yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate (in place, filling defaults) and run the checks a schema can't express."""
    validator = _validator_with_defaults(load_schema(schema_path))
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        lines = [f"config error at {_key_path(e.absolute_path)}: {e.message}" for e in errors[:8]]
        raise ConfigError("\n".join(lines))
    _semantic_checks(config)
    return config


def _semantic_checks(config: dict) -> None:
    for name, spec in config["models"].items():
        if spec["source"] == "train":
            training = training_config_dict(config, name)
            if training["random_segment_max"] > (spec["n_ctx"] - 1) // 2:
                raise ConfigError(
                    f"config error at models.{name}.n_ctx: random_segment_max "
                    f"{training['random_segment_max']} must be at most (n_ctx - 1) // 2 = "
                    f"{(spec['n_ctx'] - 1) // 2}"
                )
            if training["frac_repeated_text"] + training["frac_random_repeat"] > 1:
                raise ConfigError(
                    "config error at training: frac_repeated_text + frac_random_repeat must be <= 1"
                )
            seq_len = config["data"]["repeated_tokens"]["seq_len"]
            if 1 + 2 * seq_len > spec["n_ctx"]:
                raise ConfigError(
                    f"config error at data.repeated_tokens.seq_len: BOS + 2 x {seq_len} tokens "
                    f"do not fit model {name!r} (n_ctx {spec['n_ctx']})"
                )
    _source_checks(config)
    if not any(s.get("enabled", True) for s in config["models"].values()):
        raise ConfigError("config error at models: every model is disabled")
    icl = config["analyses"]["head_scores"]
    for name, spec in trained_families(config).items():
        late = icl.get("icl_late")
        if late is not None and late > spec["n_ctx"] - 1:
            raise ConfigError(
                f"config error at analyses.head_scores.icl_late: {late} exceeds model {name!r}'s "
                f"context ({spec['n_ctx']} tokens)"
            )


def _source_checks(config: dict) -> None:
    """What can be known about a non-trained model before downloading it: a supported
    architecture, local files that exist, data settings that fit its declared context."""
    from .model_plan import SourceProblem, declared_shape

    seq_len = config["data"]["repeated_tokens"]["seq_len"]
    for name, spec in config["models"].items():
        if spec["source"] == "train" or not spec.get("enabled", True):
            continue
        try:
            shape = declared_shape(name, spec)
        except SourceProblem as exc:
            raise ConfigError(str(exc)) from exc
        if shape["n_ctx"] is not None and 1 + 2 * seq_len > shape["n_ctx"]:
            raise ConfigError(
                f"config error at data.repeated_tokens.seq_len: BOS + 2 x {seq_len} tokens do not "
                f"fit model {name!r} (n_ctx {shape['n_ctx']})"
            )


def training_config_dict(config: dict, family: str) -> dict:
    """The shared ``training`` block with the model's own overrides applied."""
    merged = copy.deepcopy(config["training"])
    overrides = config["models"][family].get("training", {})
    unknown = set(overrides) - set(load_schema()["$defs"]["training"]["properties"])
    if unknown:
        raise ConfigError(f"config error at models.{family}.training: unknown keys {sorted(unknown)}")
    merged.update(overrides)
    return merged


# --------------------------------------------------------------------------- the plan


def trained_families(config: dict) -> dict[str, dict]:
    return {
        n: s for n, s in config["models"].items() if s["source"] == "train" and s.get("enabled", True)
    }


def model_instances(config: dict) -> dict[str, dict]:
    """Every model the workflow builds (see :mod:`induction_heads.model_plan`)."""
    from .model_plan import model_instances as instances

    return instances(config)


def n_layers_of(config: dict, family: str) -> int:
    from .model_plan import declared_shape

    return declared_shape(family, config["models"][family])["n_layers"] or 1


def analyses_for(config: dict, model: str) -> list[str]:
    """The per-model analyses that run on ``model``, in report order: every applicable one on a
    primary instance, the head scores on a published checkpoint, nothing on other trained seeds."""
    from .model_plan import CHECKPOINT_ANALYSES

    inst = model_instances(config)[model]
    if inst["primary"]:
        wanted = ANALYSES
    elif inst["source"] == "huggingface":
        wanted = {a: ANALYSES[a] for a in CHECKPOINT_ANALYSES}
    else:
        return []
    n_layers = n_layers_of(config, inst["family"])
    return [
        a for a, needs in wanted.items()
        if a in config["analyses"] and n_layers >= needs["min_layers"]
    ]  # fmt: skip


def roles(config: dict) -> dict[str, str]:
    """Primary model name → role (main / control / arena / other), for the report."""
    return {m: i["role"] for m, i in model_instances(config).items() if i["primary"]}
