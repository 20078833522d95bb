"""Stage 2, "learn to act": an SB3 policy on a frozen vision model, in the source domains only.

DARLA (Higgins et al. 2017, sec. 2.3): the vision module s^U learnt in stage 1 is frozen and the
policy is trained on its features s^z = mean of q(z|x). Three modes:

* ``latent`` (default, fast): :class:`agents.latent.LatentVecEnv` encodes each batch of frames once;
  an ``MlpPolicy`` learns on ``(feature_dim,)`` vectors, so PPO's epochs never re-run the encoder.
* ``extractor``: :class:`agents.extractor.FrozenVisionExtractor` inside the policy (the encoder runs
  in every forward pass, including every PPO minibatch; same features, slower).
* ``pixels``: the end-to-end baseline, SB3 ``CnnPolicy`` (NatureCNN) on frames.

Artefacts in ``out_dir``: ``policy.zip`` (SB3's own ``model.save``), ``policy.json`` (what produced it:
algo, mode, vision checkpoint and digest, env id/kwargs, steps, seed, obs size; written last, so its
presence means the policy is complete), ``learning_curve.csv`` (timesteps, mean episode return per
rollout), ``monitor/`` (SB3 Monitor CSVs) and ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
import multiprocessing
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from agents.extractor import FrozenVisionExtractor
from agents.frozen import VisionLike, load_frozen_vision
from agents.latent import LatentObservation, LatentVecEnv
from vision.checkpoint import CheckpointError, atomic_write_bytes, checkpoint_id

logger = logging.getLogger(__name__)

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}
MODES = ("latent", "extractor", "pixels")
POLICY_ZIP = "policy.zip"
POLICY_JSON = "policy.json"
CURVE_CSV = "learning_curve.csv"

#: Defaults per algorithm, chosen for SeekAvoid ``choice`` (episodes <= 60 steps, sparse +-1 at the
#: end). PPO follows the Atari PPO recipe (Schulman et al. 2017; cleanrl's ppo_atari: batch 256,
#: 4 epochs, lr 2.5e-4, entropy 0.01, gamma 0.99, GAE 0.95, clip 0.2) with 256 steps per env, so a
#: 4-env rollout (1024 steps) holds >= 17 whole episodes and 100k steps are ~98 updates.
#: A2C: SB3/Atari defaults plus the same entropy bonus. DQN: a replay buffer small enough for
#: 64x64x3 frames on a laptop (50k x 12 KB x 2 ~ 1.2 GB for pixels; tiny for latents).
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": dict(n_steps=256, batch_size=256, n_epochs=4, learning_rate=2.5e-4, ent_coef=0.01, gamma=0.99,
                gae_lambda=0.95, clip_range=0.2),
    "a2c": dict(n_steps=16, learning_rate=7e-4, ent_coef=0.01, gamma=0.99),
    "dqn": dict(buffer_size=50_000, learning_starts=1_000, batch_size=64, train_freq=4, target_update_interval=1_000,
                exploration_fraction=0.2, exploration_final_eps=0.05, learning_rate=1e-4, gamma=0.99),
}


class PolicyLoadError(RuntimeError):
    """A policy directory is incomplete, or its pinned vision checkpoint is missing or different."""


# -- learning curves -------------------------------------------------------------------------------
class LearningCurveCallback(BaseCallback):
    """Writes ``(timesteps, mean_return, episodes, mean_length)`` rows to a CSV, one per rollout with
    finished episodes (at least ``min_interval`` env steps apart, which matters for DQN's 4-step
    "rollouts"), and remembers which domains (``info["domain"]``) the episodes came from.

    :param path: CSV path (rewritten atomically at every row)
    :param min_interval: minimum env steps between rows
    """

    def __init__(self, path: Path, min_interval: int = 0):
        super().__init__()
        self.path = Path(path)
        self.min_interval = min_interval
        self.rows: list[dict[str, float]] = []
        self.domains: Counter[str] = Counter()
        self._returns: list[float] = []
        self._lengths: list[int] = []
        self._last = -np.inf

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            ep = info.get("episode")
            if ep is not None:
                self._returns.append(float(ep["r"]))
                self._lengths.append(int(ep["l"]))
                if "domain" in info:
                    self.domains[str(info["domain"])] += 1
        return True

    def _on_rollout_end(self) -> None:
        if self._returns and self.num_timesteps - self._last >= self.min_interval:
            self._flush()

    def _on_training_end(self) -> None:
        if self._returns:
            self._flush()

    def _flush(self) -> None:
        row = {"timesteps": self.num_timesteps, "mean_return": float(np.mean(self._returns)),
               "episodes": len(self._returns), "mean_length": float(np.mean(self._lengths))}
        self.rows.append(row)
        self.logger.record("darla/mean_return", row["mean_return"])
        self._returns, self._lengths, self._last = [], [], self.num_timesteps
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(row))
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())


class ProgressBarCallback(BaseCallback):
    """A plain tqdm bar over env steps (SB3's own bar needs ``rich``, which darla does not depend on)."""

    def __init__(self, total: int, desc: str):
        super().__init__()
        self.total, self.desc, self.bar = total, desc, None

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc=self.desc, unit="step")

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


