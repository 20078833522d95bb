"""The speed levers of vision.train: the J(x) target cache, bf16 autocast, the in-RAM data path."""

import numpy as np
import pytest
import torch

import vision
import vision.train as vt
from tests.vision.conftest import blocks_frames, squares_batch
from vision.train import resolve_precision, train_vision

FAST = dict(batch_size=8, log_every=2, checkpoint_every=3, progress=False, probe=False)
SMALL = {"latents": 4, "dae_layer": 2, "dae_bottleneck": 8}


def _recording(model):
    """Wrap ``model.train_step`` to keep each step's (x, target)."""
    seen = []
    real = model.train_step

    def step(x, optimizers, target=None):
        seen.append((x.detach().clone(), None if target is None else target.detach().clone()))
        return real(x, optimizers, target=target)

    model.train_step = step
    return seen


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_cached_target_is_j_of_x_of_the_trained_dae(tmp_path, layer):
    """The loop passes each minibatch's J(x), computed with the trained DAE's final weights at dae_layer."""
    frames = blocks_frames(40, 32)[0]
    torch.manual_seed(0)
    model = vision.make("beta_vae_dae", image_size=32, latents=4, dae_layer=layer, dae_bottleneck=8)
    seen = _recording(model)
    train_vision(model, frames, tmp_path, steps=3, dae_steps=3, precision="fp32", **FAST)
    dae = vision.load(tmp_path / "dae" / "model")
    assert len(seen) == 3
    for x, target in seen:
        assert target is not None
        torch.testing.assert_close(target, dae.encoder.conv_features(x, layer), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(target, model.feature_map(x), rtol=1e-4, atol=1e-5)


def test_cached_target_gives_the_loss_of_the_on_the_fly_target(tmp_path):
    frames = blocks_frames(16, 16)[0]
    dae = vision.make("dae", image_size=16, latents=8)
    model = vision.make("beta_vae_dae", image_size=16, **SMALL)
    model.set_dae(dae)
    cache = model.target_cache(frames)
    assert cache.shape == (16, model.feature_map(vision.to_tensor(frames[:1])).shape[1])
    x = vision.to_tensor(frames[3:9])
    torch.manual_seed(5)
    a = model.loss(x)
    torch.manual_seed(5)
    b = model.loss(x, target=cache[3:9])
    torch.testing.assert_close(a["loss"], b["loss"], rtol=1e-5, atol=1e-4)


def test_target_cache_falls_back_above_its_size_limit(monkeypatch):
    import vision.models.beta_vae_dae as bvd

    model = vision.make("beta_vae_dae", image_size=16, **SMALL)
    model.set_dae(vision.make("dae", image_size=16, latents=8))
    monkeypatch.setattr(bvd, "TARGET_CACHE_MAX_BYTES", 100)
    assert model.target_cache(blocks_frames(16, 16)[0]) is None
    assert vision.make("beta_vae", image_size=16).target_cache(blocks_frames(4, 16)[0]) is None


def test_bf16_and_fp32_losses_agree_on_a_fixed_batch():
    """Tolerance: 2 % of the loss (bf16 keeps 8 mantissa bits, ~0.4 % per product; the sums are fp32)."""
    x = squares_batch(16, 16)
    torch.manual_seed(0)
    model = vision.make("beta_vae_dae", image_size=16, **SMALL)
    model.set_dae(vision.make("dae", image_size=16, latents=8))
    dae = vision.make("dae", image_size=16, latents=8)
    for m in (model, dae):
        torch.manual_seed(1)
        fp32 = m.loss(x)
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = m.loss(x)
        for key in fp32:
            assert bf16[key].dtype == torch.float32, key  # reductions in fp32
            torch.testing.assert_close(bf16[key], fp32[key], rtol=0.02, atol=1e-3, msg=f"{m.name} {key}")
            assert not torch.equal(bf16[key], fp32[key]), f"{m.name} {key}: autocast changed nothing"


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_precision_switch_sets_the_dtype_of_the_convolutions(tmp_path, precision, dtype):
    model = vision.make("beta_vae", image_size=16, latents=4)
    dtypes, inside = set(), {"step": False}
    real = model.train_step

    def step(*args, **kwargs):  # only the update: logging and the final save run in fp32
        inside["step"] = True
        try:
            return real(*args, **kwargs)
        finally:
            inside["step"] = False

    def hook(module, args, out):
        if inside["step"]:
            dtypes.add(out.dtype)

    model.train_step = step
    model.encoder.convs[0].register_forward_hook(hook)
    train_vision(model, blocks_frames(16, 16)[0], tmp_path, steps=2, precision=precision, **FAST)
    assert dtypes == {dtype}
    train = vision.checkpoint.read_meta(tmp_path / "model")["extra"]["train"]
    assert train.get("precision", "fp32") == precision


def test_resolve_precision(monkeypatch):
    ae, vae = vision.make("ae", image_size=16), vision.make("vae", image_size=16)
    assert resolve_precision("fp32", "cpu", ae) is None
    assert resolve_precision("bf16", "cpu", vae) is torch.bfloat16  # asked for: honoured (with a warning)
    monkeypatch.setattr(vt, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", "cpu", ae) is torch.bfloat16
    assert resolve_precision("auto", "cpu", vae) is None  # not declared autocast_safe
    monkeypatch.setattr(vt, "cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", "cpu", ae) is None
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        train_vision("ae", blocks_frames(4, 16)[0], "unused", steps=1, precision="fp16")


def test_bf16_run_does_not_resume_an_fp32_checkpoint(tmp_path):
    frames = blocks_frames(16, 16)[0]
    train_vision("ae", frames, tmp_path, steps=2, precision="fp32", config={"latents": 4}, **FAST)
    with pytest.raises(ValueError, match="different run.*precision"):
        train_vision("ae", frames, tmp_path, steps=4, precision="bf16", config={"latents": 4}, **FAST)


def test_in_ram_and_memory_mapped_batches_are_to_tensor_of_the_frames(tmp_path):
    frames = blocks_frames(20, 16)[0]
    np.save(tmp_path / "f.npy", frames)
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    idx = np.array([0, 3, 3, 19])
    expected = vision.to_tensor(frames[idx])
    ram = vt._frame_source(mapped)
    assert isinstance(ram, torch.Tensor) and ram.dtype == torch.uint8
    for source in (ram, mapped):
        x = vt._batch(source, idx, torch.device("cpu"))
        assert torch.equal(x, expected)
        assert x.is_contiguous(memory_format=torch.channels_last)


def test_large_frames_stay_memory_mapped(tmp_path, monkeypatch):
    frames = blocks_frames(8, 16)[0]
    monkeypatch.setattr(vt, "IN_MEMORY_MAX_BYTES", frames.nbytes - 1)
    assert vt._frame_source(frames) is frames
