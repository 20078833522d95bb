"""CCI-VAE (Burgess et al. 2018): the capacity schedule, the loss it drives, resume via global_step."""

import pytest
import torch

import vision
from tests.vision.conftest import squares_batch
from vision.models.cci_vae import CCIVAE, capacity_schedule


def test_capacity_schedule_rises_linearly_then_holds_at_c_max():
    assert capacity_schedule(0, 0.5, 25.0, 100) == pytest.approx(0.5)
    assert capacity_schedule(50, 0.5, 25.0, 100) == pytest.approx(12.75)
    assert capacity_schedule(25, 0.5, 25.0, 100) == pytest.approx(0.5 + 24.5 / 4)
    assert capacity_schedule(100, 0.5, 25.0, 100) == pytest.approx(25.0)
    assert capacity_schedule(10_000, 0.5, 25.0, 100) == pytest.approx(25.0)


def test_capacity_schedule_with_zero_steps_starts_at_c_max():
    assert capacity_schedule(0, 0.5, 25.0, 0) == pytest.approx(25.0)


def test_capacity_follows_global_step_and_resumes_after_save_load(tmp_path):
    model = vision.make("cci_vae", image_size=16, latents=4, c_start=1.0, c_max=11.0, c_steps=10)
    x = squares_batch(4)
    opts = model.configure_optimizers()
    logs = [model.train_step(x, opts)["capacity"] for _ in range(3)]
    # Each update reads C at the step it starts from: 1, 2, 3 nats.
    assert logs == pytest.approx([1.0, 2.0, 3.0])
    loaded = vision.load(vision.save(model, tmp_path / "ckpt"))
    assert int(loaded.global_step) == 3
    assert float(loaded.loss(x)["capacity"]) == pytest.approx(4.0)


def test_loss_is_recon_plus_gamma_times_distance_of_kl_from_capacity():
    torch.manual_seed(0)
    model = vision.make("cci_vae", image_size=16, latents=4, gamma=7.0, c_start=3.0, c_max=3.0)
    with torch.no_grad():
        terms = model.loss(squares_batch(8))
    expected = terms["recon"] + 7.0 * (terms["kl"] - 3.0).abs()
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-6)
    assert float(terms["capacity"]) == pytest.approx(3.0)


def test_cci_vae_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = vision.make("cci_vae", image_size=16, latents=4, lr=1e-3, gamma=10.0, c_steps=1000)
    assert isinstance(model, CCIVAE)
    x = squares_batch()
    opts = model.configure_optimizers()
    losses = [model.train_step(x, opts)["loss"] for _ in range(40)]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_kl_is_pulled_towards_capacity_not_zero():
    # With a large γ and C = 3 nats held fixed, the encoder must put ~3 nats in the latents,
    # where a β-VAE would squeeze the KL towards 0.
    torch.manual_seed(0)
    model = vision.make("cci_vae", image_size=16, latents=4, lr=2e-3, gamma=50.0, c_start=3.0, c_max=3.0)
    x = squares_batch()
    opts = model.configure_optimizers()
    for _ in range(60):
        logs = model.train_step(x, opts)
    assert abs(logs["kl"] - 3.0) < 1.0


@pytest.mark.parametrize(
    "override, field",
    [({"c_start": 5.0, "c_max": 1.0}, "c_max"), ({"gamma": 0.0}, "gamma"), ({"c_steps": -1}, "c_steps")],
)
def test_bad_config_fails_naming_the_field(override, field):
    with pytest.raises(vision.ConfigError, match=field):
        vision.make("cci_vae", **override)


def test_paper_defaults_start_capacity_from_zero():
    c = vision.make("cci_vae").config
    assert (c.gamma, c.c_start, c.c_max, c.c_steps) == (1000.0, 0.0, 25.0, 100_000)


@pytest.mark.parametrize("steps", [1, 2, 7, 40, 4000, 300_000])
def test_set_total_steps_makes_c_reach_c_max_at_the_last_update_of_any_run(steps):
    model = vision.make("cci_vae", image_size=16, latents=4)
    model.set_total_steps(steps)
    model.global_step.fill_(steps - 1)  # the last update of the run reads C here
    assert model.capacity() == pytest.approx(25.0)
    if steps > 2:
        model.global_step.fill_(0)
        assert model.capacity() == pytest.approx(0.0)
        model.global_step.fill_(steps // 2)
        assert 0.0 < model.capacity() < 25.0


def test_capacity_fraction_reaches_c_max_earlier_and_holds():
    model = vision.make("cci_vae", image_size=16, latents=4, capacity_fraction=0.5)
    model.set_total_steps(101)
    model.global_step.fill_(50)
    assert model.capacity() == pytest.approx(25.0)
    model.global_step.fill_(25)
    assert model.capacity() == pytest.approx(12.5)


def test_a_short_training_run_ends_at_c_max(tmp_path, frames16):
    # The real loop: a 6-step run whose model had its schedule fitted ends with C = c_max.
    from vision.train import train_vision

    model = vision.make("cci_vae", image_size=16, latents=4, c_max=5.0)
    model.set_total_steps(6)
    out = train_vision(model, frames16, tmp_path / "run", steps=6, batch_size=4, progress=False, probe=False)
    loaded = vision.load(out)
    assert int(loaded.global_step) == 6 and loaded.config.c_steps == 5
    assert loaded.capacity() == pytest.approx(5.0)


def test_pipeline_fits_the_schedule_to_vision_steps(tmp_path):
    from darla.config import from_dict
    from darla.pipeline import build_vision_model

    cfg = from_dict({"env": {"obs_size": 16}, "vision": {"model": "cci_vae", "steps": 4000}})
    model = build_vision_model(cfg, None, tmp_path)
    model.global_step.fill_(3999)
    assert model.capacity() == pytest.approx(model.config.c_max)
    explicit = from_dict({"env": {"obs_size": 16},
                                    "vision": {"model": "cci_vae", "steps": 4000, "model_config": {"c_steps": 123}}})
    assert build_vision_model(explicit, None, tmp_path).config.c_steps == 123


def test_set_total_steps_rejects_a_non_positive_length():
    with pytest.raises(ValueError, match="positive int"):
        vision.make("cci_vae").set_total_steps(0)
