import json
import logging

import numpy as np
import pytest
import torch

import vision
import vision.train as vt
from vision.train import train_vision
from tests.vision.conftest import blocks_frames


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
    real_to_tensor = vt.to_tensor

    def killed_after_five(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real_to_tensor(*args, **kwargs)

    monkeypatch.setattr(vt, "to_tensor", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        train_vision("beta_vae", frames, tmp_path / "cut", steps=7, config={"latents": 4}, probe=False, **FAST)
    assert json.loads((tmp_path / "cut/ckpt/latest.json").read_text())["step"] == 3
    assert not (tmp_path / "cut/model").exists()
    monkeypatch.setattr(vt, "to_tensor", real_to_tensor)
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
