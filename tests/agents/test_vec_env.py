"""The policy stage's VecEnv: SubprocVecEnv gives the same observations and features as DummyVecEnv for the
same seeds; ``policy.vec_env`` picks it (``auto`` = dummy, as measured) without changing the stage key; the
stage runs with one torch thread on the CPU; a script without a ``__main__`` guard fails with a message."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.latent import LatentVecEnv
from agents.train import make_training_env
from tests.agents.conftest import TinyChoiceEnv

ROOT = Path(__file__).resolve().parents[2]
TINY_ID = "darla-test/TinyChoice-v0"


def _rollout(venv, actions: np.ndarray) -> list:
    out = [venv.reset().copy()]
    for a in actions:
        obs, rewards, dones, infos = venv.step(a)
        terminal = [info.get("terminal_observation") for info in infos]
        out.append((obs.copy(), rewards.copy(), dones.copy(), terminal))
    venv.close()
    return out


def _same(a: list, b: list) -> None:
    np.testing.assert_array_equal(a[0], b[0])
    for (oa, ra, da, ta), (ob, rb, db, tb) in zip(a[1:], b[1:], strict=True):
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(da, db)
        for x, y in zip(ta, tb, strict=True):
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)


ACTIONS = np.random.default_rng(0).integers(0, 3, size=(12, 3))


@pytest.mark.parametrize("start_method", ["forkserver", pytest.param("spawn", marks=pytest.mark.slow)])
def test_subproc_gives_the_same_frames_as_dummy(tmp_path, start_method):
    kw = dict(env_fn=TinyChoiceEnv, env_kwargs={"domain": "A-changed", "max_steps": 3}, n_envs=3, seed=7)
    dummy = _rollout(make_training_env(**kw, monitor_dir=tmp_path / "d"), ACTIONS)
    sub = _rollout(make_training_env(**kw, monitor_dir=tmp_path / "s", subproc=True, start_method=start_method),
                   ACTIONS)
    _same(dummy, sub)
    assert any(d.any() for _, _, d, _ in dummy[1:])  # episodes ended, so resets and terminal frames were compared
    other = _rollout(make_training_env(**{**kw, "seed": 8}, subproc=True), ACTIONS)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(dummy[1:], other[1:]))  # the seed matters


def test_subproc_features_equal_dummy_features(tiny_checkpoint):
    kw = dict(env_fn=TinyChoiceEnv, env_kwargs={"max_steps": 3}, n_envs=2, seed=3)
    dummy = _rollout(LatentVecEnv(make_training_env(**kw), str(tiny_checkpoint)), ACTIONS[:, :2])
    sub = _rollout(LatentVecEnv(make_training_env(**kw, subproc=True), str(tiny_checkpoint)), ACTIONS[:, :2])
    assert dummy[0].shape == (2, 6) and dummy[0].dtype == np.float32
    _same(dummy, sub)


@pytest.mark.slow
def test_subproc_workers_build_a_registered_env_without_its_registering_import(tmp_path):
    # The id is registered only in this process; the workers get the EnvSpec, not the registry.
    if TINY_ID not in gym.registry:
        gym.register(TINY_ID, entry_point="tests.agents.conftest:TinyChoiceEnv")
    try:
        venv = make_training_env(TINY_ID, {"max_steps": 2}, n_envs=2, seed=0, subproc=True)
        assert venv.reset().shape == (2, 16, 16, 3)
        venv.close()
    finally:
        gym.registry.pop(TINY_ID, None)


@pytest.mark.slow
def test_unguarded_script_fails_with_a_message_instead_of_hanging(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        from agents.train import make_training_env
        from tests.agents.conftest import TinyChoiceEnv
        make_training_env(env_fn=TinyChoiceEnv, n_envs=2, subproc=True, start_method="spawn")
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode != 0
    assert 'RuntimeError: SubprocVecEnv workers (spawn) exited before their envs were ready' in proc.stderr
    assert 'if __name__ == "__main__":' in proc.stderr and "policy.vec_env=dummy" in proc.stderr


@pytest.mark.slow
def test_seekavoid_renders_the_same_frames_in_forkserver_workers(tmp_path):
    """miniworld's headless OpenGL in worker processes (a forked GL context would not render)."""
    import envs  # noqa: F401

    kw = dict(env_id="darla/SeekAvoid-v0", env_kwargs={"domain": "source", "layout": "choice", "obs_size": 16},
              n_envs=2, seed=5)
    actions = ACTIONS[:8, :2]
    dummy = _rollout(make_training_env(**kw), actions)
    _same(dummy, _rollout(make_training_env(**kw, subproc=True), actions))
    assert dummy[0].std() > 0  # real frames, not a blank buffer


# -- the pipeline's choice -------------------------------------------------------------------------
def _policy_stage(tmp_path, monkeypatch, overrides, cores=2):
    import agents.train
    from darla import pipeline
    from darla.config import load_config

    calls = []
    monkeypatch.setattr(agents.train, "train_policy",
                        lambda **kw: calls.append({**kw, "threads": torch.get_num_threads()}) or kw["out_dir"])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    config = load_config(None, ["policy.mode=pixels", "device=cpu", *overrides])
    stage, record = pipeline.train_policy_stage(config, tmp_path, None, "pixels", 0, progress=False)
    return stage.dir.name, calls[-1], record


@pytest.mark.parametrize("overrides, cores, subproc", [
    ([], 2, False), ([], 1, False), (["policy.vec_env=dummy"], 2, False), (["policy.vec_env=subproc"], 1, True),
    (["policy.vec_env=subproc", "policy.n_envs=2"], 2, True),
])
def test_vec_env_choice(tmp_path, monkeypatch, overrides, cores, subproc):
    _, call, record = _policy_stage(tmp_path, monkeypatch, overrides, cores)
    assert call["subproc"] is subproc
    assert record["vec_env"] == ("subproc" if subproc else "dummy")


def test_vec_env_is_not_part_of_the_policy_key(tmp_path, monkeypatch):
    names = {_policy_stage(tmp_path / v, monkeypatch, [f"policy.vec_env={v}"])[0] for v in ("auto", "dummy", "subproc")}
    assert len(names) == 1
    assert _policy_stage(tmp_path / "n", monkeypatch, ["policy.n_envs=2"])[0] not in names  # other fields still count


def test_policy_stage_uses_one_torch_thread_on_cpu_and_restores_the_count(tmp_path, monkeypatch):
    torch.set_num_threads(2)
    try:
        _, call, record = _policy_stage(tmp_path, monkeypatch, [])
        assert call["threads"] == 1 and record["torch_threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1 if os.environ.get("OMP_NUM_THREADS") == "1" else torch.get_num_threads())


def test_bad_vec_env_names_the_field():
    from darla.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"'policy.vec_env' = 'threads' is invalid: expected one of auto, dummy, subproc"):
        load_config(None, ["policy.vec_env=threads"])
