"""The ``darla`` command line: ``darla run`` for the whole pipeline, one subcommand per stage.

Every subcommand prints a short summary and where its artefacts are; ``darla <cmd> --help`` documents
its options.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# OpenMP's default spin-waiting makes torch 5-10× slower whenever another busy process shares the
# cores (collection workers, a second run, a sweep): measured here, a 64×64 conv batch went from
# 45 ms to 350 ms. Passive waiting costs little when the machine is idle. Must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from darla.config import ConfigError


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="collect → vision → policy → zero-shot evaluation → report",
                       description="Run all three stages. Finished stages are reused; a killed run resumes.")
    p.add_argument("--config", type=Path, help="YAML config (defaults: configs/default.yaml values)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set policy.steps=50000 (repeatable)")
    p.add_argument("--out", type=Path, default=Path("runs/default"), help="run directory (default: runs/default)")
    p.add_argument("--stage-root", type=Path, default=None,
                   help="where the stages live (default: OUT/stages); runs and sweeps that share one reuse every "
                   "stage with the same config, e.g. `darla sweep --out S` and `darla run --stage-root S/stages`")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _add_collect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="render stage-1 frames over a split's domains")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--frames", type=int, default=20_000)
    p.add_argument("--split", default="source", help="split name or comma-separated domain names / YAML files")
    p.add_argument("--env", default=None, metavar="ID",
                   help="gymnasium env id (default darla/SeekAvoid-v0); any env with image observations or render()")
    p.add_argument("--domains", default=None, metavar="FILE",
                   help="YAML file of the env's domains and splits (domains: [...], splits: {source: [...], ...})")
    p.add_argument("--env-kwargs", default=None, metavar="YAML",
                   help="keyword arguments of every domain's gymnasium.make, e.g. '{continuous: false}'")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--obs-size", type=int, default=64, help="side of the square frames (any env's are resized)")
    p.add_argument("--channels", type=int, default=3, choices=[1, 3], help="3 (RGB) or 1 (grey)")
    p.add_argument("--layout", default="choice", choices=["choice", "collect"], help="SeekAvoid layout")
    p.add_argument("--policy", default="random", choices=["random", "explore"],
                   help="behaviour policy: uniform random, or 'explore' (forward-biased, held actions)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished collection made with other arguments")


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a positive integer, got {text!r}") from None


def _add_train_vision(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-vision", help="train a vision model of the zoo on collected frames")
    p.add_argument("--model", default="beta_vae_dae")
    p.add_argument("--data", type=Path, required=True, help="a directory made by `darla collect`")
    p.add_argument("--domains", default=None, metavar="FILE", help="the domains file the data was collected with "
                   "(models that act in the env, icf, on a non-SeekAvoid env)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--beta", type=float, default=None, help="β of the model (where it has one)")
    p.add_argument("--latents", type=int, default=None)
    p.add_argument("--dae-steps", type=int, default=1500, help="DAE iterations for beta_vae_dae")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="auto",
                   help="fp32, bf16 autocast, or auto (bf16 where the model is checked for it and the device is fast)")
    p.add_argument("--workers", default="auto", type=_workers,
                   help="training processes on a CPU: auto (one per core for data_parallel_safe models) or N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="torch device: auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model config field, e.g. --set dae_layer=3")


def _add_traverse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("traverse", help="latent traversal PNG of a generative vision checkpoint")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, help="frames to traverse from (default: the data it was trained on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-latents", type=int, default=12, help="latent rows to draw, most informative first")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps")


def _add_train_policy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-policy", help="train an SB3 policy on frozen vision (or pixels) in source domains")
    p.add_argument("--vision", type=Path, help="vision checkpoint; omit with --mode pixels")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mode", default="latent", choices=["latent", "extractor", "pixels"])
    p.add_argument("--algo", default="ppo", help="any SB3 algorithm: ppo, a2c, dqn, sac, td3, ddpg (+ sb3-contrib's "
                   "qrdqn, tqc, trpo, ars, crossq when installed); it must fit the env's actions")
    p.add_argument("--algo-kwargs", default=None, metavar="YAML", help="algorithm kwargs, e.g. '{n_steps: 64}'")
    p.add_argument("--policy-kwargs", default=None, metavar="YAML",
                   help="SB3 policy_kwargs, e.g. '{net_arch: [64, 64], activation_fn: ReLU}'")
    p.add_argument("--frame-stack", type=int, default=1, help="stack the last N features (frames for pixels)")
    p.add_argument("--normalize", action="store_true", help="normalise latent features (SB3 VecNormalize)")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--n-envs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--domains", default="source", help="training domains: split names, domain names and YAML files "
                   "of domains of the env (a file alone: its 'source' split; with names: the file defines them), e.g. "
                   "source, my_domains.yaml or my_domains.yaml,plain")
    p.add_argument("--obs-size", type=int, default=None, help="side of the square frames (default: the vision's)")
    p.add_argument("--channels", type=int, default=None, choices=[1, 3], help="3 (RGB) or 1 (grey); default: the "
                   "vision's")
    p.add_argument("--layout", default="choice", choices=["choice", "collect"], help="SeekAvoid layout")
    p.add_argument("--env", default=None, metavar="ID", help="train on this registered gymnasium env of frames "
                   "(default: SeekAvoid); its domains: 'default' (the env as registered) and those of --domains files")
    p.add_argument("--env-kwargs", default=None, metavar="YAML", help="kwargs of the env, e.g. '{continuous: false}'")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="zero-shot evaluation of policies on source and target domains")
    p.add_argument("--policy", type=Path, nargs="+", required=True,
                   help="darla policy directories (one per training seed) or .zip files saved by SB3's model.save "
                   "(read without unpickling; give --algo)")
    p.add_argument("--algo", default=None, help="algorithm of SB3 .zip policies (e.g. ppo); DQN/SAC/TD3 zips name it")
    p.add_argument("--env", default=None, metavar="ID", help="evaluate on this registered gymnasium env (its domain "
                   "'default' is the source); default: the env the policy recorded (SeekAvoid for SB3 zips)")
    p.add_argument("--env-kwargs", default=None, metavar="YAML", help="kwargs of the env, YAML/JSON or a file")
    p.add_argument("--shift", action="append", default=[], metavar="NAME=VALUE",
                   help="a target domain per source domain with an image shift of envs.wrappers appended: hue=90, "
                   "tint=1,0.8,0.6, brightness=0.6, noise=20, or any wrapper with a YAML mapping, e.g. "
                   "'random_conv={seed: 3}' (repeatable)")
    p.add_argument("--domains", default=None, help="domains to evaluate besides the policy's training domains: "
                   "comma-separated split names, domain names and YAML files of domains, e.g. target,shifts.yaml "
                   "(default: the env's target split if it has one; source,target for SeekAvoid)")
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--seed", type=int, default=10_000)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the greedy action")
    p.add_argument("--obs-size", type=int, default=None, help="default: the policy's own")
    p.add_argument("--layout", default=None, choices=["choice", "collect"], help="default: the policy's own")


def _add_metrics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="disentanglement metrics of a vision checkpoint on a factor dataset")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--dataset", default="seekavoid-factors", help="dsprites or seekavoid-factors")
    p.add_argument("--metrics", default=None, help="comma-separated subset (default: all but udr)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON file (default: <checkpoint>/metrics-<dataset>.json)")
    p.add_argument("--fast", action="store_true", help="fewer samples (for smoke tests)")
    p.add_argument("--grid-cache", type=Path, default=None,
                   help="an .npy to keep the rendered image grid of a small dataset (seekavoid-factors) in, "
                   "so later calls skip rendering")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="grid of vision models × seeds (× algorithms) through the pipeline (Ray Tune)",
                       description="Shared stage-1 data and vision checkpoints; resumable (rerun the same command). "
                       'Runs on Ray Tune if installed (pip install "darla[sweep]"), else sequentially.')
    p.add_argument("--models", default="pixels,ae,dae,vae,beta_vae,beta_vae_dae",
                   help="comma-separated vision models; 'pixels' = end-to-end CnnPolicy")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated training seeds")
    p.add_argument("--algos", default=None, help="comma-separated SB3 algorithms (default: the config's)")
    p.add_argument("--config", type=Path, help="base YAML config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, default=Path("runs/sweep"))
    p.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    p.add_argument("--no-ray", action="store_true", help="run trials sequentially without Ray")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--vision-only", action="store_true",
                   help="train stage-1 data and the vision models only, no policies (a later sweep reuses them)")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="re-write report.md of a finished run directory")
    p.add_argument("run_dir", type=Path)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="probability of improvement and performance profiles of several vision models",
                       description="Compare evaluations (or runs) labelled by their vision model: P(X > Y) with "
                       "stratified bootstrap CIs and performance profiles (Agarwal et al. 2021) of target return, "
                       "source return and target/source ratio. Inputs with the same label pool their runs.")
    p.add_argument("inputs", type=Path, nargs="+", metavar="RUN_OR_EVAL_DIR",
                   help="`darla evaluate --out` or `darla run --out` directories")
    p.add_argument("--out", type=Path, required=True, help="directory for compare.md, compare.json, profiles.png")
    p.add_argument("--label", dest="labels", action="append", default=None, metavar="NAME",
                   help="label of each input, in order (default: its vision model); repeat once per input")
    p.add_argument("--n-boot", type=int, default=2_000, help="bootstrap resamples (default: 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--backend", default="auto", choices=["auto", "rliable", "numpy"],
                   help="statistics: rliable if it imports (auto; its bootstrap takes tens of seconds per pair), "
                   "or agents.stats (numpy; the same estimators, milliseconds per pair)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="darla",
        description="Zero-shot transfer in RL: learn to see (disentangled vision), learn to act (SB3 on "
        "frozen features), transfer (evaluate in unseen domains).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error instead of its one-line message")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_run, _add_collect, _add_train_vision, _add_traverse, _add_train_policy, _add_evaluate,
                _add_metrics, _add_sweep, _add_report, _add_compare):
        add(sub)
    return parser


#: errors that mean the input (a flag, a config field, a file) is wrong: exit code 2, like argparse's
USER_ERRORS = (ConfigError, ValueError, OSError, RuntimeError)


def _one_line(text: str) -> str:
    """A message on one line (YAML, numpy and torch errors span several)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    """Run ``darla``; every error ends as one line on stderr (``--debug``: the traceback instead).

    :return: 0 on success, 2 for a user error (a bad flag, config field or file; argparse also exits 2),
        1 for an unexpected internal error, 130 when interrupted
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    from darla import commands

    handler = getattr(commands, "cmd_" + args.command.replace("-", "_"))
    hint = " (run with --debug for the traceback)"
    try:
        return handler(args) or 0
    except KeyboardInterrupt:
        print(f"darla {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        # a ConfigError already says the fix; other messages may come from deep down: offer the traceback
        print(f"darla {args.command}: error: {_one_line(e)}" + ("" if isinstance(e, ConfigError) else hint),
              file=sys.stderr)
        return 2
    except Exception as e:  # the last resort: an internal error, still one line unless --debug
        if args.debug:
            raise
        print(f"darla {args.command}: error: internal error {type(e).__name__}: {_one_line(e)}{hint}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
