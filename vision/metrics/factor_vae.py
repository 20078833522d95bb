"""FactorVAE disentanglement metric (Kim & Mnih 2018, "Disentangling by Factorising", ICML, Sec. 4).

1. Estimate each code dimension's variance ``s_d²`` over the data (``num_variance_estimate`` images)
   and drop dimensions with ``s_d < prune_threshold`` (collapsed to the prior).
2. One vote: pick a factor ``k``, draw ``L`` images with ``k`` fixed at one random value and the rest
   random, normalise each code dimension by ``s_d`` and take ``d* = argmin_d Var_L(z_d) / s_d²``.
3. The classifier is a majority vote: each dimension ``d`` predicts the factor it was most often the
   argmin for (ties → the lowest factor index). The score is the fraction of evaluation votes it gets right.

Normalising by ``s_d`` makes the score invariant to rescaling any dimension (as long as it stays
above the pruning threshold) and to permuting dimensions; no optimiser, no hyperparameters to tune.
Chance is about ``1 / num_varying_factors``. Defaults follow disentanglement_lib's
``factor_vae_metric.gin``: ``L = 64``, 10 000 train / 5 000 eval votes, 10 000 variance images,
``prune_threshold = 0.05``.
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
    sample_codes,
    varying_factors,
)

logger = logging.getLogger(__name__)


def factor_vae_votes(batch_codes: np.ndarray, labels: np.ndarray, global_variances: np.ndarray,
                     active: np.ndarray, num_factors: int) -> np.ndarray:
    """Vote matrix from fixed-factor batches.

    :param batch_codes: ``(points, L, D)`` codes; every batch has factor ``labels[p]`` fixed
    :param labels: ``(points,)`` fixed factor index per batch
    :param global_variances: ``(D,)`` data variance of each dimension
    :param active: ``(D,)`` bool, dimensions that may win the argmin
    :param num_factors: rows of the vote matrix
    :return: ``(num_factors, D)`` int64, ``votes[k, d]`` = batches with factor k fixed whose argmin was d
    """
    batch_codes = np.asarray(batch_codes, np.float64)
    if batch_codes.ndim != 3 or batch_codes.shape[1] < 2:
        raise ValueError(f"batch_codes must have shape (points, L >= 2, D), got {batch_codes.shape}")
    local = np.var(batch_codes, axis=1, ddof=1) / np.where(active, global_variances, 1.0)  # (points, D)
    local[:, ~active] = np.inf
    argmin = np.argmin(local, axis=1)
    votes = np.zeros((num_factors, batch_codes.shape[2]), dtype=np.int64)
    np.add.at(votes, (np.asarray(labels, np.int64), argmin), 1)
    return votes


def factor_vae_from_votes(train_votes: np.ndarray, eval_votes: np.ndarray) -> dict[str, float]:
    """Majority-vote classifier from ``train_votes (K, D)`` scored on both vote matrices."""
    classifier = np.argmax(train_votes, axis=0)  # (D,) factor predicted by each dimension
    dims = np.arange(train_votes.shape[1])

    def accuracy(votes):
        total = votes.sum()
        return float(votes[classifier, dims].sum() / total) if total else 0.0

    return {"train_accuracy": accuracy(train_votes), "eval_accuracy": accuracy(eval_votes)}


def _votes(dataset, representation, num_points, batch_size, rng, varying, global_variances, active,
           encode_batch_size, desc) -> np.ndarray:
    labels = rng.choice(varying, size=num_points)
    votes = np.zeros((len(dataset.factor_sizes), len(global_variances)), dtype=np.int64)
    per_chunk = max(1, RENDER_CHUNK // batch_size)
    for start in tqdm(range(0, num_points, per_chunk), desc=desc, leave=False, disable=None):
        fixed = labels[start:start + per_chunk]
        p = len(fixed)
        factors = np.asarray(dataset.sample_factors(p * batch_size, rng)).reshape(p, batch_size, -1)
        factors[np.arange(p), :, fixed] = factors[np.arange(p), 0, fixed][:, None]
        codes = encode(representation, dataset.images(factors.reshape(p * batch_size, -1)), encode_batch_size)
        votes += factor_vae_votes(codes.reshape(p, batch_size, -1), fixed, global_variances, active,
                                  len(dataset.factor_sizes))
    return votes


def factor_vae_score(dataset, representation: Representation, rng: np.random.Generator, batch_size: int = 64,
                     num_train: int = 10000, num_eval: int = 5000, num_variance_estimate: int = 10000,
                     prune_threshold: float = 0.05,
                     encode_batch_size: int = ENCODE_BATCH_SIZE) -> dict[str, float]:
    """FactorVAE metric of ``representation`` on ``dataset`` (Kim & Mnih 2018, Sec. 4).

    :param dataset: ground-truth data set (``factor_sizes``, ``sample_factors``, ``images``)
    :param representation: ``images (n, H, W, C) uint8 → codes (n, D)``
    :param rng: randomness for factor draws
    :param batch_size: images ``L`` per vote (64; at least 2)
    :param num_train: training votes (10 000); ``num_eval``: evaluation votes (5 000)
    :param num_variance_estimate: images for the per-dimension data variance (10 000)
    :param prune_threshold: dimensions whose data std is below this are ignored (0.05)
    :param encode_batch_size: images per ``representation`` call
    :return: ``{"train_accuracy", "eval_accuracy", "num_active_dims"}``. If no dimension is active
        (e.g. a constant representation) both accuracies are 0.0, documented rather than NaN. That is
        below chance (1 / num_factors) on purpose: it is what disentanglement_lib reports for a code
        with no active dimension, so collapsed models are comparable with published tables.
        Factors with a single value are never the fixed factor.
    """
    check_dataset(dataset)
    check_positive(num_train=num_train, num_eval=num_eval, num_variance_estimate=num_variance_estimate,
                   encode_batch_size=encode_batch_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
        raise ValueError(f"factor_vae: batch_size must be an integer >= 2 (a variance needs two codes), got {batch_size!r}")
    if num_variance_estimate < 2:
        raise ValueError(f"factor_vae: num_variance_estimate must be >= 2, got {num_variance_estimate}")
    varying = varying_factors(dataset, "factor_vae")
    _, codes = sample_codes(dataset, representation, num_variance_estimate, rng, encode_batch_size,
                            desc="factor_vae variances")
    global_variances = np.var(check_codes(codes), axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        logger.warning("factor_vae: no code dimension has std >= %g; score set to 0", prune_threshold)
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    train = _votes(dataset, representation, num_train, batch_size, rng, varying, global_variances, active,
                   encode_batch_size, "factor_vae train")
    evals = _votes(dataset, representation, num_eval, batch_size, rng, varying, global_variances, active,
                   encode_batch_size, "factor_vae eval")
    return {**factor_vae_from_votes(train, evals), "num_active_dims": float(active.sum())}
