"""Instance names work as folder names, Snakemake wildcard values and LaTeX macro names."""

import re

import pytest

from induction_heads.naming import INSTANCE_REGEX, instance_name, revision_slug
from induction_heads.report.numbers import camel


@pytest.mark.parametrize(
    ("entry", "kw", "expected"),
    [
        ("attn2l", {"seed": 0}, "attn2l-s0"),
        ("pythia-70m", {"revision": "step1000"}, "pythia-70m@step1000"),
        ("gpt2-medium", {}, "gpt2-medium"),
        ("pythia-70m", {"revision": "refs/pr/1"}, "pythia-70m@refs_pr_1"),
        ("Attn_Only_2L", {"revision": "a" * 40}, "Attn_Only_2L@" + "a" * 40),
        ("opt-125m", {"revision": "v1.0"}, "opt-125m@v1.0"),
    ],
)
def test_instance_names(entry, kw, expected):
    name = instance_name(entry, **kw)
    assert name == expected
    assert re.fullmatch(INSTANCE_REGEX, name)
    assert "/" not in name
    assert re.fullmatch(r"[A-Za-z]+", camel(name))


def test_macro_names_distinguish_revisions():
    names = {camel(instance_name("pythia-70m", revision=f"step{s}")) for s in (0, 1, 10, 100, 1000)}
    assert len(names) == 5
    assert camel("pythia-70m@step1000") == "PythiaSeventyMStepOneZeroZeroZero"


@pytest.mark.parametrize("bad", ["", "2fast", "pythia/70m", "a b", "x@y", "-x", "model-", "a..b"])
def test_bad_entry_names_refused(bad):
    with pytest.raises(ValueError, match="model name"):
        instance_name(bad)


def test_seed_and_revision_exclusive():
    with pytest.raises(ValueError, match="not both"):
        instance_name("m", seed=0, revision="step1")
    with pytest.raises(ValueError):
        revision_slug("")
