"""Weight-based circuit analyses: OV copying, positional QK, K-composition (definitions in
docs/methods/ov_circuit.md, qk_circuit.md and k_composition.md).

Every ``d_vocab × d_vocab`` circuit is a :class:`transformer_lens.FactoredMatrix` ``A @ B`` with a
small inner dimension; it is never materialised whole. Its top-k accuracy is computed a block of
rows at a time (:func:`iter_row_blocks`), so memory is ``chunk_size × d_vocab`` floats however
large the vocabulary.

Conventions (as in TransformerLens, row vectors): a token ``t``'s OV output is row ``t`` of
``W_E W_V W_O W_U``; a score ``query · key`` is ``x_q W_Q (x_k W_K)ᵀ``. Heads are ``(layer, head)``
pairs; :func:`induction_heads.naming.head_label` turns them into "L.H".

Biases: the weight circuits (OV, positional QK, K-composition) leave out ``b_Q, b_K, b_V, b_O``
as ARENA does — they are input-independent offsets, not part of the token/position circuit
(:func:`positional_qk_pattern` can add ``b_Q, b_K`` on request). The attention-score
decomposition (:func:`decompose_attention_scores`) keeps them, as a "bias" component, so that its
parts sum exactly to the scores the model computes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix, HookedTransformer

from .applicability import NO_EARLIER_PREV_TOKEN_HEAD, NotApplicable
from .metrics import metric_value
from .naming import head_label, parse_head_label

Head = tuple[int, int]

DEFAULT_CHUNK_SIZE = 512


# --------------------------------------------------------------------------------------------
# The heads an analysis studies (from the head-scores metrics, never hard-coded)


@dataclass
class StudiedHeads:
    """Detected heads, best first, with a sentence for every fallback taken (keyed by
    ``"induction"`` / ``"prev_token"``, so a notebook reports only the ones it uses)."""

    induction: list[str]
    prev_token: list[str]
    notes: dict[str, str]

    @property
    def circuit(self) -> list[str]:
        """The previous-token heads, then the induction heads, each once: the induction circuit."""
        return list(dict.fromkeys(self.prev_token + self.induction))

    def record_notes(self, metrics, *kinds: str) -> list[str]:
        """Record the fallback sentences of ``kinds`` as ``fallback_<kind>`` texts of ``metrics``
        (a :class:`~induction_heads.metrics.Metrics`); return them."""
        notes = [(kind, self.notes[kind]) for kind in kinds if kind in self.notes]
        return [metrics.text(f"fallback_{kind}", note) for kind, note in notes]


def studied_heads(head_metrics: dict) -> StudiedHeads:
    """``induction_heads`` and ``prev_token_heads`` from a head-scores ``metrics.json``: the heads
    the model's config entry names (``studied_<kind>_heads``), else the detected ones; a detected
    list that is empty (no head above threshold) falls back to the single best head. Either
    exception is said in a note."""
    lists, notes = {}, {}
    for kind, words in (("induction", "induction"), ("prev_token", "previous-token")):
        detected = list(metric_value(head_metrics, f"{kind}_heads"))
        named = (head_metrics["metrics"].get(f"studied_{kind}_heads") or {}).get("value")
        if named:
            lists[kind] = list(named)
            found = ", ".join(detected) or "none above the threshold"
            notes[kind] = (f"The config names the {words} heads to study: {', '.join(named)} "
                           f"(the detector found {found}).")  # fmt: skip
            continue
        if not detected:
            best = metric_value(head_metrics, f"best_{kind}_head")
            detected = [best]
            notes[kind] = (
                f"No head reached the {words} threshold, so this analysis studies the head with "
                f"the highest {words} score, {best}."
            )
        lists[kind] = detected
    return StudiedHeads(lists["induction"], lists["prev_token"], notes)


def best_pair(heads: StudiedHeads) -> tuple[str, str]:
    """(previous-token head, induction head): the best induction head and the best previous-token
    head in an earlier layer than it; :class:`NotApplicable` when there is none (no
    K-composition pair to study)."""
    ind = heads.induction[0]
    ind_layer = parse_head_label(ind)[0]
    for prev in heads.prev_token:
        if parse_head_label(prev)[0] < ind_layer:
            return prev, ind
    raise NotApplicable(NO_EARLIER_PREV_TOKEN_HEAD.format(
        prev_heads=", ".join(heads.prev_token), induction_head=ind))


# --------------------------------------------------------------------------------------------
# Top-k accuracy of a square factored matrix, in row blocks


def iter_row_blocks(
    fm: FactoredMatrix, chunk_size: int = DEFAULT_CHUNK_SIZE, rows: Int[Tensor, "n"] | None = None
) -> Iterator[tuple[Int[Tensor, "chunk"], Float[Tensor, "chunk d_vocab"]]]:
    """Yield ``(row indices, fm[rows, :])`` a block of ``chunk_size`` rows at a time.

    Only one ``chunk_size × rdim`` block exists at a time (plus the small factors).
    """
    if fm.ndim != 2:
        raise ValueError(f"expected a single matrix, got leading dims in shape {tuple(fm.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    rows = torch.arange(fm.ldim) if rows is None else rows
    for chunk in rows.to(fm.A.device).split(chunk_size):
        yield chunk, fm.A[chunk] @ fm.B


@torch.no_grad()
def diagonal_topk_accuracy(
    fm: FactoredMatrix,
    ks: Sequence[int] = (1, 5),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rows: Int[Tensor, "n"] | None = None,
) -> dict[int, float]:
    """Fraction of rows ``t`` whose diagonal entry ``M[t, t]`` is among the row's ``k`` largest.

    Ties count against the diagonal (an entry equal to it counts as larger), so a constant or
    zero matrix scores 0, not 1. ``rows`` restricts the rows evaluated (default: all).
    """
    if fm.ldim != fm.rdim:
        raise ValueError(f"top-k accuracy needs a square matrix, got shape {tuple(fm.shape)}")
    hits = {k: 0 for k in ks}
    n_rows = 0
    for chunk, block in iter_row_blocks(fm, chunk_size, rows):
        diag = block.gather(1, chunk[:, None])  # [chunk 1]
        n_rivals = (block >= diag).sum(-1) - 1  # entries at least as large, other than itself
        for k in ks:
            hits[k] += int((n_rivals < k).sum())
        n_rows += len(chunk)
    return {k: hits[k] / n_rows for k in ks}


# --------------------------------------------------------------------------------------------
# OV copying circuit


def ov_circuit(model: HookedTransformer, heads: Sequence[Head]) -> FactoredMatrix:
    """The full OV circuit ``W_E W_V W_O W_U`` of one head, or the "effective" circuit of several.

    Several heads are concatenated along the head dimension,
    ``W_E [W_V^a W_V^b] [W_O^a; W_O^b] W_U``, which is the sum of their OV circuits.
    Shape ``[d_vocab, d_vocab]`` (source token × output logit), inner dim ``len(heads)·d_head``.
    """
    if not heads:
        raise ValueError("ov_circuit needs at least one head")
    w_v = torch.cat([model.W_V[layer, head] for layer, head in heads], dim=-1)  # [d_model n·d_head]
    w_o = torch.cat([model.W_O[layer, head] for layer, head in heads], dim=0)  # [n·d_head d_model]
    return FactoredMatrix(model.W_E @ w_v, w_o @ model.W_U)


@torch.no_grad()
def ov_topk_accuracy(
    model: HookedTransformer,
    heads: Sequence[Head],
    ks: Sequence[int] = (1, 5),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rows: Int[Tensor, "n"] | None = None,
) -> dict[int, float]:
    """Top-k copying accuracy of :func:`ov_circuit` over the whole vocabulary, or over the source
    tokens ``rows`` (each still ranked against every output token; see :func:`vocab_sample`)."""
    return diagonal_topk_accuracy(ov_circuit(model, heads), ks, chunk_size, rows)


@torch.no_grad()
def ov_topk_all_heads(
    model: HookedTransformer,
    ks: Sequence[int] = (1, 5),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rows: Int[Tensor, "n"] | None = None,
) -> dict[int, Float[Tensor, "layer head"]]:
    """:func:`ov_topk_accuracy` of every head alone, as layer × head arrays (one per k)."""
    out = {k: torch.zeros(model.cfg.n_layers, model.cfg.n_heads) for k in ks}
    for layer in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            for k, acc in ov_topk_accuracy(model, [(layer, h)], ks, chunk_size, rows).items():
                out[k][layer, h] = acc
    return out


# Estimating a top-k accuracy from a sample of source tokens (large vocabularies)


def vocab_sample(d_vocab: int, n: int | None, seed: int) -> Int[Tensor, "n"] | None:
    """``n`` distinct source tokens drawn with ``seed`` (sorted), or ``None`` — every token — when
    ``n`` is ``None`` or at least ``d_vocab``.

    A full OV circuit costs ``d_vocab² · d_head`` per head: 50257² for GPT-2, i.e. minutes per head
    on a CPU. Each sampled row is still ranked against every output token, so a sampled accuracy
    is an unbiased estimate of the exact one, with the interval of :func:`proportion_interval`.
    """
    if n is None or n >= d_vocab:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(d_vocab, generator=generator)[:n].sort().values


def proportion_interval(p: float, n: int, population: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``p`` measured on ``n`` of ``population`` items
    drawn without replacement (finite-population corrected); ``(p, p)`` when ``n = population``.

    The correction shrinks the variance by ``(N − n)/(N − 1)``, i.e. the Wilson interval of an
    effective sample size ``n (N − 1)/(N − n)``.
    """
    if not 0 < n <= population:
        raise ValueError(f"need 0 < n <= population, got n={n}, population={population}")
    if n == population:
        return (p, p)
    n_eff = n * (population - 1) / (population - n)
    z2 = z * z / n_eff
    centre = (p + z2 / 2) / (1 + z2)
    half = z * (p * (1 - p) / n_eff + z2 / (4 * n_eff)) ** 0.5 / (1 + z2)
    return (max(0.0, centre - half), min(1.0, centre + half))


