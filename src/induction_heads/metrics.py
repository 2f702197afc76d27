"""``metrics.json``: what every analysis writes, and what the report reads.

Every number in the report comes from one of these files. Layout::

    {
      "analysis": "head_scores", "model": "attn2l-s0", "seed": 0,
      "weights_sha256": "…", "params": {…},
      "metrics": {"<name>": {"value": 0.85, "ci": [0.81, 0.88] | null, "unit": "nats" | null,
                             "description": "one sentence"}},
      "figures": {"<name>": {"svg": "figures/<name>.svg", "png": "figures/<name>.png",
                             "pdf": "figures/<name>.pdf", "caption": "what to look at"}},
      "tables":  {"<name>": {"columns": [...], "rows": [[...], ...], "caption": "…"}},
      "text":    {"<name>": "a sentence computed from the numbers"}
    }

An analysis that does not apply to the model (``induction_heads.applicability``) writes the same
header with ``"not_applicable": "<reason>"`` and empty ``metrics``/``figures``/``tables``/``text``
(:meth:`Metrics.not_applicable`).

Paths of figures are relative to the folder holding ``metrics.json``: figures live in its
``figures/`` subfolder, which the analysis rule declares as an output (a ``report()`` directory, so
Snakemake's own report shows them too). ``value`` may be a number, a string (a head label such as
"1.4"), or a list of those.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .naming import FIGURE_FORMATS, figure_file
from .testhooks import pause_point

FIGURES_DIR = "figures"  # beside metrics.json; see the module docstring


def _plain(value: Any) -> Any:
    """Convert numpy / torch scalars and arrays to JSON-able Python values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file + rename, so no half-written file is ever seen as complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it owner-only; give it an ordinary file's mode
    os.replace(tmp, path)


class Metrics:
    """Collects the metrics, figures, tables and sentences of one analysis run."""

    def __init__(
        self,
        analysis: str,
        model: str,
        out_dir: str | Path,
        *,
        params: dict | None = None,
        seed: int | None = None,
        weights_sha256: str | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.figures_dir = self.out_dir / FIGURES_DIR
        # made even if no figure is drawn: the rule declares the folder as an output
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {
            "analysis": analysis,
            "model": model,
            "seed": seed,
            "weights_sha256": weights_sha256,
            "params": _plain(params or {}),
            "metrics": {},
            "figures": {},
            "tables": {},
            "text": {},
        }

    def add(
        self,
        name: str,
        value: Any,
        description: str,
        *,
        ci: Sequence[float] | None = None,
        unit: str | None = None,
    ) -> Any:
        """Record one metric; returns ``value`` so a notebook can display it in the same line."""
        self.data["metrics"][name] = {
            "value": _plain(value),
            "ci": None if ci is None else [float(ci[0]), float(ci[1])],
            "unit": unit,
            "description": description,
        }
        return value

    def figure(self, name: str, fig, caption: str, formats: Sequence[str] = FIGURE_FORMATS):
        """Save a matplotlib figure in every format and record it with its caption."""
        entry: dict[str, str] = {"caption": caption}
        for fmt in formats:
            path = self.figures_dir / figure_file(name, fmt)
            fig.savefig(path, format=fmt, bbox_inches="tight", dpi=150 if fmt == "png" else None,
                        metadata={"Date": None} if fmt == "svg" else None)
            entry[fmt] = f"{FIGURES_DIR}/{path.name}"
        self.data["figures"][name] = entry
        return fig

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str):
        self.data["tables"][name] = {
            "columns": list(columns),
            "rows": _plain([list(r) for r in rows]),
            "caption": caption,
        }

    def text(self, name: str, sentence: str) -> str:
        self.data["text"][name] = sentence
        return sentence

    def write(self) -> Path:
        """Write ``metrics.json`` last (atomically): it is the rule's declared output."""
        pause_point(f"metrics_write:{self.data['analysis']}")  # a test may kill the run here
        path = self.out_dir / "metrics.json"
        atomic_write_text(path, json.dumps(self.data, indent=2, sort_keys=False) + "\n")
        return path


    def not_applicable(self, reason: str) -> Path:
        """Record that the analysis does not apply to this model, for ``reason``, and write
        ``metrics.json`` now; whatever was recorded before is dropped (it is not a result)."""
        for kind in ("metrics", "figures", "tables", "text"):
            self.data[kind] = {}
        self.data["not_applicable"] = reason
        return self.write()


def load_metrics(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)


def metric_value(metrics: dict[str, Any], name: str) -> Any:
    """The value of metric ``name`` with a clear error if the analysis did not record it."""
    try:
        return metrics["metrics"][name]["value"]
    except KeyError:
        raise KeyError(
            f"metric {name!r} not in {metrics.get('analysis')}/{metrics.get('model')} metrics; "
            f"it has {sorted(metrics.get('metrics', {}))}"
        ) from None


def bootstrap_ci(
    samples: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``samples`` (1-D)."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one sample")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def bootstrap_means(samples: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap means of every column at once: ``samples`` is ``[n, ...]`` (one row per
    independent unit, e.g. a sequence); the result is ``[n_boot, ...]``, each row the mean over a
    resample of the ``n`` rows (the same resamples for every column, so statistics of several
    columns — ratios, differences — can be bootstrapped together)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError("bootstrap_means needs at least one row of samples")
    n = x.shape[0]
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # [B n]
    return (counts @ x.reshape(n, -1) / n).reshape(n_boot, *x.shape[1:])
