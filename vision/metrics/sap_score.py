"""SAP: Separated Attribute Predictability (Kumar, Sattigeri & Balakrishnan 2018, "Variational Inference
of Disentangled Latent Concepts from Unlabeled Observations", ICLR, Sec. 3).

A score matrix ``S (D, K)`` holds how well code dimension ``j`` *alone* predicts factor ``k``; SAP is
the mean over factors of the gap between the best and the second-best dimension:
``SAP = 1/K Σ_k (S_(1)k − S_(2)k)``.

* discrete factors (default, as disentanglement_lib's ``sap_score.gin``): ``S_jk`` is the test
  accuracy of a one-feature classifier — ``classifier="svm"``: ``sklearn.svm.LinearSVC(C=0.01,
  class_weight="balanced")`` as in disentanglement_lib, or ``"tree"``: a threshold classifier (a 1-D
  decision tree with as many leaves as the factor has values), which can use every value of an ordinal
  factor that a linear one-vs-rest model on one feature cannot separate;
* ``continuous=True``: ``S_jk`` is the squared Pearson correlation (R² of a linear fit) of ``z_j`` and
  the factor's value.

Default = disentanglement_lib (``evaluation/metrics/sap_score.py::_compute_score_matrix``, with
``sap_score.continuous_factors = False`` and 10 000 train / 5 000 test samples in its
``sap_score.gin``): the SVM is fit on the raw code dimension. ``standardize=True`` is a named variant
that first standardises each code dimension (train mean and std), making the score invariant to
rescaling a dimension — with ``C = 0.01`` fixed, the raw SVM's accuracy depends on the code's
arbitrary scale (on near-perfect 6 000-sample codes the variant read 0.27 where dlib reads 0.30).
Constant code dimensions score 0 (they cannot predict anything; disentanglement_lib does the same in
its continuous branch). With a single code dimension the second best is 0.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from vision.metrics.utils import (
    ENCODE_BATCH_SIZE,
    Representation,
    check_codes,
    check_dataset,
    check_factors,
    labels_of,
    sample_codes,
    seed_from,
)

logger = logging.getLogger(__name__)

CLASSIFIERS = ("svm", "tree")


def sap_score_matrix(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray | None = None,
                     test_factors: np.ndarray | None = None, continuous: bool = False, classifier: str = "svm",
                     seed: int = 0, standardize: bool = False) -> np.ndarray:
    """Score matrix ``S (D, K)``: accuracy of predicting factor k from code j alone (or R² if ``continuous``).

    Test arrays are needed for discrete factors only. Factors with a single value get a zero column.

    :param standardize: standardise each code dimension before the classifier (a variant; the
        default fits the raw codes, as disentanglement_lib does).
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"sap: unknown classifier '{classifier}'; valid: {', '.join(CLASSIFIERS)}")
    train_codes = check_codes(train_codes, what="train_codes")
    train_factors = check_factors(train_factors, len(train_codes), what="train_factors")
    num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
    std = train_codes.std(axis=0)
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(train_codes).max(axis=0))
    scores = np.zeros((num_codes, num_factors))
    if continuous:
        y = train_factors.astype(np.float64)
        zc = (train_codes - train_codes.mean(0)) / np.where(constant, 1.0, std)
        ys = y.std(axis=0)
        yc = (y - y.mean(0)) / np.where(ys > 0, ys, 1.0)
        corr = zc.T @ yc / len(y)  # (D, K) Pearson correlation
        scores = np.where(constant[:, None] | (ys <= 0)[None, :], 0.0, corr**2)
        return scores
    if test_codes is None or test_factors is None:
        raise ValueError("sap: discrete factors need test_codes and test_factors (held-out accuracy)")
    test_codes = check_codes(test_codes, what="test_codes")
    test_factors = check_factors(test_factors, len(test_codes), what="test_factors")
    if test_codes.shape[1] != num_codes or test_factors.shape[1] != num_factors:
        raise ValueError(f"sap: train and test widths differ: codes {num_codes} vs {test_codes.shape[1]}, "
                         f"factors {num_factors} vs {test_factors.shape[1]}")
    if standardize:
        mean = train_codes.mean(axis=0)
        scale = np.where(constant, 1.0, std)
        ztrain, ztest = (train_codes - mean) / scale, (test_codes - mean) / scale
    else:
        ztrain, ztest = train_codes, test_codes
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    for k in range(num_factors):
        num_values = labels_of(train_factors[:, k])[1]
        if num_values < 2:
            continue
        for j in np.flatnonzero(~constant):
            if classifier == "svm":
                model = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
            else:
                model = DecisionTreeClassifier(max_leaf_nodes=max(2, num_values), random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(ztrain[:, j:j + 1], train_factors[:, k])
            scores[j, k] = np.mean(model.predict(ztest[:, j:j + 1]) == test_factors[:, k])
    return scores


def sap_from_score_matrix(scores: np.ndarray) -> float:
    """Mean over factors of (best − second-best) score of a ``(D, K)`` score matrix (second = 0 if D = 1)."""
    top = np.sort(np.asarray(scores, np.float64), axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros(top.shape[1])
    return float(np.mean(top[0] - second))


def sap_from_codes(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray | None = None,
                   test_factors: np.ndarray | None = None, continuous: bool = False, classifier: str = "svm",
                   seed: int = 0, standardize: bool = False) -> dict[str, float]:
    """SAP of codes ``(n, D)`` against factors ``(n, K)`` → ``{"sap"}`` in [0, 1].

    Factors that take a single value in the training samples are left out of the mean (``ValueError``
    if all are). ``standardize``: see :func:`sap_score_matrix`.
    """
    train_factors_arr = check_factors(train_factors, len(np.asarray(train_codes)), what="train_factors")
    used = np.array([labels_of(train_factors_arr[:, k])[1] > 1 for k in range(train_factors_arr.shape[1])])
    if not used.any():
        raise ValueError("sap: every factor takes a single value in the training samples; SAP needs varying factors")
    scores = sap_score_matrix(train_codes, train_factors, test_codes, test_factors, continuous, classifier, seed,
                              standardize)
    return {"sap": sap_from_score_matrix(scores[:, used])}


def sap(dataset, representation: Representation, rng: np.random.Generator, num_train: int = 10000,
        num_test: int = 5000, continuous: bool = False, classifier: str = "svm",
        encode_batch_size: int = ENCODE_BATCH_SIZE, standardize: bool = False) -> dict[str, float]:
    """SAP of ``representation`` on ``dataset`` (Kumar et al. 2018, Sec. 3).

    :param dataset: ground-truth data set (``factor_sizes``, ``sample_factors``, ``images``)
    :param representation: ``images (n, H, W, C) uint8 → codes (n, D)``
    :param rng: randomness for factor draws and classifier seeds
    :param num_train: training samples (10 000); ``num_test``: test samples (5 000, discrete only)
    :param continuous: treat factor indices as continuous values (R² scores) instead of classes
    :param classifier: ``"svm"`` (disentanglement_lib) or ``"tree"`` (threshold classifier)
    :param encode_batch_size: images per ``representation`` call
    :param standardize: standardise code dimensions before the SVM (variant; dlib does not)
    :return: ``{"sap"}``
    """
    check_dataset(dataset)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"sap: unknown classifier '{classifier}'; valid: {', '.join(CLASSIFIERS)}")
    train_factors, train_codes = sample_codes(dataset, representation, num_train, rng, encode_batch_size, "sap train")
    test_factors = test_codes = None
    if not continuous:
        test_factors, test_codes = sample_codes(dataset, representation, num_test, rng, encode_batch_size, "sap test")
    return sap_from_codes(train_codes, train_factors, test_codes, test_factors, continuous, classifier, seed_from(rng),
                          standardize)
