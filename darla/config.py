"""Run configuration: nested dataclasses read from YAML, overridden by ``--set key=value``, validated
with errors that name the field.

The default config (``RunConfig()``, also ``configs/default.yaml``) is the one ``darla run`` uses: it
finishes on 2 CPU cores in minutes and learns the default ``choice`` layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the field and the fix."""


@dataclass
class EnvConfig:
    #: image side of observations (power of two, >= 16)
    obs_size: int = 64
    #: SeekAvoid layout: ``choice`` (fast, default) or ``collect`` (DARLA-faithful)
    layout: str = "choice"


@dataclass
class CollectConfig:
    frames: int = 20_000
    split: str = "source"
    workers: int = 2
    policy: str = "random"


@dataclass
class VisionStageConfig:
    model: str = "beta_vae_dae"
    steps: int = 4000
    batch_size: int = 64
    lr: float = 5e-4
    #: iterations of the DAE that β-VAE_DAE measures reconstruction with (trained first)
    dae_steps: int = 1500
    #: model config overrides, e.g. ``{beta: 4.0, latents: 10}``; empty = the model's own defaults
    #: (for ``beta_vae_dae`` those are DARLA's recipe: 32 latents, β = 1, J = DAE conv 4)
    model_config: dict = field(default_factory=dict)
    #: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 where the model is checked for it and the CPU/GPU
    #: runs bf16 natively); see ``vision.train.resolve_precision`` and ``benchmarks/results/precision.json``
    precision: str = "fp32"


@dataclass
class PolicyConfig:
    algo: str = "ppo"
    #: ``latent`` (frozen vision, encoder run once per env step), ``extractor`` (frozen vision inside
    #: the policy), or ``pixels`` (end-to-end CnnPolicy baseline, no vision stage)
    mode: str = "latent"
    steps: int = 100_000
    n_envs: int = 4
    #: training seeds: one policy per seed
    seeds: list = field(default_factory=lambda: [0])
    #: extra keyword arguments for the SB3 algorithm
    algo_kwargs: dict = field(default_factory=dict)
    #: the domains policies train in (a split, domain names or YAML files, like ``collect.split``); empty:
    #: ``collect.split``. A narrower set than stage 1's lets the vision see variation the policy never sees,
    #: as in DARLA (vision learns from a set of MDPs, the policy acts in a source domain).
    domains: str = ""


