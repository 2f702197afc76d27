"""The replication scorecard: the papers' claims, checked on this run's metrics.

Each claim is one :class:`Criterion` in :data:`CRITERIA` (adding a claim is adding an entry): a
function of a :class:`Lookup` that returns whether the claim holds and the values it looked at.
A metric that is absent (the analysis was not run, or the model of that role is not in the run)
makes the claim "not run" — never a silent PASS; an analysis that recorded that it does not
apply to the model (``not_applicable`` in its metrics.json) makes it "n/a", with the reason.

:data:`ARENA_REFERENCES` does the same for the numbers ARENA publishes for its
``attn_only_2L_half`` model, with a tolerance.

Metric names read here are the contract with the analyses (see CONTRIBUTING.md):
``head_scores``: ``loss_first_repeat``, ``loss_second_repeat``, ``best_prev_token_score``,
``best_prev_token_head``, ``best_induction_score``, ``best_induction_head``, and the table
``head_scores`` (columns ``head``, ``induction``, …: per-head scores, and the layer count);
``training_dynamics`` may be recorded per family (``attn2l`` for ``attn2l-s0``);
``ablation``: ``induction_score_before_prev_ablation``, ``induction_score_after_prev_ablation``,
``top_ablation_heads``; ``ov_circuit``: ``ov_top1_best_induction_head``, ``ov_chance_top1``,
``ov_top1_effective``; ``composition_scores``: ``k_composition_z_best_pair``; ``qk_circuit``:
``prev_token_positional_subdiagonal``; ``fuzzy_induction``: ``fuzzy_prefix_minus_unrelated``,
``fuzzy_prefix_minus_shuffled_positional``;
``training_dynamics``: ``formation_fraction``, ``seeds`` and per seed ``final_icl_score_s<seed>``
(with its interval), ``icl_before_formation_s<seed>``, ``icl_cooccurs_s<seed>``, ``icl_lag_s<seed>``,
``loss_bump_window_s<seed>``, ``formation_window_s<seed>``; ``path_patching``: ``key_path_loss_share``,
``key_path_loss_change``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .collect import Run, family_of
from .numbers import format_number, format_value

PASS, FAIL, NOT_RUN, NOT_APPLICABLE = "PASS", "FAIL", "not run", "n/a"


class Missing(Exception):
    """A metric the check needs is not in the run."""


class NotApplicableResult(Exception):
    """The analysis a check reads recorded that it does not apply to the model."""


@dataclass
class Lookup:
    """Reads metrics of the subject model (a 2L model) and of the control, for one check."""

    run: Run
    subject: str | None
    control: str | None = None

    def entry(self, analysis: str, metric: str, *, of: str = "subject") -> dict[str, Any]:
        model = self.subject if of == "subject" else self.control
        result = self.run.get(model, analysis)
        if result is None and model is not None:  # per-family analyses (training dynamics)
            result = self.run.get(family_of(model), analysis)
        if result is not None and result.not_applicable:
            raise NotApplicableResult(f"{analysis} not applicable to {model}: {result.not_applicable}")
        if result is None or metric not in result.metrics:
            who = model or f"(no {of} model)"
            raise Missing(f"{who}: {analysis}/{metric}")
        return result.metrics[metric]

    def value(self, analysis: str, metric: str, *, of: str = "subject") -> Any:
        value = self.entry(analysis, metric, of=of).get("value")
        if value is None:
            raise Missing(f"{analysis}/{metric} is null")
        return value

    def ci(self, analysis: str, metric: str, *, of: str = "subject") -> list[float] | None:
        return self.entry(analysis, metric, of=of).get("ci")

    def head_table(self) -> dict[str, dict[str, Any]]:
        """head_scores' table of every head (``head``, then one column per score), by label."""
        result = self.run.get(self.subject, "head_scores")
        table = (result.tables.get("head_scores") if result else None) or {}
        columns = table.get("columns") or []
        return {str(row[0]): dict(zip(columns, row)) for row in table.get("rows", [])}

    def n_layers(self) -> int:
        """The subject's layer count: a head_scores metric, its params, the layers of the
        head-scores table, or else 2 (the subject is a 2-layer model)."""
        try:
            return int(self.value("head_scores", "n_layers"))
        except Missing:
            pass
        result = self.run.get(self.subject, "head_scores")
        params = result.data.get("params", {}) if result else {}
        if "n_layers" in params:
            return int(params["n_layers"])
        labels = self.head_table()
        return 1 + max(layer_of(h) for h in labels) if labels else 2

    def head_score(self, kind: str, label: str) -> float:
        """One head's score: from a layer × head metric ``<kind>_scores``, else from the
        head-scores table's ``<kind>`` column."""
        try:
            matrix = self.value("head_scores", f"{kind}_scores")
            layer, head = (int(x) for x in label.split("."))
            return float(matrix[layer][head])
        except (Missing, IndexError, TypeError):
            row = self.head_table().get(label)
            if row is None or row.get(kind) is None:
                raise Missing(f"head_scores: no {kind} score of head {label}") from None
            return float(row[kind])


