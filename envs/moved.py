"""Where the modules of earlier versions live now, so that names they wrote into files still resolve.

Files record a module path in one place: a factor grid cache's ``.npy.json`` sidecar names its dataset's class
(:func:`envs.factors.grid_cache_key`, e.g. ``envs.seekavoid_factors.SeekAvoidFactors``). Reading such a record,
:func:`current_name` maps the old path to the current one, so a cache written before a module moved stays
valid instead of being re-rendered. Provider strings (:func:`envs.spec.register_provider`) go through it too.

The old entry point ``envs.seekavoid:SeekAvoidEnv`` needs no entry here: ``envs.seekavoid`` is now the
package, which resolves the env module's names itself. Policies (``policy.json``) and collected datasets
(``meta.json``) record env ids (``darla/SeekAvoid-v0``), not module paths.
"""

from __future__ import annotations

#: old module -> current module. Issue #17: SeekAvoid became the package ``envs/seekavoid/``.
MOVED_MODULES: dict[str, str] = {
    "envs.domains": "envs.seekavoid.domains",
    "envs.seekavoid_factors": "envs.seekavoid.factors",
    "envs.seekavoid_provider": "envs.seekavoid.provider",
}


def current_name(name: str) -> str:
    """``name`` (``"module:attr"`` or ``"module.Class"``) with a moved module replaced by where it lives now;
    any other name unchanged."""
    if ":" in name:
        module, _, attr = name.partition(":")
        sep = ":"
    else:
        module, _, attr = name.rpartition(".")
        sep = "."
    if module in MOVED_MODULES:
        return f"{MOVED_MODULES[module]}{sep}{attr}"
    return name


__all__ = ["MOVED_MODULES", "current_name"]
