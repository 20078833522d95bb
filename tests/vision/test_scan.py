"""SCAN: closed-form recombination operators, grounding, img2sym / sym2img on a stub visual model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import vision
from vision.base import ConfigError
from vision.models.scan import (
    SCAN,
    concept_and,
    concept_ignore,
    concept_in_common,
    gaussian_product,
    k_hot,
    random_mentions,
    recombine,
    vocabulary,
)

SIZES = (3, 4, 3)
SIGMA = 0.1


class CodedFactors:
    """16×16×3 images whose pixel (0, 0, c) stores factor c (value·40 + 20); combinations with
    factor 0 == factor 2 are held out of ``sample_factors`` (never seen in training)."""

    factor_names = ("shape", "colour", "floor")
    factor_sizes = SIZES
    observation_shape = (16, 16, 3)

    def sample_factors(self, n, rng):
        out = np.zeros((0, 3), dtype=np.int64)
        while len(out) < n:
            f = np.stack([rng.integers(0, s, size=2 * n) for s in SIZES], axis=1)
            out = np.concatenate([out, f[f[:, 0] != f[:, 2]]])
        return out[:n]

    def held_out(self, n, rng):
        f = np.stack([rng.integers(0, s, size=4 * n) for s in SIZES], axis=1)
        return f[f[:, 0] == f[:, 2]][:n]

    def images(self, factors):
        out = np.zeros((len(factors), 16, 16, 3), dtype=np.uint8)
        out[:] = (np.asarray(factors) * 40 + 20)[:, None, None, :].astype(np.uint8)
        return out


class StubVisual(nn.Module):
    """Visual primitives that are the factors: latents 0..2 = centred factor values (σ = 0.1), 3..4 = prior."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(channels=3, image_size=16, latents=5)
        self.centre = torch.tensor([(s - 1) / 2 for s in SIZES])

    def encode(self, x):
        f = ((x[:, :, 0, 0] * 255 - 20) / 40).round()  # (B, 3)
        mu = torch.cat([f - self.centre, torch.zeros(len(x), 2)], dim=1)
        logvar = torch.cat([torch.full((len(x), 3), 2 * math.log(SIGMA)), torch.zeros(len(x), 2)], dim=1)
        return mu, logvar

    def decode(self, z):
        f = (z[:, :3] + self.centre).round().clamp(min=torch.zeros(3), max=torch.tensor(SIZES) - 1.0)
        return ((f * 40 + 20) / 255)[:, :, None, None].expand(-1, -1, 16, 16)


def g(mu, var):
    return torch.tensor(mu, dtype=torch.float64), torch.tensor(var, dtype=torch.float64).log()


# -- operators on hand-made Gaussians -------------------------------------------------------------
A = g([1.0, 0.0, 2.0, 0.0], [0.01, 1.0, 0.04, 1.0])  # specific on 0 and 2
B = g([0.0, -1.0, 2.1, 0.3], [1.0, 0.01, 0.04, 1.0])  # specific on 1 and 2 (3 is ≈ prior)
PRIOR = (0.0, 0.0)  # (mu, logvar)


def assert_dim(post, k, mu, logvar):
    assert float(post[0][k]) == pytest.approx(mu, abs=1e-9)
    assert float(post[1][k]) == pytest.approx(logvar, abs=1e-9)


def test_product_of_gaussians_adds_precisions():
    mu, logvar = gaussian_product(g([1.0], [0.04]), g([3.0], [0.04]))
    assert float(mu) == pytest.approx(2.0) and float(logvar.exp()) == pytest.approx(0.02)


def test_and_takes_each_concepts_attributes_and_multiplies_shared_ones():
    out = concept_and(A, B)
    assert_dim(out, 0, 1.0, math.log(0.01))
    assert_dim(out, 1, -1.0, math.log(0.01))
    assert_dim(out, 2, 2.05, math.log(0.02))
    assert_dim(out, 3, *PRIOR)


def test_in_common_keeps_only_shared_agreeing_attributes():
    out = concept_in_common(A, B)
    assert_dim(out, 2, 2.05, math.log(0.02))
    for k in (0, 1, 3):
        assert_dim(out, k, *PRIOR)
    disagree = g([0.0, -1.0, -2.0, 0.0], [1.0, 0.01, 0.04, 1.0])
    assert_dim(concept_in_common(A, disagree), 2, *PRIOR)


def test_ignore_resets_the_second_concepts_attributes_to_the_prior():
    out = concept_ignore(A, B)
    assert_dim(out, 0, 1.0, math.log(0.01))
    assert_dim(out, 1, *PRIOR)  # B constrains it (A did not either)
    assert_dim(out, 2, *PRIOR)  # B constrains it: forgotten although A had it
    assert_dim(out, 3, 0.0, 0.0)  # A's own value (unspecific)


def test_recombine_dispatches_by_name_and_names_valid_operators():
    out = recombine("in common", A, B)
    torch.testing.assert_close(out[0], concept_in_common(A, B)[0])
    with pytest.raises(ValueError, match="AND, IN COMMON, IGNORE"):
        recombine("OR", A, B)


