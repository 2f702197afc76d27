"""The repository explains itself: no references outside it, every file it cites exists, every
analysis is defined in docs/methods/, every rule logs and benchmarks, the dependency floors hold
for the pinned versions, and the library leaves matplotlib's backend alone."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from induction_heads.config import ANALYSES, FAMILY_ANALYSES

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / f for f in out.splitlines() if (ROOT / f).is_file()]


def texts(suffixes=(".py", ".smk", ".md", ".ipynb", ".yaml", ".sh", ".j2", ".css", ".rst", ".toml")):
    for path in tracked_files():
        if path.suffix in suffixes or path.name == "Snakefile":
            if path.resolve() != THIS:
                yield path, path.read_text(errors="replace")


OUTSIDE = re.compile(r"GUIDE\.md|GUIDE §|\.\./shared|\b[Ii]ssues? #?\d+\b")


def test_nothing_points_outside_the_repository():
    found = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p, text in texts() for m in OUTSIDE.finditer(text)]
    assert not found, found


CITED = re.compile(r"(?<![\w/.])((?:tests|scripts|docs|src/induction_heads|notebooks|workflow|report|config)/"
                   r"[\w./-]+\.(?:py|md|ipynb|smk|yaml|j2|css|rst|sh))(?:::(\w+))?")


def test_every_file_the_repository_cites_exists():
    missing = []
    for path, text in texts():
        for cited, test_name in CITED.findall(text):
            target = ROOT / cited
            if "<" in cited or "*" in cited:
                continue
            if not target.exists():
                missing.append(f"{path.relative_to(ROOT)} cites {cited}")
            elif test_name and f"def {test_name}(" not in target.read_text():
                missing.append(f"{path.relative_to(ROOT)} cites {cited}::{test_name}")
    assert not missing, missing


def test_every_analysis_is_defined_in_docs_methods():
    pages = " ".join(p.read_text() for p in (ROOT / "docs" / "methods").glob("*.md"))
    undefined = [a for a in [*ANALYSES, *FAMILY_ANALYSES] if f"notebooks/{a}.ipynb" not in pages]
    assert not undefined, f"no docs/methods page names notebooks/<analysis>.ipynb for {undefined}"


def test_every_rule_has_a_log_and_a_benchmark():
    rules = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule \w+:)", smk.read_text())[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            rules[name] = block.split("\n\n\n")[0]  # up to the next top-level definition
    assert {"train_model", "datasets", "synonym_pairs", "analysis", "report"} <= set(rules)
    lacking = {n: [k for k in ("log:", "benchmark:") if f"    {k}" not in body] for n, body in rules.items()}
    assert not {n: k for n, k in lacking.items() if k}, lacking


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"[-_.]+", "-", name).lower()] = version.split(";")[0].strip()
    return out


def test_dependency_floors_hold_for_the_pinned_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins() | {"torch": "2.13.0"}  # torch is installed first, from its own index
    requirements = [*project["dependencies"], *project["optional-dependencies"]["workflow"]]
    unmet = []
    for text in requirements:
        req = Requirement(text)
        version = pinned.get(re.sub(r"[-_.]+", "-", req.name).lower())
        if version is None or version not in req.specifier:
            unmet.append(f"{text} (pinned: {version})")
    assert not unmet, unmet


def test_the_library_leaves_the_matplotlib_backend_to_its_callers():
    code = "\n".join(p.read_text() for p in (ROOT / "src" / "induction_heads").rglob("*.py"))
    assert "matplotlib.use(" not in code
    probe = ("import matplotlib, induction_heads.plots, induction_heads.report.figures; "
             "print(matplotlib.rcParams['backend'])")
    env = {"MPLBACKEND": "svg", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([__import__("sys").executable, "-c", probe], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.stdout.strip() == "svg", out.stderr[-2000:]
