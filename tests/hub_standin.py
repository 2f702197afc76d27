"""A loopback stand-in for the Hugging Face hub, and tiny published-style models to serve from it.

:class:`HubStandIn` answers every request this project makes of the hub:

* ``HEAD``/``GET /{repo}/resolve/{revision}/{path}`` — ``revision`` a branch or a commit — with
  ``X-Repo-Commit``, ``ETag`` (for a git file its git-blob SHA-1; for an LFS file its sha256) and,
  for LFS files, ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``, as the real hub does;
* ``GET /api/models/{repo}/revision/{revision}`` — the commit and the file listing with sizes.

Repositories are served from ``{repo: {commit: {path: bytes}}}`` plus branch refs that a test can
move (:meth:`HubStandIn.move_branch`). Every request is recorded.

The models are made by ``transformers`` itself (``save_pretrained``) or by TransformerLens, with
tokenizers in their real file formats, so a loader that passes here reads the real formats.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import tempfile
import threading
import urllib.parse
from pathlib import Path

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class HubStandIn(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}
        self.refs: dict[str, dict[str, str]] = {}
        self.requests: list[tuple[str, str]] = []
        self._thread: threading.Thread | None = None
        self._count = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Publish ``files`` as a new commit of ``repo_id`` and point ``branch`` at it."""
        self._count += 1
        commit = hashlib.sha1(f"{repo_id}:{self._count}:{sorted(files)}".encode()).hexdigest()
        self.repos.setdefault(repo_id, {})[commit] = dict(files)
        self.refs.setdefault(repo_id, {})[branch] = commit
        return commit

    def move_branch(self, repo_id: str, branch: str, commit: str) -> None:
        self.refs[repo_id][branch] = commit

    def commit_of(self, repo_id: str, revision: str) -> str | None:
        if revision in self.repos.get(repo_id, {}):
            return revision
        return self.refs.get(repo_id, {}).get(revision)

    def __enter__(self):
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: HubStandIn

    def _not_found(self, code: str = "EntryNotFound") -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, obj) -> bytes:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def _route(self) -> bytes | None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        self.server.requests.append((self.command, path))
        api = re.fullmatch(r"/api/models/(.+?)/revision/([^/]+)", path)
        if api:
            repo, revision = api.groups()
            commit = self.server.commit_of(repo, revision)
            if commit is None:
                return self._not_found("RevisionNotFound")
            files = self.server.repos[repo][commit]
            siblings = [{"rfilename": f, "size": len(b)} for f, b in sorted(files.items())]
            return self._json({"id": repo, "modelId": repo, "sha": commit, "siblings": siblings})
        resolve = re.fullmatch(r"/(.+?/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not resolve:
            return self._not_found("RepoNotFound")
        repo, revision, filename = resolve.groups()
        commit = self.server.commit_of(repo, revision)
        data = None if commit is None else self.server.repos[repo][commit].get(filename)
        if data is None:
            return self._not_found()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Repo-Commit", commit)
        if filename.endswith(LFS_SUFFIXES):
            self.send_header("ETag", f'"{sha256(data)}"')
            self.send_header("X-Linked-Etag", f'"{sha256(data)}"')
            self.send_header("X-Linked-Size", str(len(data)))
        else:
            self.send_header("ETag", f'"{git_blob_sha1(data)}"')
        self.end_headers()
        return data

    def do_HEAD(self):
        self._route()

    def do_GET(self):
        data = self._route()
        if data is not None:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


# --------------------------------------------------------------------------- tiny models

TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. In the beginning God created the heaven and the earth. And the "
    "earth was without form, and void; and darkness was upon the face of the deep. "
)


