"""The lean trainer computes exactly what the HookedTransformer computes; the batch recipe and
the checkpoint schedule do what the config says."""

import json

import numpy as np
import pytest
import torch

from induction_heads import training as T
from induction_heads.architecture import (
    AttnOnlyTransformer,
    attn_only_config,
    sinusoidal_positions,
    to_hooked_transformer,
)
from induction_heads.weights import checkpoint_steps, load_checkpoint, load_model


def small_cfg(n_layers=2):
    return attn_only_config(n_layers=n_layers, d_model=24, n_heads=3, d_head=8, n_ctx=20, d_vocab=50)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_lean_model_matches_hooked_transformer(n_layers):
    cfg = small_cfg(n_layers)
    lean = AttnOnlyTransformer(cfg)
    with torch.no_grad():  # random non-zero values everywhere (biases included)
        for p in lean.parameters():
            p.normal_(0, 0.3)
    hooked = to_hooked_transformer(cfg, lean.tl_state_dict())
    tokens = torch.randint(0, 50, (3, 20))
    torch.testing.assert_close(lean(tokens), hooked(tokens), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(lean(tokens, drop_last=True), hooked(tokens)[:, :-1], rtol=1e-4, atol=1e-4)


def test_sinusoidal_positions_have_requested_rms_and_are_distinct():
    table = sinusoidal_positions(32, 16, scale=0.5)
    assert table.pow(2).mean().sqrt().item() == pytest.approx(0.5, rel=1e-5)
    assert torch.cdist(table, table).add(torch.eye(32) * 10).min() > 0.05


@pytest.mark.parametrize("tied", [False, True])
def test_initialise_ties_the_unembedding_only_when_asked(tied):
    cfg = attn_only_config(n_layers=1, d_model=64, n_heads=2, d_head=32, n_ctx=20, d_vocab=400)
    torch.manual_seed(0)
    model = AttnOnlyTransformer(cfg)
    w_u_before = model.p("unembed.W_U").detach().clone()
    T.initialise(model, T.TrainingConfig(steps=1, tied_unembed_init=tied, pos_init_rms=1.0))
    w_e, w_u = model.p("embed.W_E").detach(), model.p("unembed.W_U").detach()
    assert w_u.std().item() == pytest.approx(w_u_before.std().item(), rel=1e-5)  # scale kept
    # The direct path W_E W_U: with a tied start every token predicts itself (top-1 of 400 with
    # 64-dim random embeddings); with TransformerLens's independent init, it is at chance.
    top1 = ((w_e @ w_u).argmax(-1) == torch.arange(400)).float().mean().item()
    if tied:
        torch.testing.assert_close(w_u, w_e.T * (w_u_before.std() / w_e.std()))
        assert top1 == 1.0
    else:
        torch.testing.assert_close(w_u, w_u_before)
        assert top1 < 0.05
    assert model.p("pos_embed.W_pos").pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=1e-5)


def test_checkpoint_schedule():
    spec = [{"start": 0, "stop": 100, "every": 50}, {"start": 100, "stop": 130, "every": 10}]
    assert T.checkpoint_schedule(spec, 125) == [0, 50, 100, 110, 120, 125]
    with pytest.raises(ValueError):
        T.checkpoint_schedule([{"start": 0, "stop": 10, "every": 0}], 10)


def make_sampler(frac_text=0.25, frac_rand=0.5, seed=0, batch=400, fill=False):
    stream = np.arange(1000, 3000, dtype=np.int64)  # distinct "text" tokens: easy to recognise
    cfg = T.TrainingConfig(steps=1, batch_size=batch, seed=seed, frac_repeated_text=frac_text,
                           frac_random_repeat=frac_rand, random_segment_min=4, random_segment_max=9,
                           random_repeat_fill=fill)
    return T.BatchSampler(stream, 32, cfg, ordinary_ids=np.arange(1, 900), bos=0)


