"""Evaluate SB3 policies zero-shot on a custom SeekAvoid domain (DARLA stage 3, Higgins et al. 2017).

A domain is data: here a darker version of the target room, made with ``dataclasses.replace`` (or
loaded from a YAML file with ``--domains-yaml``). Every domain is played on the same episode seeds, so
layouts are paired and the target/source ratio compares like with like.

    python examples/evaluate_custom_domain.py --policy runs/x/policy-s0 runs/x/policy-s1 --episodes 50
    python examples/evaluate_custom_domain.py --policy my_ppo.zip --algo ppo --obs-size 64   # any SB3 pixel policy

Foreign ``.zip`` files are read without unpickling (``agents.load_policy``: the zip's JSON and its
``policy.pth`` as weights only), so a crafted zip cannot run code here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import gymnasium as gym

import envs  # noqa: F401  (registers darla/SeekAvoid-v0, headless rendering)
from agents import load_policy, write_evaluation, zero_shot_evaluate
from agents.algos import algo_names
from envs.seekavoid.domains import get_domain, load_domains_yaml, resolve_domains


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="zero-shot evaluation of SB3 policies on a custom SeekAvoid domain")
    p.add_argument("--policy", nargs="+", required=True,
                   help="darla policy directories (one per training seed), or SB3 .zip files (with --algo)")
    p.add_argument("--algo", default="ppo", choices=algo_names(), help="SB3 algorithm of plain .zip policies")
    p.add_argument("--domains-yaml", type=Path, default=None, help="extra domains from a YAML file (see envs.seekavoid.domains)")
    p.add_argument("--obs-size", type=int, default=None, help="frame size (default: from policy.json, else 64)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("runs/example_evaluation"))
    args = p.parse_args(argv)

    paths, obs_size = [Path(p) for p in args.policy], args.obs_size
    for path in paths:
        if (path / "policy.json").exists():
            obs_size = obs_size or json.loads((path / "policy.json").read_text()).get("obs_size")
        elif path.suffix != ".zip":
            raise SystemExit(f"'{path}' is neither a darla policy directory nor an SB3 .zip")
    obs_size = obs_size or 64
    policies: list = []
    for path in paths:
        if path.suffix == ".zip":  # any SB3 policy on SeekAvoid frames: spaces from the env, weights only
            probe = gym.make("darla/SeekAvoid-v0", domain="A-default", layout="choice", obs_size=obs_size)
            policies.append(load_policy(path, algo=args.algo, env=None, observation_space=probe.observation_space,
                                        action_space=probe.action_space))
            probe.close()
        else:
            policies.append(path)

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
