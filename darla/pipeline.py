"""The three-stage pipeline behind ``darla run``: collect → train vision → train policies → zero-shot
evaluation → report.

Each stage writes into ``<run_dir>/<stage>-<key>/`` where ``key`` digests the stage's config and the
keys of the stages it depends on; a ``DONE.json`` written last (atomically) marks it finished. A rerun
reuses every finished stage whose key is unchanged, and a stage killed half-way resumes (collection
and vision training keep chunk files / checkpoints) or restarts in place; nothing finished is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from darla.config import ConfigError, RunConfig, stage_key
from vision.checkpoint import atomic_write_bytes

log = logging.getLogger(__name__)

DONE = "DONE.json"


class Stage:
    """One keyed, resumable stage directory."""

    def __init__(self, run_dir: Path, name: str, key: str):
        self.name, self.key = name, key
        self.dir = Path(run_dir) / f"{name}-{key}"

    @property
    def done(self) -> bool:
        return (self.dir / DONE).exists()

    def run(self, fn: Callable[[Path], dict[str, Any] | None], config: dict[str, Any]) -> dict[str, Any]:
        """Run ``fn(dir)`` unless already done; returns the stage record (``DONE.json``).

        An exclusive file lock serialises concurrent runs of the same stage (sweep trials sharing
        stage-1 data or a vision checkpoint): the second waits, then reuses the first one's result.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._run_locked(fn, config)

    def _run_locked(self, fn: Callable[[Path], dict[str, Any] | None], config: dict[str, Any]) -> dict[str, Any]:
        if self.done:
            log.info("stage %s: reusing %s", self.name, self.dir)
            return json.loads((self.dir / DONE).read_text())
        atomic_write_bytes(self.dir / "stage.json", json.dumps({"stage": self.name, "key": self.key,
                                                                "config": config}, indent=2, default=str).encode())
        start = time.time()
        result = fn(self.dir) or {}
        record = {"stage": self.name, "key": self.key, "seconds": round(time.time() - start, 1), **result}
        atomic_write_bytes(self.dir / DONE, json.dumps(record, indent=2, default=str).encode())
        return record


def domain_catalog(config: RunConfig) -> Any:
    """The :class:`envs.spec.DomainCatalog` of ``config.env``: its env's domains and splits (built-in and from
    ``env.domains`` / ``env.splits``), resolving every domain field of the config; a ``ConfigError`` naming the
    field if a file is bad."""
    import envs  # noqa: F401  (registers the envs and providers)
    from envs.spec import DomainCatalog

    e = config.env
    try:
        return DomainCatalog(e.id, kwargs=e.kwargs, domains_file=e.domains or None, splits_file=e.splits or None,
                             obs_size=e.obs_size, channels=e.channels, layout=e.layout)
    except ValueError as err:
        field = "env.splits" if e.splits and not e.domains else "env.domains" if e.domains else "env.kwargs"
        raise ConfigError(f"config field '{field}' is invalid: {err}") from None


def _env_key(config: RunConfig) -> dict[str, Any]:
    """``config.env`` for stage keys: the fields added for other envs are left out while they hold their
    defaults, so the stage keys of SeekAvoid runs made before them are unchanged."""
    env = asdict(config.env)
    defaults = asdict(type(config.env)())
    for name in _NEW_ENV_FIELDS:
        if env[name] == defaults[name]:
            del env[name]
    return env


_NEW_ENV_FIELDS = ("id", "kwargs", "domains", "splits", "channels")


def _specs_key(config: RunConfig, catalog: Any, specs: list, spec_text: Any) -> dict[str, Any]:
    """The resolved domain specs of a stage, for its key — when the env is not the default or a YAML file is
    named (built-in SeekAvoid domains are fixed by the code and their names, as before)."""
    files = isinstance(spec_text, str) and any(t.strip().endswith((".yaml", ".yml")) for t in spec_text.split(","))
    default_env = all(name not in _env_key(config) for name in _NEW_ENV_FIELDS)
    if default_env and not files:
        return {}
    return {"domain_specs": [catalog.provider.describe(d) for d in specs]}


