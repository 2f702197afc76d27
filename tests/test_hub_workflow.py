"""The DAG on published models, as a user with internet runs it — against the loopback stand-in.

The command is the README's hub command with the smoke config underneath
(``--configfile config/smoke.yaml config/hub.yaml``) and the stand-in as ``HF_ENDPOINT``. The
stand-in serves, under the real repository names of ``config/hub.yaml``, tiny models with the
shapes each entry declares (layers, context, vocabulary; only the width is small), made by
``transformers`` or TransformerLens, in the real file formats. One overlay shrinks ARENA's inline
config to that width and adds a model folder written by ``save_pretrained`` as ``source: local``.
"""

from __future__ import annotations

import json
import os
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
        (work / "overlay.yaml").write_text(yaml.safe_dump({"models": overlay}))
        instances = [*REGISTRY, *[f"pythia-70m@{r}" for r in REGISTRY["pythia-70m"]["checkpoints"][:SERVED_CHECKPOINTS]],
                     "my-gpt2"]  # fmt: skip
        targets = [f"results/{m}/head_scores/metrics.json" for m in instances]
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
