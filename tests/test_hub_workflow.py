"""The DAG on published models, as a user with internet runs it — against the loopback stand-in.

The command is the README's hub command with the smoke config underneath
(``--configfile config/smoke.yaml config/hub.yaml``) and the stand-in as ``HF_ENDPOINT``. The
stand-in serves, under the real repository names of ``config/hub.yaml``, tiny models with the
shapes each entry declares (layers, context, vocabulary; only the width is small), made by
``transformers`` or TransformerLens, in the real file formats. One overlay shrinks ARENA's inline
config to that width and adds a model folder written by ``save_pretrained`` as ``source: local``.

The run is the whole DAG, report included: every analysis on every published stand-in either
gives a number or records one of the fixed not-applicable reasons, and the test names exactly
which (:data:`NOT_APPLICABLE`). The overlay disables the trained models (``enabled: false``):
``tests/test_workflow.py`` runs those, and the report must build from published models alone.
"""

from __future__ import annotations

import json
import os
import shutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.hub_standin import (
    HubStandIn,
    legacy,
    neel_config_json,
    saved,
    tl_bytes,
    tl_model,
    tokenizer_files,
    transformers_model,
)
from induction_heads.applicability import (
    NO_EARLIER_PREV_TOKEN_HEAD,
    REASONS,
    TOO_FEW_SYNONYM_PAIRS,
    WEIGHT_CIRCUITS,
    not_applicable_reason,
)
from induction_heads.contracts import CONTRACTS
from tests.test_sources import hub_env

ROOT = Path(__file__).resolve().parents[1]
DOWNLOADS = ROOT / "results" / "downloads"
REGISTRY = yaml.safe_load((ROOT / "config" / "hub.yaml").read_text())["models"]
WIDTH = dict(d_model=16, n_heads=2, d_head=8)
SERVED_CHECKPOINTS = 2  # of pythia-70m's list: enough to show two revisions of one repo

pytestmark = pytest.mark.workflow


def serve_registry(hub: HubStandIn) -> dict:
    """Publish a stand-in for every registry entry; return the overlay config's `models`."""
    overlay = {}
    for i, (name, spec) in enumerate(REGISTRY.items()):
        shape = dict(n_ctx=spec["n_ctx"], d_vocab=spec["d_vocab"], n_layers=spec["n_layers"])
        if spec.get("format", "transformers") == "transformers":
            revisions = ["main", *spec.get("checkpoints", [])[:SERVED_CHECKPOINTS]]
            for j, rev in enumerate(revisions):
                model = transformers_model(spec["architecture"], spec["d_vocab"], spec["n_ctx"], seed=10 * i + j,
                                           n_layers=spec["n_layers"], width=16)  # fmt: skip
                hub.add(spec["repo_id"], {**saved(model), **tokenizer_files("json")}, branch=rev)
        elif spec.get("config"):  # ARENA's layout: the .pth only, config in the entry
            small = {**spec["config"], **WIDTH}
            overlay[name] = {"config": small}
            model = tl_model(i, **{k: v for k, v in small.items()})
            hub.add(spec["repo_id"], {spec["weights_file"]: tl_bytes(legacy(model))})
        else:  # NeelNanda's layout
            model = tl_model(i, attn_only=True, normalization_type="LN", positional_embedding_type="shortformer",
                             **shape, **WIDTH)  # fmt: skip
            files = {"config.json": json.dumps(neel_config_json(model.cfg)).encode(),
                     "model_final.pth": tl_bytes(model.state_dict())}  # fmt: skip
            hub.add(spec["repo_id"], files)
    for spec in REGISTRY.values():
        tok_repo = (spec.get("tokenizer") or {}).get("repo_id")
        if tok_repo and tok_repo not in hub.repos:
            hub.add(tok_repo, tokenizer_files("json"))
    hub.add("NeelNanda/gpt-neox-tokenizer-digits", tokenizer_files("json"))
    return overlay


MOSAIC_BROKEN = "broken-gpt2"


