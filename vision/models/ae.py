"""Deterministic autoencoders: AE and the masking-noise denoising autoencoder (DAE).

AE: minimise −log p(x | g(f(x))), a code with no prior — the entangled baseline of DARLA §4.

DAE (Vincent et al. 2008/2010, "Stacked denoising autoencoders", eq. 5 with masking noise): corrupt x
with occluding rectangles, x̃ ~ q_D(x̃|x), and reconstruct the *clean* image,
minimise −log p(x | g(f(x̃))). DARLA (Higgins, Pal et al. 2017, §3.2 and appendix A.3.1) trains one on
frames with occlusion-style masks (as in Pathak et al. 2016's context encoders) so that its conv
features capture the semantic layout of a frame; β-VAE_DAE then scores reconstructions in that
feature space. The recipe measured on our miniworld task: rectangles of 8–32 px on 64×64 frames,
bottleneck 100, 1.5k iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vision.base import ConfigError, VisionConfig, VisionModel, register
from vision.nets import ConvDecoder, ConvEncoder, reconstruction_loss

RECON_KINDS = ("bernoulli", "gaussian")


@dataclass
class AEConfig(VisionConfig):
    """:param latents: width of the code (what the agent sees).
    :param recon: ``bernoulli`` (cross-entropy on logits) or ``gaussian`` (squared error).
    """

    recon: str = "bernoulli"

    def validate(self) -> None:
        super().validate()
        if self.recon not in RECON_KINDS:
            raise ConfigError(f"recon must be one of {', '.join(RECON_KINDS)}, got {self.recon!r}")


@dataclass
class DAEConfig(AEConfig):
    """:param latents: the bottleneck width (100 in DARLA).
    :param mask_count: occluding rectangles per image.
    :param mask_min: smallest rectangle side, px.  :param mask_max: largest rectangle side, px
        (clipped to the image size, so the 64×64 defaults also run on 16×16 test frames).
    :param mask_fill: value in [0, 1] painted inside the rectangles.
    """

    latents: int = 100
    mask_count: int = 1
    mask_min: int = 8
    mask_max: int = 32
    mask_fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.mask_count < 0:
            raise ConfigError(f"mask_count must be >= 0, got {self.mask_count}")
        if self.mask_min < 1:
            raise ConfigError(f"mask_min must be >= 1 px, got {self.mask_min}")
        if self.mask_max < self.mask_min:
            raise ConfigError(f"mask_max ({self.mask_max}) must be >= mask_min ({self.mask_min})")
        if not 0.0 <= self.mask_fill <= 1.0:
            raise ConfigError(f"mask_fill must be in [0, 1], got {self.mask_fill}")


class DeterministicCode:
    """``encode``/``features``/``decode`` of a model whose ``encoder`` gives a deterministic code and whose
    ``decoder`` gives logits (AE, DAE, ICF). Holds no parameters: the model builds ``self.encoder`` and
    ``self.decoder`` itself, so its state-dict keys are its own. List it before :class:`VisionModel`."""

    encoder: ConvEncoder
    decoder: ConvDecoder

    def encode(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → code ``(B, latents)``."""
        return self.encoder(x)

    def features(self, x: Tensor) -> Tensor:
        """The code itself, ``(B, latents)``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Code ``(B, latents)`` → images in [0, 1] ``(B, C, H, W)``."""
        return torch.sigmoid(self.decoder(z))


@register("ae")
class AE(DeterministicCode, VisionModel):
    """Conv encoder → code (``latents``) → conv decoder; loss = −log p(x | decode(encode(x)))."""

    config_cls = AEConfig
    config: AEConfig
    #: bf16 autocast checked (benchmarks/results/precision.json): the loss is reduced in fp32 by
    #: nets.reconstruction_loss, and the DAE's loss curve stays within seed noise of fp32's.
    autocast_safe = True
    data_parallel_safe = True  # per-sample losses averaged over the batch

    def __init__(self, config: AEConfig):
        super().__init__(config)
        self.encoder = ConvEncoder(config.channels, config.image_size, config.latents)
        self.decoder = ConvDecoder(config.latents, config.channels, config.image_size)

    def corrupt(self, x: Tensor) -> Tensor:
        """The encoder's training input; the identity for a plain AE."""
        return x

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Reconstruct the clean ``x`` from the (possibly corrupted) input."""
        logits = self.decoder(self.encoder(self.corrupt(x)))
        recon = reconstruction_loss(logits, x, self.config.recon)
        return {"loss": recon, "recon": recon}


def occlusion_masks(
    batch: int, size: int, count: int, min_side: int, max_side: int, device: torch.device | str = "cpu"
) -> Tensor:
    """``(batch, size, size)`` bool: the union of ``count`` random axis-aligned rectangles per image.

    Sides are uniform in ``[min_side, max_side]`` (clipped to ``size``), positions uniform so the
    rectangle lies inside the image. Drawn from torch's global RNG (seeded by the training loop);
    vectorised over the batch — no per-sample Python loop.
    """
    mask = torch.zeros(batch, size, size, dtype=torch.bool, device=device)
    if count == 0:
        return mask
    hi = min(max_side, size)
    lo = min(min_side, hi)
    coords = torch.arange(size, device=device)
    for _ in range(count):
        h = torch.randint(lo, hi + 1, (batch, 1), device=device)
        w = torch.randint(lo, hi + 1, (batch, 1), device=device)
        y0 = (torch.rand(batch, 1, device=device) * (size - h + 1)).floor().long()
        x0 = (torch.rand(batch, 1, device=device) * (size - w + 1)).floor().long()
        rows = (coords >= y0) & (coords < y0 + h)  # (B, size)
        cols = (coords >= x0) & (coords < x0 + w)  # (B, size)
        mask |= rows[:, :, None] & cols[:, None, :]
    return mask


@register("dae")
class DAE(AE):
    """Denoising AE with masking noise: encode occluded x̃, reconstruct the clean x (Vincent et al. 2010).

    ``features`` encodes the *clean* image; the noise is a training-time corruption only.
    """

    config_cls = DAEConfig
    config: DAEConfig

    def corrupt(self, x: Tensor) -> Tensor:
        """x̃: ``x`` with ``mask_count`` rectangles per image painted ``mask_fill`` (all channels)."""
        c = self.config
        mask = occlusion_masks(x.shape[0], x.shape[-1], c.mask_count, c.mask_min, c.mask_max, x.device)
        return x.masked_fill(mask[:, None], c.mask_fill)
