"""The frozen vision inside SB3: weights never change, eval mode is kept, both plug-in points agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import vision
from agents.extractor import FrozenVisionExtractor
from agents.latent import LatentObservation, LatentVecEnv


def _frames(env_fn, n=6):
    frames = []
    for i in range(n):
        env = env_fn(domain="A-default" if i % 2 else "A-changed")
        obs, _ = env.reset(seed=i)
        frames.append(obs)
    return np.stack(frames)  # (n, 16, 16, 3) uint8


def _ppo_extractor(env_fn, ckpt, **kw):
    venv = DummyVecEnv([lambda: env_fn() for _ in range(2)])
    return PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=2, seed=0, device="cpu",
               policy_kwargs=dict(features_extractor_class=FrozenVisionExtractor,
                                  features_extractor_kwargs=dict(vision=str(ckpt)), **kw))


def test_frozen_vision_weights_bit_identical_after_ppo_with_default_ortho_init(tiny_checkpoint, tiny_env_fn):
    saved = load_file(str(tiny_checkpoint / "model.safetensors"))
    model = _ppo_extractor(tiny_env_fn, tiny_checkpoint)  # ortho_init=True (SB3's default)
    assert model.policy.ortho_init
    head_before = {k: v.clone() for k, v in model.policy.mlp_extractor.state_dict().items()}
    model.learn(total_timesteps=128)
    state = model.policy.features_extractor.vision.state_dict()
    assert set(state) == set(saved)
    for key, value in saved.items():
        assert torch.equal(state[key], value), f"vision weight {key} changed"
    # ... while the policy head did learn
    assert any(not torch.equal(head_before[k], v) for k, v in model.policy.mlp_extractor.state_dict().items())


def test_extractor_keeps_vision_in_eval_mode_and_without_grad_when_policy_trains(tiny_checkpoint, tiny_env_fn):
    model = _ppo_extractor(tiny_env_fn, tiny_checkpoint)
    model.policy.set_training_mode(True)
    ext = model.policy.features_extractor
    assert ext.training and not ext.vision.training
    assert not any(p.requires_grad for p in ext.vision.parameters())
    obs = torch.as_tensor(np.stack([tiny_env_fn().reset(seed=0)[0]] * 2)).permute(0, 3, 1, 2).float() / 255
    assert not ext(obs).requires_grad


def test_extractor_and_latent_wrappers_give_the_features_of_vision_to_tensor(tiny_checkpoint, tiny_env_fn):
    frames = _frames(tiny_env_fn)
    ref = vision.load(tiny_checkpoint)
    with torch.no_grad():
        expected = ref.features(vision.to_tensor(frames)).numpy()

    model = _ppo_extractor(tiny_env_fn, tiny_checkpoint)
    obs_t, _ = model.policy.obs_to_tensor(frames)  # SB3's own HWC->CHW transposition
    with torch.no_grad():
        via_extractor = model.policy.extract_features(obs_t, model.policy.features_extractor).numpy()  # /255 inside

    envs = [lambda i=i: tiny_env_fn(domain="A-default" if i % 2 else "A-changed") for i in range(len(frames))]
    venv = DummyVecEnv(envs)
    venv.seed(0)
    raw = venv.reset()
    venv.seed(0)
    via_vec = LatentVecEnv(DummyVecEnv(envs), str(tiny_checkpoint))
    via_vec.seed(0)
    latents = via_vec.reset()

    np.testing.assert_array_equal(via_extractor, expected)
    with torch.no_grad():
        np.testing.assert_array_equal(latents, ref.features(vision.to_tensor(raw)).numpy())
    single = LatentObservation(tiny_env_fn(domain="A-changed"), str(tiny_checkpoint))
    obs, _ = single.reset(seed=0)
    np.testing.assert_allclose(obs, expected[0], rtol=1e-5, atol=1e-7)  # batch of 1 vs 6: BLAS reorders sums
    assert via_vec.observation_space.shape == (6,) and via_vec.observation_space.dtype == np.float32


def test_latent_vec_env_encodes_terminal_observation(tiny_checkpoint, tiny_env_fn):
    make = [lambda: tiny_env_fn(max_steps=2)] * 2
    raw, lat = DummyVecEnv(make), LatentVecEnv(DummyVecEnv(make), str(tiny_checkpoint))
    for v in (raw, lat):
        v.seed(3)
        v.reset()
    wait = np.array([2, 2])
    raw.step(wait), lat.step(wait)
    _, _, dones_raw, infos_raw = raw.step(wait)
    _, _, dones, infos = lat.step(wait)  # second wait: time-limit truncation in both envs
    assert dones.all() and dones_raw.all()
    term = np.stack([i["terminal_observation"] for i in infos])
    assert term.shape == (2, 6) and term.dtype == np.float32
    ref = vision.load(tiny_checkpoint)
    with torch.no_grad():
        expected = ref.features(vision.to_tensor(np.stack([i["terminal_observation"] for i in infos_raw]))).numpy()
    # encoded in one batch with the reset frames (4 rows) against 2 here: BLAS may reorder sums
    np.testing.assert_allclose(term, expected, rtol=1e-5, atol=1e-7)


def test_wrapping_frames_of_the_wrong_size_names_both_sizes(tiny_checkpoint, tiny_env_fn):
    with pytest.raises(ValueError, match=r"\(3, 32, 32\).*\(3, 16, 16\)"):
        LatentObservation(tiny_env_fn(size=32), str(tiny_checkpoint))


def test_latent_observation_on_miniworld_oneroom(tiny_checkpoint):
    import os

    os.environ.setdefault("PYGLET_HEADLESS", "1")
    import gymnasium as gym
    import miniworld  # noqa: F401  (registers MiniWorld-*)

    env = LatentObservation(gym.make("MiniWorld-OneRoom-v0", obs_width=16, obs_height=16), str(tiny_checkpoint))
    try:
        obs, _ = env.reset(seed=0)
        frame = env.unwrapped.render_obs()
        obs2, *_ = env.step(2)
        assert obs.shape == (6,) and obs2.shape == (6,)
        ref = vision.load(tiny_checkpoint)
        with torch.no_grad():
            np.testing.assert_allclose(obs, ref.features(vision.to_tensor(frame)).numpy()[0], atol=1e-6)
    finally:
        env.close()