def sampled_interval(p: float, rows: Int[Tensor, "n"] | None, d_vocab: int) -> tuple[float, float] | None:
    """The interval of an accuracy measured on the sample ``rows``; ``None`` when it is exact."""
    return None if rows is None else proportion_interval(p, len(rows), d_vocab)


def widest_half_interval(n: int, population: int) -> float:
    """Half the width of :func:`proportion_interval` at its widest (``p = ½``)."""
    lo, hi = proportion_interval(0.5, n, population)
    return (hi - lo) / 2


def copying_score(eigenvalues: Float[Tensor, "... n"]) -> Float[Tensor, "..."]:
    """Positive-eigenvalue copying score ``Σλ / Σ|λ|`` (Elhage 2021): +1 for pure copying.
    A circuit with no non-zero eigenvalue neither copies nor suppresses: it scores 0."""
    total = eigenvalues.abs().sum(-1)
    return torch.where(total > 0, eigenvalues.sum(-1).real / total, torch.zeros_like(total))


@torch.no_grad()
def ov_copying_scores(model: HookedTransformer) -> Float[Tensor, "layer head"]:
    """Copying score of every head's full OV circuit, as a layer × head array.

    ``W_E W_V W_O W_U`` has the same non-zero eigenvalues as its cyclic rotation
    ``W_V · (W_O W_U W_E)`` (``AB`` and ``BA`` share them), a ``d_model × d_model`` factored matrix
    whose :attr:`FactoredMatrix.eigenvalues` come from the ``d_head × d_head`` product — so no
    vocabulary-sized matrix is ever formed.
    """
    w_ue = model.W_U @ model.W_E  # [d_model d_model]
    fm = FactoredMatrix(model.W_V, model.W_O @ w_ue)  # [layer head d_model d_model]
    return copying_score(fm.eigenvalues.to(torch.complex128)).cpu()


