"""Ground-truth factor datasets: one small interface, as in disentanglement_lib.

A dataset has discrete factors (each with ``factor_sizes[i]`` values), can sample factor values and
renders the images for given factor values. Metrics and factor-aware models (DC-IGN) take one of these
and know nothing else about it.
"""

from __future__ import annotations

import os
from pathlib import Path
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

    @property
    def num_combinations(self) -> int:
        """How many distinct factor combinations (= images) the dataset has."""
        return int(np.prod([int(s) for s in self.factor_sizes]))

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


def all_factor_combinations(factor_sizes: tuple[int, ...] | list[int]) -> np.ndarray:
    """Every factor combination in C (row-major) order → ``(prod(sizes), K)`` int64, so row ``i`` is
    ``np.unravel_index(i, factor_sizes)``."""
    grids = np.indices(tuple(int(s) for s in factor_sizes)).reshape(len(factor_sizes), -1)
    return grids.T.astype(np.int64)


class GridFactorDataset(FactorDataset):
    """A factor dataset whose whole grid of images is in memory, so ``images(factors)`` is a lookup.

    The metrics draw ~10⁵ images; for a small rendered grid (``seekavoid-factors``: 4,860 images at
    ~1.35 ms each) rendering the grid once and looking images up is exact and ~30× faster than rendering
    every draw. Build one with :func:`grid_dataset`.

    :param dataset: the factor dataset the grid was rendered from
    :param grid_images: ``(num_combinations, H, W, C)`` uint8; row ``i`` = factors ``unravel_index(i)``
    """

    def __init__(self, dataset: FactorDataset, grid_images: np.ndarray):
        sizes = tuple(int(s) for s in dataset.factor_sizes)
        if len(grid_images) != int(np.prod(sizes)):
            raise ValueError(f"{dataset.name}: grid has {len(grid_images)} images for factor sizes {sizes} "
                             f"({int(np.prod(sizes))} combinations); delete the cached .npy to re-render it")
        self.dataset = dataset
        self.name = dataset.name
        self.factor_sizes = sizes
        self.factor_names = tuple(dataset.factor_names)
        self.observation_shape = tuple(grid_images.shape[1:])
        self.grid_images = grid_images

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.dataset.sample_factors(n, rng)

    def images(self, factors: np.ndarray) -> np.ndarray:
        f = self.validate_factors(factors)
        return self.grid_images[np.ravel_multi_index(tuple(f.T), self.factor_sizes)]


def grid_dataset(dataset: FactorDataset, cache_file: str | Path | None = None, chunk: int = 500,
                 progress: bool = True) -> GridFactorDataset:
    """``dataset`` with every combination rendered once (into ``cache_file``, an ``.npy`` written
    atomically, when given; a cache of the wrong shape is re-rendered)."""
    if isinstance(dataset, GridFactorDataset):
        return dataset
    combos = all_factor_combinations(dataset.factor_sizes)
    expected = (len(combos), *dataset.observation_shape)
    cache = Path(cache_file) if cache_file else None
    if cache is not None and cache.exists():
        grid = np.load(cache)
        if grid.shape == expected and grid.dtype == np.uint8:
            return GridFactorDataset(dataset, grid)
    from tqdm.auto import tqdm

    grid = np.empty(expected, np.uint8)
    for i in tqdm(range(0, len(combos), chunk), desc=f"render {dataset.name} grid", unit="chunk",
                  disable=None if progress else True):
        grid[i:i + chunk] = dataset.images(combos[i:i + chunk])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npy")
        np.save(tmp, grid)
        os.replace(tmp, cache)
    return GridFactorDataset(dataset, grid)


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
