"""benchmarks/run.py's accounting: per-stage seconds from DONE.json and the process-tree sampler (memory and
CPU of workers that ``getrusage`` cannot see). Timing itself stays in benchmarks/."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_module():
    spec = importlib.util.spec_from_file_location("benchmarks_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_records_read_every_done_json(tmp_path):
    run = _run_module()
    records = {"collect-a": {"seconds": 1.5},
               "policy-s0-b": {"seconds": 9.0, "device": "cpu", "vec_env": "dummy", "torch_threads": 1}}
    for name, record in records.items():
        (tmp_path / "stages" / name).mkdir(parents=True)
        (tmp_path / "stages" / name / "DONE.json").write_text(json.dumps(record))
    (tmp_path / "stages" / "vision-unfinished").mkdir()  # no DONE.json: not a finished stage
    seconds, settings = run.stage_records(tmp_path)
    assert seconds == {"collect-a": 1.5, "policy-s0-b": 9.0}
    assert settings == {"policy-s0-b": {"device": "cpu", "vec_env": "dummy", "torch_threads": 1}}


GRANDCHILD = "import time\nb = bytearray(60 * 2**20)\nt = time.time()\nwhile time.time() - t < 1.5:\n    b[0] = 1\n"


def test_tree_monitor_counts_a_grandchild_nobody_waits_for():
    run = _run_module()
    # the child starts a busy grandchild holding 60 MB and exits without waiting for it
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {GRANDCHILD!r}]); time.sleep(1.7)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    monitor = run.TreeMonitor(proc.pid, interval=0.1)
    monitor.start()
    proc.wait()
    monitor.stop()
    user, _ = monitor.user_system
    assert len(monitor.cpu) >= 2  # the child and its grandchild
    assert user > 0.05
    assert monitor.peak_kib > 60 * 1024  # the grandchild's buffer is in the tree's summed RSS
