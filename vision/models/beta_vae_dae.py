"""β-VAE_DAE: DARLA's vision (Higgins, Pal et al. 2017, "DARLA", §3.2, eq. 2).

The β-VAE's pixel log-likelihood is replaced by a distance in the feature space of a frozen,
pre-trained denoising autoencoder:

    L(θ, φ; x, z, β) = E_{q_φ(z|x)} ‖J(x̂) − J(x)‖²₂ − β · KL(q_φ(z|x) ‖ p(z)),   x̂ ~ p_θ(x|z)

where J maps pixels to the DAE's activations up to a chosen conv layer (``dae_layer``; the 4th,
64×4×4 for 64×64 frames). Blurry pixel reconstructions that keep the semantic content (which
objects, where) now score well, and the latent budget is not spent on exact room textures. The
DAE is trained first (:class:`vision.models.ae.DAE`) and never updated here: its parameters have
``requires_grad=False`` and it stays in eval mode even when this model is ``.train()``-ed, so the
gradient of the feature loss flows *through* J into the decoder but never *into* J.

Measured recipe on our miniworld task: β = 1 on the summed squared feature error, 4k iterations,
batch 64, Adam 5e-4 (the defaults below).

J(x) of a clean frame never changes while this model trains (J is frozen), so the training loop
computes it once per frame (:meth:`BetaVAEDAE.target_cache`) and passes each minibatch's rows to
:meth:`BetaVAEDAE.loss` as ``target``; without one, ``loss`` computes J(x) on the fly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vision.base import ConfigError, VisionConfig, register, to_tensor
from vision.models.ae import DAE, DAEConfig
from vision.models.vae import GaussianVAE
from vision.nets import conv_channels, kl_normal_per_latent, reparameterize

log = logging.getLogger(__name__)

#: Largest J(x) cache :meth:`BetaVAEDAE.target_cache` builds (float32; 20k 64×64 frames at layer 4 take
#: 82 MB). Above it J(x) is computed on the fly each step, as without a cache: slower, same result.
TARGET_CACHE_MAX_BYTES = 2 << 30


@dataclass
class BetaVAEDAEConfig(VisionConfig):
    """:param beta: weight of the KL term.
    :param dae_layer: J = the DAE encoder through this conv layer (1-based; 4 = 64×4×4 on 64×64 frames).
    :param dae_bottleneck: bottleneck width of the DAE submodule (must match a loaded DAE).
    :param dae_checkpoint: a ``dae`` checkpoint directory to load into the submodule; ``None`` to set it
        later with :meth:`BetaVAEDAE.set_dae` (``vision.train.train_vision`` pre-trains one).
    """

    lr: float = 5e-4
    beta: float = 1.0
    dae_layer: int = 4
    dae_bottleneck: int = 100
    dae_checkpoint: str | None = None

    def validate(self) -> None:
        super().validate()
        if not self.beta >= 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")
        depth = len(conv_channels(self.image_size))
        if not 1 <= self.dae_layer <= depth:
            raise ConfigError(
                f"dae_layer must be in 1..{depth} for image_size {self.image_size} "
                f"(the DAE encoder has {depth} conv layers), got {self.dae_layer}"
            )
        if self.dae_bottleneck < 1:
            raise ConfigError(f"dae_bottleneck must be >= 1, got {self.dae_bottleneck}")


@register("beta_vae_dae")
class BetaVAEDAE(GaussianVAE):
    """β-VAE whose reconstruction term is ‖J(x) − J(x̂)‖² summed, J a frozen DAE's conv features (DARLA eq. 2)."""

    config_cls = BetaVAEDAEConfig
    config: BetaVAEDAEConfig
    #: bf16 autocast checked (benchmarks/results/precision.json): the feature error and the KL are
    #: reduced in fp32, and the loss curve stays within seed noise of fp32's.
    autocast_safe = True
    data_parallel_safe = True  # per-sample losses averaged over the batch

    def __init__(self, config: BetaVAEDAEConfig):
        super().__init__(config)
        self.dae = DAE(DAEConfig(channels=config.channels, image_size=config.image_size, latents=config.dae_bottleneck))
        self._freeze_dae()
        # Saved with the weights, so a loaded checkpoint knows its DAE is the trained one.
        self.register_buffer("dae_ready", torch.zeros((), dtype=torch.bool))
        self._dae_checked = False
        if config.dae_checkpoint:
            if Path(config.dae_checkpoint).is_dir():
                from vision.checkpoint import load  # vision-internal; deferred to avoid an import cycle

                self.set_dae(load(config.dae_checkpoint))
            else:
                # Not fatal: a saved β-VAE_DAE carries its DAE in its own weights, so the original DAE
                # directory may be gone when it is loaded. loss() refuses to run without a DAE.
                log.warning("dae_checkpoint '%s' does not exist; the DAE is unset until set_dae() "
                            "or a checkpoint's weights are loaded", config.dae_checkpoint)

    def _freeze_dae(self) -> None:
        for p in self.dae.parameters():
            p.requires_grad_(False)
        self.dae.eval()

    def set_dae(self, dae: DAE) -> None:
        """Copy a trained ``dae`` model's weights into the frozen submodule.

        :param dae: a :class:`~vision.models.ae.DAE` with the same ``channels`` and ``image_size``.
        """
        if not isinstance(dae, DAE):
            raise TypeError(f"set_dae expects a 'dae' model, got {type(dae).__name__} ('{getattr(dae, 'name', '?')}')")
        c = self.config
        if (dae.config.channels, dae.config.image_size) != (c.channels, c.image_size):
            raise ValueError(
                f"DAE is for {dae.config.channels}×{dae.config.image_size}² images, this β-VAE_DAE for "
                f"{c.channels}×{c.image_size}²; train a DAE on the same frames"
            )
        if dae.config.latents != c.dae_bottleneck:
            c.dae_bottleneck = dae.config.latents
            self.dae = DAE(DAEConfig(channels=c.channels, image_size=c.image_size, latents=c.dae_bottleneck))
            self.dae.to(self.dae_ready.device)
        self.dae.load_state_dict(dae.state_dict())
        self._freeze_dae()
        self.dae_ready.fill_(True)

    def train(self, mode: bool = True) -> BetaVAEDAE:
        """Set train/eval mode on the β-VAE; the DAE stays in eval mode always."""
        super().train(mode)
        self.dae.eval()
        return self

    def feature_map(self, x: Tensor) -> Tensor:
        """J(x): the DAE encoder's activations through conv ``dae_layer``, flattened ``(B, N)``."""
        return self.dae.encoder.conv_features(x, self.config.dae_layer)

    def _require_dae(self) -> None:
        if not self._dae_checked:  # read the buffer once, not every step (a device sync on GPU)
            if not bool(self.dae_ready):
                raise RuntimeError(
                    "beta_vae_dae has no trained DAE: pass dae_checkpoint=<dae checkpoint dir>, call "
                    "set_dae(<trained dae>), or train with vision.train.train_vision (it pre-trains one)"
                )
            self._dae_checked = True

    @torch.no_grad()
    def target_cache(self, frames: Tensor | np.ndarray, device: torch.device | str | None = None,
                     batch_size: int = 256) -> Tensor | None:
        """J(x) of every training frame, ``(N, J-dim)`` float32, computed in chunks with the current DAE.

        Call it after the DAE is set (J is frozen from then on). ``None`` if the cache would exceed
        :data:`TARGET_CACHE_MAX_BYTES` (the loss then computes J(x) per minibatch).

        :param frames: ``(N, H, W, C)`` uint8 frames, a tensor or an array (e.g. a memory map).
        :param device: device of the cache and of the computation (default: the model's).
        :param batch_size: frames per chunk.
        """
        self._require_dae()
        device = self.dae_ready.device if device is None else torch.device(device)
        n = len(frames)
        dim = self.feature_map(to_tensor(frames[:1], device)).shape[1]
        if n * dim * 4 > TARGET_CACHE_MAX_BYTES:
            log.info("beta_vae_dae: a J(x) cache of %d frames would take %.1f GB; computing J(x) per step",
                     n, n * dim * 4 / 1e9)
            return None
        with torch.autocast(device.type, enabled=False):  # the targets in full fp32 even under bf16 training
            chunks = [self.feature_map(to_tensor(frames[i:i + batch_size], device)) for i in range(0, n, batch_size)]
        return torch.cat(chunks)

    def loss(self, x: Tensor, target: Tensor | None = None) -> dict[str, Tensor]:
        """DARLA eq. 2 (negated): ``‖J(x̂) − J(x)‖² + β · KL``; the steps of :meth:`GaussianVAE.loss`.

        :param x: ``(B, C, H, W)`` frames in [0, 1].
        :param target: J(x) ``(B, J-dim)`` if already known (rows of :meth:`target_cache`).
        """
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        recon = self.reconstruction_term(x, self.decode_logits(z), target)
        kl = kl_normal_per_latent(mu, logvar).sum()
        return {"loss": recon + self.config.beta * kl, "recon": recon, "kl": kl}

    def reconstruction_term(self, x: Tensor, logits: Tensor, target: Tensor | None = None) -> Tensor:
        """‖J(x) − J(x̂)‖² summed over features, batch-mean; x̂ = sigmoid(logits) in [0, 1].

        :param target: J(x) if already known; computed here (no gradient) otherwise. The difference
            and the sum are taken in fp32 even when J(x̂) comes out of bf16 autocast.
        """
        self._require_dae()
        if target is None:
            with torch.no_grad():
                target = self.feature_map(x)
        pred = self.feature_map(torch.sigmoid(logits))
        return (pred.float() - target.float()).pow(2).sum() / x.shape[0]
