"""The seeded shift wrappers of Distracting Control / DMC-GB, the crop and resize wrappers, the registry."""

import cv2
import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

import envs  # noqa: F401
from envs.wrappers import (
    WRAPPERS,
    Background,
    ColorJitter,
    Crop,
    FrameResize,
    RandomConv,
    Shift,
    apply_wrapper,
    check_wrapper_spec,
)


class _Frames(gymnasium.Env):
    """Frame ``i`` of an episode is ``base`` (fixed per env) — a still scene, so only the wrapper changes pixels."""

    def __init__(self, shape=(16, 20, 3), seed=0):
        self.base = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)
        self.action_space = spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.base.copy(), {}

    def step(self, action):
        return self.base.copy(), 0.0, False, False, {}


def _episodes(env, seeds):
    return [env.reset(seed=s)[0] for s in seeds]


SEEDED = [
    (RandomConv, {}),
    (ColorJitter, {}),
    (Background, {"noise": True, "alpha": 0.5, "per_episode": True}),
    (Shift, {"max_shift": 3}),
]


@pytest.mark.parametrize("cls, kw", SEEDED, ids=[c.__name__ for c, _ in SEEDED])
def test_seeded_shift_is_a_function_of_the_seeds_and_changes_per_episode(cls, kw):
    a, b = cls(_Frames(), seed=1, **kw), cls(_Frames(), seed=1, **kw)
    fa, fb = _episodes(a, [5, 6, 5]), _episodes(b, [5, 6, 5])
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))  # same seeds → same frames
    assert np.array_equal(fa[0], fa[2])  # reset(seed=5) again → the same draw
    assert not np.array_equal(fa[0], fa[1])  # another episode seed → another draw
    other = cls(_Frames(), seed=2, **kw)
    assert not np.array_equal(_episodes(other, [5])[0], fa[0])  # the wrapper's seed matters
    assert not np.array_equal(fa[0], a.env.base)  # it shifts the frame
    assert fa[0].shape == a.env.base.shape and fa[0].dtype == np.uint8


@pytest.mark.parametrize("cls, kw", SEEDED, ids=[c.__name__ for c, _ in SEEDED])
def test_fixed_shift_draws_once_whatever_the_episode(cls, kw):
    env = cls(_Frames(), seed=1, **{**kw, "per_episode": False})
    f = _episodes(env, [5, 6, 7])
    assert np.array_equal(f[0], f[1]) and np.array_equal(f[1], f[2])
    assert np.array_equal(env.step(0)[0], f[0])  # steps keep the episode's draw


def test_random_conv_mixes_colours_but_keeps_the_layout():
    base = np.zeros((16, 16, 3), dtype=np.uint8)
    base[4:12, 4:12] = (250, 0, 0)  # a red square on black
    env = RandomConv(_Frames(), kernel_size=1, seed=3, per_episode=False)
    out = env.observation(base)
    k = env.kernel[:, 0, 0, 0]  # a 1×1 kernel: out channel o = k[o] * red
    assert np.array_equal(out[0, 0], [0, 0, 0])  # black stays black (no bias)
    np.testing.assert_allclose(out[8, 8], np.clip(k * 250 / 255 * 255 + 0.5, 0, 255).astype(np.uint8), atol=1)


def test_colour_jitter_without_ranges_is_the_identity_and_with_hue_rotates():
    base = _Frames().base
    same = ColorJitter(_Frames(), brightness=0, contrast=0, saturation=0, hue=0, seed=0)
    assert np.abs(same.observation(base).astype(int) - base).max() <= 1
    hue = ColorJitter(_Frames(), brightness=0, contrast=0, saturation=0, hue=0.5, seed=0)
    hue.reset(seed=0)
    hsv_in = cv2.cvtColor(base, cv2.COLOR_RGB2HSV)[..., 0].astype(int)
    hsv_out = cv2.cvtColor(hue.observation(base), cv2.COLOR_RGB2HSV)[..., 0].astype(int)
    expected = int(round(hue.factors[3] * 180)) % 180
    assert expected != 0
    diff = (hsv_out - hsv_in) % 180
    assert np.median(diff) == expected


