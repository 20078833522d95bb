"""Shared pieces of the disentanglement metrics: checking inputs, batched encoding, sampling
(factors, codes) pairs from a ground-truth data set, histogram discretisation and discrete mutual
information (as in disentanglement_lib's ``evaluation/metrics/utils.py``, re-implemented vectorised).

Conventions: ``codes`` are ``(n, num_codes)`` float64, ``factors`` are ``(n, num_factors)`` discrete
values (any dtype; only equality matters), one row per observation. A *dataset* is any object with
``factor_sizes``, ``sample_factors(n, rng) -> (n, K) int`` and ``images(factors) -> (n, H, W, C)``
(``envs.factors.FactorDataset`` is one; ``vision`` never imports ``envs``).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

Representation = Callable[[np.ndarray], np.ndarray]

#: Images handed to ``representation`` per call (the brief's 64–256).
ENCODE_BATCH_SIZE = 256
#: Images rendered at once while sampling (bounds memory: 4096 × 64×64×3 uint8 ≈ 50 MB).
RENDER_CHUNK = 4096


def check_dataset(dataset) -> None:
    """Raise ``TypeError`` naming what a duck-typed ground-truth data set lacks."""
    missing = [a for a in ("factor_sizes", "sample_factors", "images") if not hasattr(dataset, a)]
    if missing:
        raise TypeError(
            f"{type(dataset).__name__} is not a ground-truth factor dataset: missing {missing}; pass an "
            "envs.FactorDataset (e.g. envs.factor_dataset('dsprites')) or an object with factor_sizes, "
            "sample_factors(n, rng) and images(factors)"
        )


def factor_names(dataset) -> list[str]:
    """The data set's factor names, or ``factor_0 …`` when it has none."""
    names = list(getattr(dataset, "factor_names", ()) or ())
    return names if len(names) == len(dataset.factor_sizes) else [f"factor_{i}" for i in range(len(dataset.factor_sizes))]


def varying_factors(dataset, metric: str) -> np.ndarray:
    """Indices of factors with more than one value; a metric that fixes one factor at a time needs two."""
    sizes = np.asarray(dataset.factor_sizes)
    varying = np.flatnonzero(sizes > 1)
    if varying.size < 2:
        raise ValueError(
            f"{metric}: needs at least 2 factors with more than one value to tell which one was fixed, "
            f"got factor_sizes {tuple(int(s) for s in sizes)}; use a dataset with more varying factors"
        )
    return varying


def check_codes(codes, n: int | None = None, what: str = "codes") -> np.ndarray:
    """``codes`` as ``(n, D)`` float64; ``ValueError`` naming the problem for bad shapes or NaN/inf."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[1] < 1:
        raise ValueError(f"{what} must have shape (n, num_codes) with num_codes >= 1, got {codes.shape}")
    if n is not None and codes.shape[0] != n:
        raise ValueError(f"{what} has {codes.shape[0]} rows for {n} observations; return one code row per image")
    bad = ~np.isfinite(codes)
    if bad.any():
        dims = np.flatnonzero(bad.any(axis=0)).tolist()
        raise ValueError(
            f"{what} contain NaN or inf in {int(bad.any(axis=1).sum())} of {codes.shape[0]} rows (code dims "
            f"{dims[:10]}{' …' if len(dims) > 10 else ''}); metrics are undefined there — check the model "
            "(diverged training, a wrong checkpoint) before evaluating"
        )
    return codes


def check_factors(factors, n: int, what: str = "factors") -> np.ndarray:
    """``factors`` as ``(n, K)``; ``ValueError`` for a wrong shape or row count."""
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] < 1:
        raise ValueError(f"{what} must have shape (n, num_factors), got {factors.shape}")
    if factors.shape[0] != n:
        raise ValueError(f"{what} has {factors.shape[0]} rows but codes have {n}; pass one factor row per code row")
    if factors.dtype.kind == "f" and not np.isfinite(factors).all():
        raise ValueError(f"{what} contain NaN or inf; factors must be discrete values")
    return factors


def encode(representation: Representation, images: np.ndarray, batch_size: int = ENCODE_BATCH_SIZE) -> np.ndarray:
    """Call ``representation`` on ``images (n, H, W, C)`` in batches → checked codes ``(n, D)`` float64."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        out.append(check_codes(representation(batch), len(batch), what="representation output"))
    if len({c.shape[1] for c in out}) > 1:
        raise ValueError(f"representation returned codes of different widths {sorted({c.shape[1] for c in out})}")
    return np.concatenate(out) if out else np.zeros((0, 0))