def run_pipeline(config: RunConfig, run_dir: str | Path, progress: bool = True,
                 stage_root: str | Path | None = None) -> Path:
    """Run every stage of ``config``; returns the path of ``run_dir/report.md``.

    Stage directories live in ``stage_root`` (default ``run_dir/stages``); runs that share a
    ``stage_root`` (a sweep) share every stage whose key is equal, e.g. stage-1 data and vision.
    """
    import envs  # noqa: F401  (registers the env, headless rendering)
    from darla.report import write_report

    domains, _ = evaluation_domains(config)  # fail on a bad domain name now, not after training
    try:  # and on a domain whose env cannot be made (every trained domain is evaluated, so all are checked)
        domain_catalog(config).check(domains)
    except ValueError as e:
        raise ConfigError(f"env.id {config.env.id!r}: a domain's env cannot be made: {e}") from None
    check_policy_config(config)  # and on an algorithm that cannot act in the env
    log.info("device: %s (config device: %s)", config.resolved_device, config.device)  # a missing GPU fails here
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stages = Path(stage_root) if stage_root is not None else run_dir / "stages"
    atomic_write_bytes(run_dir / "config.yaml", _yaml(config).encode())
    timings: dict[str, float] = {}
    t0 = time.time()

    trained = train_stages(config, stages, progress)
    timings.update(trained["timings"])
    policy_dirs = trained["policy_dirs"]
    eval_stage, record = evaluate_stage(config, stages, policy_dirs, progress)
    timings["evaluate"] = record["seconds"]
    timings["total (this invocation)"] = round(time.time() - t0, 1)
    return write_report(
        run_dir,
        config=config,
        data_dir=trained["data_dir"],
        vision_dir=trained["vision_dir"],
        policy_dirs=policy_dirs,
        eval_dir=eval_stage.dir,
        timings=timings,
    )


def train_stages(config: RunConfig, stages: Path, progress: bool = True) -> dict[str, Any]:
    """Stages 1 and 2: collect → vision (skipped for pixel policies) → one policy per training seed."""
    config.resolved_device  # noqa: B018 - a requested but missing device fails before collection
    timings: dict[str, float] = {}
    data_dir = vision_dir = None
    vision_key = "pixels"
    if config.policy.mode != "pixels":
        data_stage, record = collect_stage(config, stages, progress)
        timings["collect"] = record["seconds"]
        vision_stage, record = train_vision_stage(config, stages, data_stage, progress)
        timings["vision"] = record["seconds"]
        data_dir, vision_dir, vision_key = data_stage.dir, vision_stage.dir, vision_stage.key
    policy_dirs = []
    for seed in config.policy.seeds:
        stage, record = train_policy_stage(config, stages, vision_dir / "model" if vision_dir else None,
                                           vision_key, seed, progress)
        timings[f"policy (seed {seed})"] = record["seconds"]
        policy_dirs.append(stage.dir)
    return {"data_dir": data_dir, "vision_dir": vision_dir, "policy_dirs": policy_dirs, "timings": timings}


def collect_stage(config: RunConfig, run_dir: Path, progress: bool = True) -> tuple[Stage, dict]:
    from envs.collect import collect_frames

    catalog = domain_catalog(config)
    try:
        specs = catalog.resolve(config.collect.split)
    except ValueError as e:
        raise ConfigError(f"config field 'collect.split' = {config.collect.split!r} is invalid: {e}") from None
    cfg = {"collect": asdict(config.collect), "env": _env_key(config), "seed": config.seed,
           **_specs_key(config, catalog, specs, config.collect.split)}
    stage = Stage(run_dir, "collect", stage_key(cfg))

    def fn(d: Path) -> dict:
        collect_frames(
            d / "data",
            frames=config.collect.frames,
            split=config.collect.split,
            workers=config.collect.workers,
            seed=config.seed,
            obs_size=config.env.obs_size,
            layout=config.env.layout,
            policy=config.collect.policy,
            progress=progress,
            env_kwargs=config.env.kwargs or None,
            catalog=catalog,
        )
        return {"frames": config.collect.frames}

    return stage, stage.run(fn, cfg)


