"""Assemble the whole report: HTML, PDF, numbers, figures — from a list of metrics files.

Command line: ``scripts/build_report.py`` (see its ``--help``). From Python::

    build_report(["results/attn2l-s0/head_scores/metrics.json", ...], "results/report",
                 roles={"attn2l-s0": "main", "attn1l-s0": "control"})
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from ..metrics import atomic_write_text
from . import figures as figs
from . import numbers, provenance, scorecard
from .collect import Run, load_run
from .sections import (Counter, FigureBlock, Panel, SectionBuilder, figure_markup, files_pattern,
                       natural_width_pt, panel_widths)

REPO_ROOT = Path(__file__).resolve().parents[3]
SOURCES_DIR = REPO_ROOT / "report"  # template.html.j2, style.css, captions.yaml


@dataclass
class ReportOutputs:
    html: Path
    pdf: Path | None
    pdf_pages: int
    numbers_json: Path
    numbers_csv: Path
    numbers_tex: Path
    figures_dir: Path
    warnings: list[str] = field(default_factory=list)


def report_date() -> str:
    """Today (UTC), or ``SOURCE_DATE_EPOCH`` for a byte-identical rebuild."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch
            else dt.datetime.now(dt.timezone.utc))
    return when.strftime("%Y-%m-%d")


def load_corpus_info(path: str | Path | None) -> list[dict[str, Any]]:
    """The corpus sources as a list of dicts (title, license, …) from the data rule's JSON,
    which may be a list, ``{"sources": [...]}``, or one flat dict."""
    if not path:
        return []
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict) and isinstance(data.get("sources"), list):
        data = data["sources"]
    if isinstance(data, dict):
        data = [data]
    return [{k: v for k, v in d.items() if not isinstance(v, (dict, list))} for d in data]


def run_summary(run: Run) -> list[dict[str, Any]]:
    """One line per model: role, analyses run, weight checksum (shortened)."""
    out = []
    for model in run.models():
        shas = {r.data.get("weights_sha256") for r in run.results[model].values()} - {None}
        out.append({"model": model, "role": run.role(model) or "—",
                    "analyses": ", ".join(sorted(run.results[model])),
                    "sha": (sorted(shas)[0][:12] + "…") if shas else "—"})
    return out


def headline_figure(run: Run, captions: dict[str, Any], exported: list[figs.FigureFile],
                    counter: Counter) -> FigureBlock | None:
    """The main model's key figure for the first page (first glob that matches wins)."""
    spec = captions.get("headline_figure") or {}
    if not spec:
        return None
    # The first main model that ran the analysis (a trained family's own folder may only hold
    # its training dynamics), else any model that did.
    models = run.models_with_role("main") + run.models()
    having = [m for m in models if any(f.model == m and f.analysis == spec["analysis"] for f in exported)]
    if not having:
        return None
    candidates = [f for f in exported if f.model == having[0] and f.analysis == spec["analysis"]]
    for glob in spec.get("match", ["*"]):
        for fig in candidates:
            if fnmatch.fnmatch(fig.name, glob):
                number = counter.next_figure()
                width = panel_widths([natural_width_pt(fig)])[0]
                panel = Panel(run.label(fig.model), figure_markup(fig, f"h{number}"), None, width)
                return FigureBlock(number, fig.caption, [panel], files_pattern([fig]))
    return None


def attention_views(run: Run, figures_dir: Path) -> list[dict[str, Any]]:
    """For each model with an ``attention_example.json``: its data (for the interactive view)
    and its static heatmaps (for the PDF), in model order."""
    views = []
    for model in run.models():
        result = run.get(model, "head_scores")
        example = figs.load_attention_example(result)
        if example is None:
            continue
        key = [h for h in figs.key_heads(result) if h in example["heads"]]
        # the key heads first, so the viewer opens on one of them
        example["heads"] = {h: example["heads"][h] for h in key + [
            h for h in example["heads"] if h not in key]}
        static = figs.save_attention_figure(example, model, figures_dir, key)
        views.append({"model": model, "label": run.label(model), "data": example,
                      "static": figure_markup(static, f"att-{len(views)}"),
                      "width": min(65.0, panel_widths([natural_width_pt(static)])[0]),
                      "caption": static.caption})
    return views


