"""InfoGAN: the MI term makes the code recoverable; both players' losses are finite; checkpoints round-trip."""

from __future__ import annotations

import math

import pytest
import torch

import vision
from vision import to_tensor
from vision.base import ConfigError

TINY = dict(image_size=16, n_cat=1, cat_dim=4, n_cont=1, noise_dim=8)


def _train(lambda_cat: float, frames16, steps: int = 50, seed: int = 0):
    torch.manual_seed(seed)
    model = vision.make("infogan", lambda_cat=lambda_cat, lambda_cont=0.1 if lambda_cat else 0.0, **TINY)
    opts = model.configure_optimizers()
    x = to_tensor(frames16[:32])
    logs = []
    model.train()
    for _ in range(steps):
        logs.append(model.train_step(x, opts))
    return model, logs


@pytest.fixture(scope="module")
def trained(frames16):
    return _train(1.0, frames16)


def test_mi_term_makes_categorical_code_recoverable_beyond_chance_and_beyond_lambda_zero(trained, frames16):
    model, _ = trained
    baseline, _ = _train(0.0, frames16)
    torch.manual_seed(123)
    acc = model.code_accuracy(512)
    torch.manual_seed(123)
    acc0 = baseline.code_accuracy(512)
    chance = 1 / TINY["cat_dim"]
    assert acc > chance + 0.3, (acc, chance)
    assert acc > acc0 + 0.2, (acc, acc0)


def test_info_loss_falls_below_the_code_entropy(trained):
    _, logs = trained
    # −E[log Q(c|x)] starts near H(c) = log 4 and must drop below it once Q reads the code.
    assert logs[-1]["info_cat"] < math.log(TINY["cat_dim"]) - 0.3
    for row in logs:
        assert all(math.isfinite(v) for v in row.values()), row


def test_features_layout_is_probabilities_then_continuous_means(trained, frames16):
    model, _ = trained
    model.eval()
    with torch.no_grad():
        f = model.features(to_tensor(frames16[:8]))
    assert f.shape == (8, model.feature_dim) == (8, 5)
    torch.testing.assert_close(f[:, :4].sum(1), torch.ones(8))
    assert (f[:, :4] >= 0).all()


def test_decode_of_features_gives_images_of_the_right_shape_in_unit_range(trained, frames16):
    model, _ = trained
    model.eval()
    with torch.no_grad():
        img = model.decode(model.features(to_tensor(frames16[:3])))
    assert img.shape == (3, 3, 16, 16)
    assert img.min() >= 0 and img.max() <= 1
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        model.decode(torch.zeros(2, 7))


def test_decode_is_deterministic_so_traversals_are_reproducible(trained):
    model, _ = trained
    model.eval()
    code = torch.zeros(2, 5)
    code[:, 0] = 1.0
    with torch.no_grad():
        torch.testing.assert_close(model.decode(code), model.decode(code))


def test_save_load_gives_identical_features(trained, frames16, tmp_path):
    model, _ = trained
    model.eval()
    vision.save(model, tmp_path / "ig")
    loaded = vision.load(tmp_path / "ig")
    x = to_tensor(frames16[:8])
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), loaded.features(x))
        torch.testing.assert_close(model.decode(model.features(x)), loaded.decode(loaded.features(x)))


def test_generator_update_leaves_discriminator_weights_to_the_d_step(frames16):
    torch.manual_seed(0)
    model = vision.make("infogan", **TINY)
    d_opt, g_opt = model.configure_optimizers()
    x = to_tensor(frames16[:8])
    # A G-only step: D's optimiser is a no-op, so D's parameters must not move.
    frozen_d = torch.optim.SGD(model.d_parameters(), lr=0.0)
    before = [p.detach().clone() for p in model.d_parameters()]
    model.train_step(x, [frozen_d, g_opt])
    for a, p in zip(before, model.d_parameters()):
        torch.testing.assert_close(a, p.detach())


@pytest.mark.parametrize("bad, match", [({"n_cat": 0, "n_cont": 0}, "at least one code"),
                                        ({"cat_dim": 1}, "cat_dim"), ({"lambda_cat": -1.0}, "lambda_cat")])
def test_bad_config_names_the_field(bad, match):
    with pytest.raises(ConfigError, match=match):
        vision.make("infogan", image_size=16, **bad)
