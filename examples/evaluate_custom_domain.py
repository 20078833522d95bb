"""Evaluate SB3 policies zero-shot on a custom SeekAvoid domain (DARLA stage 3, Higgins et al. 2017).

A domain is data: here a darker version of the target room, made with ``dataclasses.replace`` (or
loaded from a YAML file with ``--domains-yaml``). Every domain is played on the same episode seeds, so
layouts are paired and the target/source ratio compares like with like.

    python examples/evaluate_custom_domain.py --policy runs/x/policy-s0 runs/x/policy-s1 --episodes 50
    python examples/evaluate_custom_domain.py --policy my_ppo.zip --algo ppo --obs-size 64   # any SB3 pixel policy
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import gymnasium as gym
from stable_baselines3 import A2C, DQN, PPO

import envs  # noqa: F401  (registers darla/SeekAvoid-v0, headless rendering)
from agents import write_evaluation, zero_shot_evaluate
from envs.domains import get_domain, load_domains_yaml, resolve_domains

SB3 = {"ppo": PPO, "a2c": A2C, "dqn": DQN}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="zero-shot evaluation of SB3 policies on a custom SeekAvoid domain")
    p.add_argument("--policy", nargs="+", required=True,
                   help="darla policy directories (one per training seed), or SB3 .zip files (with --algo)")
    p.add_argument("--algo", default="ppo", choices=sorted(SB3), help="SB3 class of plain .zip policies")
    p.add_argument("--domains-yaml", type=Path, default=None, help="extra domains from a YAML file (see envs.domains)")
    p.add_argument("--obs-size", type=int, default=None, help="frame size (default: from policy.json, else 64)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("runs/example_evaluation"))
    args = p.parse_args(argv)

    policies, obs_size = [], args.obs_size
    for path in map(Path, args.policy):
        if (path / "policy.json").exists():
            policies.append(path)
            obs_size = obs_size or json.loads((path / "policy.json").read_text()).get("obs_size")
        elif path.suffix == ".zip":
            policies.append(SB3[args.algo].load(path, device="cpu"))  # any SB3 policy on SeekAvoid frames
        else:
            raise SystemExit(f"'{path}' is neither a darla policy directory nor an SB3 .zip")
    obs_size = obs_size or 64

    darker = dataclasses.replace(get_domain("A-changed"), name="A-changed-darker", light=(0.35, 0.45))
    domains = resolve_domains("source,target") + [darker]
    if args.domains_yaml:
        domains += load_domains_yaml(args.domains_yaml)

    def env_factory(domain):
        return gym.make("darla/SeekAvoid-v0", domain=domain, layout="choice", obs_size=obs_size)

    result = zero_shot_evaluate(policies, domains, env_factory=env_factory, episodes=args.episodes, seed=args.seed,
                                source=resolve_domains("source"))
    out = write_evaluation(result, args.out)
    print((out / "evaluation.md").read_text())
    print(f"evaluation: {out}")
    return result


if __name__ == "__main__":
    main()