def sample_codes(dataset, representation: Representation, num_points: int, rng: np.random.Generator,
                 batch_size: int = ENCODE_BATCH_SIZE, desc: str = "encoding") -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` i.i.d. factor draws and their codes → ``(factors (n, K) int, codes (n, D) float64)``."""
    check_positive(num_points=num_points, batch_size=batch_size)
    factors, codes = [], []
    chunk = max(batch_size, (RENDER_CHUNK // batch_size) * batch_size)
    for start in tqdm(range(0, num_points, chunk), desc=desc, leave=False, disable=None):
        f = np.asarray(dataset.sample_factors(min(chunk, num_points - start), rng))
        factors.append(f)
        codes.append(encode(representation, dataset.images(f), batch_size))
    return np.concatenate(factors), np.concatenate(codes)


def check_positive(**values: int) -> None:
    """``ValueError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def seed_from(rng: np.random.Generator) -> int:
    """An int seed for scikit-learn estimators, drawn from ``rng`` (so results follow the caller's seed)."""
    return int(rng.integers(0, 2**31 - 1))


def metric_rng(seed: int, metric: str) -> np.random.Generator:
    """A generator for one metric that depends on ``seed`` and the metric's name only, so a metric's value
    does not change with which other metrics run before it."""
    return np.random.default_rng([int(seed), zlib.crc32(metric.encode())])


def labels_of(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Discrete values ``(n,)`` → ``(labels (n,) int64 in 0..m-1, m distinct values)``."""
    uniques, labels = np.unique(values, return_inverse=True)
    return labels.reshape(-1).astype(np.int64), len(uniques)


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each code dimension into ``num_bins`` equal-width bins over its own range → ``(n, D)`` int64 in
    ``0..num_bins-1`` (disentanglement_lib's ``histogram_discretizer``; a constant dimension → all 0).

    Equal-width bins over the observed range make the result invariant to a positive rescaling or shift
    of any dimension.
    """
    check_positive(num_bins=num_bins)
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    bins = np.floor((codes - lo) / width * num_bins).astype(np.int64)
    return np.clip(bins, 0, num_bins - 1)


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mutual information in nats between every column of ``a (n, P)`` and every column of ``b (n, Q)``
    (discrete values) → ``(P, Q)`` float64; plug-in estimate from the joint histogram, like
    ``sklearn.metrics.mutual_info_score``."""
    n = a.shape[0]
    la = [labels_of(a[:, i]) for i in range(a.shape[1])]
    lb = [labels_of(b[:, j]) for j in range(b.shape[1])]
    mi = np.zeros((a.shape[1], b.shape[1]))
    for i, (x, nx) in enumerate(la):
        px = np.bincount(x, minlength=nx) / n
        for j, (y, ny) in enumerate(lb):
            joint = np.bincount(x * ny + y, minlength=nx * ny).reshape(nx, ny) / n
            py = np.bincount(y, minlength=ny) / n
            nz = joint > 0
            mi[i, j] = np.sum(joint[nz] * np.log(joint[nz] / np.outer(px, py)[nz]))
    return np.maximum(mi, 0.0)  # clip −1e-16 rounding


def discrete_entropy(values: np.ndarray) -> np.ndarray:
    """Entropy in nats of every column of ``values (n, K)`` → ``(K,)``."""
    out = np.zeros(values.shape[1])
    for j in range(values.shape[1]):
        y, m = labels_of(values[:, j])
        p = np.bincount(y, minlength=m) / len(y)
        out[j] = -np.sum(p[p > 0] * np.log(p[p > 0]))
    return out
