"""SB3 algorithms by name, their fit to an action space, and their keyword arguments as plain JSON.

Stage 2 takes any stable-baselines3 algorithm (``ppo``, ``a2c``, ``dqn``, ``sac``, ``td3``, ``ddpg``) and,
when ``sb3-contrib`` is installed, its algorithms (``qrdqn``, ``tqc``, ``trpo``, ``ars``, ``crossq``).
:func:`check_algo` validates a name, its ``algo_kwargs`` and ``policy_kwargs`` against the SB3 signatures
and the action space before any work starts, so a config typo fails in a second, not after training.

``policy_kwargs`` live in YAML and in ``policy.json``, so their class-valued entries
(``activation_fn``, ``features_extractor_class``, ``optimizer_class``) are written as names and mapped
through a whitelist (:data:`CLASS_NAMES`): ``"ReLU"``, ``"nn.ReLU"`` and ``"torch.nn.ReLU"`` all mean
``torch.nn.ReLU``. Nothing outside the whitelist is ever imported from a name, so a config or a policy
file cannot name arbitrary code.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from typing import Any

from gymnasium import spaces
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.torch_layers import (
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
)
from torch import nn, optim

logger = logging.getLogger(__name__)

#: stable-baselines3's algorithms
SB3_ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC, "td3": TD3,
                                             "ddpg": DDPG}
#: sb3-contrib's algorithms that work on darla's paths (a policy acting on one observation at a time);
#: RecurrentPPO needs its LSTM state threaded through evaluation and MaskablePPO action masks: not here
CONTRIB_ALGOS = {"qrdqn": "QRDQN", "tqc": "TQC", "trpo": "TRPO", "ars": "ARS", "crossq": "CrossQ"}
NOT_SUPPORTED = {
    "recurrentppo": "RecurrentPPO needs its LSTM state carried from step to step, which darla's evaluation "
                    "(model.predict on one observation) does not do; use ppo with policy.frame_stack instead",
    "maskableppo": "MaskablePPO needs action masks from the env, which darla's envs do not provide; use ppo",
}

#: action spaces each algorithm supports (from the ``supported_action_spaces`` of their constructors)
_ANY = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
ACTION_SPACES: dict[str, tuple[type[spaces.Space], ...]] = {
    "ppo": _ANY, "a2c": _ANY, "trpo": _ANY, "ars": (spaces.Box, spaces.Discrete),
    "dqn": (spaces.Discrete,), "qrdqn": (spaces.Discrete,),
    "sac": (spaces.Box,), "td3": (spaces.Box,), "ddpg": (spaces.Box,), "tqc": (spaces.Box,), "crossq": (spaces.Box,),
}

#: Darla's defaults per algorithm (SB3's for everything not listed). Chosen for SeekAvoid ``choice``
#: (episodes <= 60 steps, sparse +-1 at the end). PPO follows the Atari PPO recipe (Schulman et al. 2017;
#: cleanrl's ppo_atari: batch 256, 4 epochs, lr 2.5e-4, entropy 0.01, gamma 0.99, GAE 0.95, clip 0.2)
#: with 256 steps per env, so a 4-env rollout (1024 steps) holds >= 17 whole episodes and 100k steps are
#: ~98 updates. A2C: SB3/Atari defaults plus the same entropy bonus. The off-policy algorithms keep a
#: replay buffer small enough for 64x64x3 frames on a laptop (50k x 12 KB x 2 ~ 1.2 GB for pixels; tiny
#: for latents) instead of SB3's 1M.
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": dict(n_steps=256, batch_size=256, n_epochs=4, learning_rate=2.5e-4, ent_coef=0.01, gamma=0.99,
                gae_lambda=0.95, clip_range=0.2),
    "a2c": dict(n_steps=16, learning_rate=7e-4, ent_coef=0.01, gamma=0.99),
    "dqn": dict(buffer_size=50_000, learning_starts=1_000, batch_size=64, train_freq=4, target_update_interval=1_000,
                exploration_fraction=0.2, exploration_final_eps=0.05, learning_rate=1e-4, gamma=0.99),
    "qrdqn": dict(buffer_size=50_000, learning_starts=1_000),
    "sac": dict(buffer_size=50_000, learning_starts=1_000),
    "td3": dict(buffer_size=50_000, learning_starts=1_000),
    "ddpg": dict(buffer_size=50_000, learning_starts=1_000),
    "tqc": dict(buffer_size=50_000, learning_starts=1_000),
    "crossq": dict(buffer_size=50_000, learning_starts=1_000),
}
OFF_POLICY = ("dqn", "qrdqn", "sac", "td3", "ddpg", "tqc", "crossq")

#: constructor arguments darla sets itself (not from algo_kwargs)
_RESERVED = {"self", "policy", "env", "policy_kwargs", "seed", "device", "verbose", "tensorboard_log",
             "_init_setup_model"}
#: policy constructor arguments SB3 fills in itself
_POLICY_RESERVED = {"self", "observation_space", "action_space", "lr_schedule", "use_sde"}


def _class_names() -> dict[str, type]:
    classes: list[tuple[str, type]] = [
        *((f"torch.nn.{c.__name__}", c) for c in (nn.ReLU, nn.Tanh, nn.ELU, nn.LeakyReLU, nn.SiLU, nn.GELU,
                                                  nn.Sigmoid, nn.Mish, nn.SELU, nn.Softplus, nn.Identity)),
        *((f"torch.optim.{c.__name__}", c) for c in (optim.Adam, optim.AdamW, optim.RMSprop, optim.SGD)),
        *((f"stable_baselines3.common.torch_layers.{c.__name__}", c)
          for c in (NatureCNN, FlattenExtractor, CombinedExtractor)),
    ]
    return dict(classes)


#: the only classes a name in ``policy_kwargs`` may stand for: canonical name -> class
CLASS_NAMES: dict[str, type] = _class_names()
#: ``policy_kwargs`` keys whose values are classes
CLASS_KEYS = ("activation_fn", "features_extractor_class", "optimizer_class")


def class_from_name(name: str, key: str) -> type:
    """The whitelisted class a name stands for: ``"ReLU"``, ``"nn.ReLU"``, ``"torch.nn.ReLU"``,
    ``"torch.nn.modules.activation.ReLU"`` (how SB3's zips print it) and ``"<class '...'>"`` all work.

    :param name: the name, as written in YAML or JSON
    :param key: the ``policy_kwargs`` key it came from (for the error message)
    """
    text = name.strip()
    if text.startswith("<class '") and text.endswith("'>"):
        text = text[len("<class '"):-2]
    short = text.rsplit(".", 1)[-1].lower()
    for canonical, cls in CLASS_NAMES.items():
        full = f"{cls.__module__}.{cls.__qualname__}"
        if text in (canonical, full) or (text.lower() == short and short == cls.__name__.lower()) \
                or text == f"nn.{cls.__name__}":
            return cls
    valid = ", ".join(c.rsplit(".", 1)[-1] for c in CLASS_NAMES)
    raise ValueError(f"policy_kwargs.{key} = {name!r} is not a known class; valid: {valid} "
                     "(darla maps names to classes through a whitelist and never imports a name)")


def class_name(cls: type) -> str:
    """The canonical name of a whitelisted class (for ``policy.json``)."""
    for canonical, known in CLASS_NAMES.items():
        if known is cls:
            return canonical
    raise ValueError(f"class {cls.__module__}.{cls.__qualname__} cannot be written to policy.json: darla records "
                     f"only whitelisted classes ({', '.join(c.rsplit('.', 1)[-1] for c in CLASS_NAMES)}) so that "
                     "loading a policy never imports code; use one of them or train from Python without saving")


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def policy_kwargs_from_json(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``policy_kwargs`` as SB3 takes them: class names resolved through :data:`CLASS_NAMES`, the rest
    plain JSON (``net_arch: [64, 64]`` or ``{pi: [64], vf: [64]}``, ``ortho_init``, ``log_std_init``...)."""
    out: dict[str, Any] = {}
    for key, value in (kwargs or {}).items():
        if key in CLASS_KEYS and isinstance(value, str):
            out[key] = class_from_name(value, key)
        elif key in CLASS_KEYS and isinstance(value, type):
            class_name(value)  # whitelisted?
            out[key] = value
        elif key in CLASS_KEYS:
            raise ValueError(f"policy_kwargs.{key} must be a class name (e.g. 'ReLU'), got {value!r}")
        elif _is_plain(value):
            out[key] = list(value) if isinstance(value, tuple) else value
        else:
            raise ValueError(f"policy_kwargs.{key} = {value!r} is not plain data (numbers, strings, lists, "
                             f"mappings) nor a class name ({', '.join(CLASS_KEYS)}); write it as YAML/JSON")
    return out


def policy_kwargs_to_json(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The inverse of :func:`policy_kwargs_from_json`: classes -> canonical names."""
    resolved = policy_kwargs_from_json(kwargs)
    return {k: class_name(v) if isinstance(v, type) else v for k, v in resolved.items()}


def algo_names() -> list[str]:
    """Every algorithm name darla accepts here (sb3-contrib's only when it is installed)."""
    names = list(SB3_ALGOS)
    if importlib.util.find_spec("sb3_contrib") is not None:
        names += list(CONTRIB_ALGOS)
    return names


def algo_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of an algorithm name (case-insensitive); ``ValueError`` naming the valid ones."""
    name = algo.lower().replace("-", "").replace("_", "")
    if name in SB3_ALGOS:
        return SB3_ALGOS[name]
    if name in NOT_SUPPORTED:
        raise ValueError(f"algo '{algo}' is not supported: {NOT_SUPPORTED[name]}")
    if name in CONTRIB_ALGOS:
        try:
            import sb3_contrib
        except ImportError:
            raise ValueError(f"algo '{algo}' comes from sb3-contrib, which is not installed; "
                             "pip install sb3-contrib") from None
        return getattr(sb3_contrib, CONTRIB_ALGOS[name])
    raise ValueError(f"unknown algo '{algo}'; valid: {', '.join(algo_names())}; e.g. algo='ppo'")


def canonical_algo(algo: str) -> str:
    """The registry key of an algorithm name (``"SAC"`` -> ``"sac"``)."""
    cls = algo_class(algo)
    return next(k for k, v in {**SB3_ALGOS, **_contrib_classes()}.items() if v is cls)


def _contrib_classes() -> dict[str, type]:
    try:
        import sb3_contrib
    except ImportError:
        return {}
    return {k: getattr(sb3_contrib, v) for k, v in CONTRIB_ALGOS.items()}


def check_action_space(algo: str, action_space: spaces.Space) -> None:
    """``ValueError`` naming both if ``algo`` cannot act in ``action_space`` (DQN on Box, SAC on Discrete)."""
    key = canonical_algo(algo)
    ok = ACTION_SPACES.get(key, _ANY)
    if not isinstance(action_space, ok):
        fits = [a for a in algo_names() if isinstance(action_space, ACTION_SPACES.get(a, _ANY))]
        raise ValueError(
            f"algo '{algo}' needs {' or '.join(c.__name__ for c in ok)} actions, but the env's action space is "
            f"{action_space}; use one of {', '.join(fits)} (e.g. policy.algo={fits[0]}), or an env with "
            f"{ok[0].__name__} actions")


def _parameters(fn: Any) -> set[str]:
    return set(inspect.signature(fn).parameters)


def algo_kwarg_names(algo: str) -> set[str]:
    """The ``algo_kwargs`` names ``algo``'s constructor takes (those darla sets itself left out)."""
    return _parameters(algo_class(algo).__init__) - _RESERVED


def policy_kwarg_names(algo: str, policy: str = "MlpPolicy") -> set[str]:
    """The ``policy_kwargs`` names of ``algo``'s ``policy`` class; SB3 policies pass ``**kwargs`` up, so every
    named parameter along the class hierarchy counts."""
    names: set[str] = set()
    for klass in algo_class(algo).policy_aliases[policy].__mro__:
        if "__init__" in vars(klass):
            names |= _parameters(klass.__init__)
    return names - _POLICY_RESERVED - {"args", "kwargs"}


def check_algo(
    algo: str,
    algo_kwargs: dict[str, Any] | None = None,
    policy_kwargs: dict[str, Any] | None = None,
    action_space: spaces.Space | None = None,
    policy: str = "MlpPolicy",
) -> type[BaseAlgorithm]:
    """Validate an algorithm and its keyword arguments before any work; returns the SB3 class.

    Checks the name (:func:`algo_names`), ``algo_kwargs`` against the algorithm's constructor,
    ``policy_kwargs`` against its policy's constructor and the class whitelist, and, if given, that
    the algorithm can act in ``action_space``. Each failure is a one-line ``ValueError`` naming the
    argument, the bad value and the fix.

    :param algo: algorithm name, e.g. ``"ppo"``, ``"sac"``, ``"qrdqn"``
    :param algo_kwargs: keyword arguments of the algorithm (a ``policy_kwargs`` entry in them is
        accepted and counts as ``policy_kwargs``)
    :param policy_kwargs: keyword arguments of the policy (YAML-style names for classes are fine)
    :param action_space: the env's action space, if known
    :param policy: SB3 policy alias the algorithm will be built with (``MlpPolicy``, ``CnnPolicy``)
    :return: the algorithm class
    """
    cls = algo_class(algo)
    if policy not in cls.policy_aliases:
        raise ValueError(f"algo '{algo}' has no {policy} (it has {', '.join(cls.policy_aliases)}); "
                         f"use another mode or algorithm (e.g. ppo)")
    akw = dict(algo_kwargs or {})
    nested = akw.pop("policy_kwargs", None)
    valid = algo_kwarg_names(algo)
    unknown = sorted(set(akw) - valid)
    if unknown:
        raise ValueError(f"unknown algo_kwargs {unknown} for '{algo}'; valid: {', '.join(sorted(valid))}")
    pkw = {**(nested or {}), **(policy_kwargs or {})}
    resolved = policy_kwargs_from_json(pkw)
    policy_cls = cls.policy_aliases[policy]
    pvalid = policy_kwarg_names(algo, policy)
    unknown = sorted(set(resolved) - pvalid)
    if unknown:
        raise ValueError(f"unknown policy_kwargs {unknown} for '{algo}' ({policy_cls.__name__}); "
                         f"valid: {', '.join(sorted(pvalid))}")
    if action_space is not None:
        check_action_space(algo, action_space)
    return cls


def merged_kwargs(algo: str, algo_kwargs: dict[str, Any] | None, policy_kwargs: dict[str, Any] | None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(algo_kwargs, policy_kwargs)`` as training uses them: darla's defaults for ``algo`` overridden by
    ``algo_kwargs``; a ``policy_kwargs`` inside ``algo_kwargs`` merged under ``policy_kwargs`` (which wins),
    so it is passed once. Both plain JSON (class names, not classes)."""
    key = canonical_algo(algo)
    akw = {**ALGO_DEFAULTS.get(key, {}), **(algo_kwargs or {})}
    nested = akw.pop("policy_kwargs", None) or {}
    return akw, policy_kwargs_to_json({**nested, **(policy_kwargs or {})})
