"""One OpenGL display list per miniworld env, so envs that share a process draw their own scenes.

miniworld (2.1) compiles each env's static scene (light, rooms, static entities) into display list ``1`` at
every reset and calls list ``1`` at every frame. The GL contexts of one process share their display lists,
so two miniworld envs in one process (a ``DummyVecEnv``, an evaluation of several domains, a test) each draw
the scene of whichever env reset last: a ``MiniWorld-OneRoom-v0`` with ``domain_rand=True`` next to a
default one shows the other's textures and light.

:func:`render_static` and :func:`render_world` are miniworld's ``_render_static`` / ``_render_world`` with
a list of the env's own (``env._static_list``, never ``1``); :class:`envs.seekavoid.SeekAvoidEnv` uses them
as its methods, and :func:`own_display_list` puts them on any other miniworld env instance
(:meth:`envs.spec.DomainSpec.make_env` does so for every env whose unwrapped class comes from miniworld).
A lone env's frames are unchanged (the same GL calls in the same order).

Import this module only after ``PYGLET_HEADLESS`` is set (:mod:`envs` sets it), like miniworld itself.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any

from pyglet.gl import (
    GL_AMBIENT,
    GL_AMBIENT_AND_DIFFUSE,
    GL_COLOR_MATERIAL,
    GL_COMPILE,
    GL_DIFFUSE,
    GL_FRONT_AND_BACK,
    GL_LIGHT0,
    GL_LIGHTING,
    GL_POSITION,
    GL_SMOOTH,
    GL_TEXTURE_2D,
    GLfloat,
    glCallList,
    glColorMaterial,
    glDeleteLists,
    glEnable,
    glEndList,
    glGenLists,
    glLightfv,
    glNewList,
    glShadeModel,
)


def render_static(env: Any) -> None:
    """Compile ``env``'s static scene into its own display list (allocated on first use, never list 1,
    which plain miniworld envs overwrite); called by miniworld at every reset."""
    if getattr(env, "_static_list", None) is None:
        env._static_list = int(glGenLists(1))
        if env._static_list == 1:  # keep clear of the list unpatched miniworld envs overwrite
            env._static_list = int(glGenLists(1))
    glNewList(env._static_list, GL_COMPILE)
    # as miniworld: light_pos is an array, so ``+ [1]`` adds 1 to each coordinate and w stays 0 (a
    # directional light); kept so a lone env's frames are unchanged
    glLightfv(GL_LIGHT0, GL_POSITION, (GLfloat * 4)(*env.light_pos + [1]))
    glLightfv(GL_LIGHT0, GL_AMBIENT, (GLfloat * 4)(*env.light_ambient))
    glLightfv(GL_LIGHT0, GL_DIFFUSE, (GLfloat * 4)(*env.light_color))
    glEnable(GL_LIGHTING)
    glEnable(GL_LIGHT0)
    glShadeModel(GL_SMOOTH)
    glEnable(GL_COLOR_MATERIAL)
    glColorMaterial(GL_FRONT_AND_BACK, GL_AMBIENT_AND_DIFFUSE)
    glEnable(GL_TEXTURE_2D)
    for room in env.rooms:
        room._render()
    for ent in env.entities:
        if ent.is_static:
            ent.render()
    glEndList()


def render_world(env: Any, frame_buffer, render_agent: bool):
    """Draw ``env``'s own static list, then its moving entities (and the agent), into ``frame_buffer``."""
    glCallList(env._static_list)
    for ent in env.entities:
        if not ent.is_static and ent is not env.agent:
            ent.render()
    if render_agent:
        env.agent.render()
    return frame_buffer.resolve()


def release(env: Any) -> None:
    """Free ``env``'s display list (idempotent; silent when no GL context is left at interpreter exit)."""
    if getattr(env, "_static_list", None) is not None:
        with contextlib.suppress(Exception):
            glDeleteLists(env._static_list, 1)
        env._static_list = None


def own_display_list(env: Any) -> Any:
    """Give the miniworld env instance ``env`` (unwrapped) a display list of its own: its ``_render_static``,
    ``_render_world`` and ``close`` become :func:`render_static`, :func:`render_world` and ``close`` after
    :func:`release`. Call it before the first reset (``gymnasium.make`` does not reset). Idempotent; envs
    whose class already uses these functions (SeekAvoid) are left as they are. Returns ``env``."""
    if type(env)._render_static is render_static or getattr(env, "_own_display_list", False):
        return env
    env._static_list = None
    env._render_static = types.MethodType(render_static, env)
    env._render_world = types.MethodType(render_world, env)
    close = env.close

    def close_and_release() -> None:
        release(env)
        close()

    env.close = close_and_release
    env._own_display_list = True
    return env


__all__ = ["own_display_list", "release", "render_static", "render_world"]
