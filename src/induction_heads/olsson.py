"""Olsson et al.'s (2022) head activation evaluators — prefix matching and copying — and the
anti-induction heads they reveal.

Both scores are measured on the same token sets: ``BOS + r + r + … + r`` (``n_repeats`` copies)
where ``r`` is ``n_tokens`` *distinct* tokens drawn at random from a pool (:func:`token_pool`):
the model's ordinary vocabulary without its most and its least common tokens. Olsson et al. use
``n_tokens = 25``, ``n_repeats = 4`` and average over 10 sequences; we use more sequences, so each
score gets an interval.

Prefix matching (:func:`prefix_matching`)
    For every query position ``q`` whose token occurred earlier, the *successor set* of ``q`` is
    every position ``k`` with ``tokens[k − 1] = tokens[q]`` and ``k − 1 < q`` (the token after each
    earlier occurrence of the current token). A head's score on a sequence is the attention from
    ``q`` to its successor set, **summed over the set** and averaged over the queries that have
    one (repeats 2 … n_repeats). A perfect prefix-matching head scores 1. (The paper
    describes an average over the attention entries to those tokens; averaging entries rather
    than summing them per query would cap a perfect head at ``1 / (number of earlier copies)``,
    so we sum per query.)

Copying (:func:`copying_shares`, :func:`copying_score`)
    For every source position ``j`` of the first repeat (token ``t_j``), the head's direct-path
    effect on the logits *were it to attend to ``j`` alone* is ``Δ_j = v_j W_O W_U``, where
    ``v_j`` is the head's value vector at ``j`` in the model's own run on the sequence (for a
    first-layer head of an attention-only model this is row ``t_j`` of the OV circuit
    ``W_E W_V W_O W_U``, plus ``b_V W_O W_U``). With a final LayerNorm its centring and weight
    (linear) are applied to ``v_j W_O``; its division by the residual's scale is a positive factor
    per position and cannot change a share (:func:`through_final_norm`).
    ``Δ_j`` minus its mean over the whole vocabulary, through a ReLU, gives how much each token's
    logit is *raised*. The **share** of position ``j`` is the raise of ``t_j`` divided by the
    summed raise of the ``n_tokens`` tokens of the sample ``r`` (a row that raises none of them
    gets the no-preference share). A sequence's share is the mean over its positions ``j``.

    Rescaling to −1…1: Olsson et al. rescale the share linearly. A head with no preference for
    the attended token has share ``c = 1 / n_tokens`` (the attended token is one of ``n_tokens``
    exchangeable ones), which a linear map puts near −1, next to a head that suppresses the
    attended token. We anchor the map at chance instead, piecewise linearly on the mean share
    ``s``: ``(s − c) / (1 − c)`` above ``c`` and ``(s − c) / c`` below. So **+1**: every raise
    goes to the attended token; **0**: no preference (chance); **−1**: the attended token is never
    raised (it is suppressed, or only other tokens are raised). Negative scores therefore mean
    "raises the attended token less than a random token of the sample" — what an anti-induction
    head does.

Anti-induction heads (:func:`anti_induction_heads`)
    A *candidate* is a head whose prefix-matching score or whose induction score (from the
    head-scores analysis) reaches its threshold: it attends like an induction head. It is an
    anti-induction head when its copying score is significantly negative: the one-sided test of
    ``H0: E[share] ≥ c`` by a bootstrap over sequences (data shifted to the null, as Efron and
    Tibshirani's bootstrap test of a mean), with the **Holm–Bonferroni** correction over the
    candidate heads at family-wise level ``alpha``. The number of resamples is raised as needed so
    the smallest attainable p-value is below ``alpha / (number of candidates)``.

Token frequencies: :func:`token_pool` ranks the ordinary tokens by their count in a token stream
the caller passes (the analyses pass the model's held-out text, encoded with its own tokenizer);
without one it falls back to the whole ordinary vocabulary and says so in its ``rule``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from .metrics import bootstrap_means
from .plots import head_label

# --------------------------------------------------------------------------- the token sets


@dataclass(frozen=True)
class TokenPool:
    """The ids random sequences draw from, and the sentence saying how they were chosen."""

    ids: np.ndarray
    rule: str


def token_pool(
    ordinary_ids: np.ndarray,
    frequencies: np.ndarray | None = None,
    exclude_common: float = 0.05,
    exclude_rare: float = 0.2,
) -> TokenPool:
    """The ordinary ids without the most and the least common ones.

    ``frequencies[i]`` is token ``i``'s count in some token stream (``[d_vocab]``). The ordinary
    ids are ranked by count, most common first (ties by id), and the first ``exclude_common`` and
    the last ``exclude_rare`` fractions of the ranking are dropped. Without ``frequencies`` the
    pool is every ordinary id (nothing says which tokens are common).
    """
    ids = np.asarray(ordinary_ids, dtype=np.int64)
    if not (0 <= exclude_common < 1 and 0 <= exclude_rare < 1 and exclude_common + exclude_rare < 1):
        raise ValueError(
            f"exclude_common ({exclude_common}) and exclude_rare ({exclude_rare}) must be "
            "fractions in [0, 1) that sum to less than 1"
        )
    if frequencies is None:
        return TokenPool(ids, "every ordinary token (no token frequencies given)")
    freq = np.asarray(frequencies)
    if ids.size and ids.max() >= len(freq):
        raise ValueError(f"frequencies cover {len(freq)} ids; the ordinary ids reach {ids.max()}")
    order = ids[np.lexsort((ids, -freq[ids]))]  # most common first, ties by id
    n_common = math.ceil(exclude_common * len(order))
    n_rare = math.ceil(exclude_rare * len(order))
    kept = np.sort(order[n_common : len(order) - n_rare])
    rule = (
        f"ordinary tokens without the {exclude_common:.0%} most and the {exclude_rare:.0%} least "
        f"common in the held-out text ({len(kept)} of {len(ids)})"
    )
    return TokenPool(kept, rule)


def token_counts(tokens: Int[Tensor, "batch pos"], d_vocab: int, skip_first: bool = True) -> np.ndarray:
    """How often each id occurs in ``tokens`` (``[d_vocab]``); the first column (BOS) is skipped."""
    body = tokens[:, 1:] if skip_first else tokens
    return np.bincount(body.reshape(-1).numpy(), minlength=d_vocab)[:d_vocab]


def repeated_sequences(
    pool: np.ndarray, n_tokens: int, n_repeats: int, n_sequences: int, seed: int, bos: int | None
) -> Int[Tensor, "batch pos"]:
    """``BOS + r × n_repeats`` with ``r`` ``n_tokens`` distinct ids from ``pool``, seeded
    (``r × n_repeats`` alone when ``bos`` is None)."""
    pool = torch.as_tensor(np.asarray(pool), dtype=torch.long)
    if n_tokens < 2 or n_repeats < 2:
        raise ValueError(f"need n_tokens >= 2 and n_repeats >= 2, got {n_tokens} and {n_repeats}")
    if len(pool) < n_tokens:
        raise ValueError(f"the token pool has {len(pool)} ids, fewer than n_tokens = {n_tokens}")
    gen = torch.Generator().manual_seed(seed)
    r = torch.stack([pool[torch.randperm(len(pool), generator=gen)[:n_tokens]] for _ in range(n_sequences)])
    body = r.repeat(1, n_repeats)
    return body if bos is None else torch.cat([torch.full((n_sequences, 1), bos), body], dim=1)


def check_fits(model: HookedTransformer, n_tokens: int, n_repeats: int, bos: bool = True) -> None:
    n_pos = int(bos) + n_tokens * n_repeats
    if n_pos > model.cfg.n_ctx:
        raise ValueError(
            f"BOS + {n_repeats} x {n_tokens} tokens = {n_pos} positions do not fit the model's "
            f"context (n_ctx {model.cfg.n_ctx}): lower n_tokens or n_repeats"
        )


# --------------------------------------------------------------------------- prefix matching


def successor_mask(tokens: Int[Tensor, "batch pos"]) -> Bool[Tensor, "batch q k"]:
    """``mask[b, q, k]``: key ``k`` follows an earlier occurrence of query ``q``'s token
    (``tokens[k − 1] = tokens[q]`` with ``k − 1 < q``)."""
    n = tokens.shape[1]
    same = tokens[:, :, None] == tokens[:, None, :]  # [b q j]: tokens[q] == tokens[j]
    earlier = torch.ones(n, n, dtype=torch.bool).tril(-1)  # j < q
    occ = same & earlier  # earlier occurrences j of q's token
    mask = torch.zeros_like(occ)
    mask[:, :, 1:] = occ[:, :, :-1]  # key k = j + 1
    return mask


def _kv_head(model: HookedTransformer, head: int) -> int:
    """The key/value head that query head ``head`` reads (they differ under grouped-query attention)."""
    n_kv = getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads
    return head // (model.cfg.n_heads // n_kv)


@torch.no_grad()
def prefix_matching(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], batch_size: int = 16
) -> Float[Tensor, "batch layer head"]:
    """Every head's prefix-matching score on each sequence (module docstring)."""
    mask_all = successor_mask(tokens)
    out = torch.empty(len(tokens), model.cfg.n_layers, model.cfg.n_heads)
    for start in range(0, len(tokens), batch_size):
        chunk = tokens[start : start + batch_size]
        mask = mask_all[start : start + batch_size].to(model.cfg.device)
        valid = mask.any(-1)  # [b q]
        if not bool(valid.any(-1).all()):
            raise ValueError("a sequence has no repeated token: prefix matching needs repeats")
        _, cache = model.run_with_cache(
            chunk.to(model.cfg.device), names_filter=lambda n: n.endswith("hook_pattern")
        )
        for layer in range(model.cfg.n_layers):
            pattern = cache["pattern", layer]  # [b head q k]
            to_successors = (pattern * mask[:, None]).sum(-1)  # [b head q]
            score = (to_successors * valid[:, None]).sum(-1) / valid.sum(-1)[:, None]
            out[start : start + len(chunk), layer] = score.cpu()
    return out


