"""The one interface every vision model implements, and the registry that builds them.

A model is a ``torch.nn.Module`` subclass of :class:`VisionModel` with a config dataclass. Inputs are
float images in ``[0, 1]``, shape ``(batch, channels, height, width)``; use :func:`to_tensor` to turn
``(batch, height, width, channels) uint8`` frames into that.

* ``loss(x) -> dict[str, Tensor]``: named scalar terms, the total under ``"loss"``;
* ``train_step(x, optimizers) -> dict[str, float]``: one update (override for several optimisers);
* ``encode(x)``: the posterior parameters or code; ``features(x)``: the deterministic vector an agent
  sees (posterior mean), shape ``(batch, feature_dim)``; ``decode(z)``: images in ``[0, 1]``.

The registry (:func:`register`, :func:`make`, :func:`list_models`) is the only way the rest of darla
builds a model, so a new model is one new module and one decorator.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

_REGISTRY: dict[str, type[VisionModel]] = {}


class ConfigError(ValueError):
    """A model config has an unknown field or a value of the wrong type or range."""


@dataclass
class VisionConfig:
    """Fields every model shares. Subclasses add their own (with defaults)."""

    channels: int = 3
    image_size: int = 64
    latents: int = 32
    lr: float = 1e-4

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the field if a value is out of range. Extend in subclasses."""
        if self.channels < 1:
            raise ConfigError(f"channels must be >= 1, got {self.channels}")
        if self.image_size < 16 or self.image_size & (self.image_size - 1):
            raise ConfigError(f"image_size must be a power of two >= 16, got {self.image_size}")
        if self.latents < 1:
            raise ConfigError(f"latents must be >= 1, got {self.latents}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")


