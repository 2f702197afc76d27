"""The config is validated before anything runs; errors name the offending key."""

import copy
import json
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


def test_olsson_sequences_must_fit_every_model(default):
    default["analyses"]["olsson_scores"]["n_tokens"] = 40  # BOS + 4 x 40 > n_ctx 128
    msg = error_of(default)
    assert "analyses.olsson_scores.n_tokens" in msg and "161" in msg and "n_ctx 128" in msg


def test_unknown_analysis_and_unknown_key_are_refused(default):
    bad = copy.deepcopy(default)
    bad["analyses"]["telepathy"] = {}
    assert "telepathy" in error_of(bad)
    bad = copy.deepcopy(default)
    bad["models"]["attn2l"]["n_layer"] = 2  # typo of n_layers
    assert "models.attn2l" in error_of(bad) and "n_layer" in error_of(bad)


def test_sequences_that_do_not_fit_the_context_are_refused(default):
    """A length a model entry sets is refused when BOS + 2 x seq_len exceeds its context; the
    shared length is capped for that model instead."""
    default["models"]["attn2l"]["data"] = {"repeated_tokens": {"seq_len": 64}}  # BOS + 128 > n_ctx 128
    assert "models.attn2l.data.repeated_tokens.seq_len" in error_of(default)
    del default["models"]["attn2l"]["data"]
    default["data"]["repeated_tokens"]["seq_len"] = 64
    cfg = C.validate_config(default)
    assert C.data_config_dict(cfg, "attn2l")["repeated_tokens"]["seq_len"] == 63


def hub_entry(**extra):
    return {"source": "huggingface", "repo_id": "a/b", "architecture": "GPT2LMHeadModel",
            "n_layers": 2, "n_ctx": 128, "d_vocab": 100, **extra}  # fmt: skip


def test_hub_entries_checked_before_any_download(default, tmp_path):
    default["models"]["hub"] = hub_entry(architecture="LlamaForCausalLM")
    message = error_of(default)
    assert "models.hub.architecture" in message and "LlamaForCausalLM" in message
    assert all(a in message for a in ("GPT2LMHeadModel", "GPTNeoForCausalLM", "GPTNeoXForCausalLM", "OPTForCausalLM"))
    default["models"]["hub"] = hub_entry(sha256={"model.safetensors": "not-a-checksum"})
    assert "models.hub.sha256" in error_of(default)
    default["models"]["hub"] = hub_entry(n_ctx=32, data={"repeated_tokens": {"seq_len": 20}})  # BOS + 40 > 32
    assert "models.hub.data.repeated_tokens.seq_len" in error_of(default) and "'hub'" in error_of(default)
    default["models"]["hub"] = {k: v for k, v in hub_entry().items() if k != "d_vocab"}
    assert "d_vocab" in error_of(default)


def test_local_entries_checked_before_any_rule(default, tmp_path):
    default["models"]["mine"] = {"source": "local", "path": str(tmp_path / "nowhere")}
    assert "models.mine.path" in error_of(default) and "nowhere" in error_of(default)
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"]}))
    default["models"]["mine"] = {"source": "local", "path": str(folder)}
    assert "BertForMaskedLM" in error_of(default) and "GPT2LMHeadModel" in error_of(default)
    default["models"]["mine"] = {"source": "local", "weights": str(tmp_path / "w.pt"),
                                 "config": str(tmp_path / "c.json"), "tokenizer": str(tmp_path / "t.json")}  # fmt: skip
    assert "models.mine.weights" in error_of(default) and "w.pt" in error_of(default)


def test_checkpoint_revisions_become_instances(default):
    default["models"]["pythia-70m"] = hub_entry(checkpoints=["step0", "step1000"])
    cfg = C.validate_config(default)
    models = C.model_instances(cfg)
    assert {"pythia-70m", "pythia-70m@step0", "pythia-70m@step1000"} <= set(models)
    assert models["pythia-70m@step1000"]["revision"] == "step1000" and not models["pythia-70m@step1000"]["primary"]
    assert C.analyses_for(cfg, "pythia-70m@step0") == ["head_scores"]
    assert "ov_circuit" in C.analyses_for(cfg, "pythia-70m")


def test_a_disabled_model_is_left_out(default):
    """As an overlay config writes it (`models: {attn1l: {enabled: false}}`): config files merge
    key by key, so this is how an overlay removes a model."""
    default["models"]["attn1l"]["enabled"] = False
    cfg = C.validate_config(default)
    assert sorted(C.model_instances(cfg)) == ["attn2l-s0", "attn2l-s1", "attn2l-s2"]
    assert C.roles(cfg) == {"attn2l-s0": "main"}


def test_plan_names_instances_and_assigns_analyses(default):
    cfg = C.validate_config(default)
    models = C.model_instances(cfg)
    assert sorted(models) == [f"{f}-s{s}" for f in ("attn1l", "attn2l") for s in (0, 1, 2)]
    assert models["attn2l-s0"]["primary"] and not models["attn2l-s1"]["primary"]
    assert "k_composition" in C.analyses_for(cfg, "attn2l-s0")
    assert "k_composition" in C.analyses_for(cfg, "attn1l-s0")  # planned: records why not
    assert {"olsson_scores", "path_patching"} <= set(C.analyses_for(cfg, "attn2l-s0"))
    assert "olsson_scores" in C.analyses_for(cfg, "attn1l-s0")
    assert "path_patching" in C.analyses_for(cfg, "attn1l-s0")
    assert C.analyses_for(cfg, "attn2l-s1") == []
    assert C.roles(cfg) == {"attn2l-s0": "main", "attn1l-s0": "control"}


def test_planning_does_not_import_torch():
    """Snakemake plans the DAG by validating the config (every plan-time check) and expanding the
    rules' inputs; importing torch/TransformerLens there made a no-op rerun ~4x slower."""
    import subprocess
    import sys

    code = ("import sys, yaml; from induction_heads import config as C, contracts, naming; "
            "C.validate_config(yaml.safe_load(open('config/config.yaml'))); "
            "print(sorted(m for m in ('torch', 'transformer_lens', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
