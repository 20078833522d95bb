"""Throughput of every darla stage on a CUDA machine: run it there, it writes one JSON.

    python benchmarks/gpu.py                       # needs CUDA; writes benchmarks/results/gpu.json
    python benchmarks/gpu.py --device cpu --quick  # a dry run anywhere (tiny sizes), e.g. before renting a GPU

Measured on ``--device`` (default ``cuda``; without CUDA the script says so and exits with status 2):

* stage-1 collection: frames/s of ``envs.collect_frames`` (miniworld rendering; CPU-bound unless EGL
  runs on the GPU);
* vision training: images/s of one Adam step of ``model.loss`` on a batch, per precision (fp32, and
  ``torch.autocast`` bf16 / fp16 where the device supports them), for β-VAE_DAE and the plain β-VAE;
* PPO: env steps/s of ``agents.train_policy`` in ``latent`` mode (the encoder runs once per env step)
  vs ``extractor`` mode (inside every PPO minibatch), the pipeline's VecEnv choice;
* evaluation: episodes/s of ``agents.zero_shot_evaluate`` on the latent policy in the source domains.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from darla.machine import describe

os.environ.setdefault("PYGLET_HEADLESS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as darla's CLI; before torch
# Run as a script, this file's directory comes first on sys.path and its name would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

RESULT = Path(__file__).resolve().parent / "results" / "gpu.json"
log = logging.getLogger("benchmarks.gpu")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def precisions(device: str) -> list[str]:
    """The autocast precisions worth timing on ``device``: fp32 always, bf16 where supported, fp16 on GPUs."""
    import torch

    out = ["fp32"]
    if device.startswith("cuda"):
        if torch.cuda.is_bf16_supported():
            out.append("bf16")
        out.append("fp16")
    elif device == "mps":
        out.append("fp16")
    else:
        out.append("bf16")  # CPU autocast is bf16 only
    return out


def vision_throughput(device: str, image_size: int, batch: int, steps: int) -> dict:
    """Images/s of training steps (forward, backward, Adam) per model and precision on random frames."""
    import numpy as np
    import torch

    import vision

    rng = np.random.default_rng(0)
    x = vision.to_tensor(rng.integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8), device)
    out: dict = {}
    for name in ("beta_vae_dae", "beta_vae"):
        torch.manual_seed(0)
        model = vision.make(name, image_size=image_size)
        if name == "beta_vae_dae":
            model.set_dae(vision.make("dae", image_size=image_size))  # speed does not depend on the weights
        model.to(device).train()
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        out[name] = {}
        for precision in precisions(device):
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
            scaler = torch.amp.GradScaler(device.split(":")[0]) if precision == "fp16" else None

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                    loss = model.loss(x)["loss"]
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()

            try:
                for _ in range(2):  # warm-up (cuDNN autotuning, allocator)
                    step()
                _sync(device)
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                _sync(device)
                seconds = time.perf_counter() - start
                out[name][precision] = {"images_per_s": round(steps * batch / seconds, 1), "steps": steps}
            except (RuntimeError, TypeError) as e:  # an op without a kernel for this dtype on this device
                out[name][precision] = {"error": f"{type(e).__name__}: {e}"[:300]}
            log.info("vision %s %s: %s", name, precision, out[name][precision])
    return out


def collection_throughput(frames: int, workers: int, obs_size: int, tmp: Path) -> dict:
    from envs.collect import collect_frames

    start = time.perf_counter()
    collect_frames(tmp / "frames", frames=frames, split="source", workers=workers, obs_size=obs_size, progress=False)
    seconds = time.perf_counter() - start
    return {"frames": frames, "workers": workers, "frames_per_s": round(frames / seconds, 1),
            "seconds": round(seconds, 2)}


def policy_throughput(device: str, steps: int, obs_size: int, n_envs: int, tmp: Path) -> tuple[dict, Path]:
    """PPO env steps/s in latent and extractor mode; returns the results and the latent policy's directory."""
    import torch

    import vision
    from agents.train import train_policy
    from darla.config import RunConfig
    from darla.pipeline import ENV_ID, env_kwargs, policy_vec_env

    torch.manual_seed(0)
    model = vision.make("beta_vae_dae", image_size=obs_size)
    ckpt = vision.save(model, tmp / "vision")
    config = RunConfig(device=device)
    config.env.obs_size, config.policy.n_envs = obs_size, n_envs
    vec_env = policy_vec_env(config)
    kw = {**env_kwargs(config), "domain": config.train_domains}
    out: dict = {"vec_env": vec_env}
    for mode in ("latent", "extractor"):
        start = time.perf_counter()
        train_policy(env_id=ENV_ID, env_kwargs=kw, vision=str(ckpt), algo="ppo", mode=mode, steps=steps,
                     n_envs=n_envs, seed=0, out_dir=tmp / mode, device=device, progress=False,
                     subproc=vec_env == "subproc")
        seconds = time.perf_counter() - start
        out[mode] = {"steps_per_s": round(steps / seconds, 1), "seconds": round(seconds, 2)}
        log.info("ppo %s: %s", mode, out[mode])
    out["latent_vs_extractor"] = round(out["latent"]["steps_per_s"] / out["extractor"]["steps_per_s"], 2)
    return out, tmp / "latent"


def evaluation_throughput(policy_dir: Path, device: str, episodes: int) -> dict:
    from agents.evaluate import zero_shot_evaluate
    from darla.pipeline import resolve_domain_spec

    domains = resolve_domain_spec("source")
    start = time.perf_counter()
    zero_shot_evaluate([str(policy_dir)], domains, episodes=episodes, seed=10_000, progress=False, n_boot=100,
                       device=device)
    seconds = time.perf_counter() - start
    total = episodes * len(domains)
    return {"episodes": total, "domains": len(domains), "episodes_per_s": round(total / seconds, 2),
            "seconds": round(seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, mps or cpu (a dry run)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing useful")
    p.add_argument("--out", type=Path, default=RESULT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from darla.config import ConfigError, check_device

    try:
        check_device(args.device, "--device")
    except ConfigError as e:
        print(f"benchmarks/gpu.py: {e}. This benchmark is for a CUDA machine; for a dry run here pass --device cpu",
              file=sys.stderr)
        return 2
    import envs  # noqa: F401

    sizes = dict(frames=400, vision_steps=2, batch=8, ppo_steps=512, episodes=2) if args.quick else \
        dict(frames=20_000, vision_steps=50, batch=64, ppo_steps=20_480, episodes=40)
    obs_size, n_envs = 64, 4
    report: dict = {"benchmark": "darla stage throughput on one device", "device": args.device, "quick": args.quick,
                    "sizes": sizes}
    if args.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        report["collection"] = collection_throughput(sizes["frames"], 2, obs_size, tmp)
        report["vision"] = vision_throughput(args.device, obs_size, sizes["batch"], sizes["vision_steps"])
        report["ppo"], latent = policy_throughput(args.device, sizes["ppo_steps"], obs_size, n_envs, tmp)
        report["evaluation"] = evaluation_throughput(latent, args.device, sizes["episodes"])
    report["machine"] = {**describe(), "cuda": torch.version.cuda}
    report["time"] = time.strftime("%Y-%m-%d %H:%M:%S")
    from vision.checkpoint import atomic_write_bytes

    atomic_write_bytes(args.out, json.dumps(report, indent=2).encode())
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