# --------------------------------------------------------------------------- copying


def through_final_norm(model: HookedTransformer, out: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
    """A head's output as the unembedding sees it, up to a positive factor per position: the
    final LayerNorm's centring and its weight (RMSNorm: its weight) are linear and applied; its
    division by the residual stream's scale is that positive factor, and left out."""
    kind = model.cfg.normalization_type
    if kind in ("LN", "LNPre"):
        out = out - out.mean(-1, keepdim=True)
    if kind in ("LN", "RMS"):
        out = out * model.ln_final.w
    return out


@torch.no_grad()
def copying_shares(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    n_tokens: int,
    first: int = 1,
    batch_size: int = 16,
) -> Float[Tensor, "batch layer head"]:
    """Every head's mean share of its raise on the attended token, per sequence.

    The sample ``r`` is ``tokens[:, first : first + n_tokens]`` (its tokens distinct); its
    positions are the source positions (module docstring). Only the ``n_tokens`` logits of the
    sample and the vocabulary mean are formed, never a whole ``[pos, d_vocab]`` row block.
    """
    cfg = model.cfg
    sample = tokens[:, first : first + n_tokens]
    if sample.shape[1] != n_tokens:
        raise ValueError(f"tokens have no {n_tokens} positions after position {first}")
    if any(len(set(row.tolist())) != n_tokens for row in sample):
        raise ValueError("the sample tokens of each sequence must be distinct")
    w_u = model.W_U  # [d_model d_vocab]
    u_mean = w_u.mean(-1)  # [d_model]: the vocabulary-mean logit direction
    chance = 1.0 / n_tokens
    out = torch.empty(len(tokens), cfg.n_layers, cfg.n_heads)
    diag = torch.arange(n_tokens, device=cfg.device)
    for start in range(0, len(tokens), batch_size):
        chunk = tokens[start : start + batch_size].to(cfg.device)
        r = chunk[:, first : first + n_tokens]  # [b n]
        u_sample = w_u.T[r]  # [b n d_model]: unembedding of each sample token
        _, cache = model.run_with_cache(chunk, names_filter=lambda n: n.endswith("attn.hook_v"))
        for layer in range(cfg.n_layers):
            v = cache["v", layer][:, first : first + n_tokens]  # [b n kv_head d_head]
            for head in range(cfg.n_heads):
                o = v[:, :, _kv_head(model, head)] @ model.W_O[layer, head]  # [b n d_model]
                o = through_final_norm(model, o)
                logits = torch.einsum("bjm,bkm->bjk", o, u_sample)  # [b source sample-token]
                raise_ = (logits - (o @ u_mean)[..., None]).clamp(min=0)
                total = raise_.sum(-1)
                own = raise_[:, diag, diag]
                share = torch.where(total > 0, own / total.clamp(min=1e-30), torch.full_like(own, chance))
                out[start : start + len(chunk), layer, head] = share.mean(-1).cpu()
    return out


def copying_score(share: Tensor | np.ndarray | float, chance: float):
    """Mean share → −1…1, anchored at chance (module docstring): +1 all raise on the attended
    token, 0 no preference, −1 none on it."""
    s = share if isinstance(share, Tensor) else np.asarray(share, dtype=np.float64)
    above = (s - chance) / (1 - chance)
    below = (s - chance) / chance
    return torch.where(s >= chance, above, below) if isinstance(s, Tensor) else np.where(s >= chance, above, below)


# --------------------------------------------------------------------------- summaries


@dataclass
class OlssonScores:
    """Per-sequence prefix matching and copying shares of every head, and the chance share."""

    prefix: Float[Tensor, "batch layer head"]
    share: Float[Tensor, "batch layer head"]
    chance: float

    def prefix_mean(self) -> Float[Tensor, "layer head"]:
        return self.prefix.mean(0)

    def copying(self) -> Float[Tensor, "layer head"]:
        return copying_score(self.share.mean(0), self.chance)

    def intervals(self, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, np.ndarray]:
        """Percentile bootstrap intervals over sequences, ``[layer head 2]`` for each score."""
        alpha = (1 - level) / 2
        out = {}
        for name, x, f in (("prefix", self.prefix, lambda m: m),
                           ("copying", self.share, lambda m: copying_score(m, self.chance))):  # fmt: skip
            means = bootstrap_means(x.double().numpy(), n_boot, seed)  # [B layer head]
            lo, hi = np.quantile(means, [alpha, 1 - alpha], axis=0)
            out[name] = np.stack([f(lo), f(hi)], axis=-1)  # the map is increasing
        return out


def olsson_scores(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], n_tokens: int, bos: bool = True,
    batch_size: int = 16,
) -> OlssonScores:
    """Both scores on sequences from :func:`repeated_sequences`."""
    first = int(bos)
    return OlssonScores(
        prefix=prefix_matching(model, tokens, batch_size),
        share=copying_shares(model, tokens, n_tokens, first, batch_size),
        chance=1.0 / n_tokens,
    )


