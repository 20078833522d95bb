"""Ground-truth factor datasets: one small interface, as in disentanglement_lib.

A dataset has discrete factors (each with ``factor_sizes[i]`` values), can sample factor values and
renders the images for given factor values. Metrics and factor-aware models (DC-IGN) take one of these
and know nothing else about it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

_FACTOR_DATASETS: dict[str, Callable[..., "FactorDataset"]] = {}


class FactorDataset:
    """Base class. Subclasses set ``name``, ``factor_names``, ``factor_sizes``, ``observation_shape``
    and implement :meth:`images`.
    """

    name: str = ""
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    #: ``(height, width, channels)`` of one image.
    observation_shape: tuple[int, int, int] = (64, 64, 3)

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, num_factors)`` int64, each factor uniform over its values."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1).astype(np.int64)

    def images(self, factors: np.ndarray) -> np.ndarray:
        """Images for factor values ``(n, num_factors)`` int → ``(n, H, W, C)`` uint8."""
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(factors, images)`` for ``n`` uniformly drawn factor combinations."""
        factors = self.sample_factors(n, rng)
        return factors, self.images(factors)

    def validate_factors(self, factors: np.ndarray) -> np.ndarray:
        """Check shape and ranges of ``factors``; raise a ``ValueError`` naming the factor."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(
                f"{self.name}: factors must have shape (n, {self.num_factors}) for "
                f"{list(self.factor_names)}, got {factors.shape}"
            )
        for i, (fname, size) in enumerate(zip(self.factor_names, self.factor_sizes)):
            col = factors[:, i]
            if col.min(initial=0) < 0 or col.max(initial=0) >= size:
                raise ValueError(f"{self.name}: factor '{fname}' takes values 0..{size - 1}, got {col.min()}..{col.max()}")
        return factors.astype(np.int64)


def register_factor_dataset(name: str) -> Callable:
    """Decorator registering a :class:`FactorDataset` factory (class or function) under ``name``."""

    def deco(factory: Callable) -> Callable:
        _FACTOR_DATASETS[name] = factory
        return factory

    return deco


def list_factor_datasets() -> list[str]:
    return sorted(_FACTOR_DATASETS)


def factor_dataset(name: str, **kwargs) -> FactorDataset:
    """Build the factor dataset ``name`` (e.g. ``"dsprites"``, ``"seekavoid-factors"``)."""
    try:
        factory = _FACTOR_DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown factor dataset '{name}'; valid: {', '.join(list_factor_datasets())}") from None
    return factory(**kwargs)
