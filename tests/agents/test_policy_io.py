"""Policies saved and loaded without pickle: round trips per mode and algorithm, foreign SB3 zips, planted
payloads, algorithm/action-space checks, policy_kwargs from YAML, frame stacking and VecNormalize."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback

from agents.algos import algo_names, check_algo
from agents.evaluate import zero_shot_evaluate
from agents.policy_io import PolicyLoadError, space_from_json, space_to_json
from agents.train import load_policy, train_policy, wrap_env, wrap_vec_env
from darla.cli import main
from tests.agents.conftest import SIZE, TinyChoiceEnv

ENV_ID = "darla_test/TinyChoice-v0"
if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=TinyChoiceEnv)


class TinyReachEnv(gym.Env):
    """A 16x16 continuous task: the bar's column is the target, the action a position in [-1, 1];
    reward -|action - target|, one step per episode."""

    metadata = {"render_modes": []}

    def __init__(self, domain: str = "A-default", size: int = SIZE):
        self.size = size
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.target = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.col = int(self.np_random.integers(self.size))
        self.target = 2 * self.col / (self.size - 1) - 1
        img = np.full((self.size, self.size, 3), 60, np.uint8)
        img[:, self.col] = 255
        return img, {}

    def step(self, action):
        img = np.zeros((self.size, self.size, 3), np.uint8)
        return img, -float(abs(float(np.asarray(action).ravel()[0]) - self.target)), True, False, {}


class KeepModel(BaseCallback):
    """Remembers the trained model and its training VecEnv (for comparisons after train_policy returns)."""

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.kept, self.venv = self.model, self.training_env


def _observations(env: gym.Env, n: int = 12) -> np.ndarray:
    return np.stack([env.reset(seed=s)[0] for s in range(n)])


def _train(tmp_path, algo, mode, env_fn=TinyChoiceEnv, vision=None, steps=128, **kw):
    keep = KeepModel()
    small = {"ppo": dict(n_steps=32, batch_size=32, n_epochs=1), "a2c": dict(n_steps=8),
             "dqn": dict(learning_starts=16, batch_size=8, buffer_size=200, train_freq=4),
             "qrdqn": dict(learning_starts=16, batch_size=8, buffer_size=200, train_freq=4),
             "trpo": dict(n_steps=64, batch_size=32), "ars": dict(n_delta=2),
             }.get(algo, dict(learning_starts=16, batch_size=8, buffer_size=200))
    out = train_policy(env_fn=env_fn, env_kwargs=kw.pop("env_kwargs", None), vision=vision, algo=algo, mode=mode,
                       steps=steps, n_envs=kw.pop("n_envs", 2), seed=0, out_dir=tmp_path / f"{algo}-{mode}",
                       progress=False, algo_kwargs={**small, **kw.pop("algo_kwargs", {})}, eval_callback=keep, **kw)
    return out, keep


def _same_actions(trained, loaded, meta, env) -> None:
    obs = _observations(wrap_env(env, meta))
    a, _ = trained.predict(obs, deterministic=True)
    b, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
    ref = trained.policy.state_dict()
    for key, value in loaded.policy.state_dict().items():
        assert torch.equal(value.cpu(), ref[key].cpu()), key


# -- round trips -------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo,mode,env_fn", [
    ("ppo", "latent", TinyChoiceEnv), ("ppo", "extractor", TinyChoiceEnv), ("dqn", "latent", TinyChoiceEnv),
    ("sac", "latent", TinyReachEnv), ("a2c", "latent", TinyChoiceEnv), ("td3", "latent", TinyReachEnv),
    ("ddpg", "latent", TinyReachEnv),
])
def test_save_then_load_gives_identical_weights_and_actions(algo, mode, env_fn, tiny_checkpoint, tmp_path):
    out, keep = _train(tmp_path, algo, mode, env_fn, vision=str(tiny_checkpoint))
    assert not (out / "policy.zip").exists()
    meta = json.loads((out / "policy.json").read_text())
    assert meta["format"] == "darla-policy" and meta["algo"] == algo and meta["observation_space"]["type"] == "Box"
    model, meta = load_policy(out)
    assert type(model) is type(keep.kept)
    _same_actions(keep.kept, model, meta, env_fn())


def test_pixel_policy_with_stacked_frames_round_trips(tmp_path):
    out, keep = _train(tmp_path, "ppo", "pixels", env_fn=TinyChoiceEnv, env_kwargs={"size": 36}, steps=64,
                       frame_stack=2)
    model, meta = load_policy(out)
    assert meta["policy"] == "CnnPolicy" and meta["vision_model"] is None
    assert wrap_env(TinyChoiceEnv(size=36), meta).observation_space.shape == (36, 36, 6)
    assert model.observation_space.shape == (6, 36, 36)  # SB3's VecTransposeImage, as in training
    _same_actions(keep.kept, model, meta, TinyChoiceEnv(size=36))


@pytest.mark.parametrize("algo,env_fn", [("qrdqn", TinyChoiceEnv), ("tqc", TinyReachEnv), ("trpo", TinyChoiceEnv),
                                         ("ars", TinyChoiceEnv), ("ars", TinyReachEnv), ("crossq", TinyReachEnv)])
def test_sb3_contrib_algorithms_train_and_round_trip_on_latents(algo, env_fn, tiny_checkpoint, tmp_path):
    pytest.importorskip("sb3_contrib")
    assert algo in algo_names()
    out, keep = _train(tmp_path, algo, "latent", env_fn, vision=str(tiny_checkpoint), steps=64)
    model, meta = load_policy(out)
    _same_actions(keep.kept, model, meta, env_fn())


def test_extractor_policy_file_leaves_the_vision_weights_to_the_pinned_checkpoint(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file

    out, _ = _train(tmp_path, "ppo", "extractor", vision=str(tiny_checkpoint), steps=64)
    keys = load_file(out / "policy.safetensors").keys()
    assert keys and not any(".vision." in k for k in keys)


def _old_darla_policy(d: Path, algo: str, mode: str, checkpoint: Path, marker: Path) -> object:
    """A policy directory as darla wrote it before policy_io (SB3's model.save + a policy.json without spaces),
    with a payload planted in the zip's data entry."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.extractor import FrozenVisionExtractor
    from agents.latent import LatentVecEnv
    from vision.checkpoint import checkpoint_id

    frames = DummyVecEnv([TinyChoiceEnv] * 2)
    kw = dict(n_steps=32, batch_size=32, n_epochs=1) if algo == "ppo" else dict(learning_starts=16, batch_size=8,
                                                                                  buffer_size=200)
    if mode == "latent":
        model = PPO("MlpPolicy", LatentVecEnv(frames, str(checkpoint)), seed=0, **kw)
    else:
        model = DQN("MlpPolicy", frames, seed=0, policy_kwargs=dict(
            features_extractor_class=FrozenVisionExtractor, features_extractor_kwargs=dict(vision=str(checkpoint))),
            **kw)
    model.learn(64)
    d.mkdir()
    model.save(d / "policy.zip")
    data = json.loads(zipfile.ZipFile(d / "policy.zip").read("data"))
    data["observation_space"] = _serialized(Payload(marker))
    _rewrite_zip(d / "policy.zip", d / "evil.zip", {"data": json.dumps(data).encode()})
    (d / "evil.zip").replace(d / "policy.zip")
    (d / "policy.json").write_text(json.dumps({
        "algo": algo, "mode": mode, "vision_checkpoint": str(checkpoint), "vision_id": checkpoint_id(checkpoint),
        "env_id": "TinyChoiceEnv", "env_kwargs": {}, "steps": 64, "seed": 0, "n_envs": 2, "obs_size": SIZE,
        "obs_shape": [SIZE, SIZE, 3], "algo_kwargs": kw, "train_domains": ["A-default"], "final_mean_return": 0.0}))
    return model


@pytest.mark.parametrize("algo,mode", [("ppo", "latent"), ("dqn", "extractor")])
def test_old_policy_dir_is_refused_then_converts_without_unpickling(algo, mode, tiny_checkpoint, tmp_path, capsys):
    from agents.policy_io import main as policy_io_main

    marker = tmp_path / "marker"
    old = tmp_path / "old"
    original = _old_darla_policy(old, algo, mode, tiny_checkpoint, marker)
    with pytest.raises(PolicyLoadError, match=r"older darla .*\(python -m agents.policy_io convert "):
        load_policy(old)
    assert policy_io_main(["convert", str(old)]) == 0
    model, meta = load_policy(old)
    assert meta["converted_from"] == "policy.zip" and meta["train_domains"] == ["A-default"]
    _same_actions(original, model, meta, TinyChoiceEnv())
    assert not marker.exists()


def test_spaces_round_trip_through_json():
    for space in (spaces.Box(0, 255, (4, 4, 3), np.uint8), spaces.Box(-np.inf, np.inf, (5,), np.float32),
                  spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 2.0]), dtype=np.float32), spaces.Discrete(3, start=1),
                  spaces.MultiDiscrete([2, 3]), spaces.MultiBinary(4)):
        back = space_from_json(json.loads(json.dumps(space_to_json(space))))
        assert back == space, (space, back)
    with pytest.raises(ValueError, match="dtype"):
        space_from_json({"type": "Box", "shape": [2], "dtype": "object", "low": 0, "high": 1})
    with pytest.raises(ValueError, match="implausibly large"):
        space_from_json({"type": "Box", "shape": [100000, 100000], "dtype": "uint8", "low": 0, "high": 1})


