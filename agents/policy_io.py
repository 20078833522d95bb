"""Policies on disk without pickle: ``policy.safetensors`` + ``policy.json``, and foreign SB3 zips read
without unpickling.

SB3's own save/load round trip (``model.save`` and its class loader) goes through cloudpickle (the zip's
``data`` entry holds pickled classes, spaces and schedules), so a crafted ``policy.zip`` runs code when it is
loaded.
Darla instead writes

* ``policy.safetensors`` — the SB3 policy's ``state_dict`` (no optimiser state: evaluation does not
  need it, and a resumed ``learn`` starts with fresh optimiser moments); the frozen vision's weights are
  left out, they come from the vision checkpoint pinned by digest;
* ``vecnormalize.safetensors`` — with ``normalize=True``, VecNormalize's observation statistics
  (never SB3's pickled ``VecNormalize.save``);
* ``policy.json`` (written last) — what rebuilds the algorithm: algorithm name, SB3 policy alias, the
  observation/action spaces it was built on, ``algo_kwargs`` and ``policy_kwargs`` as plain JSON
  (classes by whitelisted name, :mod:`agents.algos`), frame stacking, normalisation, the sha256 of
  every weights file, and the run record (vision checkpoint + digest, env id/kwargs, seed, steps...).

:func:`load_policy` rebuilds the algorithm from that JSON on a spaces-only dummy env and loads the
weights with safetensors. :func:`load_sb3_zip` reads a zip written by SB3's ``model.save`` elsewhere:
the ``data`` JSON is parsed as JSON (entries marked ``:serialized:`` are never decoded: only their
plain first-level fields are read), ``policy.pth`` goes through ``torch.load(weights_only=True)``, and
the spaces come from the env the caller evaluates on.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from agents import algos
from agents.extractor import FrozenVisionExtractor
from vision.checkpoint import CheckpointError, atomic_write_bytes, checkpoint_id

logger = logging.getLogger(__name__)

POLICY_WEIGHTS = "policy.safetensors"
POLICY_JSON = "policy.json"
NORMALIZE_WEIGHTS = "vecnormalize.safetensors"
LEGACY_ZIP = "policy.zip"
FORMAT = "darla-policy"
FORMAT_VERSION = 1
_MAX_JSON_BYTES = 16 * 2**20  # a policy.json or an SB3 zip's data entry is kilobytes; refuse a bomb
_MAX_SPACE_SIZE = 2**24  # values in one observation: a 2048x2048x4 frame; more is a tampered record


class PolicyLoadError(RuntimeError):
    """A policy file is missing, damaged, unsafe or does not fit; the message names the file and the fix."""


# -- spaces as JSON ----------------------------------------------------------------------------------
_DTYPES = ("uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "bool")


def _num(x: float) -> float | str:
    x = float(x)
    return x if np.isfinite(x) else ("inf" if x > 0 else "-inf" if x < 0 else "nan")


def _bound(arr: np.ndarray) -> Any:
    flat = np.asarray(arr).ravel()
    if flat.size and np.all(flat == flat[0]):
        return _num(flat[0])  # the usual case (images 0..255, latents -inf..inf): one number
    return [_num(v) for v in flat]


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A gymnasium ``Box``/``Discrete``/``MultiDiscrete``/``MultiBinary`` as plain JSON."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype), "low": _bound(space.low),
                "high": _bound(space.high)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist(), "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise ValueError(f"cannot record observation/action space {space} in policy.json: darla supports Box, "
                     "Discrete, MultiDiscrete and MultiBinary")


def _ints(value: Any, what: str) -> list[int]:
    vals = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in vals):
        raise ValueError(f"{what} must be non-negative integers, got {value!r}")
    return vals


def _bound_array(value: Any, shape: tuple[int, ...], dtype: str, what: str) -> np.ndarray:
    def one(v: Any) -> float:
        if isinstance(v, str) and v in ("inf", "-inf", "nan"):
            return float(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise ValueError(f"{what} must hold numbers or 'inf'/'-inf', got {v!r}")

    if isinstance(value, list):
        arr = np.array([one(v) for v in value], dtype=np.float64)
        if arr.size != int(np.prod(shape)):
            raise ValueError(f"{what} has {arr.size} values for shape {list(shape)}")
        arr = arr.reshape(shape)
    else:
        arr = np.full(shape, one(value))
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        arr = np.clip(arr, info.min, info.max)
    return arr.astype(dtype)


def space_from_json(d: Any, what: str = "space") -> spaces.Space:
    """The inverse of :func:`space_to_json`; ``ValueError`` naming the bad field."""
    if not isinstance(d, dict) or d.get("type") not in ("Box", "Discrete", "MultiDiscrete", "MultiBinary"):
        raise ValueError(f"{what} must be a mapping with type Box, Discrete, MultiDiscrete or MultiBinary, got {d!r}")
    kind = d["type"]
    if kind == "Box":
        shape = tuple(_ints(d.get("shape"), f"{what}.shape"))
        if int(np.prod(shape, dtype=np.float64)) > _MAX_SPACE_SIZE:  # a tampered shape must not exhaust memory
            raise ValueError(f"{what}.shape {list(shape)} is implausibly large (> {_MAX_SPACE_SIZE} values)")
        dtype = d.get("dtype")
        if dtype not in _DTYPES:
            raise ValueError(f"{what}.dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        return spaces.Box(_bound_array(d.get("low"), shape, dtype, f"{what}.low"),
                          _bound_array(d.get("high"), shape, dtype, f"{what}.high"), shape=shape, dtype=dtype)
    if kind == "Discrete":
        (n,) = _ints(d.get("n"), f"{what}.n")
        start = d.get("start", 0)
        if not isinstance(start, int) or isinstance(start, bool):
            raise ValueError(f"{what}.start must be an integer, got {start!r}")
        return spaces.Discrete(n, start=start)
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(_ints(d.get("nvec"), f"{what}.nvec"))
    n = d.get("n")
    return spaces.MultiBinary(_ints(n, f"{what}.n") if isinstance(n, list) else _ints(n, f"{what}.n")[0])


class SpacesEnv(gym.Env):
    """An env that only has spaces: what an SB3 algorithm is built on when it is rebuilt for acting.

    ``reset``/``step`` return zeros and end at once; they exist so SB3's checks pass, not to be played.

    :param observation_space: the observation space the policy sees
    :param action_space: its action space
    """

    metadata = {"render_modes": []}

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def _obs(self) -> Any:
        return np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 0.0, True, False, {}


# -- building an algorithm without pickle ------------------------------------------------------------
def build_algorithm(
    algo: str,
    policy: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    algo_kwargs: dict[str, Any] | None = None,
    policy_kwargs: dict[str, Any] | None = None,
    n_envs: int = 1,
    device: str = "cpu",
    for_training: bool = False,
) -> BaseAlgorithm:
    """An untrained SB3 algorithm with the structure of a saved one, on a spaces-only dummy VecEnv.

    :param algo: algorithm name (:func:`agents.algos.algo_names`)
    :param policy: SB3 policy alias, e.g. ``"MlpPolicy"``
    :param observation_space: the observation space of the VecEnv the algorithm was trained on
    :param action_space: its action space
    :param algo_kwargs: constructor arguments (plain JSON)
    :param policy_kwargs: policy arguments (classes already resolved or as whitelisted names)
    :param n_envs: how many envs the dummy VecEnv has (as in training, so SB3 sizes its buffers alike)
    :param device: torch device
    :param for_training: keep the recorded replay-buffer size (else 1: acting needs no replay buffer)
    """
    cls = algos.algo_class(algo)
    kwargs = dict(algo_kwargs or {})
    if not for_training and "buffer_size" in _init_parameters(cls):
        kwargs["buffer_size"] = 1
    venv = DummyVecEnv([lambda: SpacesEnv(observation_space, action_space)] * max(1, n_envs))
    # names -> whitelisted classes; classes given by the caller (the frozen-vision extractor) stay
    pkw = {k: algos.class_from_name(v, k) if k in algos.CLASS_KEYS and isinstance(v, str) else v
           for k, v in (policy_kwargs or {}).items()} or None
    import warnings

    with warnings.catch_warnings():  # e.g. PPO's "batch size is not a factor" for a rebuilt n_envs
        warnings.simplefilter("ignore", UserWarning)
        return cls(policy, venv, device=device, verbose=0, policy_kwargs=pkw, **kwargs)


def _init_parameters(cls: type) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)


def _vision_prefixes(policy: torch.nn.Module) -> list[str]:
    # every name: SB3 registers a shared extractor as features_extractor, pi_... and vf_features_extractor
    return [f"{name}.vision." for name, m in policy.named_modules(remove_duplicate=False)
            if isinstance(m, FrozenVisionExtractor)]


def policy_tensors(model: BaseAlgorithm) -> dict[str, torch.Tensor]:
    """The policy's ``state_dict`` as safetensors takes it: frozen-vision weights left out (they come from
    the pinned checkpoint), each shared tensor once (SB3 registers a shared features extractor under
    several names), every tensor contiguous on the CPU."""
    prefixes = _vision_prefixes(model.policy)
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    for key, value in model.policy.state_dict().items():
        if any(key.startswith(p) for p in prefixes):
            continue
        ident = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape))
        if ident in seen and value.numel():
            continue
        seen.add(ident)
        out[key] = value.detach().cpu().contiguous().clone()
    return out


def load_policy_tensors(model: BaseAlgorithm, tensors: dict[str, torch.Tensor], where: str,
                        fix: str = "the file does not fit its policy.json (algorithm, policy_kwargs or spaces); "
                                   "retrain the policy") -> None:
    """Copy saved tensors into a rebuilt policy; every parameter must be covered (by its own key, by a
    key sharing its storage, or by the pinned vision), no key may be foreign, every shape must fit.

    :param fix: what the error messages tell the user to do"""
    policy = model.policy
    state = policy.state_dict()
    unexpected = sorted(set(tensors) - set(state))
    if unexpected:
        raise PolicyLoadError(f"{where} holds weights the rebuilt policy does not have ({', '.join(unexpected[:4])}"
                              f"{'...' if len(unexpected) > 4 else ''}): {fix}")
    bad = [f"{k} {tuple(v.shape)} vs {tuple(state[k].shape)}" for k, v in tensors.items()
           if tuple(v.shape) != tuple(state[k].shape)]
    if bad:
        raise PolicyLoadError(f"{where}: weight shapes do not fit the rebuilt policy ({'; '.join(bad[:3])}): {fix}")
    loaded_storage = {state[k].untyped_storage().data_ptr() for k in tensors}
    prefixes = _vision_prefixes(policy)
    missing = [k for k in state if k not in tensors and not any(k.startswith(p) for p in prefixes)
               and state[k].untyped_storage().data_ptr() not in loaded_storage]
    if missing:
        raise PolicyLoadError(f"{where} lacks weights of the rebuilt policy ({', '.join(missing[:4])}"
                              f"{'...' if len(missing) > 4 else ''}): {fix}")
    with torch.no_grad():
        for key, value in tensors.items():
            state[key].copy_(value.to(state[key].dtype))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- saving --------------------------------------------------------------------------------------------
def normalize_to_json(venv: VecNormalize) -> tuple[dict[str, Any], bytes]:
    """VecNormalize's observation statistics: ``(record for policy.json, safetensors bytes)``."""
    if not venv.norm_obs or isinstance(venv.obs_rms, dict):
        raise ValueError("darla saves VecNormalize with norm_obs=True on a Box observation space only")
    blob = safetensors_save({"obs_mean": torch.from_numpy(np.asarray(venv.obs_rms.mean, np.float64).copy()),
                             "obs_var": torch.from_numpy(np.asarray(venv.obs_rms.var, np.float64).copy())})
    record = {"file": NORMALIZE_WEIGHTS, "sha256": _sha256(blob), "count": float(venv.obs_rms.count),
              "clip_obs": float(venv.clip_obs), "epsilon": float(venv.epsilon)}
    return record, blob


