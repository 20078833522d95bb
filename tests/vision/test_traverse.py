import cv2
import numpy as np
import pytest
import torch

import vision
from vision.traverse import grid_shape, latent_scores, traverse


@pytest.mark.parametrize("name", ["beta_vae", "ae"])
def test_traversal_png_has_one_row_per_latent_plus_two(tmp_path, frames16, name):
    torch.manual_seed(0)
    model = vision.make(name, image_size=16, latents=5)
    out = traverse(model, frames16[:10], tmp_path / "t.png", n_originals=4, steps=7)
    png = cv2.imread(str(out))
    assert png.shape[:2] == grid_shape(16, rows=2 + 5, cols=7)


def test_originals_row_shows_the_images(tmp_path, frames16):
    model = vision.make("vae", image_size=16, latents=3)
    out = traverse(model, frames16[:3], tmp_path / "t.png", n_originals=3, steps=4)
    png = cv2.imread(str(out))[..., ::-1]
    h, w = grid_shape(16, rows=5, cols=4)
    from vision.traverse import LABEL_WIDTH, PAD, cell_size

    cell = cell_size(16)
    first = png[PAD : PAD + cell, LABEL_WIDTH + PAD : LABEL_WIDTH + PAD + cell]
    expected = np.repeat(np.repeat(frames16[0], cell // 16, 0), cell // 16, 1)
    assert np.array_equal(first, expected)


def test_kl_score_is_the_batch_mean_kl_per_latent(frames16):
    model = vision.make("vae", image_size=16, latents=4)
    x = vision.to_tensor(frames16[:8])
    kl, name = latent_scores(model, x)
    assert name == "KL" and kl.shape == (4,)
    mu, logvar = model.encode(x)
    np.testing.assert_allclose(kl, (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(0).detach().numpy(), rtol=1e-5)


def test_latent_rows_are_sorted_by_kl_descending(tmp_path, frames16, monkeypatch):
    torch.manual_seed(0)
    model = vision.make("vae", image_size=16, latents=5)
    kl, _ = latent_scores(model, vision.to_tensor(frames16[:8]))
    swept = []
    decode = model.decode

    def spy(z):
        if z.shape[0] == 6:  # a latent row: find the latent that varies along it
            swept.append(int(torch.argmax(z.std(0))))
        return decode(z)

    monkeypatch.setattr(model, "decode", spy)
    traverse(model, frames16[:8], tmp_path / "t.png", n_originals=2, steps=6)
    assert swept == list(np.argsort(-kl, kind="stable"))
    assert sorted(swept) == list(range(5))


def test_model_stays_in_its_mode(tmp_path, frames16):
    model = vision.make("vae", image_size=16, latents=3).train()
    traverse(model, frames16[:2], tmp_path / "t.png")
    assert model.training


def test_non_generative_model_is_a_clear_error(tmp_path, frames16):
    model = vision.make("ae", image_size=16, latents=3)
    type(model).generative = False
    try:
        with pytest.raises(ValueError, match="no decoder.*generative models"):
            traverse(model, frames16[:2], tmp_path / "t.png")
    finally:
        type(model).generative = True
    assert not (tmp_path / "t.png").exists()


def test_wrong_frame_shape_is_a_clear_error(tmp_path, frames32):
    model = vision.make("vae", image_size=16, latents=3)
    with pytest.raises(ValueError, match=r"\(N, 16, 16, 3\)"):
        traverse(model, frames32[:2], tmp_path / "t.png")


def test_max_latents_keeps_only_the_most_informative_rows(tmp_path):
    import numpy as np

    import vision
    from vision.traverse import grid_shape, traverse

    model = vision.make("vae", image_size=16, latents=6)
    frames = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    png = traverse(model, frames, tmp_path / "t.png", n_originals=4, steps=5, max_latents=2)
    import cv2

    assert cv2.imread(str(png)).shape[:2] == grid_shape(16, 2 + 2, 5)
