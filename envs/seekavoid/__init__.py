"""SeekAvoid, darla's own miniworld task, as one provider of the generic ``envs`` core.

* ``envs.seekavoid.domains`` — its scene parameters (:class:`Domain`: room styles, object pairs, camera), the
  built-in domains and splits, and the leakage rule;
* ``envs.seekavoid.env`` — the miniworld env (``darla/SeekAvoid-v0``);
* ``envs.seekavoid.provider`` — its :class:`envs.spec.Provider` (domains, splits, native multi-domain env);
* ``envs.seekavoid.factors`` — the ``seekavoid-factors`` ground-truth factor dataset.

The env module imports miniworld (and OpenGL), so it loads on first use: ``envs.seekavoid.SeekAvoidEnv`` and
the other names of ``envs.seekavoid.env`` resolve here lazily, and the entry point ``envs.seekavoid:SeekAvoidEnv``
of earlier versions (a flat ``envs/seekavoid.py`` module) keeps working.
"""

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    env = importlib.import_module("envs.seekavoid.env")  # not `from . import env`: that asks __getattr__
    try:
        return getattr(env, name)
    except AttributeError:
        raise AttributeError(f"module 'envs.seekavoid' has no attribute {name!r}") from None
