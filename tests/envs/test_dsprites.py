"""Procedural dSprites: shapes, determinism and that each factor moves the image the way it says."""

import numpy as np
import pytest

import envs
from envs.dsprites import DSprites

SHAPE, SCALE, ORIENT, POS_X, POS_Y = range(5)


@pytest.fixture(scope="module")
def data() -> DSprites:
    return envs.factor_dataset("dsprites")


def _one(data, shape=0, scale=5, orientation=0, pos_x=16, pos_y=16) -> np.ndarray:
    return data.images(np.array([[shape, scale, orientation, pos_x, pos_y]]))[0, :, :, 0]


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(image)
    return float(cols.mean()), float(rows.mean())


def test_registered_with_original_factor_sizes_and_binary_64x64_images(data):
    assert data.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert data.factor_sizes == (3, 6, 40, 32, 32)
    assert data.observation_shape == (64, 64, 1)
    factors, images = data.sample(50, np.random.default_rng(0))
    assert factors.shape == (50, 5) and images.shape == (50, 64, 64, 1) and images.dtype == np.uint8
    assert set(np.unique(images)) == {0, 255}
    assert (images.reshape(50, -1).max(axis=1) == 255).all(), "every image shows a sprite"


def test_same_factors_give_same_bytes_in_any_batch(data):
    factors = data.sample_factors(300, np.random.default_rng(1))  # > one internal chunk
    batch = data.images(factors)
    assert np.array_equal(batch, data.images(factors))
    assert np.array_equal(batch[7], data.images(factors[7:8])[0])
    assert np.array_equal(batch[290], data.images(factors[290:291])[0])


@pytest.mark.parametrize("factor", range(5))
def test_changing_any_single_factor_changes_the_image(data, factor):
    base = np.array([[2, 3, 5, 10, 20]])
    other = base.copy()
    other[0, factor] = (base[0, factor] + 1) % data.factor_sizes[factor]
    assert not np.array_equal(data.images(base), data.images(other))


def test_centre_of_mass_moves_right_with_pos_x_and_down_with_pos_y(data):
    xs = [_centre_of_mass(_one(data, shape=1, pos_x=i))[0] for i in (0, 8, 16, 24, 31)]
    ys = [_centre_of_mass(_one(data, shape=1, pos_y=i))[1] for i in (0, 8, 16, 24, 31)]
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    assert xs[-1] - xs[0] > 30  # the sprite crosses most of the frame
    # pos_x does not move the sprite vertically
    assert abs(_centre_of_mass(_one(data, pos_x=0))[1] - _centre_of_mass(_one(data, pos_x=31))[1]) < 0.5


@pytest.mark.parametrize("shape", range(3))
def test_area_grows_with_scale(data, shape):
    areas = [np.count_nonzero(_one(data, shape=shape, scale=s)) for s in range(6)]
    assert np.all(np.diff(areas) > 0)
    assert 3.0 < areas[-1] / areas[0] < 5.0  # scale 0.5 → 1.0: area ×4 up to pixelation


def test_orientation_rotates_the_square_and_full_turn_returns_to_start(data):
    upright = _one(data, orientation=0)
    diamond = _one(data, orientation=5)  # 5/39·2π ≈ 46°
    assert not np.array_equal(upright, diamond)
    assert np.array_equal(upright, _one(data, orientation=39))  # 2π looks like 0, as in the original
    # a diamond's bounding box is wider than the upright square's
    assert np.ptp(np.nonzero(diamond)[1]) > np.ptp(np.nonzero(upright)[1]) + 3


def test_shapes_differ_at_the_same_pose(data):
    images = [_one(data, shape=s) for s in range(3)]
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])


def test_sprites_stay_inside_the_frame_at_full_scale(data):
    for pos in (0, 31):
        image = _one(data, shape=1, orientation=10, pos_x=pos, pos_y=pos)  # upright ellipse: long axis vertical
        assert image[0].max() == 0 and image[-1].max() == 0 and image[:, 0].max() == 0 and image[:, -1].max() == 0


def test_small_image_size_scales_geometry(data):
    small = envs.factor_dataset("dsprites", image_size=32)
    assert small.observation_shape == (32, 32, 1)
    big_area = np.count_nonzero(_one(data))
    small_area = np.count_nonzero(_one(small))
    assert 0.15 < small_area / big_area < 0.35


def test_bad_factors_and_sizes_name_the_problem(data):
    with pytest.raises(ValueError, match="orientation"):
        data.images(np.array([[0, 0, 40, 0, 0]]))
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        data.images(np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match="image_size"):
        DSprites(image_size=8)
