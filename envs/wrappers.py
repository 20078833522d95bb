"""Generic domain-shift observation wrappers for any env with ``(H, W, 3) uint8`` image observations.

Each wrapper does one thing to the pixels (as in Gymnasium's own observation wrappers), validates its
arguments and the observation space, and keeps the observation space unchanged, so wrapped target
domains plug into the same policies: ``HueShift(env, 90)``, ``ColorTint(env, (1.0, 0.8, 0.6))``,
``Brightness(env, 0.6)``, ``TextureNoise(env, 20, seed=0)``, and the shifts of the Distracting Control
Suite / DMC-GB benchmarks: ``RandomConv`` (Lee et al. 2020, "Network randomization"), ``ColorJitter``,
``Background`` (a static distractor image or colour behind a key colour, or blended), ``Shift`` (a
translation of the frame) and ``Crop``. They shift the *whole* frame, objects included — compare with
:class:`envs.seekavoid.domains.Domain` shifts that change the rendered scene.

Randomised wrappers take a ``seed``. With ``per_episode=True`` they draw new parameters at every reset, from
a generator re-seeded by ``reset(seed=s)`` with ``(seed, s)``: the same seeds give the same frames. With
``per_episode=False`` they draw once from ``seed`` (one fixed shift).

:class:`FrameResize` turns frames of any ``H × W`` (RGB, RGBA or grey) into the vision's square input.
:class:`ActionRepeat` (``action_repeat``, frame skip) is the one wrapper that acts on steps, not pixels.

:data:`WRAPPERS` names every wrapper for YAML (``{name: hue_shift, degrees: 30}``); :func:`apply_wrapper`
builds one from such a mapping.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import gymnasium
import numpy as np
from gymnasium import spaces


def _check_image_space(env: gymnasium.Env, wrapper: str) -> None:
    space = env.observation_space
    if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[2] == 3):
        raise ValueError(
            f"{wrapper} needs RGB image observations, a Box of shape (H, W, 3) and dtype uint8; got {space}. "
            "Apply it directly on the image env, before wrappers that change the observation."
        )


class _ImageShift(gymnasium.ObservationWrapper):
    def __init__(self, env: gymnasium.Env):
        _check_image_space(env, type(self).__name__)
        super().__init__(env)


class HueShift(_ImageShift):
    """Rotate the hue of every pixel by ``degrees`` (HSV colour space; saturation and value unchanged).

    :param env: env with ``(H, W, 3) uint8`` RGB observations
    :param degrees: hue rotation in degrees (any finite number; taken modulo 360). OpenCV stores hue in
        2° steps for uint8 images, so the shift is rounded to the nearest even number of degrees.
    """

    def __init__(self, env: gymnasium.Env, degrees: float):
        if not isinstance(degrees, (int, float)) or not math.isfinite(degrees):
            raise ValueError(f"HueShift: degrees must be a finite number (e.g. 90), got {degrees!r}")
        super().__init__(env)
        self.degrees = float(degrees)
        self._shift = int(round((self.degrees % 360.0) / 2.0)) % 180  # OpenCV uint8 hue is in [0, 180)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if self._shift == 0:
            return observation
        hsv = cv2.cvtColor(np.ascontiguousarray(observation), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + self._shift) % 180).astype(np.uint8)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


class ColorTint(_ImageShift):
    """Multiply each colour channel by a factor, like a coloured light or filter: ``obs * rgb``, clipped.

    :param env: env with ``(H, W, 3) uint8`` RGB observations
    :param rgb: three non-negative factors (≤ 4), e.g. ``(1.0, 0.8, 0.6)`` for a warm tint
    """

    def __init__(self, env: gymnasium.Env, rgb: Sequence[float]):
        try:
            factors = np.array([float(v) for v in rgb], dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"ColorTint: rgb must be three numbers in [0, 4], e.g. (1.0, 0.8, 0.6); got {rgb!r}") from None
        if factors.shape != (3,) or not np.all(np.isfinite(factors)) or factors.min() < 0 or factors.max() > 4:
            raise ValueError(f"ColorTint: rgb must be three numbers in [0, 4], e.g. (1.0, 0.8, 0.6); got {rgb!r}")
        super().__init__(env)
        self.rgb = tuple(float(v) for v in factors)
        self._factors = factors

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.clip(observation * self._factors + 0.5, 0, 255).astype(np.uint8)


class Brightness(_ImageShift):
    """Scale all pixel values by ``factor`` (clipped to [0, 255]); < 1 darkens, > 1 brightens.

    :param env: env with ``(H, W, 3) uint8`` RGB observations
    :param factor: a number in [0, 4]
    """

    def __init__(self, env: gymnasium.Env, factor: float):
        if not isinstance(factor, (int, float)) or not math.isfinite(factor) or not 0 <= factor <= 4:
            raise ValueError(f"Brightness: factor must be a number in [0, 4] (e.g. 0.6), got {factor!r}")
        super().__init__(env)
        self.factor = float(factor)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.clip(observation * np.float32(self.factor) + 0.5, 0, 255).astype(np.uint8)


class TextureNoise(_ImageShift):
    """Add uniform integer noise in ``[-amplitude, amplitude]`` to every pixel and channel, clipped.

    By default the noise is one *fixed pattern* drawn once from ``seed`` (a "distractor texture" glued to
    the screen: the same shift in every frame). With ``per_frame=True`` a new pattern is drawn for every
    observation from a generator seeded with ``seed`` (sensor noise); it is re-seeded when the env is reset
    with a seed, so seeded episodes are reproducible.

    :param env: env with ``(H, W, 3) uint8`` RGB observations
    :param amplitude: integer in [0, 255]
    :param seed: seed of the noise
    :param per_frame: draw fresh noise for every frame instead of one fixed pattern
    """

    def __init__(self, env: gymnasium.Env, amplitude: int, seed: int = 0, per_frame: bool = False):
        if isinstance(amplitude, bool) or not isinstance(amplitude, (int, np.integer)) or not 0 <= amplitude <= 255:
            raise ValueError(f"TextureNoise: amplitude must be an int in [0, 255] (e.g. 20), got {amplitude!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"TextureNoise: seed must be a non-negative int, got {seed!r}")
        super().__init__(env)
        self.amplitude, self.seed, self.per_frame = int(amplitude), int(seed), bool(per_frame)
        self._rng = np.random.default_rng(self.seed)
        self._pattern = self._draw(np.random.default_rng(self.seed))

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        shape = self.observation_space.shape
        return rng.integers(-self.amplitude, self.amplitude + 1, size=shape, dtype=np.int16)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = np.random.default_rng([self.seed, int(seed)])
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noise = self._draw(self._rng) if self.per_frame else self._pattern
        return np.clip(observation.astype(np.int16) + noise, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------- randomised (seeded) shifts
def _check_int(value: Any, what: str, low: int, high: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{what} must be an int in [{low}, {high}] (e.g. {example}), got {value!r}")
    return int(value)


def _check_number(value: Any, what: str, low: float, high: float, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{what} must be a number in [{low}, {high}] (e.g. {example}), got {value!r}")
    return float(value)


class _SeededShift(_ImageShift):
    """An image shift whose parameters are drawn from a seeded generator, once or at every reset."""

    def __init__(self, env: gymnasium.Env, seed: int, per_episode: bool):
        super().__init__(env)
        self.seed = _check_int(seed, f"{type(self).__name__}: seed", 0, 2**63 - 1, "0")
        if not isinstance(per_episode, bool):
            raise ValueError(f"{type(self).__name__}: per_episode must be true or false, got {per_episode!r}")
        self.per_episode = per_episode
        self._rng = np.random.default_rng(self.seed)
        self._draw(np.random.default_rng(self.seed))

    def _draw(self, rng: np.random.Generator) -> None:
        """Draw this shift's parameters (subclasses)."""
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if self.per_episode:
            if seed is not None:
                self._rng = np.random.default_rng([self.seed, int(seed)])
            self._draw(self._rng)
        return super().reset(seed=seed, options=options)