def layer_of(label: str) -> int:
    return int(str(label).split(".")[0])


@dataclass
class Outcome:
    status: str  # PASS, FAIL, "not run" or "n/a"
    observed: str  # the values the check looked at, as text


def _outcome(check: Callable[[Lookup], tuple[bool, str]], lookup: Lookup) -> Outcome:
    """PASS/FAIL from the check; "n/a (reason)" or "not run" when it cannot be made."""
    try:
        ok, observed = check(lookup)
    except NotApplicableResult as err:
        return Outcome(NOT_APPLICABLE, f"n/a ({err})")
    except Missing as err:
        return Outcome(NOT_RUN, f"missing {err}")
    return Outcome(PASS if ok else FAIL, observed)


@dataclass
class Criterion:
    """A claim, the rule that checks it, and whose metrics it reads."""

    id: str
    claim: str
    criterion: str
    source: str
    check: Callable[[Lookup], tuple[bool, str]]
    needs_control: bool = False
    exploratory: bool = False

    def evaluate(self, lookup: Lookup) -> Outcome:
        return _outcome(self.check, lookup)


f = format_number  # short alias: observed strings are built from many numbers


def _ratio(a: float, b: float) -> str:
    return f"ratio {f(a / b)}" if b else "ratio undefined"


def _icl_copying(lk: Lookup) -> tuple[bool, str]:
    first = lk.value("head_scores", "loss_first_repeat")
    second = lk.value("head_scores", "loss_second_repeat")
    return second <= 0.5 * first, f"2nd {f(second)} vs 1st {f(first)} nats ({_ratio(second, first)})"


def _prev_token_layer0(lk: Lookup) -> tuple[bool, str]:
    score = lk.value("head_scores", "best_prev_token_score")
    head = lk.value("head_scores", "best_prev_token_head")
    return score >= 0.5 and layer_of(head) == 0, f"head {head}: {f(score)}"


def _induction_last_layer(lk: Lookup) -> tuple[bool, str]:
    score = lk.value("head_scores", "best_induction_score")
    head = lk.value("head_scores", "best_induction_head")
    last = lk.n_layers() - 1
    ok = score >= 0.5 and layer_of(head) == last
    return ok, f"head {head}: {f(score)} (last layer = {last})"


def _none_in_control(lk: Lookup) -> tuple[bool, str]:
    score = lk.value("head_scores", "best_induction_score", of="control")
    first = lk.value("head_scores", "loss_first_repeat", of="control")
    second = lk.value("head_scores", "loss_second_repeat", of="control")
    ok = score < 0.1 and second >= 0.9 * first
    return ok, f"{lk.control}: best {f(score)}; loss 2nd/1st {_ratio(second, first)}"


def _ablation_removes(lk: Lookup) -> tuple[bool, str]:
    before = lk.value("ablation", "induction_score_before_prev_ablation")
    after = lk.value("ablation", "induction_score_after_prev_ablation")
    return after <= 0.25 * before, f"{f(before)} → {f(after)}"


def _ov_copies(lk: Lookup) -> tuple[bool, str]:
    top1 = lk.value("ov_circuit", "ov_top1_best_induction_head")
    chance = lk.value("ov_circuit", "ov_chance_top1")
    try:
        effective = f"; effective {f(lk.value('ov_circuit', 'ov_top1_effective'))}"
    except Missing:
        effective = ""
    return top1 >= 10 * chance, f"top-1 {f(top1)} vs chance {f(chance)}{effective}"


def _k_composition(lk: Lookup) -> tuple[bool, str]:
    z = lk.value("composition_scores", "k_composition_z_best_pair")
    return z >= 3, f"z = {f(z)}"


