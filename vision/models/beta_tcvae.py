"""β-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs").

The KL term of the ELBO, averaged over the data, splits into three parts (§3, eq. 2):

    E_{p(n)}[KL(q(z|n) ‖ p(z))] =  KL(q(z, n) ‖ q(z) p(n))          index-code MI   I_q(z; n)
                                 + KL(q(z) ‖ Π_j q(z_j))              total correlation (TC)
                                 + Σ_j KL(q(z_j) ‖ p(z_j))            dimension-wise KL

and β-TCVAE minimises ``recon + α·MI + β·TC + γ·dw_KL`` (eq. 4); the paper keeps α = γ = 1 and tunes
β only. All three need the aggregate posterior q(z) = 1/N Σ_n q(z|n), estimated on the minibatch:

* **MWS**, minibatch-weighted sampling (§4, eq. 5, the default): for sample z_i of the batch,
  log q(z_i) ≈ log 1/(N·M) Σ_j q(z_i | n_j), and likewise per dimension for log q(z_ij).
* **MSS**, minibatch stratified sampling (Appendix C.2): the sample's own posterior gets weight 1/N and
  each of the M − 1 others (N − 1)/(N·(M − 1)), so the weights sum to 1; when the batch is the whole
  data set (M = N) this is the exact q(z). (We do not reproduce the reference code's weight matrix,
  whose strided indexing is reported wrong: rtqichen/beta-tcvae PR #1.)

Both need N, the size of the training set: ``dataset_size`` in the config, which the training loop
(``vision.train`` / ``darla train-vision``) should set to the number of frames it trains on.

Every estimator telescopes: mi + tc + dw_kl = E[log q(z|x) − log p(z)] exactly, a one-sample
estimate of the VAE's KL. The split itself is biased under MWS: the 1/(N·M) weight undershoots
q(z) (mi reads high) and, more so, the broad per-dimension marginals (dw_kl reads low), so TC reads
tens of nats even for independent latents when N = 10⁴; the offsets are nearly constant, and the
gradients are what the paper trains with. MSS gives values near the truth (TC ≈ 0 for independent
latents). Use ``sampling="mss"`` when the logged values themselves matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from vision.base import ConfigError, register
from vision.models.vae import GaussianVAE, VAEConfig
from vision.nets import log_normal_density

SAMPLINGS = ("mws", "mss")


def log_importance_weights(batch_size: int, dataset_size: int, sampling: str = "mws") -> Tensor:
    """``(M, M)`` log weights w[i, j] of q(z_i | n_j) in the estimate of q(z_i).

    :param batch_size: M, the minibatch size (>= 2 for ``mss``).
    :param dataset_size: N, the number of training examples (>= M).
    :param sampling: ``mws`` (all 1/(N·M)) or ``mss`` (1/N on the diagonal, (N−1)/(N·(M−1)) off it).
    """
    m, n = batch_size, dataset_size
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling '{sampling}'; valid: {', '.join(SAMPLINGS)}")
    if n < m:
        raise ValueError(
            f"dataset_size ({n}) is smaller than the batch ({m}); set dataset_size to the number of "
            "training frames (the training loop should pass it)"
        )
    if sampling == "mws":
        return torch.full((m, m), -math.log(n * m))
    if m < 2:
        raise ValueError(f"minibatch stratified sampling needs a batch of >= 2, got {m}")
    w = torch.full((m, m), math.log((n - 1) / (n * (m - 1))))
    w.fill_diagonal_(-math.log(n))
    return w


def log_aggregate_posterior(
    z: Tensor, mu: Tensor, logvar: Tensor, dataset_size: int, sampling: str = "mws"
) -> tuple[Tensor, Tensor]:
    """Minibatch estimates of log q(z_i) and Σ_j log q(z_ij) for each sample (Chen et al. 2018, §4).

    :param z: ``(M, D)`` samples, z_i ~ q(z | x_i).
    :param mu: ``(M, D)`` posterior means of the same batch.
    :param logvar: ``(M, D)`` posterior log-variances.
    :param dataset_size: N, the number of training examples.
    :param sampling: ``mws`` or ``mss``.
    :return: ``(log_qz, log_prod_qzj)``, each ``(M,)``.
    """
    m = z.shape[0]
    # [i, j, d] = log q(z_id | x_j): every sample under every posterior of the batch.
    mat = log_normal_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))  # (M, M, D)
    w = log_importance_weights(m, dataset_size, sampling).to(z)  # (M, M)
    log_qz = torch.logsumexp(w + mat.sum(2), dim=1)  # (M,)
    log_prod_qzj = torch.logsumexp(w.unsqueeze(2) + mat, dim=1).sum(1)  # (M,)
    return log_qz, log_prod_qzj


def kl_decomposition(
    z: Tensor, mu: Tensor, logvar: Tensor, dataset_size: int, sampling: str = "mws"
) -> dict[str, Tensor]:
    """The three KL terms of Chen et al. 2018, eq. 2, as batch means (nats), plus their sum.

    :return: dict with ``mi`` = E[log q(z|x) − log q(z)], ``tc`` = E[log q(z) − Σ_j log q(z_j)],
        ``dw_kl`` = E[Σ_j log q(z_j) − log p(z)] and ``kl`` = E[log q(z|x) − log p(z)] (= their sum).
    """
    log_qz, log_prod_qzj = log_aggregate_posterior(z, mu, logvar, dataset_size, sampling)
    log_qz_x = log_normal_density(z, mu, logvar).sum(1)  # (M,)
    zeros = torch.zeros_like(z)
    log_pz = log_normal_density(z, zeros, zeros).sum(1)  # (M,) under N(0, I)
    return {
        "mi": (log_qz_x - log_qz).mean(),
        "tc": (log_qz - log_prod_qzj).mean(),
        "dw_kl": (log_prod_qzj - log_pz).mean(),
        "kl": (log_qz_x - log_pz).mean(),
    }


@dataclass
class BetaTCVAEConfig(VAEConfig):
    """:param alpha: weight of the index-code mutual information (paper: 1).
    :param beta: weight of the total correlation — *not* of the whole KL as in β-VAE (paper tunes it;
        6 is a common dSprites choice).
    :param gamma: weight of the dimension-wise KL (paper: 1).
    :param dataset_size: N, the number of training frames; the training loop should set it.
    :param sampling: ``mws`` (minibatch-weighted, the paper's main estimator) or ``mss`` (stratified).
    """

    alpha: float = 1.0
    beta: float = 6.0
    gamma: float = 1.0
    dataset_size: int = 10_000
    sampling: str = "mws"

    def validate(self) -> None:
        super().validate()
        for name in ("alpha", "gamma"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.dataset_size < 2:
            raise ConfigError(
                f"dataset_size must be >= 2 (the number of training frames), got {self.dataset_size}"
            )
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")


@register("beta_tcvae")
class BetaTCVAE(GaussianVAE):
    """β-TCVAE (Chen et al. 2018, eq. 4): ``recon + α·MI + β·TC + γ·dw_KL`` with q(z) estimated on the
    minibatch (MWS, eq. 5, or MSS, App. C.2). The batch must not exceed ``dataset_size``.
    """

    config_cls = BetaTCVAEConfig
    config: BetaTCVAEConfig

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Terms ``loss``, ``recon``, ``mi``, ``tc``, ``dw_kl`` and ``kl`` (the analytic KL, for reference)."""
        c = self.config
        t = self.forward_terms(x)
        parts = kl_decomposition(t["z"], t["mu"], t["logvar"], c.dataset_size, c.sampling)
        total = t["recon"] + c.alpha * parts["mi"] + c.beta * parts["tc"] + c.gamma * parts["dw_kl"]
        return {
            "loss": total,
            "recon": t["recon"],
            "mi": parts["mi"],
            "tc": parts["tc"],
            "dw_kl": parts["dw_kl"],
            "kl": t["kl_per_latent"].sum(),
        }
