"""Run configuration: nested dataclasses read from YAML, overridden by ``--set key=value``, validated
with errors that name the field.

The default config (``RunConfig()``, also ``configs/default.yaml``) is the one ``darla run`` uses: it
finishes on 2 CPU cores in minutes and learns the default ``choice`` layout.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the field and the fix."""


#: the env of the default run (SeekAvoid on miniworld, registered by ``import envs``)
DEFAULT_ENV_ID = "darla/SeekAvoid-v0"


@dataclass
class EnvConfig:
    #: gymnasium id of the environment (any registered env with image observations or ``render()``);
    #: its provider names its built-in domains and splits (generic envs: domain ``default``, split ``source``)
    id: str = DEFAULT_ENV_ID
    #: keyword arguments of every domain's ``gymnasium.make`` (a domain's own ``kwargs`` win), e.g.
    #: ``{continuous: false}`` for CarRacing-v3
    kwargs: dict = field(default_factory=dict)
    #: YAML file of domains (``domains: [...]``, optionally ``splits: {...}``); see ``envs.spec``
    domains: str = ""
    #: YAML file of splits (``splits: {source: [...], target: [...]}``); may be the same file as ``domains``
    splits: str = ""
    #: image side of observations (power of two, >= 16); any env's frames are resized to it
    obs_size: int = 64
    #: channels of the frames: 3 (RGB) or 1 (grey)
    channels: int = 3
    #: SeekAvoid layout: ``choice`` (fast, default) or ``collect`` (DARLA-faithful); other envs ignore it
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
    #: runs bf16 natively, and on a CPU with one torch thread per process, i.e. data-parallel ``workers``);
    #: see ``vision.train.resolve_precision`` and ``benchmarks/results/precision.json``
    precision: str = "auto"
    #: training processes on a CPU: ``auto`` (one per core, one torch thread each, for the models that
    #: declare ``data_parallel_safe``), or a count that divides ``batch_size`` (1: one process); see
    #: ``vision.parallel`` and ``benchmarks/results/vision.json``
    workers: int | str = "auto"


@dataclass
class PolicyConfig:
    algo: str = "ppo"
    #: ``latent`` (frozen vision, encoder run once per env step), ``extractor`` (frozen vision inside
    #: the policy), or ``pixels`` (end-to-end CnnPolicy baseline, no vision stage)
    mode: str = "latent"
    #: 40k: each of the 35 policies of results/transfer (7 vision models × 5 seeds, default source split)
    #: had a training return >= 0.97 by 30k steps (their learning_curve_s*.csv); 100k until issue #16
    steps: int = 40_000
    n_envs: int = 4
    #: training seeds: one policy per seed
    seeds: list = field(default_factory=lambda: [0])
    #: extra keyword arguments for the SB3 algorithm
    algo_kwargs: dict = field(default_factory=dict)
    #: SB3 ``policy_kwargs``, e.g. ``{net_arch: [64, 64], activation_fn: ReLU}`` (classes by name: ReLU, Tanh,
    #: ... NatureCNN, Adam; see ``agents.algos.CLASS_NAMES``)
    policy_kwargs: dict = field(default_factory=dict)
    #: stack the last N latent feature vectors (or frames for ``pixels``) as the policy's observation; 1 = none
    frame_stack: int = 1
    #: normalise latent features with SB3's VecNormalize (statistics saved and re-applied at evaluation)
    normalize: bool = False
    #: the domains policies train in (a split, domain names or YAML files, like ``collect.split``); empty:
    #: ``collect.split``. A narrower set than stage 1's lets the vision see variation the policy never sees,
    #: as in DARLA (vision learns from a set of MDPs, the policy acts in a source domain).
    domains: str = ""
    #: SB3 VecEnv of the training envs: ``subproc`` renders each env in its own worker process (the main
    #: process encodes each batch of frames once), ``dummy`` steps them in the main process, ``auto`` is
    #: ``dummy`` (faster in benchmarks/agents.py on 2 shared cores). Same observations either way, so it is
    #: not part of the policy stage's key.
    vec_env: str = "auto"


@dataclass
class EvaluateConfig:
    domains: str = "source,target"
    episodes: int = 40
    deterministic: bool = True


