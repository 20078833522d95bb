import json

import pytest
import torch

import vision
from vision.checkpoint import CONFIG, WEIGHTS, CheckpointError

MINE = {
    "ae": dict(latents=4),
    "dae": dict(latents=6, mask_min=2, mask_max=5),
    "vae": dict(latents=4),
    "beta_vae": dict(latents=4, beta=2.0, recon="gaussian"),
    "beta_vae_dae": dict(latents=4, dae_layer=2, dae_bottleneck=8),
}


def build(name):
    torch.manual_seed(0)
    model = vision.make(name, image_size=16, **MINE[name])
    if name == "beta_vae_dae":
        model.set_dae(vision.make("dae", image_size=16, latents=8))
    return model


@pytest.mark.parametrize("name", sorted(MINE))
def test_save_load_gives_identical_features_and_config(tmp_path, batch16, name):
    model = build(name).eval()
    vision.save(model, tmp_path / name, extra={"note": "x"})
    loaded = vision.load(tmp_path / name)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert not loaded.training
    assert torch.equal(loaded.features(batch16), model.features(batch16))
    assert vision.checkpoint.read_meta(tmp_path / name)["extra"] == {"note": "x"}


def test_loaded_beta_vae_dae_carries_its_trained_dae(tmp_path, batch16):
    model = build("beta_vae_dae")
    vision.save(model, tmp_path / "m")
    loaded = vision.load(tmp_path / "m")
    assert bool(loaded.dae_ready)
    torch.testing.assert_close(loaded.feature_map(batch16), model.feature_map(batch16))
    assert not any(p.requires_grad for p in loaded.dae.parameters())


def test_truncated_weights_are_a_checkpoint_error(tmp_path):
    vision.save(build("vae"), tmp_path / "m")
    w = tmp_path / "m" / WEIGHTS
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated, corrupt or replaced"):
        vision.load(tmp_path / "m")


def test_corrupt_json_is_a_checkpoint_error(tmp_path):
    vision.save(build("ae"), tmp_path / "m")
    (tmp_path / "m" / CONFIG).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        vision.load(tmp_path / "m")


def test_weights_of_another_model_are_a_checkpoint_error(tmp_path):
    vision.save(build("ae"), tmp_path / "ae")
    vision.save(build("vae"), tmp_path / "vae")
    # Pair the VAE's JSON (with the AE weights' digest) with the AE weights: keys do not fit.
    meta = json.loads((tmp_path / "vae" / CONFIG).read_text())
    meta["sha256"] = json.loads((tmp_path / "ae" / CONFIG).read_text())["sha256"]
    (tmp_path / "vae" / CONFIG).write_text(json.dumps(meta))
    (tmp_path / "vae" / WEIGHTS).write_bytes((tmp_path / "ae" / WEIGHTS).read_bytes())
    with pytest.raises(CheckpointError, match="does not fit model 'vae'"):
        vision.load(tmp_path / "vae")


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no vision checkpoint"):
        vision.load(tmp_path / "nothing")


def test_unknown_model_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown vision model 'bvae'; valid: .*beta_vae_dae"):
        vision.make("bvae")


def test_all_my_models_are_registered():
    assert set(MINE) <= set(vision.list_models())


def test_written_files_get_normal_permissions_not_mkstemps_0600(tmp_path):
    import os

    from vision.checkpoint import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "report.md", b"hello")
        vision.save(vision.make("vae", image_size=32, channels=3, latents=2), tmp_path / "model")
    finally:
        os.umask(old)
    assert (tmp_path / "report.md").read_bytes() == b"hello"
    for f in (tmp_path / "report.md", *(tmp_path / "model").iterdir()):
        assert f.stat().st_mode & 0o777 == 0o644, f


def test_to_tensor_of_a_read_only_array_converts_without_warning():
    import warnings

    import numpy as np

    frames = np.full((2, 4, 4, 3), 255, np.uint8)
    frames.flags.writeable = False  # as a memory-mapped frame dataset gives them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = vision.to_tensor(frames)
    assert t.shape == (2, 3, 4, 4) and float(t.max()) == 1.0
