"""What each section of the report shows: the analyses' metrics, sentences, figures and tables,
grouped by ``report/captions.yaml`` and laid out so each model's result sits beside the others'."""

from __future__ import annotations

import base64
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from ..naming import FIGURE_FORMATS, report_figure_stem
from .collect import Run
from .figures import FigureFile, inline_svg
from .numbers import format_metric, format_value

KINDS = ("metrics", "figures", "tables", "text")


@dataclass
class Counter:
    """Figure and table numbers, in reading order."""

    figure: int = 0
    table: int = 0

    def next_figure(self) -> int:
        self.figure += 1
        return self.figure

    def next_table(self) -> int:
        self.table += 1
        return self.table


TEXT_WIDTH_PT = 490  # A4 minus the margins; figures are never drawn larger than natural size


@dataclass
class Panel:
    label: str
    markup: str  # inline SVG, or an <img> with a data: URI
    caption: str | None  # set only when it differs from the figure's caption
    width: float = 100.0  # percent of the text width


def panel_widths(natural_pt: list[float]) -> list[float]:
    """Widths (percent) of panels laid side by side: an equal share of the line (two per line
    from four panels up), and no panel wider than its natural size.

    Inline-blocks with explicit widths, because WeasyPrint sizes SVG in flex boxes by its
    unscaled height."""
    n = len(natural_pt)
    share = 98.0 if n == 1 else (31.0 if n == 3 else 47.5)
    return [round(min(share, 100 * w / TEXT_WIDTH_PT), 1) for w in natural_pt]


@dataclass
class FigureBlock:
    number: int
    caption: str
    panels: list[Panel]
    files: str  # where the standalone files are, for the reader who wants them


@dataclass
class TableBlock:
    number: int
    caption: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class MetricRow:
    name: str
    description: str
    cells: list[str]


@dataclass
class MetricTable:
    """Metrics as rows, one column per model (the control beside the main model)."""

    number: int
    models: list[str]
    rows: list[MetricRow]


@dataclass
class AppendixBlock:
    """Everything of one analysis in one section that the main text leaves out: the complete
    list of its metrics, its other figures and its data tables."""

    id: str
    label: str  # "A.3"
    title: str
    metrics: MetricTable | None = None
    figures: list[FigureBlock] = field(default_factory=list)
    tables: list[TableBlock] = field(default_factory=list)


@dataclass
class AnalysisBlock:
    """One analysis in the main text: its figure, one table of its key metrics, its sentences;
    the rest is in its appendix block."""

    analysis: str
    title: str
    not_applicable: list[str] = field(default_factory=list)  # "not applicable to <model>: <reason>"
    sentences: list[tuple[str, str]] = field(default_factory=list)
    figures: list[FigureBlock] = field(default_factory=list)
    metrics: MetricTable | None = None
    appendix: AppendixBlock | None = None
    # what the section claimed but the main text does not show (filled into `appendix` later)
    models: list[str] = field(default_factory=list)
    all_metrics: list[str] = field(default_factory=list)
    other_figures: list[str] = field(default_factory=list)
    table_names: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.not_applicable or self.sentences or self.all_metrics or self.figures or self.other_figures
                    or self.table_names)


@dataclass
class Section:
    id: str
    title: str
    intro: str
    blocks: list[AnalysisBlock]
    interactive: bool = False


def names_of(run: Run, analysis: str, kind: str) -> list[str]:
    """Names of one kind (metrics, figures, …) of an analysis, over all models, in first-seen
    order (the order the notebook recorded them in)."""
    seen: dict[str, None] = {}
    for model in run.models():
        result = run.get(model, analysis)
        if result is not None:
            seen.update(dict.fromkeys(result.data.get(kind) or {}))
    return list(seen)


def claim(names: list[str], match: list[str] | None, taken: set[str], reserved: list[str] = ()) -> list[str]:
    """The names this section shows: those matching a glob that no earlier section took; with
    ``match`` None, every name no section's glob (``reserved``) claims, so a catch-all section
    may come before a section that names what it shows. Marks them taken."""
    def wanted(n: str) -> bool:
        if match is None:
            return not any(fnmatch.fnmatch(n, g) for g in reserved)
        return any(fnmatch.fnmatch(n, g) for g in match)

    out = [n for n in names if n not in taken and wanted(n)]
    taken.update(out)
    return out


