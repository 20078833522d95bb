"""InfoGAN (Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel 2016, "InfoGAN: Interpretable
Representation Learning by Information Maximizing Generative Adversarial Nets").

The generator's input is split into incompressible noise z and a structured latent code c
(categorical and continuous parts, factored prior P(c) = Π_i P(c_i), eq. 2). A plain GAN may ignore c,
so InfoGAN adds an information term (eq. 1 and 6):

    min_{G,Q} max_D  V_InfoGAN(D, G, Q) = V(D, G) − λ · L_I(G, Q),

where L_I is the variational lower bound on the mutual information I(c; G(z, c)) (Lemma 5.1, eq. 4–5):

    L_I(G, Q) = E_{c ~ P(c), x ~ G(z, c)}[log Q(c | x)] + H(c)  ≤  I(c; G(z, c)).

Q is an auxiliary head sharing every conv layer of D (§6: "Q and D share all convolutional layers"):
a softmax per categorical code, a factored Gaussian (mean, log σ²) per continuous code. Since H(c) is a
constant, we minimise ``info = −E[log Q(c|x)]`` (cross-entropy + Gaussian NLL), and add λ·info to both
players' losses, as in the authors' implementation: D (with Q's head) minimises
``d_gan + λ·info`` on detached fakes, G minimises ``g_gan + λ·info`` through Q.

Architecture (DCGAN, Radford et al. 2016, as in InfoGAN's appendix C): G is FC → 4×4 map → stride-2
transposed convs with BatchNorm and ReLU, sigmoid output in [0, 1]; D is stride-2 convs with LeakyReLU
(0.2) and spectral normalisation (Miyato et al. 2018) instead of D's BatchNorm — the one change, for
stable training on 64×64 frames without the paper's per-dataset tuning. Paper settings: Adam, lr 2e-4
for D and 1e-3 for G, β₁ = 0.5; λ = 1 for categorical codes and smaller for continuous codes
("to ensure λ·L_I is on the same scale as the GAN objectives", §7).

Interface:

* ``features(x)``/``encode(x)`` → Q's estimate of the code, ``(B, n_cat·cat_dim + n_cont)``: the
  softmax probabilities of each categorical code (code ``i`` in dims ``[i·cat_dim, (i+1)·cat_dim)``),
  then the means of the continuous codes (dims ``n_cat·cat_dim + j``).
* ``decode(c)`` → ``G(z₀, c)`` with ``c`` laid out exactly as ``features`` and the noise fixed to its
  prior mean z₀ = 0, so ``decode(features(x))`` is a reconstruction and latent traversals work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from vision.base import ConfigError, VisionConfig, VisionModel, register
from vision.nets import HIDDEN, conv_channels


@dataclass
class InfoGANConfig(VisionConfig):
    """:param n_cat: number of categorical codes c_i ~ Cat(K = cat_dim).
    :param cat_dim: values of each categorical code (paper, MNIST: one code of 10).
    :param n_cont: number of continuous codes c_j ~ Unif(−1, 1).
    :param noise_dim: incompressible noise z ~ N(0, I).
    :param lr: G's (and its info term's) Adam learning rate (paper: 1e-3).
    :param d_lr: D's and Q's Adam learning rate (paper: 2e-4).
    :param beta1: Adam β₁ for both (paper / DCGAN: 0.5).
    :param lambda_cat: λ for the categorical codes' information term (paper: 1).
    :param lambda_cont: λ for the continuous codes' information term (paper: smaller, e.g. 0.1).
    :param spectral: spectral normalisation on D's layers (ours, for stability).

    ``latents`` is unused (the code size is ``n_cat·cat_dim + n_cont``).
    """

    lr: float = 1e-3
    n_cat: int = 1
    cat_dim: int = 10
    n_cont: int = 2
    noise_dim: int = 62
    d_lr: float = 2e-4
    beta1: float = 0.5
    lambda_cat: float = 1.0
    lambda_cont: float = 0.1
    spectral: bool = True

    def validate(self) -> None:
        super().validate()
        if self.n_cat < 0 or self.n_cont < 0 or self.n_cat + self.n_cont == 0:
            raise ConfigError(
                f"InfoGAN needs at least one code: n_cat={self.n_cat}, n_cont={self.n_cont} (both >= 0, sum >= 1)"
            )
        if self.n_cat and self.cat_dim < 2:
            raise ConfigError(f"cat_dim must be >= 2 for a categorical code, got {self.cat_dim}")
        if self.noise_dim < 0:
            raise ConfigError(f"noise_dim must be >= 0, got {self.noise_dim} (paper: 62 on MNIST)")
        if not self.d_lr > 0:
            raise ConfigError(f"d_lr must be > 0, got {self.d_lr} (paper: 2e-4)")
        if not 0 <= self.beta1 < 1:
            raise ConfigError(f"beta1 must be in [0, 1), got {self.beta1} (paper: 0.5)")
        for name in ("lambda_cat", "lambda_cont"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)} (paper: 1 and ~0.1)")


class Generator(nn.Module):
    """``(B, noise_dim + code_dim)`` → images ``(B, C, S, S)`` in [0, 1] (DCGAN: BatchNorm + ReLU)."""

    def __init__(self, in_dim: int, channels: int, image_size: int):
        super().__init__()
        chans = list(reversed(conv_channels(image_size)))
        self.start = chans[0]
        self.fc = nn.Sequential(
            nn.Linear(in_dim, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, chans[0] * 16), nn.BatchNorm1d(chans[0] * 16), nn.ReLU(),
        )
        layers: list[nn.Module] = []
        outs = chans[1:] + [channels]
        for i, (cin, cout) in enumerate(zip(chans, outs)):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            if i < len(chans) - 1:
                layers += [nn.BatchNorm2d(cout), nn.ReLU()]
        self.deconvs = nn.Sequential(*layers)

    def forward(self, zc: Tensor) -> Tensor:
        h = self.fc(zc).view(zc.shape[0], self.start, 4, 4)
        return torch.sigmoid(self.deconvs(h))


class DiscriminatorBody(nn.Module):
    """``(B, C, S, S)`` → ``(B, HIDDEN)``: stride-2 4×4 convs, LeakyReLU(0.2), FC; shared by D and Q."""

    def __init__(self, channels: int, image_size: int, spectral: bool):
        super().__init__()
        sn = spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = []
        prev = channels
        for c in conv_channels(image_size):
            layers += [sn(nn.Conv2d(prev, c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            prev = c
        layers += [nn.Flatten(), sn(nn.Linear(prev * 16, HIDDEN)), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@register("infogan")
class InfoGAN(VisionModel):
    """InfoGAN (Chen et al. 2016, eq. 6): a GAN plus λ·L_I, L_I the variational MI bound of eq. 5.

    Two optimisers (:meth:`configure_optimizers`): ``[d_opt, g_opt]``. ``features`` = Q's code estimate.
    """

    config_cls = InfoGANConfig
    config: InfoGANConfig

    def __init__(self, config: InfoGANConfig):
        super().__init__(config)
        c = config
        self.cat_size = c.n_cat * c.cat_dim
        self.code_dim = self.cat_size + c.n_cont
        self.generator = Generator(c.noise_dim + self.code_dim, c.channels, c.image_size)
        self.body = DiscriminatorBody(c.channels, c.image_size, c.spectral)
        sn = spectral_norm if c.spectral else (lambda m: m)
        self.d_head = sn(nn.Linear(HIDDEN, 1))
        # Q(c|x): categorical logits, continuous means and log-variances.
        self.q_head = nn.Sequential(
            nn.Linear(HIDDEN, HIDDEN), nn.LeakyReLU(0.2), nn.Linear(HIDDEN, self.cat_size + 2 * c.n_cont)
        )

    @property
    def feature_dim(self) -> int:
        return self.code_dim

    # -- codes -----------------------------------------------------------------------------------
    def sample_codes(self, batch: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Draw from the priors: ``noise (B, noise_dim) ~ N(0, I)``, ``cat (B, n_cat)`` int indices
        ~ Unif{0..cat_dim−1}, ``cont (B, n_cont) ~ Unif(−1, 1)`` (torch's global RNG)."""
        c = self.config
        device = device if device is not None else self.d_head.weight.device
        noise = torch.randn(batch, c.noise_dim, device=device)
        cat = torch.randint(0, c.cat_dim, (batch, c.n_cat), device=device)
        cont = torch.rand(batch, c.n_cont, device=device) * 2 - 1
        return noise, cat, cont

    def code_vector(self, cat: Tensor, cont: Tensor) -> Tensor:
        """Indices ``(B, n_cat)`` and values ``(B, n_cont)`` → the code in ``features`` layout ``(B, code_dim)``."""
        onehot = F.one_hot(cat, self.config.cat_dim).float().flatten(1)  # (B, n_cat·cat_dim)
        return torch.cat([onehot, cont], dim=1)

    def generate(self, noise: Tensor, code: Tensor) -> Tensor:
        """G(z, c): ``(B, noise_dim)``, ``(B, code_dim)`` → images ``(B, C, H, W)`` in [0, 1]."""
        return self.generator(torch.cat([noise, code], dim=1))

    def q_params(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q's head on D-body features ``h``: cat logits ``(B, n_cat, cat_dim)``, cont mean and logvar ``(B, n_cont)``."""
        out = self.q_head(h)
        c = self.config
        logits = out[:, : self.cat_size].view(-1, c.n_cat, c.cat_dim)
        mean, logvar = out[:, self.cat_size :].chunk(2, dim=1)
        return logits, mean, logvar.clamp(-8.0, 4.0)

    # -- the interface ---------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Q's code estimate (same as :meth:`features`)."""
        return self.features(x)

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → ``(B, n_cat·cat_dim + n_cont)``: softmax of each categorical code, then
        the means of the continuous codes."""
        logits, mean, _ = self.q_params(self.body(x))
        return torch.cat([logits.softmax(-1).flatten(1), mean], dim=1)

    def decode(self, z: Tensor) -> Tensor:
        """``G(0, c)``: a code ``(B, code_dim)`` in :meth:`features` layout → images ``(B, C, H, W)``."""
        if z.ndim != 2 or z.shape[1] != self.code_dim:
            raise ValueError(
                f"infogan.decode expects codes of shape (B, {self.code_dim}) laid out like features(); "
                f"got {tuple(z.shape)}"
            )
        noise = torch.zeros(z.shape[0], self.config.noise_dim, device=z.device)
        return self.generate(noise, z)

    # -- the objective ---------------------------------------------------------------------------
    def info_loss(self, h_fake: Tensor, cat: Tensor, cont: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """−E[log Q(c|x)] (eq. 5 without the constant H(c)), split by code type.

        :param h_fake: D-body features of G(z, c), ``(B, HIDDEN)``.
        :return: ``(info_cat, info_cont, cat_accuracy)``: cross-entropy summed over categorical codes,
            Gaussian NLL summed over continuous codes (batch means), and Q's accuracy on ``cat``.
        """
        logits, mean, logvar = self.q_params(h_fake)
        zero = h_fake.new_zeros(())
        if self.config.n_cat:
            info_cat = F.cross_entropy(logits.flatten(0, 1), cat.flatten(), reduction="sum") / cat.shape[0]
            acc = (logits.argmax(-1) == cat).float().mean().detach()
        else:
            info_cat, acc = zero, zero
        if self.config.n_cont:
            nll = 0.5 * (math.log(2 * math.pi) + logvar + (cont - mean).pow(2) * torch.exp(-logvar))
            info_cont = nll.sum(1).mean()
        else:
            info_cont = zero
        return info_cat, info_cont, acc

    def _weighted_info(self, info_cat: Tensor, info_cont: Tensor) -> Tensor:
        return self.config.lambda_cat * info_cat + self.config.lambda_cont * info_cont

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Both players' losses on real ``x`` and one batch of fakes (for evaluation; training uses
        :meth:`train_step`). ``loss`` = G's side: ``g_gan + λ·info``."""
        noise, cat, cont = self.sample_codes(x.shape[0], x.device)
        fake = self.generate(noise, self.code_vector(cat, cont))
        h_fake = self.body(fake)
        d_real, d_fake = self.d_head(self.body(x)), self.d_head(h_fake)
        d_gan = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
            F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        g_gan = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        info_cat, info_cont, acc = self.info_loss(h_fake, cat, cont)
        info = self._weighted_info(info_cat, info_cont)
        return {"loss": g_gan + info, "g_gan": g_gan, "d_gan": d_gan, "info_cat": info_cat,
                "info_cont": info_cont, "q_acc": acc}

    def d_parameters(self) -> list[nn.Parameter]:
        """D's body, D's head and Q's head (Q shares D's body, so they are updated together)."""
        return [*self.body.parameters(), *self.d_head.parameters(), *self.q_head.parameters()]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """``[d_opt, g_opt]``: Adam(d_lr, (β₁, 0.999)) over D + Q; Adam(lr, (β₁, 0.999)) over G."""
        c = self.config
        return [
            torch.optim.Adam(self.d_parameters(), lr=c.d_lr, betas=(c.beta1, 0.999)),
            torch.optim.Adam(self.generator.parameters(), lr=c.lr, betas=(c.beta1, 0.999)),
        ]

    def train_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        """One D/Q update then one G update (Goodfellow et al. 2014, Algorithm 1, k = 1).

        :param x: real images ``(B, C, H, W)`` in [0, 1], B >= 2 (BatchNorm in G).
        :param optimizers: ``[d_opt, g_opt]`` from :meth:`configure_optimizers`.
        :return: ``loss`` (G's total), ``g_gan``, ``d_gan``, ``info_cat``, ``info_cont``, ``q_acc``.
        """
        if len(optimizers) != 2:
            raise ValueError(
                f"InfoGAN.train_step needs [d_opt, g_opt] from configure_optimizers(), got {len(optimizers)}"
            )
        if x.shape[0] < 2:
            raise ValueError(f"InfoGAN.train_step needs a batch of >= 2 (BatchNorm in G), got {x.shape[0]}")
        d_opt, g_opt = optimizers
        noise, cat, cont = self.sample_codes(x.shape[0], x.device)
        fake = self.generate(noise, self.code_vector(cat, cont))

        # 1. D and Q: real vs detached fake, plus λ·info on the fake's codes.
        h_fake = self.body(fake.detach())
        d_real, d_fake = self.d_head(self.body(x)), self.d_head(h_fake)
        d_gan = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
            F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        info_cat, info_cont, acc = self.info_loss(h_fake, cat, cont)
        d_opt.zero_grad(set_to_none=True)
        (d_gan + self._weighted_info(info_cat, info_cont)).backward()
        d_opt.step()

        # 2. G: non-saturating loss plus λ·info through the (frozen) D body and Q head.
        d_params = self.d_parameters()
        flags = [p.requires_grad for p in d_params]
        for p in d_params:
            p.requires_grad_(False)
        try:
            h = self.body(fake)
            g_gan = F.binary_cross_entropy_with_logits(self.d_head(h), torch.ones_like(d_fake))
            g_cat, g_cont, _ = self.info_loss(h, cat, cont)
            g_total = g_gan + self._weighted_info(g_cat, g_cont)
            g_opt.zero_grad(set_to_none=True)
            g_total.backward()
            g_opt.step()
        finally:
            for p, f in zip(d_params, flags):
                p.requires_grad_(f)

        self.global_step += 1
        terms = {"loss": g_total, "g_gan": g_gan, "d_gan": d_gan, "info_cat": info_cat,
                 "info_cont": info_cont, "q_acc": acc}
        return {k: float(v.detach()) for k, v in terms.items()}

    @torch.no_grad()
    def code_accuracy(self, n: int = 256) -> float:
        """How well Q recovers the categorical codes of fresh G samples (eval mode): the fraction of
        ``(sample, code)`` pairs with argmax Q = c. Chance is ``1 / cat_dim``."""
        if not self.config.n_cat:
            raise ValueError("code_accuracy needs a categorical code; this InfoGAN has n_cat=0")
        was = self.training
        self.eval()
        try:
            noise, cat, cont = self.sample_codes(n)
            logits, _, _ = self.q_params(self.body(self.generate(noise, self.code_vector(cat, cont))))
            return float((logits.argmax(-1) == cat).float().mean())
        finally:
            self.train(was)
