"""PPO environment steps per second: LatentVecEnv vs the naive FrozenVisionExtractor vs pixel CnnPolicy.

Same env, same PPO settings (agents.train.ALGO_DEFAULTS["ppo"], 4 envs), same vision model (an untrained
β-VAE of the reference 64×64 architecture: speed does not depend on the weights), run side by side in
one process. The extractor path re-runs the encoder on every minibatch of every PPO epoch; the latent
path encodes each batch of frames once per env step. Writes ``benchmarks/results/agents.json`` with
the ratios and prints a Markdown table.

    python benchmarks/agents.py                # SeekAvoid 64×64 (MiniWorld-OneRoom if envs is missing)
    python benchmarks/agents.py --steps 2048   # quicker
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYGLET_HEADLESS", "1")
# Run as a script, this file's directory comes first on sys.path and its name would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

import vision  # noqa: E402
from agents.train import ALGO_DEFAULTS, train_policy  # noqa: E402
from vision.checkpoint import atomic_write_bytes  # noqa: E402

MODES = ("latent", "extractor", "pixels")
RESULT = Path(__file__).resolve().parent / "results" / "agents.json"


def pick_env(obs_size: int) -> tuple[str, dict]:
    """SeekAvoid ``choice`` from ``envs`` if it is there, else miniworld's OneRoom, both ``obs_size`` square."""
    try:
        import envs  # noqa: F401
        import gymnasium as gym

        gym.make("darla/SeekAvoid-v0", domain="source", layout="choice", obs_size=obs_size).close()
        return "darla/SeekAvoid-v0", {"domain": "source", "layout": "choice", "obs_size": obs_size}
    except Exception as e:  # noqa: BLE001 - any failure means: fall back to plain miniworld
        logging.warning("SeekAvoid unavailable (%s); using MiniWorld-OneRoom-v0", e)
        import miniworld  # noqa: F401

        return "MiniWorld-OneRoom-v0", {"obs_width": obs_size, "obs_height": obs_size}


def run(steps: int, obs_size: int, n_envs: int, out: Path) -> dict:
    env_id, env_kwargs = pick_env(obs_size)
    torch.manual_seed(0)
    model = vision.make("beta_vae", image_size=obs_size)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = vision.save(model, Path(tmp) / "beta_vae")
        for mode in MODES:
            start = time.perf_counter()
            train_policy(env_id=env_id, env_kwargs=env_kwargs, vision=None if mode == "pixels" else str(ckpt),
                         algo="ppo", mode=mode, steps=steps, n_envs=n_envs, seed=0, out_dir=Path(tmp) / mode,
                         progress=False)
            seconds = time.perf_counter() - start
            results[mode] = {"seconds": round(seconds, 2), "steps_per_s": round(steps / seconds, 1)}
            logging.info("%s: %.1f steps/s", mode, steps / seconds)
    ratios = {
        "latent_vs_extractor": round(results["latent"]["steps_per_s"] / results["extractor"]["steps_per_s"], 2),
        "latent_vs_pixels": round(results["latent"]["steps_per_s"] / results["pixels"]["steps_per_s"], 2),
        "extractor_vs_pixels": round(results["extractor"]["steps_per_s"] / results["pixels"]["steps_per_s"], 2),
    }
    report = {
        "benchmark": "PPO env steps/s: LatentVecEnv vs FrozenVisionExtractor vs CnnPolicy pixels",
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "vision": "beta_vae (untrained, reference architecture)",
        "ppo": ALGO_DEFAULTS["ppo"],
        "steps": steps,
        "n_envs": n_envs,
        "results": results,
        "ratios": ratios,
        "goal": "latent_vs_extractor >= 2",
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "platform": platform.platform()},
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    atomic_write_bytes(out, json.dumps(report, indent=2).encode())
    return report


def table(report: dict) -> str:
    r, base = report["results"], report["results"]["extractor"]["steps_per_s"]
    lines = [f"PPO on {report['env_id']} ({report['steps']} steps, {report['n_envs']} envs)", "",
             "| mode | steps/s | seconds | vs naive extractor |", "|---|---:|---:|---:|"]
    for mode in MODES:
        lines.append(f"| {mode} | {r[mode]['steps_per_s']:.1f} | {r[mode]['seconds']:.1f} | "
                     f"{r[mode]['steps_per_s'] / base:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4096, help="PPO env steps per mode (default 4096 = 4 rollouts)")
    p.add_argument("--obs-size", type=int, default=64)
    p.add_argument("--n-envs", type=int, default=4)
    p.add_argument("--out", type=Path, default=RESULT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = run(args.steps, args.obs_size, args.n_envs, args.out)
    print(table(report))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