@dataclass
class RunConfig:
    seed: int = 0
    #: torch device of every stage (vision training, policies, evaluation): ``auto`` (cuda, else mps, else
    #: cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. Not part of any stage key: a checkpoint trained on
    #: one device is the same model on another (only rounding differs, as with thread counts).
    device: str = "auto"
    env: EnvConfig = field(default_factory=EnvConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    vision: VisionStageConfig = field(default_factory=VisionStageConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def validate(self, check_vision: bool = True) -> None:
        """Raise :class:`ConfigError` (one line: the field, the bad value, the fix) on anything that would fail
        later: ranges, the vision model and its config at this image size, the algorithm and its keyword
        arguments against its SB3 signature, domains, splits and paths.

        :param check_vision: check ``vision.model`` and ``vision.model_config`` (a sweep's base config skips it:
            its trials name the models, and each trial's config is checked before anything trains)
        """
        _check(self.env.obs_size >= 16 and self.env.obs_size & (self.env.obs_size - 1) == 0,
               "env.obs_size", self.env.obs_size, "a power of two >= 16, e.g. 64")
        _check(self.env.layout in ("choice", "collect"), "env.layout", self.env.layout, "'choice' or 'collect'")
        _check(bool(self.env.id.strip()), "env.id", self.env.id, "a registered gymnasium id, e.g. CarRacing-v3")
        _check(self.env.channels in (1, 3), "env.channels", self.env.channels, "1 (grey) or 3 (RGB)")
        for name in ("domains", "splits"):
            path = getattr(self.env, name)
            _check(not path or Path(path).is_file(), f"env.{name}", path, "an existing YAML file of domains/splits "
                   "(see envs.spec; relative to the working directory or to the config file), or empty")
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
        _check(self.policy.frame_stack >= 1, "policy.frame_stack", self.policy.frame_stack, "an integer >= 1 (1: none)")
        _check(self.vision.workers == "auto" or (isinstance(self.vision.workers, int) and self.vision.workers >= 1
               and self.vision.batch_size % self.vision.workers == 0), "vision.workers", self.vision.workers,
               f"auto or a positive integer that divides vision.batch_size ({self.vision.batch_size})")
        _check(self.vision.precision in ("auto", "fp32", "bf16"), "vision.precision", self.vision.precision,
               "one of auto, fp32, bf16")
        _check(self.policy.mode in ("latent", "extractor", "pixels"), "policy.mode", self.policy.mode,
               "one of latent, extractor, pixels")
        _check(self.policy.mode != "pixels" or self.env.obs_size >= 64, "env.obs_size", self.env.obs_size,
               "64 or more for policy.mode=pixels (SB3's CnnPolicy, NatureCNN, needs images of at least 36 px)")
        _check(self.policy.steps >= 1, "policy.steps", self.policy.steps, "a positive integer")
        _check(self.policy.n_envs >= 1, "policy.n_envs", self.policy.n_envs, "a positive integer")
        _check(len(self.policy.seeds) >= 1 and all(_is_int(s) for s in self.policy.seeds)
               and len(set(self.policy.seeds)) == len(self.policy.seeds),  # a repeat would count one policy twice
               "policy.seeds", self.policy.seeds, "a non-empty list of distinct integers, e.g. [0, 1, 2]")
        _check(self.evaluate.episodes >= 1, "evaluate.episodes", self.evaluate.episodes, "a positive integer")
        _check(self.policy.vec_env in VEC_ENVS, "policy.vec_env", self.policy.vec_env, "one of " + ", ".join(VEC_ENVS))
        check_device(self.device)
        # The checks below import the libraries that do the work (vision, SB3, envs): they catch what
        # used to fail minutes later, after collection or vision training.
        if check_vision and self.policy.mode != "pixels":  # pixel policies train no vision model
            _validate_vision(self)
        _validate_algo(self)
        _validate_domains(self)

    @property
    def resolved_device(self) -> str:
        """``device`` with ``auto`` resolved on this machine (cuda → mps → cpu), e.g. ``"cpu"``."""
        return resolve_device(self.device)

    @property
    def train_domains(self) -> str:
        """The domain spec policies train in: ``policy.domains``, or ``collect.split`` when it is empty."""
        return self.policy.domains or self.collect.split

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


VEC_ENVS = ("auto", "dummy", "subproc")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


def check_device(device: Any, name: str = "device") -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``device`` is a device spelling this machine has:
    ``auto`` and ``cpu`` always; ``cuda``/``cuda:N``/``mps`` only if torch sees that device (checked at
    start, so a missing GPU costs no collection or training).

    :param device: the requested device
    :param name: the config field or command-line option it came from, for the message
    """
    what = f"option '{name}'" if name.startswith("-") else f"config field '{name}'"
    use = f"{name} " if name.startswith("-") else f"{name}: "  # `--device cpu` on a command line, `device: cpu` in YAML
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(f"{what} = {device!r} is invalid: expected auto, cpu, cuda, cuda:N or mps")
    if device in ("auto", "cpu"):
        return  # no torch import: `--print-config` of a CPU config stays instant
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{what} = {device!r} is invalid: CUDA is not available on this machine "
                              f"(torch {torch.__version__}); use {use}auto or cpu, or install a CUDA build of torch")
        index = int(device.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"{what} = {device!r} is invalid: this machine has {count} CUDA "
                              f"device(s) (cuda:0 … cuda:{count - 1}); use {use}cuda or auto")
    elif not torch.backends.mps.is_available():
        raise ConfigError(f"{what} = {device!r} is invalid: Apple MPS is not available on this machine; "
                          f"use {use}auto or cpu")


def resolve_device(device: str, name: str = "device") -> str:
    """The torch device a run uses: ``auto`` → ``cuda`` if available, else ``mps``, else ``cpu``; any other
    value is checked with :func:`check_device` (``ConfigError`` naming ``name`` if missing) and returned.

    :param device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
    :param name: the config field or option it came from, for the message
    :return: e.g. ``"cuda"`` or ``"cpu"``
    """
    check_device(device, name)
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config field '{name}' = {value!r} is invalid: expected {expected}")


def _is_int(value: Any) -> bool:
    """An integer that is not a bool (``True`` is an ``int`` in Python, never a seed or a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _did_you_mean(bad: Any, choices: Any) -> str:
    """``"did you mean X? "`` for the closest of ``choices`` (difflib), or ``""``."""
    close = difflib.get_close_matches(str(bad), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]}? " if close else ""


def _validate_vision(config: RunConfig) -> None:
    """``vision.model`` is registered and ``vision.model_config`` builds that model's config dataclass at the
    run's image size and channels (so every range check of the model runs now, including those that depend on
    ``env.obs_size``, e.g. ``beta_vae_dae``'s ``dae_layer``)."""
    import vision

    name = config.vision.model
    models = vision.list_models()
    if name not in models:
        raise ConfigError(f"config field 'vision.model' = {name!r} is invalid: {_did_you_mean(name, models)}"
                          f"valid models: {', '.join(models)}")
    values = dict(config.vision.model_config)
    if name == "scan":  # darla run trains a beta_vae_dae first from model_config.visual, then the symbol VAE
        visual = values.pop("visual", {})
        _check(isinstance(visual, dict), "vision.model_config.visual", visual,
               "a mapping of beta_vae_dae config fields, e.g. {latents: 10}")
        _check_model_config(config, "beta_vae_dae", visual, "vision.model_config.visual")
        # the vocabulary comes from the seekavoid-factors dataset at run time; a stand-in lets the rest be checked
        values.setdefault("factor_names", ("factor",))
        values.setdefault("factor_sizes", (2,))
    _check_model_config(config, name, values, "vision.model_config")
    _validate_factor_models(config)


#: vision models that ``darla run`` feeds SeekAvoid's ground-truth factor dataset (``seekavoid-factors``,
#: RGB renders): they only fit SeekAvoid runs with RGB frames (``darla.pipeline.build_vision_model``)
FACTOR_MODELS = ("dc_ign", "disbm", "scan")


def _validate_factor_models(config: RunConfig) -> None:
    """``dc_ign``, ``disbm`` (unless ``manifold_weight: 0``) and ``scan`` learn from ``seekavoid-factors``
    as well as the frames: refuse them on another env (they would pair its frames with SeekAvoid's
    factors) and on grey frames (the factor renders are RGB)."""
    name = config.vision.model
    if name not in FACTOR_MODELS:
        return
    if name == "disbm" and config.vision.model_config.get("manifold_weight", 1.0) == 0:
        return  # no correspondence pairs: a plain boltzmann machine on the frames
    fix = "use ae, dae, vae, beta_vae, beta_vae_dae, beta_tcvae, factor_vae, cci_vae or infogan" + (
        ", or set vision.model_config.manifold_weight=0 (no correspondence pairs)" if name == "disbm"
        else ", or disbm with vision.model_config.manifold_weight=0")
    if config.env.id != DEFAULT_ENV_ID:
        raise ConfigError(f"config field 'vision.model' = {name!r} is invalid for env.id {config.env.id!r}: "
                          f"{name} learns from SeekAvoid's ground-truth factors (seekavoid-factors) and this env "
                          f"has none; {fix}")
    if config.env.channels != 3:
        raise ConfigError(f"config field 'vision.model' = {name!r} is invalid with env.channels "
                          f"{config.env.channels}: {name} learns from seekavoid-factors, which renders RGB; set "
                          f"env.channels=3, or {fix}")


def _check_model_config(config: RunConfig, name: str, values: dict[str, Any], field_name: str) -> None:
    from vision.base import ConfigError as ModelConfigError
    from vision.base import build_config, model_class

    cls = model_class(name).config_cls
    known = sorted(f.name for f in dataclasses.fields(cls))
    for key in values:
        if key not in known:
            raise ConfigError(f"config field '{field_name}.{key}' is unknown for model '{name}': "
                              f"{_did_you_mean(key, known)}valid fields: {', '.join(known)}")
    size = config.env.obs_size
    for key, run_value, source in (("image_size", size, "env.obs_size"), ("channels", 3, "the RGB frames")):
        _check(values.get(key, run_value) == run_value, f"{field_name}.{key}", values.get(key),
               f"to leave it out: it is set from {source} ({run_value})")
    full = {**values, "image_size": size, "channels": 3, "lr": config.vision.lr}  # as vision.train sets them
    if "dataset_size" in known and "dataset_size" not in values:
        full["dataset_size"] = max(2, config.collect.frames)
    try:
        build_config(cls, full, model=name)
    except ModelConfigError as e:
        raise ConfigError(f"config field '{field_name}' = {values!r} is invalid for model '{name}' with "
                          f"env.obs_size={size}: {e}") from None
    for key in ("dae_checkpoint", "visual_checkpoint"):
        path = values.get(key)
        _check(path is None or Path(path).is_dir(), f"{field_name}.{key}", path,
               "an existing checkpoint directory (a run's stages/vision-<key>/model), or leave it out")


def _algo_class(name: str) -> type:
    """The SB3 (or sb3-contrib) algorithm class darla trains under ``name`` (:func:`agents.algos.algo_names`)."""
    from agents.algos import algo_class, algo_names

    names = algo_names()
    if name not in names:
        raise ConfigError(f"config field 'policy.algo' = {name!r} is invalid: {_did_you_mean(name, names)}"
                          f"valid algorithms: {', '.join(names)}")
    try:
        return algo_class(name)
    except ValueError as e:  # e.g. an sb3-contrib algorithm without sb3-contrib installed
        raise ConfigError(f"config field 'policy.algo' = {name!r} is invalid: {e}") from None


def _check_kwargs(field_name: str, kwargs: Any, valid: list[str], owner: str) -> None:
    _check(isinstance(kwargs, dict), field_name, kwargs, "a mapping of keyword arguments, e.g. {n_steps: 128}")
    for key in kwargs:
        if key not in valid:
            raise ConfigError(f"config field '{field_name}.{key}' is not an argument of {owner}: "
                              f"{_did_you_mean(key, valid)}valid: {', '.join(valid)}")


def _validate_algo(config: RunConfig) -> None:
    """``policy.algo`` names an algorithm darla trains, ``policy.algo_kwargs`` are arguments of its SB3 class
    and ``policy.policy_kwargs`` arguments of its SB3 policy class (the names come from :mod:`agents.algos`,
    which training checks against too; a ``policy_kwargs`` inside ``algo_kwargs`` counts as policy kwargs).

    Then :func:`agents.algos.check_algo` has the last word: it knows the algorithms' own constraints (the
    class whitelist of ``policy_kwargs``, unsupported policies); its ``ValueError`` is reported here.
    """
    from agents.algos import algo_kwarg_names, check_algo, policy_kwarg_names

    algo = config.policy.algo
    cls = _algo_class(algo)
    algo_kwargs = config.policy.algo_kwargs
    _check(isinstance(algo_kwargs, dict), "policy.algo_kwargs", algo_kwargs,
           "a mapping of keyword arguments, e.g. {n_steps: 128}")
    nested = {k: v for k, v in algo_kwargs.items() if k != "policy_kwargs"}
    _check_kwargs("policy.algo_kwargs", nested, sorted(algo_kwarg_names(algo)), f"stable_baselines3 {cls.__name__}")
    policy_kwargs = getattr(config.policy, "policy_kwargs", None)
    alias = "CnnPolicy" if config.policy.mode == "pixels" else "MlpPolicy"
    if policy_kwargs and alias in cls.policy_aliases:
        _check_kwargs("policy.policy_kwargs", policy_kwargs, sorted(policy_kwarg_names(algo, alias)),
                      f"{cls.__name__}'s {alias} ({cls.policy_aliases[alias].__name__})")
    try:  # the algorithms' own constraints (class whitelist of policy_kwargs, recurrent/masked policies)
        check_algo(algo, algo_kwargs=dict(algo_kwargs), policy_kwargs=dict(policy_kwargs or {}), policy=alias)
    except ValueError as e:
        raise ConfigError(f"config field 'policy' is invalid for algo '{algo}': {e}") from None


def _validate_domains(config: RunConfig) -> None:
    """``collect.split``, ``policy.domains`` and ``evaluate.domains`` resolve (names, splits, YAML files that
    exist), stage-1 data holds no held-out target domain, and the policies' training domains are evaluated."""
    from darla.pipeline import domain_catalog, evaluation_domains

    catalog = domain_catalog(config)  # the run's env: its own domains/splits files, else its provider's
    try:
        collected = catalog.resolve(config.collect.split)
    except (ValueError, OSError) as e:
        raise ConfigError(f"config field 'collect.split' = {config.collect.split!r} is invalid: {e}") from None
    held_out = catalog.held_out(collected)  # by name and by value (envs.spec.DomainCatalog.held_out)
    _check(not held_out, "collect.split", config.collect.split,
           f"no held-out target domain in stage-1 data (it names {', '.join(held_out)}); use a source split "
           "('source', 'cam-source') or source domain names")
    evaluation_domains(config)


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
    if base in (typing.Union, types.UnionType):  # e.g. vision.workers: int | str
        for arg in typing.get_args(hint):
            try:
                return _coerce(path, value, arg)
            except ConfigError:
                pass
        names = " or ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(hint))
        raise ConfigError(f"config field '{path}' expects {names}, got {value!r} ({type(value).__name__})")
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


def parse_yaml(text: str, what: str | None = None) -> Any:
    """``yaml.safe_load`` that also reads ``1e-4`` as a float (config files and ``--set`` values).

    :param text: YAML text
    :param what: what the text is, for the error (e.g. ``"--set 'policy.steps=['"``); default: the text itself
    :raises ConfigError: one line naming ``what``, the YAML problem and where it is
    """
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: no Python objects are built
    except yaml.YAMLError as e:
        raise ConfigError(f"{what or repr(text)} is not valid YAML: {_yaml_problem(e)}; quote strings and close "
                          "brackets, e.g. policy.seeds=[0, 1]") from None


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A one-line account of a YAML error (PyYAML's own message spans several lines with a caret)."""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                check_vision: bool = True) -> RunConfig:
    """Read a YAML config (or the defaults), apply ``key=value`` overrides, validate.

    :param path: a YAML file of config sections (``None``: the defaults)
    :param overrides: ``key=value`` strings, values in YAML (``policy.seeds=[0, 1]``)
    :param check_vision: passed to :meth:`RunConfig.validate`
    :raises ConfigError: one line naming the file or field, the bad value and the fix
    """
    data: dict[str, Any] = RunConfig().to_dict()
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file '{path}' does not exist")
        if not path.is_file():
            raise ConfigError(f"config file '{path}' is not a file; pass a YAML file, e.g. configs/default.yaml")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file '{path}' cannot be read ({e}); pass a YAML text file") from None
        loaded = parse_yaml(text, what=f"config file '{path}'") or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping of sections, got {type(loaded).__name__}")
        _merge(data, loaded, "")
        _relative_to_config(data, path)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' must look like key=value, e.g. policy.steps=50000")
        value = parse_yaml(raw, what=f"--set '{item}'") if raw != "" else ""
        _merge(data, _nest(key.strip().split("."), value), "")
    config = from_dict(data)
    config.validate(check_vision=check_vision)
    return config


def _relative_to_config(data: dict[str, Any], config_path: Path) -> None:
    """A config file's relative ``env.domains`` / ``env.splits`` that does not exist from the working directory
    but does beside the config file is that one (``darla run --config elsewhere/my_env.yaml`` with
    ``domains: my_domains.yaml`` next to it); paths that exist from the working directory keep meaning that."""
    env = data.get("env")
    if not isinstance(env, dict):
        return
    for name in ("domains", "splits"):
        value = env.get(name)
        if isinstance(value, str) and value and not Path(value).is_absolute() and not Path(value).exists():
            beside = config_path.parent / value
            if beside.is_file():
                env[name] = str(beside)


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
FREE_FORM = ("model_config", "algo_kwargs", "policy_kwargs", "kwargs")


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