# --------------------------------------------------------------------------------------------
# Positional QK circuit of a previous-token head


def _causal_softmax(scores: Float[Tensor, "... q k"]) -> Float[Tensor, "... q k"]:
    n_q, n_k = scores.shape[-2:]
    causal = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


@torch.no_grad()
def positional_qk_pattern(
    model: HookedTransformer, head: Head, include_bias: bool = False
) -> Float[Tensor, "n_ctx n_ctx"]:
    """``softmax(mask(W_pos W_Q W_Kᵀ W_posᵀ / attn_scale))``: the pattern the positional
    embeddings alone give head ``head`` (query position × key position).

    ``include_bias`` adds ``b_Q``/``b_K`` to the positional queries and keys; the default leaves
    them out, as ARENA does.
    """
    if model.cfg.positional_embedding_type not in ("shortformer", "standard"):
        raise ValueError(
            f"positional_qk_pattern needs learned positional embeddings (W_pos); "
            f"positional_embedding_type is {model.cfg.positional_embedding_type!r}"
        )
    layer, h = head
    q = model.W_pos @ model.W_Q[layer, h]  # [n_ctx d_head]
    k = model.W_pos @ model.W_K[layer, h]
    if include_bias:
        q, k = q + model.b_Q[layer, h], k + model.b_K[layer, h]
    return _causal_softmax(q @ k.T / model.blocks[layer].attn.attn_scale).cpu()


