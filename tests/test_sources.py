"""Models that come in from outside: the hub (a loopback stand-in, never the internet) and the
user's disk, for every supported architecture, with lock files.

The stand-in serves tiny random models made by ``transformers`` itself (``save_pretrained``) and
TransformerLens-native state dicts in ARENA's and NeelNanda's layouts, with tokenizers in their
real file formats. ``huggingface_hub`` reads ``HF_HOME``/``HF_ENDPOINT``/``HF_HUB_OFFLINE`` when it
is imported, so obtaining runs in a subprocess with that environment (one per scenario, several
models each: importing torch + transformers is the slow part). The comparison with the source
model's own forward pass runs here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer

from tests.hub_standin import (
    HubStandIn,
    legacy,
    tl_model,
    neel_config_json,
    saved,
    sha256,
    tl_bytes,
    tokenizer_files,
    transformers_model,
)
from induction_heads import weights as W
from induction_heads.architecture import attn_only_config
from induction_heads.sources.lock import lock_path, read_lock

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_TIMEOUT = 600
VOCAB = 320  # the stand-in tokenizers' size
TOKENS = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(0))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_env(hf_home: Path, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    """The environment minus anything that could point huggingface_hub elsewhere; the endpoint
    defaults to a closed loopback port, so nothing leaves the machine."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.upper().startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_")) and "PROXY" not in k.upper()
    }  # fmt: skip
    env.update(
        HF_HOME=str(hf_home), HF_ENDPOINT=endpoint or f"http://127.0.0.1:{closed_port()}",
        HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_XET="1",
        NO_PROXY="127.0.0.1,localhost", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"),
    )  # fmt: skip
    env.update(extra)
    return env


DRIVER = r"""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from induction_heads.sources import obtain
jobs = json.loads(Path(sys.argv[1]).read_text())
results = {}
for job in jobs:
    t0 = time.monotonic()
    try:
        info = obtain(job["entry"], job["name"], Path(job["out_dir"]), Path(job["lock_dir"]), job.get("revision"))
        out = {"ok": True, "info": info.__dict__}
    except Exception as exc:
        out = {"ok": False, "type": type(exc).__name__, "error": str(exc)}
    out["seconds"] = time.monotonic() - t0
    results[job["key"]] = out
Path(sys.argv[2]).write_text(json.dumps(results))
"""


def run_obtain(work: Path, env: dict[str, str], jobs: dict[str, dict]) -> dict[str, dict]:
    """Obtain each ``key: {"entry", "name"?, "revision"?}`` in one subprocess; key -> result."""
    work.mkdir(parents=True, exist_ok=True)
    job_list = [{"key": k, "name": j.get("name", k), "entry": j["entry"], "revision": j.get("revision"),
                 "out_dir": str(work / "models" / k), "lock_dir": str(work / "locks")}
                for k, j in jobs.items()]  # fmt: skip
    (work / "jobs.json").write_text(json.dumps(job_list))
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(work / "jobs.json"), str(work / "results.json")],
        env=env, cwd=work, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((work / "results.json").read_text())


def hf(repo_id: str, **extra) -> dict:
    return {"source": "huggingface", "repo_id": repo_id, **extra}


def assert_refused(result: dict, *needles: str) -> str:
    assert not result["ok"], f"expected a refusal, got {result}"
    for needle in needles:
        assert needle in result["error"], f"{needle!r} not in:\n{result['error']}"
    return result["error"]


def logprobs(model, tokens=TOKENS) -> torch.Tensor:
    with torch.no_grad():
        out = model(tokens)
    return (out.logits if hasattr(out, "logits") else out).log_softmax(-1)


# --------------------------------------------------------------------------- the stand-in's repos

HF_ARCHS = {  # repo -> (architecture, model vocabulary, tokenizer format)
    "openai-community/gpt2-tiny": ("GPT2LMHeadModel", VOCAB, "json"),
    "EleutherAI/gpt-neo-tiny": ("GPTNeoForCausalLM", VOCAB, "json"),
    "EleutherAI/pythia-tiny": ("GPTNeoXForCausalLM", VOCAB + 8, "json"),  # padded, as Pythia's
    "facebook/opt-tiny": ("OPTForCausalLM", VOCAB, "vocab"),  # vocab.json + merges.txt only
}
PYTHIA_STEPS = ("step1", "step2")


