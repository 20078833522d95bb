"""The factor-dataset base helpers: the combination grid and the in-memory grid dataset."""

import numpy as np
import pytest

from envs.factors import FactorDataset, GridFactorDataset, all_factor_combinations, grid_dataset


class TinyFactors(FactorDataset):
    """2 × 3 factors; the image's two pixels hold the factor values (so every combination differs)."""

    name = "tiny"
    factor_names = ("a", "b")
    factor_sizes = (2, 3)
    observation_shape = (1, 2, 1)

    def __init__(self):
        self.rendered = 0

    def images(self, factors):
        f = self.validate_factors(factors)
        self.rendered += len(f)
        return (f[:, None, :, None] * 40 + 7).astype(np.uint8)


def test_all_factor_combinations_row_i_is_unravel_index():
    combos = all_factor_combinations((2, 3, 4))
    assert combos.shape == (24, 3) and TinyFactors().num_combinations == 6
    for i in (0, 5, 23):
        assert tuple(combos[i]) == np.unravel_index(i, (2, 3, 4))


def test_grid_dataset_looks_up_the_images_the_dataset_renders_and_renders_each_once():
    data = TinyFactors()
    grid = grid_dataset(data, progress=False)
    assert data.rendered == 6 and isinstance(grid, GridFactorDataset) and grid_dataset(grid) is grid
    factors = data.sample_factors(50, np.random.default_rng(0))
    np.testing.assert_array_equal(grid.images(factors), TinyFactors().images(factors))
    assert data.rendered == 6  # lookups render nothing
    with pytest.raises(ValueError, match="factor 'b' takes values 0..2"):
        grid.images(np.array([[0, 3]]))
    with pytest.raises(ValueError, match="delete the cached"):
        GridFactorDataset(data, grid.grid_images[:-1])


def test_grid_cache_is_written_once_reused_and_re_rendered_when_stale(tmp_path):
    cache = tmp_path / "sub" / "tiny.npy"
    first = grid_dataset(TinyFactors(), cache_file=cache, progress=False)
    assert cache.exists() and not list(cache.parent.glob("*.tmp*"))
    again = TinyFactors()
    np.testing.assert_array_equal(grid_dataset(again, cache_file=cache).grid_images, first.grid_images)
    assert again.rendered == 0
    np.save(cache, np.zeros((5, 1, 2, 1), np.uint8))  # wrong shape: re-rendered
    stale = TinyFactors()
    np.testing.assert_array_equal(grid_dataset(stale, cache_file=cache, progress=False).grid_images, first.grid_images)
    assert stale.rendered == 6
