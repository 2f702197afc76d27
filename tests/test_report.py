"""The report, built from synthetic metrics.json files (tests/report_synthetic.py): the PDF's
pages, the HTML's self-containedness, the TeX macros, the sections, provenance and the CLI.
The scorecard's criteria are tested in test_report_scorecard.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from induction_heads.report import build_report
from induction_heads.report import numbers as N
from induction_heads.report import provenance as P
from induction_heads.report.collect import load_run

from .report_synthetic import ROLES, SHA, make_run, mark_not_applicable

SMALL = ("head_scores", "ablation", "ov_circuit")  # enough for every kind of content, quick


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One full build (PDF included) shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp("report")
    paths = make_run(root / "results", analyses=SMALL)
    bench = root / "results" / "benchmarks" / "attn2l-s0" / "head_scores.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\tmax_vms\n12.5\t0:00:12\t512.3\t900\n")
    corpus = root / "corpus.json"
    corpus.write_text(json.dumps({"sources": [{"title": "Austen", "license": "public domain"}]}))
    config = root / "config.yaml"
    config.write_text("seed: 0\nmodels: [attn2l-s0]\n")
    out = build_report(paths, root / "out", roles=ROLES, config_path=config,
                       benchmark_paths=[bench], corpus_info=corpus)
    return out


# ---------------------------------------------------------------- PDF


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) missing")
def test_pdf_pages_render_and_first_page_shows_title_and_figure(report, tmp_path):
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "40", "-png", str(report.pdf), str(tmp_path / "p")],
                   check=True, timeout=120)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == report.pdf_pages >= 3  # title, sections, provenance appendix
    first = np.asarray(Image.open(pages[0]).convert("RGB")).astype(int)
    ink = (first.sum(axis=2) < 600).mean()
    assert ink > 0.01, "first page is blank"
    # The headline heatmap is drawn in pure magenta by the synthetic run: it must be on page 1.
    r, g, b = first[..., 0], first[..., 1], first[..., 2]
    magenta = (r > 220) & (g < 60) & (b > 220)
    assert magenta.sum() > 200, "headline figure is not on the first page"


# ---------------------------------------------------------------- HTML: offline


class _Refs(HTMLParser):
    """Every URL a browser could fetch: src/href/… attributes and CSS url()/@import."""

    URL_ATTRS = {"src", "href", "xlink:href", "srcset", "poster", "data", "action", "background",
                 "formaction", "manifest", "ping"}

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name == "srcset":  # "url 1x, url 2x"
                self.refs.extend(v.strip().split()[0] for v in value.split(",") if v.strip())
            elif name in self.URL_ATTRS:
                self.refs.append(value.strip())
            if name == "style":
                self.refs.extend(css_urls(value))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.refs.extend(css_urls(data))


def css_urls(css: str) -> list[str]:
    found = re.findall(r"url\(\s*['\"]?([^'\")]+)", css)
    return found + re.findall(r"@import\s+['\"]([^'\"]+)", css)


def external_refs(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    return [u for u in parser.refs if not (u.startswith("data:") or u.startswith("#"))]


def test_external_ref_checker_catches_what_a_browser_would_fetch():
    bad = ('<img src="https://x/a.png"><link href="//cdn/x.css"><div style="background:'
           'url(http://x/b.png)"></div><style>@import "https://f/x.css";</style>')
    assert len(external_refs(bad)) == 4
    good = '<svg xmlns="http://www.w3.org/2000/svg"><image xlink:href="data:image/png;base64,AA"/></svg>'
    assert external_refs(good) == []


def test_html_is_self_contained(report):
    html = report.html.read_text()
    assert external_refs(html) == []
    assert "<script src" not in html and "<link" not in html
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html  # SVG prologues stripped
    assert html.count("<svg") >= 5  # figures inline
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "two inline figures share an element id"


def test_html_sections_in_story_order_and_missing_ones_absent(report):
    html = report.html.read_text()
    order = [html.index(f'id="{s}"') for s in
             ("scorecard", "behaviour", "attention", "ablation", "mechanism", "provenance")]
    assert order == sorted(order)
    for absent in ("logit_attribution", "composition_scores", "fuzzy_induction",
                   "training_dynamics"):
        assert f'<section id="{absent}"' not in html
    assert 'id="attention-viewer"' in html  # the interactive view, data from the example
    assert "Austen" in html and "public domain" in html  # corpus source and license
    assert "attn1l-s0 (control)" in html  # the control beside the main model


def test_without_attention_example_the_viewer_is_left_out(tmp_path):
    paths = make_run(tmp_path / "r", analyses=("head_scores",), attention_example=False)
    out = build_report(paths, tmp_path / "out", roles=ROLES, pdf=False)
    html = out.html.read_text()
    assert "attention-viewer" not in html and 'id="attention"' in html
    assert 'id="ablation"' not in html and 'id="mechanism"' not in html


def test_the_olsson_section_shows_its_figure_then_its_key_metrics(tmp_path):
    paths = make_run(tmp_path / "r", analyses=("head_scores", "path_patching"), control=False)
    html = build_report(paths, tmp_path / "out", roles=ROLES, pdf=False).html.read_text()
    section = html[html.index('<section id="olsson_path_patching"'):]
    section = section[: section.index("</section>")]
    assert "The key path carries the effect." in section and "key_path_loss_share" in section
    assert section.index("<figure") < section.index('class="metrics"') < section.index('class="sentences"')


def test_bad_attention_example_is_refused_by_name(tmp_path):
    paths = make_run(tmp_path / "r", analyses=("head_scores",), control=False)
    example = tmp_path / "r" / "attn2l-s0" / "head_scores" / "attention_example.json"
    example.write_text(json.dumps({"tokens": ["a", "b"], "heads": {"0.0": [[1.0]]}}))
    with pytest.raises(ValueError, match="attention_example.json"):
        build_report(paths, tmp_path / "out", pdf=False)


# ---------------------------------------------------------------- numbers and figures


def test_numbers_json_csv_have_every_metric(report):
    data = json.loads(report.numbers_json.read_text())
    key = "attn2l-s0/head_scores/best_induction_score"
    assert data[key]["value"] == 0.85 and data[key]["ci"] == [0.83, 0.87]
    assert data[key]["model"] == "attn2l-s0" and data[key]["analysis"] == "head_scores"
    csv_rows = report.numbers_csv.read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(data)


def test_numbers_tex_defines_valid_unique_macros(report):
    lines = [ln for ln in report.numbers_tex.read_text().splitlines()
             if ln and not ln.startswith("%")]
    pattern = re.compile(r"^\\newcommand\{\\([A-Za-z]+)\}\{([^{}]*|\\ensuremath\{.*\})\}$")
    names = []
    for line in lines:
        match = pattern.match(line)
        assert match, f"not a valid macro definition: {line}"
        names.append(match.group(1))
    assert len(names) == len(set(names))
    defs = dict(pattern.match(ln).groups() for ln in lines)
    assert defs["BestInductionScoreAttnTwoLSZero"] == "0.85"
    assert defs["BestInductionScoreAttnTwoLSZeroCiLow"] == "0.83"
    assert defs["BestInductionHeadAttnOneLSZero"] == "0.1"  # a head label is citable too


def test_macro_naming_scheme():
    assert N.camel("attn2l-s0") == "AttnTwoLSZero"
    assert N.camel("ov_top1_effective") == "OvTopOneEffective"
    assert N.camel("attn_only_2L_half") == "AttnOnlyTwoLHalf"
    assert N.spell_digits("10") == "Ten" and N.spell_digits("42") == "FortyTwo"
    assert N.spell_digits("128") == "OneTwoEight"
    row = lambda analysis, metric: N.NumberRow(f"m/{analysis}/{metric}", "m", analysis, metric,
                                               0.5, None, None, "")  # noqa: E731
    names = N.macro_names([row("ov_circuit", "top1"), row("k_composition", "top1")])
    assert set(names.values()) == {"OvCircuitTopOneM", "KCompositionTopOneM"}  # disambiguated
    with pytest.raises(ValueError, match="would name both"):
        N.macro_names([row("a", "x_1"), row("a", "x1")])


def test_number_formatting():
    assert N.format_metric({"value": 0.8512, "ci": [0.81, 0.88], "unit": "nats"}) == \
        "0.851 [0.81, 0.88] nats"
    assert N.tex_number(0.000012) == r"\ensuremath{1.20\times 10^{-5}}"
    assert N.tex_value([1, 2]) is None and N.tex_value("1_2") == r"1\_2"


def test_figures_folder_has_every_figure_in_three_formats(report):
    for stem in ("attn2l-s0__head_scores__induction_scores", "attn1l-s0__head_scores__loss_per_position",
                 "attn2l-s0__ablation__ablation_curve", "attn2l-s0__head_scores__attention_example"):
        for ext in ("svg", "png", "pdf"):
            assert (report.figures_dir / f"{stem}.{ext}").stat().st_size > 0


# ---------------------------------------------------------------- provenance


def test_provenance_reads_benchmarks_config_hash_and_weights(report):
    html = report.html.read_text()
    assert "attn2l-s0/head_scores" in html and "12.5" in html  # rule wall time
    assert P.sha256_text("seed: 0\nmodels: [attn2l-s0]\n") in html
    assert SHA in html


def test_weight_checksum_mismatch_is_flagged(tmp_path):
    paths = make_run(tmp_path, analyses=("head_scores", "ablation"), control=False)
    data = json.loads(paths[1].read_text())
    data["weights_sha256"] = "cd" * 32
    paths[1].write_text(json.dumps(data))
    _, weights = P.seeds_and_weights(load_run(paths))
    assert weights[0][1].startswith("MISMATCH")


def test_benchmark_without_seconds_column_is_refused(tmp_path):
    bad = tmp_path / "b.tsv"
    bad.write_text("x\ty\n1\t2\n")
    with pytest.raises(ValueError, match="'s' column"):
        P.read_benchmark(bad, "b")


def test_git_state_outside_a_repository(tmp_path):
    assert P.git_state(tmp_path) == (None, None)


def test_duplicate_metrics_files_are_refused(tmp_path):
    paths = make_run(tmp_path, analyses=("ov_circuit",), control=False)
    with pytest.raises(ValueError, match="two metrics files for attn2l-s0/ov_circuit"):
        load_run(paths + paths)


# ---------------------------------------------------------------- CLI and browser


def test_cli_builds_html_and_rejects_bad_roles(tmp_path, capsys):
    import importlib.util

    script = Path(__file__).parents[1] / "scripts" / "build_report.py"
    spec = importlib.util.spec_from_file_location("build_report_cli", script)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    paths = make_run(tmp_path / "r", analyses=("ov_circuit",), control=False)
    assert cli.main(["--metrics", *map(str, paths), "--out-dir", str(tmp_path / "o"),
                     "--roles", '{"attn2l-s0": "main"}', "--no-pdf"]) == 0
    assert (tmp_path / "o" / "report.html").exists() and (tmp_path / "o" / "numbers.tex").exists()
    with pytest.raises(SystemExit):
        cli.main(["--metrics", str(paths[0]), "--out-dir", str(tmp_path / "o"), "--roles", "{x"])
    assert "--roles is not JSON" in capsys.readouterr().err


CHROMIUM_NAMES = ("chromium", "chromium-browser", "chromium-headless-shell")
CHROMIUM = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on this machine")
def test_html_renders_offline_in_headless_chromium(report, tmp_path):
    """With every host unresolvable, the page still renders and the viewer's script runs."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000",
         "--dump-dom", report.html.as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = result.stdout
    assert "Replication scorecard" in dom
    # The script filled the head menu (one option per head) and the token strip.
    assert re.search(r'<option value="0">attn2l-s0 \(main\) — head 0\.3</option>', dom)
    assert dom.count('title="position ') == 7


