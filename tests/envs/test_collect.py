"""Stage-1 collection: layout of the directory, determinism, resume after a kill, split integrity."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import envs  # noqa: F401  (headless miniworld, registers the env)
from envs import collect
from envs.collect import collect_frames, held_out_domains
from envs.frames import FrameDataset
from envs.seekavoid.domains import get_domain, get_split

ARRAYS = ("frames.npy", "factors.npy", "domains.npy")
# Small on purpose: 200 frames of 32×32 in 4 chunks (the last one short) over the source split.
_REAL_RENDER = collect.render_chunk
SMALL = dict(frames=200, split="source", obs_size=32, chunk_size=64, seed=0, progress=False)


def _bytes(d: Path) -> dict[str, bytes]:
    return {name: (d / name).read_bytes() for name in (*ARRAYS, "meta.json")}


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    """Rendered by worker processes only (by default the calling process renders too while they start)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(collect, "_MAIN_PROCESS_RENDERS", False)
        return collect_frames(tmp_path_factory.mktemp("collect") / "data", workers=3, **SMALL)


@pytest.fixture(scope="module")
def factor_names() -> list[str]:
    from envs.seekavoid import SeekAvoidEnv

    return list(SeekAvoidEnv.FACTOR_NAMES)


class SimulatedKill(BaseException):
    """Not an ``Exception``: nothing in the library may swallow it (like a real kill)."""


class _RenderSpy:
    """Wraps ``collect.render_chunk`` (in-process path): counts chunks, optionally dies after ``fail_after``."""

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = [], fail_after

    def __call__(self, env, task, report=None):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise SimulatedKill(f"killed before chunk {task.index}")
        self.calls.append(task.index)
        return _REAL_RENDER(env, task, report)


def test_collection_has_documented_arrays_shapes_dtypes_and_meta(collected, factor_names):
    frames = np.load(collected / "frames.npy", mmap_mode="r")
    factors = np.load(collected / "factors.npy")
    domains = np.load(collected / "domains.npy")
    meta = json.loads((collected / "meta.json").read_text())
    assert isinstance(frames, np.memmap) and frames.shape == (200, 32, 32, 3) and frames.dtype == np.uint8
    assert factors.shape == (200, len(factor_names)) and factors.dtype == np.float32
    assert domains.shape == (200,) and domains.dtype == np.int16
    assert meta["domains"] == [d.name for d in get_split("source")]
    assert meta["factor_names"] == factor_names
    assert (meta["frames"], meta["obs_size"], meta["split"], meta["seed"]) == (200, 32, "source", 0)
    assert (meta["layout"], meta["policy"], meta["version"]) == ("choice", "random", collect.FORMAT_VERSION)
    assert meta["held_out_domains"] == []
    assert set(np.unique(domains)) <= {0, 1, 2}
    assert frames.std() > 10, "frames should show a scene, not a blank image"
    # the work files are gone: chunks deleted, no temp files
    assert sorted(p.name for p in collected.iterdir()) == sorted([*ARRAYS, "meta.json", "collect.json"])


def test_labels_match_the_domain_each_frame_was_rendered_in(collected, factor_names):
    data = FrameDataset(collected)
    pair = data.factors[:, factor_names.index("pair")]
    expected = np.array([0.0 if get_domain(data.domain_names[i]).pair == "A" else 1.0 for i in data.domains])
    np.testing.assert_array_equal(pair, expected)
    assert np.isfinite(data.factors).all()


@pytest.mark.parametrize("workers", [1, 2])
def test_same_seed_gives_same_bytes_whatever_the_process_rendering_it(collected, tmp_path, workers):
    again = collect_frames(tmp_path / "again", workers=workers, **SMALL)
    assert _bytes(again) == _bytes(collected)


def test_another_seed_gives_other_frames(collected, tmp_path):
    other = collect_frames(tmp_path / "other", workers=1, **{**SMALL, "seed": 1, "frames": 64})
    assert not np.array_equal(np.load(other / "frames.npy"), np.load(collected / "frames.npy")[:64])


def test_killed_collection_resumes_to_the_same_bytes_reusing_finished_chunks(collected, tmp_path, monkeypatch):
    out = tmp_path / "data"
    monkeypatch.setattr(collect, "render_chunk", _RenderSpy(fail_after=2))
    with pytest.raises(SimulatedKill):
        collect_frames(out, workers=1, **SMALL)
    assert not (out / "meta.json").exists()
    assert sorted(p.name for p in (out / "chunks").iterdir()) == ["chunk_00000.npz", "chunk_00001.npz"]
    with pytest.raises(ValueError, match="incomplete"):
        FrameDataset(out)
    # what else a kill can leave behind: a half-written temp file and a chunk truncated by a full disk
    (out / ".frames.npy.abc123.tmp").write_bytes(b"\x93NUMPY garbage")
    (out / "chunks" / "chunk_00002.npz").write_bytes(b"PK\x03\x04 truncated")

    spy = _RenderSpy()
    monkeypatch.setattr(collect, "render_chunk", spy)
    collect_frames(out, workers=1, **SMALL)
    assert sorted(spy.calls) == [2, 3], "finished chunks are reused, the corrupt one rendered again"
    assert _bytes(out) == _bytes(collected)
    assert not list(out.glob(".*.tmp"))


