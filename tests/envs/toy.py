"""A tiny env nobody wrote darla for: a coloured square moving on a background, fast and dependency-free.

``gymnasium.make("tests.envs.toy:Squares-v0")`` imports this module first (gymnasium's ``module:id`` form), so
spawned collection workers and the ``darla`` CLI find it without a plugin. Options cover the cases the generic
core must handle: continuous (``Box``) or ``Discrete`` actions, an image observation or a state vector with
frames from ``render()``, ground-truth factors in ``info`` or none, any frame size, RGB or grey.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces


class SquaresEnv(gymnasium.Env):
    """Move a square towards the centre; reward ``-distance`` per step, 20 steps per episode.

    :param continuous: ``Box(-1, 1, (2,))`` actions (else ``Discrete(5)``: stay, up, down, left, right)
    :param image_obs: observe the frame (else the position vector; frames via ``render()``)
    :param factors: report ``info["factors"]`` (square position and colour)
    :param height: frame height
    :param width: frame width
    :param grey: one channel frames ``(H, W)``
    :param background: background RGB
    :param render_mode: ``"rgb_array"`` or ``None``
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, continuous: bool = True, image_obs: bool = False, factors: bool = False, height: int = 40,
                 width: int = 48, grey: bool = False, background: tuple = (30, 30, 30),
                 render_mode: str | None = None, multi_discrete: bool = False):
        self.continuous, self.image_obs, self.with_factors = continuous, image_obs, factors
        self.multi_discrete = bool(multi_discrete)
        self.h, self.w, self.grey = int(height), int(width), bool(grey)
        self.background = np.array(background, dtype=np.uint8)
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32) if continuous else spaces.Discrete(5)
        if self.multi_discrete:  # (dx, dy), each 0 = -1, 1 = stay, 2 = +1
            self.action_space = spaces.MultiDiscrete([3, 3])
        shape = (self.h, self.w) if grey else (self.h, self.w, 3)
        self.observation_space = (spaces.Box(0, 255, shape, np.uint8) if image_obs
                                  else spaces.Box(0.0, 1.0, (2,), np.float32))
        self.pos = np.zeros(2, dtype=np.float32)
        self.color = np.zeros(3, dtype=np.uint8)
        self.t = 0

    def _frame(self) -> np.ndarray:
        img = np.broadcast_to(self.background, (self.h, self.w, 3)).copy()
        s = max(2, min(self.h, self.w) // 5)
        y, x = int(self.pos[1] * (self.h - s)), int(self.pos[0] * (self.w - s))
        img[y:y + s, x:x + s] = self.color
        return img.mean(axis=2).astype(np.uint8) if self.grey else img

    def _obs(self) -> Any:
        return self._frame() if self.image_obs else self.pos.copy()

    def _info(self) -> dict:
        if not self.with_factors:
            return {}
        return {"factors": {"x": float(self.pos[0]), "y": float(self.pos[1]), "red": float(self.color[0])}}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(0, 1, size=2).astype(np.float32)
        self.color = self.np_random.integers(60, 256, size=3).astype(np.uint8)
        self.t = 0
        return self._obs(), self._info()

    def step(self, action):
        if self.multi_discrete:
            move = (np.asarray(action, dtype=np.float32) - 1) * 0.1
        elif self.continuous:
            move = np.clip(np.asarray(action, dtype=np.float32), -1, 1) * 0.1
        else:
            move = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)][int(action)], dtype=np.float32) * 0.1
        self.pos = np.clip(self.pos + move, 0, 1).astype(np.float32)
        self.t += 1
        reward = -float(np.linalg.norm(self.pos - 0.5))
        return self._obs(), reward, False, self.t >= 20, self._info()

    def render(self):
        return self._frame() if self.render_mode == "rgb_array" else None


if "Squares-v0" not in gymnasium.registry:
    gymnasium.register(id="Squares-v0", entry_point=SquaresEnv)

#: the id to pass to darla (imports this module wherever the env is made)
SQUARES_ID = "tests.envs.toy:Squares-v0"