# -- helpers ---------------------------------------------------------------------------------------
def _check_choice(name: str, value: str, choices: tuple[str, ...] | list[str], fix: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} '{value}'; valid: {', '.join(choices)}; {fix}")


def _jsonable(value: Any) -> Any:
    """env kwargs for ``policy.json``: Domain-like objects via ``to_dict()``/dataclasses, else repr."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def _merge(defaults: dict[str, Any], overrides: dict[str, Any] | None, algo_cls: type, algo: str) -> dict[str, Any]:
    kwargs = {**defaults, **(overrides or {})}
    import inspect

    valid = set(inspect.signature(algo_cls.__init__).parameters) - {"self", "policy", "env"}
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise ValueError(f"unknown algo_kwargs {unknown} for '{algo}'; valid: {', '.join(sorted(valid))}")
    return kwargs


def _declared_domains(venv: VecEnv) -> list[str]:
    """Names in the envs' ``domains`` attribute (multi-domain envs such as SeekAvoid list what they draw
    from), so every training domain is recorded even if a short run never drew some of them."""
    try:
        lists = venv.get_attr("domains")
    except (AttributeError, TypeError):
        return []
    names = set()
    for domains in lists:
        for d in domains if isinstance(domains, (list, tuple)) else []:
            names.add(d if isinstance(d, str) else str(getattr(d, "name", d)))
    return sorted(names)


def _env_label(env_id: str | None, env_fn: Callable | None) -> str | None:
    if env_id is not None:
        return env_id
    return getattr(env_fn, "__qualname__", None) or repr(env_fn)


def make_training_env(
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    env_fn: Callable[..., gym.Env] | None = None,
    n_envs: int = 4,
    seed: int = 0,
    monitor_dir: str | os.PathLike | None = None,
    subproc: bool = False,
    start_method: str | None = None,
) -> VecEnv:
    """A monitored VecEnv of raw frames: ``env_fn(**env_kwargs)`` or ``gymnasium.make(env_id, **env_kwargs)``,
    env ``i`` seeded with ``seed + i``.

    ``subproc=True`` steps each env in its own worker process (SB3 ``SubprocVecEnv``; same observations as
    the in-process ``DummyVecEnv`` for the same seeds). Workers start with ``start_method`` (default
    ``forkserver``, else ``spawn``: never ``fork``, which would copy the parent's OpenGL context into the
    workers), so a script that calls this needs an ``if __name__ == "__main__":`` guard; without one the
    workers die and this raises ``RuntimeError`` saying so. An ``env_id`` is resolved to its gymnasium
    ``EnvSpec`` here, so workers need not have imported the module that registered it (e.g. ``envs``).
    """
    if (env_id is None) == (env_fn is None):
        raise ValueError("pass exactly one of env_id (a registered gymnasium id) or env_fn (a callable returning an env)")
    make: str | Callable[..., gym.Env] = env_fn if env_fn is not None else env_id
    if not subproc:
        return make_vec_env(make, n_envs=n_envs, seed=seed, monitor_dir=str(monitor_dir) if monitor_dir else None,
                            env_kwargs=env_kwargs or {}, vec_env_cls=DummyVecEnv)
    if env_fn is None:
        make = functools.partial(gym.make, gym.spec(env_id))  # the spec travels to the workers, the registry not
    if start_method is None:
        start_method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    try:
        return make_vec_env(make, n_envs=n_envs, seed=seed, monitor_dir=str(monitor_dir) if monitor_dir else None,
                            env_kwargs=env_kwargs or {}, vec_env_cls=SubprocVecEnv,
                            vec_env_kwargs={"start_method": start_method})
    except (EOFError, ConnectionError) as e:  # a worker died before answering: it could not start or build its env
        raise RuntimeError(
            f"SubprocVecEnv workers ({start_method}) exited before their envs were ready ({type(e).__name__}); "
            "if this runs from a script, put its entry point under `if __name__ == \"__main__\":`, and check that "
            "the env builds in a fresh process; or use in-process envs (policy.vec_env=dummy / subproc=False)"
        ) from None


# -- training --------------------------------------------------------------------------------------
def train_policy(
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    *,
    env_fn: Callable[..., gym.Env] | None = None,
    vision: VisionLike | None = None,
    algo: str = "ppo",
    steps: int = 100_000,
    n_envs: int = 4,
    seed: int = 0,
    out_dir: str | os.PathLike = "policy",
    mode: str = "latent",
    algo_kwargs: dict[str, Any] | None = None,
    policy_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    progress: bool = True,
    eval_callback: BaseCallback | list[BaseCallback] | None = None,
    subproc: bool = False,
) -> Path:
    """Train an SB3 policy on frozen vision features (or pixels) and save it to ``out_dir``.

    :param env_id: registered gymnasium id of an env with image observations (e.g. ``"darla/SeekAvoid-v0"``
        after ``import envs``); or give ``env_fn``
    :param env_kwargs: keyword arguments of the env (e.g. ``{"domain": "source", "obs_size": 64}``)
    :param env_fn: a callable ``env_fn(**env_kwargs) -> gym.Env`` instead of ``env_id``
    :param vision: vision checkpoint directory (required unless ``mode="pixels"``); a ``VisionModel``
        instance works too but is not pinned in ``policy.json`` (no digest), so prefer a path
    :param algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``
    :param steps: total environment steps
    :param n_envs: parallel environments
    :param seed: seed of the algorithm, the policy init and the envs (env ``i`` gets ``seed + i``)
    :param out_dir: directory for ``policy.zip``, ``policy.json``, learning curve, logs
    :param mode: ``"latent"`` (LatentVecEnv + MlpPolicy), ``"extractor"`` (FrozenVisionExtractor inside
        the policy) or ``"pixels"`` (CnnPolicy, no vision)
    :param algo_kwargs: overrides of :data:`ALGO_DEFAULTS` for the algorithm
    :param policy_kwargs: extra SB3 ``policy_kwargs`` (e.g. ``net_arch``)
    :param device: torch device for the policy and the vision
    :param progress: show a tqdm progress bar
    :param eval_callback: extra SB3 callback(s), e.g. an ``EvalCallback``
    :param subproc: use ``SubprocVecEnv`` (needs a ``__main__`` guard in scripts)
    :return: ``out_dir`` (holding ``policy.zip`` and ``policy.json``)
    """
    _check_choice("algo", algo, tuple(ALGOS), "e.g. algo='ppo'")
    _check_choice("mode", mode, MODES, "e.g. mode='latent'")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if mode != "pixels" and vision is None:
        raise ValueError(f"mode '{mode}' needs a vision checkpoint: pass vision=PATH, or use mode='pixels'")
    if mode == "pixels" and vision is not None:
        raise ValueError("mode 'pixels' trains end to end and takes no vision; drop vision= or use mode='latent'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    algo_cls = ALGOS[algo]
    kwargs = _merge(ALGO_DEFAULTS[algo], algo_kwargs, algo_cls, algo)

    frames_env = make_training_env(env_id, env_kwargs, env_fn, n_envs, seed, out / "monitor", subproc)
    obs_shape = tuple(frames_env.observation_space.shape or ())
    vision_path = vision_id = None
    pkw = dict(policy_kwargs or {})
    if mode == "latent":
        env: VecEnv = LatentVecEnv(frames_env, vision, device=device)
        vision_path, vision_id = env.encoder.path, env.encoder.vision_id
        policy = "MlpPolicy"
    elif mode == "extractor":
        env = frames_env
        model_or_path = vision
        if not isinstance(vision, torch.nn.Module):
            vision_path = Path(vision).resolve()
            vision_id = checkpoint_id(vision_path)
            model_or_path = str(vision_path)
        pkw.update(features_extractor_class=FrozenVisionExtractor,
                   features_extractor_kwargs=dict(vision=model_or_path, device=device))
        policy = "MlpPolicy"
    else:
        if min(obs_shape[:2]) < 36:
            raise ValueError(f"pixel policies need observations of at least 36×36 (SB3's CnnPolicy, NatureCNN), got "
                             f"{obs_shape}; render the env at obs_size=64")
        env = frames_env
        policy = "CnnPolicy"

    model = algo_cls(policy, env, seed=seed, device=device, verbose=0, tensorboard_log=str(out / "tb"),
                     policy_kwargs=pkw or None, **kwargs)
    curve = LearningCurveCallback(out / CURVE_CSV, min_interval=1_000 if algo == "dqn" else 0)
    callbacks: list[BaseCallback] = [curve]
    if progress:
        callbacks.append(ProgressBarCallback(steps, f"{algo}/{mode} seed {seed}"))
    if eval_callback is not None:
        callbacks.extend(eval_callback if isinstance(eval_callback, list) else [eval_callback])
    logger.info("training %s (%s) for %d steps, %d envs, seed %d -> %s", algo, mode, steps, n_envs, seed, out)
    model.learn(total_timesteps=steps, callback=CallbackList(callbacks), tb_log_name=f"{algo}_{mode}")

    tmp = out / f".{POLICY_ZIP}.tmp.zip"
    model.save(tmp)
    os.replace(tmp, out / POLICY_ZIP)
    obs_size = None  # frame height: (H, W, C) or (C, H, W)
    if len(obs_shape) == 3:
        obs_size = int(obs_shape[1] if int(np.argmin(obs_shape)) == 0 else obs_shape[0])
    meta = {
        "algo": algo,
        "mode": mode,
        "vision_checkpoint": str(vision_path) if vision_path else None,
        "vision_id": vision_id,
        "env_id": _env_label(env_id, env_fn),
        "env_kwargs": _jsonable(env_kwargs or {}),
        "steps": int(steps),
        "seed": int(seed),
        "n_envs": int(n_envs),
        "obs_size": obs_size,
        "obs_shape": list(obs_shape),
        "algo_kwargs": _jsonable(kwargs),
        "train_domains": sorted(set(curve.domains) | set(_declared_domains(frames_env))),
        "final_mean_return": curve.rows[-1]["mean_return"] if curve.rows else None,
    }
    atomic_write_bytes(out / POLICY_JSON, json.dumps(meta, indent=2).encode())
    env.close()
    return out


# -- loading ---------------------------------------------------------------------------------------
def _policy_dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_file() and p.name == POLICY_ZIP:
        p = p.parent
    if not (p / POLICY_JSON).exists() or not (p / POLICY_ZIP).exists():
        raise PolicyLoadError(
            f"no finished policy at '{path}': expected a directory with {POLICY_ZIP} and {POLICY_JSON} "
            "(written by agents.train_policy / `darla train-policy`); train it first"
        )
    return p


def _pinned_vision(meta: dict[str, Any], vision: str | os.PathLike | None, where: Path) -> Path:
    """The vision checkpoint a policy was trained on, verified by digest; ``vision`` relocates it."""
    recorded = meta.get("vision_checkpoint")
    path = Path(vision).resolve() if vision is not None else (Path(recorded) if recorded else None)
    if path is None:
        raise PolicyLoadError(
            f"policy '{where}' (mode {meta['mode']}) was trained on an in-memory vision model, not a checkpoint; "
            "pass vision=PATH of the same weights to load_policy"
        )
    if not (path / "config.json").exists():
        raise PolicyLoadError(
            f"policy '{where}' needs vision checkpoint '{path}' (digest {meta.get('vision_id')}), "
            f"which is missing (recorded: '{recorded}'); restore it or pass vision=PATH of a copy"
        )
    try:
        found = checkpoint_id(path)
    except CheckpointError as e:
        raise PolicyLoadError(f"policy '{where}': vision checkpoint '{path}' is unreadable: {e}") from None
    if meta.get("vision_id") and found != meta["vision_id"]:
        raise PolicyLoadError(
            f"policy '{where}' was trained on vision checkpoint '{recorded}' with digest {meta['vision_id']}, "
            f"but '{path}' has digest {found}: different weights; use the original checkpoint or retrain the policy"
        )
    return path


def load_policy(
    path: str | os.PathLike,
    vision: str | os.PathLike | None = None,
    device: str = "cpu",
    env: gym.Env | VecEnv | None = None,
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """Load a policy written by :func:`train_policy`, re-creating its frozen vision.

    The vision checkpoint recorded in ``policy.json`` must exist and have the recorded digest
    (else :class:`PolicyLoadError` naming both). The returned ``meta`` is ``policy.json`` plus
    ``"vision_model"`` (the frozen model, or None for pixels). Use :func:`wrap_env` to feed the policy:
    in ``latent`` mode it expects features, not frames.

    :param path: policy directory (or its ``policy.zip``)
    :param vision: a relocated copy of the vision checkpoint (same digest) instead of the recorded path
    :param device: torch device
    :param env: optional env of frames; wrapped like in training and attached (``model.set_env``) so
        ``model.learn`` can continue
    :return: ``(model, meta)``
    """
    where = _policy_dir(path)
    meta = json.loads((where / POLICY_JSON).read_text())
    _check_choice("algo", meta.get("algo", "?"), tuple(ALGOS), f"'{where / POLICY_JSON}' is not a darla policy")
    algo_cls = ALGOS[meta["algo"]]
    zip_path = where / POLICY_ZIP
    vision_model = None
    custom: dict[str, Any] = {}
    if meta["mode"] in ("latent", "extractor"):
        vpath = _pinned_vision(meta, vision, where)
        vision_model, _, _ = load_frozen_vision(vpath, device)
        if meta["mode"] == "extractor":
            data, _, _ = load_from_zip_file(zip_path, device=device, load_data=True)
            pkw = dict(data["policy_kwargs"])
            pkw["features_extractor_kwargs"] = {**pkw.get("features_extractor_kwargs", {}), "vision": str(vpath),
                                                "device": device}
            custom["policy_kwargs"] = pkw
    model = algo_cls.load(zip_path, device=device, custom_objects=custom or None)
    meta = {**meta, "vision_model": vision_model, "path": str(where)}
    if env is not None:
        model.set_env(wrap_vec_env(env if isinstance(env, VecEnv) else DummyVecEnv([lambda: env]), meta))
    return model, meta


def wrap_env(env: gym.Env, meta: dict[str, Any]) -> gym.Env:
    """Wrap a single env of frames as the policy of ``meta`` (from :func:`load_policy`) expects."""
    if meta["mode"] == "latent":
        return LatentObservation(env, meta["vision_model"])
    return env


def wrap_vec_env(venv: VecEnv, meta: dict[str, Any]) -> VecEnv:
    """Wrap a VecEnv of frames as the policy of ``meta`` (from :func:`load_policy`) expects."""
    if meta["mode"] == "latent":
        return LatentVecEnv(venv, meta["vision_model"])
    return venv
