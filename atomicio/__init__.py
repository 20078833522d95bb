"""Atomic file writes shared by every darla package: temp file in the target's directory, fsync, rename,
fsync of the directory. A reader sees the old file or the new one, never a torn write, even after a
power cut.

This is a stdlib-only leaf package *below* ``envs`` and ``vision`` (DESIGN.md's import direction): both
import it, it imports nothing of ours and nothing heavy, so ``import envs`` stays light and
``vision`` still depends on no other darla package.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_mode",
    "fsync_dir",
    "fsync_replace",
    "remove_temp_files",
    "temp_path",
]


def file_mode() -> int:
    """0o666 minus the process umask: the mode ``open()`` gives a new file (``mkstemp`` makes 0600, which
    would leave datasets, reports and checkpoints readable by their owner only)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temp_path(directory: str | os.PathLike, name: str) -> str:
    """Create an empty temp file ``.name.XXXX.tmp`` in ``directory`` with normal permissions; its path.

    :param directory: the directory of the final file (a rename is atomic only within one file system)
    :param name: the final file's name (the temp file is recognisably its leftover)
    """
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return tmp


def fsync_dir(directory: str | os.PathLike) -> None:
    """fsync a directory, so a rename inside it survives a crash (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_replace(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """fsync ``tmp``, rename it to ``path`` and fsync ``path``'s directory.

    :param tmp: a fully written temp file in ``path``'s directory
    :param path: the final path
    """
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file to write ``path`` with; on a clean exit it is fsynced and renamed into place, on an
    exception it is deleted and ``path`` is untouched.

    :param path: final path (its parent directory is created)
    :param mode: ``"wb"`` or ``"w"``
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path.parent, path.name)
    try:
        with open(tmp, mode) as f:
            yield f
        fsync_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename + fsync of the directory)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_temp_files(directory: str | os.PathLike) -> None:
    """Delete leftovers (``.name.XXXX.tmp``) of writes that a killed process never renamed."""
    directory = Path(directory)
    if directory.is_dir():
        for p in directory.glob(".*.tmp"):
            p.unlink(missing_ok=True)
