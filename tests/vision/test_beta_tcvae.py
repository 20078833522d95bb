"""β-TCVAE (Chen et al. 2018): the KL decomposition, its minibatch estimators, and the model's loss."""

import math

import pytest
import torch

import vision
from tests.vision.conftest import squares_batch
from vision.models.beta_tcvae import kl_decomposition, log_aggregate_posterior, log_importance_weights
from vision.nets import log_normal_density


def _posteriors(b: int, d: int, seed: int = 0, correlated: bool = False):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g)
    if correlated:
        mu = mu[:, :1].expand(b, d).clone()  # every dimension carries the same value
    logvar = torch.full((b, d), -3.0) + 0.5 * torch.rand(b, d, generator=g)
    z = mu + torch.randn(b, d, generator=g) * torch.exp(0.5 * logvar)
    return z, mu, logvar


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_mi_tc_and_dw_kl_sum_to_the_estimated_kl(sampling):
    z, mu, logvar = _posteriors(64, 5)
    t = kl_decomposition(z, mu, logvar, dataset_size=1000, sampling=sampling)
    direct = (log_normal_density(z, mu, logvar) - log_normal_density(z, 0 * z, 0 * z)).sum(1).mean()
    assert float(t["mi"] + t["tc"] + t["dw_kl"]) == pytest.approx(float(t["kl"]), abs=1e-3)
    assert float(t["kl"]) == pytest.approx(float(direct), abs=1e-4)


def test_estimated_kl_matches_the_analytic_vae_kl_in_expectation():
    # With α = β = γ = 1 the β-TCVAE penalty is mi + tc + dw_kl = E[log q(z|x) − log p(z)]: an unbiased
    # one-sample estimate of the VAE's KL. Four batches of 1024, so the Monte-Carlo error is small.
    estimates, analytic = [], []
    for seed in range(4):
        z, mu, logvar = _posteriors(1024, 4, seed=10 + seed)
        t = kl_decomposition(z, mu, logvar, dataset_size=100_000)
        estimates.append(float(t["mi"] + t["tc"] + t["dw_kl"]))
        analytic.append(float(0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()))
    assert sum(estimates) / 4 == pytest.approx(sum(analytic) / 4, rel=0.03)


def test_mss_is_the_exact_aggregate_posterior_when_the_batch_is_the_whole_dataset():
    z, mu, logvar = _posteriors(12, 3)
    log_qz, log_prod = log_aggregate_posterior(z, mu, logvar, dataset_size=12, sampling="mss")
    mat = log_normal_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))  # (12, 12, 3)
    exact_qz = torch.logsumexp(mat.sum(2), 1) - math.log(12)
    exact_prod = (torch.logsumexp(mat, 1) - math.log(12)).sum(1)
    torch.testing.assert_close(log_qz, exact_qz)
    torch.testing.assert_close(log_prod, exact_prod)


@pytest.mark.parametrize("b, n", [(8, 8), (8, 100), (32, 10_000)])
def test_mss_weights_of_each_row_sum_to_one(b, n):
    w = log_importance_weights(b, n, "mss").exp()
    torch.testing.assert_close(w.sum(1), torch.ones(b, dtype=w.dtype))
    assert float(w[0, 0]) == pytest.approx(1 / n)


def test_total_correlation_is_higher_for_dependent_latents():
    # Same marginal spread; in the correlated code all dimensions copy one value. (The independent
    # code's TC is not 0: a mixture of 256 narrow posteriors in 4-d is not exactly factorial.)
    for seed in (0, 1):
        indep = kl_decomposition(*_posteriors(256, 4, seed=seed), dataset_size=256, sampling="mss")
        corr = kl_decomposition(*_posteriors(256, 4, seed=seed, correlated=True), dataset_size=256, sampling="mss")
        assert float(corr["tc"]) > float(indep["tc"]) + 2.0
        assert 0.0 < float(indep["tc"]) < 1.5


def test_batch_larger_than_dataset_size_is_refused_with_the_fix():
    model = vision.make("beta_tcvae", image_size=16, latents=4, dataset_size=4)
    with pytest.raises(ValueError, match="dataset_size"):
        model.loss(squares_batch(8))


def test_unit_weights_make_the_loss_recon_plus_the_estimated_kl():
    torch.manual_seed(0)
    model = vision.make("beta_tcvae", image_size=16, latents=4, alpha=1, beta=1, gamma=1, dataset_size=100)
    with torch.no_grad():
        t = model.loss(squares_batch(16))
    assert float(t["loss"]) == pytest.approx(float(t["recon"] + t["mi"] + t["tc"] + t["dw_kl"]), rel=1e-6)


def test_weights_scale_their_own_term():
    torch.manual_seed(0)
    base = vision.make("beta_tcvae", image_size=16, latents=4, alpha=1, beta=1, gamma=1, dataset_size=100)
    heavy = vision.make("beta_tcvae", image_size=16, latents=4, alpha=1, beta=5, gamma=1, dataset_size=100)
    heavy.load_state_dict(base.state_dict())
    x = squares_batch(16)
    with torch.no_grad():
        torch.manual_seed(1)
        t1 = base.loss(x)
        torch.manual_seed(1)
        t5 = heavy.loss(x)
    assert float(t5["loss"] - t1["loss"]) == pytest.approx(4 * float(t1["tc"]), rel=1e-4, abs=1e-3)


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_beta_tcvae_loss_falls_on_a_fixed_batch(sampling):
    torch.manual_seed(0)
    model = vision.make("beta_tcvae", image_size=16, latents=4, lr=1e-3, dataset_size=1000, sampling=sampling)
    x = squares_batch()
    opts = model.configure_optimizers()
    logs = [model.train_step(x, opts) for _ in range(40)]
    assert {"loss", "recon", "mi", "tc", "dw_kl"} <= set(logs[0])
    first = sum(l["loss"] for l in logs[:5]) / 5
    last = sum(l["loss"] for l in logs[-5:]) / 5
    assert last < first - 0.2 * abs(first)


def test_features_are_the_posterior_mean_and_survive_save_load(tmp_path):
    model = vision.make("beta_tcvae", image_size=16, latents=4).eval()
    x = squares_batch(4)
    loaded = vision.load(vision.save(model, tmp_path / "ckpt"))
    with torch.no_grad():
        torch.testing.assert_close(loaded.features(x), model.encode(x)[0])
    assert loaded.config.beta == model.config.beta == 6.0


@pytest.mark.parametrize("override, field", [({"sampling": "naive"}, "mws, mss"), ({"dataset_size": 1}, "dataset_size")])
def test_bad_config_fails_naming_the_field_and_choices(override, field):
    with pytest.raises(vision.ConfigError, match=field):
        vision.make("beta_tcvae", **override)


def test_train_vision_tells_beta_tcvae_the_dataset_size(tmp_path):
    import numpy as np

    import vision
    from vision.train import train_vision

    frames = np.random.default_rng(0).integers(0, 256, size=(37, 16, 16, 3), dtype=np.uint8)
    path = train_vision("beta_tcvae", frames, tmp_path, steps=2, batch_size=8, probe=False, progress=False,
                        config={"latents": 4})
    assert vision.load(path).config.dataset_size == 37
