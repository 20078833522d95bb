"""Disentanglement metrics, as pure functions (the disentanglement_lib design).

Every supervised metric is ``metric(dataset, representation, rng, **params) -> dict[str, float]``:

* ``dataset``: a ground-truth factor data set, duck-typed — ``factor_sizes``,
  ``sample_factors(n, rng) -> (n, K) int``, ``images(factors) -> (n, H, W, C) uint8`` (any
  ``envs.FactorDataset``; ``vision`` never imports ``envs``);
* ``representation``: ``images (n, H, W, C) uint8 -> codes (n, D)``, called on batches of
  ``encode_batch_size`` (256) images;
* ``rng``: a ``numpy.random.Generator``; the same seed gives the same numbers.

=============  =========================================  ===========================================
name           function (array-level twin)                 paper
=============  =========================================  ===========================================
``beta_vae``   :func:`beta_vae_score`                      Higgins et al. 2017 (β-VAE), Sec. 3
               (:func:`beta_vae_from_features`)
``factor_vae`` :func:`factor_vae_score`                    Kim & Mnih 2018, Sec. 4
               (:func:`factor_vae_from_votes`)
``mig``        :func:`mig` (:func:`mig_from_codes`)        Chen et al. 2018 (β-TCVAE), eq. 5
``dci``        :func:`dci` (:func:`dci_from_codes`)        Eastwood & Williams 2018
``sap``        :func:`sap` (:func:`sap_from_codes`)        Kumar et al. 2018, Sec. 3
``udr``        :func:`udr` (:func:`udr_from_codes`)        Duan et al. 2020 — unsupervised, compares
                                                           several models; not in :data:`METRICS`
=============  =========================================  ===========================================

:func:`evaluate_metrics` runs several metrics with the published defaults (or ``fast=True`` settings
for a quick look) and :func:`metrics_table` formats the results as Markdown. Published dSprites
reference points: FactorVAE metric — FactorVAE 0.82, β-VAE 0.63 (Kim & Mnih 2018); MIG — β-TCVAE
0.45, β-VAE 0.21 (Chen et al. 2018).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from vision.metrics.beta_vae import beta_vae_from_features, beta_vae_score, pair_difference_features
from vision.metrics.dci_score import (
    completeness_from_importance,
    dci,
    dci_from_codes,
    disentanglement_from_importance,
    importance_matrix,
)
from vision.metrics.factor_vae import factor_vae_from_votes, factor_vae_score, factor_vae_votes
from vision.metrics.mutual_info_gap import mig, mig_from_codes, mutual_info_matrix
from vision.metrics.sap_score import sap, sap_from_codes, sap_from_score_matrix, sap_score_matrix
from vision.metrics.udr_score import udr, udr_from_codes
from vision.metrics.utils import check_dataset, histogram_discretize, metric_rng, sample_codes

logger = logging.getLogger(__name__)

#: Supervised metrics :func:`evaluate_metrics` knows, in their default order.
METRICS: tuple[str, ...] = ("beta_vae", "factor_vae", "mig", "dci", "sap")

_FUNCTIONS: dict[str, Callable[..., dict]] = {
    "beta_vae": beta_vae_score,
    "factor_vae": factor_vae_score,
    "mig": mig,
    "dci": dci,
    "sap": sap,
}

#: Published defaults (disentanglement_lib's gin configs) are the functions' own defaults; ``fast=True``
#: uses these instead: about a minute for all five with a small conv encoder on dSprites on one CPU core
#: (β-VAE and FactorVAE dominate: ~100k and ~50k images), noisier numbers.
FAST_PARAMS: dict[str, dict] = {
    "beta_vae": {"batch_size": 64, "num_train": 500, "num_eval": 250},
    "factor_vae": {"batch_size": 64, "num_train": 500, "num_eval": 250, "num_variance_estimate": 2000},
    "mig": {"num_train": 5000},
    "dci": {"num_train": 2000, "num_test": 1000, "classifier": "random_forest"},
    "sap": {"num_train": 2000, "num_test": 1000},
}


def evaluate_metrics(dataset, representation: Callable[[np.ndarray], np.ndarray],
                     metrics: tuple[str, ...] | list[str] = METRICS, seed: int = 0, fast: bool = False,
                     params: dict[str, dict] | None = None) -> dict[str, dict]:
    """Run the named metrics of ``representation`` on ``dataset``.

    :param dataset: ground-truth factor data set (duck-typed, see the module docstring)
    :param representation: ``images (n, H, W, C) uint8 -> codes (n, D)``
    :param metrics: names from :data:`METRICS`
    :param seed: each metric gets its own generator from ``(seed, metric name)``, so a metric's value
        does not depend on which others run
    :param fast: use :data:`FAST_PARAMS` (fewer samples, random-forest DCI) instead of the published defaults
    :param params: per-metric keyword overrides, e.g. ``{"dci": {"classifier": "random_forest"}}``
    :return: ``{metric name: {score name: float}}``
    """
    check_dataset(dataset)
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in _FUNCTIONS]
    if unknown:
        hint = " (udr compares several models: call vision.metrics.udr directly)" if "udr" in unknown else ""
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRICS)}{hint}")
    params = params or {}
    bad = [m for m in params if m not in _FUNCTIONS]
    if bad:
        raise ValueError(f"params given for unknown metric(s) {bad}; valid: {', '.join(METRICS)}")
    results: dict[str, dict] = {}
    for name in tqdm(list(metrics), desc="metrics", disable=None):
        kwargs = {**(FAST_PARAMS[name] if fast else {}), **params.get(name, {})}
        logger.info("metric %s %s", name, kwargs)
        results[name] = _FUNCTIONS[name](dataset, representation, metric_rng(seed, name), **kwargs)
    return results


def metrics_table(results: dict[str, dict]) -> str:
    """Markdown table ``| metric | score | value |`` of :func:`evaluate_metrics` (or :func:`udr`) results;
    non-scalar entries (UDR's per-model lists) are left out."""
    lines = ["| metric | score | value |", "|---|---|---|"]
    for metric, scores in results.items():
        for key, value in scores.items():
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
                lines.append(f"| {metric} | {key} | {float(value):.4f} |")
    return "\n".join(lines) + "\n"


__all__ = [
    "FAST_PARAMS",
    "METRICS",
    "beta_vae_from_features",
    "beta_vae_score",
    "completeness_from_importance",
    "dci",
    "dci_from_codes",
    "disentanglement_from_importance",
    "evaluate_metrics",
    "factor_vae_from_votes",
    "factor_vae_score",
    "factor_vae_votes",
    "histogram_discretize",
    "importance_matrix",
    "metrics_table",
    "mig",
    "mig_from_codes",
    "mutual_info_matrix",
    "pair_difference_features",
    "sample_codes",
    "sap",
    "sap_from_codes",
    "sap_from_score_matrix",
    "sap_score_matrix",
    "udr",
    "udr_from_codes",
]
