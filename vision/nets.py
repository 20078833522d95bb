"""Shared building blocks: the reference conv encoder/decoder and the Gaussian-latent helpers.

Reference architecture for 64×64×C (Higgins et al. 2017; DARLA appendix): encoder conv 32-32-64-64,
4×4 kernels, stride 2 → FC 256 → output; the decoder mirrors it. Smaller power-of-two images use fewer
stride-2 convs (down to a 4×4 map), so tests can run on 16×16 or 32×32 frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CONV_CHANNELS = (32, 32, 64, 64)
HIDDEN = 256


def _n_convs(image_size: int) -> int:
    """Number of stride-2 convs taking ``image_size`` down to a 4×4 map (4 for 64×64)."""
    n = int(math.log2(image_size)) - 2
    if n < 1 or 2 ** (n + 2) != image_size:
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return n


def conv_channels(image_size: int) -> tuple[int, ...]:
    """Channels of each conv layer for this image size (the reference 32-32-64-64, truncated/extended)."""
    n = _n_convs(image_size)
    chans = list(CONV_CHANNELS[:n])
    while len(chans) < n:
        chans.append(CONV_CHANNELS[-1])
    return tuple(chans)


class ConvEncoder(nn.Module):
    """``(B, C, S, S)`` → ``(B, out_dim)``: stride-2 4×4 convs (ReLU) → FC ``hidden`` (ReLU) → FC ``out_dim``.

    ``conv_features(x, depth)`` returns the activation after conv ``depth`` (1-based), flattened — the
    feature map J(x) that β-VAE_DAE compares (DARLA §2.2).
    """

    def __init__(self, channels: int, image_size: int, out_dim: int, hidden: int = HIDDEN):
        super().__init__()
        chans = conv_channels(image_size)
        layers: list[nn.Module] = []
        prev = channels
        for c in chans:
            layers.append(nn.Sequential(nn.Conv2d(prev, c, 4, stride=2, padding=1), nn.ReLU()))
            prev = c
        self.convs = nn.ModuleList(layers)
        self.flat_dim = prev * 4 * 4
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(self.flat_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = conv(x)
        return self.fc(x)

    def conv_features(self, x: Tensor, depth: int) -> Tensor:
        if not 1 <= depth <= len(self.convs):
            raise ValueError(f"conv depth must be in 1..{len(self.convs)}, got {depth}")
        for conv in self.convs[:depth]:
            x = conv(x)
        return x.flatten(1)


class ConvDecoder(nn.Module):
    """``(B, in_dim)`` → logits ``(B, C, S, S)``: FC ``hidden`` → FC → transposed convs mirroring the encoder."""

    def __init__(self, in_dim: int, channels: int, image_size: int, hidden: int = HIDDEN):
        super().__init__()
        chans = list(reversed(conv_channels(image_size)))
        self.start = chans[0]
        self.fc = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, chans[0] * 4 * 4), nn.ReLU()
        )
        layers: list[nn.Module] = []
        outs = chans[1:] + [channels]
        for i, (cin, cout) in enumerate(zip(chans, outs)):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            if i < len(chans) - 1:
                layers.append(nn.ReLU())
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], self.start, 4, 4)
        return self.deconvs(h)


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = μ + σ·ε, ε ~ N(0, I) (Kingma & Welling 2014, §2.4); in fp32 even under bf16 autocast."""
    mu, logvar = mu.float(), logvar.float()
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def kl_normal_per_latent(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent, averaged over the batch: ``(latents,)`` in nats.

    Computed in fp32 (a no-op for fp32 inputs): under bf16 autocast ``mu``/``logvar`` come out of a
    bf16 linear layer, and exp/sums in bf16 would lose the small KL of a nearly collapsed latent.
    """
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(0)


def reconstruction_loss(logits: Tensor, x: Tensor, kind: str = "bernoulli") -> Tensor:
    """−log p(x|z) summed over pixels, averaged over the batch.

    ``bernoulli``: binary cross-entropy on decoder logits (the usual choice for dSprites and for [0, 1]
    colour frames); ``gaussian``: squared error of sigmoid(logits), σ = 1 up to a constant.
    The sum is taken in fp32 even when ``logits`` are bf16 (autocast).
    """
    logits, x = logits.float(), x.float()
    if kind == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    if kind == "gaussian":
        return F.mse_loss(torch.sigmoid(logits), x, reduction="sum") / x.shape[0]
    raise ValueError(f"unknown reconstruction '{kind}'; valid: bernoulli, gaussian")


def log_normal_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise log N(z; μ, σ²) (broadcasts), used by β-TCVAE's minibatch estimators."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar))
