"""Ground-truth factor datasets: one small interface, as in disentanglement_lib.

A dataset has discrete factors (each with ``factor_sizes[i]`` values), can sample factor values and
renders the images for given factor values. Metrics and factor-aware models (DC-IGN) take one of these
and know nothing else about it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from atomicio import atomic_open, atomic_write_text
from envs.moved import current_name

log = logging.getLogger(__name__)

_FACTOR_DATASETS: dict[str, Callable[..., FactorDataset]] = {}


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


#: version of the grid cache's layout (the ``.npy`` + its ``.json`` sidecar); bump it to invalidate every cache
GRID_CACHE_VERSION = 1


def grid_cache_key(dataset: FactorDataset) -> dict:
    """What a cached grid of ``dataset`` was built from, written beside it as JSON: a cache whose key differs
    (another dataset, size, parameter or cache version) is stale and re-rendered.

    The parameters are the dataset's public JSON-scalar attributes (e.g. ``obs_size``), or what its
    ``cache_params()`` returns when it has one.
    """
    params = dataset.cache_params() if hasattr(dataset, "cache_params") else {
        k: v for k, v in sorted(vars(dataset).items())
        if not k.startswith("_") and isinstance(v, (bool, int, float, str, type(None)))}
    return {"version": GRID_CACHE_VERSION, "dataset": dataset.name,
            "class": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
            "factor_names": list(dataset.factor_names), "factor_sizes": [int(s) for s in dataset.factor_sizes],
            "observation_shape": [int(s) for s in dataset.observation_shape], "params": params}


def _sidecar(cache: Path) -> Path:
    return cache.with_name(cache.name + ".json")


def _read_grid_cache(cache: Path, key: dict, expected: tuple[int, ...]) -> np.ndarray | None:
    """The cached grid if it is intact and was built from ``key``; else ``None`` (with a warning saying why)."""
    if not cache.exists():
        return None
    why = None
    try:
        recorded = json.loads(_sidecar(cache).read_text())
    except (OSError, ValueError):
        recorded, why = None, f"its key file {_sidecar(cache).name} is missing or damaged"
    if isinstance(recorded, dict) and isinstance(recorded.get("class"), str):
        recorded = {**recorded, "class": current_name(recorded["class"])}  # a cache written before a module moved
    if why is None and recorded != key:
        why = "it was built from another dataset, size or cache version"
    if why is None:
        try:
            grid = np.load(cache, allow_pickle=False)  # never unpickle: an object array is refused
        except (OSError, ValueError, EOFError) as e:
            grid, why = None, f"it cannot be read ({_first_line(e)})"
        if grid is not None and (grid.shape != expected or grid.dtype != np.uint8):
            why = f"it holds {grid.shape} {grid.dtype}, not {expected} uint8"
        if why is None:
            return grid
    log.warning("grid cache %s is stale or damaged (%s); rendering it again", cache, why)
    return None


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def grid_dataset(dataset: FactorDataset, cache_file: str | Path | None = None, chunk: int = 500,
                 progress: bool = True) -> GridFactorDataset:
    """``dataset`` with every combination rendered once.

    :param dataset: the factor dataset to render
    :param cache_file: an ``.npy`` to keep the grid in (written atomically, with a ``.npy.json`` sidecar
        recording :func:`grid_cache_key`); a cache that is damaged, of the wrong shape, or was built from
        another dataset or size is re-rendered, with a warning
    :param chunk: combinations rendered per call of ``dataset.images``
    :param progress: show a tqdm bar while rendering
    """
    if isinstance(dataset, GridFactorDataset):
        return dataset
    combos = all_factor_combinations(dataset.factor_sizes)
    expected = (len(combos), *dataset.observation_shape)
    cache = Path(cache_file) if cache_file else None
    key = grid_cache_key(dataset)
    if cache is not None:
        grid = _read_grid_cache(cache, key, expected)
        if grid is not None:
            return GridFactorDataset(dataset, grid)
    from tqdm.auto import tqdm

    grid = np.empty(expected, np.uint8)
    for i in tqdm(range(0, len(combos), chunk), desc=f"render {dataset.name} grid", unit="chunk",
                  disable=None if progress else True):
        grid[i:i + chunk] = dataset.images(combos[i:i + chunk])
    if cache is not None:
        # the grid first, its key last: a kill in between leaves a grid without its key, which is re-rendered
        _sidecar(cache).unlink(missing_ok=True)
        with atomic_open(cache) as f:
            np.save(f, grid, allow_pickle=False)
        atomic_write_text(_sidecar(cache), json.dumps(key, indent=1))
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
