"""The config is validated before anything runs; errors name the offending key."""

import copy
from pathlib import Path

import pytest
import yaml

from induction_heads import config as C

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.fixture
def default():
    return load("config.yaml")


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_validate(name):
    cfg = C.validate_config(load(name))
    assert cfg["device"] in ("auto", "cpu")
    assert cfg["training"]["grad_clip"] == 1.0  # a schema default was filled in


def error_of(cfg):
    with pytest.raises(C.ConfigError) as err:
        C.validate_config(cfg)
    return str(err.value)


def test_wrong_type_names_the_key(default):
    default["training"]["steps"] = "many"
    assert "training.steps" in error_of(default) and "integer" in error_of(default)


def test_missing_key_names_the_parent_and_the_key(default):
    del default["data"]["repeated_tokens"]["seq_len"]
    msg = error_of(default)
    assert "data.repeated_tokens" in msg and "seq_len" in msg


def test_unknown_model_source_is_refused(default):
    default["models"]["attn2l"]["source"] = "torrent"
    assert "models.attn2l.source" in error_of(default)


def test_unknown_analysis_and_unknown_key_are_refused(default):
    bad = copy.deepcopy(default)
    bad["analyses"]["telepathy"] = {}
    assert "telepathy" in error_of(bad)
    bad = copy.deepcopy(default)
    bad["models"]["attn2l"]["n_layer"] = 2  # typo of n_layers
    assert "models.attn2l" in error_of(bad) and "n_layer" in error_of(bad)


def test_sequences_that_do_not_fit_the_context_are_refused(default):
    default["data"]["repeated_tokens"]["seq_len"] = 64  # BOS + 128 > n_ctx 128
    assert "data.repeated_tokens.seq_len" in error_of(default)


def test_hub_entry_needs_its_checksum_key(default):
    default["models"]["hub"] = {"source": "huggingface", "repo_id": "a/b", "filename": "w.pth",
                                "config": {"n_layers": 2, "d_model": 8, "n_heads": 2, "d_head": 4,
                                           "n_ctx": 16, "d_vocab": 10}}  # fmt: skip
    assert "sha256" in error_of(default)
    default["models"]["hub"]["sha256"] = "not-a-checksum"
    assert "models.hub.sha256" in error_of(default)


def test_plan_names_instances_and_assigns_analyses(default):
    cfg = C.validate_config(default)
    models = C.model_instances(cfg)
    assert sorted(models) == [f"{f}-s{s}" for f in ("attn1l", "attn2l") for s in (0, 1, 2)]
    assert models["attn2l-s0"]["primary"] and not models["attn2l-s1"]["primary"]
    assert "k_composition" in C.analyses_for(cfg, "attn2l-s0")
    assert "k_composition" not in C.analyses_for(cfg, "attn1l-s0")  # needs two layers
    assert C.analyses_for(cfg, "attn2l-s1") == []
    assert C.roles(cfg) == {"attn2l-s0": "main", "attn1l-s0": "control"}
