"""Elhage et al. (2021) composition scores, with a random baseline
(docs/methods/composition_scores.md).

For an earlier head A and a later head B::

    score(W_A, W_B) = ‖W_A W_B‖_F / (‖W_A‖_F ‖W_B‖_F)

with ``W_A = W_OV^A = W_V^A W_O^A`` (what A writes) and, for head B (row-vector convention,
``x_q W_QK x_kᵀ`` with ``W_QK = W_Q W_Kᵀ``):

* **Q-composition** ``W_B = W_QK^B``   — A's output read by B's query side;
* **K-composition** ``W_B = W_QK^Bᵀ``  — A's output read by B's key side;
* **V-composition** ``W_B = W_OV^B``   — A's output read by B's value side.

Every matrix is a ``d_model × d_model`` :class:`~transformer_lens.FactoredMatrix` of inner
dimension ``d_head``; norms come from its small SVD. Scores are stored as a
``[layer_a, head_a, layer_b, head_b]`` array, NaN where ``layer_a >= layer_b``.

Random baseline: the same factored shapes, each factor ``W_Q, W_K, W_V, W_O`` filled with i.i.d.
normal entries whose std is that of the model's own factor (TransformerLens initialises these
weights from a normal too). The score is invariant to rescaling any factor, so the stds do not
change the baseline — only the shapes (``d_model``, ``d_head``) and the Gaussian form do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import FactoredMatrix, HookedTransformer

from .naming import head_label

KINDS = ("Q", "K", "V")


def comp_score(w_a: FactoredMatrix, w_b: FactoredMatrix) -> Float[Tensor, "..."]:
    """``‖W_A W_B‖_F / (‖W_A‖_F ‖W_B‖_F)``, broadcasting over leading dimensions."""
    return (w_a @ w_b).norm() / (w_a.norm() * w_b.norm())


def reader_matrix(
    kind: str,
    w_q: Float[Tensor, "... d_model d_head"],
    w_k: Float[Tensor, "... d_model d_head"],
    w_v: Float[Tensor, "... d_model d_head"],
    w_o: Float[Tensor, "... d_head d_model"],
) -> FactoredMatrix:
    """``W_B`` of the later head for composition type ``kind`` (``Q``, ``K`` or ``V``)."""
    if kind == "Q":
        return FactoredMatrix(w_q, w_k.transpose(-1, -2))  # W_QK
    if kind == "K":
        return FactoredMatrix(w_k, w_q.transpose(-1, -2))  # W_QKᵀ
    if kind == "V":
        return FactoredMatrix(w_v, w_o)  # W_OV
    raise ValueError(f"composition kind must be one of {KINDS}, got {kind!r}")


@torch.no_grad()
def composition_scores(model: HookedTransformer) -> dict[str, Float[Tensor, "la ha lb hb"]]:
    """Q-, K- and V-composition scores of every (earlier head, later head) pair."""
    cfg = model.cfg
    L, H = cfg.n_layers, cfg.n_heads
    out = {kind: torch.full((L, H, L, H), float("nan")) for kind in KINDS}
    for la in range(L):
        w_a = FactoredMatrix(model.W_V[la], model.W_O[la])[:, None]  # [H 1 d_model d_model]
        for lb in range(la + 1, L):
            weights = (model.W_Q[lb], model.W_K[lb], model.W_V[lb], model.W_O[lb])
            for kind in KINDS:
                w_b = reader_matrix(kind, *weights)[None]  # [1 H d_model d_model]
                out[kind][la, :, lb, :] = comp_score(w_a, w_b).cpu()
    return out


def require_layers(model: HookedTransformer, n: int = 2) -> None:
    """Composition needs an earlier and a later layer: a clear error otherwise."""
    if model.cfg.n_layers < n:
        raise ValueError(
            f"composition analyses need a model with at least {n} layers; this one has "
            f"{model.cfg.n_layers} (heads of a 1-layer model cannot compose)"
        )


@dataclass
class Baseline:
    """Composition scores of random matrices: ``samples[kind]`` holds ``n_samples`` scores."""

    samples: dict[str, Float[Tensor, "n"]]

    def mean(self, kind: str) -> float:
        return float(self.samples[kind].mean())

    def std(self, kind: str) -> float:
        return float(self.samples[kind].std())

    def z(self, kind: str, score: Tensor | float) -> Tensor | float:
        """``(score − mean) / std`` for composition type ``kind``."""
        return (score - self.mean(kind)) / self.std(kind)


def weight_stds(model: HookedTransformer) -> dict[str, float]:
    """Std of every entry of the model's ``W_Q, W_K, W_V, W_O`` (all layers and heads)."""
    return {name: float(getattr(model, name).std()) for name in ("W_Q", "W_K", "W_V", "W_O")}


@torch.no_grad()
def random_baseline(
    d_model: int,
    d_head: int,
    stds: dict[str, float],
    n_samples: int = 300,
    seed: int = 0,
    batch_size: int = 50,
) -> Baseline:
    """``n_samples`` composition scores per kind of random heads A, B with the model's factored
    shapes; every factor i.i.d. normal with std ``stds[name]``. Seeded: same seed, same samples."""
    if n_samples < 2:
        raise ValueError(f"the baseline needs at least 2 samples for a spread, got {n_samples}")
    gen = torch.Generator().manual_seed(seed)

    def draw(name: str, n: int, rows: int, cols: int) -> Tensor:
        return torch.randn(n, rows, cols, generator=gen) * stds[name]

    samples: dict[str, list[Tensor]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        done = 0
        while done < n_samples:
            n = min(batch_size, n_samples - done)
            w_a = FactoredMatrix(draw("W_V", n, d_model, d_head), draw("W_O", n, d_head, d_model))
            b = [draw(name, n, d_model, d_head) for name in ("W_Q", "W_K", "W_V")]
            w_b = reader_matrix(kind, *b, draw("W_O", n, d_head, d_model))
            samples[kind].append(comp_score(w_a, w_b))
            done += n
    return Baseline({kind: torch.cat(v) for kind, v in samples.items()})


def model_baseline(
    model: HookedTransformer, n_samples: int = 300, seed: int = 0
) -> Baseline:
    """:func:`random_baseline` with the model's shapes and weight stds."""
    return random_baseline(
        model.cfg.d_model, model.cfg.d_head, weight_stds(model), n_samples=n_samples, seed=seed
    )


def z_scores(
    scores: dict[str, Float[Tensor, "la ha lb hb"]], baseline: Baseline
) -> dict[str, Float[Tensor, "la ha lb hb"]]:
    """Every pair's score as a z-score against the baseline of its composition type."""
    return {kind: baseline.z(kind, s) for kind, s in scores.items()}


def pair_matrix(
    scores: Float[Tensor, "la ha lb hb"],
) -> tuple[Float[Tensor, "earlier later"], list[str], list[str]]:
    """Flatten to (every head of layers 0…L−2) × (every head of layers 1…L−1), for a heatmap;
    NaN where the row head is not in an earlier layer than the column head."""
    L, H = scores.shape[:2]
    matrix = scores[: L - 1, :, 1:, :].reshape((L - 1) * H, (L - 1) * H)
    rows = [head_label(la, h) for la in range(L - 1) for h in range(H)]
    cols = [head_label(lb, h) for lb in range(1, L) for h in range(H)]
    return matrix, rows, cols
