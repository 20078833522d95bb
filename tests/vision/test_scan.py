"""SCAN: the learnt recombination operator ω and the closed-form alternative, grounding, img2sym /
sym2img on a stub visual model."""

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
    OPERATORS,
    SCAN,
    RecombinationOperator,
    concept_and,
    concept_ignore,
    concept_in_common,
    gaussian_product,
    k_hot,
    random_mentions,
    recombination_labels,
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


def test_demo_png_shows_sym2img_img2sym_and_each_operator(trained, tmp_path):
    model, _, _ = trained
    path = model.demo_png(tmp_path / "scan.png", n=4, img2sym_images=2)
    img = cv2.imread(str(path))
    rows = 1 + 2 + 3  # sym2img, two img2sym images, AND / IN COMMON / IGNORE
    assert img is not None and img.shape[0] == 4 + rows * (16 + 64 + 4)
    assert not list(tmp_path.glob("*.tmp"))
    assert [op for _, op, _ in model.default_recipes()] == list(OPERATORS)


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


# -- the learnt recombination operator ω -----------------------------------------------------------
def _values(model, post, n=128, seed=3):
    torch.manual_seed(seed)
    return ((model.sample_posterior(post, n)[:, :, 0, 0] * 255 - 20) / 40).round()


def _sd(post):
    return (0.5 * post[1]).exp()


def test_recombination_loss_falls(trained):
    _, _, logs = trained
    rec = [r["recombination"] for r in logs if "recombination" in r]
    assert len(rec) == len(logs)  # recombination_start = 0: ω trains from the first step
    # it cannot reach 0: a latent the result does not name must cover all of that factor's values
    assert np.mean(rec[-20:]) < 0.7 * np.mean(rec[:20])


def test_learnt_and_gives_the_union_of_two_disjoint_concepts(trained):
    model, _, _ = trained
    with torch.no_grad():  # shape=1 with floor=1 never appears in training (held out)
        post = model.recombine("AND", model.concept(model.symbol("shape=1")), model.concept(model.symbol("floor=1")))
    # narrow (the stub's σ = 0.1) on both named latents, at their values; broad on colour
    sd = _sd(post)
    assert sd[0] < 0.3 and sd[2] < 0.3 and sd[1] > 0.6, sd
    assert float(post[0][0]) == pytest.approx(0.0, abs=0.3) and float(post[0][2]) == pytest.approx(0.0, abs=0.3)
    v = _values(model, post)
    assert ((v[:, 0] == 1) & (v[:, 2] == 1)).float().mean() > 0.8
    assert len(v[:, 1].unique()) > 1  # colour: not named by either, still free


def test_learnt_in_common_gives_the_intersection(trained):
    model, _, _ = trained
    with torch.no_grad():
        post = model.recombine("IN COMMON", model.concept(model.symbol("shape=2, colour=3")),
                               model.concept(model.symbol("shape=2, colour=0")))
    # narrow on the shared shape, broad on colour (the values disagree); floor stays as broad as the
    # data allows given shape=2 (floor ≠ shape in training: values 0 and 1, sd ≈ 0.5)
    sd = _sd(post)
    assert sd[0] < 0.3 and sd[1] > 0.6 and sd[2] > 0.3, sd
    assert float(post[0][0]) == pytest.approx(1.0, abs=0.3)
    v = _values(model, post)
    assert (v[:, 0] == 2).float().mean() > 0.8 and len(v[:, 1].unique()) > 2


def test_learnt_ignore_removes_the_named_part(trained):
    model, _, _ = trained
    with torch.no_grad():
        post = model.recombine("IGNORE", model.concept(model.symbol("shape=0, colour=3")),
                               model.concept(model.symbol("colour=3")))
    sd = _sd(post)
    assert sd[0] < 0.3 and sd[1] > 0.6 and sd[2] > 0.3, sd
    assert float(post[0][0]) == pytest.approx(-1.0, abs=0.3)
    v = _values(model, post)
    assert (v[:, 0] == 0).float().mean() > 0.8 and len(v[:, 1].unique()) > 2


def test_operator_strides_over_latent_components_with_one_weight_set_per_operator():
    torch.manual_seed(0)
    omega = RecombinationOperator(hidden=8)
    a = (torch.randn(2, 5), torch.randn(2, 5))
    b = (torch.randn(2, 5), torch.randn(2, 5))
    s = torch.eye(3)[[0, 2]]
    out = omega(a, b, s)
    perm = torch.tensor([4, 2, 0, 1, 3])
    moved = omega((a[0][:, perm], a[1][:, perm]), (b[0][:, perm], b[1][:, perm]), s)
    torch.testing.assert_close(moved[0], out[0][:, perm])  # same transformation at every component
    torch.testing.assert_close(moved[1], out[1][:, perm])
    other = omega(a, b, torch.eye(3)[[1, 1]])  # s selects different weights
    assert not torch.allclose(other[0], out[0])
    # component k of the output depends on component k of the inputs only
    a2 = (a[0].clone(), a[1].clone())
    a2[0][:, 3] += 5.0
    changed = omega(a2, b, s)[0] != out[0]
    assert changed[:, 3].all() and not changed[:, [0, 1, 2, 4]].any()


def test_recombination_labels_make_the_image_show_the_result_concept():
    rng = np.random.default_rng(0)
    n, sizes = 400, SIZES
    factors = np.stack([rng.integers(0, s, n) for s in sizes], 1)
    others = np.stack([rng.integers(0, s, n) for s in sizes], 1)
    others2 = np.stack([rng.integers(0, s, n) for s in sizes], 1)
    ops = rng.integers(0, 3, n)
    v1, m1, v2, m2 = recombination_labels(factors, others, others2, ops, 0.5, rng, sizes)
    assert m1.any(1).all() and m2.any(1).all()  # neither symbol is empty
    for i in range(n):
        op = OPERATORS[ops[i]]
        if op == "AND":  # result = union: every named value is the image's
            assert (v1[i][m1[i]] == factors[i][m1[i]]).all() and (v2[i][m2[i]] == factors[i][m2[i]]).all()
        elif op == "IN COMMON":  # result = the attributes both name: the image's values
            common = m1[i] & m2[i] & (v1[i] == v2[i])
            assert common.any() and (v1[i][common] == factors[i][common]).all()
            assert ((m1[i] & ~m2[i]) | (m2[i] & ~m1[i]) | common | (m1[i] & m2[i] & (v1[i] != v2[i]))).sum() >= common.sum()
        else:  # IGNORE: y2 names a part of y1, with y1's values; the rest of y1 is the image's
            assert (m2[i] <= m1[i]).all() and (v2[i][m2[i]] == v1[i][m2[i]]).all()
            rest = m1[i] & ~m2[i]
            assert (v1[i][rest] == factors[i][rest]).all()



def test_closed_form_is_a_named_alternative(trained):
    model, ds, _ = trained
    alt = SCAN.for_dataset(StubVisual(), ds, hidden=64, recombination="closed_form")
    alt.load_state_dict(model.state_dict())
    with torch.no_grad():
        a, b = alt.concept(alt.symbol("shape=1")), alt.concept(alt.symbol("floor=1"))
        mine = alt.recombine("AND", a, b)
        ref = concept_and(a, b)
    torch.testing.assert_close(mine[0], ref[0])
    with pytest.raises(ConfigError, match="learnt, closed_form"):
        SCAN.for_dataset(StubVisual(), ds, recombination="rules")
