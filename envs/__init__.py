"""darla.envs: domains for any gymnasium env (``DomainSpec``, ``DomainCatalog``; SeekAvoid on miniworld is
one provider), domain-shift wrappers, stage-1 frame datasets and ground-truth factor datasets.

Importing this package makes miniworld render headless (``PYGLET_HEADLESS=1``, set before miniworld
or pyglet is imported; set it to ``0`` yourself beforehand to get a window) and registers
``darla/SeekAvoid-v0`` and ``darla/Domains-v0`` (the env of a list of domain specs) with gymnasium.
It imports neither miniworld nor torch: they load on first use.
"""

import os

os.environ.setdefault("PYGLET_HEADLESS", "1")

import gymnasium

from envs.factors import (
    FactorDataset,
    GridFactorDataset,
    factor_dataset,
    grid_dataset,
    list_factor_datasets,
    register_factor_dataset,
)

if "darla/SeekAvoid-v0" not in gymnasium.registry:
    gymnasium.register(id="darla/SeekAvoid-v0", entry_point="envs.seekavoid.env:SeekAvoidEnv")
if "darla/Domains-v0" not in gymnasium.registry:
    gymnasium.register(id="darla/Domains-v0", entry_point="envs.spec:make_domains_env", disable_env_checker=True)

# Shared file: each module appends its own export line below.
from envs.collect import collect_frames
from envs.dsprites import DSprites
from envs.seekavoid.domains import (
    Domain,
    RoomStyle,
    get_domain,
    get_split,
    is_source_split,
    list_domains,
    list_splits,
    load_domains_yaml,
    resolve_domains,
)
from envs.spec import (
    DomainCatalog,
    DomainSpec,
    Provider,
    make_domains_env,
    provider_of,
    register_provider,
)
from envs.wrappers import (
    WRAPPERS,
    ActionRepeat,
    Background,
    Brightness,
    ColorJitter,
    ColorTint,
    Crop,
    FrameResize,
    HueShift,
    RandomConv,
    Shift,
    TextureNoise,
    apply_wrapper,
)

register_provider("darla/SeekAvoid-v0", "envs.seekavoid.provider:SeekAvoidProvider")
from envs.seekavoid.factors import SeekAvoidFactors  # noqa: E402  (registers "seekavoid-factors")


def __getattr__(name: str):
    # envs.frames imports torch: load it on first use so `import envs` (and every collection worker) stays light.
    # If another lazy export is needed, add a branch here rather than a second __getattr__.
    if name == "FrameDataset":
        from envs.frames import FrameDataset

        return FrameDataset
    if name == "SeekAvoidEnv":  # imports miniworld (OpenGL): on first use only
        from envs.seekavoid.env import SeekAvoidEnv

        return SeekAvoidEnv
    raise AttributeError(f"module 'envs' has no attribute {name!r}")
