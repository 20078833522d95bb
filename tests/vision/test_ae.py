import pytest
import torch

import vision
from tests.vision.conftest import bernoulli_floor, loss_falls
from vision.models.ae import occlusion_masks


@pytest.mark.parametrize("name", ["ae", "dae"])
def test_autoencoder_loss_falls_on_a_fixed_batch(name, batch16):
    torch.manual_seed(0)
    model = vision.make(name, image_size=16, latents=16, mask_min=2, mask_max=6) if name == "dae" else \
        vision.make(name, image_size=16, latents=16)
    before, after = loss_falls(model, batch16, steps=40)
    floor = bernoulli_floor(batch16)
    assert after - floor < 0.7 * (before - floor)


def test_dae_default_bottleneck_is_100_and_features_are_the_code(batch16):
    model = vision.make("dae", image_size=16).eval()
    assert model.feature_dim == 100
    torch.testing.assert_close(model.features(batch16), model.encode(batch16))
    assert model.features(batch16).shape == (16, 100)


def test_dae_encoder_sees_occluded_input_and_loss_targets_clean_image(batch16, monkeypatch):
    torch.manual_seed(0)
    model = vision.make("dae", image_size=16, latents=8, mask_min=4, mask_max=6, mask_fill=0.0)
    seen = {}
    encoder_forward = model.encoder.forward

    def spy(x):
        seen["input"] = x.detach().clone()
        return encoder_forward(x)

    monkeypatch.setattr(model.encoder, "forward", spy)
    terms = model.loss(batch16)
    x_in = seen["input"]
    occluded = (x_in != batch16).any(1)  # (B, H, W)
    # Every image got a rectangle of 4..6 px sides; those pixels hold the fill value.
    per_image = occluded.flatten(1).sum(1)
    assert (per_image > 0).all()
    assert (per_image <= 36).all()
    assert torch.all(x_in.permute(0, 2, 3, 1)[occluded] == 0.0)
    # The target is the clean batch: recompute the loss from the same logits against the clean x.
    logits = model.decoder(encoder_forward(x_in))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch16, reduction="sum") / 16
    torch.testing.assert_close(terms["recon"], expected)


def test_dae_features_use_the_clean_image(batch16):
    model = vision.make("dae", image_size=16, latents=8).eval()
    torch.manual_seed(0)
    a = model.features(batch16)
    torch.manual_seed(1)
    torch.testing.assert_close(a, model.features(batch16))


def test_ae_encoder_sees_the_unchanged_input(batch16):
    model = vision.make("ae", image_size=16, latents=8)
    assert torch.equal(model.corrupt(batch16), batch16)


def test_occlusion_masks_are_rectangles_within_size_bounds():
    torch.manual_seed(0)
    masks = occlusion_masks(200, 32, count=1, min_side=3, max_side=9)
    rows = masks.any(2).sum(1)
    cols = masks.any(1).sum(1)
    assert rows.min() >= 3 and rows.max() <= 9 and cols.min() >= 3 and cols.max() <= 9
    assert torch.equal(masks.sum((1, 2)), rows * cols)  # filled rectangles
    assert rows.unique().numel() > 3  # sizes vary


def test_occlusion_mask_sides_are_clipped_to_the_image():
    masks = occlusion_masks(10, 16, count=1, min_side=8, max_side=32)
    assert masks.any(2).sum(1).max() <= 16


@pytest.mark.parametrize("field,value", [("mask_fill", 2.0), ("mask_min", 0), ("mask_count", -1), ("recon", "l1")])
def test_bad_dae_config_names_the_field(field, value):
    with pytest.raises(vision.ConfigError, match=field):
        vision.make("dae", **{field: value})


def test_mask_max_below_min_is_rejected():
    with pytest.raises(vision.ConfigError, match="mask_max"):
        vision.make("dae", mask_min=10, mask_max=5)