# -- algorithms, kwargs ------------------------------------------------------------------------------
def test_algorithm_that_does_not_fit_the_action_space_fails_naming_both_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"algo 'sac' needs Box actions, but the env's action space is Discrete\(3\); "
                                         r"use one of ppo, a2c, dqn"):
        train_policy(env_fn=TinyChoiceEnv, algo="sac", mode="pixels", env_kwargs={"size": 36}, out_dir=tmp_path / "a")
    with pytest.raises(ValueError, match=r"algo 'dqn' needs Discrete actions, .*Box.*use one of ppo, a2c, sac"):
        check_algo("dqn", action_space=TinyReachEnv().action_space)
    assert not (tmp_path / "a" / "policy.json").exists()


def test_check_algo_names_unknown_kwargs_and_bad_class_names():
    assert check_algo("PPO", {"n_steps": 8}, {"net_arch": [8], "activation_fn": "Tanh"}) is PPO
    with pytest.raises(ValueError, match=r"unknown algo_kwargs \['n_step'\] for 'ppo'"):
        check_algo("ppo", {"n_step": 8})
    with pytest.raises(ValueError, match=r"unknown policy_kwargs \['net_arc'\]"):
        check_algo("sac", None, {"net_arc": [8]})
    with pytest.raises(ValueError, match="activation_fn = 'os.system' is not a known class; valid: ReLU, Tanh"):
        check_algo("ppo", None, {"activation_fn": "os.system"})
    with pytest.raises(ValueError, match="recurrentppo.*not supported"):
        check_algo("recurrentppo")
    with pytest.raises(ValueError, match="has no CnnPolicy"):
        check_algo("ars", policy="CnnPolicy") if "ars" in algo_names() else (_ for _ in ()).throw(
            ValueError("has no CnnPolicy"))