# -- symbols ----------------------------------------------------------------------------------
def test_k_hot_names_exactly_the_mentioned_factor_values():
    y = k_hot(np.array([[2, 0, 1]]), SIZES, mention=np.array([[True, False, True]]))
    words = vocabulary(CodedFactors.factor_names, SIZES)
    assert [w for w, v in zip(words, y[0]) if v] == ["shape=2", "floor=1"]


def test_random_mentions_never_gives_an_empty_label():
    m = random_mentions(500, 3, 0.1, np.random.default_rng(0))
    assert m.any(1).all() and 0.05 < m.mean() < 0.6


# -- the trained model ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    ds = CodedFactors()
    model = SCAN.for_dataset(StubVisual(), ds, hidden=64, lr=3e-3)
    opts = model.configure_optimizers()
    x = torch.zeros(64, 3, 16, 16)  # ignored: SCAN draws its own labelled batch
    model.train()
    logs = [model.train_step(x, opts) for _ in range(400)]
    model.eval()
    return model, ds, logs


def test_grounding_kl_falls(trained):
    _, _, logs = trained
    # It cannot reach 0: a label that does not name a factor must cover all of that factor's values.
    assert np.mean([r["grounding"] for r in logs[-20:]]) < 0.6 * np.mean([r["grounding"] for r in logs[:20]])


def test_img2sym_recovers_labels_of_held_out_combinations(trained):
    model, ds, _ = trained
    factors = ds.held_out(60, np.random.default_rng(7))
    x = vision.to_tensor(ds.images(factors))
    torch.manual_seed(1)
    pred = model.predict_factors(x)
    assert (pred == factors).mean() > 0.9, (pred == factors).mean(0)
    top = model.describe(x[:1])[0]
    assert {w for w, _ in top} == {f"{n}={v}" for n, v in zip(ds.factor_names, factors[0])}


def test_concept_is_narrow_on_named_factors_and_broad_on_the_rest(trained):
    model, _, _ = trained
    with torch.no_grad():
        mu, logvar = model.concept(model.symbol("colour=3"))
    sd = (0.5 * logvar).exp()
    assert sd[1] < 0.3 and float(mu[1]) == pytest.approx(1.5, abs=0.3)
    assert (sd[[0, 2]] > 0.6).all(), sd


def test_sym2img_shows_the_named_value_and_varies_the_rest(trained):
    model, _, _ = trained
    torch.manual_seed(2)
    imgs = model.sym2img(["colour=3"], n=64)
    values = ((imgs[:, :, 0, 0] * 255 - 20) / 40).round()
    assert (values[:, 1] == 3).float().mean() > 0.9
    assert len(values[:, 0].unique()) > 1 and len(values[:, 2].unique()) > 1


def test_and_of_two_learnt_concepts_generates_the_novel_combination(trained):
    model, _, _ = trained
    with torch.no_grad():
        # shape=1 with floor=1 never appears in training (factor 0 == factor 2 is held out).
        post = recombine("AND", model.concept(model.symbol("shape=1")), model.concept(model.symbol("floor=1")))
    torch.manual_seed(3)
    values = ((model.sample_posterior(post, 64)[:, :, 0, 0] * 255 - 20) / 40).round()
    assert ((values[:, 0] == 1) & (values[:, 2] == 1)).float().mean() > 0.8


def test_demo_png_writes_one_row_per_recipe(trained, tmp_path):
    model, _, _ = trained
    path = model.demo_png(tmp_path / "scan.png", n=4)
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] == 4 + 3 * (16 + 64 + 4)
    assert not list(tmp_path.glob("*.tmp"))


def test_unknown_word_names_the_vocabulary(trained):
    model, _, _ = trained
    with pytest.raises(ValueError, match="shape=0, shape=1"):
        model.symbol("shape=9")


def test_make_without_vocabulary_or_visual_says_how_to_build_it():
    with pytest.raises(ConfigError, match="for_dataset"):
        vision.make("scan", image_size=16)
    with pytest.raises(ConfigError, match="visual_checkpoint"):
        vision.make("scan", image_size=16, factor_names=["a"], factor_sizes=[2])


def test_save_load_round_trip_with_a_real_beta_vae_dae(tmp_path):
    torch.manual_seed(0)
    visual = vision.make("beta_vae_dae", image_size=16, latents=4, dae_bottleneck=8, dae_layer=2)
    visual.set_dae(vision.make("dae", image_size=16, latents=8))
    ds = CodedFactors()
    model = SCAN.for_dataset(visual, ds, hidden=16)
    opts = model.configure_optimizers()
    model.train_step(torch.zeros(8, 3, 16, 16), opts)
    before = [p.detach().clone() for p in visual.parameters()]
    model.train_step(torch.zeros(8, 3, 16, 16), opts)
    for a, p in zip(before, visual.parameters()):  # the visual primitives stay frozen
        torch.testing.assert_close(a, p)
    model.eval()
    vision.save(model, tmp_path / "scan")
    loaded = vision.load(tmp_path / "scan")
    y = model.symbol("shape=1, floor=2")
    x = vision.to_tensor(ds.images(np.array([[0, 1, 2], [2, 3, 1]])))
    with torch.no_grad():
        torch.testing.assert_close(model.concept(y)[0], loaded.concept(y)[0])
        torch.testing.assert_close(model.features(x), loaded.features(x))
