"""The three-stage pipeline behind ``darla run``: collect → train vision → train policies → zero-shot
evaluation → report.

Each stage writes into ``<run_dir>/<stage>-<key>/`` where ``key`` digests the stage's config and the
keys of the stages it depends on; a ``DONE.json`` written last (atomically) marks it finished. A rerun
reuses every finished stage whose key is unchanged, and a stage killed half-way resumes (collection
and vision training keep chunk files / checkpoints) or restarts in place; nothing finished is lost.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from darla.config import ConfigError, RunConfig, stage_key
from vision.checkpoint import atomic_write_bytes

log = logging.getLogger(__name__)

ENV_ID = "darla/SeekAvoid-v0"
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


def env_kwargs(config: RunConfig) -> dict[str, Any]:
    return {"layout": config.env.layout, "obs_size": config.env.obs_size}


def run_pipeline(config: RunConfig, run_dir: str | Path, progress: bool = True,
                 stage_root: str | Path | None = None) -> Path:
    """Run every stage of ``config``; returns the path of ``run_dir/report.md``.

    Stage directories live in ``stage_root`` (default ``run_dir/stages``); runs that share a
    ``stage_root`` (a sweep) share every stage whose key is equal, e.g. stage-1 data and vision.
    """
    import envs  # noqa: F401  (registers the env, headless rendering)
    from darla.report import write_report

    evaluation_domains(config)  # fail on a bad domain name now, not after training
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

    cfg = {"collect": asdict(config.collect), "env": asdict(config.env), "seed": config.seed}
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
        model = build_vision_model(config, data, d, progress)
        model_dir = train_vision(
            model,
            data,
            d,
            steps=config.vision.steps,
            batch_size=config.vision.batch_size,
            lr=config.vision.lr,
            seed=config.seed,
            device=config.device,
            config=dict(config.vision.model_config) if isinstance(model, str) else None,
            dae_steps=config.vision.dae_steps,
            progress=progress,
            precision=config.vision.precision,
        )
        trained = vision.load(model_dir)
        if trained.generative:
            from darla.report import traversal_with_latent_table

            traversal_with_latent_table(trained, data, d / "traversal.png", seed=config.seed)
        if hasattr(trained, "demo_png") and getattr(model, "dataset", None) is not None:
            trained.attach_factor_dataset(model.dataset)
            trained.demo_png(d / "scan_demo.png")
        return {"model": str(model_dir)}

    return stage, stage.run(fn, cfg)


def build_vision_model(config: RunConfig, data: Any, stage_dir: Path, progress: bool = True) -> Any:
    """The model ``train_vision`` trains: a registry name, or — for the models that learn from more than
    frames — a built model wired to its extra source (``vision`` imports nothing of ``envs``):

    * ``dc_ign``: one-factor batches from the ``seekavoid-factors`` dataset at the frames' size;
    * ``icf``: acts in the source domains of SeekAvoid;
    * ``scan``: a ``beta_vae_dae`` trained first on the same frames (its visual primitives; its config
      overrides under ``model_config.visual``), then the symbol VAE grounded on ``seekavoid-factors`` labels.
    """
    import torch

    import vision
    from envs import factor_dataset

    name, mc = config.vision.model, dict(config.vision.model_config)
    size = config.env.obs_size
    if name not in ("dc_ign", "icf", "scan"):
        return name
    torch.manual_seed(config.seed)
    if name == "dc_ign":
        model = vision.make("dc_ign", image_size=size, channels=3, **mc)
        model.attach_factor_dataset(factor_dataset("seekavoid-factors", obs_size=size))
        return model
    if name == "icf":
        import gymnasium

        model = vision.make("icf", image_size=size, channels=3, n_actions=3, **mc)
        model.attach_env(gymnasium.make(ENV_ID, domain=config.collect.split, **env_kwargs(config)))
        return model
    from vision.models.scan import SCAN
    from vision.train import train_vision

    visual_dir = train_vision("beta_vae_dae", data, stage_dir / "visual", steps=config.vision.steps,
                              batch_size=config.vision.batch_size, lr=config.vision.lr, seed=config.seed,
                              device=config.device, dae_steps=config.vision.dae_steps, progress=progress,
                              config=mc.pop("visual", {}))
    return SCAN.for_dataset(vision.load(visual_dir), factor_dataset("seekavoid-factors", obs_size=size),
                            visual_checkpoint=str(visual_dir), **mc)


def train_policy_stage(config: RunConfig, run_dir: Path, vision_path: Path | None, vision_key: str,
                       seed: int, progress: bool = True) -> tuple[Stage, dict]:
    from agents.train import train_policy
    from envs.seekavoid import RENDER_REVISION

    policy = {k: v for k, v in asdict(config.policy).items() if k != "domains"}  # in train_domains
    cfg = {"policy": {**policy, "seeds": None}, "seed": seed, "vision": vision_key,
           "env": asdict(config.env), "train_domains": config.train_domains, "render_revision": RENDER_REVISION}
    stage = Stage(run_dir, f"policy-s{seed}", stage_key(cfg))

    def fn(d: Path) -> dict:
        # A half-finished SB3 run cannot resume mid-rollout: restart this stage cleanly.
        for stale in d.iterdir():
            if stale.name not in ("stage.json", ".lock"):
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        train_policy(
            env_id=ENV_ID,
            env_kwargs={**env_kwargs(config), "domain": config.train_domains},
            vision=str(vision_path) if vision_path else None,
            algo=config.policy.algo,
            mode=config.policy.mode,
            steps=config.policy.steps,
            n_envs=config.policy.n_envs,
            seed=seed,
            out_dir=d,
            algo_kwargs=dict(config.policy.algo_kwargs),
            device=config.device,
            progress=progress,
        )
        return {"policy": str(d)}

    return stage, stage.run(fn, cfg)


def evaluate_stage(config: RunConfig, run_dir: Path, policy_dirs: list[Path], progress: bool = True
                   ) -> tuple[Stage, dict]:
    domains, source = evaluation_domains(config)
    # Keyed on the resolved domains, so editing a YAML file of domains re-evaluates.
    cfg = {"evaluate": asdict(config.evaluate), "policies": [p.name for p in policy_dirs], "seed": config.seed,
           "env": asdict(config.env), "domains": [d.to_dict() for d in domains], "source": source}
    stage = Stage(run_dir, "evaluate", stage_key(cfg))

    def fn(d: Path) -> dict:
        result = evaluate_policies(policy_dirs, domains, config.evaluate.episodes,
                                   seed=config.seed + 10_000, deterministic=config.evaluate.deterministic,
                                   env_kw=env_kwargs(config), out_dir=d, progress=progress,
                                   source=",".join(source))
        return {"summary": result.get("summary", {})}

    return stage, stage.run(fn, cfg)


def evaluation_domains(config: RunConfig) -> tuple[list, list[str]]:
    """The domains ``evaluate.domains`` names and the names among them that count as source (the policies'
    training domains: ``policy.domains``, else ``collect.split``); a ``ConfigError`` naming the field if
    they do not resolve, if the policies would train in a held-out target domain, or if the source domains
    are not all evaluated. Called before training, so a typo costs no training."""
    from envs.collect import held_out_domains

    try:
        domains = resolve_domain_spec(config.evaluate.domains)
    except ValueError as e:
        raise ConfigError(f"config field 'evaluate.domains' = {config.evaluate.domains!r} is invalid: {e}") from None
    what = "policy.domains" if config.policy.domains else "collect.split"
    try:
        trained = resolve_domain_spec(config.train_domains)
    except ValueError as e:
        raise ConfigError(f"config field '{what}' = {config.train_domains!r} is invalid: {e}") from None
    held_out = held_out_domains(trained)
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
                      source: str | None = None) -> dict[str, Any]:
    """Zero-shot evaluation of trained policies on SeekAvoid domains (names, splits or a YAML spec).

    ``source`` names the domains (split or names) that count as source; the others are targets.
    Default: the domains the policies were trained on.
    """
    import gymnasium

    from agents.evaluate import write_evaluation, zero_shot_evaluate
    resolved = resolve_domain_spec(domains)

    def env_factory(domain):
        return gymnasium.make(ENV_ID, domain=domain, **env_kw)

    result = zero_shot_evaluate(
        [str(p) for p in policy_dirs],
        resolved,
        env_factory=env_factory,
        episodes=episodes,
        seed=seed,
        deterministic=deterministic,
        source=resolve_domain_spec(source) if source else None,
        progress=progress,
    )
    write_evaluation(result, out_dir)
    return result


def resolve_domain_spec(spec: str | list) -> list:
    """Domains from a comma-separated mix of split names, domain names and YAML files of domains,
    e.g. ``"source,target"`` or ``"source,my_shifts.yaml"``."""
    from envs.domains import load_domains_yaml, resolve_domains

    items = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    domains: list = []
    for item in items:
        if isinstance(item, str) and item.endswith((".yaml", ".yml")):
            domains.extend(load_domains_yaml(item))
        else:
            domains.append(item)
    return resolve_domains(domains)


def _yaml(config: RunConfig) -> str:
    from darla.config import dump_config

    return dump_config(config)
