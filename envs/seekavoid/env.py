"""SeekAvoid: DARLA's seek-avoid room task rebuilt on miniworld.

DARLA (Higgins, Pal et al. 2017, sec. 4.1) trains in DeepMind Lab's seek-avoid rooms: the agent sees
first-person RGB frames, turns and moves, and is rewarded +1 for touching one object of a pair and −1
for the other. Here the domain (object pair, room style and nuisance ranges) is data from
:mod:`envs.seekavoid.domains`; this module renders it with miniworld's headless OpenGL.

Layouts:

* ``choice`` (default, fast to learn): a 6×4 room; the good and the bad object of the pair stand ~2.6 m
  ahead of the agent, sides randomised; the episode ends at the first touch (+1 / −1) or at the step
  limit (60 by default, truncation). Forward step 0.25 m, turn 20°.
* ``collect`` (DARLA-faithful): a 6×6 room with ``num_objects`` good and as many bad objects at random
  places; a touch gives +1 / −1 and removes the object; the episode ends when every good object is
  collected or at the step limit (120 by default).

Randomness comes from three streams seeded from the reset seed: *layout* (object sides and positions,
agent spawn), *appearance* (light, camera, colour jitter, scaled into the domain's ranges) and *domain*
(which domain of a multi-domain env this episode shows). Every stream draws the same number of values
whatever the domain, so the same seed gives the same layout in every domain (paired evaluation).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces, utils
from miniworld.entity import Entity
from miniworld.miniworld import MiniWorldEnv, Room, gen_texcs_floor
from miniworld.opengl import Texture
from miniworld.params import DomainParams
from pyglet.gl import (
    GL_GENERATE_MIPMAP_HINT,
    GL_LINEAR,
    GL_LINEAR_MIPMAP_LINEAR,
    GL_NICEST,
    GL_POLYGON,
    GL_QUADS,
    GL_REPEAT,
    GL_RGB,
    GL_RGBA,
    GL_TEXTURE_2D,
    GL_TEXTURE_MAG_FILTER,
    GL_TEXTURE_MIN_FILTER,
    GL_TEXTURE_WRAP_S,
    GL_TEXTURE_WRAP_T,
    GL_TRIANGLES,
    GL_UNSIGNED_BYTE,
    glBegin,
    glBindTexture,
    glColor3f,
    glDisable,
    glEnable,
    glEnd,
    glGenerateMipmap,
    glHint,
    glNormal3f,
    glPopMatrix,
    glPushMatrix,
    glRotatef,
    glTexCoord2f,
    glTexImage2D,
    glTexParameteri,
    glTranslatef,
    glVertex3f,
)

from envs import miniworld_gl
from envs.seekavoid.domains import ROOM_STYLES, Domain, ObjectSpec, RoomStyle, resolve_domains

logger = logging.getLogger(__name__)

LAYOUTS = ("choice", "collect")
_DEFAULT_STEPS = {"choice": 60, "collect": 120}
_ROOM_SIZE = {"choice": (6.0, 4.0), "collect": (6.0, 6.0)}  # (x extent, z extent) in metres
_AGENT_RADIUS = 0.4
_OBJECT_RADIUS = 0.5  # collision and touch radius of every object: equal so no object is easier to touch
_AMBIENT, _DIFFUSE = 0.45, 0.7  # miniworld's default light levels, scaled by Domain.light
_SKY = (0.55, 0.6, 0.65)


# ----------------------------------------------------------------------------------------- textures
_TEX_SIZE = 256  # pixels per texture repeat; miniworld maps 512 texels to 1 m, so one repeat is 0.5 m


def pattern_image(pattern: str, size: int = _TEX_SIZE) -> np.ndarray:
    """Grey-level pattern ``(size, size) uint8`` for :data:`envs.seekavoid.domains.PATTERNS` (one repeat = 0.5 m).

    Values stay in 150–240, so the style's colour dominates and the lines give depth and motion cues.
    """
    img = np.full((size, size), 236, dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    line = max(2, size // 64)
    if pattern == "plain":
        pass
    elif pattern == "tiles":
        img[(xx < line) | (yy < line)] = 160
    elif pattern == "checker":
        img[((xx < size // 2) ^ (yy < size // 2))] = 180
    elif pattern == "panels":
        img[xx < 2 * line] = 150
        img[(yy >= size // 2) & (yy < size // 2 + line)] = 200
    elif pattern == "bricks":
        row = yy // (size // 4)
        joint = (xx + (row % 2) * (size // 2)) % size
        img[(yy % (size // 4) < line) | (joint < line)] = 165
    elif pattern == "stripes":
        img[(yy // (size // 4)) % 2 == 1] = 190
    else:
        from envs.seekavoid.domains import PATTERNS

        raise ValueError(f"unknown pattern {pattern!r}; valid: {', '.join(PATTERNS)}")
    return img


@cache
def _pattern_texture(pattern: str) -> Texture:
    """An OpenGL texture of :func:`pattern_image` (grey; the room multiplies it by its colour).

    Cached per process like miniworld's own textures (its contexts share one object space).
    """
    gray = pattern_image(pattern)
    size = gray.shape[0]
    rgba = np.empty((size, size, 4), dtype=np.uint8)
    rgba[..., :3] = gray[..., None]
    rgba[..., 3] = 255
    import pyglet

    data = rgba.tobytes()
    tex = pyglet.image.ImageData(size, size, "RGBA", data).get_texture()
    glEnable(tex.target)
    glBindTexture(tex.target, tex.id)
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB, size, size, 0, GL_RGBA, GL_UNSIGNED_BYTE, data)
    glHint(GL_GENERATE_MIPMAP_HINT, GL_NICEST)
    glGenerateMipmap(GL_TEXTURE_2D)
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_REPEAT)
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_REPEAT)
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR)
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR_MIPMAP_LINEAR)
    glBindTexture(GL_TEXTURE_2D, 0)
    return Texture(tex, f"darla-{pattern}")


_GEOMETRY_ATTRS = ("floor_verts", "ceil_verts", "wall_verts", "wall_norms", "wall_texcs", "wall_segs")
_GEOMETRY_CACHE: dict[bytes, dict[str, Any]] = {}


class StyledRoom(Room):
    """A miniworld :class:`Room` whose floor, walls and ceiling are a colour times a procedural pattern.

    miniworld rooms take PNG texture names; solid colours would need new PNGs. Instead the textures are
    grey patterns made in memory and the colour is the OpenGL material colour (``glColor``), which the
    fixed-function pipeline multiplies with the texture and the light.
    """

    def __init__(self, outline: np.ndarray, style: RoomStyle, **kwargs: Any):
        super().__init__(outline, floor_tex="concrete", wall_tex="concrete", ceil_tex="concrete_tiles", **kwargs)
        self.style = style
        self.floor_color = style.floor
        self.wall_color = style.wall
        self.ceil_color = style.ceiling

    def _gen_static_data(self, params, rng) -> None:
        # The geometry depends only on the outline: compute it once (miniworld re-reads its texture
        # files on every call, a third of a reset) and reuse it.
        key = self.outline.tobytes() + repr(self.portals).encode()
        cached = _GEOMETRY_CACHE.get(key)
        if cached is None:
            super()._gen_static_data(params, None)
            cached = _GEOMETRY_CACHE[key] = {k: getattr(self, k) for k in _GEOMETRY_ATTRS}
            cached["_old_wall_tex"] = (self.wall_tex.width, self.wall_tex.height)
        for k in _GEOMETRY_ATTRS:
            setattr(self, k, cached[k])
        old_w, old_h = cached["_old_wall_tex"]
        self.floor_tex = _pattern_texture(self.style.floor_pattern)
        self.wall_tex = _pattern_texture(self.style.wall_pattern)
        self.ceil_tex = _pattern_texture("plain")
        self.floor_texcs = gen_texcs_floor(self.floor_tex, self.floor_verts)
        self.ceil_texcs = gen_texcs_floor(self.ceil_tex, self.ceil_verts)
        # wall texture coordinates are proportional to 1 / texture size (miniworld's gen_texcs_wall)
        if len(self.wall_texcs):
            self.wall_texcs = self.wall_texcs * np.array([old_w / self.wall_tex.width,
                                                          old_h / self.wall_tex.height], dtype=np.float32)

    def _render(self) -> None:
        glColor3f(*self.floor_color)
        self.floor_tex.bind()
        glBegin(GL_POLYGON)
        glNormal3f(0, 1, 0)
        for i in range(self.floor_verts.shape[0]):
            glTexCoord2f(*self.floor_texcs[i, :])
            glVertex3f(*self.floor_verts[i, :])
        glEnd()

        glColor3f(*self.ceil_color)
        self.ceil_tex.bind()
        glBegin(GL_POLYGON)
        glNormal3f(0, -1, 0)
        for i in range(self.ceil_verts.shape[0]):
            glTexCoord2f(*self.ceil_texcs[i, :])
            glVertex3f(*self.ceil_verts[i, :])
        glEnd()

        glColor3f(*self.wall_color)
        self.wall_tex.bind()
        glBegin(GL_QUADS)
        for i in range(self.wall_verts.shape[0]):
            glNormal3f(*self.wall_norms[i, :])
            glTexCoord2f(*self.wall_texcs[i, :])
            glVertex3f(*self.wall_verts[i, :])
        glEnd()
        glColor3f(1, 1, 1)


# ------------------------------------------------------------------------------------------- shapes
def _square(a: float, y: float) -> list[np.ndarray]:
    return [np.array(p, dtype=np.float64) for p in ((a, y, a), (-a, y, a), (-a, y, -a), (a, y, -a))]


def _rings_to_triangles(rings: list[list[np.ndarray]], bottom: Any, top: Any) -> list[tuple]:
    """Triangles of a solid made of stacked 4-point rings, closed by a cap or an apex at each end."""
    tris: list[tuple] = []
    for lo, hi in zip(rings[:-1], rings[1:]):
        for i in range(4):
            j = (i + 1) % 4
            tris += [(lo[i], lo[j], hi[j]), (lo[i], hi[j], hi[i])]
    for end, ring in ((bottom, rings[0]), (top, rings[-1])):
        if isinstance(end, str):  # "cap"
            tris += [(ring[0], ring[1], ring[2]), (ring[0], ring[2], ring[3])]
        else:  # apex point
            tris += [(ring[i], ring[(i + 1) % 4], end) for i in range(4)]
    return tris


@cache
def shape_mesh(shape: str, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat-shaded mesh of a shape: ``vertices (T, 3, 3)`` counter-clockwise seen from outside (miniworld
    culls back faces) and ``normals (T, 3)``. The shape stands on y = 0, centred on the y axis.
    """
    a, h = width / 2, height
    if shape == "cube":
        tris = _rings_to_triangles([_square(a, 0.0), _square(a, h)], "cap", "cap")
    elif shape == "pyramid":
        tris = _rings_to_triangles([_square(a, 0.0)], "cap", np.array([0.0, h, 0.0]))
    elif shape == "diamond":  # octahedron on its tip, corners of the waist on the axes
        ring = [np.array(p) for p in ((a, h / 2, 0.0), (0.0, h / 2, a), (-a, h / 2, 0.0), (0.0, h / 2, -a))]
        tris = _rings_to_triangles([ring], np.array([0.0, 0.0, 0.0]), np.array([0.0, h, 0.0]))
    elif shape == "hourglass":  # two square frusta meeting at a narrow waist
        tris = _rings_to_triangles([_square(a, 0.0), _square(0.25 * a, h / 2), _square(a, h)], "cap", "cap")
    else:
        raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")
    verts, norms = [], []
    for tri in tris:
        v = np.array(tri, dtype=np.float64)
        n = np.cross(v[1] - v[0], v[2] - v[0])
        c = v.mean(axis=0)
        if np.allclose(v[:, 1], v[0, 1]):  # horizontal cap: outward is up at the top, down at the bottom
            out = np.array([0.0, c[1] - h / 2, 0.0])
        else:
            out = np.array([c[0], 0.0, c[2]])
        if np.dot(n, out) < 0:
            v = v[[0, 2, 1]]
            n = -n
        verts.append(v)
        norms.append(n / np.linalg.norm(n))
    return np.array(verts, dtype=np.float32), np.array(norms, dtype=np.float32)


