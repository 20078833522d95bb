"""FactorVAE (Kim & Mnih 2018): permute_dims, the two-optimiser train_step and its gradient isolation."""

import pytest
import torch

import vision
from tests.vision.conftest import squares_batch
from vision.models.factor_vae import FactorVAE, permute_dims
from vision.nets import reparameterize


def _model(**overrides) -> FactorVAE:
    cfg = {"image_size": 16, "latents": 4, "disc_hidden": 32, "disc_layers": 3, **overrides}
    return vision.make("factor_vae", **cfg)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_permute_dims_shuffles_each_column_by_its_own_permutation():
    b, d = 64, 4
    rows = torch.arange(b, dtype=torch.float32)
    z = torch.stack([rows + 1000 * j for j in range(d)], dim=1)  # z[i, j] = i + 1000 j: row i is recoverable
    out = permute_dims(z, generator=torch.Generator().manual_seed(0))
    # Each column is a permutation of the original column.
    for j in range(d):
        assert torch.equal(out[:, j].sort().values, z[:, j])
    # Rows are not kept together: the source row of each entry differs between columns.
    src = out - 1000 * torch.arange(d, dtype=torch.float32)  # (B, D) source-row index of every entry
    same_row = (src == src[:, :1]).all(dim=1)
    assert same_row.float().mean() < 0.1
    # And the columns are not all shuffled by one shared permutation.
    assert not torch.equal(src[:, 0], src[:, 1])


def test_permute_dims_is_reproducible_with_a_generator():
    z = torch.randn(32, 5)
    a = permute_dims(z, generator=torch.Generator().manual_seed(3))
    b = permute_dims(z, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_configure_optimizers_splits_vae_and_discriminator_parameters():
    model = _model()
    vae_opt, disc_opt = model.configure_optimizers()
    disc_ids = {id(p) for p in model.discriminator.parameters()}
    vae_ids = {id(p) for g in vae_opt.param_groups for p in g["params"]}
    assert {id(p) for g in disc_opt.param_groups for p in g["params"]} == disc_ids
    assert not vae_ids & disc_ids
    assert vae_ids | disc_ids == {id(p) for p in model.parameters()}
    assert disc_opt.param_groups[0]["betas"] == (0.5, 0.9)
    assert disc_opt.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_train_step_updates_encoder_decoder_and_discriminator():
    torch.manual_seed(0)
    model = _model()
    opts = model.configure_optimizers()
    enc, dec, disc = _snapshot(model.encoder), _snapshot(model.decoder), _snapshot(model.discriminator)
    for _ in range(3):  # several steps: an in-place-modified-tensor error would surface here
        logs = model.train_step(squares_batch(8), opts)
    assert _changed(enc, model.encoder) and _changed(dec, model.decoder) and _changed(disc, model.discriminator)
    assert int(model.global_step) == 3
    assert {"loss", "recon", "kl", "tc", "disc_loss", "disc_acc"} <= set(logs)


def test_discriminator_loss_sends_no_gradient_to_the_encoder():
    torch.manual_seed(0)
    model = _model()
    vae_opt, disc_opt = model.configure_optimizers()
    captured: dict[str, torch.Tensor] = {}
    vae_step = vae_opt.step

    def step_and_capture(*args, **kwargs):
        captured.update({n: p.grad.clone() for n, p in model.encoder.named_parameters()})
        return vae_step(*args, **kwargs)

    vae_opt.step = step_and_capture
    model.train_step(squares_batch(8), [vae_opt, disc_opt])
    # After D's update the encoder's gradients are still exactly those of the VAE loss.
    for name, p in model.encoder.named_parameters():
        assert torch.equal(p.grad, captured[name]), name

    # And directly: D's loss on z's that carry the encoder's graph leaves the encoder untouched.
    model.zero_grad(set_to_none=True)
    mu, logvar = model.encode(squares_batch(8))
    loss, _ = model.discriminator_loss(mu, mu + logvar)
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert any(p.grad is not None for p in model.discriminator.parameters())


def test_vae_total_correlation_term_does_not_change_the_discriminator_update():
    # Two identical models, one with γ = 0 and one with a huge γ: the encoders must move differently
    # (the TC term acts on them), the discriminators identically (the TC term must not reach D).
    torch.manual_seed(0)
    a = _model(gamma=0.0)
    b = _model(gamma=1000.0)
    b.load_state_dict(a.state_dict())
    x = squares_batch(8)
    for model in (a, b):
        torch.manual_seed(1)
        model.train_step(x, model.configure_optimizers())
    for (name, pa), pb in zip(a.discriminator.named_parameters(), b.discriminator.parameters()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pb) for pa, pb in zip(a.encoder.parameters(), b.encoder.parameters()))


