"""Fixtures for the agents tests: a tiny registered vision model (removed afterwards) and a tiny
image env with paired layouts across "domains", so the tests need neither the zoo nor miniworld."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

import vision
from vision.base import _REGISTRY, VisionConfig, VisionModel

TINY = "_test_tiny_agents"
SIZE = 16


@dataclass
class TinyConfig(VisionConfig):
    image_size: int = SIZE
    latents: int = 6


class TinyVision(VisionModel):
    """Conv + BatchNorm + Dropout + Linear: everything SB3's ortho_init and train() could disturb."""

    config_cls = TinyConfig
    generative = False

    def __init__(self, config: TinyConfig):
        super().__init__(config)
        self.conv = nn.Conv2d(config.channels, 4, 4, stride=4)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * (config.image_size // 4) ** 2, config.latents)

    def features(self, x):
        h = self.drop(torch.relu(self.bn(self.conv(x))))
        return self.fc(h.flatten(1))

    def encode(self, x):
        return self.features(x)

    def loss(self, x):
        return {"loss": self.features(x).pow(2).mean()}


@pytest.fixture(scope="session")
def tiny_model_cls():
    TinyVision.name = TINY
    _REGISTRY[TINY] = TinyVision
    yield TinyVision
    _REGISTRY.pop(TINY, None)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model_cls, tmp_path_factory):
    torch.manual_seed(0)
    model = vision.make(TINY)
    # non-trivial BatchNorm statistics, so a flip to train mode would change them
    model.bn.running_mean.uniform_(-0.1, 0.1)
    model.bn.running_var.uniform_(0.5, 1.5)
    return vision.save(model, tmp_path_factory.mktemp("vision") / "tiny")


class TinyChoiceEnv(gym.Env):
    """A 16x16 RGB "which side is good" task. The good side (a bright bar, left or right) depends only
    on the reset seed; the background colour depends on the domain, so layouts are paired across
    domains. Actions: 0 left, 1 right (end the episode, +1 if correct else -1), 2 wait. After
    ``max_steps`` waits the episode is truncated."""

    metadata = {"render_modes": []}
    BACKGROUNDS = {"A-default": (200, 120, 40), "B-default": (200, 120, 40), "A-changed": (40, 60, 200),
                   "B-changed": (40, 60, 200)}

    def __init__(self, domain: str = "A-default", max_steps: int = 4, size: int = SIZE):
        self.domain = domain if isinstance(domain, str) else getattr(domain, "name", str(domain))
        self.max_steps, self.size = max_steps, size
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = spaces.Discrete(3)
        self.reset_seeds: list[int | None] = []
        self.good = 0
        self.t = 0

    def _frame(self) -> np.ndarray:
        img = np.empty((self.size, self.size, 3), np.uint8)
        img[:] = self.BACKGROUNDS.get(self.domain, (128, 128, 128))
        cols = slice(0, self.size // 4) if self.good == 0 else slice(3 * self.size // 4, self.size)
        img[:, cols] = 255
        img[0, 0] = self.t * 40  # frames change over time, so terminal frames differ from resets
        return img

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.reset_seeds.append(seed)
        self.good = int(self.np_random.integers(2))
        self.t = 0
        return self._frame(), {"domain": self.domain, "good": self.good}

    def step(self, action):
        self.t += 1
        info = {"domain": self.domain, "good": self.good}
        if action in (0, 1):
            return self._frame(), (1.0 if action == self.good else -1.0), True, False, info
        return self._frame(), 0.0, False, self.t >= self.max_steps, info


@pytest.fixture
def tiny_env_fn():
    return TinyChoiceEnv