def save_policy(model: BaseAlgorithm, out_dir: str | os.PathLike, meta: dict[str, Any],
                normalize: VecNormalize | None = None) -> Path:
    """Write ``policy.safetensors`` (+ ``vecnormalize.safetensors``) and then ``policy.json``, atomically.

    :param model: the trained algorithm
    :param out_dir: policy directory
    :param meta: the policy record: at least ``algo``, ``mode``, ``policy`` (SB3 alias), ``observation_space``
        and ``action_space`` (JSON, :func:`space_to_json`), ``algo_kwargs``, ``policy_kwargs`` (JSON),
        ``n_envs``, ``frame_stack``; plus anything describing the run
    :param normalize: the training VecNormalize, whose observation statistics are saved
    :return: ``out_dir``
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = safetensors_save(policy_tensors(model))
    atomic_write_bytes(out / POLICY_WEIGHTS, weights)
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
              "weights": {"file": POLICY_WEIGHTS, "sha256": _sha256(weights)}, "normalize": None}
    if normalize is not None:
        norm, blob = normalize_to_json(normalize)
        atomic_write_bytes(out / NORMALIZE_WEIGHTS, blob)
        record["normalize"] = norm
    atomic_write_bytes(out / POLICY_JSON, json.dumps(record, indent=2).encode())  # last: marks it complete
    return out


# -- loading our own -----------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            raise PolicyLoadError(f"'{path}' is {path.stat().st_size} bytes, too large for a policy record; "
                                  "it is not a darla policy.json")
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PolicyLoadError(f"'{path}' is not readable JSON ({type(e).__name__}: {e}); the policy is damaged: "
                              "retrain it") from None
    if not isinstance(data, dict):
        raise PolicyLoadError(f"'{path}' must hold a JSON object, got {type(data).__name__}; retrain the policy")
    return data


def _read_verified(path: Path, want: Any) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PolicyLoadError(f"'{path}' is missing or unreadable ({e.strerror}); retrain the policy") from None
    if not isinstance(want, str) or _sha256(data) != want:
        raise PolicyLoadError(f"'{path}' does not match the sha256 recorded in {POLICY_JSON} (damaged or replaced); "
                              "restore the original file or retrain the policy")
    return data


def _safetensors(data: bytes, path: Path) -> dict[str, torch.Tensor]:
    try:
        return safetensors_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise PolicyLoadError(f"'{path}' is not a readable safetensors file ({e}); retrain the policy") from None


def _field(meta: dict[str, Any], key: str, where: Path, kind: type | tuple[type, ...]) -> Any:
    if key not in meta:
        raise PolicyLoadError(f"'{where}' lacks the field '{key}'; it is not a complete darla policy record: "
                              "retrain the policy")
    value = meta[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise PolicyLoadError(f"'{where}': field '{key}' = {value!r} has the wrong type; retrain the policy")
    return value


def policy_dir(path: str | os.PathLike) -> Path:
    """The directory of a darla policy (its path, or the path of a file in it); ``PolicyLoadError`` with
    the fix for a missing policy and for an old darla policy that has only SB3's pickled ``policy.zip``."""
    p = Path(path)
    if p.is_file() and p.name in (POLICY_WEIGHTS, POLICY_JSON, LEGACY_ZIP):
        p = p.parent
    if (p / POLICY_JSON).exists() and (p / POLICY_WEIGHTS).exists():
        return p
    if (p / LEGACY_ZIP).exists():
        raise PolicyLoadError(
            f"'{p}' holds a policy.zip from an older darla (SB3's pickle format, which can run code, so it is not "
            f"loaded); convert it without unpickling (python -m agents.policy_io convert {p}) or retrain it")
    raise PolicyLoadError(
        f"no finished policy at '{path}': expected a directory with {POLICY_WEIGHTS} and {POLICY_JSON} (written by "
        "agents.train_policy / `darla train-policy`), or an SB3 .zip with --algo; train it first")


