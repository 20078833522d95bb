"""FactorVAE metric (Kim & Mnih 2018): votes on hand-built batches, scores, invariances, bad inputs."""

import numpy as np
import pytest

from vision.metrics import factor_vae_from_votes, factor_vae_score, factor_vae_votes
from vision.metrics.testing import IdentityFactorData, identity_representation

SMALL = {"batch_size": 16, "num_train": 200, "num_eval": 100, "num_variance_estimate": 500}
DATA = IdentityFactorData((4, 6, 8, 5))
ROTATION = np.linalg.qr(np.random.default_rng(7).normal(size=(4, 4)))[0]


def _rotated(x):
    return (identity_representation(x) / np.array(DATA.factor_sizes)) @ ROTATION


def test_vote_goes_to_the_dimension_with_least_normalised_variance():
    batch = np.array([[[0.0, 5.0, 1.0], [1.0, 5.0, 3.0], [2.0, 5.0, 2.0]]])  # dim 1 constant in the batch
    votes = factor_vae_votes(batch, np.array([2]), np.ones(3), np.ones(3, bool), num_factors=3)
    assert votes.tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    # a pruned dimension never wins, even with zero variance
    votes = factor_vae_votes(batch, np.array([2]), np.ones(3), np.array([True, False, True]), num_factors=3)
    assert votes[2, 1] == 0 and votes.sum() == 1


def test_majority_vote_accuracy_by_hand():
    train = np.array([[8, 1], [2, 9]])  # dim 0 → factor 0, dim 1 → factor 1
    evals = np.array([[3, 1], [1, 5]])
    out = factor_vae_from_votes(train, evals)
    assert out["train_accuracy"] == pytest.approx(17 / 20) and out["eval_accuracy"] == pytest.approx(8 / 10)


def test_identity_scores_one_and_rotation_scores_lower():
    good = factor_vae_score(DATA, identity_representation, np.random.default_rng(0), **SMALL)
    rotated = factor_vae_score(DATA, _rotated, np.random.default_rng(0), **SMALL)
    assert good["eval_accuracy"] == 1.0 and good["num_active_dims"] == 4
    assert rotated["eval_accuracy"] < 0.9


def test_random_codes_score_near_chance():
    out = factor_vae_score(DATA, lambda x: np.random.default_rng(len(x)).normal(size=(len(x), 4)),
                           np.random.default_rng(0), **SMALL)
    assert out["eval_accuracy"] < 0.5  # chance 0.25 with 4 factors


def test_invariant_to_permuting_and_rescaling_codes():
    base = factor_vae_score(DATA, _rotated, np.random.default_rng(0), **SMALL)
    moved = factor_vae_score(DATA, lambda x: _rotated(x)[:, [3, 1, 0, 2]] * np.array([40.0, 0.5, 7.0, 2.0]),
                             np.random.default_rng(0), **SMALL)
    assert moved == base


def test_constant_representation_scores_zero_with_no_active_dims():
    out = factor_vae_score(DATA, lambda x: np.zeros((len(x), 3)), np.random.default_rng(0), **SMALL)
    assert out == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}


def test_single_valued_factor_is_never_the_fixed_one():
    data = IdentityFactorData((1, 5, 6))
    out = factor_vae_score(data, identity_representation, np.random.default_rng(0), **SMALL)
    # dim 0 is constant (pruned); the other two factors are perfectly found
    assert out["eval_accuracy"] == 1.0 and out["num_active_dims"] == 2


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="batch_size"):
        factor_vae_score(DATA, identity_representation, np.random.default_rng(0), batch_size=1)
    with pytest.raises(ValueError, match="at least 2 factors"):
        factor_vae_score(IdentityFactorData((1, 5)), identity_representation, np.random.default_rng(0), **SMALL)
    with pytest.raises(ValueError, match="rows"):
        factor_vae_score(DATA, lambda x: np.zeros((3, 2)), np.random.default_rng(0), **SMALL)
    with pytest.raises(TypeError, match="sample_factors"):
        factor_vae_score(object(), identity_representation, np.random.default_rng(0))