def test_rerun_of_a_finished_collection_renders_nothing(collected, monkeypatch):
    spy = _RenderSpy(fail_after=0)
    monkeypatch.setattr(collect, "render_chunk", spy)
    before = {p.name: p.stat().st_mtime_ns for p in collected.iterdir()}
    assert collect_frames(collected, workers=1, **SMALL) == collected
    assert spy.calls == [] and {p.name: p.stat().st_mtime_ns for p in collected.iterdir()} == before


def test_other_arguments_into_an_existing_collection_raise_and_keep_it(collected):
    before = _bytes(collected)
    with pytest.raises(ValueError, match=r"different arguments \(differ: seed\).*overwrite=True"):
        collect_frames(collected, workers=1, **{**SMALL, "seed": 5})
    assert _bytes(collected) == before


def test_overwrite_replaces_a_collection_made_with_other_arguments(tmp_path):
    out = collect_frames(tmp_path / "d", workers=1, **{**SMALL, "frames": 8})
    collect_frames(out, workers=1, overwrite=True, **{**SMALL, "frames": 8, "seed": 3})
    assert json.loads((out / "meta.json").read_text())["seed"] == 3


def test_non_empty_foreign_directory_is_refused_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty.*notes.txt"):
        collect_frames(tmp_path, workers=1, **{**SMALL, "frames": 8})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("kwargs", [
    {"split": "target"},
    {"split": "A-default,A-changed"},
    {"split": None, "domains": ["B-default", get_domain("A-changed")]},
    # renamed or re-lit copies of the target combination are still the target combination
    {"split": None, "domains": [dataclasses.replace(get_domain("A-changed"), name="A-sneaky")]},
    {"split": None, "domains": ["A-changed-dim"]},
    # the camera split's held-out combination: pair A in the default room with the camera raised
    {"split": "cam-target"},
    {"split": None, "domains": ["B-highcam", dataclasses.replace(get_domain("A-highcam"), name="A-up",
                                                                 cam_height=(1.8, 1.87))]},
])
def test_refuses_the_target_combination_in_a_source_dataset(tmp_path, kwargs):
    with pytest.raises(ValueError, match="refusing to render .*zero-shot"):
        collect_frames(tmp_path / "d", workers=1, **{**SMALL, "frames": 8, **kwargs})
    assert not (tmp_path / "d").exists()


def test_camera_source_split_is_a_stage1_split_and_keeps_the_room_targets_out():
    assert held_out_domains(get_split("cam-source")) == []
    assert held_out_domains([get_domain("A-default-lowcam"), get_domain("A-changed")]) == ["A-default-lowcam",
                                                                                            "A-changed"]
    assert held_out_domains([dataclasses.replace(get_domain("A-highcam"), name="A-lowish", cam_height=(1.6, 1.7))]) == []


def test_allow_target_makes_an_analysis_dataset_that_says_so(tmp_path):
    out = collect_frames(tmp_path / "d", workers=1, allow_target=True, **{**SMALL, "frames": 8, "split": "target"})
    meta = json.loads((out / "meta.json").read_text())
    assert meta["held_out_domains"] == ["A-changed"] and meta["domains"] == ["A-changed"]


@pytest.mark.parametrize("kwargs, message", [
    ({"policy": "greedy"}, "unknown collection policy 'greedy'; valid: random, explore"),
    ({"frames": 0}, "frames must be a positive integer, got 0"),
    ({"split": "nowhere"}, "unknown domain or split 'nowhere'"),
])
def test_bad_arguments_name_the_value_and_the_choices(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        collect_frames(tmp_path / "d", workers=1, **{**SMALL, **kwargs})


def test_explore_policy_goes_forward_more_and_holds_its_actions():
    """``explore`` is forward-biased with action repeat (frames that approach objects); ``random`` is uniform."""
    from gymnasium.spaces import Discrete

    def actions(name: str) -> np.ndarray:
        policy = collect._ActionPolicy(name, Discrete(3), forward_action=2, rng=np.random.default_rng(0))
        return np.array([policy() for _ in range(4000)])

    rand, explore = actions("random"), actions("explore")
    assert abs((rand == 2).mean() - 1 / 3) < 0.03 and (explore == 2).mean() > 0.45
    assert set(np.unique(explore)) == {0, 1, 2}
    repeats = lambda a: (a[1:] == a[:-1]).mean()  # noqa: E731
    assert repeats(explore) > repeats(rand) + 0.2


@pytest.mark.slow
def test_sigkilled_collection_resumes_to_the_same_bytes(tmp_path):
    """A real kill (SIGKILL of a collecting process with 2 workers), then a rerun."""
    args = {**SMALL, "frames": 1500, "chunk_size": 100}
    out = tmp_path / "killed"
    code = (f"import envs\nfrom envs.collect import collect_frames\nif __name__ == '__main__':\n"
            f"    collect_frames({str(out)!r}, workers=2, **{args!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((out / "chunks").glob("chunk_*.npz"))) < 3:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "meta.json").exists(), "killed too late to test a resume"
    collect_frames(out, workers=2, **args)
    reference = collect_frames(tmp_path / "reference", workers=1, **args)
    assert _bytes(out) == _bytes(reference)
