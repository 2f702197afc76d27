"""TransformerLens-native models: a state dict already in TransformerLens's names, and its config.

Two layouts are published:

* ARENA's (``callummcdougall/attn_only_2L_half``): one ``.pth`` and no config file; the entry
  gives the ``HookedTransformerConfig`` fields under ``config:``.
* NeelNanda's toys (``NeelNanda/Attn_Only_2L512W_C4_Code``, ``GELU_*``, ``SoLU_*``): a
  ``config.json`` in TransformerLens's own training keys and ``*final.pth`` (plus checkpoints).
  The json is mapped by TransformerLens's own ``convert_neel_model_config`` (fed the local file
  instead of a download), and the weights go through TransformerLens's converter for the old SoLU
  layout where that applies.

Weights are read with ``torch.load(weights_only=True)`` or safetensors: never unpickling code.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from ..architecture import to_hooked_transformer

from .processing import Processing, build_processed, default_processing, with_folded_norm

WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")
# Buffers TransformerLens computes itself; old saved state dicts carry them in old shapes.
COMPUTED_BUFFERS = (".mask", ".IGNORE")


class NativeError(ValueError):
    pass


def select_native_files(listing: list[str], weights_file: str | None, want_config: bool) -> list[str]:
    """The weights (named, or the one ``*final.pth`` as TransformerLens picks it, or the only
    weights file) and, unless the entry gives the config, ``config.json``."""
    if weights_file is not None:
        if weights_file not in listing:
            raise NativeError(f"the repository has no file {weights_file!r} (it has: {', '.join(listing[:12])})")
        chosen = weights_file
    else:
        finals = [f for f in listing if f.endswith("final.pth")]
        weights = [f for f in listing if f.endswith(WEIGHT_SUFFIXES) and "/" not in f]
        candidates = finals or weights
        if len(candidates) != 1:
            raise NativeError(
                f"cannot tell which file holds the weights ({candidates or 'none found'}): "
                f"name it with `weights_file:` in the model entry"
            )
        chosen = candidates[0]
    if want_config:
        if "config.json" not in listing:
            raise NativeError("the repository has no config.json: give the config under `config:` in the entry")
        return ["config.json", chosen]
    return [chosen]


def neel_config_dict(config_json: dict, name: str) -> dict:
    """TransformerLens's own mapping of a NeelNanda-layout config.json (no download)."""
    import transformer_lens.loading_from_pretrained as tl_loading

    with (
        mock.patch.object(tl_loading, "get_official_model_name", lambda n: n),
        mock.patch.object(tl_loading.utils, "download_file_from_hf", lambda *a, **k: config_json),
    ):
        return tl_loading.convert_neel_model_config(name)


def load_state_dict(path: Path) -> dict[str, Tensor]:
    """The state dict of ``path`` (never unpickling code) without the buffers TransformerLens
    computes itself."""
    from ..weights import WeightsError, load_state_dict_file

    try:
        state_dict = load_state_dict_file(path)
    except WeightsError as exc:
        raise NativeError(str(exc)) from exc
    return {k: v for k, v in state_dict.items() if not k.endswith(COMPUTED_BUFFERS)}


def config_dict_from(config: dict | None, config_file: Path | None, name: str) -> dict:
    """The HookedTransformerConfig fields: given inline, or mapped from a NeelNanda config.json,
    or read from a json that already holds TransformerLens fields."""
    if config is not None:
        return dict(config)
    data = json.loads(Path(config_file).read_text())
    if not isinstance(data, dict):
        raise NativeError(f"{config_file} does not hold a JSON object")
    # TransformerLens fields name the positional embedding; NeelNanda's training json does not
    # (it has `shortformer_pos`, or nothing for standard positions).
    return data if "positional_embedding_type" in data else neel_config_dict(data, name)


def load_native(
    config_fields: dict, weights: Path, name: str, device: str = "cpu"
) -> tuple[HookedTransformer, Processing]:
    """A processed HookedTransformer from TransformerLens config fields and a state dict."""
    import transformer_lens.loading_from_pretrained as tl_loading

    fields = {k: v for k, v in config_fields.items() if k not in ("tokenizer_name", "device", "dtype")}
    fields.setdefault("model_name", name)
    fields["init_weights"] = False
    fields["default_prepend_bos"] = False
    try:
        cfg = HookedTransformerConfig.from_dict(fields)
    except Exception as exc:
        raise NativeError(f"not a valid model config: {type(exc).__name__}: {exc}") from exc
    processing = default_processing(cfg)
    state_dict = load_state_dict(weights)
    if cfg.original_architecture == "neel-solu-old":
        state_dict = tl_loading.convert_neel_solu_old_weights(state_dict, cfg)
    try:  # against the unfolded config: the file is unprocessed
        to_hooked_transformer(cfg, state_dict)
    except ValueError as exc:
        raise NativeError(f"{weights} does not fit the config: {exc}") from exc
    cfg = HookedTransformerConfig.from_dict(with_folded_norm(fields, processing))
    model = build_processed(cfg, state_dict, processing)
    return model.to(device), processing
