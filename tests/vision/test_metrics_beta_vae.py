"""β-VAE metric (Higgins et al. 2017): z_diff features, scores of aligned / rotated / random codes."""

import numpy as np
import pytest

from vision.metrics import beta_vae_from_features, beta_vae_score, pair_difference_features
from vision.metrics.testing import IdentityFactorData, identity_representation

SMALL = {"batch_size": 16, "num_train": 300, "num_eval": 150}
DATA = IdentityFactorData((4, 6, 8, 5))


def test_pair_difference_is_mean_absolute_difference_over_pairs():
    a = np.array([[[0.0, 1.0], [2.0, 1.0]]])
    b = np.array([[[1.0, 1.0], [0.0, 1.0]]])
    np.testing.assert_allclose(pair_difference_features(a, b), [[1.5, 0.0]])
    with pytest.raises(ValueError, match="points, L, D"):
        pair_difference_features(a[0], b[0])


def test_identity_scores_one_and_rotation_scores_lower():
    good = beta_vae_score(DATA, identity_representation, np.random.default_rng(0), **SMALL)
    rotation = np.linalg.qr(np.random.default_rng(3).normal(size=(4, 4)))[0]
    rotated = beta_vae_score(DATA, lambda x: (identity_representation(x) / np.array(DATA.factor_sizes)) @ rotation,
                             np.random.default_rng(0), **SMALL)
    assert good["eval_accuracy"] == 1.0
    assert rotated["eval_accuracy"] < 0.95


def test_random_codes_score_near_chance():
    out = beta_vae_score(DATA, lambda x: np.random.default_rng(len(x) + int(x.sum())).normal(size=(len(x), 4)),
                         np.random.default_rng(0), **SMALL)
    assert out["eval_accuracy"] < 0.45  # chance 0.25


def test_same_seed_same_score():
    a = beta_vae_score(DATA, identity_representation, np.random.default_rng(5), batch_size=4, num_train=40, num_eval=20)
    b = beta_vae_score(DATA, identity_representation, np.random.default_rng(5), batch_size=4, num_train=40, num_eval=20)
    assert a == b


def test_single_valued_factor_is_never_the_label():
    data = IdentityFactorData((1, 5, 6))
    out = beta_vae_score(data, identity_representation, np.random.default_rng(0), **SMALL)
    assert out["eval_accuracy"] == 1.0  # only factors 1 and 2 are ever fixed; fixing the constant one would be unlearnable


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        beta_vae_score(DATA, lambda x: np.full((len(x), 2), np.nan), np.random.default_rng(0), **SMALL)
    with pytest.raises(ValueError, match="num_train"):
        beta_vae_score(DATA, identity_representation, np.random.default_rng(0), num_train=0)
    with pytest.raises(ValueError, match="single factor"):
        beta_vae_from_features(np.ones((4, 2)), np.zeros(4), np.ones((2, 2)), np.zeros(2))
