"""SAP (Kumar et al. 2018): gaps on hand-built codes, classifier choices, invariances, bad inputs."""

import numpy as np
import pytest

from vision.metrics import sap, sap_from_codes, sap_from_score_matrix, sap_score_matrix
from vision.metrics.testing import IdentityFactorData, identity_representation

SIZES = (3, 6, 10)


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, s, 1500) for s in SIZES], axis=1)


def _split(codes, factors, n=1000):
    return codes[:n], factors[:n], codes[n:], factors[n:]


def test_gap_of_a_hand_score_matrix():
    scores = np.array([[0.9, 0.1], [0.2, 0.5], [0.1, 0.45]])
    assert sap_from_score_matrix(scores) == pytest.approx(((0.9 - 0.2) + (0.5 - 0.45)) / 2)
    assert sap_from_score_matrix(np.array([[0.7, 0.4]])) == pytest.approx(0.55)  # one code: second best is 0


def test_identity_scores_near_one_with_r2_and_threshold_classifier(samples):
    codes = samples.astype(float)
    assert sap_from_codes(codes, samples, continuous=True)["sap"] > 0.95
    # a threshold classifier gets every value right; the gap is 1 − (chance of the second-best code)
    assert sap_from_codes(*_split(codes, samples), classifier="tree")["sap"] > 0.7


def test_identity_beats_rotated_and_random_with_the_svm(samples):
    codes = samples.astype(float)
    rotation = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0]
    identity = sap_from_codes(*_split(codes, samples))["sap"]
    rotated = sap_from_codes(*_split((codes / np.array(SIZES)) @ rotation, samples))["sap"]
    noise = sap_from_codes(*_split(np.random.default_rng(2).normal(size=codes.shape), samples))["sap"]
    assert identity > rotated and identity > noise + 0.2 and noise < 0.05


def test_duplicated_code_scores_zero(samples):
    codes = np.hstack([samples, samples]).astype(float)
    assert sap_from_codes(codes, samples, continuous=True)["sap"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("classifier", ["svm", "tree"])
def test_standardized_variant_is_invariant_to_permuting_and_rescaling_codes(samples, classifier):
    rng = np.random.default_rng(3)
    codes = samples + rng.normal(0, 0.5, size=samples.shape)
    base = sap_score_matrix(*_split(codes, samples), classifier=classifier, standardize=True)
    perm = [2, 0, 1]
    moved = sap_score_matrix(*_split(codes[:, perm] * np.array([50.0, 0.02, 3.0]), samples), classifier=classifier,
                             standardize=True)
    np.testing.assert_allclose(moved, base[perm], atol=2e-3)


def _dlib_score_matrix(mus, ys, mus_test, ys_test):
    """disentanglement_lib's discrete SAP score matrix, written out: one LinearSVC(C=0.01, balanced) per
    (code, factor) on the raw code value, accuracy on the test split."""
    from sklearn.svm import LinearSVC

    out = np.zeros((mus.shape[1], ys.shape[1]))
    for i in range(mus.shape[1]):
        for j in range(ys.shape[1]):
            clf = LinearSVC(C=0.01, class_weight="balanced", random_state=0).fit(mus[:, i:i + 1], ys[:, j])
            out[i, j] = np.mean(clf.predict(mus_test[:, i:i + 1]) == ys_test[:, j])
    return out


def test_default_matches_disentanglement_lib_on_raw_codes(samples):
    # Near-perfect codes on a small scale: the raw SVM (dlib) and the standardised variant disagree here,
    # and the default must be dlib's.
    rng = np.random.default_rng(4)
    codes = 0.05 * (samples + rng.normal(0, 0.3, size=samples.shape))
    split = _split(codes, samples)
    ours = sap_score_matrix(*split)
    np.testing.assert_allclose(ours, _dlib_score_matrix(*split), atol=1e-12)
    standardized = sap_score_matrix(*split, standardize=True)
    assert np.abs(standardized - ours).max() > 0.05
    assert sap_from_codes(*split)["sap"] == pytest.approx(sap_from_score_matrix(_dlib_score_matrix(*split)))


def test_default_svm_score_depends_on_code_scale_like_dlib(samples):
    codes = samples.astype(float)
    split_big, split_small = _split(codes, samples), _split(codes * 1e-3, samples)
    assert not np.allclose(sap_score_matrix(*split_big), sap_score_matrix(*split_small))
    np.testing.assert_allclose(sap_score_matrix(*split_small), _dlib_score_matrix(*split_small), atol=1e-12)


def test_constant_code_dimension_scores_zero(samples):
    codes = np.c_[samples[:, 0].astype(float), np.full(len(samples), 4.2)]
    scores = sap_score_matrix(*_split(codes, samples))
    assert (scores[1] == 0).all() and scores[0, 0] > 0.5


def test_dataset_level_identity_continuous_is_near_one():
    out = sap(IdentityFactorData(SIZES), identity_representation, np.random.default_rng(0), 500, continuous=True)
    assert out["sap"] > 0.95


def test_bad_inputs_raise_clear_errors(samples):
    codes = samples.astype(float)
    with pytest.raises(ValueError, match="svm, tree"):
        sap_from_codes(*_split(codes, samples), classifier="knn")
    with pytest.raises(ValueError, match="test_codes"):
        sap_from_codes(codes, samples)
    with pytest.raises(ValueError, match="single value"):
        sap_from_codes(codes[:, :1], np.zeros((len(codes), 1)), codes[:, :1], np.zeros((len(codes), 1)))
    bad = codes.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        sap_from_codes(*_split(bad, samples))
