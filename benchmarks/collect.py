"""Stage-1 collection speed: ``collect_frames`` (2 worker processes) vs one env stepping in one process.

Side by side in one run, same resolution, random actions:

- ``raw miniworld``: ``MiniWorld-OneRoom-v0`` stepped in this process (what miniworld costs by itself);
- ``SeekAvoid, 1 env``: ``darla/SeekAvoid-v0`` over the source split stepped in this process;
- ``collect_frames``: the full collection into a temp directory with ``--workers`` processes.

The baselines are timed on stepping only (env already built, frames thrown away); ``collect_frames``
is timed end to end (spawning workers, building their envs, writing chunks, assembling the arrays), so
the ratios are conservative. ``ratio`` = collect_frames frames/s ÷ single SeekAvoid env frames/s (the
parallel speed-up on the same renderer); ``ratio_vs_raw_miniworld`` compares with plain miniworld.
Wall-clock ratios swing with whatever else runs on the machine, so CPU milliseconds per frame are
recorded too (``cpu_cost_ratio`` = single env ÷ collect_frames, start-up included): on an idle machine
with as many cores as workers, the wall-clock ratio approaches ``workers × cpu_cost_ratio``.
Writes ``benchmarks/results/collect.json`` and prints a Markdown table.

    python benchmarks/collect.py                    # 20,000 frames of 64×64 (darla collect's default)
    python benchmarks/collect.py --frames 4000      # quicker
    python benchmarks/collect.py --repeats 3        # best of 3 interleaved runs (on a busy machine)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYGLET_HEADLESS", "1")
# Run as a script, this file's directory comes first on sys.path and its siblings would shadow packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import gymnasium  # noqa: E402
import miniworld  # noqa: E402,F401  (registers MiniWorld-OneRoom-v0)
import numpy as np  # noqa: E402

import envs  # noqa: E402,F401
from darla.machine import describe  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "collect.json"


def step_fps(env_id: str, frames: int, seed: int = 0, **kwargs) -> dict:
    """Frames/s of one env stepped with uniform random actions in this process (reset frames count)."""
    t0 = time.perf_counter()
    env = gymnasium.make(env_id, **kwargs)
    make_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    n_actions = int(env.action_space.n)
    t0, cpu0 = time.perf_counter(), time.process_time()  # process time counts llvmpipe's render threads too
    done = 1
    while done < frames:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(n_actions)))
        done += 1
        if (terminated or truncated) and done < frames:
            env.reset()
            done += 1
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    env.close()
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 1),
            "cpu_ms_per_frame": round(1000 * cpu / frames, 4), "make_seconds": round(make_s, 3)}


_COLLECT_SCRIPT = """
import json, sys, time
from envs.collect import collect_frames
if __name__ == "__main__":
    t0 = time.perf_counter()
    collect_frames(**json.loads(sys.argv[1]))
    print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def collect_fps(frames: int, obs_size: int, workers: int, chunk_size: int) -> dict:
    """``collect_frames`` in a fresh process (as ``darla collect`` runs it), timed inside that process; the
    CPU time of that process and its workers (all waited for) comes from ``RUSAGE_CHILDREN``."""
    with tempfile.TemporaryDirectory() as tmp:
        kwargs = {"out_dir": str(Path(tmp) / "data"), "frames": frames, "split": "source", "workers": workers,
                  "seed": 0, "obs_size": obs_size, "chunk_size": chunk_size, "progress": False}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-c", _COLLECT_SCRIPT, json.dumps(kwargs)], capture_output=True,
                              text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"collect_frames failed:\n{proc.stderr[-3000:]}")
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 1),
            "cpu_ms_per_frame": round(1000 * cpu / frames, 4), "workers": workers, "chunk_size": chunk_size}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=20_000)
    p.add_argument("--obs-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=500)
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats; the best run of each counts")
    p.add_argument("--out", type=Path, default=RESULT)
    args = p.parse_args(argv)
    s = args.obs_size

    load_before = list(os.getloadavg())
    runs: dict[str, list[dict]] = {"raw": [], "single": [], "parallel": []}
    for _ in range(args.repeats):  # interleaved, so a busy spell on the machine hits every variant alike
        runs["raw"].append(step_fps("MiniWorld-OneRoom-v0", args.frames, obs_width=s, obs_height=s))
        runs["single"].append(step_fps("darla/SeekAvoid-v0", args.frames, domain="source", layout="choice",
                                       obs_size=s))
        runs["parallel"].append(collect_fps(args.frames, s, args.workers, args.chunk_size))
    # best of the repeats, as timeit does: the least disturbed run of each variant
    raw, single, parallel = (max(runs[k], key=lambda r: r["fps"]) for k in ("raw", "single", "parallel"))
    for k, best in (("raw", raw), ("single", single), ("parallel", parallel)):
        best["all_fps"] = [r["fps"] for r in runs[k]]
    result = {
        "benchmark": "stage-1 collection frames/s",
        "obs_size": s,
        "frames": args.frames,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "python": platform.python_version(),
        "machine": describe(),
        "raw_miniworld_oneroom": raw,
        "seekavoid_single_env": single,
        "collect_frames": parallel,
        "ratio": round(parallel["fps"] / single["fps"], 3),
        # CPU cost per frame is far less sensitive to other jobs on the machine than wall time; on an idle
        # machine with `workers` cores the wall-clock ratio approaches workers × this one
        "cpu_cost_ratio": round(single["cpu_ms_per_frame"] / parallel["cpu_ms_per_frame"], 3),
        "ratio_vs_raw_miniworld": round(parallel["fps"] / raw["fps"], 3),
        "goal": "ratio >= 1.6 on 2 cores",
        "note": "baselines time stepping only; collect_frames is timed end to end (worker start-up, env "
                "construction, chunk writes, assembly) and its CPU time includes all of that plus interpreter "
                "start-up; cpu_cost_ratio = single-env CPU ms/frame ÷ collect_frames CPU ms/frame",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)

    rows = [("raw miniworld OneRoom, 1 env, stepping", raw),
            ("SeekAvoid source, 1 env, stepping", single),
            (f"collect_frames, {args.workers} workers, end to end", parallel)]
    print(f"\n{args.frames} frames of {s}×{s}, {os.cpu_count()} CPUs\n")
    print("| run | frames/s | seconds | × SeekAvoid 1 env | CPU ms/frame |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['fps']:,.0f} | {r['seconds']:.2f} | {r['fps'] / single['fps']:.2f} "
              f"| {r['cpu_ms_per_frame']:.3f} |")
    print(f"\nratio (collect / 1 SeekAvoid env): {result['ratio']:.2f}; vs raw miniworld: "
          f"{result['ratio_vs_raw_miniworld']:.2f}; CPU cost ratio {result['cpu_cost_ratio']:.2f}; "
          f"load average {load_before[0]:.1f} → {result['load_average_after'][0]:.1f}; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