def test_time_summary_gives_the_training_share():
    prov = P.Provenance(benchmarks=[
        P.Benchmark("models/attn2l-s0/train", 300.0, "0:05:00", None),
        P.Benchmark("models/attn1l-s0/train", 100.0, "0:01:40", None),
        P.Benchmark("attn2l-s0/head_scores", 100.0, "0:01:40", None),
        P.Benchmark("models/attn2l-s0/evaluate_checkpoints", 0.0, "0:00:00", None),
    ])  # fmt: skip
    assert prov.time_summary == {"total_s": 500.0, "training_s": 400.0, "training_share": 0.8}
    assert P.Provenance().time_summary is None


def test_atomic_writes_leave_an_ordinary_file_mode(tmp_path):
    """mkstemp's owner-only mode must not leak into the outputs (report.html, numbers.json…)."""
    import os

    from induction_heads.metrics import atomic_write_text

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out" / "numbers.json", "{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "out" / "numbers.json").read_text() == "{}"
    assert (tmp_path / "out" / "numbers.json").stat().st_mode & 0o777 == 0o644
    assert list((tmp_path / "out").iterdir()) == [tmp_path / "out" / "numbers.json"]  # no temp left


# ---------------------------------------------------------------- layout: figure, one table, appendix


def main_blocks(html: str) -> dict[str, str]:
    """The HTML of every analysis block of the main text (before the appendix), by id."""
    main = html[:html.index('<section id="appendix"')]
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div class="block" id="([^"]+)">', main)]
    ends = [s for s, _ in starts[1:]] + [len(main)]
    return {block_id: main[s:e] for (s, block_id), e in zip(starts, ends)}