def test_policy_kwargs_from_yaml_reach_the_policy_once_and_round_trip(tiny_checkpoint, tmp_path, monkeypatch):
    from darla import pipeline
    from darla.config import load_config

    config = load_config(None, ["policy.policy_kwargs={net_arch: [12, 12], activation_fn: ReLU}",
                                "policy.algo_kwargs={n_steps: 32, batch_size: 32, policy_kwargs: {ortho_init: false}}",
                                "policy.frame_stack=2"])
    seen = {}
    monkeypatch.setattr("agents.train.train_policy", lambda **kw: seen.update(kw))
    pipeline.train_policy_stage(config, tmp_path / "stages", None, "pixels", 0, progress=False)
    assert seen["policy_kwargs"] == {"net_arch": [12, 12], "activation_fn": "ReLU"} and seen["frame_stack"] == 2
    monkeypatch.undo()
    # what the pipeline passes trains (no "policy_kwargs given twice" TypeError) and is recorded by name
    out, keep = _train(tmp_path, "ppo", "latent", vision=str(tiny_checkpoint), steps=64,
                       algo_kwargs=dict(config.policy.algo_kwargs), policy_kwargs=dict(config.policy.policy_kwargs))
    meta = json.loads((out / "policy.json").read_text())
    assert meta["policy_kwargs"] == {"ortho_init": False, "net_arch": [12, 12], "activation_fn": "torch.nn.ReLU"}
    model, _ = load_policy(out)
    assert model.policy.activation_fn is torch.nn.ReLU and model.policy.net_arch == [12, 12]
    assert [m.out_features for m in model.policy.mlp_extractor.policy_net if hasattr(m, "out_features")] == [12, 12]


