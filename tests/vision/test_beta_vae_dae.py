import pytest
import torch

import vision
from tests.vision.conftest import loss_falls
from vision.models.beta_vae_dae import BetaVAEDAE


@pytest.fixture
def trained_dae(batch16):
    torch.manual_seed(0)
    dae = vision.make("dae", image_size=16, latents=16, mask_min=2, mask_max=6)
    loss_falls(dae, batch16, steps=10)
    return dae.eval()


@pytest.fixture
def model(trained_dae):
    torch.manual_seed(1)
    m = vision.make("beta_vae_dae", image_size=16, latents=6, dae_layer=2, dae_bottleneck=16)
    m.set_dae(trained_dae)
    return m


def test_loss_falls_on_a_fixed_batch(model, batch16):
    before, after = loss_falls(model, batch16, steps=40)
    assert after < 0.7 * before


def test_no_gradient_reaches_the_frozen_dae_and_its_weights_do_not_change(model, batch16):
    before = {k: v.clone() for k, v in model.dae.state_dict().items()}
    opts = model.configure_optimizers()
    for _ in range(3):
        model.train_step(batch16, opts)
    assert all(p.grad is None for p in model.dae.parameters())
    assert all(not p.requires_grad for p in model.dae.parameters())
    for k, v in model.dae.state_dict().items():
        assert torch.equal(v, before[k]), k
    # ...while the decoder does receive gradient through J.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_dae_stays_in_eval_mode_when_model_is_trained(model):
    model.train()
    assert model.training and model.encoder.training
    assert not model.dae.training
    assert not any(m.training for m in model.dae.modules())


def test_optimizer_holds_no_dae_parameter(model):
    (opt,) = model.configure_optimizers()
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in model.dae.parameters()}


def test_recon_is_summed_squared_error_of_dae_features(model, batch16):
    logits = torch.randn_like(batch16)
    j = lambda x: model.dae.encoder.conv_features(x, 2)  # noqa: E731
    expected = (j(torch.sigmoid(logits)) - j(batch16)).pow(2).sum() / batch16.shape[0]
    torch.testing.assert_close(model.reconstruction_term(batch16, logits), expected)


def test_dae_checkpoint_config_loads_the_dae(trained_dae, tmp_path, batch16):
    vision.save(trained_dae, tmp_path / "dae")
    m = vision.make("beta_vae_dae", image_size=16, latents=6, dae_layer=2, dae_bottleneck=16,
                    dae_checkpoint=str(tmp_path / "dae"))
    torch.testing.assert_close(m.feature_map(batch16), trained_dae.encoder.conv_features(batch16, 2))


def test_set_dae_adopts_a_different_bottleneck(trained_dae, batch16):
    m = vision.make("beta_vae_dae", image_size=16, latents=6, dae_layer=2)  # dae_bottleneck 100
    m.set_dae(trained_dae)
    assert m.config.dae_bottleneck == 16
    torch.testing.assert_close(m.feature_map(batch16), trained_dae.encoder.conv_features(batch16, 2))


def test_loss_without_a_dae_says_how_to_get_one(batch16):
    m = vision.make("beta_vae_dae", image_size=16, latents=6, dae_layer=2)
    with pytest.raises(RuntimeError, match="set_dae"):
        m.loss(batch16)


def test_set_dae_rejects_a_non_dae_or_wrong_size():
    m = vision.make("beta_vae_dae", image_size=16, latents=6, dae_layer=2)
    with pytest.raises(TypeError, match="dae"):
        m.set_dae(vision.make("ae", image_size=16))
    with pytest.raises(ValueError, match="same frames"):
        m.set_dae(vision.make("dae", image_size=32))


def test_dae_layer_out_of_range_names_the_field():
    with pytest.raises(vision.ConfigError, match="dae_layer"):
        vision.make("beta_vae_dae", image_size=16, dae_layer=4)  # 16×16 has 2 conv layers


def test_defaults_follow_the_measured_recipe():
    c = BetaVAEDAE.config_cls()
    assert (c.beta, c.dae_layer, c.dae_bottleneck, c.lr) == (1.0, 4, 100, 5e-4)