ARENA_CFG = dict(attn_only=True, normalization_type=None, positional_embedding_type="shortformer")
NEEL_TOYS = {  # repo -> TransformerLens config of the toy
    "NeelNanda/Attn_Only_2L_tiny": dict(attn_only=True, normalization_type="LN", positional_embedding_type="shortformer", act_fn=None),
    "NeelNanda/GELU_2L_tiny": dict(attn_only=False, d_mlp=64, act_fn="gelu", normalization_type="LN"),
    "NeelNanda/SoLU_2L_tiny": dict(attn_only=False, d_mlp=64, act_fn="solu_ln", normalization_type="LN"),
}  # fmt: skip


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """The stand-in hub, filled; yields (hub, source models by key)."""
    hub = HubStandIn()
    sources = {}
    for i, (repo, (arch, vocab, tok_kind)) in enumerate(HF_ARCHS.items()):
        model = transformers_model(arch, vocab, seed=i)
        sources[repo] = model
        hub.add(repo, {**saved(model), **tokenizer_files(tok_kind)})
    for step, seed in zip(PYTHIA_STEPS, (10, 11)):
        model = transformers_model("GPTNeoXForCausalLM", VOCAB + 8, seed=seed)
        sources[f"pythia@{step}"] = model
        hub.add("EleutherAI/pythia-tiny", {**saved(model), **tokenizer_files("json")}, branch=step)
    arena = tl_model(20, **ARENA_CFG)
    sources["arena"] = arena
    hub.add("callummcdougall/arena-tiny", {"arena_tiny.pth": tl_bytes(legacy(arena))})
    hub.add("EleutherAI/neox-tokenizer-tiny", tokenizer_files("json"))
    hub.add("NeelNanda/gpt-neox-tokenizer-digits", tokenizer_files("json"))
    for j, (repo, fields) in enumerate(NEEL_TOYS.items()):
        toy = tl_model(30 + j, **fields)
        sources[repo] = toy
        files = {"config.json": json.dumps(neel_config_json(toy.cfg)).encode(),
                 "model_final.pth": tl_bytes(toy.state_dict()), "model_1000.pth": tl_bytes(toy.state_dict())}  # fmt: skip
        hub.add(repo, files)
    hub.add("someone/bert-tiny", {"config.json": json.dumps({"architectures": ["BertForMaskedLM"]}).encode(),
                                  "model.safetensors": b"not used"})  # fmt: skip
    with hub:
        yield hub, sources


ARENA_ENTRY = hf("callummcdougall/arena-tiny", format="transformer_lens",
                 config=dict(n_layers=2, d_model=32, n_heads=2, d_head=16, n_ctx=128, d_vocab=VOCAB, **ARENA_CFG),
                 tokenizer={"repo_id": "EleutherAI/neox-tokenizer-tiny"}, bos_token_id=0)  # fmt: skip


@pytest.fixture(scope="module")
def first_run(standin, tmp_path_factory):
    hub, _ = standin
    work = tmp_path_factory.mktemp("first")
    jobs = {repo.split("/")[1]: {"entry": hf(repo, architecture=arch)} for repo, (arch, _, _) in HF_ARCHS.items()}
    for step in PYTHIA_STEPS:
        jobs[f"pythia-tiny@{step}"] = {"entry": hf("EleutherAI/pythia-tiny"), "revision": step}
    jobs["arena"] = {"entry": ARENA_ENTRY}
    for repo in NEEL_TOYS:
        jobs[repo.split("/")[1]] = {"entry": hf(repo, format="transformer_lens")}
    jobs["bert"] = {"entry": hf("someone/bert-tiny")}
    jobs["absent"] = {"entry": hf("someone/absent")}
    t0 = time.monotonic()
    results = run_obtain(work, hub_env(work / "hf_home", hub.endpoint), jobs)
    return {"work": work, "results": results, "seconds": time.monotonic() - t0}


def source_of(key: str, sources: dict):
    return {
        "gpt2-tiny": sources["openai-community/gpt2-tiny"], "gpt-neo-tiny": sources["EleutherAI/gpt-neo-tiny"],
        "pythia-tiny": sources["EleutherAI/pythia-tiny"], "opt-tiny": sources["facebook/opt-tiny"],
        "pythia-tiny@step1": sources["pythia@step1"], "pythia-tiny@step2": sources["pythia@step2"],
        "arena": sources["arena"], **{r.split("/")[1]: sources[r] for r in NEEL_TOYS},
    }[key]  # fmt: skip