def natural_width_pt(fig: FigureFile) -> float:
    """The width the figure was drawn at (points): from the SVG, else the 150-dpi PNG."""
    if "svg" in fig.files:
        head = fig.files["svg"].read_text()[:4000]
        match = re.search(r'<svg[^>]*\swidth="([\d.]+)(pt|px)?"', head)
        if match:
            return float(match.group(1)) * (0.75 if match.group(2) == "px" else 1.0)
    if "png" in fig.files:
        data = fig.files["png"].read_bytes()[16:24]  # IHDR width, height
        return int.from_bytes(data[:4], "big") / 150 * 72
    return TEXT_WIDTH_PT


def figure_markup(fig: FigureFile, prefix: str) -> str:
    if "svg" in fig.files:
        return inline_svg(fig.files["svg"], prefix)
    if "png" in fig.files:
        data = base64.b64encode(fig.files["png"].read_bytes()).decode()
        return f'<img alt="{fig.name}" src="data:image/png;base64,{data}">'
    return '<p class="missing">(figure file missing)</p>'


def files_pattern(figs: list[FigureFile]) -> str:
    """Where the standalone files are: ``figures/<model>__<analysis>__<name>.{svg,png,pdf}``,
    with ``*`` for the model when there are several."""
    if not figs:
        return ""
    model = figs[0].model if len(figs) == 1 else "*"
    exts = ",".join(ext for ext in FIGURE_FORMATS if ext in figs[0].files)
    return f"figures/{report_figure_stem(model, figs[0].analysis, figs[0].name)}.{{{exts}}}"


MAIN_METRICS = 8  # rows of a block's main table when the captions name none


def main_names(names: list[str], globs: list[str] | None, default: int) -> list[str]:
    """The names the main text shows: those matching ``globs`` (in the globs' order); the first
    ``default`` when no glob is given or none matches (a renamed metric must not empty the
    main text)."""
    out: list[str] = []
    for glob in globs or []:
        out += [n for n in names if fnmatch.fnmatch(n, glob) and n not in out]
    return out or names[:default]