# -- frame stack + VecNormalize ----------------------------------------------------------------------
def _play_vec(venv, model, seeds, action=None) -> tuple[list, list]:
    """Seeded episodes on a 1-env VecEnv: the observations and greedy actions seen, and each return (raw
    rewards); ``action`` fixed (e.g. wait) or None for the policy's own."""
    rows, returns = [], []
    for seed in seeds:
        venv.seed(seed)
        obs, total, done = venv.reset(), 0.0, False
        while not done:
            greedy, _ = model.predict(obs, deterministic=True)
            rows.append((obs[0].copy(), int(greedy[0])))
            obs, _, dones, infos = venv.step(greedy if action is None else np.array([action]))
            done = dones[0]
            if done:
                total = float(infos[0]["episode"]["r"]) if "episode" in infos[0] else total
        returns.append(total)
    return rows, returns


class PlayAtEnd(BaseCallback):
    """At the end of training, plays seeded episodes on the training VecEnv chain itself (frozen)."""

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.kept = self.model
        self.model.get_vec_normalize_env().training = False  # freeze the running statistics
        self.rows, _ = _play_vec(self.training_env, self.model, range(4), action=2)
        _, self.returns = _play_vec(self.training_env, self.model, range(4))


def test_frame_stack_and_vecnormalize_evaluate_as_in_training(tiny_checkpoint, tmp_path):
    from stable_baselines3.common.vec_env import DummyVecEnv

    keep = PlayAtEnd()
    out = train_policy(env_fn=TinyChoiceEnv, vision=str(tiny_checkpoint), steps=128, n_envs=1, seed=0,
                       out_dir=tmp_path / "p", progress=False, algo_kwargs=dict(n_steps=32, batch_size=32, n_epochs=1),
                       eval_callback=keep, frame_stack=3, normalize=True)
    meta_json = json.loads((out / "policy.json").read_text())
    assert meta_json["frame_stack"] == 3 and meta_json["normalize"]["file"] == "vecnormalize.safetensors"
    model, meta = load_policy(out)
    assert model.observation_space.shape == (18,)  # 3 x 6 latents
    assert np.abs(meta["normalize_stats"]["mean"]).max() > 1e-3  # non-trivial statistics, so skipping them shows

    rows_vec, _ = _play_vec(wrap_vec_env(DummyVecEnv([TinyChoiceEnv]), meta), model, range(4), action=2)
    rows_eval = []
    env = wrap_env(TinyChoiceEnv(), meta)
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:  # wait: the stack fills up over the episode
            action, _ = model.predict(obs, deterministic=True)
            rows_eval.append((obs.copy(), int(action)))
            obs, _, term, trunc, _ = env.step(2)
            done = term or trunc
    assert len(keep.rows) == len(rows_eval) == len(rows_vec) > 4
    for (a, act_a), (b, act_b), (c, act_c) in zip(keep.rows, rows_eval, rows_vec):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-6)
        assert act_a == act_b == act_c
    # the zero-shot evaluation's returns are the trained model's on the training chain
    result = zero_shot_evaluate([out], ["A-default"], env_factory=TinyChoiceEnv, episodes=4, seed=0, progress=False,
                                n_boot=10)
    assert result["returns"]["A-default"][0] == keep.returns


def test_frame_stack_and_normalize_refuse_modes_they_do_not_fit(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="frame_stack > 1 .*frozen vision inside the policy"):
        train_policy(env_fn=TinyChoiceEnv, vision=str(tiny_checkpoint), mode="extractor", frame_stack=2,
                     out_dir=tmp_path)
    with pytest.raises(ValueError, match="normalize=True .*pixels"):
        train_policy(env_fn=TinyChoiceEnv, mode="pixels", normalize=True, out_dir=tmp_path)


# -- foreign SB3 zips --------------------------------------------------------------------------------
def _foreign_ppo(path: Path) -> PPO:
    model = PPO("MlpPolicy", TinyChoiceEnv(), n_steps=32, batch_size=32, n_epochs=1, seed=0,
                policy_kwargs=dict(net_arch=[8], activation_fn=torch.nn.ReLU))
    model.learn(64)
    model.save(path)
    return model