class RandomConv(_SeededShift):
    """Filter the frame with a random convolution mixing the colour channels (Lee, Lee, Shin & Lee 2020,
    "Network randomization: a simple technique for generalization in deep RL", ICLR).

    A ``(3, 3, k, k)`` kernel is drawn from Xavier-normal weights (std ``sqrt(2 / (fan_in + fan_out))``, as in
    the paper), applied to the frame in [0, 1] with reflected borders, and clipped back to uint8: textures and
    colours change, the layout stays.

    :param env: env with ``(H, W, 3) uint8`` RGB observations
    :param kernel_size: odd kernel side in [1, 15] (paper: 3)
    :param seed: seed of the kernel(s)
    :param per_episode: a new kernel at every reset (the paper's augmentation) instead of one fixed kernel
    """

    def __init__(self, env: gymnasium.Env, kernel_size: int = 3, seed: int = 0, per_episode: bool = True):
        self.kernel_size = _check_int(kernel_size, "RandomConv: kernel_size", 1, 15, "3")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"RandomConv: kernel_size must be odd (e.g. 3), got {kernel_size!r}")
        super().__init__(env, seed, per_episode)

    def _draw(self, rng: np.random.Generator) -> None:
        k = self.kernel_size
        std = math.sqrt(2.0 / (3 * k * k + 3 * k * k))
        self.kernel = rng.normal(0.0, std, size=(3, 3, k, k)).astype(np.float32)  # (out, in, k, k)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(observation, dtype=np.float32) / 255.0
        out = np.zeros_like(x)
        for o in range(3):
            for i in range(3):
                # filter2D correlates; the kernel is random, so correlation and convolution are the same shift
                out[..., o] += cv2.filter2D(x[..., i], -1, self.kernel[o, i], borderType=cv2.BORDER_REFLECT)
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


