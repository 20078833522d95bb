"""Domains for any gymnasium env: a domain is data — a name, a gymnasium env id, env kwargs and an ordered
chain of observation wrappers — and a split is a named list of domains.

A :class:`DomainSpec` makes its env (``spec.make_env(**overrides)``); a :class:`DomainCatalog` holds the
named domains and splits of one environment (its *provider*'s built-ins, plus a YAML file of yours),
resolves specs such as ``"source,target"`` or ``"my_shifts.yaml"``, guards stage-1 data against held-out
domains and builds the (multi-domain, resized) envs all three stages use. Environments that come with
domains of their own (SeekAvoid) plug in as a :class:`Provider`; any other registered env id gets the
generic provider: one domain ``default`` (the env as registered) and one split ``source``.

Domains file (``env.domains`` / ``env.splits`` in a run config; both keys may live in one file)::

    domains:
      - name: plain                      # unique name (required)
        env_id: MiniWorld-OneRoom-v0     # default: the catalog's env id (env.id)
        kwargs: {}                       # gymnasium.make keyword arguments (merged over env.kwargs)
        wrappers: []                     # ordered observation wrappers (envs.wrappers.WRAPPERS)
      - name: hue
        wrappers:
          - {name: hue_shift, degrees: 90}
      - name: jitter
        wrappers:
          - {name: color_jitter, brightness: 0.4, seed: 1}
    splits:
      source: [plain]                   # a split named ``source`` or ``*-source`` is trained on;
      target: [hue, jitter]             # every other split is held out of stage-1 data

A split entry is a domain name or an inline domain mapping. Observations that are not images are replaced
by the env's ``render()`` (``gymnasium.wrappers.AddRenderObservation``, render mode ``rgb_array``): the
vision learns from what the env draws.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from envs.moved import current_name
from envs.wrappers import FrameResize, apply_wrapper, check_wrapper_spec

#: the gymnasium id of the env every stage makes: :func:`make_domains_env` (registered by ``import envs``)
DOMAINS_ENV_ID = "darla/Domains-v0"


def _canonical(value: Any, what: str) -> Any:
    """A JSON-able copy of ``value`` with sorted keys (so equal specs compare and digest equal)."""
    try:
        return json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be plain data (numbers, strings, lists, mappings), got {value!r} ({e})") from None


@dataclass(frozen=True, eq=True)
class DomainSpec:
    """One domain of any gymnasium env, by value.

    :param name: unique name, e.g. ``"hue-90"`` (reports and ``info["domain"]`` use it)
    :param env_id: a registered gymnasium id, e.g. ``"MiniWorld-OneRoom-v0"``
    :param kwargs: keyword arguments of ``gymnasium.make`` (plain data)
    :param wrappers: ordered observation wrappers as mappings, e.g. ``({"name": "hue_shift", "degrees": 90},)``
        (names: :data:`envs.wrappers.WRAPPERS`)
    """

    name: str
    env_id: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    wrappers: Sequence[Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or "," in self.name:
            raise ValueError(f"domain name must be a non-empty string without commas, got {self.name!r}")
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"domain {self.name!r}: env_id must be a registered gymnasium id, got {self.env_id!r}")
        if not isinstance(self.kwargs, Mapping):
            raise ValueError(f"domain {self.name!r}: kwargs must be a mapping, got {self.kwargs!r}")
        object.__setattr__(self, "kwargs", _canonical(dict(self.kwargs), f"domain {self.name!r}: kwargs"))
        if isinstance(self.wrappers, (str, Mapping)) or not isinstance(self.wrappers, Iterable):
            raise ValueError(f"domain {self.name!r}: wrappers must be a list of mappings like "
                             f"{{name: hue_shift, degrees: 30}}, got {self.wrappers!r}")
        try:
            wrappers = tuple(_canonical(check_wrapper_spec(w), "wrapper") for w in self.wrappers)
        except ValueError as e:
            raise ValueError(f"domain {self.name!r}: {e}") from None
        object.__setattr__(self, "wrappers", wrappers)

    def __hash__(self) -> int:
        return hash((self.name, self.value_key()))

    def value_key(self) -> str:
        """The domain's content without its name (env id, kwargs, wrappers) as canonical JSON: two domains
        with equal keys render the same frames, whatever they are called. A ``name`` inside a kwarg mapping
        that equals the domain's name is a label too (SeekAvoid's ``domain`` kwarg) and is left out."""
        kwargs = {k: ({kk: vv for kk, vv in v.items() if not (kk == "name" and vv == self.name)}
                      if isinstance(v, dict) else v) for k, v in self.kwargs.items()}
        return json.dumps([self.env_id, kwargs, list(self.wrappers)], sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping; ``DomainSpec.from_dict(d.to_dict()) == d``."""
        return {"name": self.name, "env_id": self.env_id, "kwargs": dict(self.kwargs),
                "wrappers": [dict(w) for w in self.wrappers]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], env_id: str | None = None) -> DomainSpec:
        """Build from a mapping (the schema in the module docstring); ``env_id`` is the default env id."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a domain must be a mapping with at least 'name', got {d!r}")
        valid = {"name", "env_id", "kwargs", "wrappers"}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ValueError(f"domain {d.get('name', '?')!r}: unknown key(s) {unknown}; valid: {', '.join(sorted(valid))}")
        if "name" not in d:
            raise ValueError(f"domain {dict(d)!r} has no 'name'; add e.g. name: hue-90")
        eid = d.get("env_id", env_id)
        if eid is None:
            raise ValueError(f"domain {d['name']!r} has no env_id; add env_id: <a registered gymnasium id>")
        return cls(name=d["name"], env_id=eid, kwargs=d.get("kwargs") or {}, wrappers=d.get("wrappers") or ())

    def make_env(self, **overrides: Any) -> gymnasium.Env:
        """The domain's env: ``gymnasium.make(env_id, **kwargs, **overrides)`` (``render()`` as the observation
        when the env's observation is not an image), then the wrappers in order; ``info["domain"]`` is the
        domain's name.

        :param overrides: keyword arguments of ``gymnasium.make`` that win over the domain's ``kwargs``
        """
        kwargs = {**self.kwargs, **overrides}
        ensure_registered(self.env_id)
        try:
            env = gymnasium.make(self.env_id, **kwargs)
        except gymnasium.error.DependencyNotInstalled as e:
            hint = " (gymnasium's Box2D envs: pip install 'darla[box2d]')" if "box2d" in str(e).lower() else ""
            raise ValueError(f"domain {self.name!r}: env {self.env_id!r} needs a package that is not installed: "
                             f"{e}{hint}") from None
        except gymnasium.error.Error as e:
            raise ValueError(f"domain {self.name!r}: cannot make env {self.env_id!r} ({e}); is it registered "
                             "(import the module that registers it, or set env.id to a registered id)?") from None
        except TypeError as e:  # a keyword the env's constructor does not take
            raise EnvKwargsError(f"domain {self.name!r}: env {self.env_id!r} rejects its keyword arguments "
                             f"{sorted(kwargs)} ({e}); fix env.kwargs or the domain's kwargs") from None
        if not is_image_space(env.observation_space):
            if env.render_mode != "rgb_array":
                env.close()
                env = gymnasium.make(self.env_id, **{**kwargs, "render_mode": "rgb_array"})
            env = gymnasium.wrappers.AddRenderObservation(env, render_only=True)
        if type(env.unwrapped).__module__.split(".")[0] == "miniworld":
            # miniworld's envs share one GL display list per process; each gets its own (envs.miniworld_gl)
            from envs.miniworld_gl import own_display_list

            own_display_list(env.unwrapped)
        for w in self.wrappers:
            try:
                env = apply_wrapper(env, w)
            except ValueError as e:
                env.close()
                raise ValueError(f"domain {self.name!r}: {e}") from None
        return DomainLabel(env, self.name)


class EnvKwargsError(ValueError, TypeError):
    """An env's constructor rejects a keyword argument: a ``ValueError`` with the domain and the fix for darla's
    callers, and still a ``TypeError`` for those that probe with ``render_mode`` and retry without it
    (stable-baselines3's ``make_vec_env``)."""


#: modules that register env ids with these prefixes when imported (ids of packages without gymnasium
#: entry points); any other package: name its module in the id, ``"my_pkg.envs:MyEnv-v0"``
REGISTERING_MODULES = {"MiniWorld-": "miniworld", "ALE/": "ale_py"}


def ensure_registered(env_id: str) -> None:
    """Import the module that registers ``env_id`` if it is a known third-party id not registered yet
    (``MiniWorld-*``: ``miniworld``), so ``env.id: MiniWorld-OneRoom-v0`` works without a plugin."""
    if ":" in env_id or env_id in gymnasium.registry:
        return
    for prefix, module in REGISTERING_MODULES.items():
        if env_id.startswith(prefix):
            try:
                importlib.import_module(module)
            except ImportError:
                pass  # gymnasium.make then names the missing id
            return


def is_image_space(space: gymnasium.Space) -> bool:
    """Whether observations of ``space`` are uint8 images: (H, W) or (H, W, C) with C in 1, 3, 4."""
    return (isinstance(space, spaces.Box) and space.dtype == np.uint8
            and (len(space.shape) == 2 or (len(space.shape) == 3 and space.shape[2] in (1, 3, 4))))


class DomainLabel(gymnasium.Wrapper):
    """Sets ``info["domain"]`` to the domain's name (unless the env reports one itself)."""

    def __init__(self, env: gymnasium.Env, name: str):
        super().__init__(env)
        self.domain_name = name
        self.domains = [name]

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        info.setdefault("domain", self.domain_name)
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info.setdefault("domain", self.domain_name)
        return obs, reward, terminated, truncated, info


class DomainMixture(gymnasium.Env):
    """Several domains as one env: each episode shows one, drawn from a seeded stream (as SeekAvoid's own
    multi-domain env does), so collection and training see every source domain.

    ``reset(seed=s)`` re-seeds the stream; every reset draws the domain and a seed for that domain's env, so
    an episode is a function of the seeds only. ``info["domain"]`` names the episode's domain.

    :param envs: one env per domain (equal observation and action spaces)
    :param names: their domain names
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, envs: Sequence[gymnasium.Env], names: Sequence[str]):
        if not envs or len(envs) != len(names):
            raise ValueError("DomainMixture needs one env per domain name")
        first = envs[0]
        for env, name in zip(envs[1:], names[1:]):
            for what in ("observation_space", "action_space"):
                if getattr(env, what) != getattr(first, what):
                    raise ValueError(f"domains {names[0]!r} and {name!r} have different {what}s "
                                     f"({getattr(first, what)} vs {getattr(env, what)}); domains trained or collected "
                                     "together must share them (add a resize/crop wrapper, or split them)")
        self.envs, self.domains = list(envs), list(names)
        self.observation_space, self.action_space = first.observation_space, first.action_space
        self.render_mode = "rgb_array"
        self._rng = np.random.default_rng()
        self._current = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._current = int(self._rng.integers(len(self.envs)))
        sub_seed = int(self._rng.integers(2**31 - 1))
        obs, info = self.envs[self._current].reset(seed=sub_seed, options=options)
        info["domain"] = self.domains[self._current]
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.envs[self._current].step(action)
        info["domain"] = self.domains[self._current]
        return obs, reward, terminated, truncated, info

    def render(self):
        return self.envs[self._current].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()


# ------------------------------------------------------------------------------------------ providers
class Provider:
    """An environment's own domains and splits. The generic provider of an env id has one domain, ``default``
    (the env as registered), and one split, ``source``; subclasses (SeekAvoid's) add theirs.

    :param env_id: the gymnasium id
    """

    def __init__(self, env_id: str):
        self.env_id = env_id

    def domains(self) -> dict[str, DomainSpec]:
        """Built-in domains by name."""
        return {"default": DomainSpec("default", self.env_id)}

    def splits(self) -> dict[str, list[str]]:
        """Built-in splits: name → domain names."""
        return {"source": ["default"]}

    def parse(self, d: Mapping[str, Any]) -> DomainSpec:
        """A domain mapping of a YAML file (the generic schema; providers may accept their own)."""
        return DomainSpec.from_dict(d, self.env_id)

    def config_kwargs(self, obs_size: int, layout: str) -> dict[str, Any]:
        """Env kwargs this provider's envs take from the run config (none for a generic env: frames are resized)."""
        return {}

    def held_out(self, specs: Sequence[DomainSpec]) -> list[str]:
        """Provider-specific held-out rules beyond value equality with evaluation splits (none here)."""
        return []

    def make_native(self, specs: Sequence[DomainSpec]) -> gymnasium.Env | None:
        """One env showing all ``specs`` if the env can do it itself (faster than a :class:`DomainMixture`)."""
        return None

    def describe(self, spec: DomainSpec) -> Any:
        """A JSON-able description of ``spec`` for stage keys and requests (its mapping; providers may keep the
        shorter form they used before)."""
        return spec.to_dict()

    def factor_names(self) -> tuple[str, ...] | None:
        """Names of ``info["factors"]`` if known without making an env; ``None``: ask the env."""
        return None

    def revision(self) -> Any:
        """A version of the env's rendering that stage keys include (bump it to invalidate old stages)."""
        return None


_PROVIDERS: dict[str, str | type[Provider]] = {}


def register_provider(env_id: str, provider: str | type[Provider]) -> None:
    """Register the provider class (or ``"module:Class"``, imported on first use) of ``env_id``."""
    _PROVIDERS[env_id] = provider


def provider_of(env_id: str) -> Provider:
    """The provider of ``env_id`` (the generic one unless registered)."""
    p = _PROVIDERS.get(env_id, Provider)
    if isinstance(p, str):
        module, _, name = current_name(p).partition(":")
        p = getattr(importlib.import_module(module), name)
    return p(env_id)


def is_source_split_name(name: str) -> bool:
    """A split to train on: ``source`` or ``*-source``; every other split holds evaluation domains."""
    return name == "source" or name.endswith("-source")


# -------------------------------------------------------------------------------------------- catalog
def _read_yaml(path: str | Path, what: str) -> Any:
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{what} file {str(path)!r} does not exist") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{what} file {str(path)!r} is not valid YAML: {e}") from None


class DomainCatalog:
    """The named domains and splits of one environment, and the envs made from them.

    :param env_id: the gymnasium id (``env.id``)
    :param kwargs: keyword arguments of every domain's env (``env.kwargs``; a domain's own kwargs win)
    :param domains_file: YAML file with ``domains:`` (and optionally ``splits:``), see the module docstring
    :param splits_file: YAML file with ``splits:`` (and optionally ``domains:``)
    :param obs_size: side of the square frames every env returns (``FrameResize``)
    :param channels: 3 (RGB) or 1 (grey)
    :param layout: SeekAvoid's layout (passed to providers that take it)
    """

    def __init__(self, env_id: str, kwargs: Mapping[str, Any] | None = None, domains_file: str | Path | None = None,
                 splits_file: str | Path | None = None, obs_size: int = 64, channels: int = 3, layout: str = "choice"):
        self.env_id = env_id
        self.provider = provider_of(env_id)
        self.obs_size, self.channels = int(obs_size), int(channels)
        base = dict(self.provider.config_kwargs(self.obs_size, layout))
        base.update(_canonical(dict(kwargs or {}), "env.kwargs"))
        self.base_kwargs = base
        self._domains: dict[str, DomainSpec] = dict(self.provider.domains())
        self._splits: dict[str, list[str]] = {k: list(v) for k, v in self.provider.splits().items()}
        self._file_splits: set[str] = set()
        for path in dict.fromkeys(p for p in (domains_file, splits_file) if p):
            self._load_file(path)

    # -- files -------------------------------------------------------------------------------------
    def _load_file(self, path: str | Path) -> None:
        data = _read_yaml(path, "domains")
        if isinstance(data, list):
            data = {"domains": data}
        if not isinstance(data, dict) or not ({"domains", "splits"} & set(data)):
            raise ValueError(f"domains file {str(path)!r} must hold a mapping with 'domains: [...]' and/or "
                             "'splits: {name: [...]}' (or a list of domains)")
        unknown = sorted(set(data) - {"domains", "splits"})
        if unknown:
            raise ValueError(f"{path}: unknown top-level key(s) {unknown}; valid: domains, splits")
        try:
            for d in data.get("domains") or []:
                self._add(self.provider.parse(d))
            splits = data.get("splits") or {}
            if not isinstance(splits, dict):
                raise ValueError(f"'splits' must map split names to lists of domains, got {splits!r}")
            for name, entries in splits.items():
                if isinstance(entries, str):
                    entries = [e.strip() for e in entries.split(",") if e.strip()]
                if not isinstance(entries, list) or not entries:
                    raise ValueError(f"split {name!r} must be a non-empty list of domain names or mappings")
                names = []
                for e in entries:
                    if isinstance(e, Mapping):
                        spec = self.provider.parse(e)
                        self._add(spec)
                        names.append(spec.name)
                    elif isinstance(e, str) and e in self._domains:
                        names.append(e)
                    else:
                        raise ValueError(f"split {name!r}: unknown domain {e!r}; valid: {', '.join(self._domains)}")
                self._splits[str(name)] = names
                self._file_splits.add(str(name))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def _add(self, spec: DomainSpec) -> None:
        old = self._domains.get(spec.name)
        if old is not None and old != spec and spec.name not in self.provider.domains():
            raise ValueError(f"two different domains are both named {spec.name!r}; rename one")
        self._domains[spec.name] = spec

    # -- names -------------------------------------------------------------------------------------
    @property
    def domains(self) -> dict[str, DomainSpec]:
        """All named domains (built-in and from files), without the base kwargs."""
        return dict(self._domains)

    @property
    def splits(self) -> dict[str, list[str]]:
        """All splits: name → domain names."""
        return {k: list(v) for k, v in self._splits.items()}

    def split(self, name: str) -> list[DomainSpec]:
        """The (completed) domains of split ``name``."""
        if name not in self._splits:
            raise ValueError(f"unknown split {name!r} of env {self.env_id!r}; valid: {', '.join(self._splits)} "
                             "(define splits in a file: env.splits)")
        return [self.complete(self._domains[n]) for n in self._splits[name]]

    def complete(self, spec: DomainSpec) -> DomainSpec:
        """``spec`` with the base kwargs (run config) merged under its own."""
        return dataclasses.replace(spec, kwargs={**self.base_kwargs, **spec.kwargs})

    def resolve(self, spec: Any) -> list[DomainSpec]:
        """Domains from a spec: a comma-separated string of split names, domain names and YAML files of domains
        (``"source,target"``, ``"source,my_shifts.yaml"``), a :class:`DomainSpec`, a provider domain object
        (SeekAvoid's ``Domain``), a mapping, or a list of those. Deduplicated, first occurrence kept; the
        base kwargs are merged in. Two different domains with one name raise ``ValueError``."""
        if isinstance(spec, (str, DomainSpec, Mapping)) or not isinstance(spec, Iterable):
            items: list[Any] = [spec]
        else:
            items = list(spec)
        out: dict[str, DomainSpec] = {}

        def add(d: DomainSpec) -> None:
            d = self.complete(d)
            if d.name in out and out[d.name] != d:
                raise ValueError(f"two different domains are both named {d.name!r}; rename one")
            out.setdefault(d.name, d)

        for item in items:
            if isinstance(item, DomainSpec):
                add(item)
            elif isinstance(item, Mapping):
                add(self.provider.parse(item))
            elif isinstance(item, str):
                for token in (t.strip() for t in item.split(",")):
                    if not token:
                        continue
                    if token.endswith((".yaml", ".yml")):
                        for d in self._file_domains(token):
                            add(d)
                    elif token in self._splits:
                        for d in self.split(token):
                            add(d)
                    elif token in self._domains:
                        add(self._domains[token])
                    else:
                        raise ValueError(f"unknown domain or split {token!r} of env {self.env_id!r}; valid splits: "
                                         f"{', '.join(self._splits)}; valid domains: {', '.join(self._domains)}")
            elif hasattr(item, "to_dict") and hasattr(item, "name"):  # a provider's own domain object
                add(self.provider.parse(item.to_dict()))
            else:
                raise ValueError(f"domain spec entries must be names, YAML files, mappings or DomainSpec, got {item!r}")
        if not out:
            raise ValueError(f"domain spec {spec!r} names no domain; e.g. 'source' or 'source,target'")
        return list(out.values())

    def _file_domains(self, path: str) -> list[DomainSpec]:
        data = _read_yaml(path, "domains")
        if isinstance(data, dict) and "domains" in data:
            data = data["domains"]
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list) or not data:
            raise ValueError(f"domains file {path!r} must hold a list of domain mappings (or {{domains: [...]}})")
        try:
            return [self.provider.parse(d) for d in data]
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    # -- leakage guard -----------------------------------------------------------------------------
    def held_out(self, specs: Sequence[DomainSpec]) -> list[str]:
        """Names of ``specs`` that must never be in stage-1 data or policy training: a domain equal *by value*
        (env id, kwargs, wrappers; whatever its name) or by name to a domain of any evaluation split (every
        split but ``source`` / ``*-source``), plus the provider's own rules (SeekAvoid: the target's pair and
        room combination)."""
        evaluation = [d for s in self._splits if not is_source_split_name(s) for d in self.split(s)]
        keys = {d.value_key() for d in evaluation}
        names = {d.name for d in evaluation}
        specs = [self.complete(s) for s in specs]
        bad = {s.name for s in specs if s.value_key() in keys or s.name in names}
        bad.update(self.provider.held_out(specs))
        return [s.name for s in specs if s.name in bad]

    # -- envs --------------------------------------------------------------------------------------
    def make(self, specs: Sequence[DomainSpec] | DomainSpec, **overrides: Any) -> gymnasium.Env:
        """One env over ``specs`` (one domain per episode when several) whose frames are
        ``(obs_size, obs_size, channels)`` uint8."""
        return make_domains_env(specs if not isinstance(specs, DomainSpec) else [specs], obs_size=self.obs_size,
                                channels=self.channels, provider=self.provider, **overrides)

    def check(self, specs: Sequence[DomainSpec]) -> None:
        """Make and close the env of each of ``specs``: a domain that cannot be made (an unregistered id, a
        keyword its env rejects, a bad wrapper value) raises its ``ValueError`` now, before any work."""
        for spec in specs:
            self.make([spec]).close()

    def factor_names(self) -> tuple[str, ...] | None:
        """``info["factors"]`` names if the provider knows them without an env."""
        return self.provider.factor_names()

    def revision(self) -> Any:
        """The provider's rendering revision (part of stage keys)."""
        return self.provider.revision()


