"""A hand-built 2-layer attention-only model with a planted induction circuit.

Its answers are known by construction, so tests can check every analysis against them:

* head **0.0** is a previous-token head built from the positional embeddings alone
  (query at position ``i`` matches key at position ``i - 1``), and its OV circuit copies the
  attended token's identity into a "previous token" subspace;
* head **1.0** is an induction head: its query reads the current token, its key reads the
  previous-token subspace (K-composition with 0.0), and its OV circuit is the identity onto the
  unembedding (top-1 OV accuracy 1.0);
* with ``anti_induction=True``, head **1.1** is an *anti-induction* head: the same QK circuit as
  1.0 (it attends like an induction head) but an OV circuit that writes minus the attended
  token's unembedding (it suppresses the token it attends to);
* every other head is a small seeded random "decoy".

Residual stream layout (``d_model = 3 * d_vocab + n_ctx``)::

    [0, V)          current token (W_E is the identity here)
    [V, 2V)         previous token (written by 0.0)
    [2V, 3V)        output (written by 1.0, the only part W_U reads)
    [3V, 3V + P)    position (W_pos, one-hot; shortformer: seen by Q and K only)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformer_lens import HookedTransformer

from .architecture import attn_only_config, to_hooked_transformer


@dataclass(frozen=True)
class PlantedCircuit:
    prev_token_head: tuple[int, int] = (0, 0)
    induction_head: tuple[int, int] = (1, 0)
    anti_induction_head: tuple[int, int] | None = None


def planted_induction_model(
    d_vocab: int = 32,
    n_ctx: int = 64,
    n_heads: int = 2,
    sharpness: float = 40.0,
    decoy_std: float = 0.02,
    unembed_scale: float = 20.0,
    seed: int = 0,
    anti_induction: bool = False,
) -> tuple[HookedTransformer, PlantedCircuit]:
    """Build the planted model. ``sharpness`` is the attention logit of a planted match
    (after TransformerLens's division by sqrt(d_head)); mismatches score 0. ``anti_induction``
    plants the anti-induction head 1.1 (needs ``n_heads >= 2``)."""
    if anti_induction and n_heads < 2:
        raise ValueError("anti_induction needs n_heads >= 2 (the anti-induction head is 1.1)")
    V, P = d_vocab, n_ctx
    d_model = 3 * V + P
    d_head = max(V, P)
    cfg = attn_only_config(
        n_layers=2, d_model=d_model, n_heads=n_heads, d_head=d_head, n_ctx=P, d_vocab=V, seed=seed
    )
    gen = torch.Generator().manual_seed(seed)
    tok, prev, out = (slice(i * V, (i + 1) * V) for i in range(3))  # residual subspaces
    pos = slice(3 * V, 3 * V + P)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * decoy_std

    sd: dict[str, torch.Tensor] = {}
    w_e = torch.zeros(V, d_model)
    w_e[:, tok] = torch.eye(V)
    w_pos = torch.zeros(P, d_model)
    w_pos[:, pos] = torch.eye(P)
    w_u = torch.zeros(d_model, V)
    w_u[out, :] = torch.eye(V) * unembed_scale
    sd["embed.W_E"], sd["pos_embed.W_pos"] = w_e, w_pos
    sd["unembed.W_U"], sd["unembed.b_U"] = w_u, torch.zeros(V)

    c = (sharpness * d_head**0.5) ** 0.5  # q·k = c² = sharpness·sqrt(d_head)
    for layer in range(2):
        a = f"blocks.{layer}.attn."
        sd[a + "W_Q"] = rand(n_heads, d_model, d_head)
        sd[a + "W_K"] = rand(n_heads, d_model, d_head)
        sd[a + "W_V"] = rand(n_heads, d_model, d_head)
        sd[a + "W_O"] = rand(n_heads, d_head, d_model)
        for b in ("b_Q", "b_K", "b_V"):
            sd[a + b] = torch.zeros(n_heads, d_head)
        sd[a + "b_O"] = torch.zeros(d_model)

    # 0.0: previous-token head. Query at position i -> unit f_i; key at position j -> f_{j+1}.
    w_q, w_k = torch.zeros(d_model, d_head), torch.zeros(d_model, d_head)
    idx = torch.arange(P)
    w_q[pos.start + idx, idx] = c
    w_k[pos.start + idx[:-1], idx[1:]] = c
    w_v, w_o = torch.zeros(d_model, d_head), torch.zeros(d_head, d_model)
    w_v[tok, :V] = torch.eye(V)
    w_o[:V, prev] = torch.eye(V)
    sd["blocks.0.attn.W_Q"][0], sd["blocks.0.attn.W_K"][0] = w_q, w_k
    sd["blocks.0.attn.W_V"][0], sd["blocks.0.attn.W_O"][0] = w_v, w_o

    # 1.0: induction head. Query: current token t -> h_t; key: previous token t -> h_t.
    w_q, w_k = torch.zeros(d_model, d_head), torch.zeros(d_model, d_head)
    w_q[tok, :V] = torch.eye(V) * c
    w_k[prev, :V] = torch.eye(V) * c
    w_v, w_o = torch.zeros(d_model, d_head), torch.zeros(d_head, d_model)
    w_v[tok, :V] = torch.eye(V)
    w_o[:V, out] = torch.eye(V)
    sd["blocks.1.attn.W_Q"][0], sd["blocks.1.attn.W_K"][0] = w_q, w_k
    sd["blocks.1.attn.W_V"][0], sd["blocks.1.attn.W_O"][0] = w_v, w_o
    if not anti_induction:
        return to_hooked_transformer(cfg, sd), PlantedCircuit()

    # 1.1: anti-induction head. 1.0's query and key; output minus the attended token.
    sd["blocks.1.attn.W_Q"][1], sd["blocks.1.attn.W_K"][1] = w_q, w_k
    sd["blocks.1.attn.W_V"][1], sd["blocks.1.attn.W_O"][1] = w_v, -w_o
    return to_hooked_transformer(cfg, sd), PlantedCircuit(anti_induction_head=(1, 1))


def distinct_repeated_tokens(
    d_vocab: int, seq_len: int, batch: int, seed: int = 0, bos: int = 0
) -> torch.Tensor:
    """``BOS + r + r`` with the tokens of each ``r`` distinct (so every induction match is unique)."""
    if seq_len > d_vocab - 1:
        raise ValueError("seq_len must be below d_vocab for distinct tokens")
    gen = torch.Generator().manual_seed(seed)
    ordinary = torch.tensor([t for t in range(d_vocab) if t != bos])
    rows = [ordinary[torch.randperm(len(ordinary), generator=gen)[:seq_len]] for _ in range(batch)]
    r = torch.stack(rows)
    return torch.cat([torch.full((batch, 1), bos), r, r], dim=1)
