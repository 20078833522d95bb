"""Fixtures for the vision tests: tiny, deterministic image batches (16×16 and 32×32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def blocks_frames(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, size, size, 3)`` uint8 frames of one coloured square on a tinted floor, and their factors.

    Factors ``(n, 3)`` float32: square x position (0..3), square colour (0..2), floor tint (0..1).
    Structured (not noise), so an autoencoder's loss falls quickly and a probe has something to find.
    """
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, size, size, 3), dtype=np.uint8)
    xpos = rng.integers(0, 4, size=n)
    colour = rng.integers(0, 3, size=n)
    tint = rng.random(n).astype(np.float32)
    side = size // 4
    palette = np.array([[230, 40, 40], [40, 230, 40], [40, 40, 230]], dtype=np.uint8)
    for i in range(n):
        frames[i, :, :] = (np.array([60, 60, 60]) + tint[i] * np.array([120, 80, 0])).astype(np.uint8)
        x0 = xpos[i] * side
        y0 = size // 2 - side // 2
        frames[i, y0 : y0 + side, x0 : x0 + side] = palette[colour[i]]
    factors = np.stack([xpos, colour, tint], axis=1).astype(np.float32)
    return frames, factors


@pytest.fixture(scope="session")
def frames16() -> np.ndarray:
    return blocks_frames(64, 16)[0]


@pytest.fixture(scope="session")
def frames32() -> np.ndarray:
    return blocks_frames(64, 32)[0]


@pytest.fixture
def batch16(frames16: np.ndarray) -> torch.Tensor:
    from vision import to_tensor

    return to_tensor(frames16[:16])


def squares_batch(n: int = 16, size: int = 16) -> torch.Tensor:
    """A fixed batch ``(n, 3, size, size)`` float of 5×5 squares at different places, each one colour on
    black: something with structure to reconstruct. The same tensor on every call (seeded generator)."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 3, size, size)
    for i in range(n):
        r, c = torch.randint(0, size - 5, (2,), generator=g).tolist()
        x[i, :, r : r + 5, c : c + 5] = torch.rand(3, 1, 1, generator=g)
    return x


def bernoulli_floor(x: torch.Tensor) -> float:
    """The smallest possible Bernoulli reconstruction loss of ``x`` (its entropy, summed, batch-mean).

    Colour frames are not binary, so cross-entropy never reaches 0; loss-falls tests compare the excess
    over this floor.
    """
    xc = x.clamp(1e-6, 1 - 1e-6)
    return float(-(xc * xc.log() + (1 - xc) * (1 - xc).log()).sum() / x.shape[0])


def loss_falls(model, x: torch.Tensor, steps: int = 40, seed: int = 0) -> tuple[float, float]:
    """Train ``model`` on the fixed batch ``x`` for ``steps`` updates; return (first, last) mean loss.

    Both measured with the same seed so the stochastic terms (ε, masks) are comparable.
    """
    opts = model.configure_optimizers()
    for g in opts[0].param_groups:
        g["lr"] = 1e-3

    def measure() -> float:
        torch.manual_seed(seed + 1)
        model.eval()
        with torch.no_grad():
            value = float(model.loss(x)["loss"])
        model.train()
        return value

    torch.manual_seed(seed)
    before = measure()
    model.train()
    for _ in range(steps):
        model.train_step(x, opts)
    return before, measure()
