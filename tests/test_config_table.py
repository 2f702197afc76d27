"""Bad configs, each a small change to config/smoke.yaml, and the exact message each must produce.

Every row goes through ``validate_config``; a few go through a real ``snakemake -n`` to show that
they stop before any rule runs (no results/ folder is made). A new plan-time check adds a row here.
"""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from induction_heads import config as C

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def put(key: str, value):
    """A change: set the dotted ``key`` (``None`` as value: delete it)."""

    def change(cfg):
        *parents, last = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)

    return change


def both(*changes):
    def change(cfg):
        for c in changes:
            c(cfg)

    return change


FOUR_HEADS = both(*(put(f"models.{m}.{k}", v) for m in ("attn2l", "attn1l") for k, v in (("n_heads", 4), ("d_head", 8))))
LOCAL = {"source": "local", "weights": "weights/mine.pt", "config": "weights/mine.json",
         "tokenizer": "weights/tokenizer.json"}
E = "config error at "

# (id, change, the message's lines; "{cwd}" stands for the working directory)
CASES = [
    ("threshold-above-one", put("analyses.head_scores.thresholds.induction", 1.7),
     [E + "analyses.head_scores.thresholds.induction: 1.7; expected a number in [0, 1]"]),
    ("threshold-negative", put("analyses.head_scores.thresholds.previous_token", -0.1),
     [E + "analyses.head_scores.thresholds.previous_token: -0.1; expected a number in [0, 1]"]),
    ("vocab-too-small-for-synonyms", put("tokenizer.vocab_size", 300),
     [E + "tokenizer.vocab_size: 300; expected at least 1024 for fuzzy_induction with "
      "n_pairs_per_sequence 6 on a trained model (single-token WordNet synonym pairs of this corpus: "
      "none up to 512 tokens, ~10 at 768, ~32 at 1024, ~350 at 3072)"]),
    ("vocab-too-small-for-special-tokens", put("tokenizer.vocab_size", 256),
     [E + "tokenizer.vocab_size: 256; expected an integer >= 257 (256 byte tokens + the special token <|BOS|>)"]),
    ("circuit-head-not-in-model", both(FOUR_HEADS, put("analyses.ablation.circuit", ["0.1", "1.10"])),
     [E + "analyses.ablation.circuit[1]: \"1.10\"; expected a head of model 'attn2l-s0' (layers 0-1, heads 0-3)",
      E + "analyses.ablation.circuit[1]: \"1.10\"; expected a head of model 'attn1l-s0' (layers 0-0, heads 0-3)"]),
    ("mosaic-local-folder-missing", put("mosaic", {"models": {"mine": {"source": "local", "path": "nowhere"}}}),
     [E + "mosaic.models.mine.path: nowhere is not a folder (expected a model folder as save_pretrained writes it)"]),
    ("mosaic-entry-trained", put("mosaic", {"models": {"mine": {"source": "train", "n_layers": 1, "d_model": 8,
                                                                 "n_heads": 1, "d_head": 8, "n_ctx": 16, "seeds": [0]}}}),
     [E + 'mosaic.models.mine.source: "train"; expected huggingface or local (the mosaic trains nothing)']),
    ("published-head-not-in-model", put("models.attn2l.published_heads", {"induction": ["1.2"], "source": "a paper"}),
     [E + "models.attn2l.published_heads.induction[0]: \"1.2\"; expected a head of attn2l (layers 0-1, heads 0-1)"]),
    ("model-named-head-not-in-model", put("models.attn2l.heads", {"induction": ["1.4"], "previous_token": ["2.0"]}),
     [E + "models.attn2l.heads.induction[0]: \"1.4\"; expected a head of attn2l (layers 0-1, heads 0-1)",
      E + "models.attn2l.heads.previous_token[0]: \"2.0\"; expected a head of attn2l (layers 0-1, heads 0-1)"]),
    ("model-named-heads-unknown-kind", put("models.attn2l.heads", {"duplicate": ["1.0"]}),
     [E + "models.attn2l.heads.duplicate: [\"1.0\"]; expected one of the keys induction, previous_token"]),
    ("circuit-head-unquoted", put("analyses.ablation.circuit", [1.1]),
     [E + 'analyses.ablation.circuit[0]: 1.1; expected a head label "L.H" as a quoted string '
      '(e.g. "1.10": unquoted, YAML reads 1.1)']),
    ("circuit-head-repeated", put("analyses.ablation.circuit", ["0.1", "0.1"]),
     [E + 'analyses.ablation.circuit: ["0.1", "0.1"]; expected a list of head labels such as '
      '["0.1", "1.10"] (no repeats)']),
    ("local-model-files-missing", put("models.mine", LOCAL),
     [E + 'models.mine.weights: "weights/mine.pt"; expected an existing file (relative paths are read from {cwd})']),
    ("trained-heads-do-not-fill-d-model", put("models.attn2l.d_head", 8),
     [E + "models.attn2l.d_head: 8; expected n_heads x d_head = d_model for a trained model (2 x 8 = 16, d_model 32)"]),
    ("override-unknown-key", put("models.attn2l.training", {"step": 80}),
     [E + "models.attn2l.training.step: 80; expected one of the keys batch_size, checkpoints, "
      "frac_random_repeat, frac_repeated_text, grad_clip, late_frac_random_repeat, "
      "late_frac_repeated_text, late_from_step, lr, pos_init_rms, random_repeat_fill, "
      "random_segment_max, random_segment_min, repeated_text_fill, sinusoidal_pos_init, steps, "
      "tied_unembed_init, "
      "warmup_steps, weight_decay (did you mean 'steps'?)"]),
    ("override-bad-type", put("models.attn2l.training", {"lr": "fast"}),
     [E + 'models.attn2l.training.lr: "fast"; expected a number > 0']),
    ("override-warmup-not-below-steps", put("models.attn2l.training", {"steps": 5}),
     [E + "training.warmup_steps: 5; expected fewer than models.attn2l.training.steps (5)",
      E + "training.checkpoints[0].stop: 40; expected at most models.attn2l.training.steps (5)",
      E + "training.late_from_step: 20; expected fewer than models.attn2l.training.steps (5), or null",
      E + "analyses.training_dynamics.smooth_width: 3; expected at most the 2 checkpoints of model "
      "'attn2l' (training.checkpoints)"]),
    ("typo-top-level", put("trainig", {"steps": 3}),
     [E + 'trainig: {"steps": 3}; expected one of the keys analyses, corpus, data, device, '
      "downloads_dir, lock_dir, models, mosaic, report, threads_per_job, tokenizer, training (did you mean 'training'?)"]),
    ("typo-model-entry", put("models.attn2l.n_layer", 2),
     [E + "models.attn2l.n_layer: 2; expected one of the keys d_head, d_model, data, enabled, heads, n_ctx, "
      "n_heads, n_layers, published_heads, role, seeds, source, training (did you mean 'n_layers'?)"]),
    ("typo-analysis-parameter", put("analyses.ablation.n_text_sequence", 8),
     [E + "analyses.ablation.n_text_sequence: 8; expected one of the keys circuit, circuit_kind, "
      "max_fast_vs_reference_diff, n_repeated_sequences, n_text_sequences, reference_sequences "
      "(did you mean 'n_text_sequences'?)"]),
    ("unknown-analysis", put("analyses.telepathy", {}),
     [E + "analyses.telepathy: {}; expected one of the keys ablation, composition_scores, fuzzy_induction, "
      "head_scores, k_composition, logit_attribution, olsson_scores, ov_circuit, path_patching, qk_circuit, training_dynamics"]),
    ("typo-checkpoint-item", put("training.checkpoints", [{"start": 0, "stop": 40, "evry": 20}]),
     [E + "training.checkpoints[0].every: missing; expected an integer >= 1",
      E + "training.checkpoints[0].evry: 20; expected one of the keys every, start, stop (did you mean 'every'?)"]),
    ("count-zero", put("analyses.fuzzy_induction.n_sequences", 0),
     [E + "analyses.fuzzy_induction.n_sequences: 0; expected an integer >= 1"]),
    ("batch-size-zero", put("training.batch_size", 0),
     [E + "training.batch_size: 0; expected an integer >= 1"]),
    ("warmup-not-below-steps", put("training.warmup_steps", 40),
     [E + "training.warmup_steps: 40; expected fewer than training.steps (40)"]),
    ("checkpoint-beyond-steps", put("training.checkpoints", [{"start": 0, "stop": 80, "every": 20}]),
     [E + "training.checkpoints[0].stop: 80; expected at most training.steps (40)"]),
    ("checkpoint-start-not-below-stop",
     put("training.checkpoints", [{"start": 0, "stop": 40, "every": 20}, {"start": 30, "stop": 20, "every": 5}]),
     [E + "training.checkpoints[1].start: 30; expected less than stop (20)"]),
    ("no-model-enabled", both(put("models.attn2l.enabled", False), put("models.attn1l.enabled", False)),
     [E + "models: every model disabled (attn1l, attn2l); expected at least one model with enabled: true"]),
    ("repeated-tokens-override-beyond-context", put("models.attn1l.data", {"repeated_tokens": {"seq_len": 40}}),
     [E + "models.attn1l.data.repeated_tokens.seq_len: 40; expected at most 31: BOS + 2 x seq_len tokens must "
      "fit the context of model 'attn1l' (n_ctx 64)"]),
    ("short-context-model", put("models.attn1l.n_ctx", 40),
     [E + "training.random_segment_max: 20; expected at most (n_ctx - 1) // 2 = 19: two copies must fit the "
      "context of model 'attn1l' (n_ctx 40)",
      E + "analyses.olsson_scores.n_tokens: 15; expected at most 9: BOS + 4 x 15 tokens (61) must fit the "
      "context of model 'attn1l-s0' (n_ctx 40)"]),
    ("attention-example-beyond-a-models-override",
     both(put("models.attn1l.data", {"repeated_tokens": {"seq_len": 10}}), put("analyses.head_scores.example_len", 12)),
     [E + "analyses.head_scores.example_len: 12; expected at most models.attn1l.data.repeated_tokens.seq_len (10)"]),
    ("data-override-unknown-section", put("models.attn2l.data", {"synonyms": {"max_sense_rank": 2}}),
     [E + 'models.attn2l.data.synonyms: {"max_sense_rank": 2}; expected one of the keys heldout, repeated_tokens']),
    ("icl-window-empty", both(put("models.attn1l.enabled", False), put("analyses.head_scores.icl_early", [0.0, 0.01])),
     [E + "analyses.head_scores.icl_early: [0.0, 0.01]; expected windows of at least one token each, after BOS, "
      "in the 64-token held-out rows of model 'attn2l-s0' (here tokens [0, 1) and [48, 64))"]),
    ("icl-window-reversed", put("analyses.head_scores.icl_late", [0.9, 0.8]),
     [E + "analyses.head_scores.icl_late: [0.9, 0.8]; expected [start, stop] with start < stop"]),
    ("icl-early-not-before-late", put("analyses.head_scores.icl_early", [0.5, 0.8]),
     [E + "analyses.head_scores.icl_early: [0.5, 0.8]; expected a window that ends where icl_late starts (0.75) or before"]),
    ("icl-window-beyond-context", put("analyses.head_scores.icl_late", [0.75, 1.5]),
     [E + "analyses.head_scores.icl_late[1]: 1.5; expected a number in [0, 1]"]),
    ("late-mix-over-one", both(put("training.late_from_step", 20), put("training.late_frac_repeated_text", 0.8),
                               put("training.late_frac_random_repeat", 0.3)),
     [E + "training.late_frac_random_repeat: 0.3; expected late_frac_repeated_text + late_frac_random_repeat <= 1 "
      "(they sum to 1.1)"]),
    ("late-mix-after-the-end", put("training.late_from_step", 40),
     [E + "training.late_from_step: 40; expected fewer than training.steps (40), or null"]),
    ("random-segment-beyond-context", put("training.random_segment_max", 40),
     [E + "training.random_segment_max: 40; expected at most (n_ctx - 1) // 2 = 31: two copies must fit "
      "the context of model 'attn2l' (n_ctx 64)",
      E + "training.random_segment_max: 40; expected at most (n_ctx - 1) // 2 = 31: two copies must fit "
      "the context of model 'attn1l' (n_ctx 64)"]),
    ("random-segment-min-above-max", put("training.random_segment_min", 25),
     [E + "training.random_segment_min: 25; expected at most random_segment_max (20)"]),
    ("row-fractions-above-one", put("training.frac_repeated_text", 0.7),
     [E + "training.frac_random_repeat: 0.4; expected frac_repeated_text + frac_random_repeat <= 1 (they sum to 1.1)"]),
    ("attention-example-beyond-seq-len", put("analyses.head_scores.example_len", 21),
     [E + "analyses.head_scores.example_len: 21; expected at most data.repeated_tokens.seq_len (20)"]),
    ("fuzzy-sequences-beyond-context", put("analyses.fuzzy_induction.n_pairs_per_sequence", 32),
     [E + "analyses.fuzzy_induction.n_pairs_per_sequence: 32; expected at most 31: BOS + 2 x n words must "
      "fit the context of model 'attn2l-s0' (n_ctx 64)",
      E + "analyses.fuzzy_induction.n_pairs_per_sequence: 32; expected at most 31: BOS + 2 x n words must "
      "fit the context of model 'attn1l-s0' (n_ctx 64)",
      E + "tokenizer.vocab_size: 1024; expected at least 3072 for fuzzy_induction with n_pairs_per_sequence "
      "32 on a trained model (single-token WordNet synonym pairs of this corpus: none up to 512 tokens, "
      "~10 at 768, ~32 at 1024, ~350 at 3072)"]),
    ("formation-window-not-a-rise", put("analyses.training_dynamics.window_low", 0.9),
     [E + "analyses.training_dynamics.window_low: 0.9; expected less than window_high (0.8)"]),
    ("smoothing-wider-than-the-run", put("analyses.training_dynamics.smooth_width", 5),
     [E + "analyses.training_dynamics.smooth_width: 5; expected at most the 3 checkpoints of model 'attn2l' (training.checkpoints)",
      E + "analyses.training_dynamics.smooth_width: 5; expected at most the 3 checkpoints of model 'attn1l' (training.checkpoints)"]),
    ("unknown-choice", put("analyses.ablation.circuit_kind", "half"),
     [E + "analyses.ablation.circuit_kind: \"half\"; expected one of 'mean', 'zero'"]),
    ("device-unknown", put("device", "gpu"),
     [E + 'device: "gpu"; expected auto, cpu, cuda, cuda:N or mps']),
    ("number-as-text", put("analyses.composition_scores.n_baseline_samples", "60"),
     [E + 'analyses.composition_scores.n_baseline_samples: "60"; expected an integer >= 1 (this is text: '
      "quoted in the YAML, or a nested `--config` value, which Snakemake reads as text; use a config file)"]),
    ("learning-rate-zero", put("training.lr", 0),
     [E + "training.lr: 0; expected a number > 0"]),
    ("heldout-fraction-whole", put("corpus.heldout_fraction", 1.0),
     [E + "corpus.heldout_fraction: 1.0; expected a number > 0 and < 1"]),
    ("seed-negative", put("models.attn1l.seeds", [-1]),
     [E + "models.attn1l.seeds[0]: -1; expected an integer >= 0"]),
    ("model-name", put("models.2l", SMOKE["models"]["attn1l"]),
     [E + "models.2l: \"2l\"; expected a name: a letter, then letters, digits, '.', '_' or '-', "
      "not ending in '.' or '-'"]),
    ("required-key-missing", put("training.steps", None),
     [E + "training.steps: missing; expected an integer >= 1"]),
    ("model-source-missing", put("models.attn1l.source", None),
     [E + "models.attn1l.source: missing; expected one of \"train\", \"huggingface\", \"local\""]),
    ("no-models", put("models", {}),
     [E + "models: {}; expected a mapping of model names to model entries (at least one)"]),
]  # fmt: skip


