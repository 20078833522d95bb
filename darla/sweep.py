"""``darla sweep``: a grid of vision models × training seeds (× algorithms) through the pipeline.

Every trial trains into one shared stage root, so stage-1 data is collected once and each vision
checkpoint is trained once and reused by all seeds and algorithms that need it (stages are keyed by
their config and locked while they run). Trials run on Ray Tune when it is installed (``pip install
"darla[sweep]"``): locally by default, on a Ray cluster with ``address`` (the stage root must then be
on storage every node sees). Without Ray they run one after another. A killed sweep resumes by
running it again: finished stages are reused.

After training, the policies of each (model, algorithm) are evaluated together — confidence
intervals over training seeds and episodes — and ``summary.json`` / ``summary.md`` are written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from darla.config import RunConfig
from darla.pipeline import evaluation_domains
from vision.checkpoint import atomic_write_bytes

log = logging.getLogger(__name__)

PIXELS = "pixels"


@dataclasses.dataclass(frozen=True)
class Trial:
    model: str
    seed: int
    algo: str

    @property
    def name(self) -> str:
        return f"{self.model}-{self.algo}-s{self.seed}"


def trial_config(base: RunConfig, trial: Trial) -> RunConfig:
    """The run config of one trial: ``model == "pixels"`` is the end-to-end CnnPolicy baseline. The base
    config's ``vision.model_config`` applies only to trials of the base's own ``vision.model`` (its fields
    belong to that model); every other model trains with its own defaults."""
    config = dataclasses.replace(
        base,
        vision=dataclasses.replace(base.vision, model=base.vision.model if trial.model == PIXELS else trial.model,
                                   model_config=dict(base.vision.model_config) if trial.model == base.vision.model else {}),
        policy=dataclasses.replace(base.policy, algo=trial.algo, seeds=[trial.seed],
                                   mode=PIXELS if trial.model == PIXELS else
                                   (base.policy.mode if base.policy.mode != PIXELS else "latent")),
    )
    config.validate()
    return config


def grid(models: list[str], seeds: list[int], algos: list[str]) -> list[Trial]:
    import vision

    for what, values in (("models", models), ("seeds", seeds), ("algos", algos)):
        if not values:
            raise ValueError(f"sweep has no {what}; give at least one, e.g. --{what} "
                             + {"models": "vae,beta_vae_dae", "seeds": "0,1,2", "algos": "ppo"}[what])
        if len(set(values)) != len(values):
            raise ValueError(f"sweep {what} {values} repeat a value; give each once")
    valid = set(vision.list_models()) | {PIXELS}
    for m in models:
        if m not in valid:
            raise ValueError(f"unknown vision model '{m}' in sweep; valid: {', '.join(sorted(valid))}")
    return [Trial(m, s, a) for m in models for a in algos for s in seeds]


def _train_vision(config: RunConfig, stage_root: Path, progress: bool) -> Path:
    from darla.pipeline import collect_stage, train_vision_stage

    data, _ = collect_stage(config, stage_root, progress)  # reused: collected before any vision trains
    stage, _ = train_vision_stage(config, stage_root, data, progress)
    return stage.dir


def _run_trial(base_dict: dict[str, Any], trial: dict[str, Any], stage_root: str, progress: bool) -> dict[str, Any]:
    import envs  # noqa: F401  (registers the env in Ray workers too)
    from darla.config import from_dict
    from darla.pipeline import train_stages

    base = from_dict(base_dict)
    t = Trial(**trial)
    trained = train_stages(trial_config(base, t), Path(stage_root), progress=progress)
    return {"trial": t.name, "policy_dirs": [str(p) for p in trained["policy_dirs"]]}


def _run_job(base_dict: dict[str, Any], job: dict[str, Any], stage_root: str) -> dict[str, Any]:
    """One Ray Tune trial: a vision model's stage (``kind="vision"``) or a policy trial (``kind="trial"``)."""
    job = dict(job)
    if job.pop("kind") == "vision":
        import envs  # noqa: F401
        from darla.config import from_dict

        config = trial_config(from_dict(base_dict), Trial(**job))
        return {"vision": job["model"], "dir": str(_train_vision(config, Path(stage_root), progress=False))}
    return _run_trial(base_dict, job, stage_root, progress=False)


