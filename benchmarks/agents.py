"""PPO environment steps per second: LatentVecEnv vs the naive FrozenVisionExtractor vs pixel CnnPolicy, and
the pipeline's own policy stage (``darla.pipeline.train_policy_stage``) vs this benchmark's bare setup.

Same env, same PPO settings (agents.train.ALGO_DEFAULTS["ppo"], 4 envs), same vision model (an untrained
β-VAE of the reference 64×64 architecture: speed does not depend on the weights), run side by side in
one process. The extractor path re-runs the encoder on every minibatch of every PPO epoch; the latent
path encodes each batch of frames once per env step. Writes ``benchmarks/results/agents.json`` with
the ratios and prints a Markdown table.

The second part runs each variant of the policy stage in a fresh child process (OpenMP's wait policy is
fixed per process, and ``darla`` sets ``OMP_WAIT_POLICY=PASSIVE``), rounds interleaved, median of
``--repeats``; steps/s are steady state (from the start of the second rollout to the end of ``learn``):

* ``bare``: ``train_policy`` as in the first part (torch's default threads, OpenMP default waiting);
* ``pipeline_before``: the policy stage as ``darla run`` ran it before (PASSIVE, 2 threads, DummyVecEnv);
* ``pipeline_dummy`` / ``pipeline_subproc``: ``train_policy_stage`` now (1 torch thread) with
  ``policy.vec_env=dummy`` / ``subproc``.

    python benchmarks/agents.py                # SeekAvoid 64×64 (MiniWorld-OneRoom if envs is missing)
    python benchmarks/agents.py --steps 2048   # quicker
    python benchmarks/agents.py --skip-modes   # only the pipeline part
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
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
from darla.machine import describe  # noqa: E402
from vision.checkpoint import atomic_write_bytes  # noqa: E402

MODES = ("latent", "extractor", "pixels")
RESULT = Path(__file__).resolve().parent / "results" / "agents.json"


def pick_env(obs_size: int) -> tuple[str, dict]:
    """SeekAvoid ``choice`` from ``envs`` if it is there, else miniworld's OneRoom, both ``obs_size`` square."""
    try:
        import gymnasium as gym

        import envs  # noqa: F401

        gym.make("darla/SeekAvoid-v0", domain="source", layout="choice", obs_size=obs_size).close()
        return "darla/SeekAvoid-v0", {"domain": "source", "layout": "choice", "obs_size": obs_size}
    except Exception as e:
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
        "machine": {**describe(), "torch_threads": torch.get_num_threads()},
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    atomic_write_bytes(out, json.dumps(report, indent=2).encode())
    return report


PIPELINE_VARIANTS = ("pipeline_before", "pipeline_dummy", "pipeline_subproc", "bare")


def _steady_rate(fn, steps: int) -> dict:
    """Run ``fn()`` (one PPO training) and time it; steady steps/s from the 2nd rollout's start to the end."""
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    marks: list[tuple[float, int]] = []
    original = OnPolicyAlgorithm.collect_rollouts

    def timed(self, *args, **kwargs):
        marks.append((time.perf_counter(), self.num_timesteps))
        return original(self, *args, **kwargs)

    OnPolicyAlgorithm.collect_rollouts = timed
    try:
        start = time.perf_counter()
        fn()
        end = time.perf_counter()
    finally:
        OnPolicyAlgorithm.collect_rollouts = original
    if len(marks) < 2:
        raise SystemExit(f"--steps {steps} gives a single rollout; use at least 2 rollouts (e.g. --steps 4096)")
    t1, n1 = marks[1]
    return {"seconds": round(end - start, 2), "steps_per_s": round((steps - n1) / (end - t1), 1),
            "steps_per_s_with_startup": round(steps / (end - start), 1)}


