"""When an analysis applies to a model, and what a notebook does when it does not.

An analysis that cannot be computed on a model (its method needs an architecture the model does
not have, or the model's data give it nothing to study) records ``"not_applicable": <reason>``
in its ``metrics.json`` instead of crashing; the report shows the reason in its place and the
scorecard marks the analysis's claims "n/a". Only the reasons defined here can do that; any
other error is a failure, as always.

Two kinds of reason, both fixed sentences defined once in this module:

* **From what the model is** (its ``HookedTransformerConfig``): :data:`REASONS` has one sentence
  per (analysis, requirement); :func:`reason_for` returns the first that fails, or ``None``.
* **From the data** (found only while the analysis runs): library code raises
  :class:`NotApplicable` with one of the data sentences below (:data:`NO_EARLIER_PREV_TOKEN_HEAD`,
  :data:`TOO_FEW_SYNONYM_PAIRS`, :data:`TOO_FEW_UNRELATED_PAIRS`, :data:`TOO_FEW_UNRELATED_WORDS`).

A notebook makes one call right after it has made its :class:`~induction_heads.metrics.Metrics`:
``stop_if_not_applicable(metrics, model, "<analysis>")``. How it ends a papermill run cleanly:
a papermill notebook cannot ``return``, and an exception fails the run. So, inside IPython, the
call (1) registers a handler for :class:`NotApplicable` (``set_custom_exc``: no traceback is
shown, and a ``post_run_cell`` hook marks the cell as succeeded once ``metrics.json`` has been
written), then (2) raises :class:`NotApplicable` itself if a reason applies to the model. When
the handler sees one — raised by this call or by any later statement — it writes
``metrics.json`` with the reason, the rest of that cell is not run (it raised), and every later
cell is a no-op (an input transformer replaces each cell's source by a comment). The executed
notebook then shows the reason and empty cells after it; papermill exits 0. Outside IPython (a
plain script) a static reason ends the process with ``SystemExit(0)`` after writing.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from .contracts import CONTRACTS


class NotApplicable(ValueError):
    """The analysis does not apply to this model, for ``reason`` (one of this module's
    sentences). A ``ValueError``, so callers that only want "this input cannot work" still
    catch it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- from what the model is

LEARNED_POSITIONS = ("shortformer", "standard")  # the types with a W_pos matrix


def attn_only_problems(cfg) -> list[str]:
    """Why a model's residual stream holds more than embeddings, head outputs and biases (empty:
    it does not); ``cfg`` is a ``HookedTransformerConfig``."""
    problems = []
    if not cfg.attn_only:
        problems.append("attn_only must be True (MLPs would add terms)")
    if cfg.normalization_type is not None:
        problems.append(f"normalization_type must be None, not {cfg.normalization_type!r}")
    if cfg.positional_embedding_type != "shortformer":
        problems.append(
            f"positional_embedding_type must be 'shortformer', not {cfg.positional_embedding_type!r}"
        )
    if getattr(cfg, "attn_scores_soft_cap", -1.0) > 0 or getattr(cfg, "use_attention_sinks", False):
        problems.append("attention soft-capping and attention sinks are not supported")
    if getattr(cfg, "output_logits_soft_cap", -1.0) > 0:
        problems.append("output logit soft-capping is not supported")
    return problems


NORMALIZATIONS = (None, "LN", "LNPre", "RMS", "RMSPre")


def dla_problems(cfg) -> list[str]:
    """Why a model's logits are not a linear read of its residual-stream parts once the final
    normalisation's scale is fixed (empty: they are); ``cfg`` is a ``HookedTransformerConfig``."""
    problems = []
    if cfg.normalization_type not in NORMALIZATIONS:
        problems.append(f"normalization_type must be one of {NORMALIZATIONS}, not {cfg.normalization_type!r}")
    if getattr(cfg, "post_embedding_ln", False):
        problems.append("a LayerNorm right after the embedding is not supported")
    if getattr(cfg, "output_logits_soft_cap", -1.0) > 0:
        problems.append("output logit soft-capping is not supported")
    return problems


def _kv_heads(cfg) -> int:
    return getattr(cfg, "n_key_value_heads", None) or cfg.n_heads


# requirement -> whether a config meets it
REQUIREMENTS: dict[str, Callable[[Any], bool]] = {
    "heads_only_residual": lambda cfg: not attn_only_problems(cfg),
    "linear_logit_path": lambda cfg: not dla_problems(cfg),
    "learned_positions": lambda cfg: cfg.positional_embedding_type in LEARNED_POSITIONS,
    "two_layers": lambda cfg: cfg.n_layers >= 2,
    "one_kv_head_per_head": lambda cfg: _kv_heads(cfg) == cfg.n_heads,
}

_ARCH = ("this model: attn_only={attn_only}, normalization_type={normalization_type}, "
         "positional_embedding_type={positional_embedding_type}")
_LAYERS = "this model has {n_layers} layer(s)"