class ColorJitter(_SeededShift):
    """Random brightness, contrast, saturation and hue, as ``torchvision.transforms.ColorJitter`` draws them
    (DMC-GB's ``color`` shifts): factors uniform in ``[1 - b, 1 + b]`` etc., hue shift uniform in ``[-h, h]``
    of a full turn; applied in that order.

    :param env: env with ``(H, W, 3) uint8`` RGB observations
    :param brightness: in [0, 1]
    :param contrast: in [0, 1]
    :param saturation: in [0, 1]
    :param hue: in [0, 0.5]
    :param seed: seed of the draws
    :param per_episode: new factors at every reset (default) instead of one fixed draw
    """

    def __init__(self, env: gymnasium.Env, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.1, seed: int = 0, per_episode: bool = True):
        self.brightness = _check_number(brightness, "ColorJitter: brightness", 0, 1, "0.4")
        self.contrast = _check_number(contrast, "ColorJitter: contrast", 0, 1, "0.4")
        self.saturation = _check_number(saturation, "ColorJitter: saturation", 0, 1, "0.4")
        self.hue = _check_number(hue, "ColorJitter: hue", 0, 0.5, "0.1")
        super().__init__(env, seed, per_episode)

    def _draw(self, rng: np.random.Generator) -> None:
        b, c, s, h = self.brightness, self.contrast, self.saturation, self.hue
        # always four draws, so the stream does not depend on which factors are zero
        u = rng.uniform(-1.0, 1.0, size=4)
        self.factors = (1 + b * u[0], 1 + c * u[1], 1 + s * u[2], h * u[3])

    def observation(self, observation: np.ndarray) -> np.ndarray:
        bf, cf, sf, hf = self.factors
        x = np.asarray(observation, dtype=np.float32) * bf
        grey = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
        x = grey.mean() + cf * (x - grey.mean())
        grey = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
        x = grey + sf * (x - grey)
        out = np.clip(x + 0.5, 0, 255).astype(np.uint8)
        shift = int(round(hf * 180.0)) % 180  # OpenCV uint8 hue: 180 steps per turn
        if shift:
            hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
            out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return out


def _rgb255(value: Any, what: str) -> np.ndarray:
    try:
        rgb = np.array([float(v) for v in value], dtype=np.float32)
    except (TypeError, ValueError):
        rgb = np.zeros(0)
    if rgb.shape != (3,) or not np.all((0 <= rgb) & (rgb <= 255)):
        raise ValueError(f"{what} must be three numbers in [0, 255] (RGB), e.g. [0, 0, 0]; got {value!r}")
    return rgb