SHAPES = ("cube", "pyramid", "diamond", "hourglass")


class SeekObject(Entity):
    """A seek-avoid object: a flat-shaded solid of one colour; ``reward`` is paid when it is touched."""

    def __init__(self, spec: ObjectSpec, reward: float, color: tuple[float, float, float]):
        super().__init__()
        self.spec = spec
        self.reward = float(reward)
        self.color_vec = np.clip(np.asarray(color, dtype=np.float64), 0.0, 1.0)
        self.radius = _OBJECT_RADIUS
        self.height = spec.height
        self._verts, self._norms = shape_mesh(spec.shape, spec.width, spec.height)

    @property
    def is_static(self) -> bool:
        # Compiled into the episode's display list; SeekAvoidEnv recompiles it when an object is collected.
        return True

    def render(self) -> None:
        glDisable(GL_TEXTURE_2D)
        glColor3f(*self.color_vec)
        glPushMatrix()
        glTranslatef(*self.pos)
        glRotatef(self.dir * (180 / math.pi), 0, 1, 0)
        glBegin(GL_TRIANGLES)
        for tri, n in zip(self._verts, self._norms):
            glNormal3f(*n)
            for v in tri:
                glVertex3f(*v)
        glEnd()
        glPopMatrix()
        glEnable(GL_TEXTURE_2D)
        glColor3f(1, 1, 1)


