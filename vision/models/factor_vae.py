"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising").

The VAE objective plus a penalty on the total correlation of the aggregate posterior (§2, eq. 2):

    (1/N) Σ_i [ E_{q(z|x_i)}[log p(x_i|z)] − KL(q(z|x_i) ‖ p(z)) ] − γ · KL(q(z) ‖ q̄(z)),

with q̄(z) = Π_j q(z_j). TC is intractable, so a discriminator D(z) (an MLP) learns to tell samples of
q(z) from samples of q̄(z), and the density-ratio trick gives (eq. 3)

    TC(z) ≈ E_{q(z)}[log D(z) / (1 − D(z))] = E_{q(z)}[logit_q(z) − logit_q̄(z)]

for a two-logit D. Samples of q̄(z) come from :func:`permute_dims`: each latent dimension permuted
independently across the batch (§3, Algorithm 2).

Training (Kim & Mnih 2018, Algorithm 2) draws two batches per step: the VAE is updated on batch
x⁽ⁱ⁾, and D on that batch's z's (label q(z)) against the dimension-permuted z's of a second,
independent batch x⁽ʲ⁾ (label q̄(z)). The generic loop hands :meth:`FactorVAE.train_step` one batch
per call, so the second batch of step t is the loop's batch of step t − 1 (an independent uniform
draw of the same size), kept in memory and re-encoded by the current, pre-update encoder. Both the
VAE and D therefore see a full batch. Only the very first step of a run (or of a resumed run, since
the kept batch is not checkpointed) has no earlier batch: there D permutes the current batch's own
z's — the single-batch variant of public re-implementations, for one step.

The VAE is updated first; D's loss is then computed on *detached* z's, so

* no gradient of D's loss reaches the encoder (and nothing in the already-stepped graph is reused,
  which is what raised "modified by an inplace operation" in public implementations on torch ≥ 1.5:
  1Konny/FactorVAE#15, YannDubs/disentangling-vae#62);
* D's parameters are frozen while the VAE loss is back-propagated, so the VAE's γ·TC term never
  leaks into D's update.

