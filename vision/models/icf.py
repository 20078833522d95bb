"""Independently Controllable Factors (Thomas, Pondard, Bengio, Sarfati, Beaudoin, Meurs, Pineau,
Precup & Bengio 2017, "Independently Controllable Factors"; earlier "Independently Controllable
Features", arXiv:1703.07718).

An autoencoder f/g whose K code units are each paired with a policy π_k(a|s) that should change unit k
and no other. The *selectivity* of action a for unit k in state s (§2, eq. 1) is

    sel(s, a, k) = E_{s' ~ P(s'|s, a)} [ |f_k(s') − f_k(s)| / Σ_k' |f_k'(s') − f_k'(s)| ],

and the model minimises (§2, eq. 2)

    E_s[ ½‖s − g(f(s))‖² ] − λ · Σ_k E_s[ Σ_a π_k(a|s) log sel(s, a, k) ].

The expectation over the environment's transition can only be sampled, so the model learns by
acting: each update draws ``env_steps`` transitions, each with an action from the behaviour policy
μ(a|s) = (1/K) Σ_k π_k(a|s) (a uniformly drawn unit k, then a ~ π_k(·|s)), and one environment step
s → s'. The selectivity term of eq. 2 **sums over all K units** on every transition: one s' gives
sel(s, a, k) for every k, and importance weights w_k = π_k(a|s) / μ(a|s) turn the one sampled action
into an unbiased estimate of each Σ_a π_k(a|s) log sel(s, a, k):

    Σ_k Σ_a π_k(a|s) log sel(s, a, k) = E_{a~μ} [ Σ_k w_k(a, s) · log sel(s, a, k) ].

Gradients: through f pathwise (log sel, with w_k held fixed) and through π_k via w_k (μ held fixed),
with a per-unit batch-mean baseline subtracted from log sel in the policy part (Σ_a ∇π_k(a|s) = 0, so
the baseline changes the variance, not the expectation). The sum over actions cannot be taken
exactly: a real environment cannot give s' for every action from one state. (Until this fix the
term used only the drawn unit's log sel per transition, i.e. a 1/K-scaled single-unit estimate.)

Data contract (``vision`` imports nothing of ``envs``): :meth:`ICF.attach_env` takes a gymnasium-API
environment (``reset(seed=) -> (obs, info)``, ``step(a) -> (obs, r, terminated, truncated, info)``)
whose observations are ``(H, W, C) uint8`` frames of this model's size and whose actions are
``0..n_actions−1`` (e.g. ``gymnasium.make("darla/SeekAvoid-v0")``, 3 actions). Without an env,
:meth:`ICF.train_step` is a plain autoencoder step on the loop's frames (selectivity term 0); with one,
it adds the selectivity term. The paper's reconstruction is ``½‖s − g(f(s))‖²`` (``recon="gaussian"``,
:func:`vision.models.vae.gaussian_nll`); the default is the zoo's Bernoulli likelihood, which suits
[0, 1] colour frames better (a documented deviation). λ has no value in the paper for our frames:
the default 10 was chosen when the term was the single-unit estimate; summing over K units makes the
same λ weigh selectivity up to K times more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vision.base import ConfigError, VisionConfig, VisionModel, register, to_tensor
from vision.models.ae import DeterministicCode
from vision.models.vae import gaussian_nll
from vision.nets import ConvDecoder, ConvEncoder, reconstruction_loss

EPS = 1e-6


def selectivity_all(f_s: Tensor, f_next: Tensor) -> Tensor:
    """Sample estimate of sel(s, a, k) (Thomas et al. 2017, eq. 1) for **every** unit k, one
    transition per row: ``(B, K)`` with rows summing to ~1.

    :param f_s: codes of s, ``(B, K)``; :param f_next: codes of s', ``(B, K)``.
    """
    delta = (f_next - f_s).abs()  # (B, K)
    return delta / (delta.sum(1, keepdim=True) + EPS)


def selectivity(f_s: Tensor, f_next: Tensor, k: Tensor) -> Tensor:
    """Sample estimate of sel(s, a, k) (Thomas et al. 2017, eq. 1) for one transition per row.

    :param f_s: codes of s, ``(B, K)``; :param f_next: codes of s', ``(B, K)``;
    :param k: the unit each transition's policy targets, ``(B,)`` long.
    :return: ``(B,)`` in [0, 1]: |Δf_k| / Σ_k' |Δf_k'|.
    """
    delta = (f_next - f_s).abs()  # (B, K)
    return delta.gather(1, k[:, None]).squeeze(1) / (delta.sum(1) + EPS)


@dataclass
class ICFConfig(VisionConfig):
    """:param latents: K, the code units, one policy each.
    :param n_actions: the environment's discrete actions (SeekAvoid: 3).
    :param lam: λ, the weight of the selectivity term (10: it competes with a reconstruction summed over
        pixels; at λ = 1 selectivity barely moved in our tests).
    :param env_steps: environment transitions per update.
    :param recon: ``bernoulli`` or ``gaussian`` (½ squared error, as in the paper).
    :param seed: seeds the environment resets and the choice of units.
    """

    latents: int = 8
    n_actions: int = 3
    lam: float = 10.0
    env_steps: int = 16
    recon: str = "bernoulli"
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if self.n_actions < 2:
            raise ConfigError(f"n_actions must be >= 2, got {self.n_actions}")
        if not self.lam >= 0:
            raise ConfigError(f"lam must be >= 0, got {self.lam}")
        if self.env_steps < 2:
            raise ConfigError(f"env_steps must be >= 2 (a baseline needs a batch), got {self.env_steps}")
        if self.recon not in ("bernoulli", "gaussian"):
            raise ConfigError(f"recon must be one of bernoulli, gaussian, got {self.recon!r}")


@register("icf")
class ICF(DeterministicCode, VisionModel):
    """Autoencoder + one policy per code unit, trained with the selectivity objective (Thomas et al. 2017)."""

    config_cls = ICFConfig
    config: ICFConfig

    def __init__(self, config: ICFConfig):
        super().__init__(config)
        c = config
        self.encoder = ConvEncoder(c.channels, c.image_size, c.latents)
        self.decoder = ConvDecoder(c.latents, c.channels, c.image_size)
        # π_k(a|s) for all k at once, from the code f(s): (B, K·A) logits.
        self.policies = nn.Sequential(nn.Linear(c.latents, 64), nn.ReLU(), nn.Linear(64, c.latents * c.n_actions))
        self.env: Any = None
        self._obs: np.ndarray | None = None
        self._rng = np.random.default_rng(c.seed)

    # -- the interface: encode/features are f(s) ``(B, K)``, decode is g(z) (DeterministicCode) ------
    def policy_logits(self, f: Tensor) -> Tensor:
        """Logits of π_k(a|s) from codes ``(B, K)`` → ``(B, K, n_actions)``."""
        return self.policies(f).view(-1, self.config.latents, self.config.n_actions)

    # -- acting ----------------------------------------------------------------------------------
    def attach_env(self, env: Any) -> None:
        """Learn selectivity by acting in ``env`` (module docstring's contract); resets it."""
        for attr in ("reset", "step"):
            if not hasattr(env, attr):
                raise TypeError(f"icf needs a gymnasium-API env with '{attr}', got {type(env).__name__}")
        n = getattr(getattr(env, "action_space", None), "n", None)
        if n is not None and int(n) != self.config.n_actions:
            raise ValueError(f"env has {n} actions, this icf was built with n_actions={self.config.n_actions}; "
                             f"make it with n_actions={n}")
        self.env = env
        obs, _ = env.reset(seed=int(self._rng.integers(2**31)))
        self._check_obs(obs)
        self._obs = obs

    def _check_obs(self, obs: Any) -> None:
        c = self.config
        if not isinstance(obs, np.ndarray) or obs.shape != (c.image_size, c.image_size, c.channels):
            raise ValueError(f"icf needs (H, W, C) = ({c.image_size}, {c.image_size}, {c.channels}) uint8 frames "
                             f"from the env, got {getattr(obs, 'shape', type(obs).__name__)}; resize the env's "
                             "observations or build icf with its image_size")

    @torch.no_grad()
    def collect(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``n`` transitions with the current policies: ``(s (n, H, W, C), k (n,), a (n,), s' (n, H, W, C))``."""
        if self.env is None:
            raise RuntimeError("icf has no environment: call attach_env(env) first")
        device = next(self.parameters()).device
        s, ks, acts, s2 = [], [], [], []
        for _ in range(n):
            k = int(self._rng.integers(self.config.latents))
            logits = self.policy_logits(self.encoder(to_tensor(self._obs, device)))[0, k]
            probs = torch.softmax(logits.double(), -1).cpu().numpy()
            a = int(self._rng.choice(self.config.n_actions, p=probs / probs.sum()))
            obs, _, terminated, truncated, _ = self.env.step(a)
            s.append(self._obs)
            ks.append(k)
            acts.append(a)
            s2.append(obs)
            if terminated or truncated:
                obs, _ = self.env.reset(seed=int(self._rng.integers(2**31)))
            self._obs = obs
        return np.stack(s), np.array(ks), np.array(acts), np.stack(s2)

    # -- the objective ---------------------------------------------------------------------------
    def selectivity_terms(self, s: Tensor, k: Tensor, a: Tensor, s_next: Tensor) -> dict[str, Tensor]:
        """The selectivity part of eq. 2 on transitions drawn with μ = (1/K) Σ_k π_k, summed over all
        K units (module docstring): ``sel_loss`` = −mean_b Σ_k [ w_k·log sel_k ] with the gradient split
        into a pathwise part (w fixed) and a policy part (log sel − per-unit baseline, fixed);
        ``selectivity`` = mean sel(s, a, k) of the unit whose policy acted, ``selectivity_all`` = mean
        over units of the π_k-weighted selectivity.

        :param s: ``(B, C, H, W)``; :param k: ``(B,)`` long, the unit whose policy drew ``a`` (logging);
        :param a: ``(B,)`` long actions; :param s_next: ``(B, C, H, W)``.
        """
        f_s, f_next = self.encoder(s), self.encoder(s_next)
        sel = selectivity_all(f_s, f_next)  # (B, K)
        log_sel = torch.log(sel + EPS)
        probs = torch.softmax(self.policy_logits(f_s), -1)  # (B, K, A)
        rows = torch.arange(len(a), device=a.device)
        pi_a = probs[rows, :, a]  # (B, K): π_k(a|s) for the action taken
        mu_a = pi_a.mean(1, keepdim=True).detach()  # (B, 1): the behaviour policy's probability of a
        w = pi_a / mu_a  # (B, K) importance weights, differentiable in the policies
        advantage = (log_sel - log_sel.mean(0, keepdim=True)).detach()  # per-unit batch-mean baseline
        sel_loss = -(w.detach() * log_sel).sum(1).mean() - (w * advantage).sum(1).mean()
        acted = sel[rows, k].mean().detach()
        return {"sel_loss": sel_loss, "selectivity": acted,
                "selectivity_all": (w.detach() * sel).mean().detach()}

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Reconstruction on ``x``, plus λ·selectivity on fresh transitions when an env is attached."""
        logits = self.decoder(self.encoder(x))
        recon = gaussian_nll(logits, x) if self.config.recon == "gaussian" else reconstruction_loss(logits, x, "bernoulli")
        terms = {"loss": recon, "recon": recon}
        if self.env is not None:
            s, k, a, s2 = self.collect(self.config.env_steps)
            device = x.device
            sel = self.selectivity_terms(to_tensor(s, device), torch.as_tensor(k, device=device),
                                         torch.as_tensor(a, device=device), to_tensor(s2, device))
            terms["loss"] = recon + self.config.lam * sel["sel_loss"]
            terms.update(sel)
        return terms
