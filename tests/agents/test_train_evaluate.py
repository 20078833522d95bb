"""Stage 2 artefacts (policy.safetensors + policy.json pinned to the vision digest) and stage 3 evaluation."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO

import vision
from agents.evaluate import write_evaluation, zero_shot_evaluate
from agents.train import PolicyLoadError, load_policy, train_policy

TINY_PPO = dict(n_steps=32, batch_size=32, n_epochs=2)


@pytest.fixture(scope="module")
def trained(tiny_checkpoint, tmp_path_factory):
    """A latent PPO policy trained briefly on the tiny env's A-default domain, on a private vision copy."""
    from tests.agents.conftest import TinyChoiceEnv

    root = tmp_path_factory.mktemp("policy")
    vis = root / "vision"
    shutil.copytree(tiny_checkpoint, vis)
    out = train_policy(env_fn=TinyChoiceEnv, env_kwargs={"domain": "A-default"}, vision=str(vis), algo="ppo",
                       steps=256, n_envs=2, seed=0, out_dir=root / "p", mode="latent", algo_kwargs=TINY_PPO,
                       progress=False)
    return out, vis


def test_policy_json_pins_the_vision_digest_and_records_the_run(trained):
    out, vis = trained
    meta = json.loads((out / "policy.json").read_text())
    assert (out / "policy.safetensors").exists() and not (out / "policy.zip").exists()
    assert meta["vision_checkpoint"] == str(vis.resolve())
    assert meta["vision_id"] == vision.checkpoint.checkpoint_id(vis)
    assert (meta["algo"], meta["mode"], meta["steps"], meta["seed"], meta["obs_size"]) == ("ppo", "latent", 256, 0, 16)
    assert meta["env_kwargs"] == {"domain": "A-default"} and meta["train_domains"] == ["A-default"]
    with open(out / "learning_curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and int(rows[-1]["timesteps"]) == 256
    assert all(-1.0 <= float(r["mean_return"]) <= 1.0 for r in rows)


def test_load_policy_recreates_the_latent_wrapping(trained, tiny_env_fn):
    out, _ = trained
    model, meta = load_policy(out)
    assert isinstance(model, PPO) and model.observation_space.shape == (6,)
    from agents.train import wrap_env

    env = wrap_env(tiny_env_fn(), meta)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))


def test_load_policy_with_missing_vision_checkpoint_names_path_and_digest(trained):
    out, vis = trained
    moved = vis.with_name("vision-moved")
    vis.rename(moved)
    try:
        meta = json.loads((out / "policy.json").read_text())
        with pytest.raises(PolicyLoadError, match="missing") as e:
            load_policy(out)
        assert str(vis.resolve()) in str(e.value) and meta["vision_id"] in str(e.value)
        model, _ = load_policy(out, vision=moved)  # a relocated copy with the same digest is fine
        assert model.observation_space.shape == (6,)
    finally:
        moved.rename(vis)


def test_load_policy_with_different_vision_weights_names_both_digests(trained, tiny_model_cls, tmp_path):
    out, vis = trained
    torch.manual_seed(123)
    other = vision.save(vision.make(tiny_model_cls.name), tmp_path / "other")
    want, got = vision.checkpoint.checkpoint_id(vis), vision.checkpoint.checkpoint_id(other)
    with pytest.raises(PolicyLoadError, match="different weights") as e:
        load_policy(out, vision=other)
    assert want in str(e.value) and got in str(e.value)


def test_extractor_dqn_policy_round_trips_with_identical_vision_weights(tiny_checkpoint, tiny_env_fn, tmp_path):
    out = train_policy(env_fn=tiny_env_fn, vision=str(tiny_checkpoint), algo="dqn", mode="extractor", steps=64,
                       n_envs=1, seed=1, out_dir=tmp_path / "dqn", progress=False,
                       algo_kwargs=dict(learning_starts=16, batch_size=8, train_freq=4, buffer_size=200))
    model, meta = load_policy(out)
    assert isinstance(model, DQN) and meta["mode"] == "extractor"
    ref = vision.load(tiny_checkpoint).state_dict()
    for key, value in model.q_net.features_extractor.vision.state_dict().items():
        assert torch.equal(value, ref[key])


