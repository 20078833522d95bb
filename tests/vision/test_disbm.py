"""DisBM: conditionals match the energy, CD lowers reconstruction error, checkpoints round-trip."""

from __future__ import annotations

import pytest
import torch

import vision
from vision import to_tensor
from vision.base import ConfigError


def tiny(**kw):
    torch.manual_seed(0)
    return vision.make("disbm", image_size=16, bm_size=8, n_m=4, n_h=3, n_factors=6, init_scale=0.3, **kw)


def test_conditionals_are_the_energy_differences_of_flipping_one_unit():
    model = tiny()
    torch.manual_seed(1)
    v = torch.rand(2, model.n_visible).bernoulli()
    m = torch.rand(2, 4).bernoulli()
    h = torch.rand(2, 3).bernoulli()
    with torch.no_grad():
        for j in range(4):
            m0, m1 = m.clone(), m.clone()
            m0[:, j], m1[:, j] = 0, 1
            expected = torch.sigmoid(model.energy(v, m0, h) - model.energy(v, m1, h))
            torch.testing.assert_close(model.p_m(v, h)[:, j], expected)
        for k in range(3):
            h0, h1 = h.clone(), h.clone()
            h0[:, k], h1[:, k] = 0, 1
            torch.testing.assert_close(model.p_h(v, m)[:, k], torch.sigmoid(model.energy(v, m, h0) - model.energy(v, m, h1)))
        i = 5
        v0, v1 = v.clone(), v.clone()
        v0[:, i], v1[:, i] = 0, 1
        torch.testing.assert_close(model.p_v(m, h)[:, i], torch.sigmoid(model.energy(v0, m, h) - model.energy(v1, m, h)))


def test_contrastive_divergence_lowers_reconstruction_error(frames16):
    torch.manual_seed(0)
    model = vision.make("disbm", image_size=16, bm_size=8, n_m=8, n_h=8, n_factors=16)
    opts = model.configure_optimizers()
    for g in opts[0].param_groups:
        g["lr"] = 3e-3
    x = to_tensor(frames16[:32])
    torch.manual_seed(0)
    with torch.no_grad():
        before = float(model.reconstruction_error(x))
    for _ in range(150):
        model.train_step(x, opts)
    with torch.no_grad():
        after = float(model.reconstruction_error(x))
    assert after < 0.5 * before, (before, after)


def test_features_are_posterior_probabilities_and_decode_gives_full_size_images(frames16):
    model = tiny()
    with torch.no_grad():
        f = model.features(to_tensor(frames16[:5]))
        img = model.decode(f)
    assert f.shape == (5, 7) and (f >= 0).all() and (f <= 1).all()
    assert img.shape == (5, 3, 16, 16)


def test_save_load_gives_identical_features(frames16, tmp_path):
    model = tiny().eval()
    vision.save(model, tmp_path / "bm")
    loaded = vision.load(tmp_path / "bm")
    x = to_tensor(frames16[:4])
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), loaded.features(x))


def test_wrong_image_shape_and_bad_bm_size_are_named():
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        tiny().features(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="bm_size"):
        vision.make("disbm", image_size=16, bm_size=12)
