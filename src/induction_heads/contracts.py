"""Each analysis's parameters, declared once: name, type, default, range and one-line meaning.

Everything else derives from :data:`CONTRACTS`:

* the config schema's ``analyses.<name>`` objects (:func:`analyses_schema`, merged into
  ``workflow/schemas/config.schema.yaml`` when it is loaded): typed, ranged, defaults filled in,
  and ``additionalProperties: false``, so a misspelt parameter is an error before any rule runs;
* the parameters the rule hands to ``notebooks/<name>.ipynb`` (:meth:`Contract.notebook_parameters`),
  written with :func:`parameters_yaml` and passed as ``papermill -f <file>``, so every value arrives
  with its type: the string ``"1.10"`` stays a string, ``1e-05`` a float;
* the notebook's ``parameters`` cell, which holds the same names and defaults
  (``tests/test_contracts.py`` reads every notebook with ``papermill.inspect_notebook``).

Adding an analysis is one :class:`Contract` entry below (plus its notebook and library code);
adding a parameter is one :class:`Param` line here and the same line in the notebook's
``parameters`` cell.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import yaml

from .naming import HEAD_LABEL_REGEX

# Parameters every per-model notebook takes (filled by the rule, not by the config).
MODEL_COMMON = ("model_name", "model_dir", "data_dir", "out_dir", "device", "seed")
# ... and every per-family notebook (one run over all seeds of a trained family).
FAMILY_COMMON = ("model_name", "out_dir", "device", "seed")


@dataclass(frozen=True)
class Param:
    """One parameter of an analysis: ``schema`` is the JSON schema of its value (no default)."""

    name: str
    default: Any
    meaning: str
    schema: dict
    kind: str = "value"  # "heads": a list of "L.H" labels that must exist in the model
    notebook: bool = True  # False: read by the analysis's other rules, not by its notebook

    def json_schema(self) -> dict:
        return {**self.schema, "default": self.default, "description": self.meaning}


def _nullable(schema: dict, nullable: bool, expected: str) -> dict:
    if not nullable:
        return {**schema, "x-expected": expected}
    return {**schema, "type": [schema["type"], "null"], "x-expected": f"{expected} or null"}


def count(name: str, default: int | None, meaning: str, *, nullable: bool = False, **kw) -> Param:
    """An integer >= 1 (``nullable``: or null, meaning "not set")."""
    schema = _nullable({"type": "integer", "minimum": 1}, nullable, "an integer >= 1")
    return Param(name, default, meaning, schema, **kw)


def fraction(name: str, default: float, meaning: str, *, open_interval: bool = False) -> Param:
    """A number in [0, 1], or in (0, 1) with ``open_interval``."""
    if open_interval:
        bounds = {"exclusiveMinimum": 0, "exclusiveMaximum": 1}
        expected = "a number strictly between 0 and 1"
    else:
        bounds, expected = {"minimum": 0, "maximum": 1}, "a number in [0, 1]"
    return Param(name, default, meaning, {"type": "number", **bounds, "x-expected": expected})


def positive(name: str, default: float, meaning: str) -> Param:
    return Param(name, default, meaning,
                 {"type": "number", "exclusiveMinimum": 0, "x-expected": "a number > 0"})  # fmt: skip


def flag(name: str, default: bool, meaning: str) -> Param:
    return Param(name, default, meaning, {"type": "boolean", "x-expected": "true or false"})


def choice(name: str, default: str, meaning: str, options: tuple[str, ...]) -> Param:
    expected = "one of " + ", ".join(repr(o) for o in options)
    return Param(name, default, meaning, {"enum": list(options), "x-expected": expected})


def window(name: str, default: list[float], meaning: str) -> Param:
    """A stretch of the context as ``[start, stop]``, fractions with 0 <= start < stop <= 1 (the
    order is checked at plan time: a schema cannot compare two items)."""
    part = {"type": "number", "minimum": 0, "maximum": 1}
    schema = {"type": "array", "items": part, "minItems": 2, "maxItems": 2,
              "x-expected": "[start, stop], fractions of the context with 0 <= start < stop <= 1"}  # fmt: skip
    return Param(name, default, meaning, schema)


def heads(name: str, meaning: str) -> Param:
    """A list of head labels ("L.H", quoted in YAML: unquoted 1.10 is the number 1.1); empty
    means "the heads head_scores detects". Each head must exist in every model analysed."""
    label = {
        "type": "string",
        "pattern": f"^{HEAD_LABEL_REGEX}$",
        "x-expected": 'a head label "L.H" as a quoted string (e.g. "1.10": unquoted, YAML reads 1.1)',
    }
    schema = {"type": "array", "items": label, "uniqueItems": True,
              "x-expected": 'a list of head labels such as ["0.1", "1.10"] (no repeats)'}  # fmt: skip
    return Param(name, [], meaning, schema, kind="heads")


def mapping(name: str, meaning: str, fields: tuple[Param, ...]) -> Param:
    """A mapping with fixed keys (each a :class:`Param`); keys left out take their defaults."""
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: f.json_schema() for f in fields},
        "x-expected": "a mapping with keys " + ", ".join(f.name for f in fields),
    }
    return Param(name, {f.name: f.default for f in fields}, meaning, schema)


@dataclass(frozen=True)
class Contract:
    """An analysis: its parameters, the files its notebook reads (path parameters, filled by the
    rule), and what a model needs for it to run."""

    name: str
    meaning: str
    params: tuple[Param, ...]
    files: tuple[str, ...] = ("head_scores_path",)
    family: bool = False  # one run per trained family (every seed), not one per model
    min_layers: int = 1
    from_model: tuple[str, ...] = ()  # parameters the rule takes from the model's entry (MODEL_VALUES)

    @property
    def common(self) -> tuple[str, ...]:
        return FAMILY_COMMON if self.family else MODEL_COMMON + self.from_model

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def defaults(self) -> dict[str, Any]:
        """A fresh copy: callers may change it."""
        return copy.deepcopy({p.name: p.default for p in self.params})

    def notebook_names(self) -> set[str]:
        """Every name the notebook's ``parameters`` cell must define."""
        own = {p.name for p in self.params if p.notebook}
        return own | set(self.common) | set(self.files)

    def json_schema(self) -> dict:
        return {
            "type": "object",
            "description": self.meaning,
            "additionalProperties": False,
            "properties": {p.name: p.json_schema() for p in self.params},
            "x-expected": f"a mapping of {self.name}'s parameters",
        }

    def notebook_parameters(self, settings: dict, common: dict, files: dict) -> dict[str, Any]:
        """The notebook's parameters: its settings (validated, defaults filled), the common ones
        and the paths of the files it reads. Refuses a missing or extra name (a rule bug)."""
        params = {p.name: copy.deepcopy(settings.get(p.name, p.default)) for p in self.params if p.notebook}
        params.update(common)
        params.update(files)
        if set(params) != self.notebook_names():
            raise ValueError(
                f"{self.name}: the rule gives {sorted(params)}, the contract wants "
                f"{sorted(self.notebook_names())}"
            )
        return params