def _positional_qk(lk: Lookup) -> tuple[bool, str]:
    sub = lk.value("qk_circuit", "prev_token_positional_subdiagonal")
    return sub >= 0.5, f"sub-diagonal {f(sub)}"


def _fuzzy(lk: Lookup) -> tuple[bool, str]:
    """Synonym prefix matching must beat both no-match controls (as the analysis's conclusion
    does): the unrelated second half, and the same key position in shuffled sequences. (Synonym
    minus the shuffled condition's own target measures word order, not fuzzy matching.)"""
    passed, shown = True, []
    for control in ("unrelated", "shuffled_positional"):
        name = f"fuzzy_prefix_minus_{control}"
        value, ci = lk.value("fuzzy_induction", name), lk.ci("fuzzy_induction", name)
        if not ci:
            return False, f"{control}: {f(value)} (no interval recorded)"
        passed &= ci[0] > 0
        shown.append(f"vs {control.replace('_', ' ')}: {f(value)} [{f(ci[0])}, {f(ci[1])}]")
    return passed, "; ".join(shown)


def _key_path(lk: Lookup) -> tuple[bool, str]:
    """Path patching: the key path's share of the single-path loss effect is at least one half,
    and its own loss change is an increase whose interval excludes zero (a share of nothing is
    not a result)."""
    share = lk.value("path_patching", "key_path_loss_share")
    change, ci = lk.value("path_patching", "key_path_loss_change"), lk.ci("path_patching", "key_path_loss_change")
    if not ci:
        return False, f"share {f(share)}; key-path Δloss {f(change)} (no interval recorded)"
    ok = share >= 0.5 and ci[0] > 0
    return ok, f"share {f(share)}; key-path Δloss {f(change)} [{f(ci[0])}, {f(ci[1])}] nats"


def _formation(lk: Lookup) -> tuple[bool, str]:
    frac = lk.value("training_dynamics", "formation_fraction")
    return frac >= 1.0, f"{f(frac)} of seeds"


# In-context learning on natural text: the thresholds, fixed before the runs.
ICL_MAX_REL_WIDTH = 1 / 3  # the final ICL score's interval is at most this × |score| wide
ICL_BEFORE_MAX_FRACTION = 0.5  # |score before formation| at most this × |final score|


def _per_seed(lk: Lookup, metric: str) -> list[tuple[int, Any]]:
    return [(s, lk.value("training_dynamics", f"{metric}_s{s}")) for s in lk.value("training_dynamics", "seeds")]


def _every_seed(lk: Lookup, metric: str, judge: Callable[[int, Any], tuple[bool, str]]) -> tuple[bool, str]:
    """A claim that must hold for every seed: ``judge(seed, value of metric_s<seed>)`` gives each
    seed's verdict and what is shown for it."""
    verdicts = [judge(s, value) for s, value in _per_seed(lk, metric)]
    return all(ok for ok, _ in verdicts), "; ".join(shown for _, shown in verdicts)


def _icl_final(lk: Lookup) -> tuple[bool, str]:
    for s, score in _per_seed(lk, "final_icl_score"):
        if not lk.ci("training_dynamics", f"final_icl_score_s{s}"):
            return False, f"seed {s}: {f(score)} (no interval recorded)"

    def judge(s, score):
        ci = lk.ci("training_dynamics", f"final_icl_score_s{s}")
        width = ci[1] - ci[0]
        relative = f(width / abs(score)) if score else "inf"
        return (ci[1] < 0 and width <= ICL_MAX_REL_WIDTH * abs(score),
                f"s{s} {f(score)} [{f(ci[0])}, {f(ci[1])}] (width {relative}×|score|)")

    return _every_seed(lk, "final_icl_score", judge)


def _icl_before(lk: Lookup) -> tuple[bool, str]:
    finals = dict(_per_seed(lk, "final_icl_score"))
    return _every_seed(lk, "icl_before_formation", lambda s, before: (
        abs(before) <= ICL_BEFORE_MAX_FRACTION * abs(finals[s]),
        f"s{s} {f(before)} before vs {f(finals[s])} at the end"))


def _icl_cooccurs(lk: Lookup) -> tuple[bool, str]:
    def judge(s, inside):
        lag = lk.value("training_dynamics", f"icl_lag_s{s}")
        return bool(inside), f"s{s} lag {f(lag)} steps ({'inside' if inside else 'outside'} the formation window)"

    return _every_seed(lk, "icl_cooccurs", judge)


