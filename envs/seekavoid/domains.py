"""SeekAvoid domains as data: room styles, object pairs, nuisance ranges, named domains and splits.

DARLA (Higgins, Pal et al. 2017, sec. 4 and fig. 3) evaluates zero-shot transfer in a DeepMind Lab
seek-avoid room with two object pairs and two room styles. The *source* domains show pair A in the
default room, pair B in the default room and pair B in the changed room; the *target* domain is pair A
in the changed room — a combination never seen whose parts were all seen. Here a domain is a frozen
dataclass, so a new shift is data, not code::

    import dataclasses
    dim = dataclasses.replace(get_domain("A-changed"), name="A-changed-darker", light=(0.35, 0.45))

YAML schema of :func:`load_domains_yaml` (a list of mappings, or ``{domains: [...]}``); every key but
``name`` is optional and defaults to the :class:`Domain` field defaults::

    - name: A-purple            # unique name (required)
      pair: A                   # object pair: A or B
      room:                     # a room style name (default, changed, third) or a mapping:
        floor: [0.5, 0.2, 0.7]  #   RGB in [0, 1]
        wall: [0.9, 0.9, 0.9]
        floor_pattern: tiles    #   optional, see PATTERNS
        wall_pattern: panels
      light: [0.9, 1.1]         # light intensity range (multiplies ambient and diffuse light)
      light_tint: [1.0, 0.8, 0.6]
      cam_height: [1.45, 1.55]  # camera height range (metres)
      cam_pitch: [-22, -18]     # camera pitch range (degrees, negative looks down)
      color_jitter: 0.05        # ± per RGB channel on object colours, per episode
      spawn_jitter: 0.2         # ± metres on the agent's spawn position (layout stream)

A range ``[lo, hi]`` is sampled uniformly per episode (domain randomisation of nuisances); a single
number means a fixed value.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RGB = tuple[float, float, float]
Range = tuple[float, float]

#: Procedural grey-level texture patterns (rendered by ``envs.seekavoid``); the colour comes from the style.
PATTERNS = ("plain", "tiles", "checker", "panels", "bricks", "stripes")


def _rgb(value: Any, what: str) -> RGB:
    try:
        rgb = tuple(float(v) for v in value)
    except TypeError:
        raise ValueError(f"{what} must be 3 numbers in [0, 1] (RGB), got {value!r}") from None
    if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
        raise ValueError(f"{what} must be 3 numbers in [0, 1] (RGB), got {value!r}")
    return rgb  # type: ignore[return-value]


def _range(value: Any, what: str, low: float = -math.inf, high: float = math.inf) -> Range:
    if isinstance(value, (int, float)):
        value = (value, value)
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number or a range [lo, hi], got {value!r}") from None
    if not (low <= lo <= hi <= high):
        raise ValueError(f"{what} must satisfy {low} <= lo <= hi <= {high}, got {value!r}")
    return (lo, hi)


@dataclass(frozen=True)
class RoomStyle:
    """Floor, wall and ceiling appearance: a colour times a procedural grey pattern.

    :param name: style name (``"custom"`` for styles defined inline)
    :param floor: floor RGB in [0, 1]
    :param wall: wall RGB in [0, 1]
    :param ceiling: ceiling RGB in [0, 1]
    :param floor_pattern: one of :data:`PATTERNS`
    :param wall_pattern: one of :data:`PATTERNS`
    """

    name: str
    floor: RGB
    wall: RGB
    ceiling: RGB = (0.85, 0.85, 0.85)
    floor_pattern: str = "tiles"
    wall_pattern: str = "panels"

    def __post_init__(self) -> None:
        for f in ("floor", "wall", "ceiling"):
            object.__setattr__(self, f, _rgb(getattr(self, f), f"room style '{self.name}': {f}"))
        for f in ("floor_pattern", "wall_pattern"):
            if getattr(self, f) not in PATTERNS:
                raise ValueError(f"room style '{self.name}': unknown {f} {getattr(self, f)!r}; valid: {', '.join(PATTERNS)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoomStyle:
        _check_keys(d, {f.name for f in dataclasses.fields(cls)}, "room style")
        return cls(**{"name": "custom", **d})

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


#: Room styles by name. ``default`` and ``changed`` are DARLA's two rooms (orange floor + green walls;
#: blue floor + red walls); ``third`` is never used by the source split (a harder target).
ROOM_STYLES: dict[str, RoomStyle] = {
    s.name: s
    for s in (
        RoomStyle("default", floor=(0.95, 0.55, 0.15), wall=(0.25, 0.7, 0.25)),
        RoomStyle("changed", floor=(0.2, 0.35, 0.9), wall=(0.85, 0.15, 0.15)),
        RoomStyle("third", floor=(0.5, 0.5, 0.5), wall=(0.9, 0.85, 0.2), floor_pattern="checker",
                  wall_pattern="bricks"),
    )
}


@dataclass(frozen=True)
class ObjectSpec:
    """One seek-avoid object: a solid shape (see ``envs.seekavoid.SHAPES``) of a given colour and size.

    Shapes differ in silhouette, not only in colour, so a colour shift cannot swap identities; all have
    at most 4-fold rotational symmetry so their heading is visible. Sizes are ~50% taller than
    miniworld's defaults: smaller objects were not learnable from latents (DESIGN.md, Environments).
    """

    name: str
    shape: str
    color: RGB
    width: float  # metres, footprint side / diameter
    height: float  # metres


@dataclass(frozen=True)
class ObjectPair:
    """A seek-avoid pair: touching ``good`` gives +1, touching ``bad`` gives −1."""

    name: str
    good: ObjectSpec
    bad: ObjectSpec


#: Object pairs by name; colours avoid the room colours (orange, green, blue, red, grey, yellow).
PAIRS: dict[str, ObjectPair] = {
    "A": ObjectPair(
        "A",
        good=ObjectSpec("A-good", "cube", (0.1, 0.85, 0.9), width=0.75, height=0.9),
        bad=ObjectSpec("A-bad", "pyramid", (0.9, 0.2, 0.75), width=0.95, height=1.2),
    ),
    "B": ObjectPair(
        "B",
        good=ObjectSpec("B-good", "hourglass", (0.97, 0.97, 0.97), width=0.85, height=1.2),
        bad=ObjectSpec("B-bad", "diamond", (0.45, 0.2, 0.65), width=0.85, height=1.2),
    ),
}


@dataclass(frozen=True)
class Domain:
    """A SeekAvoid domain: an object pair in a room style, with nuisance ranges sampled per episode.

    :param name: unique name, e.g. ``"A-changed"``
    :param pair: object pair name, ``"A"`` or ``"B"`` (see :data:`PAIRS`)
    :param room: a :class:`RoomStyle` or a style name from :data:`ROOM_STYLES` (converted to the style)
    :param light: light intensity range; multiplies miniworld's ambient (0.45) and diffuse (0.7) light
    :param light_tint: RGB multiplier of the light colour (``(1, 0.8, 0.55)`` is warm light); it changes the
        colour of everything, objects included
    :param cam_height: camera height range in metres (miniworld's default 1.5)
    :param cam_pitch: camera pitch range in degrees (negative looks down at the floor and objects)
    :param color_jitter: ± per-channel shift of the object colours, drawn per episode
    :param spawn_jitter: ± metres on the agent's spawn position; drawn from the *layout* stream, so domains
        with the same value give the same spawn for the same seed (paired evaluation)
    """

    name: str
    pair: str = "A"
    room: RoomStyle | str = "default"
    light: Range = (0.9, 1.1)
    light_tint: RGB = (1.0, 1.0, 1.0)
    cam_height: Range = (1.45, 1.55)
    cam_pitch: Range = (-22.0, -18.0)
    color_jitter: float = 0.05
    spawn_jitter: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"domain name must be a non-empty string, got {self.name!r}")
        if self.pair not in PAIRS:
            raise ValueError(f"domain '{self.name}': unknown object pair {self.pair!r}; valid: {', '.join(PAIRS)}")
        room = self.room
        if isinstance(room, str):
            room = get_room_style(room)
        elif isinstance(room, dict):
            room = RoomStyle.from_dict(room)
        elif not isinstance(room, RoomStyle):
            raise ValueError(f"domain '{self.name}': room must be a style name ({', '.join(ROOM_STYLES)}), "
                             f"a RoomStyle or a mapping, got {room!r}")
        object.__setattr__(self, "room", room)
        object.__setattr__(self, "light", _range(self.light, f"domain '{self.name}': light", 0.0, 4.0))
        object.__setattr__(self, "light_tint", _rgb(self.light_tint, f"domain '{self.name}': light_tint"))
        object.__setattr__(self, "cam_height", _range(self.cam_height, f"domain '{self.name}': cam_height", 0.3, 2.5))
        object.__setattr__(self, "cam_pitch", _range(self.cam_pitch, f"domain '{self.name}': cam_pitch", -60.0, 30.0))
        for f, hi in (("color_jitter", 0.5), ("spawn_jitter", 0.5)):
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or not 0.0 <= v <= hi:
                raise ValueError(f"domain '{self.name}': {f} must be a number in [0, {hi}], got {v!r}")
            object.__setattr__(self, f, float(v))

    @property
    def objects(self) -> ObjectPair:
        """The :class:`ObjectPair` of this domain."""
        return PAIRS[self.pair]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Domain:
        """Build a domain from a plain mapping (the YAML schema in the module docstring)."""
        if not isinstance(d, dict):
            raise ValueError(f"a domain must be a mapping with at least 'name', got {d!r}")
        _check_keys(d, {f.name for f in dataclasses.fields(cls)}, f"domain {d.get('name', '?')!r}")
        if "name" not in d:
            raise ValueError(f"domain {d!r} has no 'name'; add e.g. name: A-purple")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (lists, floats, strings); ``Domain.from_dict(d.to_dict()) == d``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "room":
                v = v.name if ROOM_STYLES.get(v.name) == v else v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


def _check_keys(d: dict, valid: set[str], what: str) -> None:
    unknown = sorted(set(d) - valid)
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {unknown}; valid: {', '.join(sorted(valid))}")


def get_room_style(name: str) -> RoomStyle:
    """The room style ``name``; ``ValueError`` listing the valid names if unknown."""
    try:
        return ROOM_STYLES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown room style {name!r}; valid: {', '.join(ROOM_STYLES)}") from None


_WARM = (1.0, 0.78, 0.5)
_HIGH_CAM = (1.85, 1.95)  # 0.4 m above the default camera (1.45-1.55)
_DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain("A-default", "A", "default"),
        Domain("B-default", "B", "default"),
        Domain("B-changed", "B", "changed"),
        Domain("A-changed", "A", "changed"),
        # Harder shifted targets (DESIGN.md: pixels are hurt most by geometric or compound shifts).
        Domain("A-changed-dim", "A", "changed", light=(0.5, 0.6)),
        Domain("A-changed-warm", "A", "changed", light_tint=_WARM),
        Domain("A-default-warm", "A", "default", light_tint=_WARM),
        Domain("A-changed-lowcam", "A", "changed", cam_height=(1.05, 1.15)),
        Domain("A-default-lowcam", "A", "default", cam_height=(1.05, 1.15)),
        Domain("A-third", "A", "third"),
        Domain("A-third-dim-lowcam", "A", "third", light=(0.5, 0.6), cam_height=(1.05, 1.15)),
        # The camera split: camera height plays the part of the room (results/transfer/camera/ has the study
        # on it, and on its variant whose policies train at the default height only).
        Domain("B-highcam", "B", "default", cam_height=_HIGH_CAM),
        Domain("A-highcam", "A", "default", cam_height=_HIGH_CAM),
        Domain("A-highcam-dim", "A", "default", light=(0.5, 0.6), cam_height=_HIGH_CAM),
        Domain("A-highcam-warm", "A", "default", light_tint=_WARM, cam_height=_HIGH_CAM),
        Domain("A-highcam-changed", "A", "changed", cam_height=_HIGH_CAM),
    )
}

_SPLITS: dict[str, tuple[str, ...]] = {
    "source": ("A-default", "B-default", "B-changed"),
    "target": ("A-changed",),
    "hard": ("A-changed-dim", "A-changed-warm", "A-changed-lowcam", "A-default-lowcam", "A-third",
             "A-third-dim-lowcam"),
    "cam-source": ("A-default", "B-default", "B-highcam"),
    "cam-target": ("A-highcam",),
    "cam-hard": ("A-highcam-dim", "A-highcam-warm", "A-highcam-changed"),
    "shifted": ("A-changed", "A-changed-dim", "A-changed-warm", "A-changed-lowcam", "A-default-warm",
                "A-default-lowcam", "A-third", "A-third-dim-lowcam"),
}


def list_domains() -> list[str]:
    """Names of the built-in domains, in definition order."""
    return list(_DOMAINS)


def list_splits() -> list[str]:
    """Names of the built-in splits: ``source``, ``target``, ``hard``, ``cam-source``, ``cam-target``,
    ``cam-hard``, ``shifted``."""
    return list(_SPLITS)


def is_source_split(name: str) -> bool:
    """Whether ``name`` is a built-in split to train on (``source``, ``cam-source``); every other built-in
    split holds evaluation domains that stage-1 data must not contain."""
    return name in _SPLITS and (name == "source" or name.endswith("-source"))


def get_domain(name_or_domain: str | Domain) -> Domain:
    """The domain ``name_or_domain`` (a :class:`Domain` is returned unchanged)."""
    if isinstance(name_or_domain, Domain):
        return name_or_domain
    try:
        return _DOMAINS[name_or_domain]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown domain {name_or_domain!r}; valid: {', '.join(_DOMAINS)} "
            f"(or a split: {', '.join(_SPLITS)}; or define one with Domain(...) / load_domains_yaml)"
        ) from None


def get_split(name: str) -> list[Domain]:
    """The domains of split ``name``."""
    try:
        return [_DOMAINS[n] for n in _SPLITS[name]]
    except (KeyError, TypeError):
        raise ValueError(f"unknown split {name!r}; valid: {', '.join(_SPLITS)}") from None


def resolve_domains(spec: str | Domain | Iterable[str | Domain]) -> list[Domain]:
    """Domains from a spec: ``"source,target"``, ``"A-default,A-changed"``, a :class:`Domain`, or a list of
    those; split names expand to their domains. Deduplicated, first occurrence order kept.

    Two different domains with the same name raise ``ValueError`` (names identify domains in reports).
    """
    items: Sequence[Any]
    if isinstance(spec, (str, Domain, dict)):  # one domain's mapping too (a DomainSpec's ``domain`` kwarg)
        items = [spec]
    else:
        try:
            items = list(spec)
        except TypeError:
            raise ValueError(f"domain spec must be a string, a Domain or a list of those, got {spec!r}") from None
    out: dict[str, Domain] = {}

    def add(d: Domain) -> None:
        if d.name in out and out[d.name] != d:
            raise ValueError(f"two different domains are both named {d.name!r}; rename one")
        out.setdefault(d.name, d)

    for item in items:
        if isinstance(item, Domain):
            add(item)
            continue
        if isinstance(item, dict):
            add(Domain.from_dict(item))
            continue
        if not isinstance(item, str):
            raise ValueError(f"domain spec entries must be names or Domain objects, got {item!r}")
        for token in (t.strip() for t in item.split(",")):
            if not token:
                continue
            if token in _SPLITS:
                for d in get_split(token):
                    add(d)
            elif token in _DOMAINS:
                add(_DOMAINS[token])
            else:
                raise ValueError(
                    f"unknown domain or split {token!r}; valid splits: {', '.join(_SPLITS)}; "
                    f"valid domains: {', '.join(_DOMAINS)}"
                )
    if not out:
        raise ValueError(f"domain spec {spec!r} names no domain; e.g. 'source' or 'A-default,A-changed'")
    return list(out.values())


def load_domains_yaml(path: str | Path) -> list[Domain]:
    """Domains defined in a YAML file (schema in the module docstring)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"domains file {str(path)!r} does not exist") from None
    except yaml.YAMLError as e:
        raise ValueError(f"domains file {str(path)!r} is not valid YAML: {e}") from None
    if isinstance(data, dict) and "domains" in data:
        data = data["domains"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ValueError(f"domains file {str(path)!r} must hold a list of domain mappings (or {{domains: [...]}})")
    try:
        return resolve_domains([Domain.from_dict(d) if isinstance(d, dict) else d for d in data])
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def dump_domains_yaml(domains: Iterable[Domain], path: str | Path) -> None:
    """Write ``domains`` to ``path`` in the schema :func:`load_domains_yaml` reads (atomic write)."""
    import yaml

    from atomicio import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump([get_domain(d).to_dict() for d in domains], sort_keys=False))


