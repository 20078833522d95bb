"""Independently controllable factors: the selectivity estimate, and selectivity rising by acting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vision
from vision.base import ConfigError
from vision.models.icf import selectivity, selectivity_all


class Discrete:
    def __init__(self, n):
        self.n = n


class DotEnv:
    """A gymnasium-API stub: a 4×4 white square on a 4×4 grid of a 16×16 frame; actions move it
    left, right, up, down (wrapping around, so every action changes the frame); episodes are truncated after 20 steps."""

    action_space = Discrete(4)

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)
        self.pos = self.rng.integers(0, 4, size=2)
        self.t = 0
        return self._obs(), {}

    def step(self, a):
        dx, dy = [(-1, 0), (1, 0), (0, -1), (0, 1)][a]
        self.pos = (self.pos + (dx, dy)) % 4
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 20, {}

    def _obs(self):
        img = np.zeros((16, 16, 3), dtype=np.uint8)
        x, y = self.pos * 4
        img[y : y + 4, x : x + 4] = 255
        return img


def test_selectivity_is_the_share_of_the_targeted_units_change():
    f_s = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    f_next = torch.tensor([[3.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    sel = selectivity(f_s, f_next, torch.tensor([0, 2]))
    torch.testing.assert_close(sel, torch.tensor([0.75, 0.0]))


def test_selectivity_rises_when_acting(frames16):
    torch.manual_seed(0)
    model = vision.make("icf", image_size=16, latents=2, n_actions=4, env_steps=32, lr=3e-3, lam=10.0)
    model.attach_env(DotEnv())
    opts = model.configure_optimizers()
    x = vision.to_tensor(np.stack([DotEnv().reset(seed=i)[0] for i in range(32)]))
    sel = [model.train_step(x, opts)["selectivity"] for _ in range(120)]
    first, last = np.mean(sel[:15]), np.mean(sel[-15:])
    assert last > first + 0.1, (first, last)


def test_without_env_the_step_is_a_plain_autoencoder_step(frames16):
    torch.manual_seed(0)
    model = vision.make("icf", image_size=16, latents=2)
    logs = model.train_step(vision.to_tensor(frames16[:4]), model.configure_optimizers())
    assert set(logs) == {"loss", "recon"} and logs["loss"] == logs["recon"]


def test_attach_env_checks_actions_and_frame_size():
    with pytest.raises(ValueError, match="n_actions=4"):
        vision.make("icf", image_size=16, n_actions=3).attach_env(DotEnv())
    with pytest.raises(ValueError, match="32, 32, 3"):
        vision.make("icf", image_size=32, n_actions=4).attach_env(DotEnv())
    with pytest.raises(ConfigError, match="env_steps"):
        vision.make("icf", image_size=16, env_steps=1)


def test_save_load_gives_identical_features(frames16, tmp_path):
    torch.manual_seed(0)
    model = vision.make("icf", image_size=16, latents=3).eval()
    vision.save(model, tmp_path / "icf")
    x = vision.to_tensor(frames16[:4])
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), vision.load(tmp_path / "icf").features(x))


def test_selectivity_term_sums_over_every_unit_not_one_drawn_unit():
    # Thomas et al. 2017, eq. 2: −λ Σ_k E_s[Σ_a π_k(a|s) log sel(s, a, k)]. With uniform policies every
    # importance weight is 1, so the term is −mean_b Σ_k log sel(s, a, k), whichever unit acted.
    torch.manual_seed(0)
    model = vision.make("icf", image_size=16, latents=3, n_actions=4)
    with torch.no_grad():
        last = model.policies[-1]
        last.weight.zero_()
        last.bias.zero_()
    env = DotEnv()
    s = vision.to_tensor(np.stack([env.reset(seed=i)[0] for i in range(6)]))
    a = torch.tensor([0, 1, 2, 3, 0, 1])
    s_next = vision.to_tensor(np.stack([(env.reset(seed=i), env.step(int(a[i]))[0])[1] for i in range(6)]))
    with torch.no_grad():
        sel = selectivity_all(model.encoder(s), model.encoder(s_next))
    expected = -torch.log(sel + 1e-6).sum(1).mean()
    for k in (torch.zeros(6, dtype=torch.long), torch.full((6,), 2, dtype=torch.long)):
        terms = model.selectivity_terms(s, k, a, s_next)
        torch.testing.assert_close(terms["sel_loss"], expected, rtol=1e-5, atol=1e-5)


def test_selectivity_all_rows_are_shares_of_the_change():
    f_s = torch.tensor([[0.0, 0.0, 0.0]])
    f_next = torch.tensor([[3.0, 1.0, 0.0]])
    torch.testing.assert_close(selectivity_all(f_s, f_next), torch.tensor([[0.75, 0.25, 0.0]]), atol=1e-5, rtol=0)