def holm_reject(pvalues: Sequence[float], alpha: float) -> list[bool]:
    """Holm–Bonferroni step-down: which hypotheses are rejected at family-wise level ``alpha``."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    reject = [False] * m
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] > alpha / (m - rank):
            break
        reject[int(i)] = True
    return reject


def bootstrap_p_below(samples: np.ndarray, null: float, n_boot: int, seed: int) -> np.ndarray:
    """One-sided bootstrap p-values of ``H0: mean ≥ null`` for every column of ``samples``
    (``[n, m]``): the samples are shifted to mean ``null``, resampled, and the p-value is the
    share of resampled means at or below the observed mean (plus one, over ``n_boot + 1``)."""
    x = np.asarray(samples, dtype=np.float64)
    observed = x.mean(0)
    shifted = x - observed + null
    means = bootstrap_means(shifted, n_boot, seed)  # [B m]
    return (1 + (means <= observed).sum(0)) / (n_boot + 1)


@dataclass
class AntiInduction:
    candidates: list[str]  # heads whose attention looks like induction
    pvalues: list[float]  # one-sided, H0: the attended token gets at least its chance share
    rejected: list[bool]  # Holm over the candidates
    heads: list[str]  # the anti-induction heads (candidates rejected), most negative first
    n_boot: int  # resamples used


def anti_induction_heads(
    scores: OlssonScores,
    induction: Float[Tensor, "layer head"] | None,
    prefix_threshold: float,
    induction_threshold: float,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> AntiInduction:
    """The anti-induction heads: attention like an induction head, copying significantly below
    chance (module docstring). ``induction`` is our induction score (``None``: prefix matching
    alone selects the candidates)."""
    prefix = scores.prefix_mean()
    n_layers, n_heads = prefix.shape
    cand = [
        (layer, head) for layer in range(n_layers) for head in range(n_heads)
        if float(prefix[layer, head]) >= prefix_threshold
        or (induction is not None and float(induction[layer, head]) >= induction_threshold)
    ]  # fmt: skip
    labels = [head_label(*h) for h in cand]
    if not cand:
        return AntiInduction([], [], [], [], 0)
    boots = max(n_boot, math.ceil(20 * len(cand) / alpha))  # smallest p well below alpha / m
    shares = torch.stack([scores.share[:, layer, head] for layer, head in cand], dim=1).double().numpy()
    p = bootstrap_p_below(shares, scores.chance, boots, seed)
    rejected = holm_reject(p, alpha)
    copying = scores.copying()
    found = sorted((float(copying[h]), head_label(*h)) for h, rej in zip(cand, rejected) if rej)
    return AntiInduction(labels, [float(x) for x in p], rejected, [label for _, label in found], boots)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1…n, ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's on average ranks); NaN if either is constant."""
    rx, ry = average_ranks(np.ravel(x)), average_ranks(np.ravel(y))
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


