"""A frozen vision model and the one way frames become features (shared by the extractor and wrappers).

DARLA (Higgins et al. 2017, sec. 2.3 "learning to act"): the vision module learnt in stage 1 is frozen
while the policy learns on top of it. Here "frozen" means eval mode (no BatchNorm/Dropout updates),
``requires_grad=False`` on every parameter, and features computed under ``torch.no_grad()``.

Both plug-in points (:class:`agents.extractor.FrozenVisionExtractor` and the latent wrappers in
:mod:`agents.latent`) turn frames into the network input with :func:`vision.to_tensor` (its
``channels_first`` flag covers SB3's ``VecTransposeImage``, its float path SB3's ``preprocess_obs``), so
the two paths give bit-identical features for the same frames.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

import vision
from vision.base import VisionModel
from vision.checkpoint import checkpoint_id

logger = logging.getLogger(__name__)

VisionLike = str | os.PathLike | VisionModel


def freeze(model: VisionModel) -> VisionModel:
    """Put ``model`` in eval mode and switch off gradients of every parameter; returns it."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_frozen_vision(
    vision_model: VisionLike, device: str | torch.device | None = "cpu"
) -> tuple[VisionModel, Path | None, str | None]:
    """A frozen vision model from a checkpoint directory or a ready model.

    :param vision_model: a checkpoint directory written by ``vision.save`` (or ``darla train-vision``),
        or a :class:`vision.VisionModel` instance (used as is, frozen in place)
    :param device: torch device for the model; ``None``: leave a ready model where it is (a checkpoint
        loads on the CPU)
    :return: ``(model, absolute checkpoint path or None, weights digest or None)``
    """
    if isinstance(vision_model, VisionModel):
        return freeze(vision_model if device is None else vision_model.to(device)), None, None
    if isinstance(vision_model, (str, os.PathLike)):
        path = Path(vision_model).resolve()
        model = vision.load(path, device="cpu" if device is None else device)  # raises CheckpointError naming the path and the fix
        return freeze(model), path, checkpoint_id(path)
    raise TypeError(
        f"vision must be a checkpoint directory (str or Path) or a vision.VisionModel, got {type(vision_model).__name__}; "
        "pass e.g. vision='runs/x/vision/model' or vision=vision.load(path)"
    )


def image_layout(space: spaces.Space) -> bool:
    """Whether an image observation space is channels-first ``(C, H, W)`` (else ``(H, W, C)``).

    Follows SB3's ``is_image_space_channels_first``: the smallest dimension is the channel axis.
    Raises ``ValueError`` if ``space`` is not a 3-d ``Box`` of frames.
    """
    if not isinstance(space, spaces.Box) or len(space.shape) != 3:
        raise ValueError(
            f"expected image observations, a 3-d Box (H, W, C) or (C, H, W), got {space}; "
            "wrap only environments that return frames"
        )
    return int(np.argmin(space.shape)) == 0


def check_frame_shape(model: VisionModel, chw: tuple[int, int, int]) -> None:
    """Raise ``ValueError`` if frames of shape ``(C, H, W)`` do not fit the model's config."""
    cfg = model.config
    want = (getattr(cfg, "channels", chw[0]), getattr(cfg, "image_size", chw[1]), getattr(cfg, "image_size", chw[2]))
    if tuple(chw) != want:
        raise ValueError(
            f"observations of shape (C, H, W) = {tuple(chw)} do not fit vision model '{model.name}' "
            f"(expects {want}); make the env render {want[1]}x{want[2]} frames (e.g. obs_size={want[1]}) "
            "or use a vision checkpoint trained at this size"
        )


@torch.no_grad()
def encode(model: VisionModel, x: Tensor) -> Tensor:
    """``model.features(x)`` with the model in eval mode and no autograd graph: ``(B, feature_dim)``."""
    if model.training:  # a caller flipped it (e.g. policy.train()); the vision stays frozen
        model.eval()
    return model.features(x)
