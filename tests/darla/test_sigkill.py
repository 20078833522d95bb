"""A tiny ``darla run`` killed with SIGKILL at a random moment, then rerun: it completes, and every JSON and
safetensors file in the run directory reads back (none is half-written). One trial runs by default, more are
``slow``. The moment of the kill is drawn from a seeded generator over the run's expected duration.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_RUN = [
    "collect.frames=300", "collect.workers=1", "env.obs_size=32", "vision.steps=60", "vision.dae_steps=30",
    "vision.batch_size=16", "vision.model_config.dae_layer=3", "policy.steps=512", "policy.n_envs=2",
    "policy.algo_kwargs={n_steps: 128, batch_size: 64, n_epochs: 1}", "evaluate.episodes=2",
]
#: about how long the tiny run takes here (2 shared CPU cores): kills are spread over it
EXPECTED_SECONDS = 25.0


def _command(out: Path) -> list[str]:
    sets = [a for s in TINY_RUN for a in ("--set", s)]
    return [sys.executable, "-m", "darla.cli", "-q", "run", "--out", str(out), *sets]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _run_killed_at(out: Path, seconds: float) -> bool:
    """Start the run, SIGKILL its process group after ``seconds``; ``True`` if it was still running."""
    proc = subprocess.Popen(_command(out), cwd=ROOT, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def check_run_dir_reads_back(out: Path) -> int:
    """Every ``*.json`` parses and every ``*.safetensors`` opens with all its tensors; returns the files read."""
    from safetensors import safe_open

    n = 0
    for path in sorted(out.rglob("*.json")):
        json.loads(path.read_text())
        n += 1
    for path in sorted(out.rglob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                f.get_tensor(key)
        n += 1
    return n


def _trial(tmp_path: Path, rng: random.Random, trial: int) -> bool:
    out = tmp_path / f"run{trial}"
    killed = _run_killed_at(out, rng.uniform(1.0, EXPECTED_SECONDS))
    done = subprocess.run(_command(out), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "report.md").is_file() and json.loads((out / "summary.json").read_text())
    assert check_run_dir_reads_back(out) >= 10
    return killed


def test_a_tiny_run_killed_at_a_random_moment_completes_on_rerun_with_intact_files(tmp_path):
    _trial(tmp_path, random.Random(0), 0)


@pytest.mark.slow
def test_tiny_runs_killed_at_random_moments_complete_on_rerun_with_intact_files(tmp_path):
    rng = random.Random(1)
    killed = sum(_trial(tmp_path, rng, trial) for trial in range(6))
    assert killed >= 4, "most kills should land before the run finished"


def test_the_checker_finds_a_truncated_file(tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(64)}, str(tmp_path / "a.safetensors"))
    (tmp_path / "b.json").write_text('{"ok": 1}')
    assert check_run_dir_reads_back(tmp_path) == 2
    data = (tmp_path / "a.safetensors").read_bytes()
    (tmp_path / "a.safetensors").write_bytes(data[:-10])
    with pytest.raises(Exception):  # noqa: B017 - safetensors' own error type
        check_run_dir_reads_back(tmp_path)
    (tmp_path / "a.safetensors").write_bytes(data)
    (tmp_path / "b.json").write_text('{"ok": ')
    with pytest.raises(ValueError):
        check_run_dir_reads_back(tmp_path)
