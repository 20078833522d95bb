"""DisBM: conditionals match the energy, CD lowers reconstruction error, checkpoints round-trip."""

from __future__ import annotations

import numpy as np
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


def _group_distances(model, group, rng, n=64):
    a, p, q = model.correspondence_pairs(group, n, rng)
    with torch.no_grad():
        m, h = model.posterior(model.visible(to_tensor(model.dataset.images(np.concatenate([a, p, q])))))
    code = (m if group == "m" else h).view(3, n, -1)
    return float((code[0] - code[1]).norm(dim=1).mean()), float((code[0] - code[2]).norm(dim=1).mean())


@pytest.mark.parametrize("weight", [1.0, 0.0])
def test_manifold_regulariser_makes_each_group_encode_its_own_factors(frames16, weight):
    # Reed et al. 2014 §3.2: h is pulled together on pairs sharing pose ("left" here) and pushed apart
    # on pairs that differ; m likewise on identity ("right"). Without it (weight 0) nothing ties h to
    # "left": pairs that share it are barely closer than pairs that do not.
    from tests.vision.test_dc_ign import Panels

    torch.manual_seed(0)
    model = vision.make("disbm", image_size=16, bm_size=8, n_m=4, n_h=4, n_factors=16, lr=3e-3,
                        h_factors=["left"], m_factors=["right"], manifold_weight=weight)
    model.attach_factor_dataset(Panels())
    opts = model.configure_optimizers()
    x = to_tensor(Panels().images(Panels().sample_factors(32, np.random.default_rng(0))))
    for _ in range(150):
        logs = model.train_step(x, opts)
    rng = np.random.default_rng(5)
    ratios = {g: np.divide(*_group_distances(model, g, rng)) for g in ("h", "m")}
    if weight:
        assert {"manifold_m", "manifold_h"} <= set(logs)
        assert ratios["h"] < 0.5 and ratios["m"] < 0.5, ratios
    else:
        assert ratios["h"] > 0.5 or ratios["m"] > 0.5, ratios


def test_correspondence_pairs_share_exactly_the_groups_factors():
    from tests.vision.test_dc_ign import Panels

    model = tiny(h_factors=["left"], m_factors=["right", "stripe"])
    model.attach_factor_dataset(Panels())
    a, p, q = model.correspondence_pairs("m", 200, np.random.default_rng(0))
    assert (a[:, 1:] == p[:, 1:]).all() and (a[:, 0] != p[:, 0]).any()
    assert ((a[:, 1:] != q[:, 1:]).any(1)).all()
    with pytest.raises(ValueError, match="valid: left, right, stripe"):
        tiny(h_factors=["pose"]).attach_factor_dataset(Panels())


def test_pipeline_attaches_seekavoid_pairs(tmp_path):
    from darla.config import from_dict
    from darla.pipeline import build_vision_model

    cfg = from_dict({"env": {"obs_size": 16}, "vision": {"model": "disbm", "steps": 2,
                                                         "model_config": {"bm_size": 8}}})
    model = build_vision_model(cfg, None, tmp_path)
    assert model.config.h_factors == ("lateral", "depth", "heading", "light")
    assert model.config.m_factors == ("floor", "wall", "object") and model.dataset is not None
