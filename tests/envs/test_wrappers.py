"""Domain-shift observation wrappers, on a built-in miniworld env and on hand-made frames."""

import cv2
import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

import envs  # noqa: F401  (headless miniworld)
from envs.wrappers import Brightness, ColorTint, HueShift, TextureNoise


class _Frames(gymnasium.Env):
    """A tiny env whose observation is always ``frame``."""

    def __init__(self, frame: np.ndarray):
        self.frame = frame
        self.observation_space = spaces.Box(0, 255, frame.shape, np.uint8)
        self.action_space = spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.frame.copy(), {}

    def step(self, action):
        return self.frame.copy(), 0.0, False, False, {}


FRAME = np.array([[[200, 40, 40], [40, 200, 40]], [[40, 40, 200], [100, 100, 100]]], dtype=np.uint8)


@pytest.fixture(scope="module")
def oneroom():
    import miniworld  # noqa: F401  (registers the MiniWorld-* envs)

    e = gymnasium.make("MiniWorld-OneRoom-v0", obs_width=32, obs_height=32)
    yield e
    e.close()


def test_hue_shift_by_120_degrees_maps_red_to_green_and_keeps_grey():
    obs, _ = HueShift(_Frames(FRAME), 120).reset()
    assert obs[0, 0].argmax() == 1 and obs[0, 1].argmax() == 2 and obs[1, 0].argmax() == 0
    assert np.array_equal(obs[1, 1], FRAME[1, 1])


def test_hue_shift_of_360_degrees_is_identity():
    obs, _ = HueShift(_Frames(FRAME), 360).reset()
    assert np.array_equal(obs, FRAME)


def test_color_tint_scales_each_channel_and_clips():
    obs, _ = ColorTint(_Frames(FRAME), (1.5, 0.5, 1.0)).reset()
    assert obs[0, 0].tolist() == [255, 20, 40] and obs[1, 1].tolist() == [150, 50, 100]


def test_brightness_scales_all_channels():
    obs, _ = Brightness(_Frames(FRAME), 0.5).reset()
    assert obs[1, 1].tolist() == [50, 50, 50] and obs.dtype == np.uint8


def test_texture_noise_is_a_fixed_pattern_unless_per_frame():
    env = TextureNoise(_Frames(np.full((8, 8, 3), 128, np.uint8)), 20, seed=1)
    a, _ = env.reset()
    b, *_ = env.step(0)
    assert np.array_equal(a, b) and 0 < np.abs(a.astype(int) - 128).max() <= 20
    other = TextureNoise(_Frames(np.full((8, 8, 3), 128, np.uint8)), 20, seed=2).reset()[0]
    assert not np.array_equal(a, other)
    per = TextureNoise(_Frames(np.full((8, 8, 3), 128, np.uint8)), 20, seed=1, per_frame=True)
    c, _ = per.reset(seed=2)
    d, *_ = per.step(0)
    assert not np.array_equal(c, d)
    assert np.array_equal(per.reset(seed=2)[0], c)  # re-seeded: reproducible


def test_wrappers_on_builtin_miniworld_env(oneroom):
    raw, _ = oneroom.reset(seed=2)
    expected = {
        HueShift: cv2.cvtColor(raw, cv2.COLOR_RGB2HSV),
        Brightness: np.clip(raw * 0.5 + 0.5, 0, 255).astype(np.uint8),
    }
    for wrapper, kwargs in ((HueShift, {"degrees": 90}), (ColorTint, {"rgb": (1.0, 0.8, 0.6)}),
                            (Brightness, {"factor": 0.5}), (TextureNoise, {"amplitude": 10})):
        env = wrapper(oneroom, **kwargs)
        obs, _ = env.reset(seed=2)
        assert env.observation_space == oneroom.observation_space and env.observation_space.contains(obs)
        assert not np.array_equal(obs, raw)
        obs2, *_ = env.step(0)
        assert obs2.shape == raw.shape
    assert np.array_equal(Brightness(oneroom, 0.5).reset(seed=2)[0], expected[Brightness])
    hsv = cv2.cvtColor(HueShift(oneroom, 90).reset(seed=2)[0], cv2.COLOR_RGB2HSV)
    sat = expected[HueShift][..., 1] > 60  # hue is well defined only for saturated pixels (the red box)
    assert sat.sum() > 10
    diff = (hsv[..., 0].astype(int) - expected[HueShift][..., 0]) % 180
    assert np.median(diff[sat]) == 45


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda e: HueShift(e, float("nan")), "degrees"),
        (lambda e: ColorTint(e, (1.0, 0.5)), "rgb"),
        (lambda e: ColorTint(e, (1.0, -0.5, 1.0)), "rgb"),
        (lambda e: Brightness(e, -1), "factor"),
        (lambda e: TextureNoise(e, 300), "amplitude"),
        (lambda e: TextureNoise(e, 10, seed=-1), "seed"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make(_Frames(FRAME))


def test_non_image_observation_space_is_rejected():
    env = gymnasium.make("CartPole-v1")
    with pytest.raises(ValueError, match=r"\(H, W, 3\) and dtype uint8"):
        Brightness(env, 0.5)
    gray = _Frames(np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        HueShift(gray, 10)