def _loss_bump(lk: Lookup) -> tuple[bool, str]:
    def judge(s, window):
        formation = lk.value("training_dynamics", f"formation_window_s{s}")
        (b0, b1), (f0, f1) = (map(int, str(w).split("-")) for w in (window, formation))
        return b0 <= f1 and f0 <= b1, f"s{s} bump {window} vs formation {formation}"

    return _every_seed(lk, "loss_bump_window", judge)


ELHAGE, OLSSON, ARENA = "Elhage et al. 2021", "Olsson et al. 2022", "ARENA"

CRITERIA: list[Criterion] = [
    Criterion("icl_copying", "In-context copying: a repeated random sequence is predicted far "
              "better the second time", "head_scores loss_second_repeat ≤ 0.5 × loss_first_repeat",
              OLSSON, _icl_copying),
    Criterion("prev_token_head", "A previous-token head in layer 0",
              "best_prev_token_score ≥ 0.5 and best_prev_token_head in layer 0", ELHAGE,
              _prev_token_layer0),
    Criterion("induction_last_layer", "Induction heads in the last layer of the 2-layer model",
              "best_induction_score ≥ 0.5 and best_induction_head in the last layer", ELHAGE,
              _induction_last_layer),
    Criterion("none_in_control", "No induction heads in the 1-layer control",
              "control best_induction_score < 0.1 and loss_second_repeat ≥ 0.9 × loss_first_repeat",
              ELHAGE, _none_in_control, needs_control=True),
    Criterion("ablation_removes", "Ablating the previous-token head removes induction",
              "induction_score_after_prev_ablation ≤ 0.25 × induction_score_before_prev_ablation",
              ELHAGE, _ablation_removes),
    Criterion("ov_copies", "The induction head's OV circuit copies tokens",
              "ov_top1_best_induction_head ≥ 10 × ov_chance_top1", ARENA, _ov_copies),
    Criterion("k_composition", "K-composition of previous-token and induction heads is above "
              "the random baseline", "k_composition_z_best_pair ≥ 3", ELHAGE, _k_composition),
    Criterion("positional_qk", "The previous-token pattern comes from the positional QK circuit",
              "prev_token_positional_subdiagonal ≥ 0.5", ARENA, _positional_qk),
    Criterion("fuzzy", "Fuzzy (synonym) prefix matching", "fuzzy_prefix_minus_unrelated and "
              "fuzzy_prefix_minus_shuffled_positional: both intervals' lower bounds > 0", OLSSON,
              _fuzzy, exploratory=True),
    Criterion("key_path", "Key path carries most of the path-patching effect (causal "
              "K-composition)", "path_patching key_path_loss_share ≥ 0.5 and key_path_loss_change "
              "interval above 0", ELHAGE, _key_path),
    Criterion("formation", "Induction heads form during training in every seed",
              "training_dynamics formation_fraction = 1", OLSSON, _formation),
    Criterion("icl_final", "Every 2-layer seed predicts later tokens of natural text better at the "
              "end of training", "every seed: final_icl_score's interval below 0 and at most "
              "1/3 × |score| wide", OLSSON, _icl_final),
    Criterion("icl_before", "Before the induction heads form, the ICL score is much smaller",
              "every seed: |icl_before_formation| ≤ 0.5 × |final_icl_score|", OLSSON, _icl_before),
    Criterion("icl_cooccurs", "The ICL score changes when the induction heads form",
              "every seed: the ICL score's steepest fall lies inside the induction formation window",
              OLSSON, _icl_cooccurs),
    Criterion("loss_bump", "A bump in the held-out loss curve at the phase change",
              "every seed: a loss bump (slope fall beyond the noise, log-token axis) whose window "
              "overlaps the induction formation window", OLSSON, _loss_bump, exploratory=True),
]


@dataclass
class ScoreRow:
    criterion: Criterion
    model: str | None
    outcome: Outcome


def subject_model(run: Run, role: str) -> str | None:
    """The model a role's claims are checked on: the first of that role with head scores
    (not a family name that only has training dynamics)."""
    models = run.models_with_role(role)
    with_scores = [m for m in models if run.get(m, "head_scores")]
    return (with_scores or models or [None])[0]


def evaluate(run: Run, criteria: list[Criterion] | None = None) -> list[ScoreRow]:
    """Every criterion on the first main model (and the first control)."""
    lookup = Lookup(run, subject_model(run, "main"), subject_model(run, "control"))
    rows = []
    for c in criteria if criteria is not None else CRITERIA:
        model = lookup.control if c.needs_control else lookup.subject
        rows.append(ScoreRow(c, model, c.evaluate(lookup)))
    return rows