# --------------------------------------------------------------------------- beside our scores


def per_head_column(
    metrics: dict, table: str, column: str, shape: tuple[int, int]
) -> Float[Tensor, "layer head"]:
    """A per-head column of an analysis's table (rows start with the "L.H" label) as a
    ``layer × head`` array; NaN for heads the table does not list."""
    from .plots import parse_head_label

    entry = (metrics.get("tables") or {}).get(table)
    if not entry or column not in entry.get("columns", []):
        raise KeyError(
            f"{metrics.get('analysis')}/{metrics.get('model')} metrics have no table {table!r} "
            f"with a column {column!r}"
        )
    i = entry["columns"].index(column)
    out = torch.full(shape, float("nan"))
    for row in entry["rows"]:
        out[parse_head_label(str(row[0]))] = float(row[i])
    return out


@dataclass
class RankComparison:
    """Do two per-head scores rank the same head first, and how alike are their orders?"""

    first_theirs: str
    first_ours: str
    rho: float  # Spearman over the heads compared
    n_heads: int

    @property
    def same_first(self) -> bool:
        return self.first_theirs == self.first_ours


def compare_rankings(
    theirs: Float[Tensor, "layer head"], ours: Float[Tensor, "layer head"], layers: list[int] | None = None
) -> RankComparison:
    """Compare two scores over the heads of ``layers`` (all layers: ``None``)."""
    from .scores import best_head

    rows = range(theirs.shape[0]) if layers is None else layers
    a = torch.stack([theirs[layer] for layer in rows]).flatten().numpy()
    b = torch.stack([ours[layer] for layer in rows]).flatten().numpy()
    return RankComparison(best_head(theirs, layers)[0], best_head(ours, layers)[0], spearman(a, b), len(a))


def ranking_sentence(theirs_name: str, ours_name: str, cmp: RankComparison, where: str = "") -> str:
    verdict = "rank the same head first" if cmp.same_first else "rank different heads first"
    heads = (f"{cmp.first_theirs}" if cmp.same_first
             else f"{cmp.first_theirs} by {theirs_name}, {cmp.first_ours} by {ours_name}")  # fmt: skip
    rho = "undefined" if math.isnan(cmp.rho) else f"{cmp.rho:.2f}"
    return (f"{theirs_name[0].upper() + theirs_name[1:]} and {ours_name} {verdict}{where} ({heads}); "
            f"Spearman ρ = {rho} over {cmp.n_heads} heads.")  # fmt: skip