def child(variant: str, steps: int, ckpt: str, n_envs: int, obs_size: int, work: Path) -> dict:
    """One variant of the pipeline comparison, in this (fresh) process; its files go under ``work``."""
    import envs  # noqa: F401
    from darla.config import RunConfig
    from darla.pipeline import ENV_ID, env_kwargs, train_policy_stage

    config = RunConfig(device="cpu")
    config.env.obs_size = obs_size
    config.policy.steps, config.policy.n_envs = steps, n_envs
    tmp = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=work))
    if variant in ("bare", "pipeline_before"):
        kw = {**env_kwargs(config), "domain": config.train_domains}

        def fn():
            train_policy(env_id=ENV_ID, env_kwargs=kw, vision=ckpt, algo="ppo", mode="latent", steps=steps,
                         n_envs=n_envs, seed=0, out_dir=tmp / variant, progress=variant == "pipeline_before")
    else:
        config.policy.vec_env = variant.removeprefix("pipeline_")

        def fn():
            train_policy_stage(config, tmp, Path(ckpt), "bench", seed=0, progress=False)
    import resource

    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    out = _steady_rate(fn, steps)
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    # CPU seconds per 1k env steps (main process + env workers): less load-dependent than wall-clock rates;
    # system time is where OpenMP's passive wake-ups (futex) show.
    per_k = 1000 / steps
    cpu = {"cpu_user_s_per_1k_steps": round(sum(a.ru_utime - b.ru_utime for a, b in zip(after, before)) * per_k, 2),
           "cpu_sys_s_per_1k_steps": round(sum(a.ru_stime - b.ru_stime for a, b in zip(after, before)) * per_k, 2)}
    return {**out, **cpu, "torch_threads_process": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def run_pipeline_part(steps: int, obs_size: int, n_envs: int, repeats: int) -> dict:
    """Each variant in a fresh child process, rounds interleaved; median steps/s per variant."""
    torch.manual_seed(0)
    runs: dict[str, list[dict]] = {v: [] for v in PIPELINE_VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(vision.save(vision.make("beta_vae_dae", image_size=obs_size), Path(tmp) / "beta_vae_dae"))
        for r in range(repeats):
            for variant in PIPELINE_VARIANTS:
                env = dict(os.environ)
                env.pop("OMP_WAIT_POLICY", None)
                if variant != "bare":  # darla's CLI sets it before importing torch
                    env["OMP_WAIT_POLICY"] = "PASSIVE"
                out = Path(tmp) / f"{variant}-{r}.json"
                subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(steps), "--vision", ckpt,
                                "--n-envs", str(n_envs), "--obs-size", str(obs_size), "--out", str(out)],
                               env=env, check=True)
                runs[variant].append(json.loads(out.read_text()))
                logging.info("round %d %s: %.1f steps/s", r, variant, runs[variant][-1]["steps_per_s"])
    keys = ("steps_per_s", "steps_per_s_with_startup", "cpu_user_s_per_1k_steps", "cpu_sys_s_per_1k_steps")
    med = {v: {**{k: statistics.median(x[k] for x in rs) for k in keys}, "runs": rs} for v, rs in runs.items()}
    base = med["pipeline_before"]["steps_per_s"]
    ratios = {f"{v}_vs_pipeline_before": round(med[v]["steps_per_s"] / base, 2) for v in PIPELINE_VARIANTS
              if v != "pipeline_before"}
    ratios["subproc_vs_dummy"] = round(med["pipeline_subproc"]["steps_per_s"] / med["pipeline_dummy"]["steps_per_s"], 2)
    ratios["pipeline_subproc_vs_bare"] = round(med["pipeline_subproc"]["steps_per_s"] / med["bare"]["steps_per_s"], 2)
    return {"vision": "beta_vae_dae (untrained; the default run's model)", "steps": steps, "n_envs": n_envs,
            "repeats": repeats, "results": med, "ratios": ratios,
            "load_average_after": os.getloadavg(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "note": ("machine shared with other jobs while measured (load ~11 on 2 cores); compare ratios, not "
                     "absolute steps/s. CPU seconds count the main process and waited-for children: "
                     "SubprocVecEnv's forkserver workers are missing from pipeline_subproc's. The pipeline "
                     "variants run the stage with 1 torch thread (torch_threads_process is the process "
                     "default, restored after the stage)")}


def table(report: dict) -> str:
    lines: list[str] = []
    if "results" in report:
        r, base = report["results"], report["results"]["extractor"]["steps_per_s"]
        lines = [f"PPO on {report['env_id']} ({report['steps']} steps, {report['n_envs']} envs)", "",
                 "| mode | steps/s | seconds | vs naive extractor |", "|---|---:|---:|---:|"]
        for mode in MODES:
            lines.append(f"| {mode} | {r[mode]['steps_per_s']:.1f} | {r[mode]['seconds']:.1f} | "
                         f"{r[mode]['steps_per_s'] / base:.2f}× |")
    pp = report.get("pipeline")
    if pp:
        lines += ["", (f"Policy stage, PPO latent ({pp['steps']} steps, {pp['n_envs']} envs, median of {pp['repeats']} "
                       "fresh processes, steady state)"), "",
                  "| variant | steps/s | with start-up | vs pipeline before | CPU user / sys s per 1k steps |",
                  "|---|---:|---:|---:|---|"]
        base = pp["results"]["pipeline_before"]["steps_per_s"]
        for v in PIPELINE_VARIANTS:
            r = pp["results"][v]
            lines.append(f"| {v} | {r['steps_per_s']:.1f} | {r['steps_per_s_with_startup']:.1f} | "
                         f"{r['steps_per_s'] / base:.2f}× | {r['cpu_user_s_per_1k_steps']:.2f} / "
                         f"{r['cpu_sys_s_per_1k_steps']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4096, help="PPO env steps per mode (default 4096 = 4 rollouts)")
    p.add_argument("--obs-size", type=int, default=64)
    p.add_argument("--n-envs", type=int, default=4)
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument("--repeats", type=int, default=2, help="rounds of the pipeline comparison (median)")
    p.add_argument("--skip-modes", action="store_true", help="only the pipeline comparison")
    p.add_argument("--skip-pipeline", action="store_true", help="only the latent/extractor/pixels comparison")
    p.add_argument("--child", choices=PIPELINE_VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--vision", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.child:
        atomic_write_bytes(args.out, json.dumps(child(args.child, args.steps, args.vision, args.n_envs,
                                                      args.obs_size, args.out.parent)).encode())
        return 0
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.skip_modes:
        report = {k: v for k, v in previous.items() if k != "pipeline"}
    else:
        report = run(args.steps, args.obs_size, args.n_envs, args.out)
    if not args.skip_pipeline:
        report["pipeline"] = run_pipeline_part(args.steps, args.obs_size, args.n_envs, args.repeats)
    elif "pipeline" in previous:
        report["pipeline"] = previous["pipeline"]
    atomic_write_bytes(args.out, json.dumps(report, indent=2).encode())
    print(table(report))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