# ---------------------------------------------------------------------------------------------- env
def _params(values: dict[str, Any]) -> DomainParams:
    """miniworld parameters fixed to ``values`` (randomisation is done by our own streams instead)."""
    p = DomainParams()
    for k, v in values.items():
        p.set(k, list(v) if isinstance(v, (tuple, list, np.ndarray)) else float(v))
    return p


def _lerp(rng: tuple[float, float], u: float) -> float:
    return rng[0] + (rng[1] - rng[0]) * u


#: Factors a SeekAvoid ``choice`` policy needs from a frame: which pair it is, which side the good object
#: is on, and where each object is. ``darla train-vision`` checks these are readable from the features.
TASK_FACTORS = ("pair", "good_side", "good_angle", "bad_angle")

#: Half of the horizontal field of view (miniworld: 60° vertical, square frames): an object whose
#: bearing is within it is at least half in view.
HALF_FOV = math.radians(30.0)


def observable_rows(factors: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean masks ``(N,)`` of the frames in which object factors can be seen at all.

    A random stage-1 policy faces a wall in most frames (about 9% show both objects, 39% at least one,
    at 64×64 with the default domains), and no representation can tell the pair or the good side from
    a frame without objects. ``good_*`` / ``bad_*`` need that object in view, ``pair`` either object,
    ``good_side`` both; other factors are visible in every frame and get no mask.

    :param factors: ``(N, F)`` factor vectors in ``SeekAvoidEnv.FACTOR_NAMES`` order (or ``names``)
    :param names: the factor name of each column
    """
    col = {n: i for i, n in enumerate(names)}
    f = np.asarray(factors)

    def in_view(kind: str) -> np.ndarray:
        return (f[:, col[f"{kind}_dist"]] > 0) & (np.abs(f[:, col[f"{kind}_angle"]]) < HALF_FOV)

    if not all(f"{k}_{q}" in col for k in ("good", "bad") for q in ("dist", "angle")):
        return {}  # not SeekAvoid's factors (another env's, or none): every factor counts as visible
    good, bad = in_view("good"), in_view("bad")
    rows = {n: good for n in names if n.startswith("good_") and n != "good_side"}
    rows.update({n: bad for n in names if n.startswith("bad_")})
    rows["pair"] = good | bad
    rows["good_side"] = good & bad
    return {n: m for n, m in rows.items() if n in col}


def _wrap_angle(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


#: Bumped when a fix changes the frames SeekAvoid envs render, so cached policy stages retrain
#: (``darla.pipeline`` keys them by it). 2: envs sharing one process no longer draw each other's scene.
RENDER_REVISION = 2


class SeekAvoidEnv(MiniWorldEnv, utils.EzPickle):
    """DARLA's seek-avoid task on miniworld (see the module docstring for layouts and seeding).

    ``gymnasium.make("darla/SeekAvoid-v0", domain="A-changed", layout="choice", obs_size=64)``.

    Observations: ``(obs_size, obs_size, 3) uint8`` first-person RGB. Actions: ``Discrete(3)`` —
    0 turn left, 1 turn right, 2 move forward. ``info["domain"]`` is the episode's domain name and
    ``info["factors"]`` the ground-truth factors of the frame (keys :attr:`FACTOR_NAMES`; as a vector:
    :meth:`factor_vector` or :meth:`factors_to_vector`).

    :param domain: a domain name, a :class:`~envs.seekavoid.domains.Domain`, a split name, a comma-separated spec
        (``"source"``, ``"A-default,B-changed"``) or a list; with several domains one is drawn per episode
        from the env's seeded domain stream (``reset(options={"domain": name})`` forces one)
    :param layout: ``"choice"`` or ``"collect"``
    :param obs_size: observation height and width in pixels (>= 8)
    :param max_steps: the env's own step limit (truncation); default 60 (choice) / 120 (collect).
        ``gymnasium.make(..., max_episode_steps=n)`` adds a ``TimeLimit(n)`` on top, which can only shorten it
    :param num_objects: ``collect`` only: number of good (and of bad) objects
    :param forward_step: metres per forward action
    :param turn_step: degrees per turn action
    :param render_size: size of ``render()`` frames (``render_mode="rgb_array"``)
    :param render_mode: ``None``, ``"rgb_array"`` or ``"human"``
    """

    #: Keys of ``info["factors"]``, in the order of :meth:`factor_vector`.
    #: ``pair``: 0 = A, 1 = B. ``room``: index in ``envs.seekavoid.domains.ROOM_STYLES`` (−1 for a custom style).
    #: ``good_side``: 0 = left, 1 = right (``choice``; −1 in ``collect``). Positions in metres, angles in
    #: radians (``agent_dir`` in [−π, π); ``*_angle`` is the bearing of the nearest remaining object of the
    #: kind, positive to the agent's left; ``*_dist`` is −1 and ``*_angle`` 0 when none remains).
    #: ``light``: intensity multiplier; ``tint_*``: light colour; ``cam_pitch`` in degrees; ``floor_*``,
    #: ``wall_*``, ``good_*``, ``bad_*``: rendered RGB colours of the room and of the objects.
    FACTOR_NAMES: tuple[str, ...] = (
        "pair", "room", "good_side", "agent_x", "agent_z", "agent_dir",
        "good_dist", "good_angle", "bad_dist", "bad_angle",
        "light", "tint_r", "tint_g", "tint_b", "cam_height", "cam_pitch",
        "floor_r", "floor_g", "floor_b", "wall_r", "wall_g", "wall_b",
        "good_r", "good_g", "good_b", "bad_r", "bad_g", "bad_b",
    )

    def __init__(
        self,
        domain: Any = "A-default",
        layout: str = "choice",
        obs_size: int = 64,
        max_steps: int | None = None,
        num_objects: int = 3,
        forward_step: float = 0.25,
        turn_step: float = 20.0,
        render_size: int = 256,
        render_mode: str | None = None,
    ):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
        if not isinstance(obs_size, (int, np.integer)) or obs_size < 8:
            raise ValueError(f"obs_size must be an int >= 8 (e.g. 64), got {obs_size!r}")
        if max_steps is None:
            max_steps = _DEFAULT_STEPS[layout]
        if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int (e.g. {_DEFAULT_STEPS[layout]}), got {max_steps!r}")
        if not isinstance(num_objects, (int, np.integer)) or not 1 <= num_objects <= 6:
            raise ValueError(f"num_objects must be an int in 1..6 (e.g. 3), got {num_objects!r}")
        if not 0.05 <= float(forward_step) <= 1.0:
            raise ValueError(f"forward_step must be in [0.05, 1.0] metres (e.g. 0.25), got {forward_step!r}")
        if not 1.0 <= float(turn_step) <= 90.0:
            raise ValueError(f"turn_step must be in [1, 90] degrees (e.g. 20), got {turn_step!r}")
        if render_mode not in (None, "rgb_array", "human"):
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: None, 'rgb_array', 'human'")
        self.domains: list[Domain] = resolve_domains(domain)
        self.layout = layout
        self.obs_size = int(obs_size)
        self.num_objects = int(num_objects)
        self.forward_step = float(forward_step)
        self.turn_step = float(turn_step)
        self._streams: tuple[np.random.Generator, ...] | None = None
        self._forced_domain: Domain | None = None
        self.domain: Domain = self.domains[0]
        self.objects: list[SeekObject] = []
        self._scene: dict[str, Any] = {}
        self._static_list: int | None = None  # this env's display list of its static scene
        utils.EzPickle.__init__(self, domain, layout, obs_size, max_steps, num_objects, forward_step, turn_step,
                                render_size, render_mode)
        # miniworld prints "Falling back to num_samples=4" for each frame buffer on headless GL: noise in
        # every worker's and test's output, so it goes to the log at debug level instead.
        with contextlib.redirect_stdout(io.StringIO()) as gl_notes:
            MiniWorldEnv.__init__(
                self,
                max_episode_steps=int(max_steps),
                obs_width=self.obs_size,
                obs_height=self.obs_size,
                window_width=int(render_size),
                window_height=int(render_size),
                render_mode=render_mode,
            )
        if gl_notes.getvalue().strip():
            logger.debug("miniworld: %s", gl_notes.getvalue().strip())
        self.action_space = spaces.Discrete(3)

    # ---------------------------------------------------------------------------------- rendering
    # miniworld compiles every env's static scene into display list 1, shared by the envs of one process:
    # each SeekAvoid env compiles into a list of its own (envs.miniworld_gl).
    _render_static = miniworld_gl.render_static
    _render_world = miniworld_gl.render_world

    def close(self) -> None:
        miniworld_gl.release(self)
        super().close()

    # ------------------------------------------------------------------------------------- seeding
    def _seed_streams(self, seed: int | None) -> None:
        layout, appearance, domain = np.random.SeedSequence(seed).spawn(3)
        self._streams = (np.random.default_rng(layout), np.random.default_rng(appearance),
                         np.random.default_rng(domain))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``options={"domain": name_or_Domain}`` forces the episode's domain."""
        if seed is not None or self._streams is None:
            self._seed_streams(seed)
        layout_rng, appearance_rng, domain_rng = self._streams
        pick = int(domain_rng.integers(len(self.domains)))  # always drawn: forcing a domain keeps the stream
        self.domain = self.domains[pick]
        if options and options.get("domain") is not None:
            from envs.seekavoid.domains import get_domain

            self.domain = get_domain(options["domain"])
        self._layout_u = layout_rng.random(16)  # fixed count per episode, see module docstring
        self._appearance_u = appearance_rng.random(9)
        self._layout_rng = np.random.default_rng(layout_rng.integers(2**63))  # collect placement
        obs, _ = super().reset(seed=seed)
        return obs, self._info()

    # -------------------------------------------------------------------------------------- world
    def _gen_world(self) -> None:
        d, u = self.domain, self._appearance_u
        light = _lerp(d.light, u[0])
        tint = np.asarray(d.light_tint)
        size_x, size_z = _ROOM_SIZE[self.layout]
        self.params = _params({
            "sky_color": _SKY,
            "light_pos": (1.0, 2.6, 1.0),
            "light_color": tuple(_DIFFUSE * light * tint),
            "light_ambient": tuple(_AMBIENT * light * tint),
            "obj_color_bias": (0.0, 0.0, 0.0),
            "forward_step": self.forward_step,
            "forward_drift": 0.0,
            "turn_step": self.turn_step,
            "bot_radius": _AGENT_RADIUS,
            "cam_pitch": _lerp(d.cam_pitch, u[2]),
            "cam_fov_y": 60.0,
            "cam_height": _lerp(d.cam_height, u[1]),
            "cam_fwd_disp": 0.0,
        })
        outline = np.array([[size_x, size_z], [size_x, 0.0], [0.0, 0.0], [0.0, size_z]])
        self.room = StyledRoom(outline, d.room)
        self.rooms.append(self.room)
        pair = d.objects
        jitter = (u[3:9] * 2 - 1) * d.color_jitter
        good_color = tuple(np.clip(np.asarray(pair.good.color) + jitter[:3], 0, 1))
        bad_color = tuple(np.clip(np.asarray(pair.bad.color) + jitter[3:], 0, 1))
        self._scene = {"light": light, "tint": tuple(tint), "good_color": good_color, "bad_color": bad_color}
        if self.layout == "choice":
            self._place_choice(pair, good_color, bad_color, size_z)
        else:
            self._place_collect(pair, good_color, bad_color, size_x, size_z)

    def _place_choice(self, pair, good_color, bad_color, size_z: float) -> None:
        lu = self._layout_u * 2 - 1  # uniform in [-1, 1)
        good_side = int(self._layout_u[0] < 0.5)  # 1 = right (+z is the agent's right at heading 0)
        jit = self.domain.spawn_jitter
        ax, az = 0.8 + jit * lu[1] * 0.5, size_z / 2 + jit * lu[2]
        adir = math.radians(8.0) * lu[3] * (jit / 0.2 if jit else 0.0)
        ox = 0.8 + 2.6
        sides = {1: size_z / 2 + 0.8, 0: size_z / 2 - 0.8}
        good = SeekObject(pair.good, +1.0, good_color)
        bad = SeekObject(pair.bad, -1.0, bad_color)
        self.place_entity(good, pos=np.array([ox + 0.15 * lu[4], 0.0, sides[good_side] + 0.1 * lu[5]]),
                          dir=math.pi * self._layout_u[6])
        self.place_entity(bad, pos=np.array([ox + 0.15 * lu[7], 0.0, sides[1 - good_side] + 0.1 * lu[8]]),
                          dir=math.pi * self._layout_u[9])
        self.objects = [good, bad]
        self._scene["good_side"] = good_side
        self.place_agent(pos=np.array([ax, 0.0, az]), dir=adir)

    def _place_collect(self, pair, good_color, bad_color, size_x: float, size_z: float) -> None:
        rng, margin = self._layout_rng, _OBJECT_RADIUS + 0.1
        agent = np.array([rng.uniform(1.0, size_x - 1.0), 0.0, rng.uniform(1.0, size_z - 1.0)])
        adir = rng.uniform(-math.pi, math.pi)
        points: list[np.ndarray] = []
        while len(points) < 2 * self.num_objects:  # rejection sampling; the same draws in every domain
            p = np.array([rng.uniform(margin, size_x - margin), 0.0, rng.uniform(margin, size_z - margin)])
            if np.linalg.norm(p - agent) < 1.8 or any(np.linalg.norm(p - q) < 1.2 for q in points):
                continue
            points.append(p)
        headings = rng.uniform(0, math.pi, size=len(points))
        self.objects = []
        for i, (p, hdg) in enumerate(zip(points, headings)):
            good = i % 2 == 0
            ent = SeekObject(pair.good if good else pair.bad, 1.0 if good else -1.0, good_color if good else bad_color)
            self.place_entity(ent, pos=p, dir=float(hdg))
            self.objects.append(ent)
        self._scene["good_side"] = -1
        self.place_agent(pos=agent, dir=float(adir))

    # --------------------------------------------------------------------------------------- step
    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}; valid: 0 (turn left), 1 (turn right), 2 (forward)")
        obs, _, _, truncated, _ = super().step(int(action))
        reward, terminated = 0.0, False
        touched = [o for o in self.objects if self.near(o)]
        if self.layout == "choice":
            if touched:
                first = min(touched, key=lambda o: np.linalg.norm(o.pos - self.agent.pos))
                reward, terminated = first.reward, True
        elif touched:
            for o in touched:
                reward += o.reward
                self.objects.remove(o)
                self.entities.remove(o)
            terminated = not any(o.reward > 0 for o in self.objects)
            self._render_static()  # objects are in the display list: recompile without the collected ones
            obs = self.render_obs()
        if terminated:
            truncated = False
        return obs, float(reward), terminated, bool(truncated), self._info()

    # ------------------------------------------------------------------------------------ factors
    def _nearest(self, good: bool) -> tuple[float, float]:
        cands = [o for o in self.objects if (o.reward > 0) == good]
        if not cands:
            return -1.0, 0.0
        rel = [o.pos - self.agent.pos for o in cands]
        dists = [float(np.hypot(r[0], r[2])) for r in rel]
        i = int(np.argmin(dists))
        # miniworld heading: dir_vec = (cos d, 0, -sin d), so the bearing of (x, z) is atan2(-z, x)
        bearing = math.atan2(-rel[i][2], rel[i][0])
        return dists[i], _wrap_angle(bearing - self.agent.dir)

    def factors(self) -> dict[str, float]:
        """Ground-truth factors of the current frame (keys :attr:`FACTOR_NAMES`)."""
        d, s = self.domain, self._scene
        room_names = list(ROOM_STYLES)
        room = room_names.index(d.room.name) if ROOM_STYLES.get(d.room.name) == d.room else -1
        gd, ga = self._nearest(True)
        bd, ba = self._nearest(False)
        f = {
            "pair": float(d.pair != "A"), "room": float(room), "good_side": float(s["good_side"]),
            "agent_x": float(self.agent.pos[0]), "agent_z": float(self.agent.pos[2]),
            "agent_dir": _wrap_angle(float(self.agent.dir)),
            "good_dist": gd, "good_angle": ga, "bad_dist": bd, "bad_angle": ba,
            "light": float(s["light"]), "cam_height": float(self.agent.cam_height),
            "cam_pitch": float(self.agent.cam_pitch),
        }
        for prefix, rgb in (("tint", s["tint"]), ("floor", d.room.floor), ("wall", d.room.wall),
                            ("good", s["good_color"]), ("bad", s["bad_color"])):
            for c, v in zip("rgb", rgb):
                f[f"{prefix}_{c}"] = float(v)
        return f

    @classmethod
    def factors_to_vector(cls, factors: dict[str, float]) -> np.ndarray:
        """``info["factors"]`` → ``(len(FACTOR_NAMES),) float32`` in :attr:`FACTOR_NAMES` order."""
        missing = [n for n in cls.FACTOR_NAMES if n not in factors]
        if missing:
            raise ValueError(f"factors lack {missing}; expected keys {list(cls.FACTOR_NAMES)}")
        return np.array([factors[n] for n in cls.FACTOR_NAMES], dtype=np.float32)

    def factor_vector(self) -> np.ndarray:
        """Factors of the current frame as ``(len(FACTOR_NAMES),) float32``."""
        return self.factors_to_vector(self.factors())

    def _info(self) -> dict[str, Any]:
        return {"domain": self.domain.name, "factors": self.factors()}


__all__ = [
    "LAYOUTS",
    "RENDER_REVISION",
    "SHAPES",
    "SeekAvoidEnv",
    "SeekObject",
    "StyledRoom",
    "pattern_image",
    "shape_mesh",
]

# Make sure `gymnasium.make("darla/SeekAvoid-v0")` works when this module is imported on its own.
if "darla/SeekAvoid-v0" not in gymnasium.registry:
    gymnasium.register(id="darla/SeekAvoid-v0", entry_point="envs.seekavoid.env:SeekAvoidEnv")
