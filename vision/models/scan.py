"""SCAN: Symbol-Concept Association Network (Higgins, Sonnerat, Matthey, Pal, Burgess, Bošnjak,
Shanahan, Botvinick, Hassabis & Lerchner, ICLR 2018, "SCAN: Learning Hierarchical Compositional
Visual Concepts").

Two stages:

1. **Visual primitives** z_x: a β-VAE_DAE (DARLA eq. 2; here ``beta_vae_dae``, or any model whose
   ``encode`` returns a diagonal Gaussian ``(mu, logvar)`` and which has ``decode``), trained
   unsupervised and then **frozen**.
2. **Concepts** z_y: a symbol VAE over k-hot labels y (a concept names k ≤ K attributes, e.g.
   "floor=orange, object=hat"), with dim(z_y) = dim(z_x) = K, grounded in the visual posterior by the
   *forward* KL (§3, "Learning visual concepts"):

       L_y = E_{q(z_y|y)}[log p(y|z_y)] − β·KL(q(z_y|y) ‖ p(z_y)) − λ·KL(q(z_x|x) ‖ q(z_y|y)),

   maximised over pairs (x, y) in which image x shows concept y (paper: β = 1, λ = 10). The forward
   KL is mode-covering: over many images of "floor=orange" the concept's posterior becomes narrow on
   the floor latent and stays broad (≈ the unit prior) on every latent the symbol does not constrain.

Bi-directional inference (§3): **sym2img** — infer q(z_y|y), sample it, decode with the frozen visual
decoder; **img2sym** — infer q(z_x|x), sample it, read p(y|z) from the symbol decoder.

Recombination (§3, "Learning concept recombination operators"; the deck's SCAN slides): a learnt
**conditional convolutional module** ω(z_y1, z_y2, s) → z_r (:class:`RecombinationOperator`). It takes
the two concept posteriors inferred by SCAN from symbols y1, y2 and a 1-hot operator vector s
([1 0 0] AND, [0 1 0] IN COMMON, [0 0 1] IGNORE). It strides over the matching components
(μ1_k, log σ1_k², μ2_k, log σ2_k²) one latent k at a time — a kernel-size-1 convolution over the K
latents, the same weights for every k — and outputs component k of a diagonal Gaussian z_r; s
selects the transformation's weights (one trainable set per operator). It is trained by minimising
(paper eq. 5)

    E_{x ~ images of the recombined concept} KL( q(z_x|x) ‖ ω(q(z_y1|y1), q(z_y2|y2), s) ),

the forward KL of the grounding term, with q(z_x|x) the frozen visual posterior of an image showing
the result concept (AND: the union of the two symbols' attributes; IN COMMON: the attributes both
name with the same value; IGNORE: y1's attributes that y2 does not name). Training pairs come from
the factor dataset (:meth:`SCAN.recombination_batch`): the image's factors give the result's values,
the symbols' other attributes get independent random values, so the image agrees with the result
and with nothing else. ω is trained inside :meth:`SCAN.train_step`, alongside the symbol VAE once
``global_step >= recombination_start``, with the concept posteriors detached: only ω learns from its
loss, the "pre-trained SCAN" of the paper being the symbol VAE as it is at that step (the paper
trains ω after SCAN; ``darla.pipeline.build_vision_model`` sets ``recombination_start`` to half the
run so ω trains on a settled symbol VAE). Layer sizes of ω are not given in the deck and could not
be checked against reference code (there is no public SCAN code): two hidden 1×1-conv layers of
``recombination_hidden`` units, ReLU.

A named alternative, ``recombination="closed_form"``: the operators as fixed rules on the
diagonal-Gaussian posteriors (:func:`recombine`). Per latent k, a posterior is *specific* when
KL(q_k ‖ N(0, 1)) > ``threshold`` (0.5 nats) and *unspecific* otherwise; the unit prior N(0, 1) is
the "don't care" value.

* ``AND(a, b)`` (C_a ∪ C_b): specific in one only → that one; specific in both → their product
  N(μ, σ²), 1/σ² = 1/σ_a² + 1/σ_b², μ = σ²(μ_a/σ_a² + μ_b/σ_b²); in neither → the prior.
* ``IN COMMON(a, b)`` (C_a ∩ C_b): specific in both and agreeing, |μ_a − μ_b| ≤ ``agree``·√(σ_a² + σ_b²)
  → their product; otherwise → the prior.
* ``IGNORE(a, b)`` (C_a \\ C_b): specific in b → the prior; otherwise → a.

Data contract (``vision`` imports nothing of ``envs``): the vocabulary is one word per value of each
factor of a factor dataset, ``"name=value"`` (``factor_names``/``factor_sizes`` in the config). After
:meth:`SCAN.attach_factor_dataset` (any object with ``factor_names``, ``factor_sizes``,
``sample_factors(n, rng)``, ``images(factors) -> (n, H, W, C) uint8``), :meth:`SCAN.train_step` draws
its own labelled batch (each factor named with probability ``mention_prob``, at least one per label)
and ignores the frames of the training loop. ``features``/``decode`` are the frozen visual model's, so
a trained SCAN also plugs into stage 2 like its β-VAE_DAE.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vision.base import ConfigError, VisionConfig, VisionModel, make, register, to_tensor
from vision.checkpoint import atomic_write_bytes
from vision.nets import kl_normal_per_latent, reparameterize

log = logging.getLogger(__name__)

Gaussian = tuple[Tensor, Tensor]  # (mu, logvar), each (..., K)
OPERATORS = ("AND", "IN COMMON", "IGNORE")  # the order of the 1-hot operator vector s
RECOMBINATIONS = ("learnt", "closed_form")


# -- closed-form recombination on diagonal Gaussians ----------------------------------------------
def kl_to_prior(post: Gaussian) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent, shape of μ."""
    mu, logvar = post
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def specific(post: Gaussian, threshold: float = 0.5) -> Tensor:
    """Bool mask of the latents a concept constrains: KL(q_k ‖ N(0, 1)) > ``threshold`` nats."""
    return kl_to_prior(post) > threshold


