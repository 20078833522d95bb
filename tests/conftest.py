"""Session-wide test setup: headless miniworld before anything imports pyglet, one torch thread.

Tests use tiny models and batches, where torch's intra-op threads cost far more than they give (on a
busy 2-core machine a 32×32 conv went from ~1 ms to ~70 ms with two threads).
"""

import os

os.environ.setdefault("PYGLET_HEADLESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch

torch.set_num_threads(1)
