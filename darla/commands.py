"""Handlers of the ``darla`` subcommands; each is a thin layer over the library functions the pipeline
uses too, so ``darla run`` and the stand-alone stages share one code path."""

from __future__ import annotations

import argparse
import dataclasses
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

    env_kwargs = parse_yaml(args.env_kwargs) if args.env_kwargs else None
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise ValueError(f"--env-kwargs must be a YAML mapping, e.g. '{{continuous: false}}', got {args.env_kwargs!r}")
    out = collect_frames(args.out, frames=args.frames, split=args.split, workers=args.workers, seed=args.seed,
                         obs_size=args.obs_size, layout=args.layout, policy=args.policy, progress=not args.quiet,
                         overwrite=args.overwrite, env_id=args.env, domains_file=args.domains,
                         channels=args.channels, env_kwargs=env_kwargs)
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
        model_config[key] = parse_yaml(raw, what=f"--set '{item}'")
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


def _mapping_arg(text: str | None, flag: str) -> dict:
    """A ``--*-kwargs`` value: a YAML/JSON mapping, or a path to a YAML/JSON file holding one."""
    if not text:
        return {}
    path = Path(text)
    raw = path.read_text() if path.suffix in (".yaml", ".yml", ".json") and path.exists() else text
    try:
        value = parse_yaml(raw)
    except Exception as e:  # yaml.YAMLError and friends: one line, not a traceback
        raise ValueError(f"{flag} {text!r} is not valid YAML/JSON ({type(e).__name__}); pass e.g. "
                         f"{flag} '{{net_arch: [64, 64]}}'") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a mapping, got {value!r}; pass e.g. {flag} '{{key: value}}'")
    return value


def cmd_train_policy(args: argparse.Namespace) -> int:
    import envs  # noqa: F401
    from agents.train import check_algo, train_policy
    from darla.config import DEFAULT_ENV_ID as ENV_ID

    if args.mode != "pixels" and args.vision is None:
        raise ValueError("--vision CHECKPOINT is required unless --mode pixels")
    algo_kwargs = _mapping_arg(args.algo_kwargs, "--algo-kwargs")
    policy_kwargs = _mapping_arg(args.policy_kwargs, "--policy-kwargs")
    check_algo(args.algo, algo_kwargs, policy_kwargs, policy="CnnPolicy" if args.mode == "pixels" else "MlpPolicy")
    if args.env:  # any registered gymnasium env of frames, as it is (no SeekAvoid domains)
        env_id, env_kw = args.env, _mapping_arg(args.env_kwargs, "--env-kwargs")
    else:
        env_id = ENV_ID
        env_kw = {"domain": args.domains, "obs_size": args.obs_size, "layout": args.layout,
                  **_mapping_arg(args.env_kwargs, "--env-kwargs")}
    out = train_policy(env_id=env_id, env_kwargs=env_kw, vision=str(args.vision) if args.vision else None,
                       algo=args.algo, mode=args.mode, steps=args.steps, n_envs=args.n_envs, seed=args.seed,
                       out_dir=args.out, device=resolve_device(args.device, "--device"), progress=not args.quiet, algo_kwargs=algo_kwargs,
                       policy_kwargs=policy_kwargs, frame_stack=args.frame_stack, normalize=args.normalize)
    print(f"policy: {out}")
    return 0


#: ``--shift NAME=VALUE`` of ``darla evaluate --env``: the generic image shifts of :mod:`envs.wrappers`
SHIFTS = {"hue": "HueShift", "tint": "ColorTint", "brightness": "Brightness", "noise": "TextureNoise"}


@dataclasses.dataclass(frozen=True)
class EnvDomain:
    """A domain of any gymnasium env: a name, an env id and its kwargs, and an ordered chain of observation
    shifts (``(wrapper name, argument)``, :data:`SHIFTS`). The seam to the generic domain objects of
    :mod:`envs`: :func:`agents.evaluate.zero_shot_evaluate` needs only ``.name`` and
    ``env_factory(domain) -> gym.Env`` (here :meth:`make`)."""

    name: str
    env_id: str
    kwargs: dict = dataclasses.field(default_factory=dict)
    shifts: tuple = ()

    def make(self):
        import gymnasium

        import envs.wrappers as wrappers

        env = gymnasium.make(self.env_id, **self.kwargs)
        for shift, value in self.shifts:
            env = getattr(wrappers, SHIFTS[shift])(env, value)
        return env