def test_background_replaces_the_key_colour_only(tmp_path):
    base = np.zeros((8, 8, 3), dtype=np.uint8)
    base[:4] = (0, 255, 0)  # green screen on top, black below
    env = _Frames(shape=(8, 8, 3))
    env.base = base
    wrapped = Background(env, color=(10, 20, 30), key_color=(0, 250, 0), tolerance=10)
    out = wrapped.reset(seed=0)[0]
    assert (out[:4] == (10, 20, 30)).all() and (out[4:] == 0).all()
    img = np.full((4, 4, 3), (200, 100, 50), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "bg.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    blended = Background(env, image=str(tmp_path / "bg.png"), alpha=1.0).reset(seed=0)[0]
    assert (blended == (200, 100, 50)).all()  # alpha 1: only the (resized) image


def test_shift_translates_with_replicated_edges():
    env = Shift(_Frames(), dx=2, dy=0)
    base = env.env.base
    out = env.reset(seed=0)[0]
    assert np.array_equal(out[:, 2:], base[:, :-2])
    assert np.array_equal(out[:, 0], base[:, 0])


@pytest.mark.parametrize("shape, channels", [((60, 80, 3), 3), ((60, 80, 3), 1), ((60, 80), 3), ((60, 80), 1),
                                             ((60, 80, 1), 3), ((30, 40, 4), 3)])
def test_resize_turns_any_frame_into_the_square_vision_input(shape, channels):
    env = FrameResize(_Frames(shape=shape), size=32, channels=channels)
    out = env.reset(seed=0)[0]
    assert out.shape == (32, 32, channels) == env.observation_space.shape and out.dtype == np.uint8
    src = env.env.base if len(shape) == 2 else env.env.base[..., :3]
    if src.ndim == 3 and src.shape[2] == 1:
        src = src[..., 0]
    expected = cv2.resize(np.ascontiguousarray(src), (32, 32), interpolation=cv2.INTER_AREA)
    if expected.ndim == 3 and channels == 1:
        expected = cv2.cvtColor(expected, cv2.COLOR_RGB2GRAY)
    if expected.ndim == 2:
        expected = np.repeat(expected[..., None], channels, axis=2)
    assert np.array_equal(out, expected)


def test_resize_crop_mode_keeps_the_centre_square_unstretched():
    env = FrameResize(_Frames(shape=(20, 40, 3)), size=20, mode="crop")
    assert np.array_equal(env.reset(seed=0)[0], env.env.base[:, 10:30])


def test_resize_makes_miniworld_oneroom_frames_fit():
    import miniworld  # noqa: F401

    env = FrameResize(gymnasium.make("MiniWorld-OneRoom-v0"), size=64)
    try:
        assert env.env.observation_space.shape == (60, 80, 3)
        assert env.reset(seed=0)[0].shape == (64, 64, 3)
    finally:
        env.close()


def test_crop_cuts_the_box():
    env = Crop(_Frames(), top=2, left=3, height=5, width=6)
    assert np.array_equal(env.reset(seed=0)[0], env.env.base[2:7, 3:9])
    assert env.observation_space.shape == (5, 6, 3)


@pytest.mark.parametrize("make, message", [
    (lambda e: RandomConv(e, kernel_size=4), "kernel_size must be odd"),
    (lambda e: RandomConv(e, seed=-1), "seed must be an int"),
    (lambda e: ColorJitter(e, hue=0.7), "hue must be a number in [0, 0.5]"),
    (lambda e: Background(e, color=(1, 2, 3)), "exactly one of key_color"),
    (lambda e: Background(e, key_color=(0, 0, 0)), "exactly one of image, color or noise"),
    (lambda e: Background(e, image="/nope.png", alpha=0.5), "is not a readable image file"),
    (lambda e: Background(e, color=(1, 2, 300), alpha=0.5), "three numbers in [0, 255]"),
    (lambda e: Shift(e, max_shift=2, dx=1), "not both"),
    (lambda e: Shift(e, max_shift=100), "max_shift must be an int in"),
    (lambda e: Crop(e, top=0, left=0, height=30, width=4), "height must be an int in [1, 16]"),
    (lambda e: FrameResize(e, size=4), "size must be an int in [8, 1024]"),
    (lambda e: FrameResize(e, channels=2), "channels must be 1 (grey) or 3"),
    (lambda e: FrameResize(e, mode="pad"), "mode must be 'resize' or 'crop'"),
])
def test_bad_parameters_raise_naming_them(make, message):
    with pytest.raises(ValueError, match=None) as info:
        make(_Frames())
    assert message in str(info.value)


def test_resize_refuses_non_image_observations_with_the_fix():
    env = _Frames()
    env.observation_space = spaces.Box(0.0, 1.0, (4,), np.float32)
    with pytest.raises(ValueError, match="AddRenderObservation"):
        FrameResize(env)


def test_registry_builds_wrappers_from_yaml_mappings_and_names_bad_keys():
    env = apply_wrapper(_Frames(), {"name": "hue_shift", "degrees": 30})
    assert type(env).__name__ == "HueShift" and env.degrees == 30
    tint = apply_wrapper(_Frames(), {"name": "color_tint", "rgb": [1.0, 0.5, 0.5]})
    assert tint.rgb == (1.0, 0.5, 0.5)
    assert {"hue_shift", "random_conv", "color_jitter", "background", "shift", "crop", "resize"} <= set(WRAPPERS)
    with pytest.raises(ValueError, match="unknown wrapper 'hue'; valid: hue_shift"):
        check_wrapper_spec({"name": "hue"})
    with pytest.raises(ValueError, match=r"wrapper 'hue_shift': unknown parameter\(s\) \['degree'\]; valid: degrees"):
        check_wrapper_spec({"name": "hue_shift", "degree": 3})
    with pytest.raises(ValueError, match=r"wrapper 'brightness': missing parameter\(s\) \['factor'\]"):
        check_wrapper_spec({"name": "brightness"})
    with pytest.raises(ValueError, match="wrapper 'brightness': Brightness: factor must be a number in"):
        apply_wrapper(_Frames(), {"name": "brightness", "factor": 9})


class _Counter(gymnasium.Env):
    """A frame whose pixels are the steps taken; reward 1 per step; terminates after ``end`` steps."""

    def __init__(self, end=100):
        self.end, self.t = end, 0
        self.observation_space = spaces.Box(0, 255, (4, 4, 3), np.uint8)
        self.action_space = spaces.Discrete(2)

    def _frame(self):
        return np.full((4, 4, 3), self.t, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {"t": 0}

    def step(self, action):
        self.t += 1
        return self._frame(), 1.0, self.t >= self.end, False, {"t": self.t}


def test_action_repeat_sums_rewards_returns_the_last_step_and_stops_at_the_episode_end():
    env = apply_wrapper(_Counter(end=10), {"name": "action_repeat", "repeat": 4})
    assert type(env).__name__ == "ActionRepeat" and "action_repeat" in WRAPPERS
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(1)
    assert obs[0, 0, 0] == 4 and reward == 4.0 and not terminated and info["t"] == 4
    env.step(1)
    obs, reward, terminated, _, _ = env.step(1)  # steps 9 and 10; the episode ends inside the repeat
    assert obs[0, 0, 0] == 10 and reward == 2.0 and terminated
    assert env.observation_space == env.env.observation_space and env.action_space == env.env.action_space
    with pytest.raises(ValueError, match=r"ActionRepeat: repeat must be an int in \[1, 1000\]"):
        apply_wrapper(_Counter(), {"name": "action_repeat", "repeat": 0})


def test_a_domain_carries_max_episode_steps_and_action_repeat_counts_env_steps():
    from envs.spec import DomainSpec

    gymnasium.register("darla-test/Counter-v0", entry_point=_Counter)
    try:
        spec = DomainSpec.from_dict({"name": "short", "kwargs": {"max_episode_steps": 10},
                                     "wrappers": [{"name": "action_repeat", "repeat": 4}]}, "darla-test/Counter-v0")
        env = spec.make_env()
        env.reset(seed=0)
        steps, done = [], False
        while not done:
            obs, reward, terminated, truncated, info = env.step(0)
            steps.append(int(obs[0, 0, 0]))
            done = terminated or truncated
        # gymnasium.make's TimeLimit (max_episode_steps) counts env steps: 10 env steps = 3 decisions
        assert steps == [4, 8, 10] and truncated and not terminated and info["domain"] == "short"
    finally:
        del gymnasium.registry["darla-test/Counter-v0"]
