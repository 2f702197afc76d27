"""Where the numbers came from: config and its hash, code version, packages, machine, seeds,
weight checksums, and the wall time of every Snakemake rule (its ``benchmark:`` TSV)."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from .collect import Run

PACKAGES = ("torch", "transformer-lens", "snakemake", "papermill", "numpy", "tokenizers",
            "matplotlib", "seaborn", "jinja2", "weasyprint", "huggingface-hub")


@dataclass
class Benchmark:
    label: str
    seconds: float | None
    hms: str
    max_rss_mb: float | None


@dataclass
class Provenance:
    config_text: str | None = None
    config_path: str | None = None
    config_sha256: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    packages: dict[str, str] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    seeds: list[tuple[str, str]] = field(default_factory=list)
    weights: list[tuple[str, str]] = field(default_factory=list)
    benchmarks: list[Benchmark] = field(default_factory=list)
    missing_benchmarks: list[str] = field(default_factory=list)

    @property
    def time_summary(self) -> dict[str, float] | None:
        """Job time summed over rules, and the share spent training models (``models/*/train``).

        Jobs run side by side, so this is compute time (cores × seconds), not the wall clock."""
        times = [b for b in self.benchmarks if b.seconds is not None]
        if not times:
            return None
        total = sum(b.seconds for b in times)
        training = sum(b.seconds for b in times if b.label.startswith("models/") and b.label.endswith("/train"))
        return {"total_s": total, "training_s": training, "training_share": training / total if total else 0.0}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def git_state(repo: Path) -> tuple[str | None, bool | None]:
    """Commit and whether tracked files differ from it; ``(None, None)`` outside a git tree."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> str:
    """GPUs of this machine: torch's view if torch is already loaded, else ``nvidia-smi``
    (importing torch only for this costs seconds)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "none"
    names = [n.strip() for n in out.stdout.splitlines() if n.strip()] if out.returncode == 0 else []
    return ", ".join(names) or "none"


def machine_info() -> dict[str, str]:
    """The machine that built the report: CPU model and cores, OS, GPU."""
    return {"CPU": cpu_model(), "cores": str(os.cpu_count()), "OS": platform.platform(),
            "GPU": gpu_names()}


def seeds_and_weights(run: Run) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Seeds the analyses of each model used; one weight checksum per model (flagged if its
    analyses disagree, which would mean they did not all see the same weights)."""
    seeds, weights = [], []
    for model in run.models():
        checksums, used = set(), {}
        for analysis, result in sorted(run.results[model].items()):
            used.setdefault(str(result.data.get("seed")), []).append(analysis)
            if result.data.get("weights_sha256"):
                checksums.add(result.data["weights_sha256"])
        seeds.append((model, "; ".join(f"{s} ({', '.join(a)})" if len(used) > 1 else s
                                       for s, a in used.items())))
        if len(checksums) > 1:
            weights.append((model, "MISMATCH between analyses: " + ", ".join(sorted(checksums))))
        else:
            weights.append((model, checksums.pop() if checksums else "not recorded"))
    return seeds, weights


def read_benchmark(path: Path, label: str) -> Benchmark:
    """A Snakemake ``benchmark:`` TSV (``s  h:m:s  max_rss  …``); the mean over repeats."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise ValueError(f"benchmark file {path} has no 's' column (expected Snakemake TSV)")

    def mean(col: str) -> float | None:
        vals = [float(r[col]) for r in rows if r.get(col) not in (None, "", "-", "NA")]
        return sum(vals) / len(vals) if vals else None

    return Benchmark(label, mean("s"), rows[0].get("h:m:s", ""), mean("max_rss"))


def benchmark_label(path: Path) -> str:
    """``benchmarks/attn2l-s0/head_scores.tsv`` → ``attn2l-s0/head_scores``: the path says the rule."""
    parts = list(path.with_suffix("").parts)
    if "benchmarks" in parts:
        parts = parts[parts.index("benchmarks") + 1:]
    return "/".join(parts[-3:])


def collect(run: Run, config_path: str | Path | None, benchmark_paths: list[str | Path],
            repo: Path) -> Provenance:
    prov = Provenance()
    if config_path:
        prov.config_path = str(config_path)
        prov.config_text = Path(config_path).read_text()
        prov.config_sha256 = sha256_text(prov.config_text)
    prov.git_commit, prov.git_dirty = git_state(repo)
    prov.packages = package_versions()
    prov.machine = machine_info()
    prov.seeds, prov.weights = seeds_and_weights(run)
    # A benchmark file is missing only when its job's outputs were made by hand (`--touch`) or the
    # file was deleted: the report still builds, and says which times it lacks.
    present = [Path(p) for p in benchmark_paths if Path(p).is_file()]
    prov.missing_benchmarks = [str(p) for p in benchmark_paths if not Path(p).is_file()]
    prov.benchmarks = [read_benchmark(p, benchmark_label(p)) for p in present]
    return prov