Hyper-parameters (Kim & Mnih 2018, appendix; checked against the reference re-implementations
1Konny/FactorVAE and YannDubs/disentangling-vae ``disvae/models/discriminator.py`` and
``hyperparam.ini``): D is an MLP of 6 linear layers, 1000 hidden units each, LeakyReLU(0.2), 2 output
logits; D's Adam lr 1e-4, betas (0.5, 0.9); the VAE's Adam lr 1e-4, betas (0.9, 0.999); batch 64;
β = 1 on the KL. γ on dSprites (2D Shapes): 35, the paper's best-scoring FactorVAE (score 0.889 at
γ = 35 against β-VAE's 0.814 at β = 4, quoted in the reference deck's Kim & Mnih slides); its sweep
is 10–100, as is disentanglement_lib's {10, 20, 30, 40, 50, 100}; YannDubs' ``[factor_dsprites]``
uses 36. γ is per-dataset (the deck's best 3D-Shapes FactorVAE has γ = 7). On SeekAvoid frames
no γ has been tuned; the default stays the dSprites one (until this change it was γ = 10 with a
6 × 256 D: pass ``gamma=10, disc_hidden=256`` to reproduce earlier checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vision.base import ConfigError, register
from vision.models.vae import GaussianVAE, VAEConfig
from vision.nets import reparameterize

# Labels of the discriminator's two logits.
FROM_Q = 0  # a sample of q(z)
FROM_PERMUTED = 1  # a sample of q̄(z) = Π_j q(z_j)


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Samples of Π_j q(z_j) from samples of q(z) (Kim & Mnih 2018, Algorithm 2): every column of
    ``z`` is shuffled across the batch by its own random permutation, breaking the dependence between
    dimensions while keeping each marginal.

    :param z: ``(B, D)`` latent samples.
    :param generator: optional ``torch.Generator`` for reproducible permutations.
    :return: ``(B, D)``, column j a permutation of ``z[:, j]``.
    """
    if z.ndim != 2:
        raise ValueError(f"permute_dims expects z of shape (batch, latents), got {tuple(z.shape)}")
    b, d = z.shape
    # One independent permutation per column: argsort of uniform noise.
    noise = torch.rand(b, d, generator=generator, device=z.device if generator is None else generator.device)
    idx = noise.argsort(dim=0).to(z.device)  # (B, D)
    return z.gather(0, idx)


class Discriminator(nn.Module):
    """MLP ``(B, latents)`` → ``(B, 2)`` logits [q(z), q̄(z)]: ``layers`` linear layers, LeakyReLU(0.2)."""

    def __init__(self, latents: int, hidden: int, layers: int):
        super().__init__()
        dims = [latents] + [hidden] * (layers - 1)
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        blocks.append(nn.Linear(dims[-1], 2))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


@dataclass
class FactorVAEConfig(VAEConfig):
    """:param gamma: weight γ of the total-correlation penalty.
    :param disc_hidden: hidden units per layer of D (paper: 1000).
    :param disc_layers: number of linear layers of D (paper: 6).
    :param disc_lr: D's Adam learning rate (paper: 1e-4).
    :param disc_beta1: D's Adam β₁ (paper: 0.5).
    :param disc_beta2: D's Adam β₂ (paper: 0.9).

    The inherited ``beta`` weights the KL term as in the VAE (paper: 1).
    """

    gamma: float = 35.0
    disc_hidden: int = 1000
    disc_layers: int = 6
    disc_lr: float = 1e-4
    disc_beta1: float = 0.5
    disc_beta2: float = 0.9

    def validate(self) -> None:
        super().validate()
        if not self.gamma >= 0:
            raise ConfigError(f"gamma must be >= 0, got {self.gamma}; disentanglement_lib sweeps 10–100")
        if self.disc_hidden < 1:
            raise ConfigError(f"disc_hidden must be >= 1, got {self.disc_hidden} (paper: 1000)")
        if self.disc_layers < 1:
            raise ConfigError(f"disc_layers must be >= 1, got {self.disc_layers} (paper: 6)")
        if not self.disc_lr > 0:
            raise ConfigError(f"disc_lr must be > 0, got {self.disc_lr} (paper: 1e-4)")
        for name in ("disc_beta1", "disc_beta2"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {v} (paper: 0.5, 0.9)")


@register("factor_vae")
class FactorVAE(GaussianVAE):
    """FactorVAE (Kim & Mnih 2018, eq. 2–3): ``recon + β·KL + γ·TC``, TC from a discriminator on z.

    Two optimisers (:meth:`configure_optimizers`): Adam over the VAE, Adam over D. D is a submodule,
    so its weights are saved and loaded with the model. ``features`` is the posterior mean.
    """

    config_cls = FactorVAEConfig
    config: FactorVAEConfig

    def __init__(self, config: FactorVAEConfig):
        super().__init__(config)
        self.discriminator = Discriminator(config.latents, config.disc_hidden, config.disc_layers)
        # The previous step's batch: the second, independent batch x^(j) of Algorithm 2 (not saved).
        self._other_batch: Tensor | None = None

    def vae_parameters(self) -> list[nn.Parameter]:
        """Encoder and decoder parameters (everything but D)."""
        disc = {id(p) for p in self.discriminator.parameters()}
        return [p for p in self.parameters() if id(p) not in disc and p.requires_grad]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """``[vae_opt, disc_opt]``: Adam(lr) over the VAE; Adam(disc_lr, (disc_beta1, disc_beta2)) over D."""
        c = self.config
        return [
            torch.optim.Adam(self.vae_parameters(), lr=c.lr),
            torch.optim.Adam(self.discriminator.parameters(), lr=c.disc_lr, betas=(c.disc_beta1, c.disc_beta2)),
        ]

    def total_correlation(self, z: Tensor) -> Tensor:
        """Density-ratio estimate of TC (eq. 3): mean of logit_q(z) − logit_q̄(z) over ``z`` ``(B, D)``."""
        logits = self.discriminator(z)
        return (logits[:, FROM_Q] - logits[:, FROM_PERMUTED]).mean()

    def _vae_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The VAE's terms on ``x`` and the sampled z ``(B, latents)`` they were computed from."""
        t = self.forward_terms(x)
        kl = t["kl_per_latent"].sum()
        tc = self.total_correlation(t["z"])
        total = t["recon"] + self.config.beta * kl + self.config.gamma * tc
        return {"loss": total, "recon": t["recon"], "kl": kl, "tc": tc}, t["z"]

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """The VAE's side: ``loss`` = ``recon + β·kl + γ·tc``. Gradients of ``tc`` would reach D too;
        :meth:`train_step` freezes D for this update and trains D on its own loss."""
        return self._vae_terms(x)[0]

    def discriminator_loss(self, z: Tensor, z_other: Tensor) -> tuple[Tensor, Tensor]:
        """D's cross-entropy (Algorithm 1): ``z`` labelled q(z), ``permute_dims(z_other)`` labelled q̄(z).

        Both are detached, so this loss never reaches the encoder.

        :param z: ``(B, D)`` samples of q(z) (the VAE's batch).
        :param z_other: ``(B', D)`` samples of q(z) from a second batch, to be permuted.
        :return: ``(loss, accuracy)`` scalars.
        """
        z = z.detach()
        z_perm = permute_dims(z_other.detach())
        logits_q = self.discriminator(z)
        logits_p = self.discriminator(z_perm)
        labels_q = torch.full((z.shape[0],), FROM_Q, dtype=torch.long, device=z.device)
        labels_p = torch.full((z_perm.shape[0],), FROM_PERMUTED, dtype=torch.long, device=z.device)
        loss = 0.5 * (F.cross_entropy(logits_q, labels_q) + F.cross_entropy(logits_p, labels_p))
        with torch.no_grad():
            correct = (logits_q.argmax(1) == labels_q).sum() + (logits_p.argmax(1) == labels_p).sum()
            acc = correct.float() / (labels_q.numel() + labels_p.numel())
        return loss, acc

    def train_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        """Algorithm 2: one VAE update on all of ``x``, then one D update on ``x``'s z's against the
        permuted z's of a second batch (the previous call's ``x``; ``x`` itself on the first call).

        :param x: ``(B, C, H, W)`` in [0, 1] with B >= 2.
        :param optimizers: ``[vae_opt, disc_opt]`` from :meth:`configure_optimizers`.
        :return: ``loss`` (the VAE's), ``recon``, ``kl``, ``tc``, ``disc_loss``, ``disc_acc``.
        """
        if len(optimizers) != 2:
            raise ValueError(
                "FactorVAE.train_step needs [vae_opt, disc_opt] from configure_optimizers(), "
                f"got {len(optimizers)} optimiser(s)"
            )
        if x.shape[0] < 2:
            raise ValueError(f"FactorVAE.train_step needs a batch of >= 2 (to permute), got {x.shape[0]}")
        vae_opt, disc_opt = optimizers
        other = self._other_batch
        if other is None or other.shape[1:] != x.shape[1:] or other.device != x.device:
            other = x

        # The second batch is encoded first, by the same (pre-update) encoder as the VAE's batch, as
        # in Algorithm 2 where both gradients are taken at the same parameters.
        with torch.no_grad():
            mu, logvar = self.encode(other)
            z_other = reparameterize(mu, logvar)

        # 1. VAE update on the whole batch. D is frozen so the γ·TC term moves only the encoder and decoder.
        disc_params = list(self.discriminator.parameters())
        flags = [p.requires_grad for p in disc_params]
        for p in disc_params:
            p.requires_grad_(False)
        try:
            terms, z_vae = self._vae_terms(x)
            vae_opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            vae_opt.step()
        finally:
            for p, f in zip(disc_params, flags):
                p.requires_grad_(f)

        # 2. D update on detached samples: the VAE batch's z's vs the second batch's, dimension-permuted.
        d_loss, d_acc = self.discriminator_loss(z_vae, z_other)
        disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        disc_opt.step()

        self._other_batch = x.detach()
        self.global_step += 1
        logs = {k: float(v.detach()) for k, v in terms.items()}
        logs["disc_loss"] = float(d_loss.detach())
        logs["disc_acc"] = float(d_acc)
        return logs