def subdiagonal_mean(pattern: Float[Tensor, "... q k"]) -> Float[Tensor, "..."]:
    """Mean attention to the previous position (the first sub-diagonal), over queries 1…n−1."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)


@torch.no_grad()
def positional_prev_token_scores(
    model: HookedTransformer, include_bias: bool = False
) -> Float[Tensor, "layer head"]:
    """:func:`subdiagonal_mean` of every head's :func:`positional_qk_pattern`."""
    return torch.tensor(
        [
            [
                float(subdiagonal_mean(positional_qk_pattern(model, (layer, h), include_bias)))
                for h in range(model.cfg.n_heads)
            ]
            for layer in range(model.cfg.n_layers)
        ]
    )


# --------------------------------------------------------------------------------------------
# K-composition circuit


def kcomp_circuit(model: HookedTransformer, prev_head: Head, ind_head: Head) -> FactoredMatrix:
    """``W_E W_Q^{ind} (W_E W_V^{prev} W_O^{prev} W_K^{ind})ᵀ``, shape ``[d_vocab, d_vocab]``.

    Row: the induction head's query token; column: the token the previous-token head moved into
    the key position. An induction head attends to the position after an earlier copy of the
    current token, so a good K-composition circuit has its largest entry on the diagonal.
    The previous-token head's value input is the token embedding only (shortformer: positions
    reach Q and K, never V; with standard embeddings this is the token part of it).
    """
    (lp, hp), (li, hi) = prev_head, ind_head
    if lp >= li:
        raise ValueError(
            f"K-composition needs the previous-token head in an earlier layer: "
            f"{head_label(lp, hp)} → {head_label(li, hi)}"
        )
    query = model.W_E @ model.W_Q[li, hi]  # [d_vocab d_head]
    key = model.W_E @ model.W_V[lp, hp] @ model.W_O[lp, hp] @ model.W_K[li, hi]  # [d_vocab d_head]
    return FactoredMatrix(query, key.T)


@torch.no_grad()
def kcomp_top1_matrix(
    model: HookedTransformer,
    prev_heads: Sequence[Head],
    ind_heads: Sequence[Head],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rows: Int[Tensor, "n"] | None = None,
) -> Float[Tensor, "n_prev n_ind"]:
    """Top-1 accuracy of :func:`kcomp_circuit` for every (previous-token head, induction head)
    pair, over every query token or the sample ``rows`` (:func:`vocab_sample`); NaN where the
    previous-token head is not in an earlier layer."""
    out = torch.full((len(prev_heads), len(ind_heads)), float("nan"))
    for i, prev in enumerate(prev_heads):
        for j, ind in enumerate(ind_heads):
            if prev[0] < ind[0]:
                circuit = kcomp_circuit(model, prev, ind)
                out[i, j] = diagonal_topk_accuracy(circuit, (1,), chunk_size, rows)[1]
    return out