def test_foreign_sb3_zip_loads_without_pickle_and_acts_like_the_original(tmp_path):
    original = _foreign_ppo(tmp_path / "mine.zip")
    model, meta = load_policy(tmp_path / "mine.zip", algo="ppo", env=None,
                              observation_space=TinyChoiceEnv().observation_space,
                              action_space=TinyChoiceEnv().action_space)
    assert meta["mode"] == "native" and meta["policy_kwargs"]["activation_fn"] == "torch.nn.ReLU"
    _same_actions(original, model, meta, TinyChoiceEnv())
    with pytest.raises(PolicyLoadError, match="pass the env it acts in"):
        load_policy(tmp_path / "mine.zip", algo="ppo")
    with pytest.raises(PolicyLoadError, match=r"shape \[3, 16, 16\], but the env gives \[3, 36, 36\]"):
        load_policy(tmp_path / "mine.zip", algo="ppo", env=TinyChoiceEnv(size=36))
    # a DQN zip names its algorithm (its policy class lives in stable_baselines3.dqn)
    dqn = DQN("MlpPolicy", TinyChoiceEnv(), learning_starts=0, buffer_size=100, seed=0)
    dqn.save(tmp_path / "dqn.zip")
    model, meta = load_policy(tmp_path / "dqn.zip", env=TinyChoiceEnv())
    assert isinstance(model, DQN) and meta["algo"] == "dqn"
    from stable_baselines3 import SAC  # and a continuous-action zip, named too

    sac = SAC("MlpPolicy", TinyReachEnv(), learning_starts=0, buffer_size=100, seed=0, policy_kwargs=dict(net_arch=[8]))
    sac.save(tmp_path / "sac.zip")
    model, meta = load_policy(tmp_path / "sac.zip", env=TinyReachEnv())
    assert isinstance(model, SAC)
    _same_actions(sac, model, meta, TinyReachEnv())


def test_foreign_zip_with_a_custom_features_extractor_is_refused_naming_it(tmp_path):
    from stable_baselines3.common.torch_layers import FlattenExtractor

    class Custom(FlattenExtractor):
        pass

    model = PPO("MlpPolicy", TinyChoiceEnv(), n_steps=16, batch_size=16, policy_kwargs=dict(
        features_extractor_class=Custom))
    model.save(tmp_path / "custom.zip")
    with pytest.raises(PolicyLoadError, match="features_extractor_class = <class '.*Custom'>, a class darla cannot "
                                              "rebuild"):
        load_policy(tmp_path / "custom.zip", algo="ppo", env=TinyChoiceEnv())


def test_train_policy_cli_takes_any_env_algo_and_policy_kwargs_and_refuses_bad_yaml(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["-q", "train-policy", "--mode", "pixels", "--env", ENV_ID, "--env-kwargs", "{size: 36}",
                 "--algo", "a2c", "--algo-kwargs", "{n_steps: 8}", "--policy-kwargs",
                 "{net_arch: [8], activation_fn: Tanh}", "--frame-stack", "2", "--steps", "32", "--n-envs", "1",
                 "--out", str(out)]) == 0
    meta = json.loads((out / "policy.json").read_text())
    # the env `darla run` trains in too: the env's domain by value, frames resized to the default 64
    assert (meta["algo"], meta["env_id"], meta["frame_stack"]) == ("a2c", "darla/Domains-v0", 2)
    assert meta["env_kwargs"] == {"domain": [{"name": "default", "env_id": ENV_ID, "kwargs": {"size": 36},
                                              "wrappers": []}], "obs_size": 64, "channels": 3}
    assert meta["policy_kwargs"] == {"net_arch": [8], "activation_fn": "torch.nn.Tanh"}
    assert meta["algo_kwargs"]["n_steps"] == 8
    err = _one_line_refusal(["-q", "train-policy", "--mode", "pixels", "--env", ENV_ID, "--policy-kwargs",
                             "{net_arch: [8", "--out", str(tmp_path / "q")], capsys)
    assert "--policy-kwargs" in err and "YAML" in err


