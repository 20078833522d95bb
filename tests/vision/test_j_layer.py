"""β-VAE_DAE's J (DARLA eq. 2) at every depth and image size: ``feature_map`` is the given DAE's encoder run by
hand (stride-2 4×4 convs, padding 1, ReLU) through conv ``dae_layer``, and the reconstruction term is the summed
squared difference of exactly that map; a J read one layer early or late, before the ReLU, or from another DAE
fails here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import vision
from vision.nets import conv_channels

CASES = [(size, depth) for size in (16, 32, 64) for depth in range(1, len(conv_channels(size)) + 1)]


def _hand_j(dae, x: torch.Tensor, depth: int) -> torch.Tensor:
    """The DAE encoder's first ``depth`` convs from its weights, by hand."""
    h = x
    for conv in list(dae.encoder.convs)[:depth]:
        layer = conv[0]
        h = F.relu(F.conv2d(h, layer.weight, layer.bias, stride=2, padding=1))
    return h.flatten(1)


@pytest.mark.parametrize("size, depth", CASES, ids=[f"{s}px-J{d}" for s, d in CASES])
def test_feature_map_is_the_dae_encoder_through_conv_dae_layer(size, depth):
    torch.manual_seed(size + depth)
    dae = vision.make("dae", image_size=size, latents=8)
    with torch.no_grad():  # weights away from the init, so that layers differ clearly
        for p in dae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model = vision.make("beta_vae_dae", image_size=size, latents=4, dae_layer=depth, dae_bottleneck=8)
    model.set_dae(dae)
    x = torch.rand(3, 3, size, size)
    j = model.feature_map(x)
    expected = _hand_j(dae, x, depth)
    channels = conv_channels(size)[depth - 1]
    assert j.shape == (3, channels * (size // 2**depth) ** 2)
    torch.testing.assert_close(j, expected, rtol=1e-5, atol=1e-6)
    # the loss compares exactly this map of x and of the reconstruction
    logits = torch.randn(3, 3, size, size)
    with torch.no_grad():
        term = model.reconstruction_term(x, logits)
        hand = (_hand_j(dae, torch.sigmoid(logits), depth) - expected).pow(2).sum() / 3
    torch.testing.assert_close(term, hand, rtol=1e-5, atol=1e-5)


def test_darla_default_is_the_fourth_conv_64x4x4_on_64px_frames():
    model = vision.make("beta_vae_dae", image_size=64)
    assert model.config.dae_layer == 4
    assert model.feature_map(torch.rand(1, 3, 64, 64)).shape == (1, 64 * 4 * 4)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_dae_layer_just_outside_the_conv_stack_is_refused(size):
    from vision.base import ConfigError

    depth = len(conv_channels(size))
    vision.make("beta_vae_dae", image_size=size, dae_layer=depth)  # the last conv: fine
    for bad in (0, depth + 1):
        with pytest.raises(ConfigError, match=f"dae_layer must be in 1..{depth} for image_size {size}"):
            vision.make("beta_vae_dae", image_size=size, dae_layer=bad)
