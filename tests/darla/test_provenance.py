"""The provenance of ``report.md``: package versions and the git commit, in the report and provenance.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import darla
from darla import report
from darla.config import RunConfig


def _fake_run(tmp_path: Path) -> Path:
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "evaluation.json").write_text(json.dumps({"overall": {}}))
    return report.write_report(tmp_path / "run", RunConfig(), None, None, [], eval_dir, {"evaluate": 1.0})


def _head(root: Path) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def test_report_records_versions_and_git_sha(tmp_path):
    (tmp_path / "run").mkdir()
    md = _fake_run(tmp_path).read_text()
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())
    sha = _head(Path(darla.__file__).resolve().parents[1])
    assert prov["git"]["sha"] == sha
    if sha:
        assert f"darla commit: `{sha}`" in md and isinstance(prov["git"]["dirty"], bool)
    import gymnasium
    import numpy
    import stable_baselines3
    import torch

    for name, module in (("torch", torch), ("gymnasium", gymnasium), ("stable-baselines3", stable_baselines3),
                         ("numpy", numpy)):
        assert prov["versions"][name] == module.__version__
        assert f"| {name} | {module.__version__} |" in md
    assert {"python", "miniworld", "darla"} <= set(prov["versions"])
    # re-rendering keeps what the run recorded, not today's state
    inputs = json.loads((tmp_path / "run" / report.INPUTS).read_text())
    inputs["provenance"]["recorded"] = "2000-01-01T00:00:00Z"
    (tmp_path / "run" / report.INPUTS).write_text(json.dumps(inputs))
    assert "recorded 2000-01-01T00:00:00Z" in report.rewrite_report(tmp_path / "run").read_text()
    assert json.loads((tmp_path / "run" / "provenance.json").read_text())["recorded"] == "2000-01-01T00:00:00Z"


def test_report_of_a_run_without_provenance_says_when_it_was_recorded(tmp_path):
    (tmp_path / "run").mkdir()
    _fake_run(tmp_path)
    inputs = json.loads((tmp_path / "run" / report.INPUTS).read_text())
    del inputs["provenance"]
    (tmp_path / "run" / report.INPUTS).write_text(json.dumps(inputs))
    md = report.rewrite_report(tmp_path / "run").read_text()
    assert "Recorded when the report was re-written" in md


def test_report_outside_a_git_checkout(tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert report.git_state(plain) == {"sha": None, "dirty": None, "note": f"{plain} is not a git checkout"}
    real = report.git_state
    monkeypatch.setattr(report, "git_state", lambda path=None: real(plain))  # as if darla were installed from a tarball
    (tmp_path / "run").mkdir()
    md = _fake_run(tmp_path).read_text()
    assert f"darla commit: unknown ({plain} is not a git checkout)" in md
    assert json.loads((tmp_path / "run" / "provenance.json").read_text())["git"]["sha"] is None


def test_git_state_dirty_flag(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    try:
        subprocess.run([*git, "init", "-q"], check=True)
    except OSError:
        pytest.skip("git is not installed")
    (repo / "a.txt").write_text("1")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    state = report.git_state(repo)
    assert state["sha"] == _head(repo) and len(state["sha"]) == 40 and state["dirty"] is False
    (repo / "untracked.txt").write_text("u")
    assert report.git_state(repo)["dirty"] is False  # untracked files do not make a checkout dirty
    (repo / "a.txt").write_text("2")
    assert report.git_state(repo)["dirty"] is True
    sub = repo / "sub"
    sub.mkdir()
    assert report.git_state(sub)["sha"] is None  # inside, but not the top of, a checkout
