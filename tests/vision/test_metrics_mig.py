"""MIG (Chen et al. 2018): known values on hand-built codes, invariances, and bad inputs."""

import itertools

import numpy as np
import pytest

from vision.metrics import mig, mig_from_codes, mutual_info_matrix
from vision.metrics.testing import IdentityFactorData, identity_representation


def _grid(*sizes) -> np.ndarray:
    """Every factor combination once: independent factors have exactly zero empirical MI."""
    return np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)


def test_mig_is_one_for_a_code_that_copies_each_factor():
    factors = _grid(3, 4, 5)
    out = mig_from_codes(factors.astype(float), factors)
    assert out["mig"] == pytest.approx(1.0, abs=1e-12)
    assert out["mig_factor_0"] == pytest.approx(1.0, abs=1e-12)


def test_mig_gap_is_zero_when_two_codes_copy_the_same_factor():
    factors = _grid(3, 4)
    codes = np.c_[factors[:, 0], factors[:, 0], factors[:, 1]].astype(float)
    out = mig_from_codes(codes, factors)
    assert out["mig_factor_0"] == pytest.approx(0.0, abs=1e-12)
    assert out["mig_factor_1"] == pytest.approx(1.0, abs=1e-12)
    assert out["mig"] == pytest.approx(0.5, abs=1e-12)


def test_mutual_info_matrix_matches_entropy_for_a_copy():
    factors = _grid(4, 2)
    mi = mutual_info_matrix(factors.astype(float), factors)
    assert mi.shape == (2, 2)
    assert mi[0, 0] == pytest.approx(np.log(4)) and mi[1, 1] == pytest.approx(np.log(2))
    assert mi[0, 1] == pytest.approx(0.0, abs=1e-12)


def test_mig_is_invariant_to_permuting_scaling_and_shifting_codes():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 8, size=(2000, 3))
    codes = factors + rng.normal(0, 0.7, size=factors.shape)
    base = mig_from_codes(codes, factors)["mig"]
    transformed = codes[:, [2, 0, 1]] * np.array([3.0, 0.01, 250.0]) + np.array([5.0, -2.0, 0.3])
    assert mig_from_codes(transformed, factors)["mig"] == pytest.approx(base, abs=1e-9)


def test_rotated_factors_score_lower_than_axis_aligned():
    data = IdentityFactorData((8, 8, 8))
    rng = np.random.default_rng(1)
    aligned = mig(data, identity_representation, rng, num_train=3000)["mig"]
    rotation = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]
    rotated = mig(data, lambda x: identity_representation(x) @ rotation, np.random.default_rng(1), num_train=3000)["mig"]
    assert aligned > 0.9 and rotated < aligned - 0.4


def test_random_codes_score_near_zero():
    data = IdentityFactorData()
    out = mig(data, lambda x: np.random.default_rng(len(x)).normal(size=(len(x), 6)), np.random.default_rng(0),
              num_train=3000)
    assert out["mig"] < 0.05


def test_constant_codes_score_zero_and_single_code_uses_zero_as_second_best():
    factors = _grid(3, 4)
    assert mig_from_codes(np.zeros((len(factors), 3)), factors)["mig"] == 0.0
    out = mig_from_codes(factors[:, :1].astype(float), factors)
    assert out["mig_factor_0"] == pytest.approx(1.0) and out["mig_factor_1"] == pytest.approx(0.0, abs=1e-12)


def test_factor_with_one_value_is_left_out_and_reported_zero():
    factors = np.c_[_grid(3, 4), np.zeros(12, dtype=int)]
    out = mig_from_codes(factors.astype(float), factors)
    assert out["mig"] == pytest.approx(1.0) and out["mig_factor_2"] == 0.0
    with pytest.raises(ValueError, match="single value"):
        mig_from_codes(np.ones((5, 2)), np.zeros((5, 1)))


def test_bad_inputs_raise_clear_errors():
    factors = _grid(3, 4)
    codes = factors.astype(float)
    codes[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mig_from_codes(codes, factors)
    with pytest.raises(ValueError, match="rows"):
        mig_from_codes(np.zeros((5, 2)), factors)
    with pytest.raises(ValueError, match=r"\(n, num_codes\)"):
        mig_from_codes(np.zeros(12), factors)
    with pytest.raises(ValueError, match="num_bins"):
        mig_from_codes(factors.astype(float), factors, num_bins=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        mig(IdentityFactorData(), lambda x: np.full((len(x), 2), np.nan), np.random.default_rng(0), num_train=10)
