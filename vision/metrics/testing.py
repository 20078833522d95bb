"""A ground-truth data set whose "images" are the factor values themselves (disentanglement_lib's
``IdentityObservationsData``), for testing metrics without a renderer: with
:func:`identity_representation` the codes equal the factors, a perfectly disentangled representation.
"""

from __future__ import annotations

import numpy as np


class IdentityFactorData:
    """Factors ``(n, K)`` → "images" ``(n, 1, 1, K)`` float64 holding the factor indices.

    :param factor_sizes: number of values of each factor
    """

    def __init__(self, factor_sizes: tuple[int, ...] = (3, 6, 10, 8)):
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        self.factor_names = tuple(f"f{i}" for i in range(len(self.factor_sizes)))
        self.observation_shape = (1, 1, len(self.factor_sizes))

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1).astype(np.int64)

    def images(self, factors: np.ndarray) -> np.ndarray:
        return np.asarray(factors, dtype=np.float64)[:, None, None, :]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        factors = self.sample_factors(n, rng)
        return factors, self.images(factors)


def identity_representation(images: np.ndarray) -> np.ndarray:
    """``(n, 1, 1, K)`` → ``(n, K)``: the factor values as codes."""
    return np.asarray(images, dtype=np.float64).reshape(len(images), -1)