# (analysis, requirement) -> the sentence the report shows; an analysis's requirements are the
# keys that name it, checked in this order. Fields in braces come from the model's config.
REASONS: dict[tuple[str, str], str] = {
    ("logit_attribution", "linear_logit_path"):
        "needs logits that are a linear read of the residual stream once the final "
        "normalisation's scale is fixed (no LayerNorm after the embedding, no logit "
        "soft-capping); " + _ARCH,
    ("ablation", "heads_only_residual"):
        "needs an attention-only model without LayerNorm, with shortformer position embeddings "
        "(the ablation tables as implemented recompute the logits from the head outputs); "
        + _ARCH,
    ("k_composition", "two_layers"):
        "needs at least 2 layers (a previous-token head before the induction head); " + _LAYERS,
    ("composition_scores", "two_layers"):
        "needs at least 2 layers (heads of a 1-layer model cannot compose); " + _LAYERS,
    ("path_patching", "two_layers"):
        "needs at least 2 layers (a sender head before the receiving induction head); " + _LAYERS,
    ("path_patching", "one_kv_head_per_head"):
        "needs one key/value head per query head (a key-only patch of one head is not defined "
        "under grouped-query attention); this model has {n_key_value_heads} key/value heads for "
        "{n_heads} query heads",
    ("qk_circuit", "learned_positions"):
        "needs learned absolute position embeddings (W_pos); this model's positional_embedding_type "
        "is {positional_embedding_type}",
    ("fuzzy_induction", "linear_logit_path"):
        "needs logits that are a linear read of the residual stream once the final "
        "normalisation's scale is fixed (its direct logit attribution reads the head outputs "
        "so); " + _ARCH,
}


def linear_qk_input(cfg) -> bool:
    """Whether a layer's query/key input is a plain sum of embeddings and head outputs (so its
    attention scores split exactly into (query part × key part) terms)."""
    return (cfg.attn_only and cfg.normalization_type is None
            and cfg.positional_embedding_type in LEARNED_POSITIONS)  # fmt: skip


DECOMPOSITION_NOT_RUN = (
    "The split of the attention scores into (query part × key part) terms was not made: it is "
    "exact only when the query/key input is a sum of embeddings and head outputs (an "
    "attention-only model without LayerNorm, with learned position embeddings); " + _ARCH + "."
)


def decomposition_problem(cfg) -> str | None:
    """Why K-composition's attention-score decomposition cannot be made on this model (``None``:
    it can); the weight circuit runs either way."""
    if linear_qk_input(cfg):
        return None
    return DECOMPOSITION_NOT_RUN.format(**_reason_fields(cfg))


# Analyses of the weights alone (W_E, W_pos, W_Q, W_K, W_V, W_O, W_U): on a model with LayerNorm
# or MLPs they still run, on the folded weights, and say what that leaves out.
WEIGHT_CIRCUITS = ("ov_circuit", "qk_circuit", "k_composition", "composition_scores")
APPROXIMATION_NOTE = (
    "This model has {what}, so these weight circuits are the attention-only approximation: they "
    "use its weights with LayerNorm folded in (as loaded), leave out each LayerNorm's per-token "
    "scale{mlps}; they are exact only for an attention-only model without LayerNorm."
)


def approximation_note(analysis: str, cfg) -> str | None:
    """The sentence a weight-circuit analysis records on a model with LayerNorm or MLPs (``None``
    for other analyses, and for attention-only models without LayerNorm)."""
    if analysis not in WEIGHT_CIRCUITS:
        return None
    parts = [what for what, present in (("LayerNorm", cfg.normalization_type is not None),
                                        ("MLPs", not cfg.attn_only)) if present]  # fmt: skip
    if not parts:
        return None
    mlps = " and ignore the paths through the MLPs" if not cfg.attn_only else ""
    return APPROXIMATION_NOTE.format(what=" and ".join(parts), mlps=mlps)


# ---------------------------------------------------------------- from the data (NotApplicable)

NO_EARLIER_PREV_TOKEN_HEAD = (
    "needs a previous-token head in an earlier layer than the induction head; the detected "
    "previous-token heads ({prev_heads}) are not before the best induction head {induction_head}"
)
TOO_FEW_SYNONYM_PAIRS = (
    "needs at least {needed} WordNet synonym pairs whose words are single tokens of this model's "
    "tokenizer; its vocabulary has {available}"
)


def too_few_pairs_reason(n_pairs: int, n_pairs_per_sequence: int) -> str | None:
    """:data:`TOO_FEW_SYNONYM_PAIRS` unless the vocabulary has the ``2 · n_pairs_per_sequence``
    synonym pairs a sequence and its unrelated control draw from (``None``: it has)."""
    needed = 2 * n_pairs_per_sequence
    return TOO_FEW_SYNONYM_PAIRS.format(needed=needed, available=n_pairs) if n_pairs < needed else None


