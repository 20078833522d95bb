"""Checkpoints: a directory with ``model.safetensors`` (weights) and ``config.json`` (name, config,
digest). Nothing is unpickled, so loading a checkpoint never executes code.

Writes are atomic (temp file + rename), and the weights' SHA-256 is stored in the JSON, so a
truncated or mismatched pair is detected before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from atomicio import atomic_write_bytes, fsync_replace, temp_path
from vision.base import VisionModel, build_config, config_dict, model_class

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or does not match its config."""


def save(model: VisionModel, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Save ``model`` to directory ``path`` (created). ``extra`` is stored in the JSON (e.g. probe results).

    The weights are written first and the JSON last, so a checkpoint whose JSON exists is complete.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = temp_path(path, WEIGHTS)
    mode = os.stat(tmp).st_mode
    try:
        save_file(state, tmp)  # writes the file anew: give it back the normal mode temp_path set
        os.chmod(tmp, mode)
        digest = _sha256(Path(tmp))
        fsync_replace(tmp, path / WEIGHTS)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    meta = {
        "format": FORMAT_VERSION,
        "model": model.name,
        "config": config_dict(model),
        "feature_dim": model.feature_dim,
        "global_step": int(model.global_step),
        "sha256": digest,
        "extra": extra or {},
    }
    atomic_write_bytes(path / CONFIG, json.dumps(meta, indent=2, sort_keys=True).encode())
    return path


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON half of a checkpoint, validated; raises :class:`CheckpointError` with the fix."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"no vision checkpoint at '{path}': expected a directory with {WEIGHTS} and {CONFIG} "
            "(made by vision.save or `darla train-vision`)"
        )
    cfg = path / CONFIG
    if not cfg.exists():
        raise CheckpointError(f"checkpoint '{path}' has no {CONFIG}; it was not finished or is not a darla checkpoint")
    try:
        meta = json.loads(cfg.read_text())
    except ValueError as e:  # JSONDecodeError, or UnicodeDecodeError for binary content (e.g. a pickle)
        raise CheckpointError(f"checkpoint '{path}': {CONFIG} is not valid JSON ({e}); retrain or restore it") from None
    for key in ("model", "config", "sha256"):
        if key not in meta:
            raise CheckpointError(f"checkpoint '{path}': {CONFIG} lacks '{key}'")
    return meta


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> VisionModel:
    """Load a checkpoint written by :func:`save`, in eval mode. Verifies the weights' digest and keys."""
    path = Path(path)
    meta = read_meta(path)
    weights = path / WEIGHTS
    if not weights.exists():
        raise CheckpointError(f"checkpoint '{path}' has no {WEIGHTS}")
    if _sha256(weights) != meta["sha256"]:
        raise CheckpointError(
            f"checkpoint '{path}': {WEIGHTS} does not match the digest in {CONFIG} "
            "(truncated, corrupt or replaced); retrain or restore it"
        )
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"checkpoint '{path}': cannot read {WEIGHTS} ({e})") from None
    cls = model_class(meta["model"])
    model = cls(build_config(cls.config_cls, meta["config"], model=meta["model"]))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # same keys, other shapes (e.g. another model's or config's weights)
        raise CheckpointError(
            f"checkpoint '{path}' does not fit model '{meta['model']}' with its config: "
            f"{str(e).splitlines()[-1].strip()}"
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint '{path}' does not fit model '{meta['model']}': missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model.to(device).eval()


def checkpoint_id(path: str | os.PathLike) -> str:
    """A short identity of a checkpoint (its weights' digest), to pin policies to their vision."""
    return read_meta(path)["sha256"][:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
