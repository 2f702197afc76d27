"""Fuzzy induction (docs/methods/fuzzy_induction.md): after ``[A][B] … [A*]``, with ``A*`` a
synonym of ``A``, does the model attend to ``[B]`` and predict ``[B]`` or its synonym ``[B*]``?

Sequences and positions
-----------------------
A sequence is built from ``n`` synonym pairs ``(wᵢ, wᵢ*)``::

    position   0     1 … n        n+1 … 2n
    token      BOS   w₁ … wₙ      (second half: depends on the condition)

All four conditions share the first half; they differ in the second half, whose slot
``s = 1 … n`` sits at position ``n + s``:

* ``synonym``   — slot ``s`` holds ``w*ₛ``;
* ``exact``     — slot ``s`` holds ``wₛ`` (an exact repeat: ordinary induction);
* ``unrelated`` — slot ``s`` holds ``uₛ``, a word of some *other* pair, neither in the sequence nor a
  synonym of any word in it;
* ``shuffled``  — slot ``s`` holds ``w*_{π(s)}`` for a seeded derangement ``π`` (``π(s) ≠ s``).

Targets of each slot
--------------------
Each second-half slot ``s`` is a *query*. Its *source* ``j`` is the first-half word the query
points back to: ``j = π(s)`` in ``shuffled``, ``j = s`` in every other condition. Then

* the **prefix-matching key** is position ``j + 1`` (the word after the source's first-half
  occurrence: ``w_{j+1}``);
* the **exact-copy token** is ``w_{j+1}`` and the **fuzzy-copy token** is ``w*_{j+1}``;
* the slot is *valid* when ``j < n`` (``wₙ`` has no successor), so ``synonym``/``exact``/
  ``unrelated`` have the ``n − 1`` valid slots ``s < n`` and ``shuffled`` the ``n − 1`` slots with
  ``π(s) < n``.

In ``unrelated`` the query ``uₛ`` matches nothing, so its key ``s + 1`` and its tokens are those of
``synonym`` — the baseline of attention and logits at the same place without any match. In
``shuffled`` the key follows the query's synonym but sits at no fixed offset from the query, so it
separates matching by content from attending at the induction offset ``n − 1``.

Every measure is reduced to one number per sequence (mean over its valid slots), so a bootstrap
over sequences gives intervals, and, because the conditions share first halves, a *paired*
bootstrap (same resampled sequences) gives intervals of differences between conditions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from .applicability import (TOO_FEW_UNRELATED_PAIRS, TOO_FEW_UNRELATED_WORDS, NotApplicable,
                            too_few_pairs_reason)
from .attribution import check_linear_logit_path, through_final_norm
from .metrics import bootstrap_ci
from .naming import head_label, parse_head_label

CONDITIONS = ("synonym", "exact", "unrelated", "shuffled")
CONTROLS = ("exact", "unrelated", "shuffled")


# --------------------------------------------------------------------------- sequences


@dataclass(frozen=True)
class FuzzySequences:
    """Token ids of every condition plus what is needed to find each slot's targets."""

    first: Int[Tensor, "batch n"]  # w₁ … wₙ
    synonyms: Int[Tensor, "batch n"]  # w₁* … wₙ*
    unrelated: Int[Tensor, "batch n"]  # u₁ … uₙ
    perm: Int[Tensor, "batch n"]  # shuffled: slot s holds w*_{perm[s]} (0-based)
    bos: int

    @property
    def n(self) -> int:
        return self.first.shape[1]

    def second_half(self, condition: str) -> Int[Tensor, "batch n"]:
        if condition == "synonym":
            return self.synonyms
        if condition == "exact":
            return self.first
        if condition == "unrelated":
            return self.unrelated
        if condition == "shuffled":
            return self.synonyms.gather(1, self.perm)
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")

    def tokens(self, condition: str) -> Int[Tensor, "batch pos"]:
        """``BOS + w₁…wₙ + second half`` — shape ``[batch, 1 + 2n]``."""
        bos = torch.full((self.first.shape[0], 1), self.bos, dtype=torch.long)
        return torch.cat([bos, self.first, self.second_half(condition)], dim=1)