LOADED = ["gpt2-tiny", "gpt-neo-tiny", "pythia-tiny", "opt-tiny", "pythia-tiny@step1", "pythia-tiny@step2",
          "arena", *[r.split("/")[1] for r in NEEL_TOYS]]  # fmt: skip


@pytest.mark.parametrize("key", LOADED)
def test_logprobs_equal_the_source_models(first_run, standin, key):
    result = first_run["results"][key]
    assert result["ok"], result
    model, info = W.load_model(first_run["work"] / "models" / key)
    source = source_of(key, standin[1])
    torch.testing.assert_close(logprobs(model), logprobs(source), rtol=0, atol=1e-4)


def test_processing_recorded_as_transformer_lens_does_it(first_run):
    info = lambda k: W.read_info(first_run["work"] / "models" / k)  # noqa: E731
    gpt2 = info("gpt2-tiny").extra
    assert gpt2["processing"] == {"fold_ln": True, "center_writing_weights": True, "center_unembed": True,
                                  "fold_value_biases": True}  # fmt: skip
    assert gpt2["architecture"] == "GPT2LMHeadModel" and gpt2["has_mlp"] and gpt2["normalization_type"] == "LNPre"
    arena = info("arena").extra  # shortformer: TransformerLens folds nothing
    assert arena["processing"]["fold_ln"] is False and arena["processing"]["center_unembed"] is False
    assert arena["has_mlp"] is False
    assert info("GELU_2L_tiny").extra["processing"]["fold_ln"] is True


def test_tokenizers_as_they_are(first_run, standin):
    info = lambda k: W.read_info(first_run["work"] / "models" / k)  # noqa: E731
    for key in ("gpt2-tiny", "pythia-tiny", "opt-tiny"):
        facts = info(key).extra["tokenizer_facts"]
        assert facts["bos_id"] == 0 and facts["vocab_size"] == VOCAB and 0 in facts["special_ids"]
    assert info("pythia-tiny").extra["d_vocab"] == VOCAB + 8  # d_vocab above the tokenizer: legal
    # OPT ships vocab.json + merges.txt: transformers built the tokenizer; it encodes as the source's
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(first_run["work"] / "models" / "opt-tiny" / "tokenizer.json"))
    gpt2 = Tokenizer.from_file(str(first_run["work"] / "models" / "gpt2-tiny" / "tokenizer.json"))
    assert tok.encode("in the beginning").ids == gpt2.encode("in the beginning").ids


