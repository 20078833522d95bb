"""``darla metrics``: disentanglement metrics of a vision checkpoint (or any frames → codes function) on
a ground-truth factor dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np


def representation_of(model, batch_size: int = 256, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """``frames (n, H, W, C) uint8 → codes (n, feature_dim)`` using ``model.features`` (no grad, batched)."""
    import torch

    import vision

    model = model.to(device).eval()

    def represent(frames: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(frames), batch_size):
                out.append(model.features(vision.to_tensor(frames[i:i + batch_size], device=device)).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    return represent


def metrics_for(representation: Callable[[np.ndarray], np.ndarray], dataset, metrics: str | list | None = None,
                seed: int = 0, fast: bool = False) -> dict:
    """All (or the named) metrics of ``representation`` on ``dataset`` (a factor-dataset name or object)."""
    import envs
    from vision.metrics import evaluate_metrics

    data = envs.factor_dataset(dataset) if isinstance(dataset, str) else dataset
    names = metrics.split(",") if isinstance(metrics, str) else metrics
    kwargs = {"seed": seed, "fast": fast}
    if names:
        kwargs["metrics"] = tuple(n.strip() for n in names if n.strip())
    return evaluate_metrics(data, representation, **kwargs)


def checkpoint_metrics(checkpoint: str | Path, dataset: str, metrics: str | list | None = None, seed: int = 0,
                       out: str | Path | None = None, fast: bool = False) -> tuple[Path, str]:
    """Metrics of a saved vision model; writes JSON and returns ``(json_path, markdown_table)``."""
    import envs
    import vision
    from vision.checkpoint import atomic_write_bytes
    from vision.metrics import metrics_table

    model = vision.load(checkpoint)
    size_kw = "image_size" if dataset == "dsprites" else "obs_size"
    data = envs.factor_dataset(dataset, **{size_kw: model.config.image_size})
    h, w, c = data.observation_shape
    if (h, c) != (model.config.image_size, model.config.channels):
        raise ValueError(
            f"checkpoint '{checkpoint}' takes {model.config.image_size}×{model.config.image_size}×{model.config.channels} "
            f"images but dataset '{dataset}' renders {h}×{w}×{c}; train a model on that dataset's images"
        )
    results = metrics_for(representation_of(model), data, metrics, seed=seed, fast=fast)
    out = Path(out) if out else Path(checkpoint) / f"metrics-{dataset}.json"
    payload = {"checkpoint": str(checkpoint), "model": model.name, "dataset": dataset, "seed": seed, "fast": fast,
               "results": results}
    atomic_write_bytes(out, json.dumps(payload, indent=2, default=float).encode())
    return out, metrics_table(results)