# Parameters a notebook takes from its model's entry, not from `analyses:` (a contract's
# `from_model`): name -> its value for a model entry.
MODEL_VALUES = {
    "named_heads": lambda entry: copy.deepcopy(entry.get("heads") or {}),  # models.<m>.heads
    "published_heads": lambda entry: copy.deepcopy(entry.get("published_heads") or {}),  # models.<m>.published_heads
}


# Per-checkpoint quantities of training_dynamics that rise as the circuit forms.
RISING_METRICS = ("best_induction_score", "best_prev_token_score", "traced_induction_score",
                  "traced_prev_token_score", "traced_ov_top1", "kcomp_score")  # fmt: skip

THRESHOLDS = mapping("thresholds", "detection threshold of each head score (a head is detected above it)", (
    fraction("induction", 0.4, "induction score threshold"),
    fraction("previous_token", 0.4, "previous-token score threshold"),
    fraction("duplicate_token", 0.4, "duplicate-token score threshold"),
    fraction("current_token", 0.4, "current-token score threshold"),
    fraction("first_token", 0.6, "first-token (BOS) score threshold"),
))  # fmt: skip

# In report order.
CONTRACTS: dict[str, Contract] = {c.name: c for c in (
    Contract("head_scores", "attention scores of every head, detection, ICL score", (
        THRESHOLDS,
        window("icl_early", [0.0625, 0.125], "ICL score: mean held-out loss over the late window minus over this "
               "stretch of the context (tokens 8-15 of 128)"),
        window("icl_late", [0.75, 1.0], "... the late window (tokens 96-127 of 128)"),
        count("position_bin", 16, "tokens per bin of the held-out loss-by-position curve"),
        count("example_len", 15, "random tokens in the attention example of the report (<= seq_len)"),
        count("n_bootstrap", 2000, "bootstrap resamples of each interval"),
    ), files=(), from_model=("named_heads", "published_heads")),
    Contract("logit_attribution", "direct logit attribution of each head on repeated tokens", (
        count("n_sequences", 100, "repeated-token sequences used (at most those in repeated_tokens.pt)"),
        positive("max_abs_error", 1e-3, "the parts must sum to the logit within this"),
    )),
    Contract("ablation", "loss increase when each head is zero- or mean-ablated", (
        count("n_repeated_sequences", 100, "repeated-token sequences (at most those in repeated_tokens.pt)"),
        count("n_text_sequences", 50, "held-out text sequences (at most those in heldout_tokens.pt)"),
        count("reference_sequences", 8, "sequences on which the fast tables are checked against the reference"),
        heads("circuit", "heads kept in the circuit-only run; empty: the detected heads"),
        choice("circuit_kind", "mean", "how the heads outside the circuit are ablated", ("mean", "zero")),
        positive("max_fast_vs_reference_diff", 1e-4, "largest |fast - reference| ablated loss allowed"),
    )),
    Contract("ov_circuit", "OV copying of the induction heads", (
        count("chunk_size", 512, "rows of the vocabulary circuit computed at a time (memory)"),
        count("vocab_sample", 4096, "every head's OV accuracy: source tokens sampled when d_vocab is "
              "larger, with an interval (null: every token)", nullable=True),
        count("studied_vocab_sample", None, "the same for the studied induction heads "
              "(null: exact, every token)", nullable=True),
    )),
    Contract("qk_circuit", "positional QK pattern of the previous-token head", (
        flag("include_bias", False, "add b_Q, b_K to the positional pattern"),
    )),
    Contract("k_composition", "K-composition circuit and attention-score decomposition", (
        count("chunk_size", 512, "rows of the vocabulary circuit computed at a time (memory)"),
        count("vocab_sample", 4096, "query tokens sampled when d_vocab is larger, with an interval "
              "(null: every token)", nullable=True),
        count("n_decompose_seqs", 4, "repeated-token sequences whose scores are decomposed"),
    ), min_layers=2),
    Contract("composition_scores", "Q/K/V-composition scores against random heads", (
        count("n_baseline_samples", 300, "random head pairs of the baseline"),
    ), min_layers=2),
    Contract("olsson_scores", "Olsson et al.'s prefix-matching and copying scores; anti-induction heads", (
        count("n_tokens", 25, "random tokens per repeat (Olsson et al.: 25)"),
        count("n_repeats", 4, "repeats after BOS (Olsson et al.: 4)"),
        count("n_sequences", 100, "sequences averaged over"),
        fraction("exclude_common", 0.05, "fraction of the ordinary vocabulary dropped as most common"),
        fraction("exclude_rare", 0.2, "fraction dropped as least common (held-out counts)"),
        fraction("prefix_threshold", 0.4, "prefix matching at or above this counts as induction-like attention"),
        fraction("alpha", 0.05, "family-wise level of the anti-induction test (Holm)", open_interval=True),
        count("n_bootstrap", 2000, "bootstrap resamples of each interval"),
        count("batch_size", 16, "sequences per forward pass (memory)"),
    ), files=("head_scores_path", "ov_circuit_path")),
    Contract("path_patching", "previous-token head -> induction head's key / query / value input", (
        count("n_sequences", 100, "repeated-token sequences (at most those in repeated_tokens.pt)"),
        count("n_bootstrap", 2000, "bootstrap resamples of each interval"),
        count("batch_size", 16, "sequences per forward pass (memory)"),
    ), min_layers=2),
    Contract("fuzzy_induction", "induction across WordNet synonyms", (
        count("n_sequences", 400, "sequences per condition"),
        count("n_pairs_per_sequence", 10, "synonym pairs per sequence (BOS + 2 x this <= n_ctx)"),
        count("n_bootstrap", 2000, "bootstrap resamples of each interval"),
    ), files=("head_scores_path", "pairs_path", "pairs_counts_path", "tokenizer_path")),
    Contract("training_dynamics", "the phase change over training checkpoints of a trained family", (
        fraction("formation_threshold", 0.3, "a curve that never reaches this did not form"),
        choice("formation_metric", "best_induction_score", "the curve whose rise is detected", RISING_METRICS),
        count("smooth_width", 3, "moving average over this many checkpoints"),
        fraction("window_low", 0.2, "the window spans the rise from this fraction ...", open_interval=True),
        fraction("window_high", 0.8, "... to this fraction of (top - baseline)", open_interval=True),
        choice("band", "minmax", "band across seeds", ("minmax", "std")),
        positive("icl_change_threshold", 0.05, "the ICL score changes when its fall reaches this (nats)"),
        fraction("bump_alpha", 0.05, "false-alarm rate of the loss-bump rule", open_interval=True),
        count("n_bootstrap", 1000, "bootstrap resamples (documents) of each interval"),
        count("max_heldout", None, "held-out sequences per checkpoint evaluation; null: all",
              nullable=True, notebook=False),
        count("max_repeated", None, "repeated-token sequences per checkpoint evaluation; null: all",
              nullable=True, notebook=False),
    ), files=("dynamics_paths", "control_paths", "train_info_paths"), family=True),
)}  # fmt: skip


def analyses_schema() -> dict:
    """The schema of the config's ``analyses`` block: one typed object per contract."""
    return {
        "type": "object",
        "description": "analysis name -> its parameters (src/induction_heads/contracts.py); "
        "an analysis runs when its name is here",
        "required": ["head_scores"],
        "additionalProperties": False,
        "properties": {name: c.json_schema() for name, c in CONTRACTS.items()},
        "x-expected": "a mapping of analysis names to their parameters",
    }


def parameters_yaml(params: dict[str, Any]) -> str:
    """The text of a ``papermill -f`` file: ``yaml.safe_dump`` writes every string that would read
    back as something else quoted (``'1.10'``) and every float with a dot or exponent that YAML 1.1
    reads as a float (``1.0e-05``). The round trip is checked, so a value that would change
    (a NaN, a tuple) is refused here rather than arriving altered."""
    text = yaml.safe_dump(params, sort_keys=True, allow_unicode=True)
    back = yaml.safe_load(text)
    if not _same(back, params):
        raise ValueError(f"parameters do not survive YAML unchanged: {params!r} -> {back!r}")
    return text


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and not math.isnan(a)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b