def test_lock_written_with_hub_identifiers(first_run, standin):
    hub, _ = standin
    lock = read_lock(lock_path(first_run["work"] / "locks", "openai-community/gpt2-tiny", "main"))
    assert lock.commit == hub.commit_of("openai-community/gpt2-tiny", "main")
    files = hub.repos["openai-community/gpt2-tiny"][lock.commit]
    assert set(lock.files) == {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert "generation_config.json" in lock.listing and "generation_config.json" not in lock.files
    st = lock.files["model.safetensors"]
    assert st["sha256"] == st["hub_id"] == sha256(files["model.safetensors"])  # LFS: oid = sha256
    cfg = lock.files["config.json"]
    assert cfg["sha256"] == sha256(files["config.json"]) and len(cfg["hub_id"]) == 40  # git blob SHA-1
    step1 = read_lock(lock_path(first_run["work"] / "locks", "EleutherAI/pythia-tiny", "step1"))
    assert step1.commit == hub.commit_of("EleutherAI/pythia-tiny", "step1") != lock.commit


def test_unsupported_architecture_and_absent_repo_refused(first_run):
    assert_refused(first_run["results"]["bert"], "BertForMaskedLM", "GPT2LMHeadModel", "GPTNeoXForCausalLM")
    assert_refused(first_run["results"]["absent"], "someone/absent", "Offline alternatives")


def test_tampered_blob_and_moved_branch(first_run, standin, tmp_path):
    """Second run, same HF cache and locks: a changed blob is refused naming both sha256 values;
    a branch moved on the hub does not change what a locked run loads."""
    hub, sources = standin
    work = first_run["work"]
    main_commit = hub.commit_of("EleutherAI/pythia-tiny", "main")
    hub.move_branch("EleutherAI/pythia-tiny", "main", hub.commit_of("EleutherAI/pythia-tiny", "step2"))
    blob = next((work / "hf_home" / "hub" / "models--openai-community--gpt2-tiny" / "blobs").glob("*"))
    good = blob.read_bytes()
    try:
        blob.write_bytes(good[:-4] + b"\0\0\0\0" if len(good) > 100 else good + b"x")
        jobs = {"gpt2-again": {"entry": hf("openai-community/gpt2-tiny")},
                "pythia-again": {"entry": hf("EleutherAI/pythia-tiny")}}  # fmt: skip
        run_dir = tmp_path / "second"
        (run_dir).mkdir()
        os.symlink(work / "locks", run_dir / "locks")
        results = run_obtain(run_dir, hub_env(work / "hf_home", hub.endpoint), jobs)
    finally:
        hub.move_branch("EleutherAI/pythia-tiny", "main", main_commit)
        blob.write_bytes(good)
    lock = read_lock(lock_path(work / "locks", "openai-community/gpt2-tiny", "main"))
    changed = [f for f, e in lock.files.items() if e["hub_id"] == blob.name or e["sha256"] == blob.name]
    assert changed
    assert_refused(results["gpt2-again"], changed[0], lock.files[changed[0]]["sha256"], "refused")
    assert results["pythia-again"]["ok"], results["pythia-again"]
    info = results["pythia-again"]["info"]
    assert info["extra"]["weights"]["commit"] == main_commit
    model, _ = W.load_model(run_dir / "models" / "pythia-again")
    torch.testing.assert_close(logprobs(model), logprobs(sources["EleutherAI/pythia-tiny"]), rtol=0, atol=1e-4)


def test_pinned_sha256_overrides(standin, tmp_path):
    hub, _ = standin
    jobs = {"pinned-wrong": {"entry": hf("openai-community/gpt2-tiny", sha256={"model.safetensors": "0" * 64})}}
    results = run_obtain(tmp_path, hub_env(tmp_path / "hf_home", hub.endpoint), jobs)
    assert_refused(results["pinned-wrong"], "0" * 64, "model.safetensors", "refused")


def test_no_hub_and_empty_cache_fails_at_once(tmp_path):
    port = closed_port()
    jobs = {"gone": {"entry": hf("openai-community/gpt2-tiny")}}
    results = run_obtain(tmp_path, hub_env(tmp_path / "hf_home", f"http://127.0.0.1:{port}"), jobs)
    assert_refused(results["gone"], "cannot be reached", f"127.0.0.1:{port}", "fetch_models.py", "HF_HUB_OFFLINE=1",
                   "source: local")  # fmt: skip
    # not a speed target: a bound that catches a retry loop (minutes of back-off), with room for a
    # loaded machine (the job's own start-up is ~5 s; 11.9 s was seen beside a DAG run)
    assert results["gone"]["seconds"] < 30
    offline = run_obtain(tmp_path / "off", hub_env(tmp_path / "hf_home", HF_HUB_OFFLINE="1"), jobs)
    assert_refused(offline["gone"], "not in the Hugging Face cache", "HF_HUB_OFFLINE")


def test_offline_from_a_filled_cache(first_run, tmp_path):
    """HF_HUB_OFFLINE=1 with the cache (and locks) of the first run: no hub needed."""
    run_dir = tmp_path / "offline"
    run_dir.mkdir()
    os.symlink(first_run["work"] / "locks", run_dir / "locks")
    jobs = {"opt-offline": {"entry": hf("facebook/opt-tiny")}, "arena-offline": {"entry": ARENA_ENTRY}}
    results = run_obtain(run_dir, hub_env(first_run["work"] / "hf_home", HF_HUB_OFFLINE="1"), jobs)
    assert all(r["ok"] for r in results.values()), results


# --------------------------------------------------------------------------- source: local


def test_local_transformers_folder_and_state_dict(tmp_path):
    gpt2 = transformers_model("GPT2LMHeadModel", VOCAB, seed=5)
    folder = tmp_path / "my-gpt2"
    gpt2.save_pretrained(folder)
    for name, data in tokenizer_files("json").items():
        (folder / name).write_bytes(data)
    arena = tl_model(6, **ARENA_CFG)
    torch.save(arena.state_dict(), tmp_path / "mine.pt")
    from induction_heads.architecture import config_to_dict

    (tmp_path / "mine.json").write_text(json.dumps(config_to_dict(arena.cfg)))
    (tmp_path / "tok").mkdir()
    for name, data in tokenizer_files("json").items():
        (tmp_path / "tok" / name).write_bytes(data)
    jobs = {
        "folder": {"entry": {"source": "local", "path": str(folder)}},
        "state-dict": {"entry": {"source": "local", "weights": str(tmp_path / "mine.pt"),
                                 "config": str(tmp_path / "mine.json"), "tokenizer": str(tmp_path / "tok")}},
        "missing": {"entry": {"source": "local", "path": str(tmp_path / "nowhere")}},
        "misfit": {"entry": {"source": "local", "weights": str(tmp_path / "mine.pt"),
                             "config": str(tmp_path / "other.json"), "tokenizer": str(tmp_path / "tok")}},
    }  # fmt: skip
    (tmp_path / "other.json").write_text(json.dumps({**config_to_dict(arena.cfg), "d_model": 48}))
    results = run_obtain(tmp_path, hub_env(tmp_path / "hf_home"), jobs)
    for key, source in (("folder", gpt2), ("state-dict", arena)):
        assert results[key]["ok"], results[key]
        model, _ = W.load_model(tmp_path / "models" / key)
        torch.testing.assert_close(logprobs(model), logprobs(source), rtol=0, atol=1e-4)
    assert_refused(results["missing"], str(tmp_path / "nowhere"), "not a folder")
    assert_refused(results["misfit"], "does not fit", "other.json")


def test_local_state_dict_never_unpickles_code(tmp_path):
    from induction_heads.sources.tl_native import NativeError, load_state_dict

    marker = tmp_path / "code-ran"

    class Exploit:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    torch.save({"embed.W_E": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(NativeError, match="cannot load"):
        load_state_dict(tmp_path / "evil.pt")
    assert not marker.exists()


def test_tokenizer_larger_than_vocab_refused():
    from induction_heads.tokenizer import TokenizerError, tokenizer_facts
    from tests.hub_standin import bpe_tokenizer

    tok = bpe_tokenizer()
    with pytest.raises(TokenizerError, match="more than the model's d_vocab 100"):
        tokenizer_facts(tok, d_vocab=100)
    facts = tokenizer_facts(tok, d_vocab=VOCAB + 8)
    assert facts.bos_id == tok.token_to_id("<|endoftext|>") and facts.vocab_size == VOCAB
    assert tokenizer_facts(tok, VOCAB, bos_token_id=5).bos_id == 5


def test_fetch_command_fills_the_cache_for_offline_use(standin, tmp_path):
    hub, _ = standin
    extra = {"lock_dir": str(tmp_path / "locks"), "models": {
        "gpt2-tiny": hf("openai-community/gpt2-tiny", architecture="GPT2LMHeadModel", n_layers=2, n_ctx=128, d_vocab=VOCAB),
        "arena": {**ARENA_ENTRY, "n_layers": 2, "n_ctx": 128, "d_vocab": VOCAB},
    }}  # fmt: skip
    (tmp_path / "hub.yaml").write_text(json.dumps(extra))
    env = hub_env(tmp_path / "hf_home", hub.endpoint)
    cmd = [sys.executable, str(ROOT / "scripts/fetch_models.py"), str(ROOT / "config/smoke.yaml"), str(tmp_path / "hub.yaml")]
    plan = subprocess.run([*cmd, "--dry-run"], env=env, capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr
    files = hub.repos["openai-community/gpt2-tiny"][hub.commit_of("openai-community/gpt2-tiny", "main")]
    expected = (len(files["config.json"]) + len(files["model.safetensors"])) / 1e6
    assert f"{expected:8.1f} MB" in plan.stdout and "total to download" in plan.stdout and "GB free" in plan.stdout
    assert not (tmp_path / "hf_home" / "hub").exists()  # a dry run downloads nothing
    done = subprocess.run([*cmd, "--yes"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert lock_path(tmp_path / "locks", "openai-community/gpt2-tiny", "main").exists()
    assert lock_path(tmp_path / "locks", "EleutherAI/neox-tokenizer-tiny", "main").exists()
    # now offline, from that cache and those locks
    (tmp_path / "run").mkdir()
    os.symlink(tmp_path / "locks", tmp_path / "run" / "locks")
    jobs = {"gpt2-offline": {"entry": extra["models"]["gpt2-tiny"]}, "arena-offline": {"entry": extra["models"]["arena"]}}
    results = run_obtain(tmp_path / "run", hub_env(tmp_path / "hf_home", HF_HUB_OFFLINE="1"), jobs)
    assert all(r["ok"] for r in results.values()), results
