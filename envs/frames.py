"""The stage-1 frame dataset: a directory made by :func:`envs.collect.collect_frames`, read lazily.

Frames stay on disk behind a memory map (no full load), so a 20k × 64×64 dataset costs no RAM until
read, and every DataLoader worker process reopens its own map instead of receiving a pickled copy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from envs.collect import DOMAINS_FILE, FACTORS_FILE, FORMAT_VERSION, FRAMES_FILE, META_FILE, REQUEST_FILE


class FrameDataset(Dataset):
    """Frames collected by ``darla collect`` as a PyTorch dataset.

    ``dataset[i]`` is frame ``i`` as a ``(3, H, W)`` uint8 tensor (scale it in the model, as
    ``vision.to_tensor`` does); labels are kept beside it for metrics and analysis, not returned.

    :param root: the collection directory (``collect_frames(out_dir, ...)``)
    :raises FileNotFoundError: no such directory or no collection in it
    :raises ValueError: an interrupted or corrupt collection, or one of another format version
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"no frame dataset at {self.root}: the directory does not exist; "
                f"run `darla collect --out {self.root}` first")
        meta_path = self.root / META_FILE
        if not meta_path.is_file():
            if (self.root / REQUEST_FILE).is_file():
                raise ValueError(
                    f"the collection in {self.root} is incomplete (no {META_FILE}): it was interrupted; rerun "
                    "`darla collect` with the same arguments to resume it")
            raise FileNotFoundError(
                f"no frame dataset in {self.root} (no {META_FILE}); run `darla collect --out {self.root}` first")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except ValueError as e:
            raise ValueError(f"{meta_path} is not valid JSON ({e}); collect the data again with overwrite") from None
        if not isinstance(self.meta, dict):
            raise ValueError(f"{meta_path} must hold a JSON object, got {type(self.meta).__name__}; collect the "
                             "data again (`darla collect` with overwrite)")
        if self.meta.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{self.root} holds a frame dataset of format version {self.meta.get('version')!r}, this darla "
                f"reads version {FORMAT_VERSION}; collect it again (`darla collect`)")
        self.factor_names, self.domain_names, n, side = self._read_meta(meta_path)
        shape = self.meta.get("frame_shape") or [side, side, 3]
        channels = shape[-1] if isinstance(shape, list) and shape else None
        if channels not in (1, 3):
            raise ValueError(f"{meta_path} is damaged: 'frame_shape' must end in 1 or 3 channels, got {shape!r}; "
                             "collect the data again (`darla collect` with overwrite)")
        self._expected = {FRAMES_FILE: ((n, side, side, channels), np.uint8),
                          FACTORS_FILE: ((n, len(self.factor_names)), np.float32),
                          DOMAINS_FILE: ((n,), np.int16)}
        self._len = n
        self._frames: np.memmap | None = None
        self._factors: np.ndarray | None = None
        self._domains: np.ndarray | None = None
        self._check_headers()

    def _read_meta(self, meta_path: Path) -> tuple[list[str], list[str], int, int]:
        """``factor_names``, ``domains``, ``frames`` and ``obs_size`` of ``meta.json``, type-checked, so a
        damaged file is one ``ValueError`` naming the file and the field, not a ``KeyError``."""
        def fail(what: str) -> ValueError:
            return ValueError(f"{meta_path} is damaged: {what}; collect the data again (`darla collect` with "
                              "overwrite)")

        def names(key: str) -> list[str]:
            value = self.meta.get(key)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(f"'{key}' must be a list of names, got {value!r}")
            return list(value)

        def count(key: str, low: int) -> int:
            value = self.meta.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise fail(f"'{key}' must be an integer >= {low}, got {value!r}")
            return value

        return names("factor_names"), names("domains"), count("frames", 0), count("obs_size", 1)

    # -- lazy arrays: opened on first use in each process --------------------------------------------
    def _open(self, name: str, mmap: bool) -> np.ndarray:
        path = self.root / name
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is missing or corrupt ({e}); collect the data again "
                             "(`darla collect` with overwrite)") from None
        shape, dtype = self._expected[name]
        if arr.shape != shape or arr.dtype != dtype:
            raise ValueError(f"{path} has shape {arr.shape} {arr.dtype}, {META_FILE} says {shape} "
                             f"{np.dtype(dtype)}; collect the data again (`darla collect` with overwrite)")
        return arr

    def _check_headers(self) -> None:
        for name in self._expected:  # a memmap reads only the header: cheap
            self._open(name, mmap=True)

    @property
    def frames(self) -> np.memmap:
        """``(N, H, W, 3)`` uint8, memory-mapped read-only."""
        if self._frames is None:
            self._frames = self._open(FRAMES_FILE, mmap=True)
        return self._frames

    @property
    def factors(self) -> np.ndarray:
        """``(N, F)`` float32 ground-truth factors; columns named by :attr:`factor_names`."""
        if self._factors is None:
            self._factors = self._open(FACTORS_FILE, mmap=False)
        return self._factors

    @property
    def domains(self) -> np.ndarray:
        """``(N,)`` int16 index of each frame's domain in :attr:`domain_names`."""
        if self._domains is None:
            self._domains = self._open(DOMAINS_FILE, mmap=False)
        return self._domains

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        """``(3, H, W)``: the shape of one item."""
        _, h, w, c = self._expected[FRAMES_FILE][0]
        return (c, h, w)

    def __getstate__(self) -> dict:
        # DataLoader workers get the paths, not the arrays: each process maps the files itself
        return {**self.__dict__, "_frames": None, "_factors": None, "_domains": None}

    # -- Dataset protocol ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> torch.Tensor:
        """Frame ``index`` as ``(3, H, W)`` uint8."""
        if not -self._len <= index < self._len:
            raise IndexError(f"frame index {index} out of range for a dataset of {self._len} frames")
        return torch.from_numpy(np.ascontiguousarray(self.frames[index].transpose(2, 0, 1)))

    def batch(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Frames ``indices`` as one ``(B, 3, H, W)`` uint8 tensor (one sorted read of the memmap)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -self._len or idx.max() >= self._len):
            raise IndexError(f"frame indices must lie in [0, {self._len}), got {idx.min()}..{idx.max()}")
        idx = idx % self._len if idx.size else idx
        order = np.argsort(idx, kind="stable")
        out = np.empty((len(idx), *self.frames.shape[1:]), dtype=np.uint8)
        out[order] = self.frames[idx[order]]
        return torch.from_numpy(np.ascontiguousarray(out.transpose(0, 3, 1, 2)))

    def __getitems__(self, indices: Sequence[int]) -> list[torch.Tensor]:
        # torch's fetcher calls this for a whole batch when present; one memmap read instead of B
        return list(self.batch(indices).unbind(0))

    @property
    def task_factors(self) -> tuple[str, ...]:
        """The factors the SeekAvoid task needs (see :data:`envs.seekavoid.TASK_FACTORS`)."""
        from envs.seekavoid.env import TASK_FACTORS

        return tuple(n for n in TASK_FACTORS if n in self.factor_names)

    def probe_rows(self) -> dict[str, np.ndarray]:
        """Per factor, the frames in which it is visible (:func:`envs.seekavoid.observable_rows`)."""
        from envs.seekavoid.env import observable_rows

        return observable_rows(self.factors, self.factor_names)

    def __repr__(self) -> str:
        h, w = self._expected[FRAMES_FILE][0][1:3]
        return (f"FrameDataset({str(self.root)!r}, frames={self._len}, size={h}x{w}, split={self.meta.get('split')!r}, "
                f"domains={self.domain_names})")
