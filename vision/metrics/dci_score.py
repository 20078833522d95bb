"""DCI: Disentanglement, Completeness, Informativeness (Eastwood & Williams 2018, "A Framework for the
Quantitative Evaluation of Disentangled Representations", ICLR, Sec. 2).

One classifier per factor predicts it from all code dimensions; its feature importances form the
column ``R[:, k]`` of the importance matrix ``R (D, K)``. With ``P_jk = R_jk / Σ_k R_jk``:

* disentanglement of code ``j``: ``D_j = 1 − H_K(P_j·)`` (entropy in base K), weighted by
  ``ρ_j = Σ_k R_jk / Σ R`` → ``D = Σ_j ρ_j D_j``  (eq. 2–3)
* completeness of factor ``k``: ``C_k = 1 − H_D(R_·k / Σ_j R_jk)``, weighted by the factor's share of
  importance (as in disentanglement_lib)  (eq. 4)
* informativeness: the classifiers' accuracy on train and held-out test samples (disentanglement_lib
  reports accuracy, not the paper's prediction error).

Classifiers: ``"gbt"`` = ``sklearn.ensemble.GradientBoostingClassifier()`` (disentanglement_lib's
default; slow: ~1 min per 32-class factor on 10 000 samples), or ``"random_forest"`` =
``RandomForestClassifier(n_estimators=100, max_features=None)`` (the paper used random forests;
several times faster). Tree
importances make D and C invariant to permuting and to monotonically rescaling code dimensions.
Defaults: 10 000 train / 5 000 test samples (``dci.gin``).
"""

from __future__ import annotations

import logging

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

CLASSIFIERS = ("gbt", "random_forest")


def _normalised_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """Entropy of the distributions ``p`` along ``axis`` in base ``p.shape[axis]`` (0 when that is 1)."""
    base = p.shape[axis]
    if base < 2:
        return np.zeros(np.delete(p.shape, axis))
    p = p + 1e-11  # disentanglement_lib's guard: an all-zero row becomes uniform (entropy 1)
    p = p / p.sum(axis=axis, keepdims=True)
    return -np.sum(p * np.log(p), axis=axis) / np.log(base)


def disentanglement_from_importance(importance: np.ndarray) -> float:
    """``D = Σ_j ρ_j (1 − H_K(P_j·))`` of an importance matrix ``(D, K)`` (Eastwood & Williams eq. 2–3)."""
    importance = np.abs(np.asarray(importance, np.float64))
    per_code = 1.0 - _normalised_entropy(importance, axis=1)
    weights = importance.sum(axis=1) / importance.sum() if importance.sum() > 0 else np.full(len(importance), 1 / len(importance))
    return float(np.sum(per_code * weights))


def completeness_from_importance(importance: np.ndarray) -> float:
    """``C = Σ_k w_k (1 − H_D(R_·k))`` of an importance matrix ``(D, K)`` (Eastwood & Williams eq. 4)."""
    importance = np.abs(np.asarray(importance, np.float64))
    per_factor = 1.0 - _normalised_entropy(importance, axis=0)
    total = importance.sum()
    weights = importance.sum(axis=0) / total if total > 0 else np.full(importance.shape[1], 1 / importance.shape[1])
    return float(np.sum(per_factor * weights))


def _make_classifier(classifier: str, seed: int):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    if classifier == "gbt":
        return GradientBoostingClassifier(random_state=seed)
    if classifier == "random_forest":
        # Every feature is a split candidate (bagged trees): with sklearn's sqrt subsampling, irrelevant
        # codes get forced splits and importance, and a perfect code scores D ≈ 0.85 instead of 1.
        return RandomForestClassifier(n_estimators=100, max_features=None, random_state=seed)
    raise ValueError(f"dci: unknown classifier '{classifier}'; valid: {', '.join(CLASSIFIERS)}")


