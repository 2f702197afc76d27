"""Which analysis applies to which model, and how a notebook stops when one does not.

The table is checked against configs TransformerLens builds, and each requirement against the
library function that refuses such a model (so the table and the code cannot drift apart); the
clean stop is checked by executing small notebooks with papermill, as the rule does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import torch
import yaml
from transformer_lens import HookedTransformer, HookedTransformerConfig

from induction_heads import applicability as AP
from induction_heads import attribution, circuits, scores
from induction_heads import precheck as PRECHECK
from induction_heads.architecture import config_to_dict
from induction_heads.applicability import NO_EARLIER_PREV_TOKEN_HEAD, REASONS, TOO_FEW_SYNONYM_PAIRS, NotApplicable
from induction_heads.contracts import CONTRACTS
from induction_heads.metrics import Metrics, load_metrics
from induction_heads.planted import distinct_repeated_tokens, planted_induction_model

ROOT = Path(__file__).resolve().parents[1]
PER_MODEL = [a for a, c in CONTRACTS.items() if not c.family]


def cfg(**kw) -> HookedTransformerConfig:
    base = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=12, d_vocab=20, act_fn="relu",
                attn_only=True, normalization_type=None, positional_embedding_type="shortformer",
                device="cpu", seed=0)
    return HookedTransformerConfig(**{**base, **kw})


ARENA = cfg()  # ARENA's attn_only_2L_half: attention only, no LayerNorm, shortformer
GPT2_LIKE = cfg(attn_only=False, normalization_type="LN", positional_embedding_type="standard", d_mlp=32)
ROTARY = cfg(attn_only=False, normalization_type="RMS", positional_embedding_type="rotary", d_mlp=32,
             rotary_dim=8)
ONE_LAYER = cfg(n_layers=1)
GQA = cfg(n_heads=4, d_head=4, n_key_value_heads=2, attn_only=False, normalization_type="RMS",
          positional_embedding_type="rotary", d_mlp=32, rotary_dim=4)

GPT2_ARCH = "this model: attn_only=False, normalization_type=LN, positional_embedding_type=standard"
ROTARY_ARCH = "this model: attn_only=False, normalization_type=RMS, positional_embedding_type=rotary"


def test_attention_only_model_gets_every_analysis():
    assert {a: AP.reason_for(a, ARENA) for a in PER_MODEL} == dict.fromkeys(PER_MODEL)


def test_layernorm_mlp_model():
    got = {a: AP.reason_for(a, GPT2_LIKE) for a in PER_MODEL}
    assert {a for a, r in got.items() if r} == {"ablation"}
    assert got["ablation"] == (
        "needs an attention-only model without LayerNorm, with shortformer position embeddings "
        "(the ablation tables as implemented recompute the logits from the head outputs); " + GPT2_ARCH)
    # K-composition's weight circuit runs (the attention-only approximation); only its exact
    # split of the attention scores is left out, and it says why
    assert AP.decomposition_problem(GPT2_LIKE).endswith(GPT2_ARCH + ".")
    assert AP.decomposition_problem(ARENA) is None


def test_direct_logit_attribution_refuses_only_a_nonlinear_logit_path():
    capped = cfg(attn_only=False, normalization_type="LN", d_mlp=32, output_logits_soft_cap=30.0)
    for analysis in ("logit_attribution", "fuzzy_induction"):
        assert AP.reason_for(analysis, capped).startswith("needs logits that are a linear read of the residual stream")
    assert AP.reason_for("logit_attribution", AP.config_view(config_to_dict(capped))) == (
        AP.reason_for("logit_attribution", capped))


def test_rotary_model_has_no_position_matrix():
    assert AP.reason_for("qk_circuit", ROTARY) == (
        "needs learned absolute position embeddings (W_pos); this model's positional_embedding_type "
        "is rotary")
    assert AP.reason_for("ablation", ROTARY).endswith(ROTARY_ARCH)
    assert AP.reason_for("logit_attribution", ROTARY) is None  # DLA reads through RMSNorm's scale
    assert AP.reason_for("ov_circuit", ROTARY) is None


def test_one_layer_and_grouped_query_models():
    assert {a for a in PER_MODEL if AP.reason_for(a, ONE_LAYER)} == {
        "k_composition", "composition_scores", "path_patching"}
    assert AP.reason_for("composition_scores", ONE_LAYER) == (
        "needs at least 2 layers (heads of a 1-layer model cannot compose); this model has 1 layer(s)")
    assert AP.reason_for("path_patching", GQA) == (
        "needs one key/value head per query head (a key-only patch of one head is not defined "
        "under grouped-query attention); this model has 2 key/value heads for 4 query heads")


def test_config_dict_as_in_config_json():
    assert AP.reason_for("qk_circuit", ROTARY.to_dict()) == AP.reason_for("qk_circuit", ROTARY)
    with pytest.raises(KeyError, match="unknown analysis 'nope'"):
        AP.reason_for("nope", ARENA)


CONFIGS = {"arena": ARENA, "gpt2": GPT2_LIKE, "rotary": ROTARY, "one_layer": ONE_LAYER, "gqa": GQA}


@pytest.mark.parametrize("name", CONFIGS)
def test_config_view_of_config_json_gives_the_full_configs_reasons(name):
    """The rule's check reads config.json without TransformerLens; it must agree with the
    notebook's check on the real config for every analysis."""
    config = CONFIGS[name]
    as_written = json.loads(json.dumps(config_to_dict(config)))  # what config.json holds
    view = AP.config_view(as_written)
    assert {a: AP.reason_for(a, view) for a in PER_MODEL} == {a: AP.reason_for(a, config) for a in PER_MODEL}


