"""β-VAE disentanglement metric (Higgins et al. 2017, "β-VAE: Learning Basic Visual Concepts with a
Constrained Variational Framework", ICLR, Sec. 3 and Appendix A.4).

One training point: pick a factor ``y`` uniformly, draw ``L`` pairs of factor vectors that agree on
``y`` and differ (randomly) elsewhere, encode both images of each pair and take

    z_diff = 1/L · Σ_l |z₁ˡ − z₂ˡ|        (the paper's eq. in Sec. 3, with the mean code as z)

A low-capacity linear classifier predicts ``y`` from ``z_diff``; the score is its accuracy on fresh
points. Chance is ``1 / num_varying_factors``. Defaults follow disentanglement_lib's
``beta_vae_sklearn`` (``L = batch_size = 64``, 10 000 train / 5 000 eval points,
``sklearn.linear_model.LogisticRegression``). Known failure mode (Kim & Mnih 2018, Sec. 4): 100 %
is reachable with only K − 1 factors disentangled.
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm.auto import tqdm

from vision.metrics.utils import (
    ENCODE_BATCH_SIZE,
    RENDER_CHUNK,
    Representation,
    check_codes,
    check_dataset,
    check_positive,
    encode,
    seed_from,
    varying_factors,
)

logger = logging.getLogger(__name__)


def pair_difference_features(codes1: np.ndarray, codes2: np.ndarray) -> np.ndarray:
    """``z_diff`` of each point: mean absolute difference over its ``L`` pairs.

    :param codes1: ``(points, L, D)`` codes of the first image of each pair
    :param codes2: ``(points, L, D)`` codes of the second image
    :return: ``(points, D)`` float64
    """
    codes1, codes2 = np.asarray(codes1, np.float64), np.asarray(codes2, np.float64)
    if codes1.shape != codes2.shape or codes1.ndim != 3:
        raise ValueError(f"pair codes must both have shape (points, L, D), got {codes1.shape} and {codes2.shape}")
    return np.mean(np.abs(codes1 - codes2), axis=1)


def beta_vae_from_features(train_features: np.ndarray, train_labels: np.ndarray, eval_features: np.ndarray,
                           eval_labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Fit the linear classifier on ``z_diff`` features and report train / eval accuracy.

    :param train_features: ``(n, D)`` ``z_diff`` vectors; ``train_labels``: ``(n,)`` fixed-factor index
    :param eval_features: ``(m, D)``; ``eval_labels``: ``(m,)``
    :param seed: ``random_state`` of the logistic regression
    :return: ``{"train_accuracy", "eval_accuracy"}``
    """
    from sklearn.linear_model import LogisticRegression

    train_features = check_codes(train_features, what="train_features")
    eval_features = check_codes(eval_features, what="eval_features")
    train_labels, eval_labels = np.asarray(train_labels), np.asarray(eval_labels)
    if len(train_labels) != len(train_features) or len(eval_labels) != len(eval_features):
        raise ValueError("beta_vae: features and labels must have the same number of rows")
    if len(np.unique(train_labels)) < 2:
        raise ValueError(
            f"beta_vae: training labels hold a single factor {np.unique(train_labels).tolist()}; draw more "
            "training points (num_train) so every varying factor is fixed at least once"
        )
    # lbfgs with more iterations than sklearn's 100 so unscaled codes converge (same model, no warning spam).
    model = LogisticRegression(random_state=seed, max_iter=2000)
    model.fit(train_features, train_labels)
    return {
        "train_accuracy": float(np.mean(model.predict(train_features) == train_labels)),
        "eval_accuracy": float(np.mean(model.predict(eval_features) == eval_labels)),
    }


def _sample_points(dataset, representation: Representation, num_points: int, batch_size: int,
                   rng: np.random.Generator, varying: np.ndarray, encode_batch_size: int,
                   desc: str) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` (z_diff, fixed factor) training points, many at once per rendered chunk."""
    labels = rng.choice(varying, size=num_points)
    features = []
    per_chunk = max(1, RENDER_CHUNK // (2 * batch_size))
    for start in tqdm(range(0, num_points, per_chunk), desc=desc, leave=False, disable=None):
        fixed = labels[start:start + per_chunk]
        p = len(fixed)
        f1 = np.asarray(dataset.sample_factors(p * batch_size, rng)).reshape(p, batch_size, -1)
        f2 = np.asarray(dataset.sample_factors(p * batch_size, rng)).reshape(p, batch_size, -1)
        f2[np.arange(p), :, fixed] = f1[np.arange(p), :, fixed]
        both = np.concatenate([f1.reshape(p * batch_size, -1), f2.reshape(p * batch_size, -1)])
        codes = encode(representation, dataset.images(both), encode_batch_size)
        codes = codes.reshape(2, p, batch_size, -1)
        features.append(pair_difference_features(codes[0], codes[1]))
    return np.concatenate(features), labels


def beta_vae_score(dataset, representation: Representation, rng: np.random.Generator, batch_size: int = 64,
                   num_train: int = 10000, num_eval: int = 5000,
                   encode_batch_size: int = ENCODE_BATCH_SIZE) -> dict[str, float]:
    """β-VAE metric of ``representation`` on ``dataset`` (Higgins et al. 2017, Sec. 3).

    :param dataset: ground-truth data set (``factor_sizes``, ``sample_factors``, ``images``)
    :param representation: ``images (n, H, W, C) uint8 → codes (n, D)``
    :param rng: randomness for factors and the classifier seed
    :param batch_size: pairs ``L`` averaged into one training point (64)
    :param num_train: training points (10 000); ``num_eval``: evaluation points (5 000)
    :param encode_batch_size: images per ``representation`` call
    :return: ``{"train_accuracy", "eval_accuracy"}`` in [0, 1]; chance = 1 / (factors with > 1 value).
        Factors with a single value are never chosen as the fixed factor (fixing them means nothing).
    """
    check_dataset(dataset)
    check_positive(batch_size=batch_size, num_train=num_train, num_eval=num_eval, encode_batch_size=encode_batch_size)
    varying = varying_factors(dataset, "beta_vae")
    logger.info("beta_vae: %d train / %d eval points of %d pairs", num_train, num_eval, batch_size)
    train_x, train_y = _sample_points(dataset, representation, num_train, batch_size, rng, varying,
                                      encode_batch_size, "beta_vae train")
    eval_x, eval_y = _sample_points(dataset, representation, num_eval, batch_size, rng, varying,
                                    encode_batch_size, "beta_vae eval")
    return beta_vae_from_features(train_x, train_y, eval_x, eval_y, seed=seed_from(rng))
