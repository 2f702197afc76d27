"""How TransformerLens processes published weights, decided as ``HookedTransformer.from_pretrained``
decides it, so a model loaded here computes what it computes there."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformer_lens import HookedTransformer, HookedTransformerConfig
from torch import Tensor


@dataclass(frozen=True)
class Processing:
    fold_ln: bool
    center_writing_weights: bool
    center_unembed: bool
    fold_value_biases: bool = True

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


def default_processing(cfg: HookedTransformerConfig) -> Processing:
    """TransformerLens's defaults (fold LayerNorm, centre the writing weights and the unembedding),
    switched off where ``from_pretrained`` switches them off: shortformer positions (all three),
    post-norm blocks (folding and centring), soft-capped logits (centring the unembedding)."""
    from transformer_lens.loading_from_pretrained import POST_NORM_ARCHITECTURES

    fold_ln = center_writing = center_unembed = True
    if cfg.positional_embedding_type == "shortformer":
        fold_ln = center_writing = center_unembed = False
    if cfg.original_architecture in POST_NORM_ARCHITECTURES:
        fold_ln = center_writing = False
    if cfg.output_logits_soft_cap and cfg.output_logits_soft_cap > 0:
        center_unembed = False
    if cfg.normalization_type is None:
        fold_ln = False
    return Processing(fold_ln, center_writing, center_unembed)


def with_folded_norm(cfg_dict: dict, processing: Processing) -> dict:
    """Folding LayerNorm turns LN into LNPre (and RMS into RMSPre), as TransformerLens does."""
    if processing.fold_ln:
        norm = cfg_dict.get("normalization_type")
        cfg_dict = {**cfg_dict, "normalization_type": {"LN": "LNPre", "RMS": "RMSPre"}.get(norm, norm)}
    return cfg_dict


def build_processed(
    cfg: HookedTransformerConfig, state_dict: dict[str, Tensor], processing: Processing
) -> HookedTransformer:
    """``HookedTransformer(cfg)`` + TransformerLens's own ``load_and_process_state_dict``."""
    cfg.tokenizer_name = None  # given a name, HookedTransformer fetches that tokenizer online
    model = HookedTransformer(cfg, move_to_device=False)
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=processing.fold_ln,
        center_writing_weights=processing.center_writing_weights,
        center_unembed=processing.center_unembed,
        fold_value_biases=processing.fold_value_biases,
    )
    return model.eval()