class SectionBuilder:
    """Builds the sections in order, numbering figures and tables as they are read: the main
    text first (each analysis: its figure, then one table of key metrics), then the appendix
    with everything else of each analysis."""

    def __init__(self, run: Run, captions: dict[str, Any], figures: list[FigureFile],
                 counter: Counter):
        self.run, self.captions, self.counter = run, captions, counter
        self.figures = {(f.model, f.analysis, f.name): f for f in figures}
        self.taken: dict[tuple[str, str], set[str]] = {}

    def title_of(self, analysis: str) -> str:
        titles = self.captions.get("analysis_titles") or {}
        return titles.get(analysis, analysis.replace("_", " ").capitalize())

    def build(self) -> list[Section]:
        specs = list(self.captions.get("sections") or [])
        listed = {a for s in specs for a in s["analyses"]}
        for analysis in self.run.analyses():
            if analysis not in listed:  # an analysis the captions don't know yet still shows
                specs.append({"id": analysis, "title": self.title_of(analysis),
                              "analyses": [analysis], "intro": ""})
        sections = [self.section(spec) for spec in specs]
        return [s for s in sections if s.blocks or s.interactive]

    def section(self, spec: dict[str, Any]) -> Section:
        blocks = [self.block(a, spec) for a in spec["analyses"]]
        blocks = [b for b in blocks if not b.empty()]
        has_viewer = bool(spec.get("interactive")) and any(
            self.run.get(m, spec["analyses"][0]) for m in self.run.models())
        return Section(spec["id"], spec["title"], (spec.get("intro") or "").strip(), blocks,
                       interactive=has_viewer)

    def block(self, analysis: str, spec: dict[str, Any]) -> AnalysisBlock:
        def pick(kind: str) -> list[str]:
            taken = self.taken.setdefault((analysis, kind), set())
            reserved = [g for other in self.captions.get("sections") or [] if analysis in other["analyses"]
                        for g in other.get("match") or []]  # fmt: skip
            return claim(names_of(self.run, analysis, kind), spec.get("match"), taken, reserved)

        main = (spec.get("main") or {}).get(analysis) or {}  # {figures: [globs], metrics: [globs]}
        block = AnalysisBlock(analysis, self.title_of(analysis))
        results = {m: r for m in self.run.models() if (r := self.run.get(m, analysis))}
        # a model the analysis does not apply to gets one line with the reason, and no column
        block.not_applicable = [f"not applicable to {m}: {r.not_applicable}"
                                for m, r in results.items() if r.not_applicable]
        block.models = [m for m, r in results.items() if not r.not_applicable]
        block.sentences = self.sentences(analysis, block.models, pick("text"))
        figures = pick("figures")
        shown = main_names(figures, main.get("figures"), 1)
        block.figures = [self.figure(analysis, block.models, n) for n in shown]
        block.other_figures = [n for n in figures if n not in shown]
        block.all_metrics = pick("metrics")
        block.metrics = self.metric_table(analysis, block.models,
                                          main_names(block.all_metrics, main.get("metrics"), MAIN_METRICS))
        block.table_names = pick("tables")
        return block

    def appendix(self, sections: list[Section]) -> list[AppendixBlock]:
        """One appendix block per analysis block that has more than the main text shows."""
        out = []
        for section in sections:
            for block in section.blocks:
                shown = {r.name for r in block.metrics.rows} if block.metrics else set()
                if not (set(block.all_metrics) - shown or block.other_figures or block.table_names):
                    continue
                label = f"A.{len(out) + 1}"
                title = section.title if len(section.blocks) == 1 else f"{section.title}: {block.title}"
                app = AppendixBlock(f"appendix-{section.id}-{block.analysis}", label, title)
                app.metrics = self.metric_table(block.analysis, block.models, block.all_metrics)
                app.figures = [self.figure(block.analysis, block.models, n) for n in block.other_figures]
                app.tables = [t for n in block.table_names
                              for t in self.tables(block.analysis, block.models, n)]
                block.appendix = app
                out.append(app)
        return out

    def sentences(self, analysis: str, models: list[str], names: list[str]):
        out = []
        for name in names:
            for model in models:
                sentence = self.run.get(model, analysis).text.get(name)
                if sentence:
                    out.append((self.run.label(model), sentence))
        return out

    def metric_table(self, analysis: str, models: list[str], names: list[str]) -> MetricTable | None:
        """One row per metric, one column per model: the control beside the main model."""
        if not names:
            return None
        rows = []
        for name in names:
            entries = [self.run.get(m, analysis).metrics.get(name) for m in models]
            description = next((e.get("description", "") for e in entries if e), "")
            rows.append(MetricRow(name, description, [format_metric(e) for e in entries]))
        return MetricTable(self.counter.next_table(), [self.run.label(m) for m in models], rows)

    def figure(self, analysis: str, models: list[str], name: str) -> FigureBlock:
        """One numbered figure; a panel per model that drew it, side by side."""
        number = self.counter.next_figure()
        extra = (self.captions.get("figure_captions") or {}).get(f"{analysis}/{name}", "")
        figs = [self.figures[(m, analysis, name)] for m in models
                if (m, analysis, name) in self.figures]
        caption = next((f.caption for f in figs if f.caption), "")
        caption = " ".join(c for c in (caption, extra) if c) or name.replace("_", " ")
        widths = panel_widths([natural_width_pt(f) for f in figs])
        panels = [
            Panel(self.run.label(f.model), figure_markup(f, f"f{number}-{i}"),
                  f.caption if f.caption and f.caption != figs[0].caption else None, width)
            for i, (f, width) in enumerate(zip(figs, widths))
        ]
        return FigureBlock(number, caption, panels, files_pattern(figs))

    def tables(self, analysis: str, models: list[str], name: str) -> list[TableBlock]:
        out = []
        for model in models:
            table = self.run.get(model, analysis).tables.get(name)
            if not table:
                continue
            rows = [[format_value(c) for c in row] for row in table.get("rows", [])]
            caption = f"{table.get('caption', name)} — {self.run.label(model)}"
            out.append(TableBlock(self.counter.next_table(), caption,
                                  [str(c) for c in table.get("columns", [])], rows))
        return out
