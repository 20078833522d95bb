"""Atomic writes: the old file or the new one, never a torn one; normal permissions; no leftovers."""

import os

import pytest

from atomicio import atomic_open, atomic_write_bytes, atomic_write_text, remove_temp_files


def test_write_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_text(path, "one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_new_files_get_the_mode_open_would_give(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_leftovers_of_killed_writes_are_removed(tmp_path):
    (tmp_path / ".a.json.x1.tmp").write_text("torn")
    (tmp_path / "a.json").write_text("kept")
    remove_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_open("/tmp/x", "a"):
            pass
