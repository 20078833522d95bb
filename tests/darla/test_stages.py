"""Keyed, resumable pipeline stages."""

import json

import pytest

from darla.pipeline import DONE, Stage


def test_finished_stage_is_reused_not_rerun(tmp_path):
    calls = []

    def fn(d):
        calls.append(d)
        (d / "artefact.txt").write_text("x")
        return {"value": 1}

    first = Stage(tmp_path, "collect", "k1").run(fn, {"a": 1})
    second = Stage(tmp_path, "collect", "k1").run(fn, {"a": 1})
    assert len(calls) == 1
    assert first["value"] == second["value"] == 1
    assert json.loads((tmp_path / "collect-k1" / DONE).read_text())["key"] == "k1"


def test_changed_key_runs_in_a_new_directory_and_keeps_the_old(tmp_path):
    Stage(tmp_path, "vision", "k1").run(lambda d: {"v": 1}, {})
    Stage(tmp_path, "vision", "k2").run(lambda d: {"v": 2}, {})
    assert (tmp_path / "vision-k1" / DONE).exists() and (tmp_path / "vision-k2" / DONE).exists()


def test_interrupted_stage_has_no_done_marker_and_reruns(tmp_path):
    def dies(d):
        (d / "partial.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Stage(tmp_path, "policy", "k").run(dies, {})
    stage = Stage(tmp_path, "policy", "k")
    assert not stage.done
    record = stage.run(lambda d: {"ok": (d / "partial.bin").exists()}, {})
    assert record["ok"] is True  # the rerun sees what the killed run left and can resume from it
    assert stage.done