def require_pairs(n_pairs: int, n_pairs_per_sequence: int) -> None:
    """:class:`NotApplicable` unless the vocabulary has the ``2 · n_pairs_per_sequence`` synonym
    pairs a sequence and its unrelated control draw from."""
    reason = too_few_pairs_reason(n_pairs, n_pairs_per_sequence)
    if reason:
        raise NotApplicable(reason)


def _synonym_graph(pairs: np.ndarray) -> dict[int, set[int]]:
    graph: dict[int, set[int]] = defaultdict(set)
    for a, b in pairs.tolist():
        graph[a].add(b)
        graph[b].add(a)
    return graph


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation with no fixed point (rejection sampling; ~e tries)."""
    if n < 2:
        raise ValueError("a derangement needs n >= 2")
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p


def _pick_pairs(order: np.ndarray, pairs: np.ndarray, graph, n: int) -> list[int]:
    """Greedily the first ``n`` pairs of ``order`` that share no word — and no synonym — with
    pairs already taken, so every word of a sequence has exactly one partner in it."""
    taken, blocked = [], set()
    for idx in order:
        a, b = pairs[idx]
        if a in blocked or b in blocked:
            continue
        taken.append(int(idx))
        blocked |= {a, b} | graph[a] | graph[b]
        if len(taken) == n:
            return taken
    raise NotApplicable(TOO_FEW_UNRELATED_PAIRS.format(needed=n, available=len(taken)))


def _pick_unrelated(pool: np.ndarray, blocked: set[int], graph, n: int, rng) -> list[int]:
    """``n`` words of other pairs, none in ``blocked`` nor synonyms of one another."""
    out, blocked = [], set(blocked)
    for t in rng.permutation(pool).tolist():
        if t in blocked:
            continue
        out.append(t)
        blocked |= {t} | graph[t]
        if len(out) == n:
            return out
    raise NotApplicable(TOO_FEW_UNRELATED_WORDS.format(needed=n, available=len(out)))


def make_sequences(
    pairs: Int[np.ndarray, "n_pairs 2"],
    n_sequences: int,
    n_pairs_per_sequence: int,
    seed: int,
    bos: int = 0,
) -> FuzzySequences:
    """Seeded sequences of ``n_pairs_per_sequence`` distinct pairs (token ids), each pair shown in a
    random direction (``a`` then ``a*`` or the reverse), with unrelated words and a derangement."""
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise ValueError(f"pairs must have shape [n_pairs, 2], got {pairs.shape}")
    if np.any(pairs == bos) or np.any(pairs[:, 0] == pairs[:, 1]):
        raise ValueError("pairs must not contain BOS or pair a token with itself")
    n = n_pairs_per_sequence
    rng = np.random.default_rng(seed)
    graph = _synonym_graph(pairs)
    pool = np.unique(pairs)
    first, syn, unrel, perm = [], [], [], []
    for _ in range(n_sequences):
        chosen = pairs[_pick_pairs(rng.permutation(len(pairs)), pairs, graph, n)]
        flip = rng.random(n) < 0.5
        chosen = np.where(flip[:, None], chosen[:, ::-1], chosen)
        blocked = set(chosen.ravel().tolist())
        blocked |= set().union(*(graph[t] for t in blocked))
        first.append(chosen[:, 0])
        syn.append(chosen[:, 1])
        unrel.append(_pick_unrelated(pool, blocked, graph, n, rng))
        perm.append(_derangement(n, rng))
    as_t = lambda rows: torch.tensor(np.array(rows), dtype=torch.long)  # noqa: E731
    return FuzzySequences(as_t(first), as_t(syn), as_t(unrel), as_t(perm), bos)


@dataclass(frozen=True)
class SlotTargets:
    """Per second-half slot (see the module docstring), all ``[batch, n]``."""

    query_pos: Int[Tensor, "batch n"]
    key_pos: Int[Tensor, "batch n"]  # clamped to a real position where not valid
    exact_token: Int[Tensor, "batch n"]
    fuzzy_token: Int[Tensor, "batch n"]
    valid: Bool[Tensor, "batch n"]


def slot_targets(seqs: FuzzySequences, condition: str) -> SlotTargets:
    """Query position, prefix-matching key, exact- and fuzzy-copy tokens of each slot."""
    batch, n = seqs.first.shape
    slot = torch.arange(n).expand(batch, n)
    source = seqs.perm if condition == "shuffled" else slot  # 0-based j - 1
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")
    valid = source < n - 1
    nxt = (source + 1).clamp(max=n - 1)  # 0-based index of w_{j+1}
    return SlotTargets(
        query_pos=1 + n + slot,
        key_pos=1 + nxt,
        exact_token=seqs.first.gather(1, nxt),
        fuzzy_token=seqs.synonyms.gather(1, nxt),
        valid=valid,
    )


# --------------------------------------------------------------------------- measures


def _masked_mean(x: Float[Tensor, "batch n *rest"], valid: Bool[Tensor, "batch n"]) -> Tensor:
    w = valid.to(x.dtype).reshape(*valid.shape, *([1] * (x.ndim - 2)))
    return (x * w).sum(1) / w.sum(1)


def head_dla(
    model: HookedTransformer,
    z: Float[Tensor, "batch pos head d_head"],
    layer: int,
    head: int,
    query_pos: Int[Tensor, "batch n"],
    token: Int[Tensor, "batch n"],
    scale: Float[Tensor, "batch pos 1"] | None = None,
) -> Float[Tensor, "batch n"]:
    """Direct logit attribution of head ``layer.head`` at ``query_pos`` to ``token``:
    ``z · W_O[layer, head]`` read along the token's effective unembedding direction through the
    final normalisation (``scale``: the model's cached ``ln_final.hook_scale``; needed exactly when
    the model has one), as :func:`attribution.through_final_norm`. Computed (and returned) on the
    model's device, wherever the inputs are."""
    if (scale is None) != (model.cfg.normalization_type is None):
        raise ValueError("head_dla needs the final normalisation's scale exactly when the model has one "
                         f"(normalization_type={model.cfg.normalization_type!r})")  # fmt: skip
    dev = model.W_O.device
    rows = torch.arange(z.shape[0], device=dev)[:, None]
    z_q = z.to(dev)[rows, query_pos.to(dev), head]  # [batch n d_head]
    out = z_q @ model.W_O[layer, head]  # [batch n d_model]
    w_u = model.W_U.T[token.to(dev)]  # [batch n d_model]
    scale_q = None if scale is None else scale.to(dev)[rows, query_pos.to(dev)]  # [batch n 1]
    direction, _ = through_final_norm(model, w_u, scale_q)
    return (out * direction).sum(-1)