def test_each_analysis_reads_figure_first_then_one_table(report):
    blocks = main_blocks(report.html.read_text())
    analyses = {b: html for b, html in blocks.items() if b != "attention-example" and "<table" in html}
    assert {"behaviour-head_scores", "attention-head_scores", "ablation-ablation",
            "mechanism-ov_circuit"} <= set(analyses)
    for block_id, html in analyses.items():
        assert html.count("<table") == 1, f"{block_id}: more than one table in the main text"
        assert "<figure" in html and html.index("<figure") < html.index("<table"), block_id
    # the ablation's data table is not in the main text but in its appendix block
    assert "zero-ablated" not in blocks["ablation-ablation"]
    appendix = report.html.read_text().split('<section id="appendix"', 1)[1]
    assert "zero-ablated" in appendix


def test_long_metric_lists_go_to_the_appendix(tmp_path):
    """An analysis with many metrics shows its first (or its captions' chosen) few in the main
    text and every one in the appendix, with its further figures and tables."""
    from induction_heads.metrics import Metrics

    from .report_synthetic import _line

    paths = make_run(tmp_path / "r", analyses=("head_scores",), control=False)
    m = Metrics("long_analysis", "attn2l-s0", tmp_path / "r" / "attn2l-s0" / "long_analysis")
    for i in range(20):
        m.add(f"metric_{i:02d}", float(i), f"metric number {i}")
    _line(m, "first_curve", "The first figure.")
    _line(m, "second_curve", "The second figure.")
    m.table("rows", ["a", "b"], [[1, 2]], "A data table.")
    paths.append(m.write())
    html = build_report(paths, tmp_path / "out", roles=ROLES, pdf=False).html.read_text()
    block = main_blocks(html)["long_analysis-long_analysis"]
    assert re.findall(r"<code>(metric_\d+)</code>", block) == [f"metric_{i:02d}" for i in range(8)]
    assert "The first figure." in block and "The second figure." not in block
    assert "A data table." not in block and 'href="#appendix-long_analysis-long_analysis"' in block
    appendix = html.split('id="appendix-long_analysis-long_analysis"', 1)[1]
    assert re.findall(r"<code>(metric_\d+)</code>", appendix)[:20] == [f"metric_{i:02d}" for i in range(20)]
    assert "The second figure." in appendix and "A data table." in appendix


