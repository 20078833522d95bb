import json
import logging

import numpy as np
import pytest
import torch

import vision
import vision.train as vt
from tests.vision.conftest import blocks_frames
from vision.train import train_vision


class Frames:
    """Stands in for envs.frames.FrameDataset: frames, factors, factor names."""

    def __init__(self, n=48, size=16):
        self.frames, self.factors = blocks_frames(n, size)
        self.factor_names = ["object_x", "colour", "tint"]


FAST = dict(batch_size=8, log_every=2, checkpoint_every=3, progress=False)


def weights(path):
    return vision.load(path).state_dict()


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    frames = Frames().frames
    full = train_vision("beta_vae", frames, tmp_path / "full", steps=7, config={"latents": 4}, probe=False, **FAST)

    calls = {"n": 0}
    real_batch = vt._batch

    def killed_after_five(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(vt, "_batch", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        train_vision("beta_vae", frames, tmp_path / "cut", steps=7, config={"latents": 4}, probe=False, **FAST)
    assert json.loads((tmp_path / "cut/ckpt/latest.json").read_text())["step"] == 3
    assert not (tmp_path / "cut/model").exists()
    monkeypatch.setattr(vt, "_batch", real_batch)
    resumed = train_vision("beta_vae", frames, tmp_path / "cut", steps=7, config={"latents": 4}, probe=False, **FAST)

    a, b = weights(full), weights(resumed)
    assert int(b["global_step"]) == 7
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_same_seed_gives_the_same_weights_and_another_seed_does_not(tmp_path):
    frames = Frames().frames
    a = weights(train_vision("ae", frames, tmp_path / "a", steps=3, config={"latents": 4}, probe=False, **FAST))
    b = weights(train_vision("ae", frames, tmp_path / "b", steps=3, config={"latents": 4}, probe=False, **FAST))
    c = weights(train_vision("ae", frames, tmp_path / "c", steps=3, seed=1, config={"latents": 4}, probe=False, **FAST))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_finished_run_is_reused_and_a_different_run_in_the_same_dir_is_refused(tmp_path):
    frames = Frames().frames
    out = train_vision("vae", frames, tmp_path, steps=3, config={"latents": 4}, probe=False, **FAST)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert train_vision("vae", frames, tmp_path, steps=3, config={"latents": 4}, probe=False, **FAST) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="different run.*config"):
        train_vision("vae", frames, tmp_path, steps=6, config={"latents": 5}, probe=False, **FAST)


def test_beta_vae_dae_pretrains_its_dae_and_writes_probe(tmp_path, caplog):
    data = Frames()
    with caplog.at_level(logging.INFO, logger="vision.train"):
        out = train_vision("beta_vae_dae", data, tmp_path, steps=3, dae_steps=2,
                           config={"latents": 4, "dae_layer": 2, "dae_bottleneck": 8}, **FAST)
    dae = vision.load(tmp_path / "dae" / "model")
    assert dae.name == "dae" and int(dae.global_step) == 2 and dae.feature_dim == 8
    model = vision.load(out)
    x = vision.to_tensor(data.frames[:4])
    torch.testing.assert_close(model.feature_map(x), dae.encoder.conv_features(x, 2))
    meta = vision.checkpoint.read_meta(out)
    assert meta["extra"]["dae"] == str(tmp_path / "dae" / "model")
    probe = json.loads((tmp_path / "probe.json").read_text())
    assert set(probe["factors"]) == {"object_x", "colour", "tint"}
    assert (tmp_path / "probe.md").read_text().startswith("| factor")
    assert "| factor" in meta["extra"]["probe"]["table"]


def test_probe_warns_when_task_factor_is_not_recoverable(tmp_path, caplog):
    data = Frames()
    rng = np.random.default_rng(0)
    data.factors = np.concatenate([data.factors, rng.integers(0, 3, (48, 1)).astype(np.float32)], axis=1)
    data.factor_names = data.factor_names + ["good_side"]  # pure noise: no image can tell it
    with caplog.at_level(logging.WARNING, logger="vision.train"):
        train_vision("ae", data, tmp_path, steps=2, config={"latents": 4}, task_factors=["good_side"], **FAST)
    assert any("good_side" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_tensorboard_gets_loss_and_kl_per_latent(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_vision("beta_vae", Frames().frames, tmp_path, steps=4, config={"latents": 3}, probe=False, **FAST)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/loss", "loss/recon", "loss/kl", "kl_per_latent/00", "kl_per_latent/02"} <= tags
    assert [e.step for e in acc.Scalars("loss/loss")] == [2, 4]


@pytest.mark.parametrize(
    "data,match",
    [
        (np.zeros((4, 16, 16, 3), np.float32), "uint8"),
        (np.zeros((4, 16, 12, 3), np.uint8), "square"),
        ([[1, 2]], "array or an object with .frames"),
    ],
)
def test_bad_data_is_a_clear_error(tmp_path, data, match):
    with pytest.raises((ValueError, TypeError), match=match):
        train_vision("ae", data, tmp_path, steps=1, progress=False)


def test_image_size_mismatch_and_unknown_model_are_clear_errors(tmp_path):
    frames = Frames().frames
    with pytest.raises(ValueError, match="image_size"):
        train_vision("ae", frames, tmp_path, steps=1, config={"image_size": 32}, progress=False)
    with pytest.raises(ValueError, match="unknown vision model 'betavae'; valid: .*beta_vae"):
        train_vision("betavae", frames, tmp_path, steps=1, progress=False)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        train_vision("ae", frames, tmp_path, steps=0, progress=False)


# -- resume robustness: a damaged newest checkpoint falls back to the previous good one ----------
def _cut_run(tmp_path, monkeypatch, out, steps=9, kill_after=7, model="beta_vae"):
    """Start a run of ``steps`` that is killed after ``kill_after`` batches (checkpoints at 3 and 6)."""
    real_batch = vt._batch
    calls = {"n": 0}

    def killed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > kill_after:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(vt, "_batch", killed)
    with pytest.raises(KeyboardInterrupt):
        train_vision(model, Frames().frames, out, steps=steps, config={"latents": 4}, probe=False, **FAST)
    monkeypatch.setattr(vt, "_batch", real_batch)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated optim.safetensors": ("optim.safetensors", lambda d: _truncate(d / "optim.safetensors")),
    "state.json not JSON": ("state.json", lambda d: (d / "state.json").write_text('{"step": 6, "sig')),
    "state.json without numpy_rng": ("state.json", lambda d: (d / "state.json").write_text(
        json.dumps({k: v for k, v in json.loads((d / "state.json").read_text()).items() if k != "numpy_rng"}))),
    "model weights missing": ("model.safetensors", lambda d: (d / "model" / "model.safetensors").unlink()),
    "model weights truncated": ("model.safetensors", lambda d: _truncate(d / "model" / "model.safetensors")),
    "model config.json missing": ("config.json", lambda d: (d / "model" / "config.json").unlink()),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, monkeypatch, caplog, damage):
    frames = Frames().frames
    full = train_vision("beta_vae", frames, tmp_path / "full", steps=9, config={"latents": 4}, probe=False, **FAST)
    _cut_run(tmp_path, monkeypatch, tmp_path / "cut")
    ckpt = tmp_path / "cut" / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest.json", "step_0000003", "step_0000006"]
    filename, hurt = DAMAGE[damage]
    hurt(ckpt / "step_0000006")
    with caplog.at_level(logging.INFO, logger="vision.train"):
        resumed = train_vision("beta_vae", frames, tmp_path / "cut", steps=9, config={"latents": 4}, probe=False,
                               **FAST)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("step_0000006" in w and filename in w for w in warnings), warnings
    assert any("resuming beta_vae from step 3" in r.getMessage() for r in caplog.records)
    a, b = weights(full), weights(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_damaged_latest_json_and_all_checkpoints_damaged(tmp_path, monkeypatch, caplog):
    frames = Frames().frames
    full = train_vision("beta_vae", frames, tmp_path / "full", steps=9, config={"latents": 4}, probe=False, **FAST)
    _cut_run(tmp_path, monkeypatch, tmp_path / "cut")
    ckpt = tmp_path / "cut" / "ckpt"
    (ckpt / "latest.json").write_text("{not json")
    with caplog.at_level(logging.INFO, logger="vision.train"):
        train_vision("beta_vae", frames, tmp_path / "cut", steps=9, config={"latents": 4}, probe=False, **FAST)
    assert any("latest.json is damaged" in r.getMessage() for r in caplog.records)
    assert any("from step 6" in r.getMessage() for r in caplog.records)

    _cut_run(tmp_path, monkeypatch, tmp_path / "cut2")
    for d in (tmp_path / "cut2" / "ckpt").glob("step_*"):
        _truncate(d / "optim.safetensors")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vision.train"):
        fresh = train_vision("beta_vae", frames, tmp_path / "cut2", steps=9, config={"latents": 4}, probe=False,
                             **FAST)
    assert any("no readable checkpoint" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    a, b = weights(full), weights(fresh)  # a fresh start of the same seed is the uninterrupted run
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-5, atol=1e-6) for k in a)


def test_checkpoint_write_keeps_the_previous_one_until_the_new_one_is_durable(tmp_path, monkeypatch):
    """A crash while writing step 6 leaves step 3 and latest.json untouched; on success every file and
    directory is fsynced before latest.json is replaced, and two checkpoints are kept."""
    frames = Frames().frames
    events = []
    real_fsync, real_atomic = vt._fsync, vt.atomic_write_bytes
    monkeypatch.setattr(vt, "_fsync", lambda p: (events.append(("fsync", p.name)), real_fsync(p)))
    monkeypatch.setattr(vt, "atomic_write_bytes",
                        lambda p, data: (events.append(("write", p.name)), real_atomic(p, data)))
    train_vision("beta_vae", frames, tmp_path / "ok", steps=6, config={"latents": 4}, probe=False, **FAST)
    ckpt = tmp_path / "ok" / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest.json", "step_0000003", "step_0000006"]
    last = len(events) - 1 - events[::-1].index(("write", "latest.json"))
    before = [name for kind, name in events[:last] if kind == "fsync"]
    assert {"model.safetensors", "config.json", "optim.safetensors", ".step_0000006.tmp", "ckpt"} <= set(before)
    assert events[last - 1] == ("fsync", "ckpt")  # the rename of step_0000006 is durable first

    real_save_file = vt.save_file

    def crash_on_second(tensors, path):
        if "step_0000006" in path:
            raise OSError("disk full")
        return real_save_file(tensors, path)

    monkeypatch.setattr(vt, "save_file", crash_on_second)
    with pytest.raises(OSError, match="disk full"):
        train_vision("beta_vae", frames, tmp_path / "crash", steps=6, config={"latents": 4}, probe=False, **FAST)
    ckpt = tmp_path / "crash" / "ckpt"
    assert json.loads((ckpt / "latest.json").read_text())["dir"] == "step_0000003"
    assert vision.load(ckpt / "step_0000003" / "model").global_step == 3
    assert not (ckpt / "step_0000006").exists()