def viewer_json(views: list[dict[str, Any]]) -> str:
    """The viewer's data as JSON safe to put inside a <script> element."""
    data = [{"label": v["label"], **v["data"]} for v in views]
    # "<" as \u003c: valid JSON, and no "</script>" or "<!--" can end the element early
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


def render_html(context: dict[str, Any], sources: Path) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(sources)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals["zip"] = zip
    context = {**context, "css": (sources / "style.css").read_text()}
    return env.get_template("template.html.j2").render(**context)


def offline_fetcher():
    """A WeasyPrint fetcher that reads data: URIs only and stops the build on anything else:
    the report must never fetch (or silently lose) an external resource."""
    from weasyprint.urls import FatalURLFetchingError, URLFetcher

    class OfflineFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            if not url.startswith("data:"):
                raise FatalURLFetchingError(f"report refers to external resource {url[:100]!r}")
            return super().fetch(url, headers)

    return OfflineFetcher(allowed_protocols=("data",))


def write_pdf(html: str, path: Path) -> int:
    """Render the HTML (print media) with WeasyPrint; returns the number of pages."""
    import weasyprint

    document = weasyprint.HTML(string=html, url_fetcher=offline_fetcher()).render()
    tmp = path.with_name(f".{path.name}.tmp")
    document.write_pdf(tmp)
    os.replace(tmp, path)  # atomic: a half-written PDF is never taken for the report
    return len(document.pages)


def build_report(
    metrics_paths: list[str | Path],
    out_dir: str | Path,
    *,
    roles: dict[str, str] | None = None,
    config_path: str | Path | None = None,
    benchmark_paths: list[str | Path] = (),
    corpus_info: str | Path | None = None,
    sources: str | Path = SOURCES_DIR,
    pdf: bool = True,
) -> ReportOutputs:
    """Write ``report.html``, ``report.pdf``, ``numbers.{json,csv,tex}`` and ``figures/``."""
    out_dir, sources = Path(out_dir), Path(sources)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = load_run(list(metrics_paths), roles)
    captions = yaml.safe_load((sources / "captions.yaml").read_text()) or {}
    figures_dir = out_dir / "figures"
    exported, warnings = figs.export_figures(run, figures_dir)

    rows = numbers.flatten(run)
    paths = {name: out_dir / name for name in ("numbers.json", "numbers.csv", "numbers.tex")}
    atomic_write_text(paths["numbers.json"], numbers.numbers_json(rows))
    atomic_write_text(paths["numbers.csv"], numbers.numbers_csv(rows))
    atomic_write_text(paths["numbers.tex"], numbers.numbers_tex(rows))

    counter = Counter()
    arena = scorecard.arena_models(run)
    prov = provenance.collect(run, config_path, list(benchmark_paths), REPO_ROOT)
    warnings += [f"benchmark file {p} is missing: its job's time is not in the table"
                 for p in prov.missing_benchmarks]
    context = {
        "title": captions.get("title", "Induction heads"),
        "subtitle": captions.get("subtitle", ""),
        "abstract": captions.get("abstract", ""),
        "scorecard_intro": captions.get("scorecard_intro", ""),
        "date": report_date(),
        "summary": run_summary(run),
        "corpus": load_corpus_info(corpus_info),
        "headline": headline_figure(run, captions, exported, counter),
        "scorecard": scorecard.evaluate(run),
        "scorecard_others": scorecard.evaluate_others(run),
        "references": [(m, scorecard.evaluate_references(run, m)) for m in arena],
        "prov": prov,
        "n_metrics": len(rows),
        "n_figures": len(exported),
        "warnings": warnings,
    }
    builder = SectionBuilder(run, captions, exported, counter)
    context["sections"] = builder.build()
    context["appendix"] = builder.appendix(context["sections"])  # numbered after the main text
    views = attention_views(run, figures_dir)
    context["views"], context["viewer_json"] = views, viewer_json(views)

    html = render_html(context, sources)
    html_path = out_dir / "report.html"
    atomic_write_text(html_path, html)
    pdf_path, pages = out_dir / "report.pdf", 0
    if pdf:
        pages = write_pdf(html, pdf_path)
    return ReportOutputs(html_path, pdf_path if pdf else None, pages, paths["numbers.json"],
                         paths["numbers.csv"], paths["numbers.tex"], figures_dir, warnings)