def model_folder(tmp_path, config) -> dict:
    """A model folder as the pipeline writes it (config.json, model_info.json) and the
    parameters file the analysis rule hands on."""
    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config_to_dict(config)))
    (folder / "model_info.json").write_text(json.dumps({"name": "m", "sha256": "ab" * 32}))
    return {"model_name": "m", "model_dir": str(folder), "data_dir": str(tmp_path / "data"),
            "out_dir": str(tmp_path / "out"), "device": "cpu", "seed": 0,
            "head_scores_path": "unused", "n_text_sequences": 2, "circuit": []}


def test_precheck_records_an_architecture_reason_without_a_kernel(tmp_path):
    parameters = model_folder(tmp_path, GPT2_LIKE)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(parameters))
    log = tmp_path / "log.ipynb"
    notebook = ROOT / "notebooks" / "ablation.ipynb"
    argv = ["ablation", str(notebook), str(tmp_path / "p.yaml"), str(log)]
    proc = subprocess.run([sys.executable, "-m", "induction_heads.precheck", *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = load_metrics(tmp_path / "out" / "metrics.json")
    assert data["not_applicable"] == AP.reason_for("ablation", GPT2_LIKE)
    assert data["weights_sha256"] == "ab" * 32 and data["model"] == "m"
    assert data["params"] == {"n_text_sequences": 2, "circuit": []}
    assert (tmp_path / "out" / "figures").is_dir()  # the rule's other output
    executed = nbformat.read(log, as_version=4)
    nbformat.validate(executed)
    assert executed.cells[0].source.startswith("**Not applicable** to this model: " + data["not_applicable"])
    assert len(executed.cells) == len(nbformat.read(notebook, as_version=4).cells) + 1


def test_precheck_finds_too_few_synonym_pairs_in_the_pairs_file(tmp_path):
    parameters = {**model_folder(tmp_path, ARENA), "pairs_path": str(tmp_path / "pairs.tsv"),
                  "n_pairs_per_sequence": 2}  # fmt: skip
    (tmp_path / "pairs.tsv").write_text(
        "word_a\tword_b\tpos\tsynset_offset\tsense_rank_a\tsense_rank_b\ttoken_a\ttoken_b\n"
        "big\tlarge\ta\t01382086\t0\t0\t5\t6\n"
        "small\tlittle\ta\t01391351\t0\t0\t7\t8\n"
        "quick\tfast\ta\t00976508\t0\t0\t9\t10\n")
    assert PRECHECK.reason_before_kernel("fuzzy_induction", parameters) == (
        TOO_FEW_SYNONYM_PAIRS.format(needed=4, available=3))
    parameters["n_pairs_per_sequence"] = 1  # 3 pairs are enough for 2 x 1
    assert PRECHECK.reason_before_kernel("fuzzy_induction", parameters) is None


def test_precheck_leaves_an_applicable_analysis_to_the_notebook_and_imports_no_torch(tmp_path):
    parameters = model_folder(tmp_path, ARENA)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(parameters))
    code = ("import sys, runpy; sys.argv = ['precheck', 'ablation', 'nb.ipynb', sys.argv[1], 'log.ipynb']\n"
            "try:\n    runpy.run_module('induction_heads.precheck', run_name='__main__')\n"
            "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules, 'transformer_lens' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.yaml")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.stdout.split() == [str(PRECHECK.APPLIES), "False", "False"], proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "log.ipynb").exists()


def test_weight_circuits_on_layernorm_or_mlp_models_say_they_are_the_attention_only_approximation():
    assert AP.approximation_note("ov_circuit", ARENA) is None
    assert AP.approximation_note("head_scores", GPT2_LIKE) is None  # not a weight circuit
    gpt2 = AP.approximation_note("ov_circuit", GPT2_LIKE)
    assert gpt2.startswith("This model has LayerNorm and MLPs, so these weight circuits are the attention-only")
    assert "ignore the paths through the MLPs" in gpt2
    ln_only = AP.approximation_note("composition_scores", cfg(normalization_type="LN"))
    assert ln_only.startswith("This model has LayerNorm,") and "MLPs" not in ln_only


