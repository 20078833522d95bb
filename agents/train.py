"""Stage 2, "learn to act": an SB3 policy on a frozen vision model, in the source domains only.

DARLA (Higgins et al. 2017, sec. 2.3): the vision module s^U learnt in stage 1 is frozen and the
policy is trained on its features s^z = mean of q(z|x). Three modes:

* ``latent`` (default, fast): :class:`agents.latent.LatentVecEnv` encodes each batch of frames once;
  an ``MlpPolicy`` learns on ``(feature_dim,)`` vectors, so PPO's epochs never re-run the encoder.
  Optionally stacked over the last ``frame_stack`` steps (SB3 ``VecFrameStack``) and then normalised
  (SB3 ``VecNormalize``, ``normalize=True``, statistics of the stacked vector), in that order: SB3's
  off-policy algorithms fill their replay buffer from the VecNormalize, so it must see stacked
  observations. (Policies saved before this order normalised each step's features before stacking;
  :func:`wrap_env` still feeds them that way.)
* ``extractor``: :class:`agents.extractor.FrozenVisionExtractor` inside the policy (the encoder runs
  in every forward pass, including every PPO minibatch; same features, slower).
* ``pixels``: the end-to-end baseline, SB3 ``CnnPolicy`` (NatureCNN) on frames (optionally stacked).

Any SB3 algorithm by name (:mod:`agents.algos`: ppo, a2c, dqn, sac, td3, ddpg; sb3-contrib's qrdqn, tqc,
trpo, ars, crossq when installed).

Artefacts in ``out_dir`` (:mod:`agents.policy_io`, nothing pickled): ``policy.safetensors`` (the policy's
weights), ``vecnormalize.safetensors`` (with ``normalize``), ``policy.json`` (what rebuilds it: algorithm,
policy, spaces, kwargs, frame stack, normalisation, digests; and what produced it: vision checkpoint and
digest, env id/kwargs, steps, seed, obs size; written last, so its presence means the policy is
complete), ``learning_curve.csv`` (timesteps, mean episode return per rollout), ``monitor/`` (SB3
Monitor CSVs) and ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecFrameStack,
    VecNormalize,
)
from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

from agents import algos as _algos
from agents.algos import (
    ALGO_DEFAULTS,
    SB3_ALGOS,
    algo_names,
    canonical_algo,
    check_action_space,
    check_algo,
    merged_kwargs,
)
from agents.extractor import FrozenVisionExtractor
from agents.frozen import VisionLike
from agents.latent import LatentObservation, LatentVecEnv
from agents.policy_io import (
    LEGACY_ZIP,
    POLICY_JSON,
    POLICY_WEIGHTS,
    PolicyLoadError,
    load_darla_policy,
    load_sb3_zip,
    save_policy,
    space_to_json,
)
from vision.checkpoint import atomic_write_bytes, checkpoint_id

__all__ = [
    "ALGOS",
    "ALGO_DEFAULTS",
    "MODES",
    "POLICY_JSON",
    "POLICY_WEIGHTS",
    "PolicyLoadError",
    "algo_names",
    "check_algo",
    "load_policy",
    "make_training_env",
    "train_policy",
    "wrap_env",
    "wrap_vec_env",
]

logger = logging.getLogger(__name__)

#: SB3's own algorithms by name (sb3-contrib's come from :func:`agents.algos.algo_class` when installed)
ALGOS: dict[str, type[BaseAlgorithm]] = dict(SB3_ALGOS)
MODES = ("latent", "extractor", "pixels")
POLICY_ZIP = LEGACY_ZIP
CURVE_CSV = "learning_curve.csv"


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
def _wrap_training_env(frames_env: VecEnv, mode: str, vision: Any, device: str, frame_stack: int, normalize: bool,
                       gamma: float) -> tuple[VecEnv, VecNormalize | None]:
    """The VecEnv the algorithm trains on: frames -> [latents] -> [VecFrameStack] -> [VecNormalize].

    VecNormalize goes outside the stack: SB3's off-policy algorithms store
    ``VecNormalize.get_original_obs()`` in a replay buffer of the training env's (stacked) shape, so the
    VecNormalize must see stacked observations (normalising before stacking crashed SAC/TD3/DQN)."""
    env: VecEnv = LatentVecEnv(frames_env, vision, device=device) if mode == "latent" else frames_env
    norm = None
    if frame_stack > 1:
        env = VecFrameStack(env, frame_stack)
    if normalize:
        env = norm = VecNormalize(env, norm_obs=True, norm_reward=True, gamma=gamma)
    return env, norm


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
    frame_stack: int = 1,
    normalize: bool = False,
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
    :param algo: any name of :func:`agents.algos.algo_names` (``"ppo"``, ``"dqn"``, ``"sac"``, ...); it must fit
        the env's action space (DQN: Discrete, SAC/TD3: Box)
    :param steps: total environment steps
    :param n_envs: parallel environments
    :param seed: seed of the algorithm, the policy init and the envs (env ``i`` gets ``seed + i``)
    :param out_dir: directory for ``policy.safetensors``, ``policy.json``, learning curve, logs
    :param mode: ``"latent"`` (LatentVecEnv + MlpPolicy), ``"extractor"`` (FrozenVisionExtractor inside
        the policy) or ``"pixels"`` (CnnPolicy, no vision)
    :param algo_kwargs: overrides of :data:`agents.algos.ALGO_DEFAULTS` (SB3's defaults elsewhere)
    :param policy_kwargs: SB3 ``policy_kwargs`` (e.g. ``{"net_arch": [64, 64], "activation_fn": "ReLU"}``);
        class-valued entries by whitelisted name or class (:data:`agents.algos.CLASS_NAMES`)
    :param frame_stack: stack the last ``frame_stack`` observations (latent features, or frames in
        ``pixels`` mode) with SB3's ``VecFrameStack``; 1 = no stacking
    :param normalize: normalise latent features with SB3's ``VecNormalize`` (running mean/variance, rewards
        too during training); the statistics are saved and re-applied frozen at evaluation
    :param device: torch device for the policy and the vision
    :param progress: show a tqdm progress bar
    :param eval_callback: extra SB3 callback(s), e.g. an ``EvalCallback``
    :param subproc: use ``SubprocVecEnv`` (needs a ``__main__`` guard in scripts)
    :return: ``out_dir`` (holding ``policy.safetensors`` and ``policy.json``)
    """
    _check_choice("mode", mode, MODES, "e.g. mode='latent'")
    policy = "CnnPolicy" if mode == "pixels" else "MlpPolicy"
    check_algo(algo, algo_kwargs, policy_kwargs, policy=policy)
    algo = canonical_algo(algo)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if not isinstance(frame_stack, int) or isinstance(frame_stack, bool) or frame_stack < 1:
        raise ValueError(f"frame_stack must be an integer >= 1, got {frame_stack!r}; 1 = no stacking")
    if frame_stack > 1 and mode == "extractor":
        raise ValueError("frame_stack > 1 stacks frames channel-wise, which the frozen vision inside the policy cannot "
                         "read; use mode='latent' (stacks features) or frame_stack=1")
    if normalize and mode != "latent":
        raise ValueError(f"normalize=True normalises latent features; mode '{mode}' sees images (SB3 scales them "
                         "itself): use mode='latent' or normalize=False")
    if mode != "pixels" and vision is None:
        raise ValueError(f"mode '{mode}' needs a vision checkpoint: pass vision=PATH, or use mode='pixels'")
    if mode == "pixels" and vision is not None:
        raise ValueError("mode 'pixels' trains end to end and takes no vision; drop vision= or use mode='latent'")
    kwargs, pkw_json = merged_kwargs(algo, algo_kwargs, policy_kwargs)
    if mode == "extractor" and "features_extractor_class" in pkw_json:
        raise ValueError("mode 'extractor' sets policy_kwargs.features_extractor_class itself (the frozen vision); "
                         "drop it, or use mode='pixels' for your own extractor")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / POLICY_JSON).unlink(missing_ok=True)  # until the new record is written, the directory is unfinished
    algo_cls = check_algo(algo, kwargs, pkw_json, policy=policy)

    frames_env = make_training_env(env_id, env_kwargs, env_fn, n_envs, seed, out / "monitor", subproc)
    try:
        check_action_space(algo, frames_env.action_space)
    except ValueError:
        frames_env.close()
        raise
    obs_shape = tuple(frames_env.observation_space.shape or ())
    vision_path = vision_id = None
    pkw = _algos.policy_kwargs_from_json(pkw_json)  # class names -> classes (whitelist)
    if mode == "pixels" and min(obs_shape[:2]) < 36:
        frames_env.close()
        raise ValueError(f"pixel policies need observations of at least 36×36 (SB3's CnnPolicy, NatureCNN), got "
                         f"{obs_shape}; render the env at obs_size=64")
    if mode == "extractor":
        model_or_path = vision
        if not isinstance(vision, torch.nn.Module):
            vision_path = Path(vision).resolve()
            vision_id = checkpoint_id(vision_path)
            model_or_path = str(vision_path)
        pkw.update(features_extractor_class=FrozenVisionExtractor,
                   features_extractor_kwargs=dict(vision=model_or_path, device=device))
    env, norm = _wrap_training_env(frames_env, mode, vision, device, frame_stack, normalize,
                                   float(kwargs.get("gamma", 0.99)))
    if mode == "latent":
        latent = _find_latent(env)
        vision_path, vision_id = latent.encoder.path, latent.encoder.vision_id

    model = algo_cls(policy, env, seed=seed, device=device, verbose=0, tensorboard_log=str(out / "tb"),
                     policy_kwargs=pkw or None, **kwargs)
    curve = LearningCurveCallback(out / CURVE_CSV, min_interval=1_000 if algo in _algos.OFF_POLICY else 0)
    callbacks: list[BaseCallback] = [curve]
    if progress:
        callbacks.append(ProgressBarCallback(steps, f"{algo}/{mode} seed {seed}"))
    if eval_callback is not None:
        callbacks.extend(eval_callback if isinstance(eval_callback, list) else [eval_callback])
    logger.info("training %s (%s) for %d steps, %d envs, seed %d -> %s", algo, mode, steps, n_envs, seed, out)
    model.learn(total_timesteps=steps, callback=CallbackList(callbacks), tb_log_name=f"{algo}_{mode}")

    obs_size = None  # frame height: (H, W, C) or (C, H, W)
    if len(obs_shape) == 3:
        obs_size = int(obs_shape[1] if int(np.argmin(obs_shape)) == 0 else obs_shape[0])
    meta = {
        "algo": algo,
        "mode": mode,
        "policy": policy,
        "observation_space": space_to_json(env.observation_space),
        "action_space": space_to_json(env.action_space),
        "algo_kwargs": _jsonable(kwargs),
        "policy_kwargs": pkw_json,
        "frame_stack": int(frame_stack),
        "vision_checkpoint": str(vision_path) if vision_path else None,
        "vision_id": vision_id,
        "env_id": _env_label(env_id, env_fn),
        "env_kwargs": _jsonable(env_kwargs or {}),
        "steps": int(steps),
        "num_timesteps": int(model.num_timesteps),
        "seed": int(seed),
        "n_envs": int(n_envs),
        "obs_size": obs_size,
        "obs_shape": list(obs_shape),
        "train_domains": sorted(set(curve.domains) | set(_declared_domains(frames_env))),
        "final_mean_return": curve.rows[-1]["mean_return"] if curve.rows else None,
    }
    save_policy(model, out, meta, normalize=norm)
    env.close()
    return out


