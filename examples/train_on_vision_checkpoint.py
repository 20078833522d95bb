"""Train a stable-baselines3 policy on a frozen darla vision checkpoint, from Python.

Stage 2 of DARLA (Higgins et al. 2017): the vision model learnt in stage 1 is frozen and PPO (or A2C,
DQN) learns to act on its features in the source domains of SeekAvoid. The policy lands in
``--out`` as ``policy.safetensors`` (its weights) + ``policy.json`` (what rebuilds it, pinned to the
checkpoint's digest); nothing is pickled.

    python examples/train_on_vision_checkpoint.py --vision runs/x/vision/model --steps 100000
    python examples/train_on_vision_checkpoint.py --mode pixels --steps 100000     # end-to-end baseline

Without ``--vision`` an untrained VAE checkpoint is made first (a smoke run, not a useful policy).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym

import envs  # noqa: F401  (registers darla/SeekAvoid-v0, headless rendering)
import vision
from agents import load_policy, train_policy, wrap_env


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description="train an SB3 policy on a frozen darla vision checkpoint")
    p.add_argument("--vision", type=Path, default=None, help="vision checkpoint directory (default: make an untrained VAE)")
    p.add_argument("--mode", default="latent", choices=["latent", "extractor", "pixels"])
    p.add_argument("--algo", default="ppo", help="any SB3 algorithm that fits Discrete actions: ppo, a2c, dqn, ...")
    p.add_argument("--domain", default="source", help="training domains: a split or comma-separated domain names")
    p.add_argument("--obs-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--n-envs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/example_policy"))
    args = p.parse_args(argv)

    ckpt = args.vision
    if ckpt is None and args.mode != "pixels":
        ckpt = vision.save(vision.make("vae", image_size=args.obs_size), args.out / "untrained_vae")
        print(f"no --vision given: using an untrained VAE at {ckpt}")
    algo_kwargs = {}
    if args.algo == "ppo" and args.steps < 256 * args.n_envs:  # keep tiny runs tiny: one short rollout
        algo_kwargs = {"n_steps": max(16, args.steps // args.n_envs), "batch_size": max(16, args.steps // args.n_envs)}
    out = train_policy(env_id="darla/SeekAvoid-v0",
                       env_kwargs={"domain": args.domain, "layout": "choice", "obs_size": args.obs_size},
                       vision=None if args.mode == "pixels" else str(ckpt), algo=args.algo, mode=args.mode,
                       steps=args.steps, n_envs=args.n_envs, seed=args.seed, out_dir=args.out, algo_kwargs=algo_kwargs)

    # The saved policy reloads with its frozen vision; wrap_env gives it the observations it was trained on.
    model, meta = load_policy(out)
    env = wrap_env(gym.make("darla/SeekAvoid-v0", domain="A-default", obs_size=args.obs_size), meta)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    env.close()
    print(json.dumps({k: meta[k] for k in ("algo", "mode", "vision_id", "steps", "final_mean_return")}, indent=2))
    print(f"policy: {out} (first action on A-default, seed 0: {int(action)})")
    return out


if __name__ == "__main__":
    main()
