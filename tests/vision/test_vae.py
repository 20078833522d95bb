import math

import pytest
import torch

import vision
from tests.vision.conftest import bernoulli_floor, loss_falls
from vision.models.vae import BetaVAE, GaussianVAE


def test_beta_vae_default_beta_is_four_and_vae_is_one():
    assert vision.make("beta_vae", image_size=16).config.beta == 4.0
    assert vision.make("vae", image_size=16).config.beta == 1.0
    assert isinstance(vision.make("beta_vae", image_size=16), GaussianVAE)


@pytest.mark.parametrize("name", ["vae", "beta_vae"])
def test_vae_loss_falls_on_a_fixed_batch(name, batch16):
    torch.manual_seed(0)
    model = vision.make(name, image_size=16, latents=8)
    before, after = loss_falls(model, batch16, steps=40)
    floor = bernoulli_floor(batch16)
    assert after - floor < 0.7 * (before - floor)


def test_beta_one_beta_vae_loss_equals_vae_loss(batch16):
    torch.manual_seed(0)
    vae = vision.make("vae", image_size=16, latents=6)
    beta = vision.make("beta_vae", image_size=16, latents=6, beta=1.0)
    beta.load_state_dict(vae.state_dict())
    torch.manual_seed(3)
    a = vae.loss(batch16)
    torch.manual_seed(3)
    b = beta.loss(batch16)
    for key in ("loss", "recon", "kl"):
        torch.testing.assert_close(a[key], b[key])


def test_beta_scales_only_the_kl_term(batch16):
    torch.manual_seed(0)
    model = vision.make("beta_vae", image_size=16, latents=6, beta=4.0)
    torch.manual_seed(3)
    terms = model.loss(batch16)
    torch.testing.assert_close(terms["loss"], terms["recon"] + 4.0 * terms["kl"])


def test_forward_terms_shapes_and_kl_per_latent_sums_to_kl(batch16):
    model = vision.make("vae", image_size=16, latents=5)
    t = model.forward_terms(batch16)
    assert t["mu"].shape == t["logvar"].shape == t["z"].shape == (16, 5)
    assert t["logits"].shape == batch16.shape
    assert t["kl_per_latent"].shape == (5,)
    assert model.extra_logs(batch16)["kl_per_latent"].shape == (5,)


def test_features_are_the_posterior_mean_and_deterministic(batch16):
    model = vision.make("beta_vae", image_size=16, latents=5).eval()
    mu, _ = model.encode(batch16)
    torch.testing.assert_close(model.features(batch16), mu)
    torch.testing.assert_close(model.features(batch16), model.features(batch16))


def test_decode_returns_images_in_unit_interval():
    model = vision.make("vae", image_size=32, latents=4)
    img = model.decode(torch.randn(3, 4) * 10)
    assert img.shape == (3, 3, 32, 32)
    assert img.min() >= 0 and img.max() <= 1


@pytest.mark.parametrize(
    "field,value",
    [("beta", -1.0), ("recon", "laplace"), ("latents", 0)],
)
def test_bad_config_value_names_the_field(field, value):
    with pytest.raises(vision.ConfigError, match=field):
        vision.make("beta_vae", **{field: value})


def test_unknown_config_field_lists_valid_fields():
    with pytest.raises(vision.ConfigError, match="valid fields"):
        vision.make("vae", bta=4.0)


def test_gaussian_recon_is_half_the_squared_error_of_sigmoid(batch16):
    # −log N(x; x̂, I) = ½‖x − x̂‖² + const: without the ½ the effective β would be halved.
    model = vision.make("vae", image_size=16, latents=4, recon="gaussian")
    logits = torch.zeros_like(batch16)
    expected = 0.5 * ((0.5 - batch16) ** 2).sum() / batch16.shape[0]
    torch.testing.assert_close(model.reconstruction_term(batch16, logits), expected)
    assert BetaVAE.config_cls().recon == "bernoulli"
    # and it is the Gaussian log-density up to its constant
    x64 = batch16.double()
    normal = torch.distributions.Normal(torch.sigmoid(logits.double()), 1.0)
    const = 0.5 * math.log(2 * math.pi) * batch16[0].numel()
    torch.testing.assert_close(model.reconstruction_term(x64, logits.double()),
                               -normal.log_prob(x64).sum() / batch16.shape[0] - const)