TOO_FEW_UNRELATED_PAIRS = (
    "needs {needed} mutually unrelated synonym pairs per sequence; this model's vocabulary "
    "gives {available}"
)
TOO_FEW_UNRELATED_WORDS = (
    "needs {needed} unrelated words per sequence from the other synonym pairs; this model's "
    "vocabulary gives {available}"
)


def _config(cfg_or_dict):
    """A ``HookedTransformerConfig`` from one, or from its dict (``config.json``)."""
    if isinstance(cfg_or_dict, dict):
        from .architecture import config_from_dict

        return config_from_dict(cfg_or_dict)
    return cfg_or_dict


# The config fields the requirements read, with HookedTransformerConfig's defaults for those a
# config.json written by an older TransformerLens may lack.
CONFIG_FIELDS: dict[str, Any] = {
    "n_layers": None, "n_heads": None, "n_key_value_heads": None, "attn_only": False,
    "normalization_type": "LN", "positional_embedding_type": "standard",
    "attn_scores_soft_cap": -1.0, "use_attention_sinks": False, "output_logits_soft_cap": -1.0,
    "post_embedding_ln": False,
}


def config_view(cfg_dict: dict) -> SimpleNamespace:
    """The fields of a model's ``config.json`` that :func:`reason_for` reads, without building a
    ``HookedTransformerConfig`` (that needs TransformerLens, seconds to import): enough for the
    rule's check before any kernel starts (:mod:`induction_heads.precheck`)."""
    return SimpleNamespace(**{k: cfg_dict.get(k, default) for k, default in CONFIG_FIELDS.items()})


def requirements_of(analysis: str) -> list[str]:
    return [req for (a, req) in REASONS if a == analysis]


def reason_for(analysis: str, cfg_or_dict) -> str | None:
    """``None`` if ``analysis`` applies to a model with this config (a
    ``HookedTransformerConfig`` or its dict), else the sentence of the first requirement it
    fails."""
    if analysis not in CONTRACTS:
        raise KeyError(f"unknown analysis {analysis!r}; expected one of {sorted(CONTRACTS)}")
    cfg = _config(cfg_or_dict)
    for req in requirements_of(analysis):
        if not REQUIREMENTS[req](cfg):
            return REASONS[analysis, req].format(**_reason_fields(cfg))
    return None


def _reason_fields(cfg) -> dict[str, Any]:
    """The config fields a reason sentence may name."""
    fields = {k: getattr(cfg, k, None) for k in (
        "attn_only", "normalization_type", "positional_embedding_type", "n_layers", "n_heads")}
    return {**fields, "n_key_value_heads": _kv_heads(cfg)}


# ---------------------------------------------------------------- ending a notebook cleanly

SKIPPED_CELL = "# not applicable (see metrics.json): this cell was not run\n"


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of papermill
        return None
    return get_ipython()


def _skip_cell(lines: list[str]) -> list[str]:
    return [SKIPPED_CELL]


def _stop(metrics, reason: str, shell) -> None:
    """Write the not-applicable metrics.json and make every later cell a no-op."""
    path = metrics.not_applicable(reason)
    print(f"not applicable to {metrics.data['model']}: {reason}\nwrote {path}")
    if shell is not None and _skip_cell not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(_skip_cell)


def _install_handler(shell, metrics) -> None:
    """From now on a :class:`NotApplicable` raised by a cell stops the notebook cleanly."""
    handled: list[NotApplicable] = []

    def handler(shell, etype, value, tb, tb_offset=None):
        _stop(metrics, value.reason, shell)
        handled.append(value)
        return []  # no traceback: the printed reason is the cell's output

    def mark_succeeded(result) -> None:
        # the cell raised, but the handler wrote metrics.json: the run goes on (to no-op cells)
        if result is not None and any(result.error_in_exec is e for e in handled):
            result.error_in_exec = None

    shell.set_custom_exc((NotApplicable,), handler)
    shell.events.register("post_run_cell", mark_succeeded)


def stop_if_not_applicable(metrics, model, analysis: str) -> None:
    """The one call a notebook makes after creating ``metrics``: stop here with a
    not-applicable ``metrics.json`` if ``analysis`` does not apply to ``model`` (a
    ``HookedTransformer``), and stop the same way if a later statement raises
    :class:`NotApplicable`. An analysis that applies records the :func:`approximation_note` of
    a weight circuit on a model with LayerNorm or MLPs. Inside IPython the stop is a
    :class:`NotApplicable` raised here and handled (so the rest of this cell does not run either); in a plain script, ``SystemExit(0)``
    after writing."""
    shell = _shell()
    if shell is not None:
        _install_handler(shell, metrics)
    reason = reason_for(analysis, model.cfg)
    if reason is None:
        note = approximation_note(analysis, model.cfg)
        if note:
            metrics.text("attention_only_approximation", note)
        return
    if shell is not None:
        raise NotApplicable(reason)
    _stop(metrics, reason, None)
    raise SystemExit(0)


def not_applicable_reason(data: dict) -> str | None:
    """The reason a ``metrics.json`` (as a dict) records, or ``None`` if the analysis ran."""
    return data.get("not_applicable")
