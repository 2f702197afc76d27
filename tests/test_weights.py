"""Model weights in this project's layout: save, load, sha256 verification, safe loading.

How models from the hub or the user's disk get into this layout is tested in tests/test_sources.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer

from induction_heads import weights as W
from induction_heads.architecture import attn_only_config

torch.set_num_threads(1)

ARCH = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=16, d_vocab=20)
TOKENS = torch.tensor([[0, 3, 5, 7, 3, 5, 7, 11, 19, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])


# --------------------------------------------------------------------------- helpers


def tiny_model(seed: int = 0, **overrides) -> HookedTransformer:
    return HookedTransformer(attn_only_config(**{**ARCH, **overrides}, seed=seed))


def logits(model: HookedTransformer) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS)


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


MODEL = tiny_model(seed=0)


# --------------------------------------------------------------------------- 1. our layout


def test_save_load_round_trip(tmp_path):
    info = W.save_model(tmp_path / "m", MODEL.cfg, MODEL.state_dict(), W.ModelInfo("m", "train", "", seed=0))
    assert info.sha256 == W.sha256_file(tmp_path / "m" / W.WEIGHTS_FILE)
    assert json.loads((tmp_path / "m" / W.INFO_FILE).read_text())["sha256"] == info.sha256
    loaded, info2 = W.load_model(tmp_path / "m")
    assert info2 == info
    torch.testing.assert_close(logits(loaded), logits(MODEL), rtol=0, atol=0)
    assert W.read_config(tmp_path / "m").d_model == 16


def test_tokenizer_path_is_stored_relative_to_the_model_folder(tmp_path, monkeypatch):
    """model_info.json names the tokenizer relative to its folder, so a copied results/ still
    finds it; read_info resolves it (given relative to the working directory, as rules do)."""
    root = tmp_path / "run"
    (root / "results" / "data").mkdir(parents=True)
    (root / "results" / "data" / "tokenizer.json").write_text("{}")
    monkeypatch.chdir(root)
    W.save_model("results/models/m", MODEL.cfg, MODEL.state_dict(),
                 W.ModelInfo("m", "train", "", tokenizer="results/data/tokenizer.json"))
    stored = json.loads((root / "results/models/m" / W.INFO_FILE).read_text())["tokenizer"]
    assert stored == os.path.join("..", "..", "data", "tokenizer.json")
    moved = tmp_path / "elsewhere"
    os.rename(root, moved)
    monkeypatch.chdir(tmp_path)
    resolved = Path(W.read_info(moved / "results/models/m").tokenizer)
    assert resolved.is_absolute() and resolved == (moved / "results/data/tokenizer.json").resolve()
    assert resolved.read_text() == "{}"


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
