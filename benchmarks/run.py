"""Wall time, peak RSS and returns of the default ``darla run`` (fresh run directory, CPU).

Runs ``darla run`` in a child process exactly as a user would, measures wall time and the peak
resident memory of the largest process (the child or any of its workers, via ``getrusage``), reads
the run's ``summary.json`` and writes ``benchmarks/results/run.json``. Goals: ≤ 15 min, ≤ 4 GiB,
mean source return ≥ 0.6.

    python benchmarks/run.py                 # the default config (minutes)
    python benchmarks/run.py --set policy.steps=20000 --out /tmp/quick   # anything darla run takes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

RESULT = Path(__file__).resolve().parent / "results" / "run.json"
GOALS = {"minutes": 15.0, "peak_rss_gib": 4.0, "source_mean": 0.6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-default"), help="fresh run directory")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--result", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)  # a fresh run: nothing reused
    cmd = [sys.executable, "-m", "darla.cli", "-q", "run", "--out", str(args.out)]
    for item in args.overrides:
        cmd += ["--set", item]
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(cmd)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"darla run failed with exit code {proc.returncode}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads((args.out / "summary.json").read_text())
    result = {
        "command": "darla run" + "".join(f" --set {o}" for o in args.overrides),
        "wall_seconds": round(wall, 1),
        "minutes": round(wall / 60, 2),
        "peak_rss_gib": round(peak_kib / 2**20, 3),
        "source_mean": summary["source"]["mean"],
        "source_ci": summary["source"]["ci"],
        "target_mean": summary["target"]["mean"],
        "target_ci": summary["target"]["ci"],
        "ratio_mean": summary.get("ratio", {}).get("mean"),
        "stage_seconds": summary.get("timings", {}),
        "goals": GOALS,
        "meets_goals": {
            "minutes": wall / 60 <= GOALS["minutes"],
            "peak_rss_gib": peak_kib / 2**20 <= GOALS["peak_rss_gib"],
            "source_mean": summary["source"]["mean"] >= GOALS["source_mean"],
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_before": load_before},
    }
    args.result.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.result.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
