"""``seekavoid-factors``: a 3D-Shapes-like ground-truth factor dataset rendered by the SeekAvoid env.

One object stands in view of the agent; every combination of the factor grid is one image (DESIGN.md,
"factor dataset"): floor style × wall style × object (A-good, A-bad, B-good, B-bad) × lateral position
× depth × object heading × light. It measures disentanglement on the RL domain itself (β-VAE, FactorVAE,
MIG, DCI, SAP metrics) and feeds DC-IGN's one-factor batches. Images are rendered on demand by one
:class:`~envs.seekavoid.SeekAvoidEnv` instance with the agent and object placed directly; the same
factor values give the same bytes.
"""

from __future__ import annotations

import math

import numpy as np

from envs.factors import FactorDataset, register_factor_dataset
from envs.seekavoid.domains import PAIRS, ROOM_STYLES

_STYLES = ("default", "changed", "third")
_OBJECTS = (("A", "good"), ("A", "bad"), ("B", "good"), ("B", "bad"))
_AGENT = (0.8, 2.0)  # x, z of the agent in the 6×4 choice room, facing +x
_CAM_HEIGHT, _CAM_PITCH = 1.5, -20.0


@register_factor_dataset("seekavoid-factors")
class SeekAvoidFactors(FactorDataset):
    """Factor grid of SeekAvoid renders (4,860 combinations by default).

    Factor values (index → value):

    * ``floor``, ``wall``: room style ``default``, ``changed``, ``third`` (floor and wall independently)
    * ``object``: A-good (cube), A-bad (pyramid), B-good (hourglass), B-bad (diamond)
    * ``lateral``: −0.8, −0.4, 0, 0.4, 0.8 m (to the agent's left … right)
    * ``depth``: 1.8, 2.4, 3.0 m ahead of the agent
    * ``heading``: 0°, 30°, 60° (every object has 4-fold symmetry, so all three look different)
    * ``light``: intensity 0.6, 0.85, 1.1

    :param obs_size: image height and width (64 by default)
    """

    name = "seekavoid-factors"
    factor_names = ("floor", "wall", "object", "lateral", "depth", "heading", "light")
    LATERAL = (-0.8, -0.4, 0.0, 0.4, 0.8)
    DEPTH = (1.8, 2.4, 3.0)
    HEADING_DEG = (0.0, 30.0, 60.0)
    LIGHT = (0.6, 0.85, 1.1)

    def __init__(self, obs_size: int = 64):
        if not isinstance(obs_size, (int, np.integer)) or obs_size < 8:
            raise ValueError(f"seekavoid-factors: obs_size must be an int >= 8 (e.g. 64), got {obs_size!r}")
        self.obs_size = int(obs_size)
        self.factor_sizes = (len(_STYLES), len(_STYLES), len(_OBJECTS), len(self.LATERAL), len(self.DEPTH),
                             len(self.HEADING_DEG), len(self.LIGHT))
        self.observation_shape = (self.obs_size, self.obs_size, 3)
        self._env = None

    @property
    def env(self):
        """The one env used for rendering (built on first use)."""
        if self._env is None:
            from envs.seekavoid.env import SeekAvoidEnv

            self._env = SeekAvoidEnv(domain="A-default", layout="choice", obs_size=self.obs_size)
            self._env.reset(seed=0)
        return self._env

    def factor_values(self, factors: np.ndarray) -> dict[str, np.ndarray]:
        """Physical values of factor indices ``(n, 7)``: style names, object names, metres, degrees, light."""
        f = self.validate_factors(factors)
        return {
            "floor": np.array(_STYLES)[f[:, 0]], "wall": np.array(_STYLES)[f[:, 1]],
            "object": np.array([f"{p}-{k}" for p, k in _OBJECTS])[f[:, 2]],
            "lateral": np.array(self.LATERAL)[f[:, 3]], "depth": np.array(self.DEPTH)[f[:, 4]],
            "heading": np.array(self.HEADING_DEG)[f[:, 5]], "light": np.array(self.LIGHT)[f[:, 6]],
        }

    def images(self, factors: np.ndarray) -> np.ndarray:
        """Render ``(n, 7)`` factor indices → ``(n, obs_size, obs_size, 3) uint8``."""
        f = self.validate_factors(factors)
        out = np.empty((len(f), *self.observation_shape), dtype=np.uint8)
        for i, row in enumerate(f):
            out[i] = self._render(*(int(v) for v in row))
        return out

    def _render(self, floor: int, wall: int, obj: int, lateral: int, depth: int, heading: int, light: int) -> np.ndarray:
        from envs.seekavoid.env import _AMBIENT, _DIFFUSE, SeekObject, _pattern_texture

        env = self.env
        room = env.room
        fs, ws = ROOM_STYLES[_STYLES[floor]], ROOM_STYLES[_STYLES[wall]]
        room.floor_color, room.floor_tex = fs.floor, _pattern_texture(fs.floor_pattern)
        room.wall_color, room.wall_tex = ws.wall, _pattern_texture(ws.wall_pattern)
        pair, kind = _OBJECTS[obj]
        spec = getattr(PAIRS[pair], kind)
        ent = SeekObject(spec, 1.0 if kind == "good" else -1.0, spec.color)
        ent.pos = np.array([_AGENT[0] + self.DEPTH[depth], 0.0, _AGENT[1] + self.LATERAL[lateral]])
        ent.dir = math.radians(self.HEADING_DEG[heading])
        agent = env.agent
        agent.pos, agent.dir = np.array([_AGENT[0], 0.0, _AGENT[1]]), 0.0
        agent.cam_height, agent.cam_pitch, agent.cam_fov_y, agent.cam_fwd_disp = _CAM_HEIGHT, _CAM_PITCH, 60.0, 0.0
        env.entities = [agent, ent]
        env.objects = [ent]
        level = self.LIGHT[light]
        env.light_ambient = np.full(3, _AMBIENT * level)
        env.light_color = np.full(3, _DIFFUSE * level)
        env._render_static()
        return env.render_obs().copy()


__all__ = ["SeekAvoidFactors"]