class Background(_SeededShift):
    """A static distractor behind (or over) the scene, as the Distracting Control Suite's backgrounds.

    The background is an image file (PNG/JPEG, read with OpenCV, resized to the frame), a solid ``color``,
    or seeded uniform ``noise`` (a new pattern per episode with ``per_episode=True``). Where it shows:

    * ``key_color`` (+ ``tolerance``): pixels within ``tolerance`` of that RGB colour in every channel (a sky,
      a floor, a green screen) are replaced by the background;
    * ``alpha``: the whole frame is blended, ``(1 - alpha) * frame + alpha * background``.

    :param env: env with ``(H, W, 3) uint8`` RGB observations
    :param image: path of an image file
    :param color: RGB in [0, 255] of a solid background
    :param noise: draw a uniform-noise background
    :param key_color: RGB in [0, 255] of the pixels to replace
    :param tolerance: max per-channel distance from ``key_color`` in [0, 255]
    :param alpha: blend weight in [0, 1] (instead of ``key_color``)
    :param seed: seed of the noise background
    :param per_episode: a new noise pattern at every reset
    """

    def __init__(self, env: gymnasium.Env, image: str | None = None, color: Sequence[float] | None = None,
                 noise: bool = False, key_color: Sequence[float] | None = None, tolerance: float = 10,
                 alpha: float | None = None, seed: int = 0, per_episode: bool = False):
        sources = [n for n, v in (("image", image), ("color", color), ("noise", noise or None)) if v is not None]
        if len(sources) != 1:
            raise ValueError(f"Background: give exactly one of image, color or noise=true, got {sources or 'none'}")
        if (key_color is None) == (alpha is None):
            raise ValueError("Background: give exactly one of key_color (replace that colour) or alpha (blend)")
        _check_image_space(env, "Background")
        h, w = env.observation_space.shape[:2]
        self._image = None
        if image is not None:
            pixels = cv2.imread(str(image), cv2.IMREAD_COLOR) if Path(str(image)).is_file() else None
            if pixels is None:
                raise ValueError(f"Background: image {str(image)!r} is not a readable image file (PNG/JPEG); "
                                 "give an existing path")
            self._image = cv2.resize(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_AREA)
        elif color is not None:
            self._image = np.broadcast_to(_rgb255(color, "Background: color").astype(np.uint8), (h, w, 3)).copy()
        self.image, self.color, self.noise = image, color, bool(noise)
        self.key_color = None if key_color is None else _rgb255(key_color, "Background: key_color")
        self.tolerance = _check_number(tolerance, "Background: tolerance", 0, 255, "10")
        self.alpha = None if alpha is None else _check_number(alpha, "Background: alpha", 0, 1, "0.5")
        super().__init__(env, seed, per_episode)

    def _draw(self, rng: np.random.Generator) -> None:
        if self.noise:
            self._image = rng.integers(0, 256, size=self.observation_space.shape, dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if self.alpha is not None:
            blend = (1 - self.alpha) * observation.astype(np.float32) + self.alpha * self._image
            return np.clip(blend + 0.5, 0, 255).astype(np.uint8)
        mask = np.all(np.abs(observation.astype(np.float32) - self.key_color) <= self.tolerance, axis=-1)
        out = np.array(observation, copy=True)
        out[mask] = self._image[mask]
        return out


class Shift(_SeededShift):
    """Translate the frame by up to ``max_shift`` pixels in each direction, edges replicated (DrQ's random
    shift; a camera offset when fixed). ``dx``/``dy`` give a fixed translation instead.

    :param env: env with ``(H, W, 3) uint8`` RGB observations
    :param max_shift: largest translation in pixels (drawn uniformly in ``[-max_shift, max_shift]``)
    :param dx: fixed horizontal translation (pixels, positive = right); use with ``dy`` instead of ``max_shift``
    :param dy: fixed vertical translation (pixels, positive = down)
    :param seed: seed of the draws
    :param per_episode: a new translation at every reset
    """

    def __init__(self, env: gymnasium.Env, max_shift: int | None = None, dx: int = 0, dy: int = 0, seed: int = 0,
                 per_episode: bool = True):
        _check_image_space(env, "Shift")
        h, w = env.observation_space.shape[:2]
        limit = min(h, w) - 1
        self.max_shift = None if max_shift is None else _check_int(max_shift, "Shift: max_shift", 0, limit, "4")
        self.dx = _check_int(dx, "Shift: dx", -(w - 1), w - 1, "4")
        self.dy = _check_int(dy, "Shift: dy", -(h - 1), h - 1, "4")
        if self.max_shift is not None and (dx or dy):
            raise ValueError("Shift: give max_shift (random) or dx/dy (fixed), not both")
        super().__init__(env, seed, per_episode)

    def _draw(self, rng: np.random.Generator) -> None:
        if self.max_shift is not None:
            self.offset = tuple(int(v) for v in rng.integers(-self.max_shift, self.max_shift + 1, size=2))
        else:
            self.offset = (self.dx, self.dy)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        dx, dy = self.offset
        h, w = observation.shape[:2]
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        return cv2.warpAffine(np.ascontiguousarray(observation), m, (w, h), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_REPLICATE)


# ------------------------------------------------------------------------------ shape-changing
def _image_shape(env: gymnasium.Env, wrapper: str) -> tuple[int, int, int]:
    """``(H, W, C)`` of an image observation space: uint8 Box of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)."""
    space = env.observation_space
    ok = isinstance(space, spaces.Box) and space.dtype == np.uint8 and (
        len(space.shape) == 2 or (len(space.shape) == 3 and space.shape[2] in (1, 3, 4)))
    if not ok:
        raise ValueError(
            f"{wrapper} needs image observations, a uint8 Box of shape (H, W) or (H, W, C) with C in 1, 3, 4; got "
            f"{space}. For an env whose observation is not an image, wrap it in "
            "gymnasium.wrappers.AddRenderObservation(env, render_only=True) with render_mode='rgb_array' first")
    h, w = space.shape[:2]
    return int(h), int(w), int(space.shape[2]) if len(space.shape) == 3 else 1


class Crop(gymnasium.ObservationWrapper):
    """Cut a fixed box ``frame[top:top + height, left:left + width]`` out of every frame (a score bar, a
    dashboard, a border); the observation space shrinks accordingly. Works on RGB and grey frames.

    :param env: env with uint8 image observations
    :param top: first row
    :param left: first column
    :param height: rows kept
    :param width: columns kept
    """

    def __init__(self, env: gymnasium.Env, top: int, left: int, height: int, width: int):
        h, w, _ = _image_shape(env, "Crop")
        self.top = _check_int(top, "Crop: top", 0, h - 1, "0")
        self.left = _check_int(left, "Crop: left", 0, w - 1, "0")
        self.height = _check_int(height, "Crop: height", 1, h - self.top, str(h - self.top))
        self.width = _check_int(width, "Crop: width", 1, w - self.left, str(w - self.left))
        super().__init__(env)
        shape = (self.height, self.width, *env.observation_space.shape[2:])
        self.observation_space = spaces.Box(0, 255, shape=shape, dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(observation[self.top:self.top + self.height, self.left:self.left + self.width])


class FrameResize(gymnasium.ObservationWrapper):
    """Frames of any ``H × W`` → ``(size, size, channels)`` uint8, the square input of the vision models.

    ``mode="resize"`` scales the whole frame to the square (aspect ratio not kept); ``mode="crop"`` first cuts
    the largest centred square, so nothing is stretched. Downscaling uses ``cv2.INTER_AREA`` (no aliasing).
    Grey frames become 1 channel or 3 equal channels; RGB becomes grey (ITU-R 601 luma) with ``channels=1``;
    an alpha channel is dropped. A frame already of the target shape passes through unchanged.

    :param env: env with uint8 image observations of shape (H, W) or (H, W, C), C in 1, 3, 4
    :param size: side of the output square, in [8, 1024]
    :param channels: 1 (grey) or 3 (RGB)
    :param mode: ``"resize"`` or ``"crop"``
    """

    def __init__(self, env: gymnasium.Env, size: int = 64, channels: int = 3, mode: str = "resize"):
        self.in_shape = _image_shape(env, "FrameResize")
        self.size = _check_int(size, "FrameResize: size", 8, 1024, "64")
        if channels not in (1, 3) or isinstance(channels, bool):
            raise ValueError(f"FrameResize: channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        if mode not in ("resize", "crop"):
            raise ValueError(f"FrameResize: mode must be 'resize' or 'crop', got {mode!r}")
        super().__init__(env)
        self.channels, self.mode = int(channels), mode
        self.observation_space = spaces.Box(0, 255, shape=(self.size, self.size, self.channels), dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        x = np.asarray(observation)
        if x.ndim == 3 and x.shape[2] == 4:
            x = x[..., :3]
        if x.ndim == 3 and x.shape[2] == 1:
            x = x[..., 0]
        if self.mode == "crop":
            h, w = x.shape[:2]
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            x = x[top:top + side, left:left + side]
        if x.shape[:2] != (self.size, self.size):
            x = cv2.resize(np.ascontiguousarray(x), (self.size, self.size), interpolation=cv2.INTER_AREA)
        if x.ndim == 3 and self.channels == 1:
            x = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
        if x.ndim == 2:
            x = x[..., None] if self.channels == 1 else np.repeat(x[..., None], 3, axis=2)
        return np.ascontiguousarray(x, dtype=np.uint8)


# ------------------------------------------------------------------------------------------ actions
class ActionRepeat(gymnasium.Wrapper):
    """Frame skip: each action is applied for ``repeat`` env steps, their rewards summed; the observation,
    ``terminated``/``truncated`` and ``info`` are those of the last step taken. The repeat stops early at the
    end of an episode (a ``TimeLimit`` inside, e.g. ``gymnasium.make(..., max_episode_steps=N)``, counts env
    steps, not decisions). Observation and action spaces are unchanged. The skipped frames are still
    rendered by the env: it saves the policy's work per env step, not the env's.

    Put it first in a domain's wrapper chain (``[{name: action_repeat, repeat: 4}, {name: hue_shift, ...}]``),
    so the observation wrappers after it run once per decision, not once per env step.

    :param env: any env
    :param repeat: env steps per action, in [1, 1000] (1: unchanged)
    """

    def __init__(self, env: gymnasium.Env, repeat: int):
        self.repeat = _check_int(repeat, "ActionRepeat: repeat", 1, 1000, "4")
        super().__init__(env)

    def step(self, action: Any):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


# ------------------------------------------------------------------------------------- registry
#: Wrappers by their YAML name: ``{name: hue_shift, degrees: 30}`` → ``HueShift(env, degrees=30)``.
WRAPPERS: dict[str, type[gymnasium.Wrapper]] = {
    "hue_shift": HueShift,
    "color_tint": ColorTint,
    "brightness": Brightness,
    "texture_noise": TextureNoise,
    "random_conv": RandomConv,
    "color_jitter": ColorJitter,
    "background": Background,
    "shift": Shift,
    "crop": Crop,
    "resize": FrameResize,
    "action_repeat": ActionRepeat,
}


def wrapper_params(name: str) -> dict[str, Any]:
    """The parameters of wrapper ``name`` and their defaults (``inspect.Parameter.empty``: required)."""
    cls = _wrapper_class(name)
    sig = inspect.signature(cls.__init__)
    return {p.name: p.default for p in list(sig.parameters.values())[2:]}  # skip self, env


def _wrapper_class(name: Any) -> type[gymnasium.Wrapper]:
    try:
        return WRAPPERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown wrapper {name!r}; valid: {', '.join(WRAPPERS)}") from None


def check_wrapper_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a wrapper mapping ``{name: ..., <param>: ...}`` without an env (names and required params);
    returns it as a plain dict. Value errors are raised when the wrapper is applied."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"a wrapper must be a mapping with a 'name' (one of {', '.join(WRAPPERS)}), got {spec!r}")
    params = wrapper_params(spec["name"])
    given = {k: v for k, v in spec.items() if k != "name"}
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise ValueError(f"wrapper {spec['name']!r}: unknown parameter(s) {unknown}; valid: {', '.join(params)}")
    missing = [k for k, v in params.items() if v is inspect.Parameter.empty and k not in given]
    if missing:
        raise ValueError(f"wrapper {spec['name']!r}: missing parameter(s) {missing}")
    return {"name": spec["name"], **given}


def apply_wrapper(env: gymnasium.Env, spec: Mapping[str, Any]) -> gymnasium.Env:
    """``env`` wrapped by the wrapper a mapping names, e.g. ``{name: hue_shift, degrees: 30}``.

    :param env: the env to wrap
    :param spec: ``name`` (a key of :data:`WRAPPERS`) and the wrapper's parameters
    :raises ValueError: unknown wrapper or parameter, or a bad value (the message names it)
    """
    spec = check_wrapper_spec(spec)
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k != "name"}
    try:
        return WRAPPERS[spec["name"]](env, **params)
    except ValueError as e:
        raise ValueError(f"wrapper {spec['name']!r}: {e}") from None


__all__ = [
    "WRAPPERS",
    "ActionRepeat",
    "Background",
    "Brightness",
    "ColorJitter",
    "ColorTint",
    "Crop",
    "FrameResize",
    "HueShift",
    "RandomConv",
    "Shift",
    "TextureNoise",
    "apply_wrapper",
    "check_wrapper_spec",
    "wrapper_params",
]