# ----------------------------------------------------------------------------- the leakage guard
def _room_key(room: Any) -> Any:
    """A room style's appearance, whatever it is called (a renamed copy of 'changed' is still 'changed')."""
    if isinstance(room, str):
        return room
    to_dict = getattr(room, "to_dict", None)
    if not callable(to_dict):
        return room
    return json.dumps({k: v for k, v in to_dict().items() if k != "name"}, sort_keys=True)


def held_out_domains(domains: Sequence[Any]) -> list[str]:
    """Names of the SeekAvoid ``domains`` that must never be rendered into a stage-1 (vision training) dataset.

    Those are (a) any domain showing a target split's held-out combination, whatever its name or other
    nuisances: the object pair of a ``target`` domain in its room style (DARLA's split), or the object pair
    of a ``cam-target`` domain in its room style with an overlapping camera-height range (the camera
    split); and (b) any built-in domain of an evaluation split (every split but the source splits, e.g.
    ``hard``: ``A-third``).
    """
    def overlaps(a, b) -> bool:
        return a[0] <= b[1] and b[0] <= a[1]

    targets = [(t, False) for t in get_split("target")] + [(t, True) for t in get_split("cam-target")]
    evaluation = {d.name: d for s in list_splits() if not is_source_split(s) for d in get_split(s)}
    return [d.name for d in domains
            if any(d.pair == t.pair and _room_key(d.room) == _room_key(t.room)
                   and (not cam or overlaps(d.cam_height, t.cam_height)) for t, cam in targets)
            or evaluation.get(d.name) == d]


# --------------------------------------------------------------- SeekAvoid as a domain provider
#: the gymnasium id of the SeekAvoid env (registered by ``import envs``)
SEEKAVOID_ID = "darla/SeekAvoid-v0"

__all__ = [
    "PAIRS",
    "PATTERNS",
    "ROOM_STYLES",
    "SEEKAVOID_ID",
    "Domain",
    "ObjectPair",
    "ObjectSpec",
    "RoomStyle",
    "dump_domains_yaml",
    "get_domain",
    "get_room_style",
    "get_split",
    "held_out_domains",
    "list_domains",
    "list_splits",
    "load_domains_yaml",
    "resolve_domains",
]
