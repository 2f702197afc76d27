"""Training the small attention-only models: the batch recipe, the loop, the checkpoints.

The recipe (from trials on a 2-core CPU with ``scripts/recipe_trial.py``): AdamW with a short
linear warm-up and then a constant learning rate, sinusoidal initialisation of ``W_pos``, ``W_U``
initialised as ``W_E^T`` (see :func:`initialise`), and batches that mix

* plain text (the language-modelling signal),
* text whose second half repeats its first (in-context copying on natural tokens),
* rows of a random-token segment repeated until the row is full (``r r r …``; or, with
  ``random_repeat_fill: false``, twice and then text): copying that only an induction circuit can
  do, which makes the circuit form early and sharply. Filling the row gives every row ~90 copyable
  tokens instead of ~35 for the same compute.

Run with ``scripts/train_model.py`` (a rule of ``workflow/rules/models.smk``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from .allocator import keep_freed_memory
from .architecture import AttnOnlyTransformer, sinusoidal_positions
from .config import ARCH_KEYS, checkpoint_schedule  # defined with the plan (no torch there)
from .testhooks import pause_point


@dataclass(frozen=True)
class TrainingConfig:
    steps: int
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    seed: int = 0
    frac_repeated_text: float = 0.25
    frac_random_repeat: float = 0.25
    random_segment_min: int = 8
    random_segment_max: int = 63
    random_repeat_fill: bool = True  # repeat the segment until the row is full (not just twice)
    late_from_step: int | None = None  # from this step on, the "late" mix below (None: one mix throughout)
    late_frac_repeated_text: float = 0.0  # ... with the repeated stretch at a random place
    late_frac_random_repeat: float = 0.0
    repeated_text_fill: bool = False  # late repeated text: the stretch repeated until the row is full
    sinusoidal_pos_init: bool = True
    pos_init_rms: float | None = None  # RMS of the sinusoidal W_pos; None = the model's init std
    tied_unembed_init: bool = False  # start W_U as W_E^T (trained untied): copying is learnable at once
    checkpoints: tuple[int, ...] = field(default_factory=tuple)
    threads: int = 1


class BatchSampler:
    """Seeded batches of ``[batch, n_ctx]`` tokens in the three-part recipe of the module docstring."""

    def __init__(
        self,
        stream: np.ndarray,
        n_ctx: int,
        cfg: TrainingConfig,
        ordinary_ids: np.ndarray,
        bos: int,
    ):
        if len(stream) < 4 * n_ctx:
            raise ValueError(f"training stream has {len(stream)} tokens; need at least {4 * n_ctx}")
        self.stream, self.n_ctx, self.cfg = stream, n_ctx, cfg
        self.ordinary_ids, self.bos = ordinary_ids, bos
        self.rng = np.random.default_rng(cfg.seed)
        self.n_sampled = 0  # batches drawn so far (= the training step of the next batch)
        max_seg = (n_ctx - 1) // 2
        if not 1 <= cfg.random_segment_min <= cfg.random_segment_max <= max_seg:
            raise ValueError(
                f"random_segment_min/max must satisfy 1 <= min <= max <= {max_seg} (n_ctx={n_ctx})"
            )

    def _text(self, length: int) -> np.ndarray:
        start = self.rng.integers(0, len(self.stream) - length)
        return self.stream[start : start + length]

    @property
    def late(self) -> bool:
        """Whether the next batch is drawn from the late mix."""
        return self.cfg.late_from_step is not None and self.n_sampled >= self.cfg.late_from_step

    def _repeated_text(self, body: int) -> np.ndarray:
        """Text in which a stretch repeats at once. Early: the row's first half twice, a fixed
        63-token distance (for ``n_ctx = 128``) that a positional head learns to copy across first.
        Late: a stretch of ``random_segment_min…max`` tokens at a random place, repeated and
        followed by the text that followed it (``… a b c d a b c d e f …``), so no distance or
        position is special."""
        if not self.late:
            half = self._text(body // 2)
            return np.concatenate([half, half, self._text(body - 2 * len(half))])
        seg_len = int(self.rng.integers(self.cfg.random_segment_min, self.cfg.random_segment_max + 1))
        if self.cfg.repeated_text_fill:
            return np.resize(self._text(seg_len), body)
        text = self._text(body - seg_len)
        start = int(self.rng.integers(0, len(text) - seg_len + 1))
        stop = start + seg_len
        return np.concatenate([text[:stop], text[start:stop], text[stop:]])

    def sample(self) -> Int[Tensor, "batch n_ctx"]:
        cfg, n = self.cfg, self.n_ctx
        kinds = self.rng.random(cfg.batch_size)
        random_repeat, repeated_text = (
            (cfg.late_frac_random_repeat, cfg.late_frac_repeated_text) if self.late
            else (cfg.frac_random_repeat, cfg.frac_repeated_text)
        )  # fmt: skip
        rows = np.empty((cfg.batch_size, n), dtype=np.int64)
        rows[:, 0] = self.bos
        body = n - 1
        for i, u in enumerate(kinds):
            if u < random_repeat:
                seg_len = int(self.rng.integers(cfg.random_segment_min, cfg.random_segment_max + 1))
                seg = self.rng.choice(self.ordinary_ids, size=seg_len)
                if cfg.random_repeat_fill:  # r r r …: every token after the first copy is copyable
                    rows[i, 1:] = np.resize(seg, body)
                else:
                    rows[i, 1:] = np.concatenate([seg, seg, self._text(body - 2 * seg_len)])
            elif u < random_repeat + repeated_text:
                rows[i, 1:] = self._repeated_text(body)
            else:
                rows[i, 1:] = self._text(body)
        self.n_sampled += 1
        return torch.from_numpy(rows)


def prepare_process(threads: int) -> None:
    """Set the job's torch threads and keep freed memory in the process (see
    :mod:`induction_heads.allocator`: page faults were a fifth of a step)."""
    torch.set_num_threads(threads)
    keep_freed_memory()


@torch.no_grad()
def initialise(model: AttnOnlyTransformer, cfg: TrainingConfig) -> None:
    """The recipe's two departures from TransformerLens's random initialisation.

    * ``sinusoidal_pos_init``: nearby positions start with similar codes, so a previous-token head
      forms early.
    * ``tied_unembed_init``: ``W_U`` starts as ``W_E^T`` (rescaled to ``W_U``'s init std), as in a
      tied-embedding model such as GPT-2, and is then trained untied. An OV circuit then copies as
      soon as ``W_V W_O`` is near a positive multiple of a projection, a direction shared by every
      token, instead of having to learn 3000-odd token-to-token maps one at a time. The copying
      half of the induction circuit is what holds the phase change back (seen in those trials).
    """
    if cfg.sinusoidal_pos_init:
        w_pos = model.p("pos_embed.W_pos")
        scale = cfg.pos_init_rms if cfg.pos_init_rms is not None else float(w_pos.std())
        w_pos.copy_(sinusoidal_positions(*w_pos.shape, scale=scale))
    if cfg.tied_unembed_init:
        w_e, w_u = model.p("embed.W_E"), model.p("unembed.W_U")  # [vocab d_model], [d_model vocab]
        w_u.copy_(w_e.T * (w_u.std() / w_e.std()))


def make_optimizer(
    model: AttnOnlyTransformer, cfg: TrainingConfig
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (weight decay on the weight matrices but ``W_pos``) with a linear warm-up to a
    constant learning rate. The fused kernel updates every parameter in one pass."""
    decay = [p for n, p in model.params.items() if "__W_" in n and "W_pos" not in n]
    no_decay = [p for n, p in model.params.items() if not ("__W_" in n and "W_pos" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=cfg.lr,
        betas=cfg.betas,
        fused=True,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps))
    )
    return opt, sched