def test_discriminator_learns_to_tell_correlated_codes_from_permuted_ones():
    # z with all dimensions equal (maximal TC) versus its permutation: D should separate them quickly,
    # and the TC estimate should become clearly positive.
    torch.manual_seed(0)
    model = _model(disc_lr=1e-3)
    _, disc_opt = model.configure_optimizers()
    for _ in range(150):
        z = torch.randn(64, 1).expand(64, 4)
        loss, acc = model.discriminator_loss(z, torch.randn(64, 1).expand(64, 4))
        disc_opt.zero_grad()
        loss.backward()
        disc_opt.step()
    assert float(acc) > 0.8
    with torch.no_grad():
        assert float(model.total_correlation(torch.randn(256, 1).expand(256, 4))) > 1.0


def test_factor_vae_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = _model(lr=1e-3, gamma=1.0)
    x = squares_batch(32)
    opts = model.configure_optimizers()
    logs = [model.train_step(x, opts) for _ in range(40)]
    first = sum(l["recon"] + l["kl"] for l in logs[:5]) / 5
    last = sum(l["recon"] + l["kl"] for l in logs[-5:]) / 5
    assert last < 0.8 * first


def test_save_load_keeps_features_and_discriminator(tmp_path):
    torch.manual_seed(0)
    model = _model()
    model.train_step(squares_batch(8), model.configure_optimizers())
    model.eval()
    loaded = vision.load(vision.save(model, tmp_path / "ckpt"))
    x = squares_batch(4)
    with torch.no_grad():
        assert torch.equal(loaded.features(x), model.features(x))
        z = torch.randn(5, 4)
        assert torch.equal(loaded.discriminator(z), model.discriminator(z))
    assert int(loaded.global_step) == 1


def test_train_step_refuses_a_batch_too_small_to_permute():
    model = _model()
    with pytest.raises(ValueError, match=">= 2"):
        model.train_step(squares_batch(1), model.configure_optimizers())


def test_vae_and_discriminator_each_see_a_full_batch_and_d_permutes_a_second_batch():
    # Kim & Mnih 2018, Algorithm 2: the VAE's loss uses all B images, D sees the B z's of that batch
    # (label q(z)) and B permuted z's of a *second* batch (label q̄(z)): here the previous call's batch.
    torch.manual_seed(0)
    model = _model()
    opts = model.configure_optimizers()
    seen = {"vae": [], "disc": []}
    terms, disc = model._vae_terms, model.discriminator_loss

    def spy_terms(x):
        seen["vae"].append(x.shape[0])
        return terms(x)

    def spy_disc(z, z_other):
        seen["disc"].append((z.shape[0], z_other.clone()))
        return disc(z, z_other)

    model._vae_terms, model.discriminator_loss = spy_terms, spy_disc
    first, second = squares_batch(8), squares_batch(8).flip(0) * 0.5
    model.train_step(first, opts)
    with torch.no_grad():  # the z's D will permute at the second step: `first` through the current encoder
        torch.manual_seed(7)
        expected = reparameterize(*model.encode(first))
    torch.manual_seed(7)
    model.train_step(second, opts)
    assert seen["vae"] == [8, 8]
    assert [n for n, _ in seen["disc"]] == [8, 8]
    torch.testing.assert_close(seen["disc"][1][1], expected)  # the first batch's z's, not the second's


def test_paper_defaults():
    c = vision.make("factor_vae").config
    assert (c.gamma, c.disc_hidden, c.disc_layers, c.disc_lr, c.disc_beta1, c.disc_beta2, c.lr) == (
        35.0, 1000, 6, 1e-4, 0.5, 0.9, 1e-4)
    model = vision.make("factor_vae", latents=10)
    linears = [m for m in model.discriminator.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 1000)] + [(1000, 1000)] * 4 + [(1000, 2)]
    slopes = {m.negative_slope for m in model.discriminator.net if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}


def test_train_step_refuses_a_single_optimiser():
    model = _model()
    with pytest.raises(ValueError, match="vae_opt, disc_opt"):
        model.train_step(squares_batch(8), model.configure_optimizers()[:1])


@pytest.mark.parametrize("override, field", [({"disc_beta1": 1.0}, "disc_beta1"), ({"disc_layers": 0}, "disc_layers")])
def test_bad_config_fails_naming_the_field(override, field):
    with pytest.raises(vision.ConfigError, match=field):
        _model(**override)