def test_batch_recipe_makes_the_three_kinds_of_rows_in_proportion():
    rows = make_sampler().sample().numpy()
    assert rows.shape == (400, 32) and (rows[:, 0] == 0).all()
    random_rows = [r for r in rows if r[1] < 900]  # random ids are < 900, text ids >= 1000
    for r in random_rows:  # random segment of length 4-9 repeated, then text
        n = next(k for k in range(4, 10) if (r[1 + k : 1 + 2 * k] == r[1 : 1 + k]).all() and r[1 + 2 * k] >= 1000)
        assert (r[1 + 2 * n :] >= 1000).all()
    text_rows = [r for r in rows if r[1] >= 1000]
    repeated = [r for r in text_rows if (r[1:16] == r[16:31]).all()]
    assert len(random_rows) / 400 == pytest.approx(0.5, abs=0.08)
    assert len(repeated) / 400 == pytest.approx(0.25, abs=0.08)


def test_random_rows_can_repeat_their_segment_until_the_row_is_full():
    rows = make_sampler(fill=True).sample().numpy()
    random_rows = [r for r in rows if r[1] < 900]
    assert len(random_rows) / 400 == pytest.approx(0.5, abs=0.08)
    for r in random_rows:  # r r r …: the whole body is one segment of length 4-9, tiled
        periods = [k for k in range(4, 10) if (r[1 + k :] == r[1 : len(r) - k]).all()]
        assert periods, f"row is not a repeated 4-9 token segment: {r}"
        assert (r[1:] == np.resize(r[1 : 1 + periods[0]], len(r) - 1)).all()
        assert (r[1:] < 900).all()  # no text tokens after the segment


def test_late_mix_switches_fractions_and_repeats_a_stretch_at_a_random_place():
    """From ``late_from_step`` on: the late fractions, and repeated-text rows that repeat a
    4-9-token stretch right after itself, followed by the text that followed it, at places that
    vary (so no position is where repeats begin)."""
    stream = np.arange(1000, 3000, dtype=np.int64)
    cfg = T.TrainingConfig(steps=2, batch_size=400, frac_repeated_text=0.25, frac_random_repeat=0.5,
                           random_segment_min=4, random_segment_max=9, late_from_step=1,
                           late_frac_repeated_text=0.6, late_frac_random_repeat=0.1)  # fmt: skip
    sampler = T.BatchSampler(stream, 32, cfg, ordinary_ids=np.arange(1, 900), bos=0)
    early = sampler.sample().numpy()
    assert np.mean([r[1] < 900 for r in early]) == pytest.approx(0.5, abs=0.08)
    late = sampler.sample().numpy()
    random_rows = [r for r in late if r[1] < 900]
    text_rows = [r for r in late if r[1] >= 1000]
    assert len(random_rows) / 400 == pytest.approx(0.1, abs=0.05)
    starts, repeated = set(), 0
    for r in text_rows:
        body = r[1:]
        jumps = np.flatnonzero(np.diff(body) != 1)  # text is consecutive ids except at the repeat
        if len(jumps) == 0:
            continue  # plain text
        assert len(jumps) == 1, r
        stop = jumps[0] + 1  # the repeat starts here: it copies the seg_len tokens before it
        seg_len = int(body[stop - 1] - body[stop] + 1)
        assert 4 <= seg_len <= 9
        assert (body[stop : stop + seg_len] == body[stop - seg_len : stop]).all()
        repeated += 1
        starts.add(stop)
    assert repeated / 400 == pytest.approx(0.6, abs=0.08)
    assert len(starts) > 10  # the repeat begins at many different positions


def test_late_repeated_text_can_tile_one_stretch_over_the_row():
    """``repeated_text_fill``: a late repeated-text row is one consecutive text stretch of 4-9
    tokens, tiled until the row is full (the diagnostic's "fill" variants)."""
    stream = np.arange(1000, 3000, dtype=np.int64)
    cfg = T.TrainingConfig(steps=1, batch_size=400, random_segment_min=4, random_segment_max=9, late_from_step=0,
                           late_frac_repeated_text=1.0, repeated_text_fill=True)  # fmt: skip
    rows = T.BatchSampler(stream, 32, cfg, ordinary_ids=np.arange(1, 900), bos=0).sample().numpy()
    periods = set()
    for r in rows:
        body = r[1:]
        period = int(np.flatnonzero(np.diff(body) != 1)[0]) + 1  # the first jump back ends the stretch
        assert 4 <= period <= 9 and (np.diff(body[:period]) == 1).all()
        assert (body == np.resize(body[:period], len(body))).all()
        periods.add(period)
    assert periods == set(range(4, 10))


