"""Unsupervised Disentanglement Ranking (Duan et al. 2020, "Unsupervised Model Selection for Variational
Disentangled Representation Learning", ICLR, Sec. 3, eq. 2).

No ground-truth factors: train several models (e.g. seeds) of the same kind, encode the same
observations with each, and score each *pair* of models by how one-to-one their latents correspond.
For models ``i, j`` with standardised codes, ``R (D_i, D_j)`` holds the absolute similarity of each
latent pair — ``"lasso"``: |coefficients| of a Lasso regression (α = 0.1) of model j's codes on model
i's, or ``"spearman"``: |Spearman rank correlation|. Then, as disentanglement_lib's
``relative_strength_disentanglement``,

    UDR_ij = ½ ( mean_b max_a R_ab² / Σ_a R_ab  +  mean_a max_b R_ab² / Σ_b R_ab )

which is highest when every latent of one model matches exactly one latent of the other and drops
as latents mix. Like disentanglement_lib, ``R`` is not renormalised: a perfect match scores
``1 − α`` (0.9) with Lasso, whose coefficients of standardised codes shrink by α, and just under 1
with Spearman (sampling noise off the diagonal); compare models under the same settings only. A model's score is the median of its pairwise scores against all other models. Only
*informative* latents take part: those with mean KL above ``kl_threshold`` (0.01) when the per-latent
KL of each model is given (the paper's filter), otherwise every non-constant latent. Defaults follow
``udr.gin`` (1 000 points, Lasso).

Which models the KL filter covers, and why not all: Duan et al. define UDR for VAEs, where KL(q(z_j|x)
‖ p(z_j)) measures in nats how much latent j says about x, and a collapsed latent (KL ≈ 0) is noise
that would dilute the similarity matrix. ``kl`` accepts that vector for *any* model with a posterior
and a fixed prior (Gaussian or not: the caller computes it, e.g. ``results/metrics/run.py`` for the
zoo's Gaussian-posterior models). A deterministic code (AE, DAE, ICF, InfoGAN's features, DisBM's
mean-field probabilities, which have no fixed prior) has no noise scale, so "informative" has no
scale-free meaning there; for those ``activity_threshold`` offers the "active units" heuristic of
Burda et al. 2016 instead — latent j takes part when Var_x(z_j) exceeds ``activity_threshold`` × the
largest latent variance of the same model (off by default: every non-constant latent takes part, so
a tiny but non-zero latent can lower such a model's score).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np

from vision.metrics.utils import (
    ENCODE_BATCH_SIZE,
    Representation,
    check_codes,
    check_positive,
    encode,
    seed_from,
)

logger = logging.getLogger(__name__)

CORRELATIONS = ("lasso", "spearman")


def _standardise(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance per column → ``(standardised codes, non-constant mask)``; constant columns → 0."""
    std = codes.std(axis=0)
    varying = std > 1e-12 * np.maximum(1.0, np.abs(codes).max(axis=0))
    return np.where(varying, (codes - codes.mean(axis=0)) / np.where(varying, std, 1.0), 0.0), varying


