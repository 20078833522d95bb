"""DC-IGN: Deep Convolutional Inverse Graphics Network (Kulkarni, Whitney, Kohli & Tenenbaum 2015).

A VAE (the variational objective of §3, eq. 1: −E_q[log p(x|z)] + KL(q(z|x) ‖ N(0, I))) trained on
minibatches in which **one** generative factor changes and all others are fixed (§3.1, "Training with
specific transformations"). Latent ``z_k`` is assigned to factor ``k``; in a batch where factor ``k``
varies (§3.1, steps 1–8):

* forward: every latent ``z_i, i ≠ k`` is replaced by its average over the batch ("clamped"), so the
  decoder must explain all of the batch's variation with ``z_k`` alone;
* backward: the gradient of each clamped latent is replaced by its difference from the batch mean,
  ``z_i − mean_b(z_i)`` (which pulls the encoder's outputs for the fixed factors together), while
  ``z_k`` receives the reconstruction gradient unchanged (:class:`ClampToBatchMean`).

The remaining latents ("intrinsic", e.g. face identity in the paper) get their own batch type: the
assigned (extrinsic) factors are held fixed and only the unassigned factors vary; all assigned latents
are clamped and the intrinsic block passes through. The paper draws batch types at a ratio of about
1:1:1:10 (azimuth : elevation : lighting : intrinsic) — the default ``batch_ratio`` is 1 per assigned
factor and 10 for the intrinsic type.

When every factor of the dataset has its own latent, the dataset cannot render an intrinsic batch
(nothing varies with the assigned factors held fixed). Then — a documented variant, not the paper —
the intrinsic batch is the training loop's own frames with **every latent free** (a plain VAE step):
those frames vary in all the assigned factors, so clamping the assigned latents there (as this model
did until this fix) taught them, on ~10 of every 13 updates, to ignore the very factors they encode.
The faithful setting assigns only the "extrinsic" factors and leaves some dataset factors to the
intrinsic block; ``darla.pipeline.build_vision_model`` does that for ``seekavoid-factors``
(:data:`SEEKAVOID_EXTRINSIC`: lateral, depth, heading, light — pose and lighting, as in the paper —
with floor, wall and object the intrinsic "identity" factors).

Data contract (``vision`` imports nothing of ``envs``): :meth:`DCIGN.attach_factor_dataset` takes any
object with ``factor_names``, ``factor_sizes``, ``sample_factors(n, rng)`` and
``images(factors) -> (n, H, W, C) uint8`` (``envs.factors.FactorDataset``). Once attached,
:meth:`DCIGN.train_step` ignores the frames the training loop hands it and draws its own batch of the
same size — except for the intrinsic type of a fully assigned dataset (above). Without a dataset,
``train_step`` is a plain VAE step on ``x`` (nothing clamped). Batch types are drawn from ``seed`` and
``global_step``, so a resumed run draws the same batches.

Hyper-parameters (Kulkarni et al. 2015, §3.1 and §4): batch-type ratio 1:1:1:10, the clamped
latents' replacement gradient is their difference from the batch mean (scale 1 here; the paper gives
no scale), β = 1 (the plain variational objective of eq. 1; the inherited ``beta`` field). The paper
uses groups of latents per transformation (azimuth, elevation, light: one unit each) and 200 latents
in all; here each assigned factor gets one latent.

"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vision.base import ConfigError, register, to_tensor
from vision.models.vae import GaussianVAE, VAEConfig
from vision.nets import kl_normal_per_latent, reparameterize

log = logging.getLogger(__name__)

INTRINSIC = "intrinsic"
#: The extrinsic (pose and lighting) factors of ``seekavoid-factors``, assigned one latent each by the
#: pipeline; floor, wall and object are left to the intrinsic latents (Kulkarni et al.'s "identity").
SEEKAVOID_EXTRINSIC = ("lateral", "depth", "heading", "light")


class ClampToBatchMean(torch.autograd.Function):
    """DC-IGN's clamp (Kulkarni et al. 2015, §3.1 steps 5 and 7).

    forward:  ``out[:, j] = z[:, j]`` if ``active[j]`` else ``mean_b z[:, j]``;
    backward: ``grad_z[:, j] = grad_out[:, j]`` if ``active[j]`` else ``scale · (z[:, j] − mean_b z[:, j])``.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, active: Tensor, scale: float) -> Tensor:  # z: (B, D), active: (D,) bool
        mean = z.mean(0, keepdim=True)  # (1, D)
        ctx.save_for_backward(z - mean, active)
        ctx.scale = scale
        return torch.where(active, z, mean.expand_as(z))

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None]:
        diff, active = ctx.saved_tensors
        return torch.where(active, grad_out, diff * ctx.scale), None, None