def make_domains_env(domain: Any, obs_size: int = 64, channels: int = 3, provider: Provider | None = None,
                     **overrides: Any) -> gymnasium.Env:
    """The env of one or several domains, frames resized to ``(obs_size, obs_size, channels)``.

    Registered as ``darla/Domains-v0``: ``gymnasium.make("darla/Domains-v0", domain=[spec.to_dict(), ...],
    obs_size=64)`` makes the env a policy trained by ``darla`` saw (its ``policy.json`` records these kwargs).

    :param domain: a :class:`DomainSpec`, its mapping, or a list of those
    :param obs_size: side of the square frames
    :param channels: 3 (RGB) or 1 (grey)
    :param provider: the domains' provider (default: the first domain's env id's)
    :param overrides: keyword arguments of every domain's ``gymnasium.make``
    """
    items = [domain] if isinstance(domain, (DomainSpec, Mapping)) else list(domain)
    specs = [d if isinstance(d, DomainSpec) else DomainSpec.from_dict(d) for d in items]
    if not specs:
        raise ValueError("make_domains_env needs at least one domain")
    if len({s.name for s in specs}) != len(specs):
        raise ValueError(f"domain names must be unique, got {[s.name for s in specs]}")
    if overrides:
        specs = [dataclasses.replace(s, kwargs={**s.kwargs, **overrides}) for s in specs]
    provider = provider or provider_of(specs[0].env_id)
    env = provider.make_native(specs) if all(s.env_id == provider.env_id for s in specs) else None
    if env is None:
        envs: list[gymnasium.Env] = []
        try:
            for s in specs:
                # resized one by one, so domains of different frame sizes can share a mixture
                envs.append(_resized(s.make_env(), obs_size, channels))
        except BaseException:
            for e in envs:
                e.close()
            raise
        env = envs[0] if len(envs) == 1 else DomainMixture(envs, [s.name for s in specs])
    return _resized(env, obs_size, channels)


def _resized(env: gymnasium.Env, obs_size: int, channels: int) -> gymnasium.Env:
    if tuple(env.observation_space.shape) != (obs_size, obs_size, channels):
        env = FrameResize(env, size=obs_size, channels=channels)
    return env


def describe_space(space: gymnasium.Space) -> str:
    """A short description of an action space (for messages)."""
    return f"{type(space).__name__}{getattr(space, 'shape', '')}"


__all__ = [
    "DOMAINS_ENV_ID",
    "DomainCatalog",
    "DomainLabel",
    "DomainMixture",
    "DomainSpec",
    "Provider",
    "is_image_space",
    "is_source_split_name",
    "make_domains_env",
    "provider_of",
    "register_provider",
]
