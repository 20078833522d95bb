"""darla.vision: the disentanglement zoo behind one interface (stage 1, "learn to see").

``vision.list_models()`` names the models, ``vision.make(name, **config)`` builds one,
``vision.save(model, path)`` / ``vision.load(path)`` write and read safetensors + JSON checkpoints.
Every module in ``vision/models/`` registers itself on import.
"""

import importlib
import pkgutil

from vision import models as _models
from vision.base import (
    ConfigError,
    VisionConfig,
    VisionModel,
    build_config,
    list_models,
    make,
    model_class,
    register,
    to_tensor,
)
from vision.checkpoint import CheckpointError, load, save

for _mod in pkgutil.iter_modules(_models.__path__):
    importlib.import_module(f"vision.models.{_mod.name}")

__all__ = [
    "CheckpointError",
    "ConfigError",
    "VisionConfig",
    "VisionModel",
    "build_config",
    "list_models",
    "load",
    "make",
    "model_class",
    "register",
    "save",
    "to_tensor",
]