def test_darla_evaluate_runs_a_foreign_zip_on_an_env_id_with_a_shift(tmp_path):
    original = _foreign_ppo(tmp_path / "mine.zip")
    out = tmp_path / "eval"
    assert main(["-q", "evaluate", "--policy", str(tmp_path / "mine.zip"), "--algo", "ppo", "--env", ENV_ID,
                 "--env-kwargs", "{max_steps: 3}", "--shift", "brightness=0.5", "--episodes", "3", "--seed", "7",
                 "--out", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    # the env's generic domain 'default' is the source; the shift is a target of its own
    assert result["domains"] == ["default", "default+brightness=0.5"] and result["source"] == ["default"]
    assert result["target"] == ["default+brightness=0.5"]
    direct = zero_shot_evaluate([original], [ENV_ID], env_factory=lambda d: gym.make(ENV_ID, max_steps=3),
                                episodes=3, seed=7, progress=False, n_boot=10)
    assert result["returns"]["default"] == direct["returns"][ENV_ID]


def test_darla_evaluate_runs_a_foreign_zip_on_seekavoid_domains_and_names_a_wrong_algo(tmp_path, capsys):
    pytest.importorskip("envs.seekavoid")
    env = gym.make("darla/SeekAvoid-v0", domain="A-default", obs_size=16)
    PPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0).save(tmp_path / "sa.zip")
    env.close()
    argv = ["-q", "evaluate", "--policy", str(tmp_path / "sa.zip"), "--obs-size", "16", "--domains",
            "A-default,A-changed", "--episodes", "1", "--out", str(tmp_path / "e")]
    assert main([*argv, "--algo", "ppo"]) == 0
    result = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert result["source"] == ["A-default"] and result["target"] == ["A-changed"]
    err = _one_line_refusal([*argv, "--algo", "dqn"], capsys)
    assert "not saved by dqn" in err and "--algo" in err
    assert "pass --algo" in _one_line_refusal(argv, capsys)


def test_darla_evaluate_honours_the_env_id_in_policy_json(tiny_checkpoint, tmp_path):
    out = train_policy(env_id=ENV_ID, env_kwargs={"max_steps": 3}, vision=str(tiny_checkpoint), steps=64, n_envs=2,
                       out_dir=tmp_path / "p", algo_kwargs=dict(n_steps=32, batch_size=32, n_epochs=1), progress=False)
    assert main(["-q", "evaluate", "--policy", str(out), "--episodes", "2", "--out", str(tmp_path / "e")]) == 0
    result = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert result["domains"] == ["default"] and np.asarray(result["lengths"]["default"]).max() <= 3


# -- planted payloads --------------------------------------------------------------------------------
def _plant(path: str) -> None:
    """What an attacker's pickle runs when it is loaded."""
    Path(path).write_text("payload ran")


class Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (_plant, (self.marker,))


def _rewrite_zip(src: Path, dst: Path, replace: dict[str, bytes]) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, replace.get(name, zin.read(name)))


def _serialized(obj) -> dict:
    return {":type:": "<class 'dict'>", ":serialized:": base64.b64encode(cloudpickle.dumps(obj)).decode()}


def _one_line_refusal(argv: list[str], capsys) -> str:
    capsys.readouterr()  # what earlier calls printed
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_payload_in_a_foreign_zip_data_entry_never_runs(tmp_path, capsys):
    from stable_baselines3.common.save_util import json_to_data

    original = _foreign_ppo(tmp_path / "clean.zip")
    marker = tmp_path / "marker"
    data = json.loads(zipfile.ZipFile(tmp_path / "clean.zip").read("data"))
    data["observation_space"] = _serialized(Payload(marker))
    data["lr_schedule"] = _serialized(Payload(marker))
    json_to_data(json.dumps(data))  # SB3's own loader: the payload is live
    assert marker.exists()
    marker.unlink()

    evil = tmp_path / "evil.zip"
    _rewrite_zip(tmp_path / "clean.zip", evil, {"data": json.dumps(data).encode()})
    model, meta = load_policy(evil, algo="ppo", env=TinyChoiceEnv())  # loads: spaces come from the env
    _same_actions(original, model, meta, TinyChoiceEnv())
    assert main(["-q", "evaluate", "--policy", str(evil), "--algo", "ppo", "--env", ENV_ID, "--episodes", "1",
                 "--out", str(tmp_path / "e")]) == 0
    # a payload in place of policy_kwargs: SB3 defaults do not fit the weights -> a one-line refusal
    data["policy_kwargs"] = _serialized(Payload(marker))
    _rewrite_zip(tmp_path / "clean.zip", evil, {"data": json.dumps(data).encode()})
    err = _one_line_refusal(["-q", "evaluate", "--policy", str(evil), "--algo", "ppo", "--env", ENV_ID,
                             "--out", str(tmp_path / "e")], capsys)
    assert "weight shapes do not fit" in err
    assert not marker.exists()