def lasso_similarity(codes_a: np.ndarray, codes_b: np.ndarray, alpha: float = 0.1, seed: int = 0) -> np.ndarray:
    """|Lasso coefficients| regressing ``codes_b (n, D_b)`` on ``codes_a (n, D_a)`` → ``(D_a, D_b)``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Lasso(alpha=alpha, random_state=seed).fit(codes_a, codes_b)
    return np.abs(np.asarray(model.coef_).reshape(codes_b.shape[1], codes_a.shape[1])).T


def spearman_similarity(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """|Spearman rank correlation| of every column of ``codes_a`` with every column of ``codes_b`` →
    ``(D_a, D_b)``; a constant column correlates 0 with everything."""
    from scipy.stats import rankdata

    ra, va = _standardise(rankdata(codes_a, axis=0))
    rb, vb = _standardise(rankdata(codes_b, axis=0))
    corr = np.abs(ra.T @ rb / len(ra))
    return np.where(va[:, None] & vb[None, :], corr, 0.0)


def relative_strength(similarity: np.ndarray) -> float:
    """``½ (mean over columns of max² / sum + mean over rows of max² / sum)``; empty rows or columns
    (sum 0) count 0. An empty matrix (no informative latents) scores 0.0."""
    r = np.abs(np.asarray(similarity, np.float64))
    if r.size == 0:
        return 0.0

    def side(axis):
        total = r.sum(axis=axis)
        return np.where(total > 0, r.max(axis=axis) ** 2 / np.where(total > 0, total, 1.0), 0.0).mean()

    return float((side(0) + side(1)) / 2.0)


def udr_from_codes(codes: Sequence[np.ndarray], kl: Sequence[np.ndarray | None] | None = None,
                   correlation: str = "lasso", kl_threshold: float = 0.01, lasso_alpha: float = 0.1,
                   seed: int = 0, activity_threshold: float = 0.0) -> dict:
    """UDR of several models' codes of the *same* observations.

    :param codes: one ``(n, D_i)`` array per model (widths may differ, rows must match)
    :param kl: optional per-model ``(D_i,)`` mean KL of each latent; latents at or below
        ``kl_threshold`` are zeroed and left out (the paper's filter). Without it, every non-constant
        latent takes part. An entry may be ``None`` for a model without a KL (see ``activity_threshold``).
    :param correlation: ``"lasso"`` or ``"spearman"``
    :param activity_threshold: for models without a KL vector: keep latents whose variance over the
        observations exceeds this fraction of the model's largest latent variance (0 = keep every
        non-constant latent; module docstring).
    :return: ``{"udr": mean of model scores, "model_scores": [per model], "pairwise": (M, M) nested
        list, diagonal 0}``
    """
    if correlation not in CORRELATIONS:
        raise ValueError(f"udr: unknown correlation '{correlation}'; valid: {', '.join(CORRELATIONS)}")
    if len(codes) < 2:
        raise ValueError(f"udr: compares models with each other and needs at least 2, got {len(codes)}; "
                         "train the same model with several seeds")
    codes = [check_codes(c, what=f"codes of model {i}") for i, c in enumerate(codes)]
    if len({len(c) for c in codes}) > 1:
        raise ValueError(f"udr: every model must encode the same observations; got row counts {[len(c) for c in codes]}")
    if len(codes[0]) < 3:
        raise ValueError(f"udr: needs at least 3 observations, got {len(codes[0])}")
    if kl is not None and len(kl) != len(codes):
        raise ValueError(f"udr: got {len(kl)} KL vectors for {len(codes)} models")
    if not 0 <= activity_threshold < 1:
        raise ValueError(f"udr: activity_threshold must be in [0, 1) (a fraction of the largest latent variance), "
                         f"got {activity_threshold}")
    standard, masks = [], []
    for i, c in enumerate(codes):
        z, varying = _standardise(c)
        if kl is None or kl[i] is None:
            if activity_threshold > 0:
                var = c.var(axis=0)
                varying &= var > activity_threshold * var.max()
        else:
            kl_i = np.asarray(kl[i], np.float64).reshape(-1)
            if kl_i.shape != (c.shape[1],):
                raise ValueError(f"udr: kl of model {i} has {kl_i.size} entries for {c.shape[1]} latents")
            varying &= kl_i > kl_threshold
        standard.append(z * varying)
        masks.append(varying)
    m = len(codes)
    pairwise = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            if correlation == "lasso":
                sim = lasso_similarity(standard[i], standard[j], lasso_alpha, seed)
            else:
                sim = spearman_similarity(standard[i], standard[j])
            pairwise[i, j] = relative_strength(sim[masks[i]][:, masks[j]])
    model_scores = [float(np.median(np.delete(pairwise[:, i], i))) for i in range(m)]
    return {"udr": float(np.mean(model_scores)), "model_scores": model_scores, "pairwise": pairwise.tolist()}


def udr(data, representations: Sequence[Representation], rng: np.random.Generator, num_data_points: int = 1000,
        correlation: str = "lasso", kl: Sequence[np.ndarray] | None = None, kl_threshold: float = 0.01,
        lasso_alpha: float = 0.1, encode_batch_size: int = ENCODE_BATCH_SIZE,
        activity_threshold: float = 0.0) -> dict:
    """UDR of several representations (Duan et al. 2020), using observations only, never factors.

    :param data: observations ``(n, H, W, C)`` uint8 (all are used), or a data set with
        ``sample_factors`` and ``images`` from which ``num_data_points`` observations are drawn
    :param representations: one ``images → codes (n, D_i)`` function per model (≥ 2)
    :param rng: randomness for drawing observations and the Lasso seed
    :param num_data_points: observations drawn from a data set (1 000)
    :param correlation: ``"lasso"`` (default) or ``"spearman"``
    :param kl: optional per-model mean KL per latent, see :func:`udr_from_codes`
    :param encode_batch_size: images per representation call
    :param activity_threshold: see :func:`udr_from_codes`
    :return: see :func:`udr_from_codes`
    """
    if correlation not in CORRELATIONS:
        raise ValueError(f"udr: unknown correlation '{correlation}'; valid: {', '.join(CORRELATIONS)}")
    if isinstance(data, np.ndarray):
        images = data
    elif hasattr(data, "sample_factors") and hasattr(data, "images"):
        check_positive(num_data_points=num_data_points)
        images = data.images(data.sample_factors(num_data_points, rng))
    else:
        raise TypeError(f"udr: data must be an array of observations (n, H, W, C) or a dataset with "
                        f"sample_factors and images, got {type(data).__name__}")
    codes = [encode(rep, images, encode_batch_size) for rep in representations]
    return udr_from_codes(codes, kl, correlation, kl_threshold, lasso_alpha, seed_from(rng), activity_threshold)
