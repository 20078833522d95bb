"""FrameDataset: lazy memmap reading of a collection directory, DataLoader workers, clear errors.

The directories here are written by hand in the documented on-disk format (no rendering), which also
pins that format.
"""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from envs.collect import FORMAT_VERSION
from envs.frames import FrameDataset

N, SIDE = 10, 8
FACTOR_NAMES = ["pair", "room", "agent_x"]


def _write_collection(root: Path, n: int = N, side: int = SIDE, **meta_changes) -> np.ndarray:
    root.mkdir(parents=True, exist_ok=True)
    frames = np.random.default_rng(0).integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    np.save(root / "frames.npy", frames)
    np.save(root / "factors.npy", np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    np.save(root / "domains.npy", (np.arange(n) % 2).astype(np.int16))
    meta = {"version": FORMAT_VERSION, "frames": n, "obs_size": side, "split": "source",
            "domains": ["A-default", "B-default"], "factor_names": FACTOR_NAMES, "seed": 0,
            "layout": "choice", "policy": "random", **meta_changes}
    (root / "collect.json").write_text("{}")
    (root / "meta.json").write_text(json.dumps(meta))
    return frames


@pytest.fixture
def collection(tmp_path) -> tuple[Path, np.ndarray]:
    return tmp_path / "data", _write_collection(tmp_path / "data")


def test_items_are_channel_first_uint8_copies_of_the_frames(collection):
    root, frames = collection
    data = FrameDataset(root)
    assert len(data) == N and data.obs_shape == (3, SIDE, SIDE)
    item = data[3]
    assert item.dtype == torch.uint8 and item.shape == (3, SIDE, SIDE)
    np.testing.assert_array_equal(item.numpy(), frames[3].transpose(2, 0, 1))
    np.testing.assert_array_equal(data[-1].numpy(), frames[-1].transpose(2, 0, 1))


def test_frames_stay_on_disk_behind_a_read_only_memmap(collection):
    data = FrameDataset(collection[0])
    assert isinstance(data.frames, np.memmap) and data.frames.shape == (N, SIDE, SIDE, 3)
    with pytest.raises(ValueError):
        data.frames[0, 0, 0, 0] = 1


def test_labels_and_names_come_from_the_directory(collection):
    data = FrameDataset(collection[0])
    assert data.factor_names == FACTOR_NAMES and data.domain_names == ["A-default", "B-default"]
    assert data.factors.dtype == np.float32 and data.factors.shape == (N, 3) and data.factors[2, 1] == 7.0
    assert data.domains.dtype == np.int16 and data.domains.tolist() == [0, 1] * (N // 2)
    assert data.meta["split"] == "source"


def test_batch_keeps_the_requested_order(collection):
    root, frames = collection
    data = FrameDataset(root)
    idx = [7, 2, 7, 0, -1]
    np.testing.assert_array_equal(data.batch(idx).numpy(), frames[idx].transpose(0, 3, 1, 2))
    with pytest.raises(IndexError, match="0, 10"):
        data.batch([3, 10])
    with pytest.raises(IndexError, match="out of range"):
        data[N]


def test_pickling_for_dataloader_workers_sends_paths_not_frames(collection):
    data = FrameDataset(collection[0])
    data.frames, data.factors  # open the maps in this process first  # noqa: B018
    payload = pickle.dumps(data)
    assert len(payload) < data.frames.nbytes
    clone = pickle.loads(payload)
    assert torch.equal(clone[4], data[4])


def test_dataloader_with_worker_processes_yields_every_frame_in_order(collection):
    root, frames = collection
    loader = DataLoader(FrameDataset(root), batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [b.shape[0] for b in batches] == [4, 4, 2] and batches[0].dtype == torch.uint8
    np.testing.assert_array_equal(torch.cat(batches).numpy(), frames.transpose(0, 3, 1, 2))


def test_missing_directory_says_to_run_darla_collect(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; run `darla collect"):
        FrameDataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no meta.json.*run `darla collect"):
        FrameDataset(tmp_path)


def test_interrupted_collection_says_to_resume(tmp_path):
    (tmp_path / "collect.json").write_text("{}")
    (tmp_path / "chunks").mkdir()
    with pytest.raises(ValueError, match="incomplete.*interrupted.*same arguments to resume"):
        FrameDataset(tmp_path)


def test_truncated_array_is_reported_as_corrupt(collection):
    root, _ = collection
    path = root / "frames.npy"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="frames.npy is missing or corrupt"):
        FrameDataset(root)


def test_array_disagreeing_with_meta_is_reported(tmp_path):
    root = tmp_path / "data"
    _write_collection(root)
    np.save(root / "factors.npy", np.zeros((N, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"factors.npy has shape \(10, 5\) float32, meta.json says \(10, 3\)"):
        FrameDataset(root)


def test_other_format_version_is_refused(tmp_path):
    _write_collection(tmp_path / "data", version=FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match="format version"):
        FrameDataset(tmp_path / "data")