def importance_matrix(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                      test_factors: np.ndarray, classifier: str = "gbt",
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit one classifier per factor → ``(importance (D, K), train_accuracy (K,), test_accuracy (K,))``.

    A factor that takes a single value in ``train_factors`` cannot be classified: its importance column
    is 0 and its accuracies are NaN (callers leave it out).
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"dci: unknown classifier '{classifier}'; valid: {', '.join(CLASSIFIERS)}")
    train_codes = check_codes(train_codes, what="train_codes")
    test_codes = check_codes(test_codes, what="test_codes")
    train_factors = check_factors(train_factors, len(train_codes), what="train_factors")
    test_factors = check_factors(test_factors, len(test_codes), what="test_factors")
    if train_codes.shape[1] != test_codes.shape[1] or train_factors.shape[1] != test_factors.shape[1]:
        raise ValueError(f"dci: train and test widths differ: codes {train_codes.shape[1]} vs {test_codes.shape[1]}, "
                         f"factors {train_factors.shape[1]} vs {test_factors.shape[1]}")
    num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
    importance = np.zeros((num_codes, num_factors))
    train_acc, test_acc = np.full(num_factors, np.nan), np.full(num_factors, np.nan)
    for k in range(num_factors):
        y_train, y_test = train_factors[:, k], test_factors[:, k]
        if labels_of(y_train)[1] < 2:
            logger.warning("dci: factor %d takes one value in the training samples; left out", k)
            continue
        model = _make_classifier(classifier, seed + k)
        model.fit(train_codes, y_train)
        importance[:, k] = np.abs(model.feature_importances_)
        train_acc[k] = np.mean(model.predict(train_codes) == y_train)
        test_acc[k] = np.mean(model.predict(test_codes) == y_test)
    return importance, train_acc, test_acc


def dci_from_codes(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                   test_factors: np.ndarray, classifier: str = "gbt", seed: int = 0) -> dict[str, float]:
    """DCI of codes ``(n, D)`` against discrete factors ``(n, K)``, trained on one split, tested on another.

    :return: ``{"disentanglement", "completeness", "informativeness_train", "informativeness_test"}``,
        all in [0, 1]. Constant codes get no importance anywhere: D = C = 0. Factors with a single value
        are left out (``ValueError`` if all are).
    """
    importance, train_acc, test_acc = importance_matrix(train_codes, train_factors, test_codes, test_factors,
                                                        classifier, seed)
    used = ~np.isnan(train_acc)
    if not used.any():
        raise ValueError("dci: every factor takes a single value in the training samples; DCI needs varying factors")
    importance = importance[:, used]
    return {
        "disentanglement": disentanglement_from_importance(importance),
        "completeness": completeness_from_importance(importance),
        "informativeness_train": float(np.mean(train_acc[used])),
        "informativeness_test": float(np.mean(test_acc[used])),
    }


def dci(dataset, representation: Representation, rng: np.random.Generator, num_train: int = 10000,
        num_test: int = 5000, classifier: str = "gbt",
        encode_batch_size: int = ENCODE_BATCH_SIZE) -> dict[str, float]:
    """DCI of ``representation`` on ``dataset`` (Eastwood & Williams 2018).

    :param dataset: ground-truth data set (``factor_sizes``, ``sample_factors``, ``images``)
    :param representation: ``images (n, H, W, C) uint8 → codes (n, D)``
    :param rng: randomness for factor draws and classifier seeds
    :param num_train: training samples (10 000); ``num_test``: test samples (5 000)
    :param classifier: ``"gbt"`` (disentanglement_lib default) or ``"random_forest"`` (faster)
    :param encode_batch_size: images per ``representation`` call
    :return: see :func:`dci_from_codes`
    """
    check_dataset(dataset)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"dci: unknown classifier '{classifier}'; valid: {', '.join(CLASSIFIERS)}")
    train_factors, train_codes = sample_codes(dataset, representation, num_train, rng, encode_batch_size, "dci train")
    test_factors, test_codes = sample_codes(dataset, representation, num_test, rng, encode_batch_size, "dci test")
    return dci_from_codes(train_codes, train_factors, test_codes, test_factors, classifier, seed_from(rng))
