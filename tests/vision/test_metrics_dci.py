"""DCI (Eastwood & Williams 2018): importance-matrix arithmetic, codes vs factors, invariances."""

import numpy as np
import pytest

from vision.metrics import completeness_from_importance, dci, dci_from_codes, disentanglement_from_importance
from vision.metrics.testing import IdentityFactorData, identity_representation

SIZES = (3, 4, 5)


def _split(codes, factors, n_train):
    return codes[:n_train], factors[:n_train], codes[n_train:], factors[n_train:]


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, s, 900) for s in SIZES], axis=1)
    return factors


def test_one_to_one_importance_scores_one_and_uniform_scores_zero():
    assert disentanglement_from_importance(np.eye(3)) == pytest.approx(1.0)
    assert completeness_from_importance(np.eye(3)) == pytest.approx(1.0)
    assert disentanglement_from_importance(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-9)
    assert completeness_from_importance(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-9)


def test_one_code_for_all_factors_is_complete_but_not_disentangled():
    importance = np.array([[1.0, 1.0], [0.0, 0.0]])  # code 0 explains both factors alone
    assert disentanglement_from_importance(importance) == pytest.approx(0.0, abs=1e-9)
    assert completeness_from_importance(importance) == pytest.approx(1.0)


@pytest.mark.parametrize("classifier", ["gbt", "random_forest"])
def test_identity_codes_score_near_one(samples, classifier):
    out = dci_from_codes(*_split(samples.astype(float), samples, 600), classifier=classifier)
    assert out["disentanglement"] > 0.95 and out["completeness"] > 0.95
    assert out["informativeness_test"] > 0.95


def test_rotated_codes_score_lower_than_axis_aligned(samples):
    rotation = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]
    codes = (samples / np.array(SIZES)) @ rotation
    out = dci_from_codes(*_split(codes, samples, 600), classifier="random_forest")
    assert out["disentanglement"] < 0.5 and out["completeness"] < 0.5


def test_invariant_to_permuting_and_rescaling_codes(samples):
    rng = np.random.default_rng(4)
    codes = samples + rng.normal(0, 0.3, size=samples.shape)
    base = dci_from_codes(*_split(codes, samples, 600), classifier="random_forest", seed=1)
    moved = dci_from_codes(*_split(codes[:, [2, 0, 1]] * np.array([10.0, 0.1, 3.0]), samples, 600),
                           classifier="random_forest", seed=1)
    for key in base:
        assert moved[key] == pytest.approx(base[key], abs=0.03)


def test_constant_codes_get_zero_disentanglement_and_completeness(samples):
    out = dci_from_codes(*_split(np.zeros((900, 2)), samples, 600), classifier="random_forest")
    assert out["disentanglement"] == pytest.approx(0.0, abs=1e-6)
    assert out["completeness"] == pytest.approx(0.0, abs=1e-6)


def test_dataset_level_identity_beats_random():
    data = IdentityFactorData(SIZES)
    good = dci(data, identity_representation, np.random.default_rng(0), 500, 300, classifier="random_forest")
    bad = dci(data, lambda x: np.random.default_rng(len(x)).normal(size=(len(x), 3)), np.random.default_rng(0),
              500, 300, classifier="random_forest")
    assert good["disentanglement"] > 0.95
    assert bad["disentanglement"] < 0.2 and bad["informativeness_test"] < 0.45


def test_bad_inputs_raise_clear_errors(samples):
    with pytest.raises(ValueError, match="random_forest"):
        dci_from_codes(*_split(samples.astype(float), samples, 600), classifier="lasso")
    with pytest.raises(ValueError, match="rows"):
        dci_from_codes(np.zeros((10, 2)), samples, np.zeros((10, 2)), samples[:10])
    with pytest.raises(ValueError, match="single value"):
        dci_from_codes(np.ones((10, 2)), np.zeros((10, 1)), np.ones((10, 2)), np.zeros((10, 1)))
