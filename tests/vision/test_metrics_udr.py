"""UDR (Duan et al. 2020): one-to-one latent correspondence across models, without factors."""

import numpy as np
import pytest

from vision.metrics import udr, udr_from_codes
from vision.metrics.testing import IdentityFactorData, identity_representation
from vision.metrics.udr_score import relative_strength

RNG = np.random.default_rng(0)
SOURCES = RNG.normal(size=(500, 4))  # stand-in for the true factors
MIX = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))[0]


def test_relative_strength_by_hand():
    assert relative_strength(np.eye(3)) == pytest.approx(1.0)
    assert relative_strength(np.ones((2, 2))) == pytest.approx(0.5)  # max²/sum = 1/2 everywhere
    assert relative_strength(np.zeros((0, 0))) == 0.0


@pytest.mark.parametrize(("correlation", "perfect"), [("lasso", 0.9), ("spearman", 0.9)])
def test_permuted_rescaled_copies_score_top_and_mixtures_score_lower(correlation, perfect):
    copy = SOURCES[:, [2, 0, 3, 1]] * np.array([3.0, -0.5, 10.0, 1.0])
    aligned = udr_from_codes([SOURCES, copy, SOURCES * 2.0], correlation=correlation)
    mixed = udr_from_codes([SOURCES, SOURCES @ MIX, copy], correlation=correlation)
    # Lasso: exactly 1 − α (shrunk coefficients, no renormalisation); Spearman: 1 minus sampling noise
    assert aligned["udr"] == pytest.approx(perfect, abs=1e-6) if correlation == "lasso" else aligned["udr"] > perfect
    assert mixed["udr"] < aligned["udr"] - 0.2
    assert np.argmin(mixed["model_scores"]) == 1  # the entangled model ranks last
    assert len(mixed["pairwise"]) == 3 and mixed["pairwise"][0][0] == 0.0


def test_low_kl_latents_are_ignored():
    noisy = np.c_[SOURCES, RNG.normal(size=(500, 1))]  # an extra latent that matches nothing
    without = udr_from_codes([noisy, noisy[:, [1, 0, 2, 3, 4]][:, :4]])["udr"]
    kl = [np.array([1.0, 1, 1, 1, 0.0]), np.ones(4)]
    filtered = udr_from_codes([noisy, noisy[:, [1, 0, 2, 3, 4]][:, :4]], kl=kl)["udr"]
    assert filtered == pytest.approx(0.9, abs=1e-6) and without < filtered


def test_models_without_kl_can_drop_inactive_latents_by_relative_variance():
    # A deterministic code with a near-dead extra latent (variance 1e-6 of the others): kept by default
    # (it matches nothing and lowers the score), dropped by the active-units filter; a model with a KL
    # vector next to it still uses the KL filter.
    dead = np.c_[SOURCES, 1e-3 * RNG.normal(size=(500, 1))]
    other = SOURCES[:, [1, 0, 2, 3]]
    kept = udr_from_codes([dead, other])["udr"]
    active = udr_from_codes([dead, other], activity_threshold=0.01)["udr"]
    assert active == pytest.approx(0.9, abs=1e-6) and kept < active
    mixed = udr_from_codes([dead, other], kl=[None, np.ones(4)], activity_threshold=0.01)["udr"]
    assert mixed == pytest.approx(active)
    with pytest.raises(ValueError, match="activity_threshold"):
        udr_from_codes([dead, other], activity_threshold=1.5)


def test_dataset_and_observation_inputs_give_the_same_kind_of_answer():
    data = IdentityFactorData((4, 6, 8))
    out = udr(data, [identity_representation, lambda x: identity_representation(x)[:, ::-1] * 3.0],
              np.random.default_rng(0), num_data_points=300)
    assert out["udr"] == pytest.approx(0.9, abs=1e-6)
    images = data.images(data.sample_factors(200, np.random.default_rng(1)))
    out = udr(images, [identity_representation, identity_representation], np.random.default_rng(0))
    assert out["model_scores"] == pytest.approx([0.9, 0.9], abs=1e-6)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="at least 2"):
        udr_from_codes([SOURCES])
    with pytest.raises(ValueError, match="same observations"):
        udr_from_codes([SOURCES, SOURCES[:10]])
    with pytest.raises(ValueError, match="lasso, spearman"):
        udr_from_codes([SOURCES, SOURCES], correlation="pearson")
    with pytest.raises(ValueError, match="kl of model 1"):
        udr_from_codes([SOURCES, SOURCES], kl=[np.ones(4), np.ones(3)])
    with pytest.raises(TypeError, match="observations"):
        udr([1, 2, 3], [identity_representation, identity_representation], np.random.default_rng(0))
