"""``darla.metrics``: the memoised grid encoder, the per-latent KL and UDR across checkpoints."""

import numpy as np

from darla.metrics import memoised_representation


def test_memoised_representation_matches_direct_and_encodes_only_unknown_images():
    grid = np.arange(6 * 2, dtype=np.uint8).reshape(6, 1, 2, 1) * 20
    calls = []

    def represent(images):
        calls.append(len(images))
        return images.reshape(len(images), -1).astype(np.float64) * 2.0

    memo = memoised_representation(represent, grid, batch_size=4)
    assert calls == [4, 2]  # the grid, encoded once in batches
    calls.clear()
    known = grid[[5, 0, 5, 3]]
    np.testing.assert_array_equal(memo(known), represent(known))
    assert calls == [4]  # only the direct call above encoded anything
    calls.clear()
    unknown = np.full((2, 1, 2, 1), 255, np.uint8)
    np.testing.assert_array_equal(memo(np.concatenate([known[:1], unknown])),
                                  np.concatenate([represent(known[:1]), represent(unknown)]))
    assert calls == [2, 1, 2]  # memo encoded the 2 unknown images; then the two reference calls


def _images(n=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def test_kl_per_latent_is_the_closed_form_gaussian_kl_and_none_for_a_deterministic_code():
    import torch

    import vision
    from darla.metrics import kl_per_latent

    torch.manual_seed(0)
    vae = vision.make("vae", image_size=16, latents=5)
    images = _images()
    with torch.no_grad():
        mu, logvar = (t.double().numpy() for t in vae.encode(vision.to_tensor(images)))
    expected = (0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar)).mean(0)
    got = kl_per_latent(vae, images, batch_size=10)  # batches of 10: the mean is over all 64, not the last 4
    assert got.shape == (5,)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert kl_per_latent(vision.make("ae", image_size=16, latents=5), images) is None


def test_udr_of_checkpoints_scores_a_copy_above_an_unrelated_model(tmp_path):
    import torch

    import vision
    from darla.metrics import udr_of_checkpoints

    def informative_vae(seed):
        torch.manual_seed(seed)
        model = vision.make("vae", image_size=16, latents=4)
        with torch.no_grad():  # a fresh encoder's posteriors sit at the prior (KL < 0.01): spread them out
            model.encoder.fc[3].weight.mul_(30.0)
        return model

    a, b = informative_vae(0), informative_vae(1)
    paths = [vision.save(a, tmp_path / "a"), vision.save(a, tmp_path / "a_copy"), vision.save(b, tmp_path / "b")]
    images = _images(200)
    same = udr_of_checkpoints(images, paths[:2], seed=0)
    other = udr_of_checkpoints(images, [paths[0], paths[2]], seed=0)
    assert same["model_scores"][0] > other["model_scores"][0] + 0.1
