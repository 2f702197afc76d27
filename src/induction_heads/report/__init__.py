"""The report: every ``metrics.json`` of a run → HTML, PDF, citable numbers, figures.

Modules: :mod:`.collect` (load a run, model roles), :mod:`.numbers` (numbers.json/csv/tex),
:mod:`.scorecard` (the papers' claims, checked), :mod:`.provenance`, :mod:`.figures`,
:mod:`.sections` (what each section shows), :mod:`.build` (putting it together).
"""

from .build import ReportOutputs, build_report

__all__ = ["ReportOutputs", "build_report"]