def clamp_to_batch_mean(z: Tensor, active: Tensor, scale: float = 1.0) -> Tensor:
    """Apply :class:`ClampToBatchMean`.

    :param z: latents ``(B, D)``.
    :param active: ``(D,)`` bool, the latents that pass through (the factor that varies in the batch).
    :param scale: multiplies the clamped latents' replacement gradient ``z − mean``.
    """
    if z.ndim != 2 or active.shape != (z.shape[1],):
        raise ValueError(f"clamp_to_batch_mean expects z (B, D) and active (D,), got {tuple(z.shape)}, {tuple(active.shape)}")
    return ClampToBatchMean.apply(z, active.to(device=z.device, dtype=torch.bool), float(scale))


def factor_batch(dataset: Any, vary: Sequence[int], batch_size: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A batch in which only the factors ``vary`` change: the others are fixed to one random draw.

    :param dataset: a factor dataset (``factor_sizes``, ``sample_factors``, ``images``).
    :param vary: indices of the factors that vary, each uniform over its values.
    :return: ``(factors (batch_size, F) int64, images (batch_size, H, W, C) uint8)``.
    """
    sizes = tuple(dataset.factor_sizes)
    for i in vary:
        if not 0 <= i < len(sizes):
            raise ValueError(f"factor index {i} out of range; the dataset has factors 0..{len(sizes) - 1} "
                             f"({', '.join(dataset.factor_names)})")
    factors = np.repeat(dataset.sample_factors(1, rng), batch_size, axis=0)  # (B, F), all rows equal
    for i in vary:
        factors[:, i] = rng.integers(0, sizes[i], size=batch_size)
    return factors, dataset.images(factors)


def one_factor_batch(dataset: Any, factor_index: int, batch_size: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """DC-IGN's training batch (§3.1): factor ``factor_index`` varies, every other factor is fixed.

    :return: ``(factors (batch_size, F) int64, images (batch_size, H, W, C) uint8)``.
    """
    return factor_batch(dataset, [factor_index], batch_size, rng)


@dataclass
class DCIGNConfig(VAEConfig):
    """:param factors: names of the dataset factors that get their own latent, in order (latent ``k`` ↔
        ``factors[k]``); empty = every factor of the attached dataset. Later latents are intrinsic.
    :param batch_ratio: relative frequency of each batch type, one weight per assigned factor then
        one for the intrinsic type; empty = 1 per factor and 10 for intrinsic (paper: 1:1:1:10).
    :param clamp_grad_scale: scale of the clamped latents' replacement gradient ``z − mean``.
    :param seed: seeds the choice of batch types and one-factor batches (with ``global_step``).
    """

    factors: tuple[str, ...] = ()
    batch_ratio: tuple[float, ...] = ()
    clamp_grad_scale: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if len(self.factors) >= self.latents:
            raise ConfigError(
                f"DC-IGN assigns one latent per factor and needs >= 1 intrinsic latent: {len(self.factors)} "
                f"factors {list(self.factors)} need latents > {len(self.factors)}, got latents={self.latents}"
            )
        if any(not w >= 0 for w in self.batch_ratio) or (self.batch_ratio and sum(self.batch_ratio) <= 0):
            raise ConfigError(f"batch_ratio weights must be >= 0 with a positive sum, got {self.batch_ratio}")
        if not self.clamp_grad_scale >= 0:
            raise ConfigError(f"clamp_grad_scale must be >= 0, got {self.clamp_grad_scale}")


@register("dc_ign")
class DCIGN(GaussianVAE):
    """DC-IGN (Kulkarni et al. 2015): a VAE trained on one-factor batches with clamped latents (§3.1).

    ``features`` is the posterior mean; latent ``k < len(factors)`` encodes factor ``factors[k]``.
    """

    config_cls = DCIGNConfig
    config: DCIGNConfig

    def __init__(self, config: DCIGNConfig):
        super().__init__(config)
        self.dataset: Any = None
        self.assigned: list[int] = []  # dataset factor index of latent k
        self.weights = np.zeros(0)

    # -- data ------------------------------------------------------------------------------------
    def attach_factor_dataset(self, dataset: Any) -> None:
        """Train on one-factor batches of ``dataset`` from now on (see the module docstring's contract)."""
        for attr in ("factor_names", "factor_sizes", "sample_factors", "images"):
            if not hasattr(dataset, attr):
                raise TypeError(f"DC-IGN needs a factor dataset with '{attr}' (like envs.factors.FactorDataset); "
                                f"got {type(dataset).__name__}")
        c = self.config
        h, w, ch = tuple(getattr(dataset, "observation_shape", (c.image_size, c.image_size, c.channels)))
        if (h, w, ch) != (c.image_size, c.image_size, c.channels):
            raise ValueError(f"factor dataset renders {h}×{w}×{ch} images, this dc_ign expects "
                             f"{c.image_size}×{c.image_size}×{c.channels}; build the dataset at that size")
        names = list(dataset.factor_names)
        wanted = list(c.factors) or names
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ValueError(f"dc_ign factors {unknown} are not in the dataset; valid: {', '.join(names)}")
        if len(wanted) >= c.latents:
            raise ValueError(f"dc_ign needs latents > {len(wanted)} (one per factor {wanted} plus intrinsic ones), "
                             f"got latents={c.latents}; raise latents or set factors=[...] to a subset")
        ratio = list(c.batch_ratio) or [1.0] * len(wanted) + [10.0]
        if len(ratio) != len(wanted) + 1:
            raise ValueError(f"batch_ratio needs {len(wanted) + 1} weights (one per factor {wanted}, then "
                             f"'{INTRINSIC}'), got {len(ratio)}: {list(c.batch_ratio)}")
        self.dataset = dataset
        self.assigned = [names.index(n) for n in wanted]
        self.weights = np.asarray(ratio, dtype=np.float64) / sum(ratio)
        log.info("dc_ign: latents 0..%d ↔ factors %s; batch ratio %s", len(wanted) - 1, wanted, ratio)
        if len(wanted) == len(names):
            log.warning("dc_ign: every factor of the dataset (%s) has a latent, so intrinsic batches are the "
                        "loop's frames with nothing clamped (not the paper's intrinsic batches); set "
                        "factors=[...] to the extrinsic subset for the faithful scheme", ", ".join(names))

    def batch_types(self) -> list[str]:
        """Names of the batch types, in ``batch_ratio`` order: the assigned factors, then ``intrinsic``."""
        if self.dataset is None:
            return []
        return [self.dataset.factor_names[i] for i in self.assigned] + [INTRINSIC]

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, int(self.global_step)])

    def sample_batch(self, x: Tensor) -> tuple[Tensor, Tensor, int]:
        """The batch for the current step: ``(images (B, C, H, W), active (latents,) bool, type index)``.

        Type ``k < len(assigned)``: factor ``k`` varies, only latent ``k`` active. Type ``len(assigned)``
        (intrinsic): assigned factors fixed, the rest vary, only the intrinsic latents active — drawn from
        the dataset if it has unassigned factors; if it has none, ``x`` itself with every latent active
        (the documented variant of the module docstring). No dataset: ``x``, all active, −1.
        """
        n_lat = self.config.latents
        if self.dataset is None:
            return x, torch.ones(n_lat, dtype=torch.bool, device=x.device), -1
        rng = self._rng()
        kind = int(rng.choice(len(self.weights), p=self.weights))
        active = torch.zeros(n_lat, dtype=torch.bool, device=x.device)
        n_assigned = len(self.assigned)
        if kind < n_assigned:
            active[kind] = True
            _, images = one_factor_batch(self.dataset, self.assigned[kind], x.shape[0], rng)
        else:
            active[n_assigned:] = True
            rest = [i for i in range(len(self.dataset.factor_sizes)) if i not in self.assigned]
            if not rest:  # nothing in the dataset is intrinsic: the loop's frames, nothing clamped
                return x, torch.ones(n_lat, dtype=torch.bool, device=x.device), kind
            _, images = factor_batch(self.dataset, rest, x.shape[0], rng)
        return to_tensor(images, x.device), active, kind

    # -- the objective ---------------------------------------------------------------------------
    def clamped_loss(self, x: Tensor, active: Tensor) -> dict[str, Tensor]:
        """VAE loss (β-weighted KL) with the inactive latents clamped to the batch mean (§3.1, steps 3–8).

        :param x: a one-factor batch ``(B, C, H, W)``; :param active: ``(latents,)`` bool.
        """
        mu, logvar = self.encode(x)
        z = clamp_to_batch_mean(reparameterize(mu, logvar), active, self.config.clamp_grad_scale)
        recon = self.reconstruction_term(x, self.decode_logits(z))
        kl = kl_normal_per_latent(mu, logvar).sum()
        return {"loss": recon + self.config.beta * kl, "recon": recon, "kl": kl}

    def train_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        """One update on this step's batch (:meth:`sample_batch`); ``x`` is used only when no dataset is
        attached or for an intrinsic batch of a fully assigned dataset. Returns ``loss``, ``recon``, ``kl``."""
        (opt,) = optimizers
        batch, active, _ = self.sample_batch(x)
        terms = self.clamped_loss(batch, active)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        self.global_step += 1
        return {k: float(v.detach()) for k, v in terms.items()}
