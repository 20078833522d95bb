"""Generic domain-shift observation wrappers for any env with ``(H, W, 3) uint8`` image observations.

Each wrapper does one thing to the pixels (as in Gymnasium's own observation wrappers), validates its
arguments and the observation space, and keeps the observation space unchanged, so wrapped target
domains plug into the same policies: ``HueShift(env, 90)``, ``ColorTint(env, (1.0, 0.8, 0.6))``,
``Brightness(env, 0.6)``, ``TextureNoise(env, 20, seed=0)``. They shift the *whole* frame, objects
included — compare with :class:`envs.domains.Domain` shifts that change the rendered scene.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

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

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = np.random.default_rng([self.seed, int(seed)])
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noise = self._draw(self._rng) if self.per_frame else self._pattern
        return np.clip(observation.astype(np.int16) + noise, 0, 255).astype(np.uint8)


__all__ = ["HueShift", "ColorTint", "Brightness", "TextureNoise"]