def serve_mosaic(hub: HubStandIn, work: Path, gpt2_folder: Path) -> dict:
    """The mosaic's entries: three architectures made by transformers (GPT-NeoX and OPT served by
    the stand-in, a GPT-2 folder on disk) and a GPT-2 folder whose weights file is not a
    safetensors file (it passes the plan, which sees the files, and fails to load)."""
    hub.add("test/tiny-opt", {**saved(transformers_model("OPTForCausalLM", 320, 128, seed=71)), **tokenizer_files("json")})
    broken = work / MOSAIC_BROKEN
    shutil.copytree(gpt2_folder, broken)
    (broken / "model.safetensors").write_bytes(b"these bytes are not a safetensors file")
    neox = {k: v for k, v in REGISTRY["pythia-70m"].items() if k != "checkpoints"}
    opt = {"source": "huggingface", "repo_id": "test/tiny-opt", "architecture": "OPTForCausalLM",
           "n_layers": 2, "n_ctx": 128, "d_vocab": 320, "has_mlp": True, "download_mb": 1}  # fmt: skip
    return {"neox": neox, "opt": opt, "gpt2-local": {"source": "local", "path": str(gpt2_folder)},
            MOSAIC_BROKEN: {"source": "local", "path": str(broken)}}


PUBLISHED_HEADS = {"induction": ["1.1", "1.0"], "previous_token": ["0.1"], "source": "a test"}


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("hub_dag")
    folder = work / "my-gpt2"  # a user's own model, as save_pretrained writes it
    transformers_model("GPT2LMHeadModel", 320, 128, seed=99).save_pretrained(folder)
    for fname, data in tokenizer_files("json").items():
        (folder / fname).write_bytes(data)
    with HubStandIn() as hub:
        overlay = serve_registry(hub)
        overlay["my-gpt2"] = {"source": "local", "path": str(folder)}
        overlay.update(attn1l={"enabled": False}, attn2l={"enabled": False})  # test_workflow.py runs them
        overlay["attn-only-4l"] = {"heads": NAMED_HEADS}  # studied whatever the detector finds
        overlay["attn_only_2L_half"]["published_heads"] = PUBLISHED_HEADS  # the stand-in has 2 heads, not ARENA's 12
        mosaic = serve_mosaic(hub, work, folder)
        # the smoke config's repeated-token settings: the mosaic's GPT-2 scores must equal its head-scores job's
        mosaic_config = {"seq_len": 20, "batch": 16, "seed": 0, "models": mosaic}
        (work / "overlay.yaml").write_text(yaml.safe_dump({"models": overlay, "mosaic": mosaic_config}))
        instances = [*REGISTRY, *[f"pythia-70m@{r}" for r in REGISTRY["pythia-70m"]["checkpoints"][:SERVED_CHECKPOINTS]],
                     "my-gpt2"]  # fmt: skip
        # the whole DAG (rule all: the report), and the checkpoints' head scores, which no report
        # section reads yet
        targets = ["all", *[f"results/{m}/head_scores/metrics.json" for m in instances if "@" in m]]
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *targets, "--directory", str(work),
               "--cores", "2", "--configfile", str(ROOT / "config/smoke.yaml"), str(ROOT / "config/hub.yaml"),
               str(work / "overlay.yaml"), "--config", f"downloads_dir={DOWNLOADS}", "lock_dir=locks"]  # fmt: skip
        env = hub_env(work / "hf_home", hub.endpoint)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {"work": work, "instances": instances, "hub": hub}


def test_every_published_model_reaches_head_scores(hub_run):
    work = hub_run["work"]
    for model in hub_run["instances"]:
        metrics = json.loads((work / "results" / model / "head_scores" / "metrics.json").read_text())
        score = metrics["metrics"]["best_induction_score"]["value"]
        assert 0.0 <= score <= 1.0, (model, score)
        info = json.loads((work / "results" / "models" / model / "model_info.json").read_text())
        assert metrics["weights_sha256"] == info["sha256"]


def test_locks_written_per_repository_and_revision(hub_run):
    locks = {p.name for p in (hub_run["work"] / "locks").glob("*.json")}
    for spec in REGISTRY.values():
        assert f"{spec['repo_id'].replace('/', '--')}@main.json" in locks
    for rev in REGISTRY["pythia-70m"]["checkpoints"][:SERVED_CHECKPOINTS]:
        assert f"EleutherAI--pythia-70m@{rev}.json" in locks


def test_checkpoint_revisions_are_distinct_models(hub_run):
    work = hub_run["work"]
    infos = [json.loads((work / "results/models" / m / "model_info.json").read_text())
             for m in ("pythia-70m", "pythia-70m@step0", "pythia-70m@step64")]  # fmt: skip
    commits = {i["extra"]["weights"]["commit"] for i in infos}
    assert len(commits) == 3 and len({i["sha256"] for i in infos}) == 3


