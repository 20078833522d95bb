"""Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", NeurIPS,
Sec. 5, eq. 5), in disentanglement_lib's discretised form:

    MIG = 1/K Σ_k 1/H(v_k) · ( I(z_{j⁽¹⁾}; v_k) − I(z_{j⁽²⁾}; v_k) )

with ``j⁽¹⁾, j⁽²⁾`` the code dimensions of highest and second-highest mutual information with factor
``v_k``. Each code dimension is discretised into 20 equal-width bins over its observed range; mutual
information and entropies are plug-in estimates in nats. Range [0, 1]: 1 when every factor is copied
by exactly one dimension and no other dimension knows anything about it. Invariant to permuting code
dimensions and to rescaling or shifting any of them. Defaults: 10 000 points, 20 bins
(``unsupervised_study_v1/metric_configs/mig.gin``).
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
    check_positive,
    discrete_entropy,
    discrete_mutual_info,
    factor_names,
    histogram_discretize,
    sample_codes,
)

logger = logging.getLogger(__name__)


def mutual_info_matrix(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """``I(z_j; v_k)`` in nats between histogram-discretised codes ``(n, D)`` and factors ``(n, K)`` → ``(D, K)``."""
    codes = check_codes(codes)
    factors = check_factors(factors, len(codes))
    return discrete_mutual_info(histogram_discretize(codes, num_bins), factors)


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20,
                   names: list[str] | None = None) -> dict[str, float]:
    """MIG of codes ``(n, D)`` against discrete factors ``(n, K)`` (any values; equality only).

    :param names: factor names for the per-factor entries (default ``factor_0 …``)
    :return: ``{"mig": mean gap, "mig_<name>": gap of each factor}``. A factor that takes a single
        value in ``factors`` has no entropy to explain: it is left out of the mean and its entry is
        0.0 (if every factor is constant, ``ValueError``). With a single code dimension the second-best
        information is taken as 0. Constant code dimensions carry no information (MI 0).
    """
    codes = check_codes(codes)
    factors = check_factors(factors, len(codes))
    check_positive(num_bins=num_bins)
    names = list(names) if names is not None else [f"factor_{k}" for k in range(factors.shape[1])]
    if len(names) != factors.shape[1]:
        raise ValueError(f"got {len(names)} factor names for {factors.shape[1]} factors")
    mi = mutual_info_matrix(codes, factors, num_bins)  # (D, K)
    entropy = discrete_entropy(factors)  # (K,)
    informative = entropy > 0
    if not informative.any():
        raise ValueError("mig: every factor takes a single value in these samples; MIG needs varying factors")
    top = np.sort(mi, axis=0)[::-1]  # (D, K), descending
    second = top[1] if len(top) > 1 else np.zeros(mi.shape[1])
    gap = np.where(informative, (top[0] - second) / np.where(informative, entropy, 1.0), 0.0)
    out = {"mig": float(np.mean(gap[informative]))}
    out.update({f"mig_{name}": float(g) for name, g in zip(names, gap)})
    return out


def mig(dataset, representation: Representation, rng: np.random.Generator, num_train: int = 10000,
        num_bins: int = 20, encode_batch_size: int = ENCODE_BATCH_SIZE) -> dict[str, float]:
    """MIG of ``representation`` on ``num_train`` random samples of ``dataset`` (Chen et al. 2018, eq. 5).

    :param dataset: ground-truth data set (``factor_sizes``, ``sample_factors``, ``images``)
    :param representation: ``images (n, H, W, C) uint8 → codes (n, D)``
    :param rng: randomness for factor draws
    :param num_train: samples (10 000); ``num_bins``: histogram bins per code dimension (20)
    :param encode_batch_size: images per ``representation`` call
    :return: see :func:`mig_from_codes`, entries named after the data set's factors
    """
    check_dataset(dataset)
    factors, codes = sample_codes(dataset, representation, num_train, rng, encode_batch_size, desc="mig")
    return mig_from_codes(codes, factors, num_bins, names=factor_names(dataset))