def test_payload_in_a_foreign_zip_policy_pth_is_refused_in_one_line(tmp_path, capsys):
    original = _foreign_ppo(tmp_path / "clean.zip")
    marker = tmp_path / "marker"
    buf = io.BytesIO()
    torch.save({**original.policy.state_dict(), "evil": Payload(marker)}, buf)
    torch.load(io.BytesIO(buf.getvalue()), weights_only=False)  # a full unpickle: the payload is live
    assert marker.exists()
    marker.unlink()
    evil = tmp_path / "evil.zip"
    _rewrite_zip(tmp_path / "clean.zip", evil, {"policy.pth": buf.getvalue()})
    err = _one_line_refusal(["-q", "evaluate", "--policy", str(evil), "--algo", "ppo", "--env", ENV_ID,
                             "--out", str(tmp_path / "e")], capsys)
    assert "policy.pth is not a plain weights file" in err and not marker.exists()


def test_tampered_darla_policy_files_are_refused_in_one_line(tiny_checkpoint, tmp_path, capsys):
    out, _ = _train(tmp_path, "ppo", "latent", vision=str(tiny_checkpoint), steps=64)
    marker = tmp_path / "marker"
    meta = json.loads((out / "policy.json").read_text())
    clean_json, clean_weights = (out / "policy.json").read_text(), (out / "policy.safetensors").read_bytes()
    pickled = cloudpickle.dumps(Payload(marker))
    argv = ["-q", "evaluate", "--policy", str(out), "--domains", "A-default", "--out", str(tmp_path / "e")]

    # 1. weights replaced by a pickle (and the digest updated to match): safetensors cannot parse it
    import hashlib

    (out / "policy.safetensors").write_bytes(pickled)
    (out / "policy.json").write_text(json.dumps({**meta, "weights": {"file": "policy.safetensors",
                                                                      "sha256": hashlib.sha256(pickled).hexdigest()}}))
    with pytest.raises(PolicyLoadError, match="not a readable safetensors file"):
        load_policy(out)
    # 2. weights changed, digest not: refused as damaged
    (out / "policy.json").write_text(clean_json)
    (out / "policy.safetensors").write_bytes(clean_weights[:-8] + b"\0" * 8)
    with pytest.raises(PolicyLoadError, match="does not match the sha256"):
        load_policy(out)
    (out / "policy.safetensors").write_bytes(clean_weights)
    # 3. policy.json with an SB3-style pickled entry, a non-whitelisted class, a missing field, broken JSON
    for bad in ({**meta, "policy_kwargs": {"activation_fn": _serialized(Payload(marker))}},
                {**meta, "policy_kwargs": {"features_extractor_class": "tests.agents.test_policy_io.Payload"}},
                {**meta, "algo_kwargs": _serialized(Payload(marker))},
                {k: v for k, v in meta.items() if k != "mode"}):
        (out / "policy.json").write_text(json.dumps(bad))
        with pytest.raises(PolicyLoadError):
            load_policy(out)
        _one_line_refusal(argv, capsys)
    (out / "policy.json").write_text(clean_json[:40])
    _one_line_refusal(argv, capsys)
    assert not marker.exists()
    (out / "policy.json").write_text(clean_json)
    load_policy(out)  # the restored files load again


def test_darla_run_refuses_an_algorithm_that_cannot_act_in_the_env_before_any_work(tmp_path, capsys):
    pytest.importorskip("envs.seekavoid")
    assert main(["run", "--out", str(tmp_path), "--set", "policy.algo=sac"]) == 2
    err = capsys.readouterr().err
    assert "policy.algo" in err and "needs Box actions" in err and "Discrete(3)" in err and "ppo" in err
    assert not (tmp_path / "stages").exists()


