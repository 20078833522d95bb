"""Latent traversals (Higgins et al. 2017, fig. 1/7): vary one latent, hold the others, decode.

The grid, written as one PNG::

    row 0      originals
    row 1      reconstructions  decode(features(x))
    row 2 + k  latent j_k swept over base_j ± span, the others held at the first image's code

Latent rows are ordered by KL(q(z_j|x) ‖ N(0, 1)) averaged over the given images, descending, so the
informative latents come first and collapsed ones (KL ≈ 0, flat rows) last. Models whose code is not
a Gaussian posterior (AE, DAE) are ordered by the code's variance over the images instead, and swept
in units of that standard deviation.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from vision.base import VisionModel, list_models, model_class, to_tensor
from vision.checkpoint import atomic_write_bytes
from vision.nets import kl_normal_per_latent

PAD = 2  # px between cells
LABEL_WIDTH = 96  # px of the left column holding row labels
MIN_CELL = 48  # small frames are upscaled (nearest) to at least this many px per cell


def cell_size(image_size: int) -> int:
    """Side of one grid cell in px for frames of ``image_size``."""
    return image_size * max(1, -(-MIN_CELL // image_size))


def grid_shape(image_size: int, rows: int, cols: int) -> tuple[int, int]:
    """``(height, width)`` of the PNG for ``rows`` × ``cols`` cells (plus the label column)."""
    cell = cell_size(image_size)
    return PAD + rows * (cell + PAD), LABEL_WIDTH + PAD + cols * (cell + PAD)


@torch.no_grad()
def latent_scores(model: VisionModel, x: torch.Tensor) -> tuple[np.ndarray, str]:
    """Per-latent ordering score over images ``x``: ``(KL per latent, "KL")`` for Gaussian posteriors,
    ``(variance of the code, "var")`` otherwise. Shapes ``(latents,)``."""
    enc = model.encode(x)
    if isinstance(enc, (tuple, list)) and len(enc) == 2:
        mu, logvar = enc
        return kl_normal_per_latent(mu, logvar).cpu().numpy(), "KL"
    code = model.features(x)
    return code.var(0, unbiased=False).cpu().numpy(), "var"


@torch.no_grad()
def traverse(
    model: VisionModel,
    images: np.ndarray,
    out_png: str | os.PathLike,
    n_originals: int = 8,
    steps: int = 9,
    span: float = 3.0,
    sort_by_kl: bool = True,
    from_zero: bool = False,
    max_latents: int | None = None,
) -> Path:
    """Write the traversal grid of ``model`` on ``images`` to ``out_png`` (atomically); return its path.

    :param model: a generative vision model (one with ``decode``).
    :param images: ``(N, H, W, C)`` uint8 frames; the KL ordering uses all N, the originals row the first
        ``n_originals``, the sweep is centred on the first image's code.
    :param n_originals: originals/reconstructions shown in rows 0 and 1.
    :param steps: values per latent row (columns).
    :param span: sweep from base − span to base + span (posterior σ-units of the prior for Gaussian
        latents; code standard deviations for AE codes).
    :param sort_by_kl: order latent rows by KL (descending); otherwise by index.
    :param from_zero: centre the sweep on 0 instead of the first image's code.
    :param max_latents: draw only the first this many latent rows (the most informative ones when
        sorted by KL); ``None`` draws every latent.
    """
    if not model.generative:
        generative = [n for n in list_models() if model_class(n).generative]
        raise ValueError(
            f"model '{model.name}' has no decoder, so it cannot draw a latent traversal; "
            f"traversals exist for the generative models: {', '.join(generative)}"
        )
    images = np.asarray(images)
    c = model.config
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1:] != (c.image_size, c.image_size, c.channels):
        raise ValueError(
            f"traverse expects uint8 frames (N, {c.image_size}, {c.image_size}, {c.channels}) for model "
            f"'{model.name}', got {images.shape} {images.dtype}"
        )
    if len(images) < 1 or n_originals < 1 or steps < 2:
        raise ValueError(f"traverse needs >= 1 image, n_originals >= 1 and steps >= 2; got "
                         f"{len(images)} images, n_originals={n_originals}, steps={steps}")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = to_tensor(images, device)  # (N, C, H, W)
        shown = x[:n_originals]
        recon = model.decode(model.features(shown))
        scores, score_name = latent_scores(model, x)
        code = model.features(x)  # (N, latents)
        base = torch.zeros_like(code[0]) if from_zero else code[0]
        unit = torch.ones_like(base) if score_name == "KL" else code.std(0, unbiased=False).clamp_min(1e-6)
        order = np.argsort(-scores, kind="stable") if sort_by_kl else np.arange(len(scores))
        if max_latents is not None:
            if max_latents < 1:
                raise ValueError(f"max_latents must be >= 1 or None, got {max_latents}")
            order = order[:max_latents]
        offsets = torch.linspace(-span, span, steps, device=device)
        rows = [(_to_uint8(shown), "original"), (_to_uint8(recon), "reconstruction")]
        for j in order:
            z = base.repeat(steps, 1)  # (steps, latents)
            z[:, j] = base[j] + offsets * unit[j]
            rows.append((_to_uint8(model.decode(z)), f"z{j} {score_name} {scores[j]:.2f}"))
    finally:
        model.train(was_training)
    png = _compose(rows, c.image_size, cols=max(n_originals, steps))
    ok, buf = cv2.imencode(".png", png[..., ::-1] if png.shape[-1] == 3 else png)
    if not ok:
        raise RuntimeError(f"could not encode the traversal PNG for {out_png}")
    out_png = Path(out_png)
    atomic_write_bytes(out_png, buf.tobytes())
    return out_png


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(B, C, H, W)`` float in [0, 1] → ``(B, H, W, C)`` uint8."""
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _compose(rows: list[tuple[np.ndarray, str]], image_size: int, cols: int) -> np.ndarray:
    """Tile rows of ``(k, H, W, C)`` uint8 cells into one ``(height, width, 3)`` RGB image with labels."""
    cell = cell_size(image_size)
    height, width = grid_shape(image_size, len(rows), cols)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    scale = cell // image_size
    for r, (cells, label) in enumerate(rows):
        y = PAD + r * (cell + PAD)
        for k, img in enumerate(cells[:cols]):
            img = np.repeat(np.repeat(img, scale, 0), scale, 1)
            if img.shape[-1] == 1:
                img = np.repeat(img, 3, -1)
            x0 = LABEL_WIDTH + PAD + k * (cell + PAD)
            canvas[y : y + cell, x0 : x0 + cell] = img[..., :3]
        cv2.putText(canvas, label, (3, y + cell // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
