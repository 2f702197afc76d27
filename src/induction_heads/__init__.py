"""Induction heads, replicated offline: models, data, analyses and report. See README.md."""
