"""Render the first frame of the same seed in DARLA's four domain combinations → ``docs/domains.png``.

Rows: the source split (A-default, B-default, B-changed) and the target (A-changed), then the harder
shifted targets; each panel is labelled with its domain name.

    python scripts/make_domains_figure.py [--out docs/domains.png] [--size 128] [--seed 3] [--hard]
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

os.environ.setdefault("PYGLET_HEADLESS", "1")

import cv2
import numpy as np

logger = logging.getLogger(__name__)

FOUR = ("A-default", "B-default", "B-changed", "A-changed")
HARD = ("A-changed-dim", "A-changed-warm", "A-changed-lowcam", "A-third")


def render_first_frames(names, size: int, seed: int) -> list[np.ndarray]:
    """First observation of ``reset(seed=seed)`` in each domain, ``(size, size, 3) uint8`` each."""
    from envs.seekavoid import SeekAvoidEnv

    env = SeekAvoidEnv(domain=list(names), obs_size=size)
    frames = []
    for name in names:
        obs, info = env.reset(seed=seed, options={"domain": name})
        assert info["domain"] == name
        frames.append(obs)
    env.close()
    return frames


def labelled_panel(frame: np.ndarray, label: str, split: str) -> np.ndarray:
    """The frame with a caption bar below: domain name and its split."""
    size = frame.shape[1]
    bar = np.full((30, size, 3), 255, dtype=np.uint8)
    cv2.putText(bar, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(bar, split, (4, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (90, 90, 90), 1, cv2.LINE_AA)
    return np.concatenate([frame, bar], axis=0)


def make_figure(out: Path, size: int = 128, seed: int = 3, hard: bool = True) -> Path:
    from envs.seekavoid.domains import get_split
    from vision.checkpoint import atomic_write_bytes

    source = {d.name for d in get_split("source")}
    rows = [FOUR] + ([HARD] if hard else [])
    pad = 4
    row_imgs = []
    for names in rows:
        frames = render_first_frames(names, size, seed)
        panels = []
        for name, frame in zip(names, frames):
            split = "source" if name in source else ("target" if name == "A-changed" else "hard target")
            panels.append(labelled_panel(frame, name, split))
            panels.append(np.full((panels[-1].shape[0], pad, 3), 255, dtype=np.uint8))
        row_imgs.append(np.concatenate(panels[:-1], axis=1))
        row_imgs.append(np.full((pad, row_imgs[-1].shape[1], 3), 255, dtype=np.uint8))
    figure = np.concatenate(row_imgs[:-1], axis=0)
    ok, png = cv2.imencode(".png", cv2.cvtColor(figure, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the figure as PNG")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, png.tobytes())
    logger.info("wrote %s (%dx%d)", out, figure.shape[1], figure.shape[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "domains.png")
    parser.add_argument("--size", type=int, default=128, help="panel size in pixels")
    parser.add_argument("--seed", type=int, default=3, help="episode seed (the same layout in every panel)")
    parser.add_argument("--no-hard", dest="hard", action="store_false", help="only the four DARLA domains")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(make_figure(args.out, args.size, args.seed, args.hard))


if __name__ == "__main__":
    main()
