"""VAE (Kingma & Welling 2014) and β-VAE (Higgins et al. 2017) with a diagonal Gaussian posterior.

β-VAE, Higgins et al. 2017, eq. 4 — maximise

    E_{q(z|x)}[log p(x|z)] − β · KL(q(z|x) ‖ p(z)),    p(z) = N(0, I),

so we minimise ``recon + β · Σ_j KL_j``. β = 1 is the plain VAE's negative ELBO; β > 1 squeezes the
latent channel and (for well-chosen β) aligns latents with independent factors of variation.

:class:`GaussianVAE` is the shared base of every Gaussian-latent model in the zoo (β-VAE_DAE,
CCI-VAE, β-TCVAE, FactorVAE). Subclasses change one of three obvious places:

* :meth:`GaussianVAE.reconstruction_term` — how x̂ is scored against x (β-VAE_DAE: in DAE features);
* :meth:`GaussianVAE.loss` — how the terms of :meth:`GaussianVAE.forward_terms` are combined
  (CCI-VAE: γ·|KL − C|; β-TCVAE: decomposed KL; FactorVAE: + γ·TC);
* ``config_cls`` — a dataclass subclass of :class:`VAEConfig` with the method's hyper-parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vision.base import ConfigError, VisionConfig, VisionModel, register
from vision.nets import ConvDecoder, ConvEncoder, kl_normal_per_latent, reconstruction_loss, reparameterize

RECON_KINDS = ("bernoulli", "gaussian")


def gaussian_nll(logits: Tensor, x: Tensor, sigma: float = 1.0) -> Tensor:
    """−log N(x; x̂, σ²I) up to its constant, x̂ = sigmoid(logits): ``½ ‖x − x̂‖² / σ²`` summed over
    pixels, averaged over the batch.

    The ½ matters: without it the reconstruction term is doubled, i.e. the KL's effective weight is
    halved (a β-VAE with β would behave as β/2 against the papers' Gaussian-likelihood objectives).
    Until this fix the zoo used ``‖x − x̂‖²`` (``vision.nets.reconstruction_loss``'s ``gaussian``).

    :param logits: decoder logits ``(B, C, H, W)``; :param x: targets in [0, 1], same shape.
    :param sigma: the likelihood's standard deviation (1: the usual unit-variance choice).
    """
    return 0.5 * (torch.sigmoid(logits) - x).pow(2).sum() / (sigma**2 * x.shape[0])


@dataclass
class VAEConfig(VisionConfig):
    """:param beta: weight of the KL term (1 = VAE).
    :param recon: likelihood p(x|z): ``bernoulli`` (cross-entropy on logits) or ``gaussian``
        (N(x; sigmoid(logits), σ²I) with σ = 1: ½‖x − x̂‖², see :func:`gaussian_nll`).
    """

    beta: float = 1.0
    recon: str = "bernoulli"

    def validate(self) -> None:
        super().validate()
        if not self.beta >= 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")
        if self.recon not in RECON_KINDS:
            raise ConfigError(f"recon must be one of {', '.join(RECON_KINDS)}, got {self.recon!r}")


@dataclass
class BetaVAEConfig(VAEConfig):
    """β-VAE defaults: β = 4 (Higgins et al. 2017 use β = 4 on dSprites with 10 latents)."""

    beta: float = 4.0


class GaussianVAE(VisionModel):
    """Conv encoder → (μ, log σ²) → z = μ + σ·ε → conv decoder → Bernoulli/Gaussian logits.

    Not registered itself; :class:`VAE` and :class:`BetaVAE` are the registered names.
    """

    config_cls = VAEConfig
    config: VAEConfig

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.encoder = ConvEncoder(config.channels, config.image_size, 2 * config.latents)
        self.decoder = ConvDecoder(config.latents, config.channels, config.image_size)

    # -- the interface -------------------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, C, H, W)`` in [0, 1] → ``(mu, logvar)``, each ``(B, latents)``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def features(self, x: Tensor) -> Tensor:
        """The posterior mean μ, ``(B, latents)``."""
        return self.encode(x)[0]

    def decode_logits(self, z: Tensor) -> Tensor:
        """``(B, latents)`` → decoder logits ``(B, C, H, W)``."""
        return self.decoder(z)

    def decode(self, z: Tensor) -> Tensor:
        """``(B, latents)`` → images in [0, 1], ``(B, C, H, W)``: sigmoid of the decoder logits."""
        return torch.sigmoid(self.decode_logits(z))

    # -- the objective, in parts a subclass can replace ------------------------------------------
    def reconstruction_term(self, x: Tensor, logits: Tensor) -> Tensor:
        """−log p(x|z) summed over pixels, averaged over the batch (a scalar): Bernoulli cross-entropy,
        or the unit-variance Gaussian's ½‖x − x̂‖² (:func:`gaussian_nll`)."""
        if self.config.recon == "gaussian":
            return gaussian_nll(logits, x)
        return reconstruction_loss(logits, x, self.config.recon)

    def forward_terms(self, x: Tensor) -> dict[str, Tensor]:
        """One stochastic pass. Returns a dict with

        ``mu``, ``logvar``, ``z`` — ``(B, latents)``; ``logits`` — ``(B, C, H, W)``;
        ``recon`` — scalar (:meth:`reconstruction_term`); ``kl_per_latent`` — ``(latents,)`` nats,
        batch-averaged KL(q(z_j|x) ‖ N(0, 1)).
        """
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        logits = self.decode_logits(z)
        return {
            "mu": mu,
            "logvar": logvar,
            "z": z,
            "logits": logits,
            "recon": self.reconstruction_term(x, logits),
            "kl_per_latent": kl_normal_per_latent(mu, logvar),
        }

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """β-VAE eq. 4 (negated): ``recon + β · KL``."""
        t = self.forward_terms(x)
        kl = t["kl_per_latent"].sum()
        return {"loss": t["recon"] + self.config.beta * kl, "recon": t["recon"], "kl": kl}

    @torch.no_grad()
    def extra_logs(self, x: Tensor) -> dict[str, Tensor]:
        """``kl_per_latent`` ``(latents,)``: which latents carry information (the rest collapse to the prior)."""
        mu, logvar = self.encode(x)
        return {"kl_per_latent": kl_normal_per_latent(mu, logvar)}


@register("vae")
class VAE(GaussianVAE):
    """VAE (Kingma & Welling 2014, eq. 3): minimise −ELBO = −E[log p(x|z)] + KL(q(z|x) ‖ N(0, I))."""

    config_cls = VAEConfig
    data_parallel_safe = True  # per-sample losses averaged over the batch


@register("beta_vae")
class BetaVAE(GaussianVAE):
    """β-VAE (Higgins et al. 2017, eq. 4): −E[log p(x|z)] + β·KL(q(z|x) ‖ N(0, I)), β = 4 by default."""

    config_cls = BetaVAEConfig
    data_parallel_safe = True  # per-sample losses averaged over the batch