def bad_config(change) -> dict:
    cfg = copy.deepcopy(SMOKE)
    change(cfg)
    return cfg


def test_the_table_has_every_kind_of_case():
    assert len(CASES) >= 25 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case, change, lines", CASES, ids=[c[0] for c in CASES])
def test_bad_config_gives_its_message(case, change, lines, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(C.ConfigError) as err:
        C.validate_config(bad_config(change))
    expected = [line.replace("{cwd}", str(tmp_path)) for line in lines]
    assert sorted(str(err.value).splitlines()) == sorted(expected)
    assert [e.line for e in err.value.errors] == str(err.value).splitlines()


def test_shapes_legal_in_published_models_are_not_errors(tmp_path, monkeypatch):
    """n_heads x d_head != d_model is refused for a model trained here, not for a published one;
    a local model's files that exist pass."""
    monkeypatch.chdir(tmp_path)
    cfg = bad_config(put("models.hub", {
        "source": "huggingface", "repo_id": "a/b", "format": "transformer_lens",
        "n_layers": 2, "n_ctx": 128, "d_vocab": 1024,
        "config": {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_head": 8, "n_ctx": 128, "d_vocab": 1024},
    }))  # fmt: skip
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "mine.pt").write_bytes(b"")
    (tmp_path / "weights" / "tokenizer.json").write_text("{}")
    (tmp_path / "weights" / "mine.json").write_text('{"n_layers": 1, "n_heads": 2, "d_model": 10, "d_head": 3, "n_ctx": 64}')
    cfg["models"]["mine"] = dict(LOCAL)
    C.validate_config(cfg)


def test_the_shared_repeated_length_follows_a_shorter_context():
    """The shared seq_len (20 here) is capped per model at (n_ctx - 1) // 2 where it does not fit
    (attn1l, n_ctx 40 -> 19); a model it fits keeps it, and a length an entry sets stays as set."""
    cfg = C.validate_config(bad_config(both(put("models.attn1l.n_ctx", 40), put("training.random_segment_max", 19),
                                            put("analyses.olsson_scores.n_tokens", 9))))  # fmt: skip
    assert C.data_config_dict(cfg, "attn1l")["repeated_tokens"]["seq_len"] == 19
    assert C.data_config_dict(cfg, "attn2l")["repeated_tokens"]["seq_len"] == cfg["data"]["repeated_tokens"]["seq_len"] == 20
    cfg["models"]["attn1l"]["data"] = {"repeated_tokens": {"seq_len": 12}}
    assert C.data_config_dict(cfg, "attn1l")["repeated_tokens"]["seq_len"] == 12


# A few rows through Snakemake itself: refused before any rule runs.
DRY_RUN = ["threshold-above-one", "vocab-too-small-for-synonyms", "circuit-head-not-in-model",
           "local-model-files-missing", "typo-model-entry"]  # fmt: skip


@pytest.mark.workflow
@pytest.mark.parametrize("case", DRY_RUN)
def test_snakemake_stops_before_any_rule(case, tmp_path):
    _, change, lines = next(c for c in CASES if c[0] == case)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(bad_config(change)))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--cores", "1", "-n", "--configfile", str(bad)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for line in lines:
        assert line.replace("{cwd}", str(tmp_path)) in out, out[-2000:]
    assert not (tmp_path / "results").exists()
