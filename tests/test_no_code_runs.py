"""No file darla loads can run code: a pickle payload planted in each kind of file (vision checkpoint, optimiser
state, frame metadata and arrays, factor-grid cache) never runs (its marker file is never created), and the
command that reads it fails with one line naming the file (or, for a cache, re-makes it with a warning).

The payload is the classic one: an object whose ``__reduce__`` calls ``os.system("touch MARKER")``, which any
``pickle.load``/``torch.load(weights_only=False)``/``np.load(allow_pickle=True)`` would execute.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from darla.cli import main


class Payload:
    """Creates ``marker`` when unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def payload_bytes(marker: Path) -> bytes:
    return pickle.dumps({"weights": Payload(marker)})


def torch_payload(path: Path, marker: Path) -> None:
    torch.save({"state": Payload(marker)}, path)  # a torch zip; torch.load(weights_only=False) runs it


def object_npy(path: Path, marker: Path) -> None:
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)


def test_the_payload_is_live(tmp_path):
    """The test would prove nothing if the payload did not run when unpickled."""
    marker = tmp_path / "ran"
    pickle.loads(payload_bytes(marker))
    assert marker.exists()
    marker.unlink()
    object_npy(tmp_path / "x.npy", marker)
    np.load(tmp_path / "x.npy", allow_pickle=True)
    assert marker.exists()


def _one_line_error(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert "error:" in err
    for name in names:
        assert name in err, (name, err)
    return err


# -- vision checkpoints -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import vision

    out = tmp_path_factory.mktemp("ckpt") / "model"
    vision.save(vision.make("ae", image_size=16, channels=3, latents=4), out)
    return out


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["weights_pickle", "weights_torch_zip", "config_pickle"])
def test_vision_checkpoint_payload_never_runs(checkpoint, tmp_path, capsys, kind):
    ckpt = tmp_path / "model"
    shutil.copytree(checkpoint, ckpt)
    marker = tmp_path / "ran"
    weights, config = ckpt / "model.safetensors", ckpt / "config.json"
    if kind == "weights_pickle":
        weights.write_bytes(payload_bytes(marker))
    elif kind == "weights_torch_zip":
        torch_payload(weights, marker)
    else:
        config.write_bytes(payload_bytes(marker))
    if kind != "config_pickle":  # the attacker rewrites the digest too
        meta = json.loads(config.read_text())
        meta["sha256"] = _digest(weights)
        config.write_text(json.dumps(meta))
    assert main(["traverse", str(ckpt), "--out", str(tmp_path / "t.png"), "--data", str(tmp_path)]) == 2
    assert not marker.exists()
    _one_line_error(capsys, str(ckpt))


# -- optimiser state of a resumed vision run ----------------------------------------------------
@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> Path:
    from vision.train import train_vision

    out = tmp_path_factory.mktemp("vision_run")
    frames = np.random.default_rng(0).integers(0, 256, size=(32, 16, 16, 3), dtype=np.uint8)
    train_vision("ae", frames, out, steps=2, batch_size=4, checkpoint_every=1, progress=False, probe=False,
                 config={"latents": 4})
    shutil.rmtree(out / "model")  # as if killed before the final model was written
    return out


@pytest.mark.parametrize("kind", ["optim_pickle", "optim_torch_zip", "state_pickle"])
def test_optimiser_state_payload_never_runs(interrupted_run, tmp_path, kind, caplog):
    from vision.checkpoint import CheckpointError
    from vision.train import train_vision

    out = tmp_path / "run"
    shutil.copytree(interrupted_run, out)
    marker = tmp_path / "ran"
    latest = json.loads((out / "ckpt" / "latest.json").read_text())["dir"]
    step_dir = out / "ckpt" / latest
    if kind == "optim_pickle":
        (step_dir / "optim.safetensors").write_bytes(payload_bytes(marker))
    elif kind == "optim_torch_zip":
        torch_payload(step_dir / "optim.safetensors", marker)
    else:
        (step_dir / "state.json").write_bytes(payload_bytes(marker))
    frames = np.random.default_rng(0).integers(0, 256, size=(32, 16, 16, 3), dtype=np.uint8)
    try:  # either refused in one line or (speed-vision's fallback) resumed from an earlier good checkpoint
        train_vision("ae", frames, out, steps=3, batch_size=4, checkpoint_every=1, progress=False, probe=False,
                     config={"latents": 4})
        error = None
    except Exception as e:  # which kind it is, is checked below, after the marker
        error = e
    assert not marker.exists()
    if error is not None:
        assert isinstance(error, (CheckpointError, ValueError)), f"raw {type(error).__name__}: {error}"
        assert "\n" not in str(error) and str(out / "ckpt") in str(error)


