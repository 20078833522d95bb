"""A frozen vision model as a stable-baselines3 features extractor (the simple plug-in point).

The policy sees ``vision.features(frames)`` (the posterior mean, DARLA sec. 2.3) and learns only its
own MLP heads. Simple, but PPO re-runs the encoder on every minibatch of every epoch; for speed use
:class:`agents.latent.LatentVecEnv`, which gives the same features once per environment step.

SB3 traps handled here:

* ``ortho_init=True`` (PPO/A2C default) calls ``features_extractor.apply(init_weights)``, which would
  orthogonally re-initialise every ``Conv2d``/``Linear`` of the vision model. :meth:`apply` therefore
  does not descend into the frozen vision.
* ``policy.set_training_mode(True)`` calls ``train()`` on every submodule; :meth:`train` keeps the vision
  in eval mode so BatchNorm statistics and Dropout never change.
* SB3 transposes ``(H, W, C)`` frames to ``(C, H, W)`` (``VecTransposeImage``) and divides by 255
  (``preprocess_obs``) before the extractor; a channels-last input (no transposition) is permuted here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from agents.frozen import VisionLike, check_frame_shape, encode, image_layout, load_frozen_vision
from vision.base import to_tensor


class FrozenVisionExtractor(BaseFeaturesExtractor):
    """SB3 features extractor wrapping a frozen :class:`vision.VisionModel`.

    Use with ``policy_kwargs=dict(features_extractor_class=FrozenVisionExtractor,
    features_extractor_kwargs=dict(vision="path/to/checkpoint"))`` and the default
    ``normalize_images=True`` (SB3 then hands over floats in [0, 1]).

    :param observation_space: image observation space, ``(C, H, W)`` after SB3's transposition
        (or ``(H, W, C)``)
    :param vision: a vision checkpoint directory, or a ``VisionModel`` instance
    :param device: device the vision is loaded on (SB3 moves the whole policy afterwards anyway)
    """

    def __init__(self, observation_space: spaces.Box, vision: VisionLike, device: str | torch.device = "cpu"):
        model, path, vision_id = load_frozen_vision(vision, device)
        super().__init__(observation_space, features_dim=model.feature_dim)
        self.channels_first = image_layout(observation_space)
        shape = observation_space.shape
        check_frame_shape(model, shape if self.channels_first else (shape[2], shape[0], shape[1]))
        self.vision = model
        self.vision_path = path
        self.vision_id = vision_id

    def forward(self, observations: Tensor) -> Tensor:
        # observations: (B, C, H, W) float in [0, 1] (already /255 by SB3's preprocess_obs)
        x = to_tensor(observations, observations.device, channels_first=self.channels_first)
        return encode(self.vision, x)  # (B, feature_dim), no grad

    def train(self, mode: bool = True) -> FrozenVisionExtractor:
        super().train(mode)
        self.vision.eval()
        return self

    def apply(self, fn: Callable[[nn.Module], None]) -> FrozenVisionExtractor:
        # SB3 ActorCriticPolicy._build: ortho_init applies init_weights to the features extractor;
        # the frozen vision keeps the weights it was trained with.
        fn(self)
        return self