def bpe_tokenizer(vocab_size: int = 320, special: tuple[str, ...] = ("<|endoftext|>",)):
    """A byte-level BPE trained by `tokenizers` (any text encodes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    return tok


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tokenizer_files(kind: str, bos: str = "<|endoftext|>", **tok_kwargs) -> dict[str, bytes]:
    """``tokenizer.json`` + ``tokenizer_config.json`` as `save_pretrained` writes them, or
    (``kind="vocab"``) ``vocab.json`` + ``merges.txt`` + a GPT2Tokenizer config, as OPT ships."""
    from transformers import PreTrainedTokenizerFast

    tok = bpe_tokenizer(special=(bos,), **tok_kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "json":
            PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=bos).save_pretrained(tmp)
        else:
            tok.model.save(tmp)
            cfg = {"tokenizer_class": "GPT2Tokenizer", "bos_token": bos, "eos_token": bos, "unk_token": bos}
            Path(tmp, "tokenizer_config.json").write_text(json.dumps(cfg))
        return folder_bytes(Path(tmp))


def transformers_model(arch: str, vocab: int, n_ctx: int = 128, seed: int = 0, n_layers: int = 2, width: int = 32):
    """A tiny random model of a published architecture, made by transformers."""
    import transformers as T

    torch.manual_seed(seed)
    heads, ff = 2, 2 * width
    if arch == "GPT2LMHeadModel":
        cfg = T.GPT2Config(n_layer=n_layers, n_head=heads, n_embd=width, n_positions=n_ctx, vocab_size=vocab)
        return T.GPT2LMHeadModel(cfg).eval()
    if arch == "GPTNeoForCausalLM":
        types = [[["global", "local"], n_layers // 2]] if n_layers % 2 == 0 else [[["global"], n_layers]]
        cfg = T.GPTNeoConfig(num_layers=n_layers, num_heads=heads, hidden_size=width, max_position_embeddings=n_ctx,
                             attention_types=types, window_size=32, vocab_size=vocab)  # fmt: skip
        return T.GPTNeoForCausalLM(cfg).eval()
    if arch == "GPTNeoXForCausalLM":
        cfg = T.GPTNeoXConfig(num_hidden_layers=n_layers, num_attention_heads=heads, hidden_size=width,
                              intermediate_size=ff, max_position_embeddings=n_ctx, vocab_size=vocab)  # fmt: skip
        return T.GPTNeoXForCausalLM(cfg).eval()
    if arch == "OPTForCausalLM":
        cfg = T.OPTConfig(num_hidden_layers=n_layers, num_attention_heads=heads, hidden_size=width, ffn_dim=ff,
                          max_position_embeddings=n_ctx, word_embed_proj_dim=width, vocab_size=vocab)  # fmt: skip
        return T.OPTForCausalLM(cfg).eval()
    raise ValueError(arch)


def saved(model) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return folder_bytes(Path(tmp))


def tl_bytes(state_dict: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    return buf.getvalue()


def neel_config_json(cfg) -> dict:
    """A config.json in the keys of NeelNanda's training code (what his hub repos hold)."""
    return {
        "d_model": cfg.d_model, "n_layers": cfg.n_layers, "d_mlp": cfg.d_mlp, "d_head": cfg.d_head,
        "n_heads": cfg.n_heads, "n_ctx": cfg.n_ctx, "d_vocab": cfg.d_vocab,
        "tokenizer_name": "NeelNanda/gpt-neox-tokenizer-digits", "act_fn": cfg.act_fn,
        "attn_only": cfg.attn_only, "normalization": cfg.normalization_type,
        "shortformer_pos": cfg.positional_embedding_type == "shortformer", "seed": 0,
    }  # fmt: skip


def tl_model(seed: int, **cfg) -> HookedTransformer:
    model = HookedTransformer(cfg if not isinstance(cfg, dict) else _tl_cfg(seed, **cfg))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name and name.endswith(".w"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _tl_cfg(seed: int, **fields):
    base = dict(n_layers=2, d_model=32, n_heads=2, d_head=16, n_ctx=128, d_vocab=320, seed=seed,
                default_prepend_bos=False)  # fmt: skip
    return HookedTransformerConfig(**{**base, **fields})


def legacy(model: HookedTransformer) -> dict:
    """As TransformerLens <= 2 saved state dicts (ARENA's .pth): full causal masks, finite IGNORE."""
    sd = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith((".mask", ".IGNORE"))}
    for layer in range(model.cfg.n_layers):
        sd[f"blocks.{layer}.attn.mask"] = torch.tril(torch.ones(model.cfg.n_ctx, model.cfg.n_ctx, dtype=torch.bool))
        sd[f"blocks.{layer}.attn.IGNORE"] = torch.tensor(-1e5)
    return sd