# -- frame metadata and arrays ------------------------------------------------------------------
def _collection(root: Path) -> None:
    from tests.envs.test_frames import _write_collection

    _write_collection(root)


@pytest.mark.parametrize("kind", ["meta_pickle", "frames_object_array", "factors_object_array",
                                  "domains_object_array", "meta_without_factor_names", "meta_bad_types"])
def test_frame_dataset_payload_never_runs_and_is_one_line(tmp_path, capsys, kind):
    data = tmp_path / "data"
    _collection(data)
    marker = tmp_path / "ran"
    meta = json.loads((data / "meta.json").read_text())
    if kind == "meta_pickle":
        (data / "meta.json").write_bytes(payload_bytes(marker))
    elif kind.endswith("object_array"):
        object_npy(data / f"{kind.split('_')[0]}.npy", marker)
    elif kind == "meta_without_factor_names":
        del meta["factor_names"]
        (data / "meta.json").write_text(json.dumps(meta))
    else:
        meta["frames"] = "ten"
        (data / "meta.json").write_text(json.dumps(meta))
    assert main(["-q", "train-vision", "--model", "ae", "--data", str(data), "--out", str(tmp_path / "v"),
                 "--steps", "1"]) == 2
    assert not marker.exists()
    err = _one_line_error(capsys, str(data))
    if kind == "meta_without_factor_names":
        assert "'factor_names'" in err and "darla collect" in err


# -- factor-grid caches -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["object_array", "truncated", "garbage", "no_sidecar", "other_params",
                                  "sidecar_garbage"])
def test_grid_cache_payload_never_runs_and_damage_is_re_rendered(tmp_path, caplog, kind):
    from envs.factors import grid_dataset
    from tests.envs.test_factors import TinyFactors

    cache = tmp_path / "grid.npy"
    good = grid_dataset(TinyFactors(), cache_file=cache, progress=False).grid_images.copy()
    sidecar = cache.with_name(cache.name + ".json")
    assert json.loads(sidecar.read_text())["dataset"] == "tiny"
    marker = tmp_path / "ran"
    if kind == "object_array":
        object_npy(cache, marker)
    elif kind == "truncated":
        cache.write_bytes(cache.read_bytes()[:-3])
    elif kind == "garbage":
        cache.write_bytes(payload_bytes(marker))
    elif kind == "no_sidecar":
        sidecar.unlink()
    elif kind == "other_params":  # the same shape, built from another dataset: stale
        np.save(cache, np.zeros_like(good))
        key = json.loads(sidecar.read_text())
        key["params"] = {"obs_size": 99}
        sidecar.write_text(json.dumps(key))
    else:
        sidecar.write_bytes(payload_bytes(marker))
    data = TinyFactors()
    with caplog.at_level(logging.WARNING, logger="envs.factors"):
        grid = grid_dataset(data, cache_file=cache, progress=False)
    assert not marker.exists()
    np.testing.assert_array_equal(grid.grid_images, good)
    assert data.rendered == 6  # re-rendered
    assert "rendering it again" in caplog.text and str(cache) in caplog.text
    again = TinyFactors()  # ... and the re-made cache is good again
    np.testing.assert_array_equal(grid_dataset(again, cache_file=cache, progress=False).grid_images, good)
    assert again.rendered == 0


def test_grid_cache_is_keyed_by_the_dataset_parameters(tmp_path):
    from envs.factors import grid_cache_key, grid_dataset
    from tests.envs.test_factors import TinyFactors

    a, b = TinyFactors(), TinyFactors()
    b.brightness = 2  # a public parameter: part of the key
    assert grid_cache_key(a) != grid_cache_key(b)
    cache = tmp_path / "grid.npy"
    grid_dataset(a, cache_file=cache, progress=False)
    grid_dataset(b, cache_file=cache, progress=False)
    assert b.rendered == 6


def test_arrays_read_after_the_header_check_are_not_unpickled_either(tmp_path):
    """``factors``/``domains`` are read in full (not memory-mapped) on first use, after the header check: a
    file swapped in between must not be unpickled."""
    from envs.frames import FrameDataset

    data = tmp_path / "data"
    _collection(data)
    dataset = FrameDataset(data)
    marker = tmp_path / "ran"
    object_npy(data / "factors.npy", marker)
    with pytest.raises(ValueError, match="factors.npy"):
        _ = dataset.factors
    assert not marker.exists()
