"""Model weights: our own save/load with sha256 verification, and the two external sources.

* ``source: huggingface`` is exercised against two local stand-ins for the hub, never the internet:
  a Hugging Face cache filled by hand (with ``HF_HUB_OFFLINE=1``), and a loopback HTTP server set as
  ``HF_ENDPOINT``. ``huggingface_hub`` reads ``HF_HOME``/``HF_HUB_OFFLINE``/``HF_ENDPOINT`` when it
  is imported, so the loader runs in a subprocess with that environment (one subprocess per
  environment, running several cases, because importing torch + TransformerLens is the slow part).
* ``source: local`` runs in-process.
* ``config/hub.yaml`` is validated merged onto ``config/config.yaml`` the way Snakemake merges
  ``--configfile`` files.
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest
import torch
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers
from transformer_lens import HookedTransformer

from induction_heads import weights as W
from induction_heads.architecture import attn_only_config, config_to_dict
from induction_heads.config import validate_config

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
ARCH = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=16, d_vocab=20)
# What a user writes under `config:` of a hub entry (the shape of config/hub.yaml's entry).
HUB_CONFIG = dict(ARCH, attn_only=True, normalization_type=None,
                  positional_embedding_type="shortformer")  # fmt: skip
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the fake repos' commit hash
TOKENS = torch.tensor([[0, 3, 5, 7, 3, 5, 7, 11, 19, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
SUBPROCESS_TIMEOUT = 300  # generous: the import alone takes ~10 CPU-seconds on a shared machine


# --------------------------------------------------------------------------- helpers


def tiny_model(seed: int = 0, **overrides) -> HookedTransformer:
    return HookedTransformer(attn_only_config(**{**ARCH, **overrides}, seed=seed))


def logits(model: HookedTransformer) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS)


def legacy_state_dict(model: HookedTransformer) -> dict[str, torch.Tensor]:
    """The state dict as TransformerLens <= 2 saved it (ARENA's ``.pth`` files): with a full
    ``[n_ctx, n_ctx]`` causal mask and a finite IGNORE value in every attention layer."""
    n_ctx = model.cfg.n_ctx
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for layer in range(model.cfg.n_layers):
        sd[f"blocks.{layer}.attn.mask"] = torch.tril(torch.ones(n_ctx, n_ctx, dtype=torch.bool))
        sd[f"blocks.{layer}.attn.IGNORE"] = torch.tensor(-1e5)
    return sd


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Exploit:
    """Unpickling this runs ``os.makedirs(marker)``: proof that code was (not) executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def tiny_tokenizer_json() -> bytes:
    vocab = {w: i for i, w in enumerate(["<bos>", "[UNK]", "the", "cat", "sat", "on", "mat"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok.to_str().encode()


def fill_hf_cache(hf_home: Path, repo_id: str, files: dict[str, bytes]) -> None:
    """The layout ``huggingface_hub`` writes: ``hub/models--owner--name/`` with content-addressed
    ``blobs/<sha256>`` (an LFS file's etag), ``snapshots/<commit>/<filename>`` relative symlinks to
    them, and ``refs/main`` holding the commit hash (read verbatim: no trailing newline)."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    for filename, data in files.items():
        blob = repo / "blobs" / sha(data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / COMMIT / filename
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_env(hf_home: Path, **extra: str) -> dict[str, str]:
    """The environment minus anything that could point huggingface_hub elsewhere (user caches,
    tokens, proxies); the endpoint defaults to a closed loopback port, so nothing leaves the machine."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.upper().startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_")) and "PROXY" not in k.upper()
    }  # fmt: skip
    env.update(
        HF_HOME=str(hf_home), HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_XET="1", NO_PROXY="127.0.0.1,localhost", OMP_NUM_THREADS="1",
    )  # fmt: skip
    env.update(extra)
    return env


DRIVER = r"""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from induction_heads.weights import build_hub_model
jobs = json.loads(Path(sys.argv[1]).read_text())
results = {}
for job in jobs:
    t0 = time.monotonic()
    try:
        info = build_hub_model(job["entry"], job["name"], Path(job["out_dir"]))
        out = {"ok": True, "info": info.__dict__}
    except Exception as exc:
        out = {"ok": False, "type": type(exc).__name__, "error": str(exc)}
    out["seconds"] = time.monotonic() - t0
    results[job["name"]] = out
Path(sys.argv[2]).write_text(json.dumps(results))
"""


def run_hub_builds(work: Path, env: dict[str, str], jobs: dict[str, dict]) -> dict[str, dict]:
    """Run ``build_hub_model`` for each ``name: entry`` in one subprocess; ``name -> result``."""
    work.mkdir(parents=True, exist_ok=True)
    job_list = [{"name": n, "entry": e, "out_dir": str(work / "models" / n)} for n, e in jobs.items()]
    (work / "jobs.json").write_text(json.dumps(job_list))
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(work / "jobs.json"), str(work / "results.json")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((work / "results.json").read_text())


def hub_entry(repo_id: str, filename: str, sha256: str | None, **extra) -> dict:
    return {"source": "huggingface", "repo_id": repo_id, "filename": filename, "sha256": sha256,
            "config": dict(HUB_CONFIG), **extra}  # fmt: skip


def assert_refused(result: dict, *needles: str) -> str:
    assert not result["ok"], f"expected a refusal, got {result}"
    assert result["type"] == "WeightsError", result
    for needle in needles:
        assert needle in result["error"], f"{needle!r} not in:\n{result['error']}"
    return result["error"]


# The files both hub stand-ins hold.
MODEL = tiny_model(seed=0)
GOOD = torch_bytes(legacy_state_dict(MODEL))
OTHER = torch_bytes(legacy_state_dict(tiny_model(seed=1)))  # same shapes, other values
MISFIT = torch_bytes(tiny_model(seed=0, d_model=24).state_dict())  # does not fit HUB_CONFIG
TOKENIZER = tiny_tokenizer_json()


def test_fixture_files_differ():
    assert len({sha(GOOD), sha(OTHER), sha(MISFIT)}) == 3
    assert not torch.allclose(logits(MODEL), logits(tiny_model(seed=1)))


# --------------------------------------------------------------------------- 1. our layout


def test_save_load_round_trip(tmp_path):
    info = W.save_model(tmp_path / "m", MODEL.cfg, MODEL.state_dict(), W.ModelInfo("m", "train", "", seed=0))
    assert info.sha256 == W.sha256_file(tmp_path / "m" / W.WEIGHTS_FILE)
    assert json.loads((tmp_path / "m" / W.INFO_FILE).read_text())["sha256"] == info.sha256
    loaded, info2 = W.load_model(tmp_path / "m")
    assert info2 == info
    torch.testing.assert_close(logits(loaded), logits(MODEL), rtol=0, atol=0)
    assert W.read_config(tmp_path / "m").d_model == 16


def test_load_refuses_tampered_weights(tmp_path):
    model_dir = tmp_path / "m"
    info = W.save_model(model_dir, MODEL.cfg, MODEL.state_dict(), W.ModelInfo("m", "train", ""))
    path = model_dir / W.WEIGHTS_FILE
    good = path.read_bytes()

    flipped = bytearray(good)  # one byte changed
    flipped[len(flipped) // 2] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(W.WeightsError) as err:
        W.load_model(model_dir)
    for needle in (str(path), info.sha256, sha(bytes(flipped))):
        assert needle in str(err.value)

    torch.save(tiny_model(seed=1).state_dict(), path)  # a different, valid state dict
    with pytest.raises(W.WeightsError) as err:
        W.load_model(model_dir)
    for needle in (str(path), info.sha256, W.sha256_file(path)):
        assert needle in str(err.value)

    path.write_bytes(good)  # restored: loads again
    torch.testing.assert_close(logits(W.load_model(model_dir)[0]), logits(MODEL), rtol=0, atol=0)


def test_load_missing_files(tmp_path):
    model_dir = tmp_path / "m"
    W.save_model(model_dir, MODEL.cfg, MODEL.state_dict(), W.ModelInfo("m", "train", ""))
    (model_dir / W.WEIGHTS_FILE).unlink()
    with pytest.raises(W.WeightsError, match="weights.pt is missing"):
        W.load_model(model_dir)
    (model_dir / W.INFO_FILE).unlink()
    with pytest.raises(W.WeightsError) as err:
        W.load_model(model_dir)
    assert str(model_dir / W.INFO_FILE) in str(err.value) and "missing" in str(err.value)


def test_load_state_dict_file_never_unpickles_code(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"embed.W_E": Exploit(marker)}, path)
    with pytest.raises(W.WeightsError, match="cannot load .* as a plain state dict"):
        W.load_state_dict_file(path)
    assert not marker.exists()
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(W.WeightsError, match="does not hold a state dict"):
        W.load_state_dict_file(tmp_path / "list.pt")


# --------------------------------------------------------------------------- 2. pre-filled cache


@pytest.fixture(scope="module")
def cache_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("hf_cache")
    hf_home = work / "hf_home"
    marker = work / "code-ran"
    fill_hf_cache(hf_home, "owner/tiny", {
        "tiny.pth": GOOD, "misfit.pth": MISFIT, "evil.pth": torch_bytes(Exploit(marker)),
        "evil_dict.pth": torch_bytes({"embed.W_E": Exploit(marker)}),
    })  # fmt: skip
    fill_hf_cache(hf_home, "owner/tok", {"tokenizer.json": TOKENIZER})
    tok = {"repo_id": "owner/tok", "filename": "tokenizer.json", "sha256": sha(TOKENIZER)}
    jobs = {
        "good": hub_entry("owner/tiny", "tiny.pth", sha(GOOD).upper()),  # case-insensitive pin
        "with_tokenizer": hub_entry("owner/tiny", "tiny.pth", sha(GOOD), tokenizer=tok),
        "pinned_commit": hub_entry("owner/tiny", "tiny.pth", sha(GOOD), revision=COMMIT),
        "wrong_sha": hub_entry("owner/tiny", "tiny.pth", sha(OTHER)),
        "null_sha": hub_entry("owner/tiny", "tiny.pth", None),
        "null_sha_both": hub_entry("owner/tiny", "tiny.pth", None, tokenizer={**tok, "sha256": None}),
        "tokenizer_wrong_sha": hub_entry("owner/tiny", "tiny.pth", sha(GOOD), tokenizer={**tok, "sha256": sha(GOOD)}),
        "misfit": hub_entry("owner/tiny", "misfit.pth", sha(MISFIT)),
        "evil": hub_entry("owner/tiny", "evil.pth", sha(torch_bytes(Exploit(marker)))),
        "evil_dict": hub_entry("owner/tiny", "evil_dict.pth", sha(torch_bytes({"embed.W_E": Exploit(marker)}))),
        "not_cached": hub_entry("owner/tiny", "absent.pth", sha(GOOD)),
        "bad_config": hub_entry("owner/tiny", "tiny.pth", sha(GOOD), config={"n_layers": 2}),
    }  # fmt: skip
    results = run_hub_builds(work, hub_env(hf_home, HF_HUB_OFFLINE="1"), jobs)
    return {"work": work, "results": results, "marker": marker, "hf_home": hf_home}


def test_cache_good_weights_build_and_load(cache_run):
    for name in ("good", "with_tokenizer", "pinned_commit"):
        result = cache_run["results"][name]
        assert result["ok"], result
        model_dir = cache_run["work"] / "models" / name
        model, info = W.load_model(model_dir)
        torch.testing.assert_close(logits(model), logits(MODEL), rtol=0, atol=0)
        assert info.source == "huggingface" and info.extra["download_sha256"] == sha(GOOD)
        assert info.extra["repo_id"] == "owner/tiny" and info.extra["filename"] == "tiny.pth"
        # the legacy [n_ctx, n_ctx] masks were dropped: TransformerLens builds its own
        saved = torch.load(model_dir / W.WEIGHTS_FILE, weights_only=True)
        assert not any(k.endswith((".mask", ".IGNORE")) for k in saved)
        assert set(saved) == {k for k in MODEL.state_dict() if not k.endswith((".mask", ".IGNORE"))}
    with_tok = cache_run["work"] / "models" / "with_tokenizer"
    assert (with_tok / "tokenizer.json").read_bytes() == TOKENIZER
    assert W.read_info(with_tok).tokenizer == str(with_tok / "tokenizer.json")
    assert W.read_info(cache_run["work"] / "models" / "good").tokenizer is None


def test_cache_wrong_sha_refused(cache_run):
    err = assert_refused(cache_run["results"]["wrong_sha"], "sha256 mismatch", "owner/tiny/tiny.pth",
                         sha(OTHER), sha(GOOD))  # fmt: skip
    assert str(cache_run["hf_home"]) in err  # the local path of the refused file
    assert not (cache_run["work"] / "models" / "wrong_sha" / W.INFO_FILE).exists()


def test_cache_unpinned_sha_refused_and_printed(cache_run):
    err = assert_refused(cache_run["results"]["null_sha"], "no sha256 is pinned", "owner/tiny/tiny.pth",
                         f"sha256: {sha(GOOD)}")  # fmt: skip
    assert "tokenizer" not in err
    # with a tokenizer, both checksums come in one message: one rerun pins both
    assert_refused(cache_run["results"]["null_sha_both"], f"sha256: {sha(GOOD)}", f"sha256: {sha(TOKENIZER)}",
                   "owner/tok/tokenizer.json")  # fmt: skip
    for name in ("null_sha", "null_sha_both"):
        assert not (cache_run["work"] / "models" / name / W.INFO_FILE).exists()


def test_cache_tokenizer_wrong_sha_refused(cache_run):
    assert_refused(cache_run["results"]["tokenizer_wrong_sha"], "sha256 mismatch", "owner/tok/tokenizer.json",
                   sha(TOKENIZER))  # fmt: skip


def test_cache_misfit_and_bad_config_refused(cache_run):
    # W_E is [d_vocab, d_model] = [20, 24] in the file, [20, 16] by the config
    assert_refused(cache_run["results"]["misfit"], "does not fit", "embed.W_E", "(20, 24)", "(20, 16)")
    assert_refused(cache_run["results"]["bad_config"], "not a valid model config")


def test_cache_pickled_objects_refused_without_running_code(cache_run):
    for name in ("evil", "evil_dict"):
        assert_refused(cache_run["results"][name], "cannot load", "as a plain state dict", "evil")
    assert not cache_run["marker"].exists()


def test_cache_offline_miss_names_alternatives(cache_run):
    result = cache_run["results"]["not_cached"]
    assert_refused(result, "absent.pth", "owner/tiny", "HF_HUB_OFFLINE", "source: local", "pre-fill")
    assert result["seconds"] < 10


def test_obtain_model_cli_exits_nonzero_on_mismatch(cache_run, tmp_path):
    entry = hub_entry("owner/tiny", "tiny.pth", sha(OTHER))
    proc = subprocess.run(
        [sys.executable, "scripts/obtain_model.py", "--name", "tiny", "--entry", json.dumps(entry),
         "--out-dir", str(tmp_path / "tiny")],
        env=hub_env(cache_run["hf_home"], HF_HUB_OFFLINE="1"), cwd=ROOT, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "WeightsError" in proc.stderr and "sha256 mismatch" in proc.stderr and "tiny.pth" in proc.stderr
    assert not (tmp_path / "tiny" / W.INFO_FILE).exists()


# --------------------------------------------------------------------------- 3. loopback hub


class FakeHub(http.server.ThreadingHTTPServer):
    """Serves ``/{repo_id}/resolve/{revision}/{filename}`` for the given files only, with the
    headers ``huggingface_hub`` needs (see :meth:`Handler.resolve`); records every request."""

    def __init__(self, files: dict[str, bytes], claimed_sha: dict[str, str] | None = None):
        super().__init__(("127.0.0.1", 0), FakeHub.Handler)
        self.files, self.claimed_sha, self.requests = files, claimed_sha or {}, []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    class Handler(http.server.BaseHTTPRequestHandler):
        def resolve(self) -> bytes | None:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            self.server.requests.append((self.command, path))
            data = self.server.files.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            etag = self.server.claimed_sha.get(path, sha(data))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Repo-Commit", COMMIT)  # required: else "not a Hub endpoint"
            self.send_header("ETag", f'"{etag}"')  # required: names the blob in the cache
            self.send_header("X-Linked-Etag", f'"{etag}"')  # an LFS file's sha256 (preferred)
            self.send_header("X-Linked-Size", str(len(data)))  # an LFS file's size (preferred)
            self.end_headers()
            return data

        def do_HEAD(self):
            self.resolve()

        def do_GET(self):
            data = self.resolve()
            if data is not None:
                self.wfile.write(data)

        def log_message(self, *args):
            pass


def served(repo_id: str, filename: str, revision: str = "main") -> str:
    return f"/{repo_id}/resolve/{revision}/{filename}"


@pytest.fixture(scope="module")
def server_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("hf_server")
    files = {
        served("owner/tiny", "tiny.pth"): GOOD,
        served("owner/tok", "tokenizer.json"): TOKENIZER,
        served("owner/changed", "tiny.pth"): OTHER,  # other content, honest etag
        served("owner/lying", "tiny.pth"): OTHER,  # other content, claims GOOD's sha256
    }
    hub = FakeHub(files, claimed_sha={served("owner/lying", "tiny.pth"): sha(GOOD)})
    thread = threading.Thread(target=hub.serve_forever, daemon=True)
    thread.start()
    try:
        tok = {"repo_id": "owner/tok", "filename": "tokenizer.json", "sha256": sha(TOKENIZER)}
        jobs = {
            "good": hub_entry("owner/tiny", "tiny.pth", sha(GOOD), tokenizer=tok),
            "again": hub_entry("owner/tiny", "tiny.pth", sha(GOOD)),  # now from the cache
            "changed": hub_entry("owner/changed", "tiny.pth", sha(GOOD)),
            "lying": hub_entry("owner/lying", "tiny.pth", sha(GOOD)),
            "null_sha": hub_entry("owner/tiny", "tiny.pth", None),
            "absent": hub_entry("owner/tiny", "absent.pth", sha(GOOD)),
        }
        results = run_hub_builds(work, hub_env(work / "hf_home", HF_ENDPOINT=hub.endpoint), jobs)
    finally:
        hub.shutdown()
        hub.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()
    return {"work": work, "results": results, "requests": list(hub.requests)}


def test_server_download_verify_build(server_run):
    result = server_run["results"]["good"]
    assert result["ok"], result
    model_dir = server_run["work"] / "models" / "good"
    model, info = W.load_model(model_dir)
    torch.testing.assert_close(logits(model), logits(MODEL), rtol=0, atol=0)
    assert info.extra["download_sha256"] == sha(GOOD) and info.extra["tokenizer_sha256"] == sha(TOKENIZER)
    # the download went through the cache in tmp HF_HOME: blob named by the etag, ref to the commit
    repo = server_run["work"] / "hf_home" / "hub" / "models--owner--tiny"
    assert (repo / "blobs" / sha(GOOD)).read_bytes() == GOOD
    assert (repo / "refs" / "main").read_text() == COMMIT
    assert (repo / "snapshots" / COMMIT / "tiny.pth").read_bytes() == GOOD
    requests = server_run["requests"]
    assert ("GET", served("owner/tiny", "tiny.pth")) in requests
    assert ("HEAD", served("owner/tiny", "tiny.pth")) in requests
    assert all(path.split("/")[3] == "resolve" for _, path in requests), requests


def test_server_second_build_uses_cache(server_run):
    assert server_run["results"]["again"]["ok"]
    gets = [r for r in server_run["requests"] if r == ("GET", served("owner/tiny", "tiny.pth"))]
    assert len(gets) == 1  # "good" downloaded it; "again" and "null_sha" read the cache


def test_server_tokenizer_downloaded_verified_copied(server_run):
    model_dir = server_run["work"] / "models" / "good"
    assert (model_dir / "tokenizer.json").read_bytes() == TOKENIZER
    tok = Tokenizer.from_file(W.read_info(model_dir).tokenizer)
    assert tok.encode("the cat sat on the mat").ids == [2, 3, 4, 5, 2, 6]
    assert ("GET", served("owner/tok", "tokenizer.json")) in server_run["requests"]


def test_server_other_content_refused(server_run):
    for name in ("changed", "lying"):
        assert_refused(server_run["results"][name], "sha256 mismatch", "tiny.pth", sha(GOOD), sha(OTHER))
        assert not (server_run["work"] / "models" / name / W.INFO_FILE).exists()
    assert_refused(server_run["results"]["null_sha"], f"sha256: {sha(GOOD)}")


def test_server_missing_file_names_alternatives(server_run):
    assert_refused(server_run["results"]["absent"], "absent.pth", "owner/tiny", "source: local")
    assert server_run["results"]["absent"]["seconds"] < 10


def test_unreachable_endpoint_fails_fast(tmp_path):
    hf_home = tmp_path / "hf_home"
    fill_hf_cache(hf_home, "owner/cached", {"tiny.pth": GOOD})
    jobs = {
        "unreachable": hub_entry("owner/tiny", "tiny.pth", sha(GOOD)),
        "cached": hub_entry("owner/cached", "tiny.pth", sha(GOOD)),  # no HF_HUB_OFFLINE needed
    }
    port = closed_port()
    results = run_hub_builds(tmp_path, hub_env(hf_home, HF_ENDPOINT=f"http://127.0.0.1:{port}"), jobs)
    result = results["unreachable"]
    assert_refused(result, "cannot be reached", f"127.0.0.1:{port}", "Offline alternatives",
                   "HF_HUB_OFFLINE=1", "source: local", "owner/tiny")  # fmt: skip
    assert result["seconds"] < 10  # hf_hub_download alone retries with back-off for ~30 s
    assert results["cached"]["ok"], results["cached"]
    model, _ = W.load_model(tmp_path / "models" / "cached")
    torch.testing.assert_close(logits(model), logits(MODEL), rtol=0, atol=0)


# --------------------------------------------------------------------------- 4. source: local


@pytest.fixture
def local_files(tmp_path):
    weights = tmp_path / "mine.pt"
    weights.write_bytes(GOOD)
    config = tmp_path / "mine.json"
    config.write_text(json.dumps(config_to_dict(MODEL.cfg)))
    tokenizer = tmp_path / "tok.json"
    tokenizer.write_bytes(TOKENIZER)
    return {"source": "local", "weights": str(weights), "config": str(config), "tokenizer": str(tokenizer)}


def test_local_builds(local_files, tmp_path):
    info = W.build_local_model({**local_files, "sha256": sha(GOOD)}, "mine", tmp_path / "out")
    model, info2 = W.load_model(tmp_path / "out")
    assert info2 == info and info.source == "local" and info.extra["weights_sha256"] == sha(GOOD)
    torch.testing.assert_close(logits(model), logits(MODEL), rtol=0, atol=0)
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == TOKENIZER
    no_tok = {k: v for k, v in local_files.items() if k != "tokenizer"}
    assert W.build_local_model(no_tok, "mine", tmp_path / "out2").tokenizer is None


@pytest.mark.parametrize("key", ["weights", "config", "tokenizer"])
def test_local_missing_file(local_files, tmp_path, key):
    entry = {**local_files, key: str(tmp_path / f"absent-{key}")}
    with pytest.raises(W.WeightsError) as err:
        W.build_local_model(entry, "mine", tmp_path / "out")
    assert f"`{key}` file {tmp_path / f'absent-{key}'} does not exist" in str(err.value)
    assert not (tmp_path / "out" / W.INFO_FILE).exists()


def test_local_shapes_do_not_fit(local_files, tmp_path):
    Path(local_files["config"]).write_text(json.dumps(config_to_dict(tiny_model(n_heads=4).cfg)))
    with pytest.raises(W.WeightsError) as err:
        W.build_local_model(local_files, "mine", tmp_path / "out")
    msg = str(err.value)
    assert "does not fit" in msg and local_files["config"] in msg
    assert "'blocks.0.attn.W_Q' has shape (2, 16, 8)" in msg and "(4, 16, 8)" in msg
    # a key the config does not have (an MLP in an attention-only model)
    sd = legacy_state_dict(MODEL) | {"blocks.0.mlp.W_in": torch.zeros(16, 64)}
    Path(local_files["config"]).write_text(json.dumps(config_to_dict(MODEL.cfg)))
    torch.save(sd, local_files["weights"])
    with pytest.raises(W.WeightsError, match=r"unexpected \['blocks.0.mlp.W_in'\]"):
        W.build_local_model(local_files, "mine", tmp_path / "out")


def test_local_bad_config_and_sha(local_files, tmp_path):
    entry = {**local_files, "sha256": sha(OTHER)}
    with pytest.raises(W.WeightsError) as err:
        W.build_local_model(entry, "mine", tmp_path / "out")
    assert "sha256 mismatch" in str(err.value) and local_files["weights"] in str(err.value)
    assert sha(OTHER) in str(err.value) and sha(GOOD) in str(err.value)
    Path(local_files["config"]).write_text("{not json")
    with pytest.raises(W.WeightsError, match="is not valid JSON"):
        W.build_local_model(local_files, "mine", tmp_path / "out")
    Path(local_files["config"]).write_text(json.dumps({"n_layers": 2, "d_model": 16}))
    with pytest.raises(W.WeightsError, match="is not a valid model config"):
        W.build_local_model(local_files, "mine", tmp_path / "out")
    assert not (tmp_path / "out" / W.INFO_FILE).exists()


def test_tokenizer_larger_than_vocab_refused(local_files, tmp_path):
    vocab = {f"w{i}": i for i in range(30)} | {"[UNK]": 30}
    big = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    Path(local_files["tokenizer"]).write_text(big.to_str())
    with pytest.raises(W.WeightsError, match="has 31 tokens, more than the model's d_vocab 20"):
        W.build_local_model(local_files, "mine", tmp_path / "out")


# --------------------------------------------------------------------------- config/hub.yaml


def snakemake_merge(base: dict, overlay: dict) -> dict:
    """``snakemake.utils.update_config``: how ``--configfile a.yaml b.yaml`` combines files."""
    from snakemake.utils import update_config

    merged = copy.deepcopy(base)
    update_config(merged, overlay)
    return merged


def test_hub_config_validates_merged_onto_default():
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    hub = yaml.safe_load((ROOT / "config" / "hub.yaml").read_text())
    merged = validate_config(snakemake_merge(base, hub))
    assert set(merged["models"]) == set(base["models"]) | {"attn_only_2L_half"}
    entry = merged["models"]["attn_only_2L_half"]
    assert entry["source"] == "huggingface" and entry["role"] == "arena"
    assert entry["repo_id"] == "callummcdougall/attn_only_2L_half"
    assert entry["filename"] == "attn_only_2L_half.pth"
    assert entry["sha256"] is None and entry["tokenizer"]["sha256"] is None
    assert entry["tokenizer"]["repo_id"] == "EleutherAI/gpt-neox-20b"
    cfg = entry["config"]
    assert (cfg["n_layers"], cfg["d_model"], cfg["n_heads"], cfg["d_head"], cfg["n_ctx"], cfg["d_vocab"]) == (
        2, 768, 12, 64, 2048, 50278)  # fmt: skip
    assert cfg["attn_only"] is True and cfg["normalization_type"] is None
    assert cfg["positional_embedding_type"] == "shortformer" and "tokenizer_name" not in cfg
    default = validate_config(copy.deepcopy(base))  # what the default run validates to
    assert {k: v for k, v in merged.items() if k != "models"} == {k: v for k, v in default.items() if k != "models"}
    assert {k: merged["models"][k] for k in default["models"]} == default["models"]
    # the entry's config is one our loader accepts (built small: the real one is 50278 x 768)
    small = W._config_from_entry({**cfg, "d_model": 16, "d_head": 8, "n_heads": 2, "d_vocab": 20, "n_ctx": 16}, "x")
    assert small.attn_only and small.positional_embedding_type == "shortformer"


def test_hub_config_pinned_sha_pattern():
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    hub = yaml.safe_load((ROOT / "config" / "hub.yaml").read_text())
    hub["models"]["attn_only_2L_half"]["sha256"] = "not-a-sha"
    with pytest.raises(Exception, match="models.attn_only_2L_half.sha256"):
        validate_config(snakemake_merge(base, hub))