def gaussian_product(a: Gaussian, b: Gaussian) -> Gaussian:
    """Normalised product N(μ_a, σ_a²)·N(μ_b, σ_b²) ∝ N(μ, σ²): precisions add, means precision-weighted."""
    pa, pb = torch.exp(-a[1]), torch.exp(-b[1])
    var = 1.0 / (pa + pb)
    return var * (a[0] * pa + b[0] * pb), var.log()


def _select(mask: Tensor, post: Gaussian, other: Gaussian) -> Gaussian:
    return torch.where(mask, post[0], other[0]), torch.where(mask, post[1], other[1])


def _prior_like(post: Gaussian) -> Gaussian:
    return torch.zeros_like(post[0]), torch.zeros_like(post[1])


def concept_and(a: Gaussian, b: Gaussian, threshold: float = 0.5) -> Gaussian:
    """AND (C_a ∪ C_b): every attribute of either concept (module docstring)."""
    sa, sb = specific(a, threshold), specific(b, threshold)
    out = _select(sb, b, _prior_like(a))
    out = _select(sa, a, out)
    return _select(sa & sb, gaussian_product(a, b), out)


def concept_in_common(a: Gaussian, b: Gaussian, threshold: float = 0.5, agree: float = 2.0) -> Gaussian:
    """IN COMMON (C_a ∩ C_b): the attributes both concepts constrain to agreeing values (module docstring)."""
    spread = (a[1].exp() + b[1].exp()).sqrt()
    keep = specific(a, threshold) & specific(b, threshold) & ((a[0] - b[0]).abs() <= agree * spread)
    return _select(keep, gaussian_product(a, b), _prior_like(a))


def concept_ignore(a: Gaussian, b: Gaussian, threshold: float = 0.5) -> Gaussian:
    """IGNORE (C_a \\ C_b): concept a with every attribute b constrains reset to the prior."""
    return _select(specific(b, threshold), _prior_like(a), a)


def recombine(op: str, a: Gaussian, b: Gaussian, threshold: float = 0.5) -> Gaussian:
    """Apply operator ``op`` (``AND``, ``IN COMMON`` or ``IGNORE``, case-insensitive) to two concepts."""
    key = op.upper().replace("_", " ")
    if key == "AND":
        return concept_and(a, b, threshold)
    if key in ("IN COMMON", "INCOMMON"):
        return concept_in_common(a, b, threshold)
    if key == "IGNORE":
        return concept_ignore(a, b, threshold)
    raise ValueError(f"unknown recombination operator '{op}'; valid: {', '.join(OPERATORS)}")


# -- the learnt recombination operator ω ------------------------------------------------------
class RecombinationOperator(nn.Module):
    """ω(z_1, z_2, s) of SCAN §3: a conditional convolution over matching latent components.

    Input per latent k: the 4 numbers (μ1_k, log σ1_k², μ2_k, log σ2_k²); output: (μ_k, log σ_k²).
    The same weights apply at every k (a kernel-size-1 convolution striding over the K components);
    the 1-hot operator vector s selects one set of weights per operator (``len(OPERATORS)`` sets).

    :param hidden: units of each of the two hidden layers.
    """

    def __init__(self, hidden: int = 32):
        super().__init__()
        n_ops = len(OPERATORS)
        dims = [4, hidden, hidden, 2]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for din, dout in zip(dims[:-1], dims[1:]):
            w = torch.empty(n_ops, dout, din)
            for i in range(n_ops):
                nn.init.kaiming_uniform_(w[i], a=math.sqrt(5))  # nn.Linear's default init, per operator
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(n_ops, dout)))

    def forward(self, a: Gaussian, b: Gaussian, s: Tensor) -> Gaussian:
        """Recombine ``a`` and ``b`` (each ``(B, K)`` mu and logvar) under operators ``s`` ``(B, 3)``
        (1-hot rows; any mixture also works) → ``(mu, logvar)`` ``(B, K)``."""
        h = torch.stack([a[0], a[1], b[0], b[1]], dim=-1)  # (B, K, 4): the K components, one at a time
        s = s.to(h.dtype)
        for i, (w, bias) in enumerate(zip(self.weights, self.biases)):
            w_s = torch.einsum("bo,oij->bij", s, w)  # (B, out, in): s selects the operator's matrix
            h = torch.einsum("bki,bji->bkj", h, w_s) + (s @ bias)[:, None, :]
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h[..., 0], h[..., 1].clamp(-10.0, 6.0)