# What the architectures rule out (a requirement of applicability.REASONS), and what the random
# stand-ins' own heads and vocabularies do (a data reason). Every other analysis must give numbers.
LN_ARCH = {"ablation": "heads_only_residual"}
ONE_LAYER = dict.fromkeys(("k_composition", "composition_scores", "path_patching"), "two_layers")
NO_EARLIER = dict.fromkeys(("k_composition", "composition_scores", "path_patching"), "no_earlier_prev_token_head")
FEW_PAIRS = {"fuzzy_induction": "too_few_synonym_pairs"}  # the stand-ins' tokenizer has few words
NOT_APPLICABLE = {
    "attn_only_2L_half": {**NO_EARLIER, **FEW_PAIRS},
    "attn-only-1l": {**LN_ARCH, **ONE_LAYER, **FEW_PAIRS},
    "attn-only-2l": {**LN_ARCH, **FEW_PAIRS},
    "attn-only-3l": {**LN_ARCH, **FEW_PAIRS},
    "attn-only-4l": {**LN_ARCH, **FEW_PAIRS},  # its config names the heads (NAMED_HEADS)
    "pythia-70m": {**LN_ARCH, **NO_EARLIER, **FEW_PAIRS, "qk_circuit": "learned_positions"},
    "my-gpt2": {**LN_ARCH, **FEW_PAIRS},
}
NAMED_HEADS = {"induction": ["3.1"], "previous_token": ["0.0"]}  # attn-only-4l's stand-in finds no such pair
DATA_REASONS = {"no_earlier_prev_token_head": NO_EARLIER_PREV_TOKEN_HEAD, "too_few_synonym_pairs": TOO_FEW_SYNONYM_PAIRS}


def template_pattern(text: str) -> str:
    """A regular expression for a reason template, each ``{field}`` standing for any text."""
    return ".+?".join(re.escape(part) for part in re.split(r"\{[a-z_]+\}", text))


def reason_kind(analysis: str, reason: str) -> str:
    """Which fixed sentence ``reason`` is: a requirement of ``analysis`` or a data reason (the
    whole text must match the template, each field standing for any text)."""
    templates = {req: text for (a, req), text in REASONS.items() if a == analysis} | DATA_REASONS
    kinds = [kind for kind, text in templates.items() if re.fullmatch(template_pattern(text), reason)]
    assert len(kinds) == 1, (analysis, reason, kinds)
    return kinds[0]


def test_every_analysis_gives_numbers_or_one_of_the_expected_reasons(hub_run):
    work = hub_run["work"]
    seen = {}
    for model in [*REGISTRY, "my-gpt2"]:
        for analysis in (a for a, c in CONTRACTS.items() if not c.family):
            data = json.loads((work / "results" / model / analysis / "metrics.json").read_text())
            reason = not_applicable_reason(data)
            if reason is None:
                assert data["metrics"], (model, analysis)  # a result, not an empty file
                # every stand-in but ARENA's has LayerNorm: its weight circuits say what they leave out
                noted = "attention_only_approximation" in data["text"]
                assert noted == (analysis in WEIGHT_CIRCUITS and model != "attn_only_2L_half"), (model, analysis)
                if analysis == "k_composition":  # the exact score split needs ARENA's architecture
                    assert ("decomposition_not_run" in data["text"]) == (model != "attn_only_2L_half")
            else:
                seen.setdefault(model, {})[analysis] = reason_kind(analysis, reason)
    assert seen == NOT_APPLICABLE


def test_report_shows_every_model_and_each_reason(hub_run):
    html = (hub_run["work"] / "results" / "report" / "report.html").read_text()
    assert (hub_run["work"] / "results" / "report" / "report.pdf").stat().st_size > 10_000
    for model in [*REGISTRY, "my-gpt2"]:
        assert model in html
    assert "learned absolute position embeddings (W_pos)" in html  # pythia-70m's qk_circuit
    assert "needs at least 2 layers" in html


