"""The examples run end to end on tiny settings (SeekAvoid 16x16, a few dozen steps)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, argv: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [script, *argv])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")


def test_examples_train_then_evaluate_on_a_custom_domain(tmp_path, monkeypatch, capsys):
    pytest.importorskip("envs.seekavoid")
    policy = tmp_path / "policy"
    _run("train_on_vision_checkpoint.py", ["--obs-size", "16", "--steps", "64", "--n-envs", "2",
                                           "--domain", "A-default", "--out", str(policy)], monkeypatch)
    meta = json.loads((policy / "policy.json").read_text())
    assert meta["mode"] == "latent" and meta["obs_size"] == 16 and meta["vision_id"]
    assert meta["train_domains"] == ["A-default"]

    _run("evaluate_custom_domain.py", ["--policy", str(policy), "--episodes", "2", "--out", str(tmp_path / "eval")],
         monkeypatch)
    result = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert "A-changed-darker" in result["target"] and result["source"] == ["A-default", "B-default", "B-changed"]
    assert result["episode_seeds"] == [1000, 1001]
    assert "A-changed-darker" in capsys.readouterr().out