def test_batches_are_reproducible_from_the_seed():
    assert torch.equal(make_sampler(seed=3).sample(), make_sampler(seed=3).sample())
    assert not torch.equal(make_sampler(seed=3).sample(), make_sampler(seed=4).sample())


def train_tiny(log_path, device="cpu"):
    """30 steps of a small 2-layer model on a periodic "text" (learnable): the model, the saved
    checkpoints (step → state dict) and the log records."""
    stream = np.tile(np.arange(1, 40, dtype=np.int64), 50)
    cfg = T.TrainingConfig(steps=30, batch_size=8, lr=1e-2, warmup_steps=2, seed=1, checkpoints=(10,),
                           frac_repeated_text=0.2, frac_random_repeat=0.2, random_segment_min=2,
                           random_segment_max=6)
    torch.manual_seed(0)
    model = AttnOnlyTransformer(small_cfg())
    saved = {}
    sampler = T.BatchSampler(stream, 20, cfg, np.arange(1, 50), bos=0)
    records = T.train(model, sampler, cfg, lambda s, sd: saved.__setitem__(s, sd), log_path,
                      device=device, progress=False)  # fmt: skip
    return model, saved, records


def test_training_lowers_loss_saves_checkpoints_and_is_deterministic(tmp_path):
    _, saved, records = train_tiny(tmp_path / "a.jsonl")
    assert sorted(saved) == [0, 10, 30]
    assert records[-1]["loss"] < records[0]["loss"] - 0.5
    assert json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])["step"] == 1
    _, saved2, _ = train_tiny(tmp_path / "b.jsonl")
    for key in saved[30]:
        assert torch.equal(saved[30][key], saved2[30][key]), key


def test_train_model_to_dir_writes_a_loadable_model(tmp_path):
    from induction_heads.tokenizer import train_tokenizer

    text = ["the cat sat on the mat and the dog sat on the log " * 20] * 10
    tok = train_tokenizer(text, 300)
    tok.save(str(tmp_path / "tok.json"))
    stream = np.tile(np.array(tok.encode(text[0]).ids), 5)
    np.save(tmp_path / "stream.npy", stream)
    arch = {"n_layers": 2, "d_model": 16, "n_heads": 2, "d_head": 8, "n_ctx": 32}
    cfg = T.training_config_from_dict(
        {"steps": 6, "batch_size": 4, "warmup_steps": 1, "random_segment_min": 2,
         "random_segment_max": 8, "checkpoints": [{"start": 0, "stop": 6, "every": 3}]},
        seed=0,
    )  # fmt: skip
    summary = T.train_model_to_dir("m-s0", arch, cfg, tmp_path / "tok.json", tmp_path / "stream.npy",
                                   tmp_path / "m", progress=False)  # fmt: skip
    assert summary["steps"] == 6 and summary["tokens"] == 6 * 4 * 32
    model, info = load_model(tmp_path / "m")
    assert info.source == "train" and info.seed == 0 and len(info.sha256) == 64
    assert model.cfg.d_vocab == tok.get_vocab_size()
    assert checkpoint_steps(tmp_path / "m") == [0, 3, 6]
    final = load_checkpoint(tmp_path / "m", 6)
    tokens = torch.randint(0, tok.get_vocab_size(), (2, 10))
    torch.testing.assert_close(final(tokens), model(tokens))


def test_freed_memory_is_kept_where_the_allocator_is_glibc():
    import platform

    from induction_heads.allocator import JOB_ENVIRONMENT, keep_freed_memory

    assert keep_freed_memory() == (platform.libc_ver()[0] == "glibc")
    assert set(JOB_ENVIRONMENT) == {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
