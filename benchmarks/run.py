"""Wall time, memory, per-stage seconds, CPU utilisation and returns of the default ``darla run`` (fresh
run directory).

Runs ``darla run`` in a child process exactly as a user would and measures:

* wall seconds of the whole command;
* peak RSS of the largest process (the child or any worker: ``getrusage(RUSAGE_CHILDREN).ru_maxrss``) and
  the peak of the summed RSS of the whole process tree (``/proc`` sampled every 0.5 s; SubprocVecEnv and
  collection workers count here);
* per-stage seconds from each stage's ``DONE.json`` (a fresh run reuses nothing, so every stage ran);
* CPU utilisation: user + system CPU seconds of the child tree / wall / cores (1.0 = every core busy the
  whole run), with user and system seconds apart (``getrusage`` of the waited-for children, or the
  ``/proc`` samples of the tree if larger: SubprocVecEnv workers hang off a forkserver);
* the run's source / target returns from its ``summary.json``.

Writes ``benchmarks/results/run.json``. Goals (issue #16): ≤ 10 min, ≤ 4 GiB, source return ≥ 0.9.

    python benchmarks/run.py                 # the default config (minutes)
    python benchmarks/run.py --set policy.steps=5000 --set collect.frames=2000 --set vision.steps=200 \\
        --set vision.dae_steps=100 --out /tmp/quick --result /tmp/quick.json   # a quick check of the script
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from darla.machine import describe

RESULT = Path(__file__).resolve().parent / "results" / "run.json"
GOALS = {"minutes": 10.0, "peak_rss_gib": 4.0, "source_mean": 0.9}


def _tree(root: int) -> dict[int, tuple[int, float, float]]:
    """``{pid: (rss KiB, user s, system s)}`` of ``root`` and all its descendants, read from ``/proc``."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    stats: dict[int, tuple[int, float, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)"
            with open(f"/proc/{entry}/statm") as f:
                resident_pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):  # the process ended while we looked
            continue
        parents[int(entry)] = int(fields[1])
        stats[int(entry)] = (resident_pages * os.sysconf("SC_PAGE_SIZE") // 1024, int(fields[11]) / ticks,
                             int(fields[12]) / ticks)
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid and c not in tree]
        tree.update(children)
        frontier.extend(children)
    return {p: stats[p] for p in tree if p in stats}


class TreeMonitor(threading.Thread):
    """Samples a process tree every ``interval`` s until :meth:`stop`: ``peak_kib`` is the peak of its summed
    RSS; ``cpu`` the last user/system seconds seen of each process (env workers of a ``forkserver`` are not
    children that ``getrusage`` can count, so their CPU time is read here)."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_kib = pid, interval, 0
        self.cpu: dict[int, tuple[float, float]] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            tree = _tree(self.pid)
            self.peak_kib = max(self.peak_kib, sum(rss for rss, _, _ in tree.values()))
            self.cpu.update({p: (u, s) for p, (_, u, s) in tree.items()})
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()

    @property
    def user_system(self) -> tuple[float, float]:
        return sum(u for u, _ in self.cpu.values()), sum(s for _, s in self.cpu.values())


def stage_records(run_dir: Path) -> tuple[dict[str, float], dict[str, dict]]:
    """``({stage directory: seconds}, {stage directory: {device, vec_env, torch_threads}})`` from the
    ``DONE.json`` of every stage of a run."""
    seconds, settings = {}, {}
    for done in sorted((run_dir / "stages").glob("*/DONE.json")):
        record = json.loads(done.read_text())
        seconds[done.parent.name] = record.get("seconds")
        extra = {k: record[k] for k in ("device", "vec_env", "torch_threads") if k in record}
        if extra:
            settings[done.parent.name] = extra
    return seconds, settings


def measure(out: Path, overrides: list[str]) -> dict:
    """Run ``darla run`` into a fresh ``out`` and return the measurements (see the module docstring)."""
    if out.exists():
        shutil.rmtree(out)  # a fresh run: nothing reused
    cmd = [sys.executable, "-m", "darla.cli", "-q", "run", "--out", str(out)]
    for item in overrides:
        cmd += ["--set", item]
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    memory = TreeMonitor(proc.pid)
    memory.start()
    code = proc.wait()
    wall = time.perf_counter() - start
    memory.stop()
    if code != 0:
        sys.exit(f"darla run failed with exit code {code}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and every worker it waited for
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    sampled_user, sampled_system = memory.user_system
    # getrusage misses processes nobody waited for (forkserver workers); sampling misses each process's
    # last half second: take the larger of the two
    user, system = max(user, sampled_user), max(system, sampled_system)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    peak_gib = after.ru_maxrss / 2**20
    tree_gib = memory.peak_kib / 2**20
    summary = json.loads((out / "summary.json").read_text())
    source = summary["source"]["mean"]
    seconds, settings = stage_records(out)
    return {
        "command": "darla run" + "".join(f" --set {o}" for o in overrides),
        "wall_seconds": round(wall, 1),
        "minutes": round(wall / 60, 2),
        "peak_rss_gib": round(peak_gib, 3),
        "peak_tree_rss_gib": round(tree_gib, 3),
        "cpu_user_seconds": round(user, 1),
        "cpu_system_seconds": round(system, 1),
        "cpu_utilisation": round((user + system) / wall / cores, 3),
        "source_mean": source,
        "source_ci": summary["source"]["ci"],
        "target_mean": summary.get("target", {}).get("mean"),
        "target_ci": summary.get("target", {}).get("ci"),
        "ratio_mean": summary.get("ratio", {}).get("mean"),
        "stage_seconds": seconds,
        "stage_settings": settings,
        "timings": summary.get("timings", {}),
        "goals": GOALS,
        "meets_goals": {
            "minutes": wall / 60 <= GOALS["minutes"],
            "peak_rss_gib": max(peak_gib, tree_gib) <= GOALS["peak_rss_gib"],
            "source_mean": source is not None and source >= GOALS["source_mean"],
        },
        "machine": {**describe(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-default"), help="fresh run directory")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--result", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    result = measure(args.out, args.overrides)
    args.result.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.result.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(result, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(args.result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