def read_policy_meta(path: str | os.PathLike) -> dict[str, Any]:
    """``policy.json`` of a darla policy directory, checked to be a darla policy record."""
    where = policy_dir(path)
    meta = _read_json(where / POLICY_JSON)
    if meta.get("format") != FORMAT:
        raise PolicyLoadError(f"'{where / POLICY_JSON}' is not a darla policy record (format {meta.get('format')!r},"
                              f" expected {FORMAT!r}); retrain the policy")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PolicyLoadError(f"'{where / POLICY_JSON}' has format_version {version!r}; this darla reads up to "
                              f"{FORMAT_VERSION}: update darla")
    return meta


def pinned_vision(meta: dict[str, Any], vision: str | os.PathLike | None, where: Path) -> Path:
    """The vision checkpoint a policy was trained on, verified by digest; ``vision`` relocates it."""
    recorded = meta.get("vision_checkpoint")
    path = Path(vision).resolve() if vision is not None else (Path(recorded) if isinstance(recorded, str) else None)
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


def _normalize_stats(meta: dict[str, Any], where: Path, obs_dim: int | None, frame_stack: int = 1
                     ) -> dict[str, Any] | None:
    """The saved VecNormalize statistics. ``obs_dim`` is the policy's (stacked) observation size; statistics
    of that size normalise the stacked vector (``stacked: True``, the order since darla stacks before it
    normalises); statistics of ``obs_dim / frame_stack`` come from a policy saved with the earlier order
    (normalise each step, then stack: ``stacked: False``), which :func:`agents.train.wrap_env` still follows."""
    norm = meta.get("normalize")
    if norm is None:
        return None
    if not isinstance(norm, dict):
        raise PolicyLoadError(f"'{where / POLICY_JSON}': field 'normalize' must be an object or null; retrain")
    path = where / NORMALIZE_WEIGHTS
    tensors = _safetensors(_read_verified(path, norm.get("sha256")), path)
    mean, var = tensors.get("obs_mean"), tensors.get("obs_var")
    sizes = () if obs_dim is None else (obs_dim,) if frame_stack == 1 or obs_dim % frame_stack else \
        (obs_dim, obs_dim // frame_stack)
    if mean is None or var is None or mean.shape != var.shape or mean.dim() != 1 \
            or (sizes and mean.numel() not in sizes):
        raise PolicyLoadError(f"'{path}' must hold obs_mean and obs_var of the (stacked) features' size "
                              f"{' or '.join(map(str, sizes)) or '?'}; retrain the policy")
    stacked = not sizes or mean.numel() == obs_dim
    try:
        clip, eps = float(norm["clip_obs"]), float(norm["epsilon"])
    except (KeyError, TypeError, ValueError):
        raise PolicyLoadError(f"'{where / POLICY_JSON}': 'normalize' needs numbers clip_obs and epsilon; retrain") \
            from None
    return {"mean": mean.numpy(), "var": var.numpy(), "clip_obs": clip, "epsilon": eps,
            "count": float(norm.get("count", 0.0)), "stacked": stacked}


def load_darla_policy(
    path: str | os.PathLike, vision: str | os.PathLike | None = None, device: str = "cpu", for_training: bool = False
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """Rebuild a policy saved by :func:`save_policy`; see :func:`agents.train.load_policy`.

    :return: ``(model, meta)``; ``meta`` is ``policy.json`` plus ``vision_model`` (or None),
        ``vision_path``, ``normalize_stats`` (or None) and ``path``
    """
    from agents.frozen import load_frozen_vision

    meta = read_policy_meta(path)
    where = policy_dir(path)
    jpath = where / POLICY_JSON
    algo = _field(meta, "algo", jpath, str)
    mode = _field(meta, "mode", jpath, str)
    if mode not in ("latent", "extractor", "pixels"):
        raise PolicyLoadError(f"'{jpath}': unknown mode {mode!r}; valid: latent, extractor, pixels; retrain")
    policy_alias = _field(meta, "policy", jpath, str)
    try:
        cls = algos.algo_class(algo)
        if policy_alias not in cls.policy_aliases:
            raise ValueError(f"policy '{policy_alias}' is not one of {', '.join(cls.policy_aliases)}")
        obs_space = space_from_json(_field(meta, "observation_space", jpath, dict), "observation_space")
        act_space = space_from_json(_field(meta, "action_space", jpath, dict), "action_space")
        pkw = algos.policy_kwargs_from_json(_field(meta, "policy_kwargs", jpath, dict))
    except ValueError as e:
        raise PolicyLoadError(f"'{jpath}': {e}; retrain the policy") from None
    akw = _field(meta, "algo_kwargs", jpath, dict)
    frame_stack = _field(meta, "frame_stack", jpath, int)
    n_envs = _field(meta, "n_envs", jpath, int)
    if frame_stack < 1 or n_envs < 1:
        raise PolicyLoadError(f"'{jpath}': frame_stack and n_envs must be >= 1; retrain the policy")
    weights_rec = _field(meta, "weights", jpath, dict)
    wpath = where / POLICY_WEIGHTS
    tensors = _safetensors(_read_verified(wpath, weights_rec.get("sha256")), wpath)

    vision_model = vision_path = None
    if mode in ("latent", "extractor"):
        vision_path = pinned_vision(meta, vision, where)
        vision_model, _, _ = load_frozen_vision(vision_path, device)
        if mode == "extractor":
            pkw["features_extractor_class"] = FrozenVisionExtractor
            pkw["features_extractor_kwargs"] = {"vision": str(vision_path), "device": device}
    obs_dim = int(np.prod(obs_space.shape)) if isinstance(obs_space, spaces.Box) else None
    norm = _normalize_stats(meta, where, obs_dim if mode == "latent" else None, frame_stack)
    try:
        model = build_algorithm(algo, policy_alias, obs_space, act_space, akw, pkw, n_envs, device, for_training)
    except (TypeError, ValueError, AssertionError) as e:
        raise PolicyLoadError(f"'{jpath}': cannot rebuild {algo} from it ({type(e).__name__}: {e}); retrain") from None
    load_policy_tensors(model, tensors, f"'{wpath}'")
    model.policy.set_training_mode(False)
    done = meta.get("num_timesteps")
    if isinstance(done, int) and not isinstance(done, bool) and done >= 0:
        model.num_timesteps = done  # so a resumed learn(reset_num_timesteps=False) and logs continue the count
    meta = {**meta, "vision_model": vision_model, "vision_path": str(vision_path) if vision_path else None,
            "normalize_stats": norm, "path": str(where)}
    return model, meta


# -- foreign SB3 zips ------------------------------------------------------------------------------------
_CLASS_REPR = re.compile(r"^<class '([A-Za-z_][\w.]*)'>$")


def _plain_entry(data: dict[str, Any], key: str) -> tuple[Any, bool]:
    """``(value, is_plain)`` of an SB3 ``data`` entry; a ``:serialized:`` entry is never decoded."""
    value = data.get(key)
    if isinstance(value, dict) and ":serialized:" in value:
        return {k: v for k, v in value.items() if k not in (":serialized:", ":type:")}, False
    return value, True


def _foreign_policy_kwargs(data: dict[str, Any], where: str) -> dict[str, Any]:
    """``policy_kwargs`` of an SB3 zip from its JSON alone. Plain ones are used as they are; a pickled
    dict (SB3 pickles it when it holds classes) is rebuilt from the plain fields SB3 writes next to the
    pickle, with each class field's printed name (``"<class 'torch.nn.modules.activation.ReLU'>"``)
    mapped through the whitelist. A class outside it (a custom features extractor) is refused."""
    value, plain = _plain_entry(data, "policy_kwargs")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyLoadError(f"{where}: policy_kwargs in its data entry is {type(value).__name__}, not a mapping")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in algos.CLASS_KEYS and isinstance(item, str):
            match = _CLASS_REPR.match(item) or re.match(r"^([A-Za-z_][\w.]*)$", item)
            try:
                out[key] = algos.class_from_name(match.group(1) if match else item, key)
            except ValueError:
                raise PolicyLoadError(
                    f"{where} was trained with policy_kwargs.{key} = {item}, a class darla cannot rebuild without "
                    "running code from the file; retrain it with a standard class (e.g. torch.nn.ReLU, NatureCNN) or "
                    "load it with SB3 yourself if you trust the file") from None
        elif key in ("features_extractor_kwargs", "optimizer_kwargs", "net_arch") and not algos._is_plain(item):
            raise PolicyLoadError(f"{where}: policy_kwargs.{key} = {item} is not plain data; darla cannot rebuild it")
        elif isinstance(item, str) and item.startswith("<") and not plain:
            raise PolicyLoadError(f"{where}: policy_kwargs.{key} = {item} is a Python object darla cannot rebuild "
                                  "without running code from the file")
        else:
            out[key] = item
    return out


def _space_summary(data: dict[str, Any], key: str) -> tuple[list[int] | None, str | None, int | None]:
    value, _ = _plain_entry(data, key)
    if not isinstance(value, dict):
        return None, None, None
    shape = value.get("_shape") if isinstance(value.get("_shape"), list) else None
    n = value.get("n")
    try:
        n = int(n) if n is not None and not isinstance(n, (list, dict)) else None
    except (TypeError, ValueError):
        n = None
    dtype = value.get("dtype") if isinstance(value.get("dtype"), str) else None
    return shape, dtype, n


def _expected_obs_shape(space: spaces.Space) -> tuple[int, ...]:
    """The observation shape SB3 records for ``space``: images transposed to channels-first
    (``VecTransposeImage``), as SB3 does when it wraps the env."""
    from stable_baselines3.common.preprocessing import (
        is_image_space,
        is_image_space_channels_first,
    )

    shape = tuple(space.shape or ())
    if is_image_space(space) and not is_image_space_channels_first(space):
        return (shape[2], shape[0], shape[1])
    return shape


def _policy_alias(cls: type[BaseAlgorithm], tensors: dict[str, Any], obs_space: spaces.Space) -> str:
    if isinstance(obs_space, spaces.Dict):
        return "MultiInputPolicy"
    if any(".cnn." in k for k in tensors) and "CnnPolicy" in cls.policy_aliases:
        return "CnnPolicy"
    return "MlpPolicy"


def _infer_algo(data: dict[str, Any]) -> str | None:
    value, _ = _plain_entry(data, "policy_class")
    module = value.get("__module__") if isinstance(value, dict) else None
    if isinstance(module, str):
        parts = module.split(".")
        for part in parts:
            if part in algos.algo_names() and part not in ("ppo", "a2c", "trpo"):  # those share common.policies
                return part
    return None


def _read_sb3_zip(path: str | os.PathLike, where: str) -> tuple[dict[str, Any], dict[str, torch.Tensor], str | None]:
    """``(data JSON, policy state_dict, SB3 version)`` of a zip written by SB3's ``model.save``: the ``data``
    entry parsed as JSON only, ``policy.pth`` through ``torch.load(weights_only=True)``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "policy.pth" not in names:
                raise PolicyLoadError(f"{where} has no policy.pth; it is not a policy saved by SB3's model.save")
            info = archive.getinfo("data") if "data" in names else None
            if info is not None and info.file_size > _MAX_JSON_BYTES:
                raise PolicyLoadError(f"{where}: its data entry is {info.file_size} bytes, too large to be SB3's JSON")
            raw = archive.read("data") if info is not None else b"{}"
            pth = archive.read("policy.pth")
            version = archive.read("_stable_baselines3_version").decode(errors="replace").strip() \
                if "_stable_baselines3_version" in names else None
    except (zipfile.BadZipFile, OSError, KeyError) as e:
        raise PolicyLoadError(f"{where} is not a readable zip ({e}); pass an SB3 model.save file") from None
    try:
        data = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PolicyLoadError(f"{where}: its data entry is not JSON ({e}); not an SB3 model.save file") from None
    if not isinstance(data, dict):
        raise PolicyLoadError(f"{where}: its data entry is not a JSON object; not an SB3 model.save file")
    try:
        state = torch.load(io.BytesIO(pth), map_location="cpu", weights_only=True)
    except Exception as e:
        raise PolicyLoadError(f"{where}: policy.pth is not a plain weights file ({type(e).__name__}); darla loads "
                              "weights only (torch.load(weights_only=True)) and refuses anything else") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise PolicyLoadError(f"{where}: policy.pth is not a state_dict of tensors")
    return data, state, version


def load_sb3_zip(
    path: str | os.PathLike,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    algo: str | None = None,
    device: str = "cpu",
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """A policy saved by SB3's ``model.save`` elsewhere, read without unpickling anything.

    The algorithm is ``algo`` (or, for DQN/SAC/TD3/... whose policy classes live in their own module, the
    module named in the zip's JSON); the spaces are the env's (the zip's are pickled); ``policy_kwargs``
    come from the zip's JSON when readable, else SB3's defaults with a warning. Weights come from
    ``policy.pth`` through ``torch.load(weights_only=True)``.

    :param path: the ``.zip``
    :param observation_space: observation space of the env the policy acts in (raw frames; SB3 transposes
        images itself)
    :param action_space: its action space
    :param algo: algorithm name; required unless the zip names it
    :param device: torch device
    :return: ``(model, meta)`` with ``meta["mode"] == "native"`` (observations passed through unchanged)
    """
    where = f"SB3 zip '{path}'"
    data, state, version = _read_sb3_zip(path, where)
    name = algo or _infer_algo(data)
    if name is None:
        raise PolicyLoadError(f"{where} does not say which algorithm made it; pass --algo (one of "
                              f"{', '.join(algos.algo_names())})")
    try:
        cls = algos.algo_class(name)
        algos.check_action_space(name, action_space)
    except ValueError as e:
        raise PolicyLoadError(f"{where}: {e}") from None
    shape, _, _ = _space_summary(data, "observation_space")
    want = list(_expected_obs_shape(observation_space))
    if shape is not None and shape != want:
        raise PolicyLoadError(f"{where} was trained on observations of shape {shape}, but the env gives {want} "
                              "(after SB3's image transposition); evaluate it on the env it was trained on (--env)")
    ashape, _, an = _space_summary(data, "action_space")
    if isinstance(action_space, spaces.Discrete) and an is not None and an != int(action_space.n):
        raise PolicyLoadError(f"{where} acts with {an} discrete actions, but the env has {action_space.n}; "
                              "evaluate it on the env it was trained on (--env)")
    if isinstance(action_space, spaces.Box) and ashape is not None and ashape != list(action_space.shape):
        raise PolicyLoadError(f"{where} acts with actions of shape {ashape}, but the env's are "
                              f"{list(action_space.shape)}; evaluate it on the env it was trained on (--env)")

    pkw = _foreign_policy_kwargs(data, where)
    if "policy_kwargs" not in data:
        logger.warning("%s records no policy_kwargs; rebuilding its policy with SB3's defaults", where)
    akw: dict[str, Any] = {}
    valid = _init_parameters(cls)
    for key in ("use_sde", "sde_sample_freq"):  # they change the policy's structure (gSDE's log_std)
        if key in valid and isinstance(data.get(key), (bool, int)):
            akw[key] = data[key]
    alias = _policy_alias(cls, state, observation_space)
    try:
        model = build_algorithm(name, alias, observation_space, action_space, akw, pkw, 1, device)
    except (TypeError, ValueError, AssertionError) as e:
        raise PolicyLoadError(f"{where}: cannot rebuild {name} {alias} for the env's spaces ({e})") from None
    load_policy_tensors(model, state, where, fix=f"it was not saved by {name} for these spaces and policy_kwargs; "
                        "check --algo and --env (the env it was trained on)")
    model.policy.set_training_mode(False)
    meta = {"mode": "native", "algo": algos.canonical_algo(name), "path": str(path), "format": "sb3-zip",
            "sb3_version": version, "policy": alias, "train_domains": [], "policy_kwargs":
            algos.policy_kwargs_to_json(pkw), "vision_model": None, "normalize_stats": None, "frame_stack": 1}
    return model, meta


# -- policies of older darla versions (policy.zip) --------------------------------------------------------
def convert_legacy_policy(path: str | os.PathLike, vision: str | os.PathLike | None = None) -> Path:
    """Convert a policy directory of an older darla (SB3's ``policy.zip`` + its ``policy.json``) to
    ``policy.safetensors`` + a new ``policy.json``, without unpickling: the zip is read like a foreign one
    (:func:`_read_sb3_zip`), the spaces come from the old record (frame shape; latent size from the pinned
    vision checkpoint) and the zip's plain action-space fields. ``policy.zip`` is left in place.

    :param path: the policy directory (or its ``policy.zip``)
    :param vision: a relocated copy of its vision checkpoint (same digest)
    :return: the directory, now loadable with :func:`agents.train.load_policy`
    """
    from agents.frozen import load_frozen_vision
    from agents.latent import latent_space

    where = Path(path)
    where = where.parent if where.is_file() else where
    if (where / POLICY_WEIGHTS).exists():
        return where  # already converted (or written by this darla)
    zpath, jpath = where / LEGACY_ZIP, where / POLICY_JSON
    if not zpath.exists() or not jpath.exists():
        raise PolicyLoadError(f"'{where}' is not an older darla policy (expected {LEGACY_ZIP} and {POLICY_JSON})")
    old = _read_json(jpath)
    algo, mode = _field(old, "algo", jpath, str), _field(old, "mode", jpath, str)
    if mode not in ("latent", "extractor", "pixels"):
        raise PolicyLoadError(f"'{jpath}': unknown mode {mode!r}; retrain the policy")
    where_zip = f"old darla policy '{zpath}'"
    data, state, _ = _read_sb3_zip(zpath, where_zip)
    _, _, n = _space_summary(data, "action_space")
    if n is None:
        raise PolicyLoadError(f"{where_zip}: its action space is not a plain Discrete one (older darla trained ppo, "
                              "a2c, dqn on Discrete actions); retrain the policy")
    action_space = spaces.Discrete(n)
    vision_path = None
    if mode == "pixels":
        obs_space = spaces.Box(0, 255, tuple(_ints(_field(old, "obs_shape", jpath, list), "obs_shape")), np.uint8)
    else:
        vision_path = pinned_vision(old, vision, where)
        if mode == "latent":
            obs_space = latent_space(load_frozen_vision(vision_path)[0].feature_dim)
        else:
            obs_space = spaces.Box(0, 255, tuple(_ints(_field(old, "obs_shape", jpath, list), "obs_shape")), np.uint8)
    user = dict(data)
    value, _ = _plain_entry(data, "policy_kwargs")
    if isinstance(value, dict):  # the frozen-vision extractor is rebuilt from the mode, not from the zip
        user["policy_kwargs"] = {k: v for k, v in value.items() if not k.startswith("features_extractor")}
    pkw = _foreign_policy_kwargs(user, where_zip)
    build_kw = dict(pkw)
    if mode == "extractor":
        build_kw.update(features_extractor_class=FrozenVisionExtractor,
                        features_extractor_kwargs={"vision": str(vision_path), "device": "cpu"})
    alias = "CnnPolicy" if mode == "pixels" else "MlpPolicy"
    akw = _field(old, "algo_kwargs", jpath, dict)
    n_envs = old.get("n_envs") if isinstance(old.get("n_envs"), int) and old["n_envs"] >= 1 else 1
    try:
        model = build_algorithm(algo, alias, obs_space, action_space, akw, build_kw, n_envs)
    except (TypeError, ValueError, AssertionError) as e:
        raise PolicyLoadError(f"'{jpath}': cannot rebuild {algo} from it ({type(e).__name__}: {e}); retrain") from None
    prefixes = _vision_prefixes(model.policy)
    state = {k: v for k, v in state.items() if not any(k.startswith(p) for p in prefixes)}  # pinned vision wins
    load_policy_tensors(model, state, where_zip, fix="retrain the policy")
    meta = {**{k: v for k, v in old.items() if k not in ("format", "format_version", "weights", "normalize")},
            "policy": alias, "observation_space": space_to_json(obs_space), "action_space": space_to_json(action_space),
            "policy_kwargs": algos.policy_kwargs_to_json(pkw), "frame_stack": 1, "n_envs": n_envs,
            "converted_from": LEGACY_ZIP}
    if vision_path is not None:
        meta["vision_checkpoint"] = str(vision_path)
    save_policy(model, where, meta)
    logger.info("converted %s to %s + %s (nothing unpickled)", zpath, POLICY_WEIGHTS, POLICY_JSON)
    return where


def main(argv: list[str] | None = None) -> int:
    """``python -m agents.policy_io convert DIR [DIR ...]``: convert older darla policy directories."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m agents.policy_io",
                                     description="convert older darla policy directories (policy.zip) to "
                                     "policy.safetensors + policy.json without unpickling")
    parser.add_argument("command", choices=["convert"])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--vision", type=Path, default=None, help="relocated vision checkpoint (same digest)")
    args = parser.parse_args(argv)
    for d in args.dirs:
        try:
            print(f"converted: {convert_legacy_policy(d, args.vision)}")
        except PolicyLoadError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