def training_step(
    model: AttnOnlyTransformer,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    tokens: Int[Tensor, "batch n_ctx"],
    grad_clip: float,
) -> Tensor:
    """One optimisation step on one batch; returns the batch's loss (a tensor: reading it
    waits for the device)."""
    loss = model.next_token_loss(tokens)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=True)
    opt.step()
    sched.step()
    return loss


def train(
    model: AttnOnlyTransformer,
    sampler: BatchSampler,
    cfg: TrainingConfig,
    save_checkpoint: Callable[[int, dict[str, Tensor]], None],
    log_path: Path,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Train in place; call ``save_checkpoint(step, tl_state_dict)`` at every scheduled step.

    Writes one JSON line per logged step to ``log_path`` and returns the same records.
    """
    torch.manual_seed(cfg.seed)
    initialise(model, cfg)
    model.to(device).train()
    opt, sched = make_optimizer(model, cfg)
    checkpoints = set(cfg.checkpoints) | {0, cfg.steps}
    records: list[dict] = []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tokens_seen, t0 = 0, time.perf_counter()
    with open(log_path, "w") as log:
        bar = tqdm(range(cfg.steps + 1), desc="train", disable=not progress, mininterval=2.0)
        for step in bar:
            if step in checkpoints:
                save_checkpoint(step, model.tl_state_dict())
            if step == cfg.steps:
                break
            tokens = sampler.sample().to(device)
            loss = training_step(model, opt, sched, tokens, cfg.grad_clip)
            tokens_seen += tokens.numel()
            if step % 25 == 0 or step == cfg.steps - 1:
                elapsed = time.perf_counter() - t0
                rec = {
                    "step": step + 1,
                    "loss": loss.item(),
                    "lr": sched.get_last_lr()[0],
                    "tokens": tokens_seen,
                    "elapsed_s": round(elapsed, 3),
                    "tokens_per_s": round(tokens_seen / max(elapsed, 1e-9), 1),
                }
                records.append(rec)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{rec['loss']:.3f}")
    model.eval()
    return records


def config_as_json(cfg: TrainingConfig) -> dict:
    d = asdict(cfg)
    d["betas"] = list(cfg.betas)
    d["checkpoints"] = list(cfg.checkpoints)
    return d


def training_config_from_dict(d: dict, seed: int, threads: int = 1) -> TrainingConfig:
    """A :class:`TrainingConfig` from the workflow's (validated) ``training`` block."""
    steps = int(d["steps"])
    fields = {k: v for k, v in d.items() if k in TrainingConfig.__dataclass_fields__}
    fields.update(
        seed=seed,
        threads=threads,
        checkpoints=tuple(checkpoint_schedule(d.get("checkpoints", []), steps)),
    )
    if "betas" in fields:
        fields["betas"] = tuple(fields["betas"])
    return TrainingConfig(**fields)


def model_and_sampler(
    arch: dict, train_cfg: TrainingConfig, tokenizer_path: Path, stream_path: Path
) -> tuple[AttnOnlyTransformer, BatchSampler]:
    """A freshly initialised model of ``arch`` (the keys of :data:`ARCH_KEYS`) seeded by the
    training config, and the batch sampler over the tokenized training stream."""
    from .architecture import attn_only_config
    from .tokenizer import bos_id, load_tokenizer, ordinary_token_ids

    tok = load_tokenizer(tokenizer_path)
    cfg = attn_only_config(**{k: arch[k] for k in ARCH_KEYS}, d_vocab=tok.get_vocab_size(),
                           seed=train_cfg.seed)  # fmt: skip
    torch.manual_seed(train_cfg.seed)
    model = AttnOnlyTransformer(cfg)
    sampler = BatchSampler(np.load(stream_path), cfg.n_ctx, train_cfg, ordinary_token_ids(tok), bos_id(tok))
    return model, sampler


def train_model_to_dir(
    name: str,
    arch: dict,
    train_cfg: TrainingConfig,
    tokenizer_path: Path,
    stream_path: Path,
    out_dir: Path,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Train one model (one seed) and save checkpoints, the log and the final weights."""
    from .weights import ModelInfo, save_model

    prepare_process(train_cfg.threads)
    model, sampler = model_and_sampler(arch, train_cfg, tokenizer_path, stream_path)
    cfg = model.cfg
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    def save_checkpoint(step: int, state: dict[str, Tensor]) -> None:
        tmp = ckpt_dir / f".step_{step:06d}.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(ckpt_dir / f"step_{step:06d}.pt")
        pause_point(f"checkpoint_saved:{step}")  # a test may kill the run here

    t0 = time.perf_counter()
    records = train(model, sampler, train_cfg, save_checkpoint, out_dir / "train_log.jsonl",
                    device=device, progress=progress)  # fmt: skip
    wall = time.perf_counter() - t0
    summary = {
        "steps": train_cfg.steps,
        "wall_time_s": round(wall, 1),
        "tokens": records[-1]["tokens"] if records else 0,
        "tokens_per_s": round((records[-1]["tokens"] if records else 0) / max(wall, 1e-9), 1),
        "final_train_loss": records[-1]["loss"] if records else None,
        "device": device,
        "threads": train_cfg.threads,
        "training_config": config_as_json(train_cfg),
    }
    info = ModelInfo(name=name, source="train", sha256="", seed=train_cfg.seed,
                     tokenizer=str(tokenizer_path), extra=summary)  # fmt: skip
    save_model(out_dir, cfg, model.tl_state_dict(), info)
    return summary
