"""CCI-VAE: β-VAE with controlled capacity increase (Burgess et al. 2018, "Understanding disentangling
in β-VAE", §5, eq. 8). Minimise

    −E_{q(z|x)}[log p(x|z)] + γ · |KL(q(z|x) ‖ p(z)) − C|,

with the target capacity C (nats) raised linearly from ``c_start`` (0, "gradually increased from
zero", §5) to ``c_max`` over ``c_steps`` updates and held at ``c_max`` afterwards. Early on the small
C forces the latent channel to carry only the factor that buys the most reconstruction (position on
dSprites); as C grows the model adds factors one at a time while keeping the earlier ones
disentangled (§4, Fig. 4).

Hyper-parameters (Burgess et al. 2018, §5 / appendix A; the same values are in the reference
re-implementation YannDubs/disentangling-vae ``hyperparam.ini``, ``[betaB_dsprites]``: ``betaB_G =
1000``, ``betaB_initC = 0``, ``betaB_finC = 25``, ``reg_anneal = 100000``, Adam lr 5e-4): γ = 1000,
C from 0 to 25 nats over 100k iterations on dSprites (50 nats on CelebA).

The schedule's length must fit the run: with ``c_steps = 100_000`` a 4k-step run would end at
C = 1 nat and γ = 1000 would pin the code there. The model cannot see the run's length through the
generic ``train_step(x, optimizers)`` interface, so ``c_steps`` is a config field: the pipeline
(``darla.pipeline.build_vision_model``) sets it to ``capacity_fraction × vision.steps`` unless the
user gave ``c_steps`` explicitly, and :meth:`CCIVAE.set_total_steps` does the same for any loop that
calls it. ``capacity_fraction`` defaults to 1 (C reaches ``c_max`` at the last update); the paper
rises over 100k of a longer run, so a fraction < 1 holds C at ``c_max`` for the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from vision.base import ConfigError, register
from vision.models.vae import GaussianVAE, VAEConfig


def capacity_schedule(step: int, c_start: float, c_max: float, c_steps: int) -> float:
    """Target capacity C (nats) at update ``step``: linear from ``c_start`` (step 0) to ``c_max``
    (step ``c_steps``), constant ``c_max`` afterwards (Burgess et al. 2018, §5).

    :param step: optimiser updates done so far (negative steps are treated as 0).
    :param c_start: capacity at step 0, nats.
    :param c_max: final capacity, nats.
    :param c_steps: updates over which C rises; 0 means ``c_max`` from the start.
    """
    if c_steps <= 0:
        return float(c_max)
    frac = min(max(step, 0) / c_steps, 1.0)
    return float(c_start + (c_max - c_start) * frac)


@dataclass
class CCIVAEConfig(VAEConfig):
    """:param gamma: weight γ of |KL − C| (paper: 1000 on dSprites; large, so KL tracks C closely).
    :param c_start: capacity C at step 0, nats (paper: 0).
    :param c_max: capacity C after ``c_steps`` updates, nats (paper: 25 on dSprites).
    :param c_steps: number of updates over which C rises linearly (paper: 100_000); the pipeline and
        :meth:`CCIVAE.set_total_steps` replace it by ``capacity_fraction`` × the run's length.
    :param capacity_fraction: share of the run over which C rises when the run's length is known
        (1 = C reaches ``c_max`` at the last update).

    The inherited ``beta`` is not used: γ and C replace it.
    """

    gamma: float = 1000.0
    c_start: float = 0.0
    c_max: float = 25.0
    c_steps: int = 100_000
    capacity_fraction: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not self.gamma > 0:
            raise ConfigError(f"gamma must be > 0, got {self.gamma}; the paper uses 1000 on dSprites")
        if not self.c_start >= 0:
            raise ConfigError(f"c_start must be >= 0 nats, got {self.c_start}")
        if not self.c_max >= self.c_start:
            raise ConfigError(
                f"c_max ({self.c_max}) must be >= c_start ({self.c_start}); "
                "capacity only rises (e.g. 0.5 → 25 nats)"
            )
        if self.c_steps < 0:
            raise ConfigError(f"c_steps must be >= 0 (0 = c_max from the start), got {self.c_steps}")
        if not 0 < self.capacity_fraction <= 1:
            raise ConfigError(f"capacity_fraction must be in (0, 1], got {self.capacity_fraction}; "
                              "1 = C reaches c_max at the run's last update")


@register("cci_vae")
class CCIVAE(GaussianVAE):
    """CCI-VAE (Burgess et al. 2018, eq. 8): ``recon + γ·|KL − C(step)|``.

    C is read from the ``global_step`` buffer, which is saved with the weights, so a resumed run
    continues the schedule where it stopped.
    """

    config_cls = CCIVAEConfig
    config: CCIVAEConfig

    def set_total_steps(self, steps: int) -> None:
        """Fit the schedule to a run of ``steps`` updates: ``c_steps = ceil(capacity_fraction · (steps − 1))``,
        so the run's last update (step ``steps − 1``) already uses ``c_max``, whatever the run's length.

        :param steps: optimiser updates in the whole run (including any done before a resume).
        """
        if not isinstance(steps, (int,)) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"cci_vae: set_total_steps needs a positive int, got {steps!r}")
        self.config.c_steps = math.ceil(self.config.capacity_fraction * (steps - 1))  # 0 = c_max throughout

    def capacity(self) -> float:
        """The current target capacity C in nats (from ``global_step``)."""
        c = self.config
        return capacity_schedule(int(self.global_step), c.c_start, c.c_max, c.c_steps)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Terms ``loss``, ``recon``, ``kl`` (nats, summed over latents) and ``capacity`` (C, nats)."""
        t = self.forward_terms(x)
        kl = t["kl_per_latent"].sum()
        cap = kl.new_tensor(self.capacity())
        return {
            "loss": t["recon"] + self.config.gamma * (kl - cap).abs(),
            "recon": t["recon"],
            "kl": kl,
            "capacity": cap,
        }