def evaluate_others(run: Run, criteria: list[Criterion] | None = None) -> list[ScoreRow]:
    """The 2L-model criteria on every model that is neither the first main nor a control."""
    main = subject_model(run, "main")
    others = [m for m in run.models() if run.role(m) != "control" and m != main
              and run.get(m, "head_scores")]
    rows = []
    for model in others:
        lookup = Lookup(run, model)
        for c in criteria if criteria is not None else CRITERIA:
            if c.needs_control or c.id == "formation":
                continue  # these are claims about the main run, not about any 2L model
            outcome = c.evaluate(lookup)
            if outcome.status != NOT_RUN:
                rows.append(ScoreRow(c, model, outcome))
    return rows


# ---------------------------------------------------------------- ARENA's published numbers


@dataclass
class Reference:
    """A number ARENA publishes for ``attn_only_2L_half`` and how close ours must be."""

    id: str
    quantity: str
    published: str
    tolerance: str
    check: Callable[[Lookup], tuple[bool, str]]

    def evaluate(self, lookup: Lookup) -> Outcome:
        return _outcome(self.check, lookup)


def _above(kind: str, label: str, threshold: float) -> Callable[[Lookup], tuple[bool, str]]:
    def check(lk: Lookup) -> tuple[bool, str]:
        score = lk.head_score(kind, label)
        return score > threshold, f(score)

    return check


def _near(analysis: str, metric: str, target: float, tol: float, head_metric: str | None = None,
          head: str | None = None) -> Callable[[Lookup], tuple[bool, str]]:
    """``|ours − target| ≤ tol``; if ``head_metric`` is given, ours must be about ``head``."""

    def check(lk: Lookup) -> tuple[bool, str]:
        if head_metric is not None:
            ours_head = lk.value("head_scores", head_metric)
            if str(ours_head) != head:
                return False, f"our best head is {ours_head}, not {head}"
        value = lk.value(analysis, metric)
        return abs(value - target) <= tol, f(value)

    return check


def _prev_head_is(label: str) -> Callable[[Lookup], tuple[bool, str]]:
    def check(lk: Lookup) -> tuple[bool, str]:
        head = lk.value("head_scores", "best_prev_token_head")
        score = lk.value("head_scores", "best_prev_token_score")
        return str(head) == label, f"head {head}: {f(score)}"

    return check


def _top_ablation(expected: set[str]) -> Callable[[Lookup], tuple[bool, str]]:
    def check(lk: Lookup) -> tuple[bool, str]:
        top = [str(h) for h in lk.value("ablation", "top_ablation_heads")][: len(expected)]
        return set(top) == expected, format_value(top)

    return check


ARENA_REFERENCES: list[Reference] = [
    Reference("ind_1_4", "Induction score of head 1.4", "> 0.6", "above 0.6",
              _above("induction", "1.4", 0.6)),
    Reference("ind_1_10", "Induction score of head 1.10", "> 0.6", "above 0.6",
              _above("induction", "1.10", 0.6)),
    Reference("prev_0_7", "Previous-token head", "0.7", "same head", _prev_head_is("0.7")),
    Reference("ov_1_4", "OV top-1 accuracy of 1.4", "0.308", "± 0.03",
              _near("ov_circuit", "ov_top1_best_induction_head", 0.308, 0.03,
                    head_metric="best_induction_head", head="1.4")),
    Reference("ov_effective", "OV top-1 accuracy of 1.4 + 1.10", "0.956", "± 0.03",
              _near("ov_circuit", "ov_top1_effective", 0.956, 0.03)),
    Reference("qk_0_7", "Positional QK sub-diagonal of 0.7", "0.998", "± 0.01",
              _near("qk_circuit", "prev_token_positional_subdiagonal", 0.998, 0.01)),
    Reference("ablation_top", "Heads that matter most when ablated", "0.7, 1.4, 1.10",
              "same three heads", _top_ablation({"0.7", "1.4", "1.10"})),
]


def arena_models(run: Run) -> list[str]:
    return [m for m in run.models() if run.role(m) == "arena"]


def evaluate_references(run: Run, model: str) -> list[tuple[Reference, Outcome]]:
    lookup = Lookup(run, model)
    return [(ref, ref.evaluate(lookup)) for ref in ARENA_REFERENCES]