def operator_index(op: str) -> int:
    """Index of ``op`` in :data:`OPERATORS` (case-insensitive; ``in_common``/``incommon`` accepted)."""
    key = op.upper().replace("_", " ")
    key = "IN COMMON" if key == "INCOMMON" else key
    if key not in OPERATORS:
        raise ValueError(f"unknown recombination operator '{op}'; valid: {', '.join(OPERATORS)}")
    return OPERATORS.index(key)


def recombination_labels(factors: np.ndarray, others: np.ndarray, others2: np.ndarray, ops: np.ndarray,
                         p: float, rng: np.random.Generator, factor_sizes: Sequence[int]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Symbol pairs whose recombination under ``ops`` is a concept the image (``factors``) shows.

    :param factors: ``(n, F)`` the image's factor values — the result concept's values come from here.
    :param others: ``(n, F)``, ``others2``: ``(n, F)`` independent draws for the symbols' other attributes.
    :param ops: ``(n,)`` operator indices into :data:`OPERATORS`.
    :param p: probability of naming each factor.
    :param factor_sizes: values per factor (IN COMMON's extra attributes named by both symbols get
        different values, so they are not "in common").
    :return: ``(values1, mention1, values2, mention2)``, each ``(n, F)``: symbol 1 names ``values1`` where
        ``mention1``, symbol 2 likewise. AND: two disjoint non-empty parts of a named set, image values
        (result = the union). IN COMMON: a shared named set C with the image's values, plus each symbol's
        own extra attributes with independent values, different where both name one (result = C). IGNORE: symbol 1 names a set S, symbol 2
        a non-empty part T of it with the same, independent values; S \\ T takes the image's values
        (result = S \\ T).
    """
    n, num_f = factors.shape
    v1, v2 = factors.copy(), factors.copy()
    m1 = np.zeros((n, num_f), dtype=bool)
    m2 = np.zeros((n, num_f), dtype=bool)
    named = random_mentions(n, num_f, p, rng)
    for i in range(n):
        idx = np.flatnonzero(named[i])
        op = OPERATORS[int(ops[i])]
        if op == "AND":
            if len(idx) == 1:
                m1[i, idx] = m2[i, idx] = True  # AND of a concept with itself
            else:
                cut = rng.permutation(idx)
                k = int(rng.integers(1, len(idx)))
                m1[i, cut[:k]] = True
                m2[i, cut[k:]] = True
        elif op == "IN COMMON":
            rest = np.setdiff1d(np.arange(num_f), idx)
            m1[i, idx] = m2[i, idx] = True
            e1, e2 = rest[rng.random(len(rest)) < p], rest[rng.random(len(rest)) < p]
            m1[i, e1], v1[i, e1] = True, others[i, e1]
            m2[i, e2], v2[i, e2] = True, others2[i, e2]
            for j in np.intersect1d(e1, e2):  # named by both: make the values disagree (if they can)
                if v1[i, j] == v2[i, j] and factor_sizes[j] > 1:
                    v2[i, j] = (v1[i, j] + 1 + rng.integers(factor_sizes[j] - 1)) % factor_sizes[j]
        else:  # IGNORE
            extra = np.setdiff1d(np.arange(num_f), idx)
            t = extra[rng.random(len(extra)) < p]
            if len(t) == 0:  # y2 must name something: one unnamed factor, or one of idx if all are named
                pool = extra if len(extra) else idx
                t = pool[[int(rng.integers(len(pool)))]]
            m1[i, idx] = True
            m1[i, t] = m2[i, t] = True
            v1[i, t] = v2[i, t] = others[i, t]
    return v1, m1, v2, m2


# -- symbols ----------------------------------------------------------------------------------
def vocabulary(factor_names: Sequence[str], factor_sizes: Sequence[int]) -> list[str]:
    """One word per factor value, ``"name=value"``, factor by factor: ``V = Σ factor_sizes`` words."""
    return [f"{n}={v}" for n, s in zip(factor_names, factor_sizes) for v in range(s)]


def k_hot(factors: np.ndarray, factor_sizes: Sequence[int], mention: np.ndarray | None = None) -> np.ndarray:
    """k-hot labels ``(n, V)`` float32 for factor values ``(n, F)`` int; ``mention`` ``(n, F)`` bool picks
    which factors each label names (all by default)."""
    factors = np.asarray(factors, dtype=np.int64)
    n = factors.shape[0]
    offsets = np.concatenate([[0], np.cumsum(factor_sizes)[:-1]]).astype(np.int64)
    out = np.zeros((n, int(sum(factor_sizes))), dtype=np.float32)
    mention = np.ones_like(factors, dtype=bool) if mention is None else np.asarray(mention, dtype=bool)
    rows, cols = np.nonzero(mention)
    out[rows, offsets[cols] + factors[rows, cols]] = 1.0
    return out


def random_mentions(n: int, num_factors: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """``(n, F)`` bool: each factor named with probability ``p``, at least one factor per label."""
    mention = rng.random((n, num_factors)) < p
    empty = ~mention.any(1)
    mention[np.nonzero(empty)[0], rng.integers(0, num_factors, size=int(empty.sum()))] = True
    return mention


@dataclass
class SCANConfig(VisionConfig):
    """:param factor_names: the factors whose values make the vocabulary (one word per value).
    :param factor_sizes: values per factor, same order.
    :param visual_model: registry name of the frozen visual model (DARLA/SCAN: ``beta_vae_dae``).
    :param visual_config: its config (as saved in its checkpoint), to rebuild it when loading SCAN.
    :param visual_checkpoint: a checkpoint directory to load the visual model from (sets the two above).
    :param beta: weight β of KL(q(z_y|y) ‖ N(0, I)) (paper: 1).
    :param grounding: weight λ of the forward KL(q(z_x|x) ‖ q(z_y|y)) (paper: 10).
    :param hidden: width of the symbol encoder/decoder MLPs.
    :param mention_prob: probability that a training label names each factor.
    :param recombination: ``learnt`` (the paper's ω, :class:`RecombinationOperator`) or ``closed_form``
        (the fixed rules of :func:`recombine`, a named alternative).
    :param recombination_hidden: hidden units of ω's two 1×1-conv layers.
    :param recombination_start: ``global_step`` from which each update also trains ω (on detached
        concept posteriors); the pipeline sets half the run.
    :param seed: seeds the labelled batches (with ``global_step``).

    ``latents`` is set to the visual model's latent count.
    """

    lr: float = 1e-3
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    visual_model: str = "beta_vae_dae"
    visual_config: dict[str, Any] | None = None
    visual_checkpoint: str | None = None
    beta: float = 1.0
    grounding: float = 10.0
    hidden: int = 128
    mention_prob: float = 0.5
    recombination: str = "learnt"
    recombination_hidden: int = 32
    recombination_start: int = 0
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if not self.factor_names or len(self.factor_names) != len(self.factor_sizes):
            raise ConfigError(
                f"scan needs the vocabulary's factors: factor_names {list(self.factor_names)} and factor_sizes "
                f"{list(self.factor_sizes)} must be non-empty and of equal length; build it with "
                "SCAN.for_dataset(visual, dataset) or pass both"
            )
        if any(s < 1 for s in self.factor_sizes):
            raise ConfigError(f"factor_sizes must be >= 1, got {list(self.factor_sizes)}")
        if not self.beta >= 0 or not self.grounding >= 0:
            raise ConfigError(f"beta and grounding must be >= 0, got {self.beta}, {self.grounding} (paper: 1, 10)")
        if self.hidden < 1:
            raise ConfigError(f"hidden must be >= 1, got {self.hidden}")
        if not 0 < self.mention_prob <= 1:
            raise ConfigError(f"mention_prob must be in (0, 1], got {self.mention_prob}")
        if self.recombination not in RECOMBINATIONS:
            raise ConfigError(f"recombination must be one of {', '.join(RECOMBINATIONS)}, got {self.recombination!r}")
        if self.recombination_hidden < 1:
            raise ConfigError(f"recombination_hidden must be >= 1, got {self.recombination_hidden}")
        if self.recombination_start < 0:
            raise ConfigError(f"recombination_start must be >= 0, got {self.recombination_start}")


def _mlp(din: int, hidden: int, dout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(din, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, dout))


@register("scan")
class SCAN(VisionModel):
    """SCAN (Higgins et al. 2018): a symbol VAE grounded in a frozen visual β-VAE_DAE by forward KL.

    Build with :meth:`for_dataset` (from a trained visual model and a factor dataset), or
    ``make("scan", factor_names=..., factor_sizes=..., visual_checkpoint=...)``.
    """

    config_cls = SCANConfig
    config: SCANConfig

    def __init__(self, config: SCANConfig, visual: VisionModel | nn.Module | None = None):
        super().__init__(config)
        if visual is None:
            visual = self._build_visual(config)
        self.visual = visual
        for p in self.visual.parameters():
            p.requires_grad_(False)
        self.visual.eval()
        k = config.latents
        self.words = vocabulary(config.factor_names, config.factor_sizes)
        self.sym_encoder = _mlp(len(self.words), config.hidden, 2 * k)
        self.sym_decoder = _mlp(k, config.hidden, len(self.words))
        self.recombiner = RecombinationOperator(config.recombination_hidden)
        self.dataset: Any = None

    @staticmethod
    def _build_visual(config: SCANConfig) -> VisionModel:
        if config.visual_checkpoint:
            if not Path(config.visual_checkpoint).is_dir() and config.visual_config is not None:
                log.warning("visual_checkpoint '%s' is gone; rebuilding '%s' from visual_config (weights come "
                            "from the SCAN checkpoint)", config.visual_checkpoint, config.visual_model)
            else:
                from vision.checkpoint import load, read_meta

                meta = read_meta(config.visual_checkpoint)
                config.visual_model, config.visual_config = meta["model"], dict(meta["config"])
                visual = load(config.visual_checkpoint)
                config.latents = int(visual.config.latents)
                return visual
        if config.visual_config is None:
            raise ConfigError(
                "scan needs its visual primitives: pass visual_checkpoint=<beta_vae_dae checkpoint dir>, "
                "or build it with SCAN.for_dataset(trained_visual_model, dataset)"
            )
        visual = make(config.visual_model, **{k: v for k, v in config.visual_config.items()
                                              if k != "dae_checkpoint"})
        config.latents = int(visual.config.latents)
        return visual

    @classmethod
    def for_dataset(cls, visual: VisionModel | nn.Module, dataset: Any, **overrides: Any) -> SCAN:
        """A SCAN over ``visual`` (kept by reference, frozen) with the vocabulary of ``dataset``, attached.

        :param visual: a trained visual model: ``encode(x) -> (mu, logvar)`` ``(B, K)``, ``decode(z)``;
            ``visual.config.latents`` = K (a registered model, to be saved and loaded with SCAN).
        :param dataset: a factor dataset (module docstring).
        :param overrides: other :class:`SCANConfig` fields.
        """
        from vision.base import build_config, config_dict

        vcfg = visual.config
        values = dict(
            factor_names=tuple(dataset.factor_names), factor_sizes=tuple(int(s) for s in dataset.factor_sizes),
            channels=vcfg.channels, image_size=vcfg.image_size, latents=vcfg.latents,
            visual_model=getattr(visual, "name", "") or "", visual_config=(
                config_dict(visual) if isinstance(visual, VisionModel) else None),
        )
        values.update(overrides)
        model = cls(build_config(cls.config_cls, values, model="scan"), visual=visual)
        model.attach_factor_dataset(dataset)
        return model

    def train(self, mode: bool = True) -> SCAN:
        """Train/eval mode for the symbol VAE; the visual model stays frozen in eval mode."""
        super().train(mode)
        self.visual.eval()
        return self

    # -- data ------------------------------------------------------------------------------------
    def attach_factor_dataset(self, dataset: Any) -> None:
        """Draw labelled training batches from ``dataset`` (its factors must match the vocabulary)."""
        names, sizes = tuple(dataset.factor_names), tuple(int(s) for s in dataset.factor_sizes)
        if (names, sizes) != (tuple(self.config.factor_names), tuple(self.config.factor_sizes)):
            raise ValueError(
                f"factor dataset has factors {list(zip(names, sizes))}, this SCAN's vocabulary "
                f"{list(zip(self.config.factor_names, self.config.factor_sizes))}; build SCAN.for_dataset(...)"
            )
        self.dataset = dataset

    def labelled_batch(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(images (B, H, W, C) uint8, labels (B, V) float32 k-hot, factors (B, F))`` from the dataset."""
        if self.dataset is None:
            raise RuntimeError("scan has no factor dataset for its labels: call attach_factor_dataset(ds) "
                               "or build it with SCAN.for_dataset(visual, ds)")
        factors = self.dataset.sample_factors(batch_size, rng)
        mention = random_mentions(batch_size, len(self.config.factor_sizes), self.config.mention_prob, rng)
        return self.dataset.images(factors), k_hot(factors, self.config.factor_sizes, mention), factors

    def symbol(self, words: Sequence[str] | str) -> Tensor:
        """A k-hot ``(V,)`` from words like ``["floor=0", "object=2"]`` (or one comma-separated string)."""
        if isinstance(words, str):
            words = [w.strip() for w in words.split(",") if w.strip()]
        y = torch.zeros(len(self.words), device=self._device())
        for w in words:
            if w not in self.words:
                raise ValueError(f"unknown symbol word '{w}'; valid: {', '.join(self.words)}")
            y[self.words.index(w)] = 1.0
        return y

    def _device(self) -> torch.device:
        return self.sym_decoder[0].weight.device

    # -- the two posteriors ------------------------------------------------------------------------
    def visual_posterior(self, x: Tensor) -> Gaussian:
        """q(z_x|x) of the frozen visual model: ``(mu, logvar)``, each ``(B, K)``, no gradient."""
        with torch.no_grad():
            self.visual.eval()
            mu, logvar = self.visual.encode(x)
        return mu, logvar

    def concept(self, y: Tensor) -> Gaussian:
        """q(z_y|y): k-hot ``(B, V)`` or ``(V,)`` → ``(mu, logvar)`` ``(B, K)`` (or ``(K,)``)."""
        mu, logvar = self.sym_encoder(y).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 6.0)

    def symbol_logits(self, z: Tensor) -> Tensor:
        """log-odds of p(y|z): ``(B, K)`` → ``(B, V)``."""
        return self.sym_decoder(z)

    # -- the interface ---------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Gaussian:
        """The visual posterior q(z_x|x) (SCAN's concepts live in the same K-d space)."""
        return self.visual_posterior(x)

    def features(self, x: Tensor) -> Tensor:
        """The frozen visual model's posterior mean ``(B, K)``."""
        return self.visual_posterior(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """The frozen visual decoder: ``(B, K)`` → images ``(B, C, H, W)`` in [0, 1]."""
        return self.visual.decode(z)

    # -- the objective ---------------------------------------------------------------------------
    def symbol_loss(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """−L_y on pairs (image ``x`` (B, C, H, W), k-hot ``y`` (B, V)): ``recon + β·kl + λ·grounding``.

        ``recon`` = −log p(y|z_y) (Bernoulli, summed over words), ``kl`` = KL(q(z_y|y) ‖ N(0, I)),
        ``grounding`` = KL(q(z_x|x) ‖ q(z_y|y)) (forward: the visual posterior first), batch means.
        """
        mu_x, logvar_x = self.visual_posterior(x)
        mu_y, logvar_y = self.concept(y)
        recon = F.binary_cross_entropy_with_logits(
            self.symbol_logits(reparameterize(mu_y, logvar_y)), y, reduction="sum") / y.shape[0]
        kl = kl_normal_per_latent(mu_y, logvar_y).sum()
        # KL(N(μx, σx²) ‖ N(μy, σy²)) = ½[log σy²/σx² + (σx² + (μx − μy)²)/σy² − 1]
        grounding = 0.5 * (logvar_y - logvar_x + (logvar_x.exp() + (mu_x - mu_y).pow(2)) / logvar_y.exp() - 1.0)
        grounding = grounding.sum(1).mean()
        c = self.config
        return {"loss": recon + c.beta * kl + c.grounding * grounding, "recon": recon, "kl": kl,
                "grounding": grounding}

    def _labelled(self, batch_size: int) -> tuple[Tensor, Tensor]:
        rng = np.random.default_rng([self.config.seed, int(self.global_step)])
        images, labels, _ = self.labelled_batch(batch_size, rng)
        device = self._device()
        return to_tensor(images, device), torch.as_tensor(labels, device=device)

    # -- the recombination operator ω ------------------------------------------------------------
    def recombination_batch(self, batch_size: int, rng: np.random.Generator
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training data for ω: ``(images (B, H, W, C) uint8, y1 (B, V), y2 (B, V), ops (B,) int)`` —
        each image shows the concept ``OPERATORS[op](y1, y2)`` (:func:`recombination_labels`)."""
        if self.dataset is None:
            raise RuntimeError("scan has no factor dataset to train its recombination operator: call "
                               "attach_factor_dataset(ds) or build it with SCAN.for_dataset(visual, ds)")
        factors = self.dataset.sample_factors(batch_size, rng)
        others, others2 = self.dataset.sample_factors(batch_size, rng), self.dataset.sample_factors(batch_size, rng)
        ops = rng.integers(0, len(OPERATORS), size=batch_size)
        v1, m1, v2, m2 = recombination_labels(factors, others, others2, ops, self.config.mention_prob, rng,
                                              self.config.factor_sizes)
        sizes = self.config.factor_sizes
        return self.dataset.images(factors), k_hot(v1, sizes, m1), k_hot(v2, sizes, m2), ops

    def recombine(self, op: str | Tensor, a: Gaussian, b: Gaussian, threshold: float = 0.5) -> Gaussian:
        """Recombine concept posteriors ``a``, ``b`` (``(K,)`` or ``(B, K)``) with operator ``op`` (a name,
        or a ``(B, 3)`` 1-hot tensor): the learnt ω, or the closed-form rules if
        ``recombination="closed_form"`` (``threshold``: their specificity cut-off, nats)."""
        if self.config.recombination == "closed_form":
            if isinstance(op, Tensor):
                raise ValueError("closed-form recombination takes an operator name, not a 1-hot tensor")
            return recombine(op, a, b, threshold)
        squeeze = a[0].ndim == 1
        a, b = tuple(t.reshape(-1, t.shape[-1]) for t in a), tuple(t.reshape(-1, t.shape[-1]) for t in b)
        if isinstance(op, Tensor):
            s = op.to(a[0].device, a[0].dtype)
        else:
            s = F.one_hot(torch.full((a[0].shape[0],), operator_index(op), device=a[0].device),
                          len(OPERATORS)).to(a[0].dtype)
        mu, logvar = self.recombiner(a, b, s)
        return (mu[0], logvar[0]) if squeeze else (mu, logvar)

    def recombination_loss(self, x: Tensor, y1: Tensor, y2: Tensor, ops: Tensor) -> dict[str, Tensor]:
        """Paper eq. 5: KL(q(z_x|x) ‖ ω(q(z_y1|y1), q(z_y2|y2), s)), summed over latents, batch mean.

        The concept posteriors are detached: only ω learns from this loss.
        """
        mu_x, logvar_x = self.visual_posterior(x)
        a = tuple(t.detach() for t in self.concept(y1))
        b = tuple(t.detach() for t in self.concept(y2))
        s = F.one_hot(ops.long(), len(OPERATORS)).to(mu_x.dtype)
        mu_r, logvar_r = self.recombiner(a, b, s)
        kl = 0.5 * (logvar_r - logvar_x + (logvar_x.exp() + (mu_x - mu_r).pow(2)) / logvar_r.exp() - 1.0)
        return {"recombination": kl.sum(1).mean()}

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """:meth:`symbol_loss` on a labelled batch of ``len(x)`` pairs from the attached dataset, plus —
        from ``recombination_start`` on, for the learnt operator — ω's :meth:`recombination_loss` on a
        batch of ``len(x)`` recombination triples (it only reaches ω)."""
        terms = self.symbol_loss(*self._labelled(x.shape[0]))
        c = self.config
        if c.recombination == "learnt" and int(self.global_step) >= c.recombination_start:
            rng = np.random.default_rng([c.seed, int(self.global_step), 1])
            images, y1, y2, ops = self.recombination_batch(x.shape[0], rng)
            device = self._device()
            rec = self.recombination_loss(to_tensor(images, device), torch.as_tensor(y1, device=device),
                                          torch.as_tensor(y2, device=device), torch.as_tensor(ops, device=device))
            terms["loss"] = terms["loss"] + rec["recombination"]
            terms.update(rec)
        return terms

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Adam over the symbol encoder and decoder and ω (the visual model is frozen)."""
        params = [*self.sym_encoder.parameters(), *self.sym_decoder.parameters(), *self.recombiner.parameters()]
        return [torch.optim.Adam(params, lr=self.config.lr)]

    # -- bi-directional inference ----------------------------------------------------------------
    @torch.no_grad()
    def sample_posterior(self, post: Gaussian, n: int) -> Tensor:
        """``n`` images ``(n, C, H, W)`` decoded from samples of a concept posterior ``(K,)`` or ``(1, K)``."""
        mu, logvar = (t.reshape(1, -1).expand(n, -1) for t in post)
        return self.decode(reparameterize(mu, logvar))

    @torch.no_grad()
    def sym2img(self, y: Tensor | Sequence[str] | str, n: int = 8) -> Tensor:
        """Images of a symbol: ``y`` k-hot ``(V,)`` or words → ``(n, C, H, W)`` samples of q(z_y|y) decoded."""
        if not isinstance(y, Tensor):
            y = self.symbol(y)
        return self.sample_posterior(self.concept(y.to(self._device()).reshape(-1)), n)

    @torch.no_grad()
    def img2sym(self, x: Tensor, samples: int = 16) -> Tensor:
        """p(word | image): ``(B, C, H, W)`` → ``(B, V)`` probabilities, averaged over ``samples`` draws of
        q(z_x|x) through the symbol decoder."""
        mu, logvar = self.visual_posterior(x)
        probs = torch.zeros(x.shape[0], len(self.words), device=mu.device)
        for _ in range(samples):
            probs += torch.sigmoid(self.symbol_logits(reparameterize(mu, logvar)))
        return probs / samples

    @torch.no_grad()
    def describe(self, x: Tensor, samples: int = 16) -> list[list[tuple[str, float]]]:
        """The top word of every factor for each image, most probable first: ``[[("floor=2", 0.48), ...], ...]``."""
        probs = self.img2sym(x, samples).cpu().numpy()
        out = []
        for row in probs:
            words, start = [], 0
            for size in self.config.factor_sizes:
                j = start + int(np.argmax(row[start:start + size]))
                words.append((self.words[j], float(row[j])))
                start += size
            out.append(sorted(words, key=lambda w: -w[1]))
        return out

    def predict_factors(self, x: Tensor, samples: int = 16) -> np.ndarray:
        """img2sym as factor values: ``(B, F)`` int, the most probable value of each factor."""
        probs = self.img2sym(x, samples).cpu().numpy()
        offsets = np.concatenate([[0], np.cumsum(self.config.factor_sizes)]).astype(int)
        return np.stack([probs[:, a:b].argmax(1) for a, b in zip(offsets[:-1], offsets[1:])], axis=1)

    # -- demonstration ---------------------------------------------------------------------------
    def default_recipes(self) -> list[tuple[str, str, str]]:
        """One recipe ``(words_a, op, words_b)`` per operator over the first two factors, naming pairs of
        values the labels rarely name together: AND of two single-attribute concepts, IN COMMON of two
        two-attribute concepts sharing one attribute, IGNORE of one attribute of a two-attribute concept."""
        names, sizes = self.config.factor_names, self.config.factor_sizes
        f0, f1 = names[0], names[min(1, len(names) - 1)]
        last0, last1 = sizes[0] - 1, sizes[min(1, len(names) - 1)] - 1
        return [
            (f"{f0}={last0}", "AND", f"{f1}={last1}"),
            (f"{f0}=0, {f1}={last1}", "IN COMMON", f"{f0}={last0}, {f1}={last1}"),
            (f"{f0}={last0}, {f1}=0", "IGNORE", f"{f1}=0"),
        ]

    @torch.no_grad()
    def demo_png(self, path: str | Path, recipes: Sequence[tuple[str, str, str]] | None = None,
                 n: int = 6, threshold: float = 0.5, seed: int = 0, img2sym_images: int = 2) -> Path:
        """A PNG of SCAN's three abilities, one captioned row each:

        * **sym2img**: ``n`` samples of the first recipe's first symbol;
        * **img2sym**: ``img2sym_images`` rows of one dataset image each, captioned with the most probable
          word of every factor (:meth:`describe`) — needs an attached dataset;
        * **recombination**: one row per recipe ``(words_a, op, words_b)`` (default
          :meth:`default_recipes`: AND, IN COMMON, IGNORE), ``n`` sym2img samples of
          :meth:`recombine` of the two concepts (the learnt ω unless ``recombination="closed_form"``).

        :param path: the PNG to write (atomically).
        :param threshold: the closed-form rules' specificity cut-off (nats); unused by ω.
        :param seed: seeds the samples and the img2sym images.
        """
        recipes = list(recipes) if recipes is not None else self.default_recipes()
        torch.manual_seed(seed)

        def to_uint8(imgs: Tensor) -> np.ndarray:
            return imgs.clamp(0, 1).mul(255).byte().permute(0, 2, 3, 1).cpu().numpy()

        rows: list[tuple[np.ndarray, str]] = []
        first = recipes[0][0]
        rows.append((to_uint8(self.sym2img(first, n)), f"sym2img [{first}]"))
        if self.dataset is not None and img2sym_images > 0:
            factors = self.dataset.sample_factors(img2sym_images, np.random.default_rng(seed))
            images = self.dataset.images(factors)
            words = self.describe(to_tensor(images, self._device()))
            for img, described in zip(images, words):
                rows.append((img[None], "img2sym: " + ", ".join(w for w, _ in described)))
        for words_a, op, words_b in recipes:
            post = self.recombine(op, self.concept(self.symbol(words_a)), self.concept(self.symbol(words_b)),
                                  threshold)
            rows.append((to_uint8(self.sample_posterior(post, n)), f"[{words_a}] {op} [{words_b}]"))
        png = _compose_rows(rows)
        ok, buf = cv2.imencode(".png", png[..., ::-1])
        if not ok:
            raise RuntimeError(f"could not encode the SCAN demo PNG for {path}")
        path = Path(path)
        atomic_write_bytes(path, buf.tobytes())
        return path


def _compose_rows(rows: list[tuple[np.ndarray, str]], cell: int = 64, pad: int = 4, text_h: int = 16) -> np.ndarray:
    """Rows of ``(n, H, W, C)`` uint8 images under a text caption each → one RGB ``uint8`` canvas."""
    n = max(len(imgs) for imgs, _ in rows)
    width = pad + n * (cell + pad)
    width = max(width, 8 + 7 * max(len(t) for _, t in rows))
    canvas = np.full((pad + len(rows) * (text_h + cell + pad), width, 3), 255, dtype=np.uint8)
    y = pad
    for imgs, text in rows:
        cv2.putText(canvas, text, (pad, y + text_h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        y += text_h
        for i, img in enumerate(imgs):
            if img.shape[-1] == 1:
                img = np.repeat(img, 3, axis=-1)
            tile = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_NEAREST)
            x = pad + i * (cell + pad)
            canvas[y:y + cell, x:x + cell] = tile
        y += cell + pad
    return canvas
