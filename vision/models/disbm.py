"""DisBM: disentangling Boltzmann machine (Reed, Sohn, Zhang & Lee, ICML 2014, "Learning to
Disentangle Factors of Variation with Manifold Interaction").

Two groups of binary hidden units, m and h (e.g. identity and pose), interact **multiplicatively**
with the visible units v through a factored three-way tensor, plus the usual pairwise terms (§3,
energy of the disBM):

    E(v, m, h) = − Σ_f (Σ_i W^v_if v_i)(Σ_j W^m_jf m_j)(Σ_k W^h_kf h_k)
                 − Σ_ij P^m_ij v_i m_j − Σ_ik P^h_ik v_i h_k − Σ_j b^m_j m_j − Σ_k b^h_k h_k − Σ_i c_i v_i.

Given the other two layers each layer's units are conditionally independent sigmoids (§3, the
conditionals), e.g. P(m_j = 1 | v, h) = σ(Σ_f W^m_jf (W^v·v)_f (W^h·h)_f + (P^m·v)_j + b^m_j). m and h
are *not* independent given v (the three-way term couples them), so the posterior is approximated by
mean-field updates alternating between the two groups (``meanfield_steps``). Training is contrastive
divergence (Hinton 2002; §3.1 "Learning"): the positive phase is the mean-field posterior on the
data, the negative phase ``cd_steps`` of block Gibbs sampling v → (m, h) → v; the update is
∂E/∂θ at the negative sample minus at the data, which we obtain as the gradient of
``E(data) − E(sample)`` with every state detached.

Preprocessing (ours): a BM on 64×64×3 = 12 288 visible units with a dense three-way tensor is far too
slow for our budget, so frames are area-downsampled to ``bm_size``×``bm_size`` (16 by default) and
the pixel intensities in [0, 1] are used as the visible units' probabilities (mean-field binary
visibles). ``decode`` upsamples back to ``image_size``.

Manifold regularisation (§3.2, "manifold-based training"; Reed et al. borrow the contrastive
embedding loss of Hadsell, Chopra & LeCun 2006): with correspondence information — pairs of images
known to share a factor group — each hidden group is pulled together on pairs that share its factors
and pushed at least a margin apart on pairs that do not:

    R_h = E_{(x, x⁺) share pose} ‖h(x) − h(x⁺)‖² + E_{(x, x⁻) differ in pose} max(0, margin − ‖h(x) − h(x⁻)‖)²,

with h(·) the mean-field posterior of the group, and R_m likewise for m on the identity factors. This
is what gives the m/h split its meaning: without it the energy only *allows* the two groups to play
different roles. :meth:`DisBM.attach_factor_dataset` supplies the pairs: ``m_factors`` name the
dataset factors of group m (identity), ``h_factors`` those of group h (pose); each update draws
``manifold_pairs`` positive and negative pairs per group (positive: the group's factors equal, every
other factor redrawn; negative: the group's factors redrawn until at least one differs) and adds
``manifold_weight`` · (R_m + R_h) to the CD surrogate; the regulariser's gradient flows through the
mean-field posterior. Without a dataset the model is trained by CD alone (no pairs, no split), as
before this change. The paper's margin and weight are not in the deck and could not be checked
against reference code (none is public): ``manifold_margin = 1`` (in units of posterior probability,
a group of ``n`` units spans at most √n) and ``manifold_weight = 1`` are our settings.
``darla.pipeline.build_vision_model`` uses the ``seekavoid-factors`` split of DC-IGN: h = pose and
light (lateral, depth, heading, light), m = floor, wall, object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vision.base import ConfigError, VisionConfig, VisionModel, register, to_tensor


@dataclass
class DisBMConfig(VisionConfig):
    """:param n_m: units of the first hidden group m (paper: identity / expression).
    :param n_h: units of the second hidden group h (paper: pose).
    :param n_factors: factors f of the three-way tensor.
    :param bm_size: side of the downsampled visible image (the preprocessing above).
    :param cd_steps: Gibbs steps of the negative phase (CD-k).
    :param meanfield_steps: mean-field iterations for the posterior over (m, h).
    :param init_scale: standard deviation of the initial weights.
    :param m_factors: dataset factors shared by pairs that pull m together (identity); see §3.2 above.
    :param h_factors: dataset factors shared by pairs that pull h together (pose).
    :param manifold_weight: weight of the manifold regulariser R_m + R_h (0 = CD only).
    :param manifold_margin: margin of the negative pairs' hinge.
    :param manifold_pairs: positive and negative pairs per group per update.
    :param seed: seeds the pairs (with ``global_step``).

    ``latents`` is unused: the code is ``n_m + n_h`` posterior probabilities.
    """

    lr: float = 1e-3
    n_m: int = 16
    n_h: int = 16
    n_factors: int = 64
    bm_size: int = 16
    cd_steps: int = 1
    meanfield_steps: int = 5
    init_scale: float = 0.01
    m_factors: tuple[str, ...] = ()
    h_factors: tuple[str, ...] = ()
    manifold_weight: float = 1.0
    manifold_margin: float = 1.0
    manifold_pairs: int = 16
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        for name in ("n_m", "n_h", "n_factors", "cd_steps", "meanfield_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.bm_size < 1 or self.bm_size > self.image_size or self.image_size % self.bm_size:
            raise ConfigError(
                f"bm_size must divide image_size ({self.image_size}) and be <= it, got {self.bm_size}; e.g. 16"
            )
        if not self.init_scale > 0:
            raise ConfigError(f"init_scale must be > 0, got {self.init_scale}")
        if not self.manifold_weight >= 0 or not self.manifold_margin > 0 or self.manifold_pairs < 1:
            raise ConfigError(f"manifold_weight must be >= 0, manifold_margin > 0 and manifold_pairs >= 1, got "
                              f"{self.manifold_weight}, {self.manifold_margin}, {self.manifold_pairs}")
        if set(self.m_factors) & set(self.h_factors):
            raise ConfigError(f"m_factors and h_factors must not overlap, both name "
                              f"{sorted(set(self.m_factors) & set(self.h_factors))}")


@register("disbm")
class DisBM(VisionModel):
    """Disentangling Boltzmann machine (Reed et al. 2014): factored 3-way v–m–h energy, trained by CD-k."""

    config_cls = DisBMConfig
    config: DisBMConfig

    def __init__(self, config: DisBMConfig):
        super().__init__(config)
        c = config
        nv = c.channels * c.bm_size**2
        s = c.init_scale
        self.n_visible = nv
        self.W_v = nn.Parameter(torch.randn(nv, c.n_factors) * s)
        self.W_m = nn.Parameter(torch.randn(c.n_m, c.n_factors) * s)
        self.W_h = nn.Parameter(torch.randn(c.n_h, c.n_factors) * s)
        self.P_m = nn.Parameter(torch.randn(nv, c.n_m) * s)
        self.P_h = nn.Parameter(torch.randn(nv, c.n_h) * s)
        self.b_m = nn.Parameter(torch.zeros(c.n_m))
        self.b_h = nn.Parameter(torch.zeros(c.n_h))
        self.c_v = nn.Parameter(torch.zeros(nv))
        self.dataset: Any = None
        self.groups: dict[str, list[int]] = {}

    # -- correspondence pairs (§3.2) ---------------------------------------------------------------
    def attach_factor_dataset(self, dataset: Any) -> None:
        """Draw the manifold regulariser's pairs from ``dataset`` (``factor_names``, ``factor_sizes``,
        ``sample_factors(n, rng)``, ``images(factors)``) using the config's ``m_factors``/``h_factors``."""
        c = self.config
        names = list(dataset.factor_names)
        unknown = [n for n in (*c.m_factors, *c.h_factors) if n not in names]
        if unknown:
            raise ValueError(f"disbm m_factors/h_factors {unknown} are not in the dataset; valid: {', '.join(names)}")
        if not c.m_factors and not c.h_factors:
            raise ValueError("disbm needs m_factors and/or h_factors to draw correspondence pairs, e.g. "
                             "h_factors=['lateral', 'depth'] (pose) and m_factors=['object'] (identity)")
        shape = tuple(getattr(dataset, "observation_shape", (c.image_size, c.image_size, c.channels)))
        if shape != (c.image_size, c.image_size, c.channels):
            raise ValueError(f"factor dataset renders {shape} images, this disbm expects "
                             f"{(c.image_size, c.image_size, c.channels)}; build the dataset at that size")
        self.dataset = dataset
        self.groups = {g: [names.index(n) for n in f] for g, f in (("m", c.m_factors), ("h", c.h_factors)) if f}

    def correspondence_pairs(self, group: str, n: int, rng: np.random.Generator
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Factor rows ``(anchor, positive, negative)``, each ``(n, F)``: the positive shares the group's
        factors with the anchor (every other factor redrawn), the negative differs in at least one."""
        idx = self.groups[group]
        sizes = np.asarray(self.dataset.factor_sizes)
        anchor = self.dataset.sample_factors(n, rng)
        positive = self.dataset.sample_factors(n, rng)
        positive[:, idx] = anchor[:, idx]
        negative = self.dataset.sample_factors(n, rng)
        same = (negative[:, idx] == anchor[:, idx]).all(1)
        if same.any():  # shift one of the group's factors to another value
            rows = np.flatnonzero(same)
            col = np.asarray(idx)[rng.integers(len(idx), size=len(rows))]
            negative[rows, col] = (negative[rows, col] + 1 + rng.integers(0, np.maximum(sizes[col] - 1, 1))) % sizes[col]
        return anchor, positive, negative

    def manifold_terms(self) -> dict[str, Tensor]:
        """R_m and R_h (module docstring) on fresh pairs; empty without a dataset."""
        if self.dataset is None or self.config.manifold_weight == 0:
            return {}
        c = self.config
        rng = np.random.default_rng([c.seed, int(self.global_step)])
        device = self.W_v.device
        out: dict[str, Tensor] = {}
        for group in self.groups:
            a, p, q = self.correspondence_pairs(group, c.manifold_pairs, rng)
            v = self.visible(to_tensor(self.dataset.images(np.concatenate([a, p, q])), device))
            m, h = self.posterior(v)
            code = (m if group == "m" else h).view(3, c.manifold_pairs, -1)
            pos = (code[0] - code[1]).pow(2).sum(1)
            neg = F.relu(c.manifold_margin - (code[0] - code[2]).pow(2).sum(1).clamp_min(1e-12).sqrt()).pow(2)
            out[f"manifold_{group}"] = (pos + neg).mean()
        return out

    @property
    def feature_dim(self) -> int:
        return self.config.n_m + self.config.n_h

    # -- visible units ---------------------------------------------------------------------------
    def visible(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] → visible probabilities ``(B, C·bm_size²)`` (area downsampling)."""
        c = self.config
        if x.shape[1:] != (c.channels, c.image_size, c.image_size):
            raise ValueError(f"disbm expects images (B, {c.channels}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(x.shape)}")
        if c.bm_size != c.image_size:
            x = F.adaptive_avg_pool2d(x, c.bm_size)
        return x.flatten(1)

    # -- energy and conditionals -----------------------------------------------------------------
    def energy(self, v: Tensor, m: Tensor, h: Tensor) -> Tensor:
        """E(v, m, h) per sample ``(B,)`` for states ``(B, nv)``, ``(B, n_m)``, ``(B, n_h)`` (module docstring)."""
        three_way = ((v @ self.W_v) * (m @ self.W_m) * (h @ self.W_h)).sum(1)
        pairwise = ((v @ self.P_m) * m).sum(1) + ((v @ self.P_h) * h).sum(1)
        bias = m @ self.b_m + h @ self.b_h + v @ self.c_v
        return -(three_way + pairwise + bias)

    def p_m(self, v: Tensor, h: Tensor) -> Tensor:
        """P(m = 1 | v, h), ``(B, n_m)``."""
        return torch.sigmoid(((v @ self.W_v) * (h @ self.W_h)) @ self.W_m.T + v @ self.P_m + self.b_m)

    def p_h(self, v: Tensor, m: Tensor) -> Tensor:
        """P(h = 1 | v, m), ``(B, n_h)``."""
        return torch.sigmoid(((v @ self.W_v) * (m @ self.W_m)) @ self.W_h.T + v @ self.P_h + self.b_h)

    def p_v(self, m: Tensor, h: Tensor) -> Tensor:
        """P(v = 1 | m, h), ``(B, nv)``."""
        return torch.sigmoid(((m @ self.W_m) * (h @ self.W_h)) @ self.W_v.T + m @ self.P_m.T + h @ self.P_h.T + self.c_v)

    def posterior(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """Mean-field q(m) q(h) ≈ P(m, h | v): ``meanfield_steps`` alternating updates from h = ½."""
        h = torch.full((v.shape[0], self.config.n_h), 0.5, device=v.device)
        m = self.p_m(v, h)
        for _ in range(self.config.meanfield_steps):
            h = self.p_h(v, m)
            m = self.p_m(v, h)
        return m, h

    # -- the interface ---------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """The mean-field posterior [q(m); q(h)], ``(B, n_m + n_h)`` (same as :meth:`features`)."""
        return self.features(x)

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → ``(B, n_m + n_h)``: posterior probabilities of m then h."""
        return torch.cat(self.posterior(self.visible(x)), dim=1)

    def decode(self, z: Tensor) -> Tensor:
        """[m; h] ``(B, n_m + n_h)`` → P(v | m, h) as images ``(B, C, H, W)`` (nearest upsampling)."""
        c = self.config
        m, h = z[:, : c.n_m], z[:, c.n_m :]
        img = self.p_v(m, h).view(-1, c.channels, c.bm_size, c.bm_size)
        if c.bm_size != c.image_size:
            img = F.interpolate(img, size=c.image_size, mode="nearest")
        return img

    def reconstruction_error(self, x: Tensor) -> Tensor:
        """Mean squared error per visible unit between v and P(v | posterior means), a scalar."""
        v = self.visible(x)
        m, h = self.posterior(v)
        return (self.p_v(m, h) - v).pow(2).mean()

    # -- contrastive divergence ------------------------------------------------------------------
    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """CD-k surrogate: ``E(v, m⁺, h⁺) − E(v⁻, m⁻, h⁻)`` (batch means, states detached); its gradient is
        the CD update; plus ``manifold_weight`` · (R_m + R_h) when a factor dataset is attached. Also
        reports ``recon`` (:meth:`reconstruction_error`, no gradient) and ``manifold_m``/``manifold_h``."""
        v = self.visible(x)
        with torch.no_grad():
            m_pos, h_pos = self.posterior(v)
            m, h = torch.bernoulli(m_pos), torch.bernoulli(h_pos)
            for _ in range(self.config.cd_steps):
                v_neg = torch.bernoulli(self.p_v(m, h))
                # Block Gibbs: m | v, h then h | v, m (the hidden groups are coupled given v).
                m = torch.bernoulli(self.p_m(v_neg, h))
                h_prob = self.p_h(v_neg, m)
                h = torch.bernoulli(h_prob)
            m_neg, h_neg = self.p_m(v_neg, h), h_prob  # probabilities in the statistics: less variance
            recon = (self.p_v(m_pos, h_pos) - v).pow(2).mean()
        cd = self.energy(v, m_pos, h_pos).mean() - self.energy(v_neg, m_neg, h_neg).mean()
        terms = {"loss": cd, "cd": cd.detach(), "recon": recon}
        manifold = self.manifold_terms()  # §3.2: gives the m/h split its meaning
        for name, value in manifold.items():
            terms["loss"] = terms["loss"] + self.config.manifold_weight * value
            terms[name] = value.detach()
        return terms