def build_config(cls: type[VisionConfig], values: dict[str, Any], model: str = "") -> VisionConfig:
    """Build and validate a config dataclass; unknown fields and wrong types fail with the field name."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config field(s) {unknown} for model '{model or cls.__name__}'; "
            f"valid fields: {', '.join(sorted(known))}"
        )
    hints = typing.get_type_hints(cls)
    coerced = {}
    for key, value in values.items():
        coerced[key] = _coerce(key, value, hints.get(key), model or cls.__name__)
    config = cls(**coerced)
    config.validate()
    return config


def _coerce(key: str, value: Any, hint: Any, model: str) -> Any:
    """Accept ints for floats (and strings from the CLI), refuse anything else of the wrong type."""
    if hint is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError
            return bool(value)
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        if typing.get_origin(hint) in (tuple, list) and isinstance(value, (list, tuple)):
            return type(value)(value) if typing.get_origin(hint) is list else tuple(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"config field '{key}' of model '{model}' expects {getattr(hint, '__name__', hint)}, "
            f"got {value!r}"
        ) from None
    return value


class VisionModel(nn.Module):
    """Base class of the zoo. Subclasses set ``config_cls`` and implement ``loss``/``encode``/``features``."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[VisionConfig]] = VisionConfig
    #: Whether ``decode`` exists (traversals are drawn for generative models only).
    generative: ClassVar[bool] = True
    #: Whether ``train_vision(precision="auto")`` may train this model under bf16 autocast: set only
    #: after checking that its loss keeps reductions/KL in fp32 and its loss curve matches fp32's.
    autocast_safe: ClassVar[bool] = False
    #: Whether ``train_vision(workers=W)`` may split each minibatch over ``W`` processes and average their
    #: gradients (:mod:`vision.parallel`): set only where every loss term is a batch mean of per-sample
    #: terms and no state other than the parameters changes in a step.
    data_parallel_safe: ClassVar[bool] = False

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.config = config
        # Counts optimiser updates; saved with the weights so schedules (e.g. CCI-VAE's capacity) resume.
        self.register_buffer("global_step", torch.zeros((), dtype=torch.long))

    # -- the interface -------------------------------------------------------------------------
    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Named scalar loss terms for a batch ``x`` (float, ``(B, C, H, W)`` in [0, 1]); total under ``"loss"``."""
        raise NotImplementedError

    def encode(self, x: Tensor) -> Any:
        """Posterior parameters (e.g. ``(mu, logvar)``) or a deterministic code."""
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        """The deterministic vector an agent sees, ``(B, feature_dim)``: the posterior mean."""
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        """Images in [0, 1], ``(B, C, H, W)``, from latents ``(B, latents)``."""
        raise NotImplementedError(f"model '{self.name}' is not generative")

    @property
    def feature_dim(self) -> int:
        return self.config.latents

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Optimisers used by :meth:`train_step`; one Adam over trainable parameters by default."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [torch.optim.Adam(params, lr=self.config.lr)]

    def target_cache(self, frames: Tensor | np.ndarray, device: torch.device | str | None = None) -> Tensor | None:
        """Fixed per-frame training targets, computed once before training (``None``: this model has none).

        A model whose loss compares against something that depends only on the clean frame and never
        changes during training (β-VAE_DAE's frozen-DAE features J(x)) returns them here as ``(N, ...)``;
        the training loop then passes the minibatch's rows to ``train_step(x, optimizers, target=...)``
        instead of the model recomputing them every step.

        :param frames: all ``(N, H, W, C)`` uint8 training frames (a tensor or an array).
        :param device: where the targets should live (the training device).
        """
        return None

    def train_step(self, x: Tensor, optimizers: list[torch.optim.Optimizer], target: Tensor | None = None
                   ) -> dict[str, float]:
        """One update on batch ``x``; returns the logged terms as floats. Increments ``global_step``.

        :param target: the rows of :meth:`target_cache` for ``x`` (only models that define one get it).
        """
        (opt,) = optimizers
        terms = self.loss(x) if target is None else self.loss(x, target=target)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        self.global_step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    def extra_logs(self, x: Tensor) -> dict[str, Tensor]:
        """Optional vectors to log (e.g. ``kl_per_latent``, shape ``(latents,)``). Empty by default."""
        return {}


def register(name: str) -> Callable[[type[VisionModel]], type[VisionModel]]:
    """Class decorator adding a model to the registry under ``name``."""

    def deco(cls: type[VisionModel]) -> type[VisionModel]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"vision model '{name}' registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def list_models() -> list[str]:
    """Names of every registered vision model, sorted."""
    return sorted(_REGISTRY)


def model_class(name: str) -> type[VisionModel]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown vision model '{name}'; valid: {', '.join(list_models())}") from None


def make(name: str, **config: Any) -> VisionModel:
    """Build model ``name`` with config overrides, e.g. ``make("beta_vae", beta=4, latents=10)``."""
    cls = model_class(name)
    return cls(build_config(cls.config_cls, config, model=name))


def config_dict(model: VisionModel) -> dict[str, Any]:
    return dataclasses.asdict(model.config)


def to_tensor(
    frames: np.ndarray | Tensor, device: torch.device | str | None = None, channels_first: bool = False
) -> Tensor:
    """Frames -> contiguous float32 ``(B, C, H, W)`` in [0, 1], the input of ``VisionModel.features``.

    :param frames: ``(B, H, W, C)`` or ``(H, W, C)`` (``(B, C, H, W)`` or ``(C, H, W)`` if
        ``channels_first``); uint8 in [0, 255] is divided by 255, float in [0, 1] is kept as it is
        (cast to float32)
    :param device: torch device of the result (default: where ``frames`` already are, CPU for arrays)
    :param channels_first: whether the channel axis comes before height and width
    """
    if isinstance(frames, np.ndarray) and not frames.flags.writeable:
        frames = frames.copy()  # read-only (a memory-mapped dataset): torch would warn on every batch
    t = torch.as_tensor(frames, device=device)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        layout = "(B, C, H, W)" if channels_first else "(B, H, W, C)"
        raise ValueError(f"expected frames of shape {layout}, got {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.float().div_(255.0)
    else:
        t = t.float()
    if not channels_first:
        t = t.permute(0, 3, 1, 2)
    return t.contiguous()
