"""``darla metrics``: disentanglement metrics of a vision checkpoint (or any frames → codes function) on
a ground-truth factor dataset."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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


def kl_per_latent(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray | None:
    """Mean KL(q(z_j|x) ‖ N(0, 1)) per latent ``(latents,)`` over ``images``, or ``None`` for models
    whose ``encode`` is not a Gaussian ``(mu, logvar)``."""
    import torch

    import vision

    mus, logvars = [], []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            post = model.encode(vision.to_tensor(images[i:i + batch_size]))
            if not (isinstance(post, tuple) and len(post) == 2):
                return None
            mus.append(post[0].double().numpy())
            logvars.append(post[1].double().numpy())
    mu, logvar = np.concatenate(mus), np.concatenate(logvars)
    return (0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)).mean(axis=0)


def udr_of_checkpoints(images: np.ndarray, checkpoints, seed: int = 0) -> dict:
    """UDR (Duan et al. 2020) of several checkpoints (e.g. the seeds of one setting) on the same
    ``images``: Lasso similarity, latents with mean KL ≤ 0.01 left out when every model is Gaussian (the
    paper's filter). Observations only, never factors: usable for model selection."""
    import vision
    from vision.metrics import udr_from_codes

    codes, kls = [], []
    for ckpt in checkpoints:
        model = vision.load(ckpt)
        codes.append(representation_of(model)(images))
        kls.append(kl_per_latent(model, images))
    kl = None if any(k is None for k in kls) else kls
    return udr_from_codes(codes, kl=kl, seed=seed)


#: Factor datasets with at most this many combinations are rendered once as a grid for the metrics.
GRID_LIMIT = 50_000


def memoised_representation(represent: Callable[[np.ndarray], np.ndarray], known_images: np.ndarray,
                            batch_size: int = 256) -> Callable[[np.ndarray], np.ndarray]:
    """``represent`` with the codes of ``known_images (N, H, W, C)`` computed once and looked up by the
    images' bytes; images not among them go through ``represent``. Exact for deterministic features
    (``model.features`` is deterministic: the posterior mean, not a sample)."""
    codes = np.concatenate([represent(known_images[i:i + batch_size]) for i in range(0, len(known_images), batch_size)])
    index = {img.tobytes(): i for i, img in enumerate(known_images)}

    def lookup(images: np.ndarray) -> np.ndarray:
        rows = np.array([index.get(img.tobytes(), -1) for img in images], dtype=np.int64)
        out = np.empty((len(images), codes.shape[1]), codes.dtype)
        hit = rows >= 0
        out[hit] = codes[rows[hit]]
        if not hit.all():
            out[~hit] = represent(images[~hit])
        return out

    return lookup


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
                       out: str | Path | None = None, fast: bool = False, grid_cache: str | Path | None = None,
                       progress: bool = True, device: str = "cpu") -> tuple[Path, str]:
    """Metrics of a saved vision model; writes JSON and returns ``(json_path, markdown_table)``.

    A dataset with at most :data:`GRID_LIMIT` factor combinations (``seekavoid-factors``) is rendered
    once as a grid (cached in ``grid_cache``, an ``.npy``, when given) and encoded once per image.
    ``device``: where the model encodes (the metrics themselves run on the CPU, in NumPy/scikit-learn).
    """
    import envs
    import vision
    from vision.checkpoint import atomic_write_bytes
    from vision.metrics import metrics_table

    model = vision.load(checkpoint, device=device)
    size_kw = "image_size" if dataset == "dsprites" else "obs_size"
    data = envs.factor_dataset(dataset, **{size_kw: model.config.image_size})
    h, w, c = data.observation_shape
    if (h, c) != (model.config.image_size, model.config.channels):
        raise ValueError(
            f"checkpoint '{checkpoint}' takes {model.config.image_size}×{model.config.image_size}×{model.config.channels} "
            f"images but dataset '{dataset}' renders {h}×{w}×{c}; train a model on that dataset's images"
        )
    represent = representation_of(model, device=device)
    if data.num_combinations <= GRID_LIMIT:  # render each image once, encode each once: same numbers, ~30× faster
        data = envs.grid_dataset(data, cache_file=grid_cache, progress=progress)
        represent = memoised_representation(represent, data.grid_images)
    results = metrics_for(represent, data, metrics, seed=seed, fast=fast)
    out = Path(out) if out else Path(checkpoint) / f"metrics-{dataset}.json"
    payload = {"checkpoint": str(checkpoint), "model": model.name, "dataset": dataset, "seed": seed, "fast": fast,
               "results": results}
    atomic_write_bytes(out, json.dumps(payload, indent=2, default=float).encode())
    return out, metrics_table(results)