def run_sweep(base: RunConfig, out: str | Path, models: list[str], seeds: list[int], algos: list[str] | None = None,
              address: str | None = None, use_ray: bool | None = None, cpus_per_trial: float = 1.0,
              progress: bool = True, vision_only: bool = False) -> Path:
    """Train every trial of the grid, evaluate each (model, algo) over its seeds; returns ``summary.json``.

    ``vision_only``: stop after stage-1 data and the vision models (no policy trials) and return
    ``visions.json`` (model → vision stage directory). A later sweep with the same base config reuses them,
    so the next grid's vision can train while another sweep's policies use the other CPUs.
    """
    out = Path(out)
    stage_root = out / "stages"
    stage_root.mkdir(parents=True, exist_ok=True)
    trials = grid(models, seeds, algos or [base.policy.algo])
    for t in trials:  # every trial's config is valid before anything trains
        trial_config(base, t)
    evaluation_domains(base)  # fail on a bad domain name now, not after training
    atomic_write_bytes(out / "sweep.json", json.dumps({"models": models, "seeds": seeds, "algos": algos,
                                                       "base": base.to_dict()}, indent=2).encode())
    ray_ok = _ray_available() if use_ray is None else use_ray
    if address and not ray_ok:
        raise RuntimeError('--address needs Ray: pip install "darla[sweep]"')
    # Stage-1 data once, then every vision model, then the policy trials: data and vision are shared,
    # and training them inside the trials would only make trials wait on each other's locks.
    visions = [trial_config(base, Trial(m, seeds[0], trials[0].algo))
               for m in dict.fromkeys(t.model for t in trials) if m != PIXELS]
    if visions:
        from darla.pipeline import collect_stage

        collect_stage(visions[0], stage_root, progress)  # the data key does not depend on the model
    if vision_only and not visions:
        raise ValueError(f"--vision-only: models {models} have no vision to train ('{PIXELS}' is end to end); "
                         "name at least one vision model")
    if ray_ok:
        # Distinct vision models train in parallel (one per CPU slot), then the policy trials.
        _run_on_ray(base, [{"kind": "vision", "model": c.vision.model, "seed": seeds[0], "algo": trials[0].algo}
                           for c in visions], "darla-vision", stage_root, address, cpus_per_trial)
        if vision_only:
            return _write_visions(visions, stage_root, out)
        _run_on_ray(base, [{"kind": "trial", **dataclasses.asdict(t)} for t in trials], "darla-sweep", stage_root,
                    address, cpus_per_trial)
    else:
        if use_ray is None:
            log.warning('Ray is not installed (pip install "darla[sweep]"): running %d trials one after another',
                        len(trials))
        for c in visions:
            _train_vision(c, stage_root, progress)
        if vision_only:
            return _write_visions(visions, stage_root, out)
        for t in trials:
            _run_trial(base.to_dict(), dataclasses.asdict(t), str(stage_root), progress)
    return summarise(base, out, trials, progress)


def _write_visions(visions: list[RunConfig], stage_root: Path, out: Path) -> Path:
    """``visions.json``: each model's vision stage directory (all reused: the sweep just trained them)."""
    dirs = {c.vision.model: str(_train_vision(c, stage_root, progress=False)) for c in visions}
    atomic_write_bytes(out / "visions.json", json.dumps(dirs, indent=2).encode())
    return out / "visions.json"


def _ray_available() -> bool:
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        return False
    return True


def trial_resources(base: RunConfig, cpus_per_trial: float) -> dict[str, float]:
    """Ray resources of one trial: ``cpus_per_trial`` CPUs, plus one GPU when the config's device resolves to
    CUDA (so Ray places one trial per GPU instead of stacking every trial on ``cuda:0``).

    :param base: the sweep's base config (its ``device``)
    :param cpus_per_trial: CPUs per trial
    """
    resources = {"cpu": cpus_per_trial}
    if base.resolved_device.startswith("cuda"):
        resources["gpu"] = 1
    return resources


def _run_on_ray(base: RunConfig, jobs: list[dict[str, Any]], name: str, stage_root: Path, address: str | None,
                cpus_per_trial: float) -> None:
    """Run ``jobs`` (see ``_run_job``) as one Ray Tune grid, ``cpus_per_trial`` CPUs each."""
    if not jobs:
        return
    import ray
    from ray import tune

    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    base_dict = base.to_dict()
    root = str(stage_root.resolve())

    def trainable(config: dict[str, Any]) -> dict[str, Any]:
        return _run_job(base_dict, config["job"], root)

    tuner = tune.Tuner(
        tune.with_resources(trainable, trial_resources(base, cpus_per_trial)),
        param_space={"job": tune.grid_search(jobs)},
        run_config=tune.RunConfig(name=name, storage_path=str((stage_root.parent / "ray").resolve()), verbose=1),
    )
    results = tuner.fit()
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"{len(errors)} sweep job(s) of {name} failed; first: {errors[0]}")


def summarise(base: RunConfig, out: Path, trials: list[Trial], progress: bool = True) -> Path:
    """Evaluate each (model, algo) over all its seeds and write ``summary.json`` and ``summary.md``."""
    from darla.pipeline import evaluate_stage, train_stages
    from darla.report import format_estimate, headline

    stage_root = out / "stages"
    rows = {}
    for model in dict.fromkeys(t.model for t in trials):
        for algo in dict.fromkeys(t.algo for t in trials):
            seeds = [t.seed for t in trials if t.model == model and t.algo == algo]
            one = trial_config(base, Trial(model, seeds[0], algo))
            config = dataclasses.replace(one, policy=dataclasses.replace(one.policy, seeds=seeds))
            trained = train_stages(config, stage_root, progress)  # all reused: trials finished them
            stage, _ = evaluate_stage(config, stage_root, trained["policy_dirs"], progress)
            evaluation = json.loads((stage.dir / "evaluation.json").read_text())
            rows[f"{model}/{algo}"] = {"model": model, "algo": algo, "seeds": seeds, "steps": config.policy.steps,
                                       "evaluation": str(stage.dir), **headline(evaluation)}
    summary = {"base": base.to_dict(), "results": rows}
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())
    lines = ["| vision | algo | seeds | source | target | target/source |", "|---|---|---:|---|---|---|"]
    for r in rows.values():
        cells = [format_estimate(r[k]) if k in r else "–" for k in ("source", "target", "ratio")]
        lines.append(f"| {r['model']} | {r['algo']} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
    atomic_write_bytes(out / "summary.md", ("\n".join(lines) + "\n").encode())
    return out / "summary.json"

