"""Handlers of the ``darla`` subcommands; each is a thin layer over the library functions the pipeline
uses too, so ``darla run`` and the stand-alone stages share one code path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from darla.config import dump_config, load_config, parse_yaml, resolve_device


def cmd_run(args: argparse.Namespace) -> int:
    from darla.pipeline import check_policy_config, run_pipeline

    config = load_config(args.config, args.overrides)
    if args.print_config:
        # the policy.algo vs action-space check that run_pipeline makes first (it makes one env for dqn, sac, ...)
        check_policy_config(config)
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

    from darla.config import DEFAULT_ENV_ID, RunConfig
    from darla.pipeline import build_vision_model

    device = resolve_device(args.device, "--device")  # a missing GPU fails before the frames are read
    data = FrameDataset(args.data)
    # The models that learn from more than frames (dc_ign, icf, scan) are wired exactly as in `darla run`,
    # on the env the frames came from (meta.json names it unless it is SeekAvoid).
    base = RunConfig()
    request = data.meta.get("request") or {}
    env_id = data.meta.get("env_id") or DEFAULT_ENV_ID
    shape = data.meta.get("frame_shape") or [data.frames.shape[1], data.frames.shape[2], 3]
    config = dataclasses.replace(
        base, seed=args.seed, device=device,
        env=dataclasses.replace(base.env, id=env_id, kwargs=dict(request.get("env_kwargs") or {}),
                                domains=str(args.domains or ""),
                                obs_size=int(data.frames.shape[1]), channels=int(shape[-1]),
                                layout=data.meta.get("layout", "choice")),
        collect=dataclasses.replace(base.collect, split=data.meta.get("split") or base.collect.split),
        vision=dataclasses.replace(base.vision, model=args.model, steps=args.steps, batch_size=args.batch_size,
                                   lr=args.lr, dae_steps=args.dae_steps, model_config=model_config),
    )
    if args.model == "icf" and env_id != DEFAULT_ENV_ID:
        from darla.pipeline import domain_catalog

        try:
            names = [d.name for d in domain_catalog(config).resolve(config.collect.split)]
        except ValueError:
            names = None
        if names != list(data.meta.get("domains") or []):
            raise ValueError(f"--model icf acts in the env of its frames, {env_id!r}, but the domains of '{args.data}' "
                             f"(split {config.collect.split!r}: {', '.join(data.meta.get('domains') or [])}) do not "
                             f"resolve to the same domains here{' without their domains file' if not args.domains else ''}"
                             "; pass the domains file it was collected with, --domains FILE")
    model = build_vision_model(config, data, Path(args.out), progress=not args.quiet)
    out = train_vision(model, data, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, device=device, config=model_config if isinstance(model, str) else None,
                       dae_steps=args.dae_steps, progress=not args.quiet, precision=args.precision,
                       workers=args.workers)
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


def _vision_frame(vision: Path | None) -> tuple[int | None, int | None]:
    """``(image_size, channels)`` of a vision checkpoint's config (``(None, None)`` without one): the frame
    size a policy on its features must see."""
    if vision is None:
        return None, None
    from vision.checkpoint import read_meta

    config = read_meta(vision).get("config") or {}
    size, channels = config.get("image_size"), config.get("channels")
    return (int(size) if size else None), (int(channels) if channels else None)


def _domain_catalog(env_id: str, kwargs: dict, domains: str | None, obs_size: int, channels: int, layout: str):
    """The :class:`envs.spec.DomainCatalog` of ``env_id`` for ``train-policy``/``evaluate``: the env's own
    domains and splits plus those of the first YAML file named in ``domains`` (so its split names resolve)."""
    from envs.spec import DomainCatalog

    files = [t.strip() for t in (domains or "").split(",") if t.strip().endswith((".yaml", ".yml"))]
    for f in files:
        if not Path(f).is_file():
            raise ValueError(f"--domains file {f!r} does not exist; pass an existing YAML file of domains "
                             "(see envs/spec.py), split names or domain names")
    return DomainCatalog(env_id, kwargs=kwargs, domains_file=files[0] if files else None, obs_size=obs_size,
                         channels=channels, layout=layout)


def _training_spec(spec: str) -> str:
    """``train-policy --domains`` as a catalog spec: a YAML file of domains (and splits) names the domains (its
    domains hold held-out targets too): alone, it means its ``source`` split; with names, those names."""
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    names = [t for t in tokens if not t.endswith((".yaml", ".yml"))]
    return ",".join(names) if names else "source"


def cmd_train_policy(args: argparse.Namespace) -> int:
    import envs  # noqa: F401
    from agents.train import check_algo, train_policy
    from darla.config import DEFAULT_ENV_ID
    from envs.spec import DOMAINS_ENV_ID

    if args.mode != "pixels" and args.vision is None:
        raise ValueError("--vision CHECKPOINT is required unless --mode pixels")
    algo_kwargs = _mapping_arg(args.algo_kwargs, "--algo-kwargs")
    policy_kwargs = _mapping_arg(args.policy_kwargs, "--policy-kwargs")
    check_algo(args.algo, algo_kwargs, policy_kwargs, policy="CnnPolicy" if args.mode == "pixels" else "MlpPolicy")
    size, channels = _vision_frame(args.vision)
    obs_size = args.obs_size or size or 64
    channels = args.channels or channels or 3
    catalog = _domain_catalog(args.env or DEFAULT_ENV_ID, _mapping_arg(args.env_kwargs, "--env-kwargs"),
                              args.domains, obs_size, channels, args.layout)
    # a domains file alone: train in its source split (its other splits are the held-out targets)
    specs = catalog.resolve(_training_spec(args.domains))
    held_out = catalog.held_out(specs)
    if held_out:
        raise ValueError(f"--domains {args.domains!r} holds held-out target domain(s) {', '.join(held_out)}; policies "
                         "must train in source domains to be evaluated zero-shot (e.g. --domains source)")
    # the same env `darla run` trains in: every domain's spec by value in policy.json, so `darla evaluate` remakes it
    env_kw = {"domain": [s.to_dict() for s in specs], "obs_size": obs_size, "channels": channels}
    out = train_policy(env_id=DOMAINS_ENV_ID, env_kwargs=env_kw, vision=str(args.vision) if args.vision else None,
                       algo=args.algo, mode=args.mode, steps=args.steps, n_envs=args.n_envs, seed=args.seed,
                       out_dir=args.out, device=resolve_device(args.device, "--device"), progress=not args.quiet, algo_kwargs=algo_kwargs,
                       policy_kwargs=policy_kwargs, frame_stack=args.frame_stack, normalize=args.normalize)
    print(f"policy: {out}")
    return 0


#: short names of ``--shift NAME=VALUE`` for wrappers of :data:`envs.wrappers.WRAPPERS` (any registry name works too)
SHIFT_ALIASES = {"hue": "hue_shift", "tint": "color_tint", "noise": "texture_noise", "jitter": "color_jitter",
                 "conv": "random_conv"}
_SHIFT_HELP = ("e.g. --shift hue=90, --shift tint=1.0,0.8,0.6, --shift brightness=0.6, --shift noise=20, "
               "--shift 'color_jitter={brightness: 0.4, seed: 1}'")


def parse_shift(text: str) -> tuple[str, dict]:
    """A ``--shift`` value as ``(label, wrapper mapping)`` of the wrapper registry (:mod:`envs.wrappers`).

    ``NAME=VALUE``: ``NAME`` a registry name (``hue_shift``, ``random_conv``, ...) or a short alias
    (:data:`SHIFT_ALIASES`); ``VALUE`` the wrapper's first parameter (``hue=90`` → ``{name: hue_shift,
    degrees: 90}``; comma-separated numbers make a list: ``tint=1.0,0.8,0.6``) or a YAML mapping of its
    parameters (``random_conv={seed: 3, per_episode: false}``). The label names the target domain.

    :param text: the flag's value
    """
    from envs.wrappers import WRAPPERS, check_wrapper_spec, wrapper_params

    name, sep, raw = (s.strip() for s in text.partition("="))
    name = SHIFT_ALIASES.get(name, name)
    if not sep or name not in WRAPPERS:
        raise ValueError(f"--shift {text!r} must be NAME=VALUE with NAME a wrapper ({', '.join(WRAPPERS)}) or an alias "
                         f"({', '.join(f'{k}={v}' for k, v in SHIFT_ALIASES.items())}); {_SHIFT_HELP}")
    import yaml

    try:
        value = parse_yaml(raw) if raw else None
    except yaml.YAMLError:  # one line, not a traceback
        raise ValueError(f"--shift {text!r}: {raw!r} is not a value or a YAML mapping; {_SHIFT_HELP}") from None
    if isinstance(value, str) and "," in value:
        try:
            value = [float(v) for v in value.split(",")]
        except ValueError:
            raise ValueError(f"--shift {text!r}: {raw!r} is not a list of numbers; {_SHIFT_HELP}") from None
    if isinstance(value, dict):
        params = value
    else:
        first = next(iter(wrapper_params(name)), None)
        if first is None or value is None:
            raise ValueError(f"--shift {text!r} needs a value; {_SHIFT_HELP}")
        params = {first: value}
    try:
        wrapper = check_wrapper_spec({"name": name, **params})
    except ValueError as e:
        raise ValueError(f"--shift {text!r}: {e}") from None
    label = "".join(text.split()).replace(",", "/")  # domain names carry no commas (they separate names)
    return label, wrapper


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


def _recorded_specs(record: dict, path: Path) -> list:
    """The training domains a ``darla/Domains-v0`` policy records by value (``env_kwargs["domain"]``)."""
    from envs.spec import DomainSpec

    items = (record.get("env_kwargs") or {}).get("domain")
    try:
        if not isinstance(items, list) or not items:
            raise ValueError("env_kwargs.domain must be a non-empty list of domain mappings")
        return [DomainSpec.from_dict(d) for d in items]
    except ValueError as e:
        raise ValueError(f"'{path / 'policy.json'}' records env darla/Domains-v0 but not its domains ({e}); "
                         "retrain the policy") from None


def _unique(specs: list) -> list:
    """``specs`` without repeats; two different domains of one name raise (say which)."""
    out: dict[str, Any] = {}
    for s in specs:
        if s.name in out and out[s.name].value_key() != s.value_key():
            raise ValueError(f"two different domains are both named {s.name!r} (one is a training domain of the "
                             "policy); rename the one in --domains")
        out.setdefault(s.name, s)
    return list(out.values())


def evaluation_setup(args: argparse.Namespace, records: list[dict], paths: list[Path]) -> dict[str, Any]:
    """What ``darla evaluate`` evaluates, from its flags and the policies' ``policy.json``:

    * a ``catalog`` (:class:`envs.spec.DomainCatalog`) of the env: ``--env``, else the env the policy recorded
      (``darla/Domains-v0``: its domains' env id; frames resized to the recorded ``obs_size``/``channels``),
      else SeekAvoid (foreign zips without ``--env``);
    * ``domains``: the policy's recorded training domains (source), then ``--domains`` (split names, domain
      names, YAML files; default: the env's ``target`` split if it has one, and for policies that record no
      domains, its ``source`` split), then one target per ``--shift`` and source domain (its wrapper appended);
    * ``source``: the source domain names; ``native``: evaluate on the env's own frames (a policy trained on
      a raw env id, or a foreign zip on a generic ``--env``), not resized ones.
    """
    import dataclasses

    from darla.config import DEFAULT_ENV_ID
    from envs.spec import DOMAINS_ENV_ID

    shifts = [parse_shift(t) for t in args.shift]  # bad flags fail before any env is made
    env_kw = _mapping_arg(args.env_kwargs, "--env-kwargs")
    trained: dict = {}
    recorded: list = []
    for p, r in zip([p for p in paths if not (p.suffix == ".zip" and p.is_file())], records):
        kw = r.get("env_kwargs") if isinstance(r.get("env_kwargs"), dict) else {}
        trained = trained or kw
        if r.get("env_id") == DOMAINS_ENV_ID:
            recorded += _recorded_specs(r, p)
    recorded = _unique(recorded)
    record_id = records[0].get("env_id") if records else None
    if args.env:
        env_id = args.env
    elif recorded:
        env_id = recorded[0].env_id
    else:
        env_id = record_id or DEFAULT_ENV_ID
    # a policy trained on a raw generic env (or a foreign zip) sees that env's frames as they are
    native = env_id != DEFAULT_ENV_ID and not recorded
    base = {k: v for k, v in trained.items() if k not in ("domain", "obs_size", "layout", "channels")} \
        if record_id not in (DOMAINS_ENV_ID, DEFAULT_ENV_ID) else {}
    if recorded:  # what the training domains share (e.g. env.kwargs) is the base of --domains targets too
        common = [{k: v for k, v in s.kwargs.items() if k != "domain"} for s in recorded]
        base = {k: v for k, v in common[0].items() if all(c.get(k, object()) == v for c in common[1:])}
    base.update(env_kw)
    obs_size = args.obs_size or trained.get("obs_size") or 64
    layout = args.layout or trained.get("layout") or "choice"
    catalog = _domain_catalog(env_id, base, args.domains, obs_size, int(trained.get("channels") or 3), layout)

    domains = list(recorded)
    if args.domains:
        domains += catalog.resolve(args.domains)
    elif not recorded:
        domains += catalog.resolve("source,target" if "target" in catalog.splits else "source")
    elif "target" in catalog.splits:
        domains += catalog.split("target")
    domains = _unique(domains)
    names = [d.name for d in domains]

    if recorded:
        source = [d.name for d in recorded]
    elif records and not native:  # darla policies of raw env ids: the domains they saw
        source = sorted({n for r in records for n in (r.get("train_domains") or [])}
                        | {n for r in records if isinstance((r.get("env_kwargs") or {}).get("domain"), str)
                           for n in (d.name for d in catalog.resolve(r["env_kwargs"]["domain"]))})
    else:
        source = [d.name for d in catalog.split("source")]
    source = [n for n in names if n in set(source)]
    if shifts and not source:
        raise ValueError(f"--shift needs a source domain to shift, and none of {', '.join(names)} is one; add the "
                         "policy's training domains to --domains")
    by_name = {d.name: d for d in domains}
    for label, wrapper in shifts:
        for n in source:
            d = by_name[n]
            domains.append(dataclasses.replace(d, name=f"{n}+{label}", wrappers=(*d.wrappers, wrapper)))
    domains = _unique(domains)
    return {"catalog": catalog, "domains": domains, "source": source, "native": native,
            "env_kw": {"obs_size": obs_size, "layout": layout, **env_kw}}


def cmd_evaluate(args: argparse.Namespace) -> int:
    import envs  # noqa: F401  (the envs, providers and shift wrappers; headless rendering)
    from darla.pipeline import evaluate_policies

    paths = [Path(p) for p in args.policy]
    zips = [p for p in paths if p.suffix == ".zip" and p.is_file()]
    records = [_policy_record(p) for p in paths if p not in zips]
    setup = evaluation_setup(args, records, paths)
    catalog, domains, native = setup["catalog"], setup["domains"], setup["native"]

    def factory(domain):
        return domain.make_env() if native else catalog.make([domain])

    for d in domains:  # a bad shift value or unmakeable domain fails now, in one line, before any episode
        factory(d).close()

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

    source = setup["source"] or None
    if native:
        from agents.evaluate import write_evaluation, zero_shot_evaluate

        result = zero_shot_evaluate(policies, domains, env_factory=factory, episodes=args.episodes, seed=args.seed,
                                    deterministic=not args.stochastic, source=source, progress=not args.quiet)
        write_evaluation(result, args.out)
    else:
        result = evaluate_policies(policies, domains, args.episodes, seed=args.seed,
                                   deterministic=not args.stochastic, env_kw=setup["env_kw"], out_dir=args.out,
                                   progress=not args.quiet, catalog=catalog,
                                   source=[d for d in domains if d.name in source] if source else None)
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
