"""The plan-time checks a schema cannot express: one function per row of :data:`CHECKS`.

Each check takes the config (already accepted by the schema, defaults filled) and yields a
:class:`~induction_heads.config.ConfigError` ``(key, value, expected)`` for every problem it finds;
``validate_config`` runs them all before any rule is scheduled and reports every problem at once.
A new check is one function decorated with :func:`check` (or :func:`model_check`, for a check of
each enabled model entry); ``tests/test_config_table.py`` holds a bad config for each row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .config import (
    ConfigError,
    Plain,
    analyses_for,
    checkpoint_schedule,
    data_config_dict,
    model_instances,
    override_key,
    trained_families,
    training_config_dict,
)
from .contracts import CONTRACTS
from .icl_windows import IclWindows
from .model_plan import SourceProblem, declared_shape
from .naming import parse_head_label

Check = Callable[[dict], Iterable[ConfigError]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    """Add ``fn(config) -> ConfigErrors`` to the table of plan-time checks."""
    CHECKS.append(fn)
    return fn


def model_check(*sources: str):
    """Add ``fn(config, name, entry) -> ConfigErrors``, run on every enabled model entry (of the
    given ``sources``: ``"train"``, ``"huggingface"``, ``"local"``; all when none is given)."""

    def register(fn):
        def each_model(config: dict) -> Iterator[ConfigError]:
            for name, entry in config["models"].items():
                if entry.get("enabled", True) and (not sources or entry["source"] in sources):
                    yield from fn(config, name, entry)

        each_model.__name__ = each_model.__qualname__ = fn.__name__
        CHECKS.append(each_model)
        return fn

    return register


# --------------------------------------------------------------------------- models


@check
def some_model_enabled(config):
    if not any(entry.get("enabled", True) for entry in config["models"].values()):
        names = ", ".join(sorted(config["models"]))
        yield ConfigError("models", Plain(f"every model disabled ({names})"),
                          "at least one model with enabled: true")  # fmt: skip


@model_check("train")
def heads_fill_the_residual_stream(config, name, entry):
    """A model trained here splits d_model into its heads (published models need not)."""
    n, d, d_model = entry["n_heads"], entry["d_head"], entry["d_model"]
    if n * d != d_model:
        yield ConfigError(f"models.{name}.d_head", d,
                          f"n_heads x d_head = d_model for a trained model ({n} x {d} = {n * d}, "
                          f"d_model {d_model})")  # fmt: skip


@model_check("huggingface", "local")
def entry_can_be_obtained(config, name, entry):
    """A published or local model whose architecture is supported and whose files exist (relative
    paths are read from the directory Snakemake runs in, ``--directory``)."""
    try:
        declared_shape(name, entry)
    except SourceProblem as problem:
        yield _source_error(problem, problem.key)


def _source_error(problem: SourceProblem, key: str) -> ConfigError:
    if problem.expected is None:
        return ConfigError(key, Plain(problem.message), "")
    return ConfigError(key, problem.value, problem.expected)


# --------------------------------------------------------------------------- training


@model_check("train")
def training_fits_the_model(config, name, entry):
    t = training_config_dict(config, name)
    at = lambda key: override_key(config, name, "training", key)  # noqa: E731
    steps = t["steps"]
    if t["warmup_steps"] >= steps:
        yield ConfigError(at("warmup_steps"), t["warmup_steps"], f"fewer than {at('steps')} ({steps})")
    lo, hi, max_seg = t["random_segment_min"], t["random_segment_max"], (entry["n_ctx"] - 1) // 2
    if hi > max_seg:
        yield ConfigError(at("random_segment_max"), hi,
                          f"at most (n_ctx - 1) // 2 = {max_seg}: two copies must fit the context "
                          f"of model {name!r} (n_ctx {entry['n_ctx']})")  # fmt: skip
    if lo > hi:
        yield ConfigError(at("random_segment_min"), lo, f"at most random_segment_max ({hi})")
    for mix in ("", "late_"):  # the batch mix before and after late_from_step
        text, random = t[f"{mix}frac_repeated_text"], t[f"{mix}frac_random_repeat"]
        if text + random > 1:
            yield ConfigError(at(f"{mix}frac_random_repeat"), random,
                              f"{mix}frac_repeated_text + {mix}frac_random_repeat <= 1 "
                              f"(they sum to {text + random:g})")  # fmt: skip
    late = t["late_from_step"]
    if late is not None and late >= steps:
        yield ConfigError(at("late_from_step"), late, f"fewer than {at('steps')} ({steps}), or null")
    for i, part in enumerate(t["checkpoints"]):
        where = f"{at('checkpoints')}[{i}]"
        if part["start"] >= part["stop"]:
            yield ConfigError(f"{where}.start", part["start"], f"less than stop ({part['stop']})")
        if part["stop"] > steps:
            yield ConfigError(f"{where}.stop", part["stop"], f"at most {at('steps')} ({steps})")


# --------------------------------------------------------------------------- data


@model_check()
def repeated_tokens_fit(config, name, entry):
    n_ctx = _shape(name, entry).get("n_ctx")
    seq_len = data_config_dict(config, name)["repeated_tokens"]["seq_len"]
    key = override_key(config, name, "data.repeated_tokens", "seq_len")
    if n_ctx is not None and 1 + 2 * seq_len > n_ctx:  # only an entry's own length (the shared one follows n_ctx)
        yield ConfigError(key, seq_len,
                          f"at most {(n_ctx - 1) // 2}: BOS + 2 x seq_len tokens must fit the "
                          f"context of model {name!r} (n_ctx {n_ctx})")  # fmt: skip


# Fuzzy induction needs mutually unrelated synonym pairs whose two words are single tokens of the
# model's tokenizer. Measured on the shipped corpus (Austen + KJV, 25 documents and all of them
# alike) with WordNet max_sense_rank 8: no such pair up to a 512-token BPE, about 10 at 768, 32 at
# 1024 and 350 at 3072; the largest n_pairs_per_sequence that 400 sequences could draw from them
# was 3 at 768, 10 at 1024 and 63 at 3072. Rows: (vocab_size, largest n_pairs_per_sequence).
FUZZY_VOCAB = ((768, 3), (1024, 10), (3072, 60))


def fuzzy_min_vocab(n_pairs_per_sequence: int) -> int:
    """The smallest trained vocabulary measured to give fuzzy induction enough synonym pairs."""
    return next((v for v, n in FUZZY_VOCAB if n >= n_pairs_per_sequence), FUZZY_VOCAB[-1][0])


@check
def vocabulary_has_synonym_pairs(config):
    if "fuzzy_induction" not in config["analyses"]:
        return
    trained = [m for m, i in model_instances(config).items() if i["source"] == "train"]
    if not any("fuzzy_induction" in analyses_for(config, m) for m in trained):
        return
    n = config["analyses"]["fuzzy_induction"]["n_pairs_per_sequence"]
    vocab, need = config["tokenizer"]["vocab_size"], fuzzy_min_vocab(n)
    if vocab < need:
        yield ConfigError("tokenizer.vocab_size", vocab,
                          f"at least {need} for fuzzy_induction with n_pairs_per_sequence {n} on a "
                          f"trained model (single-token WordNet synonym pairs of this corpus: none "
                          f"up to 512 tokens, ~10 at 768, ~32 at 1024, ~350 at 3072)")  # fmt: skip


# --------------------------------------------------------------------------- analyses


def _shape(name: str, entry: dict) -> dict:
    """The entry's declared shape; empty when it cannot be known (that is its own row's error)."""
    try:
        return declared_shape(name, entry)
    except SourceProblem:
        return {}


def analysed_models(config: dict, analysis: str) -> Iterator[tuple[str, dict]]:
    """(model, declared shape + ``window``, the tokens of a held-out row) of every model instance
    that runs ``analysis``; models whose entry has its own error are left out, and so are models
    with too few layers for it (it records "not applicable" there, whatever its parameters)."""
    min_layers = CONTRACTS[analysis].min_layers
    for model, inst in model_instances(config).items():
        shape = _shape(inst["family"], inst["spec"])
        if not shape or (shape["n_layers"] or min_layers) < min_layers:
            continue
        if analysis in analyses_for(config, model):
            yield model, {**shape, "window": _heldout_window(inst["spec"], shape)}


def _heldout_window(entry: dict, shape: dict) -> int | None:
    """Tokens per held-out text row (BOS included): the context, capped by ``heldout_ctx``."""
    if shape["n_ctx"] is None:
        return None
    return min(shape["n_ctx"], entry.get("heldout_ctx") or shape["n_ctx"])


@check
def named_heads_exist(config):
    """Every head a config names (a contract's ``heads`` parameter) exists in each model that
    the analysis runs on."""
    for analysis, settings in config["analyses"].items():
        for param in (p for p in CONTRACTS[analysis].params if p.kind == "heads"):
            for i, label in enumerate(settings[param.name]):
                layer, head = parse_head_label(label)  # the schema's pattern admits only "L.H"
                for model, shape in analysed_models(config, analysis):
                    L, H = shape["n_layers"], shape["n_heads"]
                    if L is not None and H is not None and (layer >= L or head >= H):
                        yield ConfigError(f"analyses.{analysis}.{param.name}[{i}]", label,
                                          f"a head of model {model!r} (layers 0-{L - 1}, heads "
                                          f"0-{H - 1})")  # fmt: skip


@model_check()
def model_heads_exist(config, name, entry):
    """Every head a model entry names (to study, ``models.<m>.heads``, or as a paper's,
    ``published_heads``) exists in that model."""
    shape = _shape(name, entry)
    L, H = shape.get("n_layers"), shape.get("n_heads")
    named = [(key, kind, labels) for key in ("heads", "published_heads")
             for kind, labels in (entry.get(key) or {}).items() if kind != "source"]  # fmt: skip
    for key, kind, labels in named:
        for i, label in enumerate(labels):
            layer, head = parse_head_label(label)  # the schema's pattern admits only "L.H"
            if (L is not None and layer >= L) or (H is not None and head >= H):
                yield ConfigError(f"models.{name}.{key}.{kind}[{i}]", label,
                                  f"a head of {name} (layers 0-{L - 1 if L else '?'}, heads "
                                  f"0-{H - 1 if H else '?'})")  # fmt: skip


@check
def icl_windows_fit(config):
    """The ICL score compares an early and a later stretch of a held-out row; both must hold at
    least one token of every analysed model's rows (the checkpoint evaluation uses the same)."""
    hs = config["analyses"]["head_scores"]
    early, late = hs["icl_early"], hs["icl_late"]
    ordered = [ConfigError(f"analyses.head_scores.{key}", [start, stop], "[start, stop] with start < stop")
               for key, (start, stop) in (("icl_early", early), ("icl_late", late)) if start >= stop]
    if early[1] > late[0]:
        ordered.append(ConfigError("analyses.head_scores.icl_early", early,
                                   f"a window that ends where icl_late starts ({late[0]}) or before"))  # fmt: skip
    if ordered:
        yield from ordered
        return
    for model, shape in analysed_models(config, "head_scores"):
        window = shape["window"]
        if window is None:
            continue
        tokens = IclWindows.unchecked(window, early, late)
        try:
            tokens.check(window)
        except ValueError:
            yield ConfigError("analyses.head_scores.icl_early", early,
                              f"windows of at least one token each, after BOS, in the {window}-token "
                              f"held-out rows of model {model!r} (here tokens [{tokens.early[0]}, "
                              f"{tokens.early[1]}) and [{tokens.late[0]}, {tokens.late[1]}))")  # fmt: skip


@check
def attention_example_fits(config):
    """The attention example is a stretch of each model's repeated tokens (one error per limit)."""
    n = config["analyses"]["head_scores"]["example_len"]
    limits = {}
    for name in (m for m, entry in config["models"].items() if entry.get("enabled", True)):
        seq_len = data_config_dict(config, name)["repeated_tokens"]["seq_len"]
        if n > seq_len:
            limits[override_key(config, name, "data.repeated_tokens", "seq_len")] = seq_len
    for key, seq_len in limits.items():
        yield ConfigError("analyses.head_scores.example_len", n, f"at most {key} ({seq_len})")


@check
def olsson_sequences_fit(config):
    """Olsson's sequences are BOS + n_repeats x n_tokens random tokens."""
    if "olsson_scores" not in config["analyses"]:
        return
    params = config["analyses"]["olsson_scores"]
    n_tokens, n_repeats = params["n_tokens"], params["n_repeats"]
    n_pos = 1 + n_tokens * n_repeats
    for model, shape in analysed_models(config, "olsson_scores"):
        if shape["n_ctx"] is not None and n_pos > shape["n_ctx"]:
            yield ConfigError("analyses.olsson_scores.n_tokens", n_tokens,
                              f"at most {(shape['n_ctx'] - 1) // n_repeats}: BOS + {n_repeats} x "
                              f"{n_tokens} tokens ({n_pos}) must fit the context of model {model!r} "
                              f"(n_ctx {shape['n_ctx']})")  # fmt: skip


@check
def fuzzy_sequences_fit(config):
    if "fuzzy_induction" not in config["analyses"]:
        return
    n = config["analyses"]["fuzzy_induction"]["n_pairs_per_sequence"]
    for model, shape in analysed_models(config, "fuzzy_induction"):
        if shape["n_ctx"] is not None and 1 + 2 * n > shape["n_ctx"]:
            yield ConfigError("analyses.fuzzy_induction.n_pairs_per_sequence", n,
                              f"at most {(shape['n_ctx'] - 1) // 2}: BOS + 2 x n words must fit "
                              f"the context of model {model!r} (n_ctx {shape['n_ctx']})")  # fmt: skip


@check
def formation_window_is_a_rise(config):
    td = config["analyses"].get("training_dynamics")
    if td is not None and td["window_low"] >= td["window_high"]:
        yield ConfigError("analyses.training_dynamics.window_low", td["window_low"],
                          f"less than window_high ({td['window_high']})")  # fmt: skip


@check
def dynamics_have_checkpoints_to_smooth(config):
    """Smoothing over more checkpoints than a run has flattens the curve it looks for."""
    td = config["analyses"].get("training_dynamics")
    if td is None:
        return
    for family in trained_families(config):
        t = training_config_dict(config, family)
        n = len(checkpoint_schedule(t["checkpoints"], t["steps"]))
        if td["smooth_width"] > n:
            yield ConfigError("analyses.training_dynamics.smooth_width", td["smooth_width"],
                              f"at most the {n} checkpoints of model {family!r} (training.checkpoints)")  # fmt: skip


@check
def mosaic_models_are_published(config):
    """The mosaic scores published models: every entry is obtained (huggingface or local) and
    states what the plan can know of it (a missing local file, an unsupported architecture)."""
    for name, entry in config["mosaic"]["models"].items():
        if entry["source"] == "train":
            yield ConfigError(f"mosaic.models.{name}.source", "train", "huggingface or local (the mosaic trains nothing)")
            continue
        try:
            declared_shape(name, entry)
        except SourceProblem as problem:
            yield _source_error(problem, "mosaic." + problem.key)