def train_vision_stage(config: RunConfig, run_dir: Path, data_stage: Stage, progress: bool = True
                       ) -> tuple[Stage, dict]:
    from envs.frames import FrameDataset
    from vision.train import train_vision

    cfg = {"vision": asdict(config.vision), "seed": config.seed, "data": data_stage.key}
    stage = Stage(run_dir, "vision", stage_key(cfg))

    def fn(d: Path) -> dict:
        import vision

        data = FrameDataset(data_stage.dir / "data")
        if not data.factor_names:
            log.info("stage vision: the env reports no ground-truth factors, so the vision probe is skipped and "
                     "the latent-factor table has none to show")
        model = build_vision_model(config, data, d, progress)
        model_dir = train_vision(
            model,
            data,
            d,
            steps=config.vision.steps,
            batch_size=config.vision.batch_size,
            lr=config.vision.lr,
            seed=config.seed,
            device=device,
            config=dict(config.vision.model_config) if isinstance(model, str) else None,
            dae_steps=config.vision.dae_steps,
            progress=progress,
            precision=config.vision.precision,
            workers=config.vision.workers,
        )
        trained = vision.load(model_dir, device=device)
        if trained.generative:
            from darla.report import traversal_with_latent_table

            traversal_with_latent_table(trained, data, d / "traversal.png", seed=config.seed)
        if hasattr(trained, "demo_png") and getattr(model, "dataset", None) is not None:
            trained.attach_factor_dataset(model.dataset)
            trained.demo_png(d / "scan_demo.png")
        return {"model": str(model_dir), "device": device}

    device = config.resolved_device
    return stage, stage.run(fn, cfg)