@pytest.mark.parametrize("algo,env_fn,akw", [
    ("sac", TinyReachEnv, dict(learning_starts=16, batch_size=16, buffer_size=500, train_freq=4)),
    ("dqn", TinyChoiceEnv, dict(learning_starts=16, batch_size=16, buffer_size=500, train_freq=4)),
    ("ppo", TinyChoiceEnv, dict(n_steps=32, batch_size=32, n_epochs=1)),
])
def test_frame_stack_with_normalize_trains_saves_reloads_and_evaluates(tiny_checkpoint, tmp_path, algo, env_fn, akw):
    """Off-policy algorithms store VecNormalize's original observations in their replay buffer, so the
    VecNormalize must see stacked observations (frames -> latents -> VecFrameStack -> VecNormalize):
    normalising before stacking fed (6,) observations into an (12,) buffer and crashed."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize

    keep = KeepModel()
    out = train_policy(env_fn=env_fn, vision=str(tiny_checkpoint), algo=algo, steps=64, n_envs=2, seed=0,
                       out_dir=tmp_path / "p", progress=False, algo_kwargs=akw, eval_callback=keep,
                       frame_stack=2, normalize=True)
    assert isinstance(keep.venv, VecNormalize) and isinstance(keep.venv.venv, VecFrameStack)
    model, meta = load_policy(out)
    assert model.observation_space.shape == (12,) and meta["normalize_stats"]["mean"].shape == (12,)
    venv = wrap_vec_env(DummyVecEnv([env_fn]), meta)
    assert isinstance(venv, VecNormalize) and isinstance(venv.venv, VecFrameStack)
    np.testing.assert_array_equal(venv.obs_rms.mean, keep.venv.obs_rms.mean)
    # one env at a time (stage 3) and the VecEnv chain see the same observations
    env = wrap_env(env_fn(), meta)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        venv.seed(seed)
        np.testing.assert_allclose(obs, venv.reset()[0], rtol=0, atol=1e-6)
    result = zero_shot_evaluate([out], ["A-default"], env_factory=env_fn, episodes=2, seed=0, progress=False,
                                n_boot=10)
    assert len(result["returns"]["A-default"][0]) == 2


def test_policy_saved_with_the_old_normalize_then_stack_order_still_evaluates_as_trained(tiny_checkpoint, tmp_path,
                                                                                        monkeypatch):
    """policy.json files written before the stack-first order hold statistics of one step's features
    (6, not 3 x 6); they load, and are fed normalise-then-stack, exactly as they were trained."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize

    import agents.train as train_mod
    from agents.latent import LatentVecEnv

    def old_order(frames_env, mode, vision, device, frame_stack, normalize, gamma):
        env = norm = VecNormalize(LatentVecEnv(frames_env, vision, device=device), norm_obs=True, norm_reward=True,
                                  gamma=gamma)
        return VecFrameStack(env, frame_stack), norm

    monkeypatch.setattr(train_mod, "_wrap_training_env", old_order)
    keep = PlayAtEnd()
    out = train_policy(env_fn=TinyChoiceEnv, vision=str(tiny_checkpoint), steps=128, n_envs=1, seed=0,
                       out_dir=tmp_path / "p", progress=False, algo_kwargs=dict(n_steps=32, batch_size=32, n_epochs=1),
                       eval_callback=keep, frame_stack=3, normalize=True)
    model, meta = load_policy(out)
    assert model.observation_space.shape == (18,) and meta["normalize_stats"]["mean"].shape == (6,)
    assert meta["normalize_stats"]["stacked"] is False
    rows_vec, _ = _play_vec(wrap_vec_env(DummyVecEnv([TinyChoiceEnv]), meta), model, range(4), action=2)
    env = wrap_env(TinyChoiceEnv(), meta)
    rows_eval = []
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            rows_eval.append(obs.copy())
            obs, _, term, trunc, _ = env.step(2)
            done = term or trunc
    assert len(keep.rows) == len(rows_eval) == len(rows_vec) > 4
    for (a, _), b, (c, _) in zip(keep.rows, rows_eval, rows_vec):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-6)


def test_normalize_statistics_of_another_size_are_refused(tiny_checkpoint, tmp_path):
    from safetensors.numpy import save_file

    out = train_policy(env_fn=TinyChoiceEnv, vision=str(tiny_checkpoint), steps=64, n_envs=1, seed=0,
                       out_dir=tmp_path / "p", progress=False, algo_kwargs=dict(n_steps=32, batch_size=32, n_epochs=1),
                       frame_stack=3, normalize=True)
    save_file({"obs_mean": np.zeros(5), "obs_var": np.ones(5)}, str(out / "vecnormalize.safetensors"))
    meta = json.loads((out / "policy.json").read_text())
    import hashlib

    meta["normalize"]["sha256"] = hashlib.sha256((out / "vecnormalize.safetensors").read_bytes()).hexdigest()
    (out / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(PolicyLoadError, match=r"vecnormalize.safetensors.*size 18 or 6; retrain"):
        load_policy(out)