def test_an_applicable_weight_circuit_records_the_note(tmp_path):
    metrics = Metrics("ov_circuit", "m", tmp_path)
    AP.stop_if_not_applicable(metrics, HookedTransformer(GPT2_LIKE), "ov_circuit")
    assert metrics.data["text"]["attention_only_approximation"] == AP.approximation_note("ov_circuit", GPT2_LIKE)
    plain = Metrics("ov_circuit", "m", tmp_path / "arena")
    AP.stop_if_not_applicable(plain, HookedTransformer(ARENA), "ov_circuit")
    assert plain.data["text"] == {}


def test_table_agrees_with_the_contracts():
    assert {a for a, _ in REASONS} <= set(PER_MODEL)
    assert {r for _, r in REASONS} == set(AP.REQUIREMENTS)
    two = {a for a in PER_MODEL if CONTRACTS[a].min_layers >= 2}
    assert two == {a for a, r in REASONS if r == "two_layers"}


@pytest.mark.parametrize("config", [ARENA, GPT2_LIKE, ROTARY], ids=["arena", "gpt2", "rotary"])
def test_requirements_agree_with_the_code_that_refuses(config):
    """Each requirement fails exactly when the library function it protects refuses the model."""
    model = HookedTransformer(config)
    tokens = torch.zeros(1, 5, dtype=torch.long)

    def refuses(fn) -> bool:
        try:
            fn()
        except ValueError:
            return True
        return False

    req = AP.REQUIREMENTS
    assert refuses(lambda: attribution.check_attn_only(model)) == (not req["heads_only_residual"](config))
    assert refuses(lambda: attribution.check_linear_logit_path(model)) == (not req["linear_logit_path"](config))
    assert refuses(lambda: circuits.qk_input_components(model, tokens, 1)) == (
        not AP.linear_qk_input(config))
    assert refuses(lambda: circuits.positional_qk_pattern(model, (0, 0))) == (
        not req["learned_positions"](config))


def head_metrics(model, tmp_path) -> dict:
    """A head-scores metrics.json as the notebook records the detections (threshold 0.4)."""
    tokens = distinct_repeated_tokens(model.cfg.d_vocab, 5, 8)
    s = scores.head_scores(scores.attention_patterns(model, tokens), 5)
    layers = scores.induction_layers(model.cfg.n_layers)
    m = Metrics("head_scores", "m", tmp_path)
    m.add("induction_heads", scores.detect_heads(s["induction"], 0.4, layers), "")
    m.add("prev_token_heads", scores.detect_heads(s["previous_token"], 0.4), "")
    m.add("best_induction_head", scores.best_head(s["induction"], layers)[0], "")
    m.add("best_prev_token_head", scores.best_head(s["previous_token"])[0], "")
    return load_metrics(m.write())


def test_best_pair_not_applicable_without_an_earlier_previous_token_head(tmp_path):
    model, _ = planted_induction_model()
    assert circuits.best_pair(circuits.studied_heads(head_metrics(model, tmp_path))) == ("0.0", "1.0")
    # Move the positional previous-token head from 0.0 to 1.1 (layer 1 sees W_pos too:
    # shortformer) and make 0.0 attend uniformly: now no previous-token head is before layer 1.
    sd = model.state_dict()
    for w in ("W_Q", "W_K"):
        sd[f"blocks.1.attn.{w}"][1] = sd[f"blocks.0.attn.{w}"][0]
        sd[f"blocks.0.attn.{w}"][0] = 0
    model.load_state_dict(sd)
    heads = circuits.studied_heads(head_metrics(model, tmp_path))
    assert heads.prev_token == ["1.1"]
    with pytest.raises(NotApplicable) as err:
        circuits.best_pair(heads)
    assert err.value.reason == NO_EARLIER_PREV_TOKEN_HEAD.format(
        prev_heads="1.1", induction_head=heads.induction[0])