def _find_latent(venv: VecEnv) -> LatentVecEnv:
    while not isinstance(venv, LatentVecEnv):
        venv = venv.venv
    return venv


# -- loading ---------------------------------------------------------------------------------------
def load_policy(
    path: str | os.PathLike,
    vision: str | os.PathLike | None = None,
    device: str = "cpu",
    env: gym.Env | VecEnv | None = None,
    *,
    algo: str | None = None,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """Load a policy without running code from its files: a darla policy directory, or an SB3 ``.zip``.

    A darla policy (:func:`train_policy`) is rebuilt from ``policy.json`` and ``policy.safetensors``
    (:func:`agents.policy_io.load_darla_policy`); its vision checkpoint must exist and have the recorded
    digest (else :class:`PolicyLoadError` naming both). A ``.zip`` saved by SB3's ``model.save`` elsewhere
    is read without unpickling (:func:`agents.policy_io.load_sb3_zip`): it needs the spaces of the env it
    acts in (``env`` or ``observation_space``/``action_space``) and ``algo`` unless the zip names it.

    The returned ``meta`` is ``policy.json`` plus ``"vision_model"`` (the frozen model, or None) and
    ``"normalize_stats"``. Use :func:`wrap_env` to feed the policy: in ``latent`` mode it expects
    (normalised, stacked) features, not frames.

    :param path: policy directory (or a file in it), or an SB3 ``.zip``
    :param vision: a relocated copy of the vision checkpoint (same digest) instead of the recorded path
    :param device: torch device
    :param env: optional env of frames; wrapped like in training and attached (``model.set_env``) so
        ``model.learn`` can continue (optimiser moments and replay buffer start afresh)
    :param algo: algorithm of a foreign SB3 zip
    :param observation_space: observation space for a foreign zip (default: ``env``'s)
    :param action_space: action space for a foreign zip (default: ``env``'s)
    :return: ``(model, meta)``
    """
    p = Path(path)
    if p.suffix == ".zip" and p.is_file() and not (p.parent / POLICY_WEIGHTS).exists() \
            and not (p.parent / POLICY_JSON).exists():
        observation_space = observation_space or (env.observation_space if env is not None else None)
        action_space = action_space or (env.action_space if env is not None else None)
        if observation_space is None or action_space is None:
            raise PolicyLoadError(f"'{p}' is an SB3 zip; its pickled spaces are not read, so pass the env it acts in "
                                  "(env=, or observation_space= and action_space=; `darla evaluate --env ID`)")
        model, meta = load_sb3_zip(p, observation_space, action_space, algo=algo, device=device)
    else:
        model, meta = load_darla_policy(p, vision, device, for_training=env is not None)
    if env is not None:
        model.set_env(wrap_vec_env(env if isinstance(env, VecEnv) else DummyVecEnv([lambda: env]), meta))
    return model, meta


class NormalizedObservation(gym.ObservationWrapper):
    """Frozen ``VecNormalize`` for one gymnasium env: ``clip((obs - mean) / sqrt(var + eps), ±clip)`` as
    float32, the formula of SB3's ``VecNormalize.normalize_obs`` with the statistics saved at training.

    :param env: env of (latent) observations
    :param stats: ``{"mean", "var", "clip_obs", "epsilon"}`` (``meta["normalize_stats"]``)
    """

    def __init__(self, env: gym.Env, stats: dict[str, Any]):
        super().__init__(env)
        self.mean, self.var = np.asarray(stats["mean"], np.float64), np.asarray(stats["var"], np.float64)
        self.clip, self.epsilon = float(stats["clip_obs"]), float(stats["epsilon"])
        shape = env.observation_space.shape
        if self.mean.shape != shape:
            raise ValueError(f"normalisation statistics of shape {self.mean.shape} do not fit observations {shape}")
        self.observation_space = spaces.Box(-self.clip, self.clip, shape, np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        z = (observation - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)


class StackedObservation(gym.Wrapper):
    """SB3's ``VecFrameStack`` for one gymnasium env, through SB3's own ``StackedObservations`` (zeros
    before the first observation, newest last along the channel/feature axis), so a policy trained on a
    stacked VecEnv sees the same arrays when it is played one env at a time.

    :param env: env of observations (latent vectors or channels-last frames)
    :param n_stack: observations per stack
    """

    def __init__(self, env: gym.Env, n_stack: int):
        super().__init__(env)
        self.stack = StackedObservations(1, n_stack, env.observation_space)
        self.observation_space = self.stack.stacked_observation_space

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self.stack.reset(np.asarray(obs)[None])[0].copy(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        # the episode ends here (a gymnasium env does not auto-reset): no stack reset until reset()
        stacked, _ = self.stack.update(np.asarray(obs)[None], np.array([False]), [{}])
        return stacked[0].copy(), reward, terminated, truncated, info


def _normalize_stats_of(meta: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """The policy's VecNormalize statistics (latent mode only) and whether they normalise the stacked vector
    (``False``: a policy saved before the stack-first order, whose statistics normalise each step)."""
    stats = meta.get("normalize_stats") if meta["mode"] == "latent" else None
    return stats, stats is None or stats.get("stacked", True)


def wrap_env(env: gym.Env, meta: dict[str, Any]) -> gym.Env:
    """Wrap a single env of frames as the policy of ``meta`` (from :func:`load_policy`) expects:
    latents, normalised, stacked — as in training."""
    stats, stacked_stats = _normalize_stats_of(meta)
    if meta["mode"] == "latent":
        env = LatentObservation(env, meta["vision_model"])
        if stats is not None and not stacked_stats:
            env = NormalizedObservation(env, stats)
    if meta["mode"] in ("latent", "pixels") and int(meta.get("frame_stack") or 1) > 1:
        env = StackedObservation(env, int(meta["frame_stack"]))
    if stats is not None and stacked_stats:
        env = NormalizedObservation(env, stats)
    return env


def wrap_vec_env(venv: VecEnv, meta: dict[str, Any]) -> VecEnv:
    """Wrap a VecEnv of frames as the policy of ``meta`` (from :func:`load_policy`) expects, with SB3's
    own wrappers (``VecNormalize`` frozen: ``training=False``, ``norm_reward=False``)."""
    stats, stacked_stats = _normalize_stats_of(meta)

    def frozen_normalize(v: VecEnv) -> VecNormalize:
        v = VecNormalize(v, training=False, norm_obs=True, norm_reward=False, clip_obs=stats["clip_obs"],
                         epsilon=stats["epsilon"])
        v.obs_rms.mean, v.obs_rms.var = stats["mean"].copy(), stats["var"].copy()
        v.obs_rms.count = stats.get("count", 0.0)
        return v

    if meta["mode"] == "latent":
        venv = LatentVecEnv(venv, meta["vision_model"])
        if stats is not None and not stacked_stats:
            venv = frozen_normalize(venv)
    if meta["mode"] in ("latent", "pixels") and int(meta.get("frame_stack") or 1) > 1:
        venv = VecFrameStack(venv, int(meta["frame_stack"]))
    if stats is not None and stacked_stats:
        venv = frozen_normalize(venv)
    return venv
