"""SeekAvoid as one provider of the generic domain interface (:mod:`envs.spec`).

A SeekAvoid :class:`~envs.seekavoid.domains.Domain` (object pair, room style, nuisance ranges) becomes
``DomainSpec(name, "darla/SeekAvoid-v0", kwargs={"domain": <its mapping>})``; its built-in domains and
splits (``source``, ``target``, ``hard``, ...) keep their names. A YAML mapping in the SeekAvoid schema
(:mod:`envs.seekavoid.domains`) may add ``wrappers``; one with ``env_id`` or ``kwargs`` is read as a generic domain.
Several SeekAvoid domains without wrappers render in one SeekAvoid env (its own per-episode domain
stream), exactly as before the generic core existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium

from envs.seekavoid.domains import _DOMAINS, _SPLITS, SEEKAVOID_ID, Domain, held_out_domains
from envs.spec import DomainSpec, Provider

_GENERIC_KEYS = {"env_id", "kwargs"}


class SeekAvoidProvider(Provider):
    """SeekAvoid's domains, splits, leakage rule (the target's pair × room) and native multi-domain env."""

    def __init__(self, env_id: str = SEEKAVOID_ID):
        super().__init__(env_id)

    def spec(self, d: Domain, wrappers: Sequence[Mapping[str, Any]] = ()) -> DomainSpec:
        """The :class:`DomainSpec` of a SeekAvoid domain."""
        return DomainSpec(d.name, self.env_id, kwargs={"domain": d.to_dict()}, wrappers=tuple(wrappers))

    def domains(self) -> dict[str, DomainSpec]:
        return {name: self.spec(d) for name, d in _DOMAINS.items()}

    def splits(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in _SPLITS.items()}

    def parse(self, d: Mapping[str, Any]) -> DomainSpec:
        if not isinstance(d, Mapping):
            raise ValueError(f"a domain must be a mapping with at least 'name', got {d!r}")
        if _GENERIC_KEYS & set(d):
            return DomainSpec.from_dict(d, self.env_id)
        d = dict(d)
        wrappers = d.pop("wrappers", ()) or ()
        return self.spec(Domain.from_dict(d), wrappers)

    def config_kwargs(self, obs_size: int, layout: str) -> dict[str, Any]:
        return {"obs_size": int(obs_size), "layout": layout}

    def _domain(self, spec: DomainSpec) -> Domain | None:
        d = spec.kwargs.get("domain") if spec.env_id == self.env_id else None
        return Domain.from_dict(d) if isinstance(d, dict) else None

    def held_out(self, specs: Sequence[DomainSpec]) -> list[str]:
        pairs = [(s, self._domain(s)) for s in specs]
        bad = set(held_out_domains([d for _, d in pairs if d is not None]))
        return [s.name for s, d in pairs if d is not None and d.name in bad]

    def make_native(self, specs: Sequence[DomainSpec]) -> gymnasium.Env | None:
        doms = [self._domain(s) for s in specs]
        if any(d is None for d in doms) or any(s.wrappers for s in specs):
            return None
        common = [{k: v for k, v in s.kwargs.items() if k != "domain"} for s in specs]
        if any(c != common[0] for c in common):
            return None
        return gymnasium.make(self.env_id, domain=doms, **common[0])

    def describe(self, spec: DomainSpec) -> Any:
        # a SeekAvoid domain without wrappers: its scene mapping alone, as stage keys and collection requests
        # described it before the generic core (so they stay unchanged)
        d = self._domain(spec)
        return d.to_dict() if d is not None and not spec.wrappers else spec.to_dict()

    def factor_names(self) -> tuple[str, ...]:
        from envs.seekavoid.env import SeekAvoidEnv

        return tuple(SeekAvoidEnv.FACTOR_NAMES)

    def revision(self) -> Any:
        from envs.seekavoid.env import RENDER_REVISION

        return RENDER_REVISION


__all__ = ["SeekAvoidProvider"]