@torch.no_grad()
def condition_measures(
    model: HookedTransformer,
    seqs: FuzzySequences,
    condition: str,
    heads: Sequence[str] = (),
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Every per-sequence measure of one condition.

    Returns ``prefix_attention [batch, layer, head]`` (attention from each valid slot to its
    prefix-matching key), ``prefix_attention_positional [batch, layer, head]`` (attention from
    slot ``s < n`` to key ``s + 1`` whatever the condition: equal to ``prefix_attention`` except in
    ``shuffled``, where it is the no-match baseline at the synonym condition's key), ``loss_second_half [batch]`` (mean loss predicting second-half tokens
    2…n), ``logprob_exact``/``logprob_fuzzy``/``logit_exact``/``logit_fuzzy [batch]`` (at the valid
    slots, to the exact- and fuzzy-copy tokens) and ``dla_exact``/``dla_fuzzy [batch, len(heads)]``.
    """
    check_linear_logit_path(model)
    tokens, tg = seqs.tokens(condition), slot_targets(seqs, condition)
    n, parsed = seqs.n, [parse_head_label(h) for h in heads]
    out: dict[str, list] = defaultdict(list)
    for start in range(0, tokens.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        toks = tokens[sl].to(model.cfg.device)
        q, k, valid = tg.query_pos[sl], tg.key_pos[sl], tg.valid[sl]
        ex, fz = tg.exact_token[sl], tg.fuzzy_token[sl]
        logits, cache = model.run_with_cache(
            toks, names_filter=lambda name: name.endswith(("hook_pattern", "hook_z")) or name == "ln_final.hook_scale"
        )
        scale = cache["ln_final.hook_scale"] if model.cfg.normalization_type is not None else None
        logits, b = logits.float().cpu(), torch.arange(toks.shape[0])[:, None]
        pattern = torch.stack([cache["pattern", L].cpu() for L in range(model.cfg.n_layers)], 1)
        att = pattern[b, :, :, q, k]  # [batch n layer head]
        out["prefix_attention"].append(_masked_mean(att, valid))
        # the key the *synonym* condition targets (s + 1): a no-match baseline in ``shuffled``
        k_pos = 2 + torch.arange(n).clamp(max=n - 2).expand_as(q)
        pos_att = pattern[b, :, :, q, k_pos]
        out["prefix_attention_positional"].append(_masked_mean(pos_att, (torch.arange(n) < n - 1).expand_as(q)))
        logprobs = logits.log_softmax(-1)
        pred = logprobs[:, n + 1 : 2 * n].gather(-1, toks.cpu()[:, n + 2 :, None])[..., 0]
        out["loss_second_half"].append(-pred.mean(-1))
        for name, tok in (("exact", ex), ("fuzzy", fz)):
            out[f"logprob_{name}"].append(_masked_mean(logprobs[b, q, tok], valid))
            out[f"logit_{name}"].append(_masked_mean(logits[b, q, tok], valid))
            dla = [head_dla(model, cache["z", L], L, H, q, tok, scale).cpu() for L, H in parsed]
            stacked = torch.stack(dla, -1) if dla else torch.zeros(*q.shape, 0)
            out[f"dla_{name}"].append(_masked_mean(stacked, valid))
    return {name: torch.cat(parts).numpy() for name, parts in out.items()}


def all_measures(
    model: HookedTransformer, seqs: FuzzySequences, heads: Sequence[str] = (), batch_size: int = 64
) -> dict[str, dict[str, np.ndarray]]:
    """``condition → measure → per-sequence array`` for the four conditions."""
    return {c: condition_measures(model, seqs, c, heads, batch_size) for c in CONDITIONS}


@torch.no_grad()
def mean_head_pattern(
    model: HookedTransformer, seqs: FuzzySequences, condition: str, head: str, batch_size: int = 64
) -> Float[Tensor, "q k"]:
    """The attention pattern of ``head`` averaged over sequences (the "stripes" figure)."""
    layer, h = parse_head_label(head)
    tokens, total = seqs.tokens(condition), None
    for chunk in tokens.split(batch_size):
        _, cache = model.run_with_cache(
            chunk.to(model.cfg.device), names_filter=f"blocks.{layer}.attn.hook_pattern"
        )
        s = cache["pattern", layer][:, h].sum(0).cpu()
        total = s if total is None else total + s
    return total / tokens.shape[0]


# --------------------------------------------------------------------------- statistics


def paired_bootstrap_ci(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of ``mean(a − b)`` resampling *sequences* (the same indices for both):
    right when ``a[i]`` and ``b[i]`` come from the same sequence, which removes the between-sequence
    variance that the two share."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and of one length, got {a.shape} and {b.shape}")
    return bootstrap_ci(a - b, n_boot=n_boot, level=level, seed=seed)


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float
    hi: float

    @property
    def above_zero(self) -> bool:
        return self.lo > 0

    @property
    def below_zero(self) -> bool:
        return self.hi < 0


def estimate(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> Estimate:
    lo, hi = bootstrap_ci(x, n_boot=n_boot, seed=seed)
    return Estimate(float(np.mean(x)), lo, hi)


def contrast(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> Estimate:
    lo, hi = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed)
    return Estimate(float(np.mean(np.asarray(a) - np.asarray(b))), lo, hi)


def select(measures: dict[str, dict[str, np.ndarray]], name: str, index=()) -> dict[str, np.ndarray]:
    """``condition → per-sequence array`` of one measure (``index`` picks a head: ``(layer, head)``
    for ``prefix_attention``, ``(i,)`` for the i-th DLA head)."""
    return {c: m[name][(slice(None), *index)] for c, m in measures.items()}


def summarize(
    per_condition: dict[str, np.ndarray], n_boot: int = 2000, seed: int = 0, reference: str = "synonym"
) -> tuple[dict[str, Estimate], dict[str, Estimate]]:
    """Each condition's mean with its interval, and ``reference − control`` (paired) per control."""
    levels = {c: estimate(x, n_boot, seed) for c, x in per_condition.items()}
    diffs = {
        c: contrast(per_condition[reference], x, n_boot, seed)
        for c, x in per_condition.items()
        if c != reference
    }
    return levels, diffs


def head_table(
    measures: dict[str, dict[str, np.ndarray]], layers: Sequence[int], n_boot: int = 2000, seed: int = 0
) -> list[list]:
    """Rows ``[head, synonym, lo, hi, shuffled, unrelated, exact, synonym − shuffled, lo, hi,
    synonym − unrelated, lo, hi]`` of prefix-matching attention, for every head of ``layers``."""
    rows = []
    n_heads = measures["synonym"]["prefix_attention"].shape[-1]
    for layer in layers:
        for h in range(n_heads):
            lv, df = summarize(select(measures, "prefix_attention", (layer, h)), n_boot, seed)
            rows.append([
                head_label(layer, h), lv["synonym"].mean, lv["synonym"].lo, lv["synonym"].hi,
                lv["shuffled"].mean, lv["unrelated"].mean, lv["exact"].mean,
                df["shuffled"].mean, df["shuffled"].lo, df["shuffled"].hi,
                df["unrelated"].mean, df["unrelated"].lo, df["unrelated"].hi,
            ])  # fmt: skip
    return rows


def verdict(diff: Estimate, what: str, control: str, unit: str = "") -> str:
    """One sentence about a paired difference, decided by its interval (never typed in advance)."""
    if diff.above_zero:
        word = "exceeds"
    elif diff.below_zero:
        word = "falls below"
    else:
        word = "is indistinguishable from"
    return (
        f"{what} {word} the {control} control: difference {diff.mean:+.3g}{unit} "
        f"(95% CI {diff.lo:+.3g} to {diff.hi:+.3g})."
    )


# --------------------------------------------------------------------------- figures


def plot_attention_stripes(patterns: dict[str, Tensor], head: str, n: int):
    """One panel per condition: the head's mean query × key pattern; the dashed line marks the
    induction offset (key = query − n + 1) where prefix matching in order would appear."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .plots import SEQUENTIAL

    fig, axes = plt.subplots(1, len(patterns), figsize=(3.2 * len(patterns), 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    vmax = max(float(p.max()) for p in patterns.values())
    for ax, (cond, pat) in zip(axes, patterns.items()):
        sns.heatmap(pat.numpy(), ax=ax, cmap=SEQUENTIAL, vmin=0, vmax=vmax, square=True, cbar=False,
                    xticklabels=False, yticklabels=False)  # fmt: skip
        q = np.arange(n + 1, 2 * n)  # queries w*_1 … w*_(n-1); key q - n + 1 holds w_(i+1)
        ax.plot(q - n + 1 + 0.5, q + 0.5, ls="--", lw=0.8, color="tab:blue")
        ax.axhline(n + 0.5, color="grey", lw=0.6)
        ax.set_title(cond)
        ax.set_xlabel("key position")
    fig.colorbar(axes[0].collections[0], ax=list(axes), shrink=0.8, label="attention")
    axes[0].set_ylabel("query position")
    fig.suptitle(f"head {head}: mean attention pattern", y=1.02)
    return fig


def plot_forest(rows: Sequence[tuple[str, Estimate]], title: str, xlabel: str):
    """Effect sizes with 95% intervals, one row each (a forest plot); zero marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 0.42 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    for yi, (_, e) in zip(y, rows):
        color = "tab:green" if e.above_zero else "tab:red" if e.below_zero else "tab:grey"
        ax.errorbar(e.mean, yi, xerr=[[e.mean - e.lo], [e.hi - e.mean]], fmt="o", color=color, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [label for label, _ in rows])
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- metrics.json


def record_measure(
    metrics,
    base: str,
    per_condition: dict[str, np.ndarray],
    description: str,
    *,
    unit: str | None = None,
    synonym_suffix: str = "",
    diff_base: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[dict[str, Estimate], dict[str, Estimate]]:
    """Record one measure under every condition and its paired differences from the controls.

    Names: ``<base><synonym_suffix>`` (synonym condition), ``<base>_<control>``, and
    ``<diff_base>_minus_<control>`` (synonym − control; ``diff_base`` defaults to the synonym name).
    """
    levels, diffs = summarize(per_condition, n_boot, seed)
    syn_name = base + synonym_suffix
    diff_base = diff_base or syn_name
    for cond, e in levels.items():
        name = syn_name if cond == "synonym" else f"{base}_{cond}"
        metrics.add(name, e.mean, f"{description} ({cond} condition)", ci=(e.lo, e.hi), unit=unit)
    for cond, e in diffs.items():
        metrics.add(f"{diff_base}_minus_{cond}", e.mean,
                    f"{description}: synonym minus {cond} condition (paired bootstrap over sequences)",
                    ci=(e.lo, e.hi), unit=unit)  # fmt: skip
    return levels, diffs


def conclusion(
    head: str,
    prefix: dict[str, Estimate],
    prefix_positional: Estimate,
    exact_copy: dict[str, Estimate],
    fuzzy_copy: dict[str, Estimate],
) -> str:
    """The analysis's conclusion, decided by the intervals of synonym − control differences.

    Fuzzy prefix matching counts as shown when the synonym condition's attention exceeds both
    no-match baselines at the same key: the unrelated second half (``prefix["unrelated"]``) and the
    shuffled sequences' attention at that key (``prefix_positional``: same words, alignment broken).
    ``prefix["shuffled"]`` (the shuffled query's own target) tells whether in-order context adds
    to the match. Fuzzy copying counts as shown when the log-prob of ``w*ᵢ₊₁`` exceeds the unrelated
    baseline.
    """
    matched = prefix["unrelated"].above_zero and prefix_positional.above_zero
    copies = fuzzy_copy["unrelated"].above_zero
    return " ".join([
        verdict(prefix["unrelated"], f"Head {head}'s attention from a synonym to the word after its "
                "first-half partner (fuzzy prefix matching)", "unrelated-second-half"),
        verdict(prefix_positional, "It", "same-key-in-shuffled-sequences"),
        verdict(prefix["shuffled"], "Compared with shuffled-order synonyms attending to their own "
                "partner's successor, it", "shuffled"),
        verdict(fuzzy_copy["unrelated"], "The log-probability given to the next word's synonym "
                "(fuzzy copy)", "unrelated", " nats"),
        verdict(exact_copy["unrelated"], "That given to the next word itself (exact copy)",
                "unrelated", " nats"),
        f"By these intervals the model {'shows' if matched else 'does not show'} fuzzy prefix "
        f"matching and {'shows' if copies else 'does not show'} fuzzy copying.",
    ])  # fmt: skip
