r"""Every metric of the run as citable numbers: ``numbers.json``, ``numbers.csv``, ``numbers.tex``.

Naming scheme of the TeX macros (TeX control words are letters only):

* the metric name in CamelCase, then the model name in CamelCase:
  ``best_induction_score`` of ``attn2l-s0`` → ``\BestInductionScoreAttnTwoLSZero``;
* every run of digits is spelled out in words (``2`` → ``Two``, ``10`` → ``Ten``, ``128`` →
  ``OneTwoEight``: numbers above 99 digit by digit); every other character separates words;
* where two analyses of one model record a metric of the same name, the analysis name goes in
  front for both (``\OvCircuitTopOneAttnTwoLSZero``), so no name is ambiguous;
* a metric with an interval also gets ``…CiLow`` and ``…CiHigh``.

Only scalar metrics (numbers, and strings such as the head label "1.4") get a macro; lists are in
``numbers.json`` and ``numbers.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from .collect import Run

_WORDS = (
    "Zero One Two Three Four Five Six Seven Eight Nine Ten Eleven Twelve Thirteen Fourteen "
    "Fifteen Sixteen Seventeen Eighteen Nineteen"
).split()
_TENS = "_ _ Twenty Thirty Forty Fifty Sixty Seventy Eighty Ninety".split()


@dataclass
class NumberRow:
    """One metric of one model and analysis, flat."""

    key: str
    model: str
    analysis: str
    metric: str
    value: Any
    ci: list[float] | None
    unit: str | None
    description: str


def flatten(run: Run) -> list[NumberRow]:
    """Every metric of every model and analysis, in reading order (models by role)."""
    rows = []
    for model in run.models():
        for analysis in sorted(run.results[model]):
            for metric, entry in run.results[model][analysis].metrics.items():
                rows.append(
                    NumberRow(
                        key=f"{model}/{analysis}/{metric}",
                        model=model,
                        analysis=analysis,
                        metric=metric,
                        value=entry.get("value"),
                        ci=entry.get("ci"),
                        unit=entry.get("unit"),
                        description=entry.get("description") or "",
                    )
                )
    return rows


# ---------------------------------------------------------------- human-readable formatting


def format_number(x: Any, digits: int = 3) -> str:
    """A number as a reader wants it: 3 significant figures, no exponent in the usual range."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if not isinstance(x, float):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def format_value(value: Any) -> str:
    """A metric value (number, string or list) as text."""
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value) if value else "(none)"
    return format_number(value)


def format_metric(entry: dict[str, Any] | None, with_unit: bool = True) -> str:
    """``0.85 [0.81, 0.88] nats``: value, interval where there is one, unit."""
    if entry is None:
        return "—"
    text = format_value(entry.get("value"))
    ci = entry.get("ci")
    if ci:
        text += f" [{format_number(ci[0])}, {format_number(ci[1])}]"
    if with_unit and entry.get("unit"):
        text += f" {entry['unit']}"
    return text


# ---------------------------------------------------------------- files


def numbers_json(rows: list[NumberRow]) -> str:
    """``{key: {value, ci, unit, description, model, analysis}}``."""
    out = {}
    for row in rows:
        entry = asdict(row)
        del entry["key"], entry["metric"]
        out[row.key] = entry
    return json.dumps(out, indent=2) + "\n"


def numbers_csv(rows: list[NumberRow]) -> str:
    """One row per metric; list values as JSON so the cell round-trips."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["key", "model", "analysis", "metric", "value", "ci_low", "ci_high", "unit", "description"]
    )
    for r in rows:
        value = json.dumps(r.value) if isinstance(r.value, (list, dict)) else r.value
        low, high = (r.ci or [None, None])[:2]
        writer.writerow(
            [r.key, r.model, r.analysis, r.metric, value, low, high, r.unit or "", r.description]
        )
    return buf.getvalue()


# ---------------------------------------------------------------- TeX macros


def spell_digits(digits: str) -> str:
    """``"2"`` → ``Two``, ``"10"`` → ``Ten``, ``"42"`` → ``FortyTwo``, ``"128"`` → ``OneTwoEight``."""
    n = int(digits)
    if len(digits) > 2 or (len(digits) == 2 and digits[0] == "0"):
        return "".join(_WORDS[int(d)] for d in digits)
    if n < 20:
        return _WORDS[n]
    return _TENS[n // 10] + ("" if n % 10 == 0 else _WORDS[n % 10])


def camel(text: str) -> str:
    """Letters-only CamelCase: digits spelled out, everything else separates words."""
    parts = re.findall(r"[A-Za-z]+|\d+", text)
    out = []
    for part in parts:
        if part.isdigit():
            out.append(spell_digits(part))
        else:
            out.append(part[0].upper() + part[1:])
    return "".join(out)


def macro_names(rows: list[NumberRow]) -> dict[str, str]:
    """Macro name (without backslash) for every citable row key; see the module docstring."""
    scalar = [r for r in rows if tex_value(r.value) is not None]
    seen: dict[tuple[str, str], int] = {}
    for r in scalar:
        seen[(r.model, r.metric)] = seen.get((r.model, r.metric), 0) + 1
    names: dict[str, str] = {}
    for r in scalar:
        prefix = camel(r.analysis) if seen[(r.model, r.metric)] > 1 else ""
        names[r.key] = prefix + camel(r.metric) + camel(r.model)
    _check_unique(names)
    return names


def _check_unique(names: dict[str, str]) -> None:
    """Two different metrics must never share a macro (``a_1`` and ``a1`` would)."""
    by_name: dict[str, str] = {}
    for key, name in names.items():
        if name in by_name:
            raise ValueError(f"TeX macro \\{name} would name both {by_name[name]} and {key}")
        by_name[name] = key


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(c, c) for c in text)


def tex_number(x: float | int) -> str:
    """Rounded for prose: 3 significant figures; tiny numbers as ×10^k inside math."""
    if isinstance(x, int):
        return str(x)
    if x != 0 and abs(x) < 1e-3:
        mantissa, exponent = f"{x:.2e}".split("e")
        return rf"\ensuremath{{{mantissa}\times 10^{{{int(exponent)}}}}}"
    if abs(x) >= 1000:
        return f"{x:.0f}"
    return f"{x:.3g}"


def tex_value(value: Any) -> str | None:
    """The macro body for a scalar value; ``None`` for lists, null and non-finite numbers."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return tex_number(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return tex_escape(value)
    return None


def numbers_tex(rows: list[NumberRow]) -> str:
    """One ``\\newcommand`` per scalar metric (plus ``CiLow``/``CiHigh``), with its key as comment."""
    names = macro_names(rows)
    lines = [
        "% Generated by induction_heads.report: every citable number of this run.",
        "% Use: \\input{numbers.tex} in the preamble, then e.g. \\BestInductionScoreAttnTwoLSZero.",
        "% Names: <Metric><Model> in CamelCase, digits spelled out (see src/induction_heads/report/numbers.py).",
    ]
    for row in rows:
        if row.key not in names:
            continue
        name = names[row.key]
        unit = f" ({row.unit})" if row.unit else ""
        lines.append(f"% {row.key}{unit}: {row.description}".replace("\n", " "))
        lines.append(f"\\newcommand{{\\{name}}}{{{tex_value(row.value)}}}")
        if row.ci:
            lines.append(f"\\newcommand{{\\{name}CiLow}}{{{tex_number(float(row.ci[0]))}}}")
            lines.append(f"\\newcommand{{\\{name}CiHigh}}{{{tex_number(float(row.ci[1]))}}}")
    return "\n".join(lines) + "\n"
