"""Load every ``metrics.json`` of a run and know which model plays which role.

A *role* says what a model is for in the story the report tells: ``main`` (the 2-layer model
whose circuit we follow), ``control`` (the 1-layer model that should have no induction heads),
``arena`` (ARENA's published ``attn_only_2L_half``, which has reference numbers), or any other
word (a hub model, a user's own). Roles come from the caller; a model without one is listed last.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The order in which models are shown: the main story first, its control beside it.
ROLE_ORDER = ("main", "control", "arena")
ARENA_MODEL_MARK = "attn_only_2L_half"


def family_of(model: str) -> str:
    """``attn2l-s0`` → ``attn2l``: trained models are named ``<family>-s<seed>``."""
    return re.sub(r"-s\d+$", "", model)


@dataclass
class AnalysisResult:
    """One ``results/<model>/<analysis>/metrics.json`` and the folder its figures live in."""

    model: str
    analysis: str
    data: dict[str, Any]
    folder: Path

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        return self.data.get("metrics") or {}

    @property
    def figures(self) -> dict[str, dict[str, str]]:
        return self.data.get("figures") or {}

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        return self.data.get("tables") or {}

    @property
    def text(self) -> dict[str, str]:
        return self.data.get("text") or {}

    @property
    def not_applicable(self) -> str | None:
        """Why the analysis does not apply to this model (``None``: it ran); see
        ``induction_heads.applicability``."""
        return self.data.get("not_applicable")


@dataclass
class Run:
    """Every analysis result of the run, indexed model → analysis, plus the role mapping."""

    results: dict[str, dict[str, AnalysisResult]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    def role(self, model: str) -> str | None:
        """The given role; else the role of the family's seeds (``attn2l`` for ``attn2l-s0``,
        whose training-dynamics results are per family); else "arena" by name."""
        if model in self.roles:
            return self.roles[model]
        family_roles = {r for m, r in self.roles.items() if family_of(m) == model and m != model}
        if len(family_roles) == 1:
            return family_roles.pop()
        return "arena" if ARENA_MODEL_MARK in model else None

    def models(self) -> list[str]:
        """Models in reading order: main, control, arena, other roles, then models with none."""

        def rank(model: str) -> tuple[int, str, str]:
            role = self.role(model)
            if role in ROLE_ORDER:
                return (ROLE_ORDER.index(role), "", model)
            return (len(ROLE_ORDER) + (role is None), role or "", model)

        return sorted(self.results, key=rank)

    def models_with_role(self, role: str) -> list[str]:
        return [m for m in self.models() if self.role(m) == role]

    def get(self, model: str | None, analysis: str) -> AnalysisResult | None:
        if model is None:
            return None
        return self.results.get(model, {}).get(analysis)

    def analyses(self) -> list[str]:
        return sorted({a for per_model in self.results.values() for a in per_model})

    def label(self, model: str) -> str:
        """``attn2l-s0 (main)``: the name with its role, as headers show it."""
        role = self.role(model)
        return f"{model} ({role})" if role else model


def load_result(path: str | Path) -> AnalysisResult:
    """Read one ``metrics.json``; a file without ``model``/``analysis`` is refused by name."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"metrics file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"metrics file {path} is not valid JSON: {err}") from None
    missing = [k for k in ("model", "analysis") if not data.get(k)]
    if missing:
        raise ValueError(f"metrics file {path} lacks the key(s) {missing} (see metrics.py)")
    return AnalysisResult(data["model"], data["analysis"], data, path.parent)


def load_run(metrics_paths: list[str | Path], roles: dict[str, str] | None = None) -> Run:
    """Load every metrics file; two files for the same model and analysis are an error."""
    run = Run(roles=dict(roles or {}))
    for path in metrics_paths:
        result = load_result(path)
        per_model = run.results.setdefault(result.model, {})
        if result.analysis in per_model:
            raise ValueError(
                f"two metrics files for {result.model}/{result.analysis}: "
                f"{per_model[result.analysis].folder} and {result.folder}"
            )
        per_model[result.analysis] = result
    return run