# --------------------------------------------------------------------------------------------
# Decomposition of an induction head's attention scores into (query part × key part)


@dataclass
class QKDecomposition:
    """Attention scores of one head split by the residual components that feed Q and K.

    ``scores[i, j, b, q, k]`` is the part of the score of query position ``q`` on key position
    ``k`` (sequence ``b``) that comes from component ``names[i]`` on the query side and
    ``names[j]`` on the key side; summed over ``i, j`` it is the head's pre-softmax score.
    """

    names: list[str]
    scores: Float[Tensor, "comp_q comp_k batch q k"]


@torch.no_grad()
def qk_input_components(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], layer: int
) -> tuple[list[str], Float[Tensor, "comp batch pos d_model"]]:
    """The Q/K input of ``layer`` split into: token embedding, positional embedding, each
    earlier head's output (from the cache), and ``bias`` (the earlier layers' ``b_O``).

    With shortformer embeddings the Q/K input is ``resid_pre + pos_embed``; with standard ones
    ``resid_pre`` already holds ``pos_embed``: the parts are the same either way.
    Needs an attention-only model without LayerNorm (the split is only linear then).
    """
    cfg = model.cfg
    if not cfg.attn_only or cfg.normalization_type is not None:
        raise ValueError(
            "the Q/K decomposition needs an attention-only model without LayerNorm "
            f"(attn_only={cfg.attn_only}, normalization_type={cfg.normalization_type!r})"
        )
    if cfg.positional_embedding_type not in ("shortformer", "standard"):
        raise ValueError(f"unsupported positional_embedding_type {cfg.positional_embedding_type!r}")
    _, cache = model.run_with_cache(
        tokens.to(cfg.device),
        names_filter=lambda n: n in ("hook_embed", "hook_pos_embed") or n.endswith("attn.hook_z"),
    )
    embed = cache["hook_embed"]
    parts = [embed, cache["hook_pos_embed"].expand_as(embed)]
    names = ["embed", "pos_embed"]
    bias = torch.zeros_like(embed)
    for earlier in range(layer):
        # Each head's output z·W_O, as TransformerLens's hook_result would hold it.
        per_head = torch.einsum("bphd,hdm->hbpm", cache["z", earlier], model.W_O[earlier])
        parts.extend(per_head)
        names.extend(head_label(earlier, h) for h in range(cfg.n_heads))
        bias = bias + model.b_O[earlier]
    parts.append(bias)
    names.append("bias")
    return names, torch.stack(parts)


@torch.no_grad()
def decompose_attention_scores(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], head: Head
) -> QKDecomposition:
    """ARENA's ``decompose_q`` × ``decompose_k`` for head ``head``: every (query component, key
    component) contribution to its pre-softmax scores (causal mask not applied).

    ``b_Q`` and ``b_K`` are added to the ``bias`` component, so the parts sum exactly to
    ``q·k / attn_scale``.
    """
    layer, h = head
    names, parts = qk_input_components(model, tokens, layer)
    q = parts @ model.W_Q[layer, h]  # [comp batch pos d_head]
    k = parts @ model.W_K[layer, h]
    q[-1] += model.b_Q[layer, h]
    k[-1] += model.b_K[layer, h]
    scores = torch.einsum("ibqd,jbkd->ijbqk", q, k) / model.blocks[layer].attn.attn_scale
    return QKDecomposition(names=names, scores=scores.cpu())


def score_spreads(decomp: QKDecomposition) -> Float[Tensor, "comp_q comp_k"]:
    """Standard deviation of each contribution over sequences and causal (key ≤ query) pairs:
    how much each (query part, key part) term moves the scores — ARENA's figure."""
    n = decomp.scores.shape[-1]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    return decomp.scores[..., causal].flatten(2).std(-1)