@dataclass
class EvaluateConfig:
    domains: str = "source,target"
    episodes: int = 40
    deterministic: bool = True


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "cpu"
    env: EnvConfig = field(default_factory=EnvConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    vision: VisionStageConfig = field(default_factory=VisionStageConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def validate(self) -> None:
        _check(self.env.obs_size >= 16 and self.env.obs_size & (self.env.obs_size - 1) == 0,
               "env.obs_size", self.env.obs_size, "a power of two >= 16, e.g. 64")
        _check(self.env.layout in ("choice", "collect"), "env.layout", self.env.layout, "'choice' or 'collect'")
        _check(self.collect.frames >= 1, "collect.frames", self.collect.frames, "a positive integer")
        _check(self.collect.workers >= 1, "collect.workers", self.collect.workers, "a positive integer")
        _check(self.collect.policy in ("random", "explore"), "collect.policy", self.collect.policy,
               "'random' or 'explore'")
        _check(self.collect.split not in ("target", "cam-target", "hard", "cam-hard", "shifted"), "collect.split",
               self.collect.split, "a source split ('source', 'cam-source'): stage-1 data must not contain the "
               "target domains")
        _check(self.vision.steps >= 1, "vision.steps", self.vision.steps, "a positive integer")
        _check(self.vision.batch_size >= 2, "vision.batch_size", self.vision.batch_size, "an integer >= 2")
        _check(self.vision.lr > 0, "vision.lr", self.vision.lr, "a positive float")
        _check(self.vision.dae_steps >= 1, "vision.dae_steps", self.vision.dae_steps, "a positive integer")
        _check(self.vision.precision in ("auto", "fp32", "bf16"), "vision.precision", self.vision.precision,
               "one of auto, fp32, bf16")
        _check(self.policy.algo in ("ppo", "a2c", "dqn"), "policy.algo", self.policy.algo, "one of ppo, a2c, dqn")
        _check(self.policy.mode in ("latent", "extractor", "pixels"), "policy.mode", self.policy.mode,
               "one of latent, extractor, pixels")
        _check(self.policy.mode != "pixels" or self.env.obs_size >= 64, "env.obs_size", self.env.obs_size,
               "64 or more for policy.mode=pixels (SB3's CnnPolicy, NatureCNN, needs images of at least 36 px)")
        _check(self.policy.steps >= 1, "policy.steps", self.policy.steps, "a positive integer")
        _check(self.policy.n_envs >= 1, "policy.n_envs", self.policy.n_envs, "a positive integer")
        _check(len(self.policy.seeds) >= 1 and all(isinstance(s, int) for s in self.policy.seeds)
               and len(set(self.policy.seeds)) == len(self.policy.seeds),  # a repeat would count one policy twice
               "policy.seeds", self.policy.seeds, "a non-empty list of distinct integers, e.g. [0, 1, 2]")
        _check(self.evaluate.episodes >= 1, "evaluate.episodes", self.evaluate.episodes, "a positive integer")
        _check(self.device == "cpu" or self.device.startswith(("cuda", "mps")), "device", self.device,
               "cpu, cuda, cuda:N or mps")

    @property
    def train_domains(self) -> str:
        """The domain spec policies train in: ``policy.domains``, or ``collect.split`` when it is empty."""
        return self.policy.domains or self.collect.split

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config field '{name}' = {value!r} is invalid: expected {expected}")


def from_dict(data: dict[str, Any], cls: type = RunConfig, prefix: str = "") -> Any:
    """Build a (nested) config dataclass from a dict; unknown keys and wrong types name the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"unknown config field '{path}'; valid fields here: {', '.join(sorted(known))}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(value, hint, prefix=f"{path}.")
        else:
            kwargs[key] = _coerce(path, value, hint)
    return cls(**kwargs)


def _coerce(path: str, value: Any, hint: Any) -> Any:
    base = typing.get_origin(hint) or hint
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if base in (str, bool, list, dict) and isinstance(value, base):
        return value
    if base is list and isinstance(value, (int, str)):  # --set policy.seeds=3 → [3]
        return [value]
    name = getattr(base, "__name__", str(base))
    raise ConfigError(f"config field '{path}' expects {name}, got {value!r} ({type(value).__name__})")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; read it as the float everyone means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` that also reads ``1e-4`` as a float (config files and ``--set`` values)."""
    return yaml.load(text, Loader=_Loader)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the defaults), apply ``key=value`` overrides, validate."""
    data: dict[str, Any] = RunConfig().to_dict()
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file '{path}' does not exist")
        try:
            loaded = parse_yaml(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file '{path}' is not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping of sections, got {type(loaded).__name__}")
        _merge(data, loaded, "")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' must look like key=value, e.g. policy.steps=50000")
        value = parse_yaml(raw) if raw != "" else ""
        _merge(data, _nest(key.strip().split("."), value), "")
    config = from_dict(data)
    config.validate()
    return config


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    out: Any = value
    for k in reversed(keys):
        out = {k: out}
    return out


def _merge(base: dict[str, Any], update: dict[str, Any], prefix: str) -> None:
    """Recursive merge of ``update`` into ``base``; the free-form dicts (model config, algorithm kwargs)
    are merged key by key."""
    for key, value in update.items():
        path = f"{prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(f"unknown config field '{path}'; valid fields here: {known}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            if key in FREE_FORM:
                base[key] = _merge_free_form(base[key], value)
            else:
                _merge(base[key], value, f"{path}.")
        else:
            base[key] = value


#: dict fields whose keys belong to a model or an SB3 algorithm (checked there, not here)
FREE_FORM = ("model_config", "algo_kwargs")


def _merge_free_form(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Key-by-key (nested) merge, so ``--set policy.algo_kwargs.n_steps=64 --set
    policy.algo_kwargs.batch_size=32`` keeps both."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge_free_form(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) \
            else value
    return out


def stage_key(*parts: Any) -> str:
    """A short, stable digest of a stage's inputs (its config and upstream keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
