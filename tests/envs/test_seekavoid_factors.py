"""seekavoid-factors: the factor grid rendered by the SeekAvoid env."""

import numpy as np
import pytest

import envs


@pytest.fixture(scope="module")
def data():
    return envs.factor_dataset("seekavoid-factors", obs_size=32)


BASE = np.array([0, 0, 0, 2, 1, 0, 1])


def test_registered_with_the_documented_grid(data):
    assert "seekavoid-factors" in envs.list_factor_datasets()
    assert data.factor_names == ("floor", "wall", "object", "lateral", "depth", "heading", "light")
    assert data.factor_sizes == (3, 3, 4, 5, 3, 3, 3) and data.observation_shape == (32, 32, 3)


def test_image_changes_when_and_only_when_a_factor_changes(data):
    rows = [BASE]
    for i, size in enumerate(data.factor_sizes):
        for v in range(size):
            if v != BASE[i]:
                r = BASE.copy()
                r[i] = v
                rows.append(r)
    rows.append(BASE)  # the same factors again, after rendering everything else
    imgs = data.images(np.stack(rows))
    assert imgs.shape == (len(rows), 32, 32, 3) and imgs.dtype == np.uint8
    assert np.array_equal(imgs[0], imgs[-1])
    for r, img in zip(rows[1:-1], imgs[1:-1]):
        assert not np.array_equal(img, imgs[0]), f"factor change {r - BASE} did not change the image"


@pytest.mark.parametrize("obj", range(4))
def test_heading_is_visible_for_every_object(data, obj):
    rows = np.stack([BASE] * 3)
    rows[:, 2] = obj
    rows[:, 4] = 0  # nearest depth
    rows[:, 5] = [0, 1, 2]
    imgs = data.images(rows)
    assert len({img.tobytes() for img in imgs}) == 3


def test_same_factors_give_same_bytes_in_a_fresh_dataset(data):
    rows = data.sample_factors(4, np.random.default_rng(0))
    other = envs.factor_dataset("seekavoid-factors", obs_size=32)
    assert np.array_equal(data.images(rows), other.images(rows))


def test_out_of_range_factors_name_the_factor(data):
    bad = BASE.copy()
    bad[2] = 4
    with pytest.raises(ValueError, match="object"):
        data.images(bad[None])
    with pytest.raises(ValueError, match="obs_size"):
        envs.factor_dataset("seekavoid-factors", obs_size=4)


def test_factor_values_are_physical(data):
    v = data.factor_values(BASE[None])
    assert v["object"][0] == "A-good" and v["lateral"][0] == 0.0 and v["floor"][0] == "default"


def test_a_grid_cache_written_before_seekavoid_became_a_package_is_reused_not_re_rendered(tmp_path, monkeypatch):
    # darla before issue #17 kept this dataset in envs/seekavoid_factors.py, and the cache's sidecar names the class
    import json

    from envs.factors import grid_cache_key, grid_dataset

    data = envs.factor_dataset("seekavoid-factors", obs_size=8)
    cache = tmp_path / "seekavoid-factors_8.npy"
    grid = np.random.default_rng(0).integers(0, 256, (data.num_combinations, 8, 8, 3), dtype=np.uint8)
    np.save(cache, grid)
    old_key = {**grid_cache_key(data), "class": "envs.seekavoid_factors.SeekAvoidFactors"}
    assert grid_cache_key(data)["class"] == "envs.seekavoid.factors.SeekAvoidFactors"
    (tmp_path / "seekavoid-factors_8.npy.json").write_text(json.dumps(old_key))

    def render(factors):
        raise AssertionError("the old cache was judged stale and re-rendered")

    monkeypatch.setattr(data, "images", render)
    np.testing.assert_array_equal(grid_dataset(data, cache_file=cache, progress=False).grid_images, grid)