def test_captions_choose_the_main_figure_and_metrics_in_their_order():
    from induction_heads.report.sections import main_names

    names = ["a_score", "b_head", "c_loss", "d_loss", "e"]
    assert main_names(names, ["*_loss", "a_*"], 8) == ["c_loss", "d_loss", "a_score"]
    assert main_names(names, None, 2) == ["a_score", "b_head"]
    assert main_names(names, ["renamed_*"], 1) == ["a_score"]  # no match: the default, not nothing


def test_a_not_applicable_analysis_shows_its_reason_in_its_section(tmp_path):
    reason = "needs at least 2 layers (a sender head before the receiving induction head); this model has 1 layer(s)"

    def section_of(arena: bool, name: str) -> str:
        paths = make_run(tmp_path / name, analyses=("head_scores", "path_patching"), control=False,
                         arena=arena)
        mark_not_applicable(paths, "attn2l-s0", "path_patching", reason)
        html = build_report(paths, tmp_path / f"out-{name}", roles=ROLES, pdf=False).html.read_text()
        section = html[html.index('<section id="olsson_path_patching"'):]
        return section[: section.index("</section>")]

    # the only model: the section stays, with the reason instead of a crash or a gap
    alone = section_of(False, "alone")
    assert f'<p class="not-applicable">not applicable to attn2l-s0: {reason}</p>' in alone
    assert "<figure" not in alone and "key_path_loss_share" not in alone
    # beside a model it applies to: that model's results, and the line for the other
    beside = section_of(True, "beside")
    assert f"not applicable to attn2l-s0: {reason}" in beside
    assert "key_path_loss_share" in beside and "attn_only_2L_half" in beside
    assert "attn2l-s0 (main)" not in beside  # no empty column for it