def test_latent_a2c_policy_trains_saves_and_reloads_with_its_algorithm(tiny_checkpoint, tiny_env_fn, tmp_path):
    out = train_policy(env_fn=tiny_env_fn, vision=str(tiny_checkpoint), algo="a2c", mode="latent", steps=64,
                       n_envs=2, seed=0, out_dir=tmp_path / "a2c", progress=False)
    model, meta = load_policy(out)
    assert isinstance(model, A2C) and meta["algo"] == "a2c" and meta["mode"] == "latent"
    assert model.num_timesteps >= 64


def test_bad_mode_algo_and_missing_vision_are_named(tiny_env_fn, tmp_path):
    with pytest.raises(ValueError, match="unknown algo 'nope'; valid: ppo, a2c, dqn, sac, td3, ddpg"):
        train_policy(env_fn=tiny_env_fn, algo="nope", mode="pixels", out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown mode 'latents'; valid: latent, extractor, pixels"):
        train_policy(env_fn=tiny_env_fn, mode="latents", vision="x", out_dir=tmp_path)
    with pytest.raises(ValueError, match="needs a vision checkpoint"):
        train_policy(env_fn=tiny_env_fn, mode="latent", out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown algo_kwargs \\['n_step'\\]"):
        train_policy(env_fn=tiny_env_fn, mode="pixels", algo_kwargs={"n_step": 8}, out_dir=tmp_path)


class _Recorder:
    """env_factory that remembers every env it built, to check the episode seeds each domain saw."""

    def __init__(self, env_cls):
        self.env_cls, self.envs = env_cls, []

    def __call__(self, domain):
        env = self.env_cls(domain=domain)
        self.envs.append(env)
        return env


def test_zero_shot_evaluation_uses_identical_episode_seeds_in_every_domain(trained, tiny_env_fn):
    out, _ = trained
    factory = _Recorder(tiny_env_fn)
    domains = ["A-default", "B-changed", "A-changed"]
    result = zero_shot_evaluate([out, out], domains, env_factory=factory, episodes=5, seed=100, progress=False,
                                n_boot=200)
    assert len(factory.envs) == 2 * len(domains)
    for env in factory.envs:
        assert env.reset_seeds == [100, 101, 102, 103, 104]
    assert result["episode_seeds"] == [100, 101, 102, 103, 104]
    assert result["source"] == ["A-default"] and result["target"] == ["B-changed", "A-changed"]  # from train_domains
    assert np.asarray(result["returns"]["A-changed"]).shape == (2, 5)
    # the same policy twice on the same seeds: identical returns per seed
    r = np.asarray(result["returns"]["A-default"])
    np.testing.assert_array_equal(r[0], r[1])
    s = result["summary"]["A-changed"]
    assert s["ci"][0] <= s["mean"] <= s["ci"][1] and s["split"] == "target"
    assert set(result["overall"]) == {"source", "target", "ratio"}


def test_explicit_source_overrides_and_unknown_source_is_named(trained, tiny_env_fn):
    out, _ = trained
    result = zero_shot_evaluate([out], ["A-default", "A-changed"], env_factory=tiny_env_fn, episodes=2,
                                source=["A-changed"], progress=False, n_boot=50)
    assert result["source"] == ["A-changed"] and result["target"] == ["A-default"]
    with pytest.raises(ValueError, match="valid: A-default, A-changed"):
        zero_shot_evaluate([out], ["A-default", "A-changed"], env_factory=tiny_env_fn, episodes=1,
                           source=["C-default"], progress=False)


def test_write_evaluation_writes_strict_json_markdown_and_plot(trained, tiny_env_fn, tmp_path):
    out, _ = trained
    result = zero_shot_evaluate([out], ["A-default", "A-changed"], env_factory=tiny_env_fn, episodes=4,
                                progress=False, n_boot=100)
    d = write_evaluation(result, tmp_path / "eval")
    loaded = json.loads((d / "evaluation.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert loaded["overall"]["ratio"].keys() >= {"mean", "ci"}
    md = (d / "evaluation.md").read_text()
    assert "| A-changed | target |" in md and "| A-default | source |" in md
    assert (d / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
