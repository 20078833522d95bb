"""Frames -> frozen-vision features as environment wrappers (the fast plug-in point).

:class:`LatentVecEnv` encodes each vectorised batch of frames once (batched, no grad), so the policy
trains on ``(feature_dim,)`` vectors and PPO's epochs never re-run the encoder.
:class:`LatentObservation` does the same for a single gymnasium env (evaluation, custom loops).

Both give the same features as :class:`agents.extractor.FrozenVisionExtractor` for the same frames
(same :func:`vision.to_tensor`, same model).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from agents.frozen import VisionLike, check_frame_shape, encode, image_layout, load_frozen_vision
from vision.base import to_tensor


def latent_space(feature_dim: int) -> spaces.Box:
    """The observation space the policy sees: ``Box(-inf, inf, (feature_dim,), float32)``."""
    return spaces.Box(-np.inf, np.inf, shape=(feature_dim,), dtype=np.float32)


class _Encoder:
    """A frozen model plus the frame layout of one observation space."""

    def __init__(self, space: spaces.Space, vision: VisionLike, device: str | torch.device | None):
        self.model, self.path, self.vision_id = load_frozen_vision(vision, device)
        self.channels_first = image_layout(space)
        s = space.shape
        check_frame_shape(self.model, s if self.channels_first else (s[2], s[0], s[1]))
        # frames go where the model is (a loaded policy's vision may live on a GPU)
        self.device = next(iter(self.model.parameters()), torch.empty(0)).device if device is None else device

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        # frames: (B, H, W, C) uint8 -> (B, feature_dim) float32
        x = to_tensor(np.asarray(frames), self.device, channels_first=self.channels_first)
        return encode(self.model, x).cpu().numpy().astype(np.float32, copy=False)


class LatentVecEnv(VecEnvWrapper):
    """VecEnv wrapper: image observations -> frozen-vision feature vectors, one batched pass per step.

    ``info["terminal_observation"]`` (the last frame of an episode that ended, which SB3 uses to
    bootstrap truncated episodes) is encoded too, in the same batch as the step's observations.

    :param venv: a VecEnv with image observations ``(H, W, C)`` or ``(C, H, W)`` (uint8)
    :param vision: a vision checkpoint directory or a ``VisionModel`` (frozen in place)
    :param device: device on which frames are encoded; ``None``: a model's own device (a checkpoint: cpu)
    """

    def __init__(self, venv: VecEnv, vision: VisionLike, device: str | torch.device | None = None):
        self.encoder = _Encoder(venv.observation_space, vision, device)
        super().__init__(venv, observation_space=latent_space(self.encoder.model.feature_dim))

    @property
    def vision(self):
        return self.encoder.model

    def reset(self) -> np.ndarray:
        return self.encoder(self.venv.reset())

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        terminal = [i for i, info in enumerate(infos) if info.get("terminal_observation") is not None]
        if not terminal:
            return self.encoder(obs), rewards, dones, infos
        # One encoder pass for the step's frames and its terminal frames: once the policy has learnt,
        # episodes are short and a second pass on most steps would cost as much as the first.
        encoded = self.encoder(np.concatenate([obs, np.stack([infos[i]["terminal_observation"] for i in terminal])]))
        for row, i in enumerate(terminal, start=len(obs)):
            infos[i]["terminal_observation"] = encoded[row]
        return encoded[: len(obs)], rewards, dones, infos


class LatentObservation(gym.ObservationWrapper):
    """Gymnasium observation wrapper: an image observation -> its frozen-vision features ``(feature_dim,)``.

    :param env: any env with image observations ``(H, W, C)`` or ``(C, H, W)``
    :param vision: a vision checkpoint directory or a ``VisionModel`` (frozen in place)
    :param device: device on which frames are encoded; ``None``: a model's own device (a checkpoint: cpu)
    """

    def __init__(self, env: gym.Env, vision: VisionLike, device: str | torch.device | None = None):
        super().__init__(env)
        self.encoder = _Encoder(env.observation_space, vision, device)
        self.observation_space = latent_space(self.encoder.model.feature_dim)

    @property
    def vision(self):
        return self.encoder.model

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return self.encoder(observation[None])[0]
