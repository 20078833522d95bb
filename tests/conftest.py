"""Session-wide test setup: headless miniworld before anything imports pyglet."""

import os

os.environ.setdefault("PYGLET_HEADLESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