def build_vision_model(config: RunConfig, data: Any, stage_dir: Path, progress: bool = True) -> Any:
    """The model ``train_vision`` trains: a registry name, or — for the models that learn from more than
    frames — a built model wired to its extra source (``vision`` imports nothing of ``envs``):

    * ``cci_vae``: its capacity schedule fitted to ``vision.steps`` (``set_total_steps``) unless
      ``model_config`` sets ``c_steps``, so C reaches ``c_max`` by the end of the run;
    * ``dc_ign``: one-factor batches from the ``seekavoid-factors`` dataset at the frames' size; unless
      ``model_config`` names ``factors``, only the extrinsic ones (pose and light,
      ``vision.models.dc_ign.SEEKAVOID_EXTRINSIC``) get a latent, so its intrinsic batches (floor, wall,
      object vary; pose and light fixed) come from the dataset as in Kulkarni et al. 2015;
    (``dc_ign``, ``disbm`` with its regulariser and ``scan`` need SeekAvoid's RGB frames; the config
    refuses them elsewhere, ``darla.config._validate_factor_models``; the others take ``env.channels``)
    * ``disbm``: correspondence pairs for its manifold regulariser from ``seekavoid-factors`` (h = pose
      and light, m = floor, wall, object; Reed et al. 2014 §3.2) unless ``model_config`` names
      ``m_factors``/``h_factors`` or sets ``manifold_weight`` to 0;
    * ``icf``: acts in the env of ``collect.split``'s domains (a ``Discrete`` action space);
    * ``scan``: a ``beta_vae_dae`` trained first on the same frames (its visual primitives; its config
      overrides under ``model_config.visual``), then the symbol VAE grounded on ``seekavoid-factors`` labels,
      its recombination operator ω trained from ``vision.steps // 2`` on (``recombination_start``).
    """
    import torch

    import vision
    from envs import factor_dataset

    name, mc = config.vision.model, dict(config.vision.model_config)
    size = config.env.obs_size
    if name not in ("cci_vae", "dc_ign", "disbm", "icf", "scan"):
        return name
    torch.manual_seed(config.seed)
    if name == "cci_vae":
        model = vision.make("cci_vae", image_size=size, channels=config.env.channels, **mc)
        if "c_steps" not in mc:
            model.set_total_steps(config.vision.steps)
        return model
    if name == "disbm":
        from vision.models.dc_ign import SEEKAVOID_EXTRINSIC

        if mc.get("manifold_weight", 1.0) == 0:
            return vision.make("disbm", image_size=size, channels=config.env.channels, **mc)
        if not mc.get("m_factors") and not mc.get("h_factors"):
            mc["h_factors"] = list(SEEKAVOID_EXTRINSIC)
            mc["m_factors"] = ["floor", "wall", "object"]
        model = vision.make("disbm", image_size=size, channels=3, **mc)
        model.attach_factor_dataset(factor_dataset("seekavoid-factors", obs_size=size))
        return model
    if name == "dc_ign":
        from vision.models.dc_ign import SEEKAVOID_EXTRINSIC

        mc.setdefault("factors", list(SEEKAVOID_EXTRINSIC))
        model = vision.make("dc_ign", image_size=size, channels=3, **mc)
        model.attach_factor_dataset(factor_dataset("seekavoid-factors", obs_size=size))
        return model
    if name == "icf":
        catalog = domain_catalog(config)
        env = catalog.make(catalog.resolve(config.collect.split))
        n_actions = getattr(env.action_space, "n", None)
        if n_actions is None:
            env.close()
            raise ConfigError(f"vision.model 'icf' acts with discrete actions; env.id {config.env.id!r} has "
                              f"{env.action_space}: choose another vision model or a Discrete env")
        model = vision.make("icf", image_size=size, channels=config.env.channels, n_actions=int(n_actions), **mc)
        model.attach_env(env)
        return model
    from vision.models.scan import SCAN
    from vision.train import train_vision

    visual_dir = train_vision("beta_vae_dae", data, stage_dir / "visual", steps=config.vision.steps,
                              batch_size=config.vision.batch_size, lr=config.vision.lr, seed=config.seed,
                              device=config.resolved_device, dae_steps=config.vision.dae_steps, progress=progress,
                              config=mc.pop("visual", {}))
    # ω (the learnt recombination operator) trains on the second half, on a settled symbol VAE
    mc.setdefault("recombination_start", config.vision.steps // 2)
    return SCAN.for_dataset(vision.load(visual_dir), factor_dataset("seekavoid-factors", obs_size=size),
                            visual_checkpoint=str(visual_dir), **mc)


def check_policy_config(config: RunConfig) -> None:
    """``ConfigError`` before any work if ``policy.algo`` with its ``algo_kwargs``/``policy_kwargs`` does not
    fit SB3's signatures or the env's action space (the env is built only for algorithms that do not take
    every action space, e.g. DQN or SAC)."""
    from agents.algos import ACTION_SPACES, check_algo

    policy = "CnnPolicy" if config.policy.mode == "pixels" else "MlpPolicy"
    try:
        check_algo(config.policy.algo, config.policy.algo_kwargs, config.policy.policy_kwargs, policy=policy)
        if len(ACTION_SPACES.get(config.policy.algo, ())) < 4:
            catalog = domain_catalog(config)
            env = catalog.make(catalog.resolve(config.train_domains))
            try:
                check_algo(config.policy.algo, action_space=env.action_space, policy=policy)
            finally:
                env.close()
    except ValueError as e:
        raise ConfigError(f"config field 'policy.algo' = {config.policy.algo!r} (with its kwargs) is invalid: {e}") \
            from None


def train_policy_stage(config: RunConfig, run_dir: Path, vision_path: Path | None, vision_key: str,
                       seed: int, progress: bool = True) -> tuple[Stage, dict]:
    from agents.train import train_policy
    from envs.spec import DOMAINS_ENV_ID

    catalog = domain_catalog(config)
    train_specs = catalog.resolve(config.train_domains)
    # domains: in train_domains; vec_env: dummy and subproc give the same observations, so the same policy
    policy = {k: v for k, v in asdict(config.policy).items() if k not in ("domains", "vec_env")}
    cfg = {"policy": {**policy, "seeds": None}, "seed": seed, "vision": vision_key,
           "env": _env_key(config), "train_domains": config.train_domains, "render_revision": catalog.revision(),
           **_specs_key(config, catalog, train_specs, config.train_domains)}
    stage = Stage(run_dir, f"policy-s{seed}", stage_key(cfg))

    def fn(d: Path) -> dict:
        # A half-finished SB3 run cannot resume mid-rollout: restart this stage cleanly.
        for stale in d.iterdir():
            if stale.name not in ("stage.json", ".lock"):
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        train_policy(
            # every domain's spec in policy.json: `gymnasium.make(DOMAINS_ENV_ID, **env_kwargs)` remakes the env
            env_id=DOMAINS_ENV_ID,
            env_kwargs={"domain": [d.to_dict() for d in train_specs], "obs_size": config.env.obs_size,
                        "channels": config.env.channels},
            vision=str(vision_path) if vision_path else None,
            algo=config.policy.algo,
            mode=config.policy.mode,
            steps=config.policy.steps,
            n_envs=config.policy.n_envs,
            seed=seed,
            out_dir=d,
            algo_kwargs=dict(config.policy.algo_kwargs),
            policy_kwargs=dict(config.policy.policy_kwargs),
            frame_stack=config.policy.frame_stack,
            normalize=config.policy.normalize,
            device=device,
            progress=progress,
            subproc=vec_env == "subproc",
        )
        return {"policy": str(d), "device": device, "vec_env": vec_env, "torch_threads": threads}

    device, vec_env = config.resolved_device, policy_vec_env(config)
    # The policy stage's torch work is small batches (4 frames to encode, a 64-unit MLP, minibatches of 256
    # latents): a second OpenMP thread only adds wake-ups (futex, sys time) and competes with the env
    # rendering on the other core; benchmarks/agents.py measures 1 vs 2 threads.
    threads = 1 if device == "cpu" else torch_threads_now()
    with torch_threads(threads):
        return stage, stage.run(fn, cfg)


def policy_vec_env(config: RunConfig) -> str:
    """The VecEnv the policy stage uses: ``policy.vec_env``, with ``auto`` → ``dummy``.

    Measured side by side (benchmarks/agents.py, 2 shared cores, 4 envs): SubprocVecEnv stepped at 0.70× the
    in-process DummyVecEnv with one torch thread; its IPC and four extra processes cost more than rendering
    on the second core saves while the cores are busy. ``subproc`` stays one setting away for machines
    with idle cores (rerun the benchmark there before changing this default)."""
    if config.policy.vec_env != "auto":
        return config.policy.vec_env
    return "dummy"


def torch_threads_now() -> int:
    import torch

    return torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``with torch_threads(n):`` run with ``torch.set_num_threads(n)``, restoring the previous count after.

    :param n: intra-op threads inside the block
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_stage(config: RunConfig, run_dir: Path, policy_dirs: list[Path], progress: bool = True
                   ) -> tuple[Stage, dict]:
    domains, source = evaluation_domains(config)
    catalog = domain_catalog(config)
    # Keyed on the resolved domains, so editing a YAML file of domains re-evaluates.
    cfg = {"evaluate": asdict(config.evaluate), "policies": [p.name for p in policy_dirs], "seed": config.seed,
           "env": _env_key(config), "domains": [catalog.provider.describe(d) for d in domains], "source": source}
    stage = Stage(run_dir, "evaluate", stage_key(cfg))

    def fn(d: Path) -> dict:
        result = evaluate_policies(policy_dirs, domains, config.evaluate.episodes,
                                   seed=config.seed + 10_000, deterministic=config.evaluate.deterministic,
                                   env_kw={}, out_dir=d, progress=progress, source=",".join(source),
                                   catalog=catalog, device=config.resolved_device)
        return {"summary": result.get("summary", {})}

    return stage, stage.run(fn, cfg)


def evaluation_domains(config: RunConfig) -> tuple[list, list[str]]:
    """The domains ``evaluate.domains`` names and the names among them that count as source (the policies'
    training domains: ``policy.domains``, else ``collect.split``); a ``ConfigError`` naming the field if
    they do not resolve, if the policies would train in a held-out target domain, or if the source domains
    are not all evaluated. Called before training, so a typo costs no training."""
    catalog = domain_catalog(config)
    try:
        domains = catalog.resolve(config.evaluate.domains)
    except ValueError as e:
        raise ConfigError(f"config field 'evaluate.domains' = {config.evaluate.domains!r} is invalid: {e}") from None
    what = "policy.domains" if config.policy.domains else "collect.split"
    try:
        trained = catalog.resolve(config.train_domains)
        catalog.resolve(config.collect.split)
    except ValueError as e:
        raise ConfigError(f"config field '{what}' = {config.train_domains!r} is invalid: {e}") from None
    held_out = catalog.held_out(trained)
    if held_out:
        raise ConfigError(f"config field '{what}' = {config.train_domains!r} is invalid: policies would train in "
                          f"held-out target domain(s) {', '.join(held_out)} and no longer be evaluated zero-shot; "
                          "train in a source split or source domain names")
    source = [d.name for d in trained]
    names = [d.name for d in domains]
    missing = [n for n in source if n not in names]
    if missing:
        raise ConfigError(f"config field 'evaluate.domains' = {config.evaluate.domains!r} lacks the training "
                          f"domain(s) {', '.join(missing)} ({what} = {config.train_domains!r}); the "
                          "transfer ratio needs them: add 'source'")
    return domains, source


def evaluate_policies(policy_dirs: list[Path], domains: str | list, episodes: int, seed: int,
                      deterministic: bool, env_kw: dict[str, Any], out_dir: Path, progress: bool = True,
                      source: str | None = None, catalog: Any = None, device: str = "cpu") -> dict[str, Any]:
    """Zero-shot evaluation of trained policies on domains (names, splits or YAML files of ``catalog``'s env).

    ``source`` names the domains (split or names) that count as source; the others are targets.
    Default: the domains the policies were trained on. Without ``catalog``: the default env's
    (SeekAvoid's) domains, ``env_kw`` holding its ``obs_size``, ``layout`` and other env kwargs.
    ``device``: torch device of the policies and their frozen vision.
    """
    from agents.evaluate import write_evaluation, zero_shot_evaluate

    catalog = catalog if catalog is not None else _default_catalog(env_kw)
    resolved = resolve_domain_spec(domains, catalog)

    def env_factory(domain):
        return catalog.make([domain])

    result = zero_shot_evaluate(
        [p if isinstance(p, tuple) else str(p) for p in policy_dirs],  # (model, meta): a loaded foreign zip
        resolved,
        env_factory=env_factory,
        episodes=episodes,
        seed=seed,
        deterministic=deterministic,
        source=resolve_domain_spec(source, catalog) if source else None,
        progress=progress,
        device=device,
    )
    write_evaluation(result, out_dir)
    return result


def _default_catalog(env_kw: dict[str, Any] | None = None) -> Any:
    import envs  # noqa: F401
    from darla.config import DEFAULT_ENV_ID
    from envs.spec import DomainCatalog

    kw = dict(env_kw or {})
    return DomainCatalog(DEFAULT_ENV_ID, obs_size=kw.pop("obs_size", 64), layout=kw.pop("layout", "choice"),
                         channels=kw.pop("channels", 3), kwargs=kw)


def resolve_domain_spec(spec: str | list, catalog: Any = None) -> list:
    """Domain specs from a comma-separated mix of split names, domain names and YAML files of domains,
    e.g. ``"source,target"`` or ``"source,my_shifts.yaml"``, resolved in ``catalog`` (default: the default
    env's, SeekAvoid's)."""
    return (catalog if catalog is not None else _default_catalog()).resolve(spec)


def _yaml(config: RunConfig) -> str:
    from darla.config import dump_config

    return dump_config(config)
