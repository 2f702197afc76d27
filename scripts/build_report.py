#!/usr/bin/env python
"""Build the report from every analysis's metrics.json (the report rule calls this).

    .venv/bin/python scripts/build_report.py \\
        --metrics results/*/*/metrics.json \\
        --benchmarks results/benchmarks/*/*.tsv \\
        --config config/config.yaml \\
        --roles '{"attn2l-s0": "main", "attn1l-s0": "control"}' \\
        --corpus-info results/data/corpus/corpus.json \\
        --out-dir results/report

Writes report.html, report.pdf, numbers.json, numbers.csv, numbers.tex and figures/.
All logic is in ``induction_heads.report``.
"""

from __future__ import annotations

import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")  # figures go to files; this entry point never needs a display

from induction_heads.report import build_report  # noqa: E402
from induction_heads.report.build import SOURCES_DIR  # noqa: E402


def parse_roles(text: str) -> dict[str, str]:
    try:
        roles = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--roles is not JSON ({err}); "
                                         'expected e.g. \'{"attn2l-s0": "main"}\'') from None
    if not isinstance(roles, dict) or not all(isinstance(v, str) for v in roles.values()):
        raise argparse.ArgumentTypeError('--roles must be a JSON object {"model": "role", ...}')
    return roles


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metrics", nargs="+", required=True, help="metrics.json files")
    ap.add_argument("--benchmarks", nargs="*", default=[], help="Snakemake benchmark TSV files")
    ap.add_argument("--config", help="the run's config YAML (shown and hashed)")
    ap.add_argument("--roles", type=parse_roles, default={},
                    help='JSON object model → role: "main", "control", "arena", …')
    ap.add_argument("--corpus-info", help="corpus.json with the sources' titles and licenses")
    ap.add_argument("--sources", default=str(SOURCES_DIR),
                    help="folder of template.html.j2, style.css and captions.yaml (default: report/)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--no-pdf", action="store_true", help="skip the PDF (faster previews)")
    args = ap.parse_args(argv)
    out = build_report(args.metrics, args.out_dir, roles=args.roles, config_path=args.config,
                       benchmark_paths=args.benchmarks, corpus_info=args.corpus_info,
                       sources=args.sources, pdf=not args.no_pdf)
    for warning in out.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"report: {out.html}" + (f", {out.pdf} ({out.pdf_pages} pages)" if out.pdf else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