def test_heads_named_in_a_model_entry_are_the_ones_studied(hub_run):
    results = hub_run["work"] / "results" / "attn-only-4l"
    kcomp = json.loads((results / "k_composition" / "metrics.json").read_text())
    assert (kcomp["metrics"]["kcomp_prev_head"]["value"], kcomp["metrics"]["kcomp_induction_head"]["value"]) == ("0.0", "3.1")
    assert kcomp["text"]["fallback_prev_token"].startswith("The config names the previous-token heads to study: 0.0")
    scores = json.loads((results / "head_scores" / "metrics.json").read_text())["metrics"]
    assert scores["studied_induction_heads"]["value"] == ["3.1"]
    assert "0.0" not in scores["prev_token_heads"]["value"]  # the detector did not find it: the config's choice won


def test_heads_a_paper_names_are_reported_found_or_missed_by_their_scores(hub_run):
    """Each published head's row: its score from the head-scores table, found iff it reaches the
    threshold; the found and missed lists split the named heads accordingly."""
    data = json.loads((hub_run["work"] / "results" / "attn_only_2L_half" / "head_scores" / "metrics.json").read_text())
    table = data["tables"]["head_scores"]
    score_of = {(row[0], col): row[table["columns"].index(col)] for row in table["rows"] for col in table["columns"][1:]}
    thresholds = data["params"]["thresholds"]
    rows = data["tables"]["published_heads"]["rows"]
    assert [r[0] for r in rows] == PUBLISHED_HEADS["induction"] + PUBLISHED_HEADS["previous_token"]
    for head, kind, score, threshold, found in rows:
        name = kind.replace("-", "_")
        assert score == pytest.approx(score_of[(head, name)], abs=1e-4) and threshold == thresholds[name]
        assert found == ("yes" if score >= threshold else "no")
    metrics = data["metrics"]
    for kind, stem in (("induction", "induction"), ("previous_token", "prev_token")):
        found = [r[0] for r in rows if r[1] == kind.replace("_", "-") and r[4] == "yes"]
        assert metrics[f"published_{stem}_heads_found"]["value"] == found
        assert sorted(found + metrics[f"published_{stem}_heads_missed"]["value"]) == sorted(PUBLISHED_HEADS[kind])


def test_the_mosaic_lists_exactly_the_broken_model_as_failed_with_its_reason(hub_run):
    """Every mosaic model but the broken one is scored (its matrices have its shape and match
    the head-scores job of the same weights where there is one); the broken one is listed with
    the loader's reason, and the mosaic, its figure and the report still build."""
    results = hub_run["work"] / "results"
    data = json.loads((results / "mosaic" / "mosaic" / "metrics.json").read_text())
    assert data["metrics"]["mosaic_models_failed"]["value"] == [MOSAIC_BROKEN]
    assert sorted(data["metrics"]["mosaic_models_scored"]["value"]) == ["gpt2-local", "neox", "opt"]
    rows = {r[0]: r for r in data["tables"]["mosaic"]["rows"]}
    assert set(rows) == {"gpt2-local", "neox", "opt", MOSAIC_BROKEN}
    reason = rows[MOSAIC_BROKEN][-1]
    assert reason.startswith("SafetensorError: Error while deserializing header"), reason  # the loader's own words
    layers = {"gpt2-local": 2, "neox": REGISTRY["pythia-70m"]["n_layers"], "opt": 2}  # 2 heads each
    for name, n_layers in layers.items():
        scored = json.loads((results / "mosaic" / name / "scores.json").read_text())
        assert scored["status"] == "ok" and rows[name][-1] == ""
        assert [len(row) for row in scored["induction"]] == [2] * n_layers
        assert rows[name][2] == f"{n_layers} x 2"
    # the same GPT-2 weights and token settings as the head-scores job of my-gpt2: the same scores
    own = json.loads((results / "my-gpt2" / "head_scores" / "metrics.json").read_text())
    table = own["tables"]["head_scores"]
    ours = json.loads((results / "mosaic" / "gpt2-local" / "scores.json").read_text())
    for row in table["rows"]:
        layer, head = map(int, row[0].split("."))
        for kind in ("induction", "previous_token"):
            assert ours[kind][layer][head] == pytest.approx(row[table["columns"].index(kind)], abs=1e-4)
    assert {"mosaic_induction", "mosaic_previous_token"} <= set(data["figures"])
    html = (results / "report" / "report.html").read_text()
    assert "The induction mosaic" in html and MOSAIC_BROKEN in html