def _parse_shift(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep or name not in SHIFTS:
        raise ValueError(f"--shift {text!r} must be NAME=VALUE with NAME one of {', '.join(SHIFTS)}; e.g. --shift "
                         "hue=90, --shift tint=1.0,0.8,0.6, --shift brightness=0.6, --shift noise=20")
    try:
        value = [float(v) for v in raw.split(",")] if name == "tint" else (int(raw) if name == "noise" else float(raw))
    except ValueError:
        raise ValueError(f"--shift {text!r}: {raw!r} is not a number (tint takes three: 1.0,0.8,0.6)") from None
    return name, value


def env_domains(env_id: str, kwargs: dict, shifts: list[str]) -> list[EnvDomain]:
    """The domains ``darla evaluate --env ID [--shift ...]`` evaluates: the env as it is (named after the id,
    the source) and one target domain per shift."""
    import gymnasium

    if env_id not in gymnasium.registry:
        raise ValueError(f"--env {env_id!r} is not a registered gymnasium env id; register it (import its package) "
                         "or pass a registered id, e.g. --env CarRacing-v3")
    domains = [EnvDomain(env_id, env_id, dict(kwargs))]
    for text in shifts:
        name, value = _parse_shift(text)
        domains.append(EnvDomain(f"{env_id}+{text}", env_id, dict(kwargs), ((name, value),)))
    return domains


def _policy_record(path: Path) -> dict:
    """``policy.json`` of a policy directory as plain JSON (fully checked when the policy loads)."""
    meta_path = path / "policy.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"'{path}' is not a policy directory (no policy.json) nor an SB3 .zip; pass a "
                                "directory made by `darla train-policy`, a run's stages/policy-s<seed>-<key>, or "
                                "a .zip saved by SB3 with --algo and --env")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"'{meta_path}' is not readable JSON ({type(e).__name__}); retrain the policy") from None
    if not isinstance(meta, dict):
        raise ValueError(f"'{meta_path}' must hold a JSON object; retrain the policy")
    return meta


def cmd_evaluate(args: argparse.Namespace) -> int:
    import envs  # noqa: F401  (SeekAvoid and the shift wrappers; headless rendering)
    from darla.pipeline import ENV_ID, evaluate_policies

    paths = [Path(p) for p in args.policy]
    zips = [p for p in paths if p.suffix == ".zip" and p.is_file()]
    records = [_policy_record(p) for p in paths if p not in zips]
    trained_env = (records[0].get("env_kwargs") if records else None) or {}
    env_id, env_kw = args.env, _mapping_arg(args.env_kwargs, "--env-kwargs")
    if env_id is None and records and records[0].get("env_id") not in (None, ENV_ID):
        env_id = records[0]["env_id"]  # honour the env the policy was trained on
        env_kw = {**(trained_env if isinstance(trained_env, dict) else {}), **env_kw}
        import gymnasium

        if env_id not in gymnasium.registry:
            raise ValueError(f"policy '{paths[0]}' was trained on env {env_id!r}, which is not a registered gymnasium "
                             "id here; pass --env ID (and --env-kwargs) to evaluate it")
    if args.shift and env_id is None:
        raise ValueError("--shift applies to --env ID (or a policy trained on a non-SeekAvoid env); for SeekAvoid "
                         "name shifted domains in --domains (e.g. a YAML file of domains)")

    if env_id is not None:  # any gymnasium env: one domain named after the id, plus one per --shift
        domains = env_domains(env_id, env_kw, args.shift)

        def factory(domain):
            return domain.make()
    else:  # SeekAvoid domains, settings from the policy unless given
        from darla.pipeline import resolve_domain_spec

        env_kw = {"obs_size": args.obs_size if args.obs_size is not None else trained_env.get("obs_size", 64),
                  "layout": args.layout if args.layout is not None else trained_env.get("layout", "choice"),
                  **env_kw}
        domains = resolve_domain_spec("source")[:1]  # the spaces of foreign zips come from this one

        def factory(domain):
            import gymnasium

            return gymnasium.make(ENV_ID, domain=domain, **env_kw)

    policies: list = []
    for p in paths:
        if p in zips:  # read without unpickling, for the spaces of the env it is evaluated on
            from agents.train import load_policy

            probe = factory(domains[0])
            try:
                policies.append(load_policy(p, algo=args.algo, observation_space=probe.observation_space,
                                            action_space=probe.action_space))
            finally:
                probe.close()
        else:
            policies.append(p)

    if env_id is None:
        source = None  # our policies: the domains they trained in (policy.json)
        if not records:  # only foreign zips: the evaluated domains of the source split count as source
            src = {d.name for d in resolve_domain_spec("source")}
            source = ",".join(d.name for d in resolve_domain_spec(args.domains) if d.name in src) or None
        result = evaluate_policies(policies, args.domains, args.episodes, seed=args.seed,
                                   deterministic=not args.stochastic, env_kw=env_kw, out_dir=args.out,
                                   progress=not args.quiet, source=source)
    else:
        from agents.evaluate import write_evaluation, zero_shot_evaluate

        result = zero_shot_evaluate(policies, domains, env_factory=factory, episodes=args.episodes, seed=args.seed,
                                    deterministic=not args.stochastic, source=[domains[0].name],
                                    progress=not args.quiet)
        write_evaluation(result, args.out)
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

    base = load_config(args.config, args.overrides, check_vision=False)  # each trial's model is checked in run_sweep
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


def cmd_compare(args: argparse.Namespace) -> int:
    import shlex

    from darla.compare import compare

    command = ["darla", "compare", *map(str, args.inputs), "--out", str(args.out)]
    for label in args.labels or []:
        command += ["--label", label]
    command += ["--n-boot", str(args.n_boot), "--seed", str(args.seed), "--backend", args.backend]
    md = compare(args.inputs, args.out, labels=args.labels, n_boot=args.n_boot, seed=args.seed,
                 backend=args.backend, command=shlex.join(command), progress=not args.quiet)
    print(md.read_text())
    print(f"comparison: {md} (profiles: {md.parent / 'profiles.png'})")
    return 0
