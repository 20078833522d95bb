"""Handlers of the ``darla`` subcommands; each is a thin layer over the library functions the pipeline
uses too, so ``darla run`` and the stand-alone stages share one code path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from darla.config import dump_config, load_config, parse_yaml, resolve_device


def cmd_run(args: argparse.Namespace) -> int:
    from darla.pipeline import run_pipeline

    config = load_config(args.config, args.overrides)
    if args.print_config:
        print(dump_config(config), end="")
        return 0
    report = run_pipeline(config, args.out, progress=not args.quiet, stage_root=args.stage_root)
    from darla.report import format_estimate

    summary = json.loads((report.parent / "summary.json").read_text())
    print(f"\nreport: {report}")
    for key in ("source", "target", "ratio"):
        if key in summary:
            print(f"  {key:>6}: {format_estimate(summary[key])}")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    import envs  # noqa: F401
    from envs.collect import collect_frames

    out = collect_frames(args.out, frames=args.frames, split=args.split, workers=args.workers, seed=args.seed,
                         obs_size=args.obs_size, layout=args.layout, policy=args.policy, progress=not args.quiet,
                         overwrite=args.overwrite)
    print(f"collected {args.frames} frames of split '{args.split}' into {out}")
    return 0


def cmd_train_vision(args: argparse.Namespace) -> int:
    from envs.frames import FrameDataset
    from vision.train import train_vision

    model_config = {}
    for item in args.overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set '{item}' must look like key=value, e.g. --set dae_layer=3")
        model_config[key] = parse_yaml(raw)
    if args.beta is not None:
        model_config["beta"] = args.beta
    if args.latents is not None:
        model_config["latents"] = args.latents
    import dataclasses

    from darla.config import RunConfig
    from darla.pipeline import build_vision_model

    device = resolve_device(args.device, "--device")  # a missing GPU fails before the frames are read
    data = FrameDataset(args.data)
    # The models that learn from more than frames (dc_ign, icf, scan) are wired exactly as in `darla run`.
    base = RunConfig()
    config = dataclasses.replace(
        base, seed=args.seed, device=device,
        env=dataclasses.replace(base.env, obs_size=int(data.frames.shape[1]), layout=data.meta.get("layout", "choice")),
        collect=dataclasses.replace(base.collect, split=data.meta.get("split") or base.collect.split),
        vision=dataclasses.replace(base.vision, model=args.model, steps=args.steps, batch_size=args.batch_size,
                                   lr=args.lr, dae_steps=args.dae_steps, model_config=model_config),
    )
    model = build_vision_model(config, data, Path(args.out), progress=not args.quiet)
    out = train_vision(model, data, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, device=device, config=model_config if isinstance(model, str) else None,
                       dae_steps=args.dae_steps, progress=not args.quiet)
    print(f"vision checkpoint: {out}")
    probe = Path(args.out) / "probe.md"
    if probe.exists():
        print(probe.read_text())
    return 0


def cmd_traverse(args: argparse.Namespace) -> int:
    import vision
    from envs.frames import FrameDataset
    from vision.checkpoint import read_meta

    data_dir = args.data
    if data_dir is None:
        data_dir = read_meta(args.checkpoint).get("extra", {}).get("data")
        if not data_dir:
            raise ValueError(f"checkpoint '{args.checkpoint}' does not record its training data; pass --data DIR")
    model = vision.load(args.checkpoint, device=resolve_device(args.device, "--device"))
    from darla.report import traversal_with_latent_table

    table = traversal_with_latent_table(model, FrameDataset(data_dir), args.out, seed=args.seed,
                                        max_latents=args.max_latents)
    print(table)
    print(f"traversal: {args.out} (latent table: {Path(args.out).with_suffix('.md')})")
    return 0


def cmd_train_policy(args: argparse.Namespace) -> int:
    import envs  # noqa: F401
    from agents.train import train_policy
    from darla.pipeline import ENV_ID

    if args.mode != "pixels" and args.vision is None:
        raise ValueError("--vision CHECKPOINT is required unless --mode pixels")
    out = train_policy(env_id=ENV_ID, env_kwargs={"domain": args.domains, "obs_size": args.obs_size,
                                                  "layout": args.layout},
                       vision=str(args.vision) if args.vision else None, algo=args.algo, mode=args.mode,
                       steps=args.steps, n_envs=args.n_envs, seed=args.seed, out_dir=args.out,
                       device=resolve_device(args.device, "--device"),
                       progress=not args.quiet)
    print(f"policy: {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from darla.pipeline import evaluate_policies

    meta_path = Path(args.policy[0]) / "policy.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"'{args.policy[0]}' is not a policy directory (no policy.json); pass a directory "
                                "made by `darla train-policy` or a run's stages/policy-s<seed>-<key>")
    trained_env = json.loads(meta_path.read_text()).get("env_kwargs") or {}
    env_kw = {"obs_size": args.obs_size if args.obs_size is not None else trained_env.get("obs_size", 64),
              "layout": args.layout if args.layout is not None else trained_env.get("layout", "choice")}
    result = evaluate_policies(args.policy, args.domains, args.episodes, seed=args.seed,
                               deterministic=not args.stochastic, env_kw=env_kw, out_dir=args.out,
                               progress=not args.quiet)
    md = Path(args.out) / "evaluation.md"
    print(md.read_text() if md.exists() else json.dumps(result.get("summary", {}), indent=2))
    print(f"evaluation: {args.out}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from darla.metrics import checkpoint_metrics

    out, table = checkpoint_metrics(args.checkpoint, args.dataset, metrics=args.metrics, seed=args.seed,
                                    out=args.out, fast=args.fast, grid_cache=args.grid_cache,
                                    progress=not args.quiet, device=resolve_device(args.device, "--device"))
    print(table)
    print(f"metrics: {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from darla.report import rewrite_report

    print(f"report: {rewrite_report(args.run_dir)}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from darla.sweep import run_sweep

    base = load_config(args.config, args.overrides)
    split = lambda text: [x.strip() for x in text.split(",") if x.strip()]  # noqa: E731
    summary = run_sweep(base, args.out, models=split(args.models), seeds=[int(s) for s in split(args.seeds)],
                        algos=split(args.algos) if args.algos else None, address=args.address,
                        use_ray=False if args.no_ray else None, cpus_per_trial=args.cpus_per_trial,
                        progress=not args.quiet, vision_only=args.vision_only)
    if args.vision_only:
        print(summary.read_text())
        print(f"vision stages: {summary} (rerun without --vision-only to train the policies on them)")
        return 0
    print((summary.parent / "summary.md").read_text())
    print(f"sweep summary: {summary}")
    return 0
