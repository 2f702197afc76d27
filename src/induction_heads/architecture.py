"""The ARENA attention-only architecture, as a TransformerLens config and as a lean trainer.

Analyses always use a :class:`transformer_lens.HookedTransformer`. Training uses
:class:`AttnOnlyTransformer`, a plain PyTorch module with *the same parameter names and the same
arithmetic* (shortformer positional embeddings added to the query/key inputs of every layer, no
LayerNorm, no MLPs) but no hook points and fused attention, which trains about twice as fast on a
CPU. ``tests/test_training.py::test_lean_model_matches_hooked_transformer`` checks the two give
the same logits.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import HookedTransformer, HookedTransformerConfig

from .unembed_loss import unembed_cross_entropy


def attn_only_config(
    *,
    n_layers: int,
    d_model: int,
    n_heads: int,
    d_head: int,
    n_ctx: int,
    d_vocab: int,
    seed: int = 0,
    device: str = "cpu",
) -> HookedTransformerConfig:
    """ARENA's ``attn_only_2L_half`` architecture at any size."""
    return HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_head,
        n_ctx=n_ctx,
        d_vocab=d_vocab,
        attn_only=True,
        normalization_type=None,
        positional_embedding_type="shortformer",
        attention_dir="causal",
        act_fn=None,
        seed=seed,
        default_prepend_bos=False,
        device=device,
    )


# Fields of HookedTransformerConfig that describe the machine, not the model.
_RUNTIME_KEYS = ("device", "dtype", "n_devices", "n_params")


def config_to_dict(cfg: HookedTransformerConfig) -> dict[str, Any]:
    """Every field that defines the model (published architectures need many: rotary, parallel
    attention/MLP, LayerNorm kind …), as plain JSON values."""
    out = {}
    for key, value in cfg.to_dict().items():
        if key not in _RUNTIME_KEYS and isinstance(value, (str, int, float, bool, type(None), list, dict)):
            out[key] = value
    return out


def config_from_dict(d: dict[str, Any], device: str = "cpu") -> HookedTransformerConfig:
    known = set(HookedTransformerConfig.__dataclass_fields__)
    fields = {k: v for k, v in d.items() if k in known and k not in _RUNTIME_KEYS}
    return HookedTransformerConfig.from_dict({**fields, "device": device})


def sinusoidal_positions(n_ctx: int, d_model: int, scale: float) -> Float[Tensor, "pos d_model"]:
    """Sinusoidal position codes (Vaswani et al.) scaled to ``scale`` RMS.

    Starting ``W_pos`` here (instead of random) gives nearby positions similar codes from step 0,
    which makes the previous-token head — and so the induction circuit — form reliably.
    """
    pos = torch.arange(n_ctx, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10_000.0) * torch.arange(0, d_model, 2).float() / d_model)
    table = torch.zeros(n_ctx, d_model)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d_model // 2])
    return table * (scale / table.pow(2).mean().sqrt())


class AttnOnlyTransformer(nn.Module):
    """Attention-only transformer with TransformerLens parameter names (see module docstring)."""

    def __init__(self, cfg: HookedTransformerConfig):
        super().__init__()
        if not (cfg.attn_only and cfg.normalization_type is None):
            raise ValueError("AttnOnlyTransformer needs attn_only=True and normalization_type=None")
        if cfg.positional_embedding_type != "shortformer":
            raise ValueError("AttnOnlyTransformer implements shortformer positional embeddings only")
        self.cfg = cfg
        self.params = nn.ParameterDict()
        reference = HookedTransformer(cfg)  # borrow TransformerLens's initialisation
        for name, value in reference.state_dict().items():
            if name.endswith((".mask", ".IGNORE")):
                continue
            self.params[name.replace(".", "__")] = nn.Parameter(value.detach().clone())
        del reference

    def p(self, name: str) -> Tensor:
        return self.params[name.replace(".", "__")]

    def tl_state_dict(self) -> dict[str, Tensor]:
        """Parameters under their TransformerLens names, copied to the CPU (checkpoints of a GPU
        run load anywhere)."""
        return {k.replace("__", "."): v.detach().to("cpu", copy=True) for k, v in self.params.items()}

    def residual(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        """The residual stream after the last layer."""
        batch, n_pos = tokens.shape
        H, Dh = self.cfg.n_heads, self.cfg.d_head
        resid = self.p("embed.W_E")[tokens]  # [batch pos d_model]
        pos = self.p("pos_embed.W_pos")[:n_pos]  # [pos d_model]
        for layer in range(self.cfg.n_layers):
            a = f"blocks.{layer}.attn."
            # One matmul for Q and K (they read resid + pos), one for V (reads resid only).
            w_qk = torch.cat([self.p(a + "W_Q"), self.p(a + "W_K")], 0)  # [2H d_model d_head]
            w_qk = w_qk.permute(1, 0, 2).reshape(resid.shape[-1], 2 * H * Dh)
            b_qk = torch.cat([self.p(a + "b_Q"), self.p(a + "b_K")], 0).reshape(-1)
            qk = F.linear(resid + pos, w_qk.T, b_qk).view(batch, n_pos, 2 * H, Dh).transpose(1, 2)
            q, k = qk[:, :H], qk[:, H:]  # [batch head pos d_head]
            w_v = self.p(a + "W_V").permute(1, 0, 2).reshape(resid.shape[-1], H * Dh)
            v = F.linear(resid, w_v.T, self.p(a + "b_V").reshape(-1))
            v = v.view(batch, n_pos, H, Dh).transpose(1, 2)
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [batch head pos d_head]
            z = z.transpose(1, 2).reshape(batch, n_pos, H * Dh)
            w_o = self.p(a + "W_O").reshape(H * Dh, -1)  # [H*d_head d_model]
            resid = resid + F.linear(z, w_o.T, self.p(a + "b_O"))
        return resid

    def forward(
        self, tokens: Int[Tensor, "batch pos"], drop_last: bool = False
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits; with ``drop_last`` the last position is not unembedded."""
        resid = self.residual(tokens)
        if drop_last:
            resid = resid[:, :-1]
        return F.linear(resid, self.p("unembed.W_U").T, self.p("unembed.b_U"))

    def next_token_loss(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, ""]:
        """Mean next-token cross-entropy over every position but the last (training needs no
        prediction after the final token), with the unembedding fused into the loss: the
        unembedding is most of a step's cost, and unfused its log-softmax is a third of it."""
        resid = self.residual(tokens)[:, :-1].flatten(0, 1)  # [batch*(pos-1) d_model]
        return unembed_cross_entropy(
            resid, self.p("unembed.W_U"), self.p("unembed.b_U"), tokens[:, 1:].flatten()
        )


def to_hooked_transformer(
    cfg: HookedTransformerConfig, state_dict: dict[str, Tensor], device: str = "cpu"
) -> HookedTransformer:
    """Build a HookedTransformer from a config and a (TransformerLens-named) state dict."""
    model = HookedTransformer(cfg)
    full = model.state_dict()
    missing = [k for k in full if k not in state_dict and not k.endswith((".mask", ".IGNORE"))]
    unexpected = [k for k in state_dict if k not in full]
    if missing or unexpected:
        raise ValueError(
            "state dict does not fit the config: "
            f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}"
        )
    for key, value in state_dict.items():
        if full[key].shape != value.shape:
            raise ValueError(
                f"state dict entry {key!r} has shape {tuple(value.shape)}, "
                f"the config expects {tuple(full[key].shape)}"
            )
    full.update(state_dict)
    model.load_state_dict(full)
    model.to(device)
    model.eval()
    return model