def test_heads_named_in_the_config_are_studied_whatever_the_detector_finds(tmp_path):
    """The same moved-head model: with `heads: {previous_token: ["0.0"]}` in its entry, the
    analyses study 0.0 (the detector finds only 1.1), so K-composition gets a pair again."""
    model, _ = planted_induction_model()
    sd = model.state_dict()
    for w in ("W_Q", "W_K"):
        sd[f"blocks.1.attn.{w}"][1] = sd[f"blocks.0.attn.{w}"][0]
        sd[f"blocks.0.attn.{w}"][0] = 0
    model.load_state_dict(sd)
    m = Metrics("head_scores", "m", tmp_path / "named")
    for name, value, description in scores.named_head_rows({"previous_token": ["0.0"]}, 2, model.cfg.n_heads):
        m.add(name, value, description)
    detected = head_metrics(model, tmp_path)
    detected["metrics"].update(m.data["metrics"])
    heads = circuits.studied_heads(detected)
    assert heads.prev_token == ["0.0"] and circuits.best_pair(heads) == ("0.0", heads.induction[0])
    assert heads.notes["prev_token"] == ("The config names the previous-token heads to study: 0.0 "
                                         "(the detector found 1.1).")
    with pytest.raises(ValueError, match="1.5 is not a head of this model"):
        scores.named_head_rows({"induction": ["1.5"]}, 2, model.cfg.n_heads)


def test_not_applicable_metrics_json(tmp_path):
    m = Metrics("qk_circuit", "rot", tmp_path, params={"include_bias": False}, seed=3,
                weights_sha256="ab" * 32)
    m.add("something", 1.0, "recorded before the stop")
    m.text("fallback_prev_token", "a note")
    data = json.loads(m.not_applicable("needs W_pos").read_text())
    assert data == {"analysis": "qk_circuit", "model": "rot", "seed": 3, "weights_sha256": "ab" * 32,
                    "params": {"include_bias": False}, "metrics": {}, "figures": {}, "tables": {},
                    "text": {}, "not_applicable": "needs W_pos"}
    assert AP.not_applicable_reason(data) == "needs W_pos"


# ---------------------------------------------------------------- a notebook ends cleanly

SETUP = """
from transformer_lens import HookedTransformerConfig
from induction_heads import circuits
from induction_heads.applicability import stop_if_not_applicable
from induction_heads.metrics import Metrics

class Model:  # only .cfg is read
    cfg = HookedTransformerConfig(**{cfg!r})

metrics = Metrics({analysis!r}, "m", {out!r})
stop_if_not_applicable(metrics, Model(), {analysis!r})
print("the rest of the first cell ran")
"""


def run_notebook(tmp_path, cells: list[str]):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    src, dst = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(dst), progress_bar=False, log_output=False)
    return nbformat.read(dst, as_version=4)


def outputs_text(nb) -> list[str]:
    return ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]


def test_notebook_stops_cleanly_when_the_model_does_not_qualify(tmp_path):
    out = tmp_path / "res"
    setup = SETUP.format(cfg={k: v for k, v in ROTARY.to_dict().items()
                              if k in ("n_layers", "d_model", "n_heads", "d_head", "n_ctx", "d_vocab",
                                       "act_fn", "attn_only", "normalization_type", "d_mlp",
                                       "positional_embedding_type", "rotary_dim")},
                         analysis="qk_circuit", out=str(out))
    nb = run_notebook(tmp_path, [setup, "raise RuntimeError('a later cell ran')", "print('x')"])
    reason = AP.reason_for("qk_circuit", ROTARY)
    assert load_metrics(out / "metrics.json")["not_applicable"] == reason
    texts = outputs_text(nb)
    assert f"not applicable to m: {reason}" in texts[0]
    assert "the rest of the first cell ran" not in texts[0]
    assert texts[1:] == ["", ""]  # the later cells were no-ops


def test_data_dependent_not_applicable_and_other_errors(tmp_path):
    out = tmp_path / "res"
    keys = ("n_layers", "d_model", "n_heads", "d_head", "n_ctx", "d_vocab", "act_fn", "attn_only",
            "normalization_type", "positional_embedding_type")
    setup = SETUP.format(cfg={k: ARENA.to_dict()[k] for k in keys}, analysis="k_composition",
                         out=str(out))
    pair = "circuits.best_pair(circuits.StudiedHeads(['1.1'], ['1.0'], {}))"
    nb = run_notebook(tmp_path, [setup, f"print('before')\n{pair}\nprint('after')", "raise RuntimeError"])
    assert load_metrics(out / "metrics.json")["not_applicable"] == NO_EARLIER_PREV_TOKEN_HEAD.format(
        prev_heads="1.0", induction_head="1.1")
    texts = outputs_text(nb)
    assert "the rest of the first cell ran" in texts[0]
    assert texts[1].startswith("before\nnot applicable to m: ") and "after" not in texts[1]
    assert texts[2] == ""
    # Any other exception is a failure, as always, and writes nothing.
    (out / "metrics.json").unlink()
    with pytest.raises(papermill.PapermillExecutionError, match="ValueError"):
        run_notebook(tmp_path, [setup, "raise ValueError('a real bug')"])
    assert not (out / "metrics.json").exists()
