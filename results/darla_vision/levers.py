"""Lever search for a β-VAE_DAE that disentangles SeekAvoid (issue #20; protocol in README.md).

Every lever run trains DARLA's vision exactly as stage 1 of ``darla run`` does (its collected frames:
20,000 random-policy frames of the source split; ``train_vision`` with precision auto and workers auto)
and changes one setting of the default; the pixel baselines (VAE, β-VAE: the protocol's amendment) train
on the same frames at the same budget. Each run is scored at each length of its schedule (training is
resumed from the last length, so 4k → 8k costs 4k more steps) with

* the **selection signal**, from source-domain images only: MIG and DCI disentanglement on the
  default-room slice of the ``seekavoid-factors`` grid (floor = wall = ``default``, all four objects: pairs
  A and B in the default room are both source domains; 540 images, object × lateral × depth × heading ×
  light fully crossed), and the linear probe of ``train_vision`` on the collected source frames;
* the **reported outcome** the issue asks for (never used to choose: the full grid also shows pair A in
  the changed room, the target combination): every supervised metric on the whole 4,860-image grid, with
  ``vision.metrics.FAST_PARAMS`` as ``results/metrics/`` uses them (DCI with a random forest: the
  published gradient-boosted DCI on 10,000 points takes ~3 minutes per point here).

Outputs: ``<out>/levers/<run>__s<seed>__<steps>.json`` (one per scored point; a rerun skips points
whose JSON exists, and resumes an interrupted training from its last checkpoint) and the table of
``<out>/README.md`` between the ``levers-table`` markers. Run from the repository root::

    python results/darla_vision/levers.py                     # every lever, seed 0
    python results/darla_vision/levers.py --runs base --seeds 1,2 --max-steps 8000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("PYGLET_HEADLESS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as darla's CLI; before torch

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

log = logging.getLogger("results.darla_vision")

class Lever(NamedTuple):
    """One run of the search: what it changes from ``base`` and the lengths at which it is scored."""

    overrides: dict  # config overrides of ``model``
    dae_steps: int | None  # the frozen DAE's own length (``None``: a pixel model, no DAE)
    lengths: tuple[int, ...]  # vision steps at which the run is scored (each resumed from the last)
    model: str = "beta_vae_dae"


#: One lever changed from ``base`` each. The protocol's first table, then its amendment (README.md).
RUNS: dict[str, Lever] = {
    # the default of darla run (β 1, J = conv 4, 32 latents); 16k and 32k: the amendment (length won)
    "base": Lever({}, 1500, (4000, 8000, 16000, 32000)),
    "beta0.1": Lever({"beta": 0.1}, 1500, (4000,)),       # β on the feature error: its scale is not the pixels'
    # J = conv 2 (32×16×16 features) instead of conv 4 (64×4×4); 8k and 16k: amendment 2
    "dae_layer2": Lever({"dae_layer": 2}, 1500, (4000, 8000, 16000)),
    "dae_layer3": Lever({"dae_layer": 3}, 1500, (4000,)),  # J = conv 3 (64×8×8)
    "dae_layer1": Lever({"dae_layer": 1}, 1500, (4000,)),  # J = conv 1 (32×32×32): amendment 2
    "beta4": Lever({"beta": 4.0}, 1500, (4000,)),
    "latents10": Lever({"latents": 10}, 1500, (4000,)),
    "dae5000": Lever({}, 5000, (4000,)),                   # the DAE's own length
    # amendment: the pixel baselines on the same frames and budget (zoo defaults: VAE β 1, β-VAE β 4)
    "vae": Lever({}, None, (4000, 8000), model="vae"),
    "beta_vae": Lever({}, None, (4000, 8000), model="beta_vae"),
}
#: the factors of the source slice (floor and wall are fixed there)
SLICE_FACTORS = ("object", "lateral", "depth", "heading", "light")
#: source-frame probe factors reported (task-relevant: what the policy must see)
PROBE_FACTORS = ("pair", "room", "good_dist", "good_angle", "bad_dist", "bad_angle")
TABLE_START = "<!-- levers-table:start (written by levers.py; edits inside are overwritten) -->"
TABLE_END = "<!-- levers-table:end -->"


def stage_frames(work: Path, progress: bool = True):
    """The frames stage 1 of ``darla run`` collects with the default config (its own resumable stage)."""
    from darla.config import load_config
    from darla.pipeline import collect_stage
    from envs.frames import FrameDataset

    config = load_config(None)
    stage, _ = collect_stage(config, work, progress=progress)
    return FrameDataset(stage.dir / "data")


def source_slice(grid) -> tuple[np.ndarray, np.ndarray]:
    """Images and factor values of the grid with floor = wall = default (the first room style)."""
    from envs.factors import all_factor_combinations

    combos = all_factor_combinations(grid.factor_sizes)
    names = list(grid.factor_names)
    keep = (combos[:, names.index("floor")] == 0) & (combos[:, names.index("wall")] == 0)
    cols = [names.index(f) for f in SLICE_FACTORS]
    return grid.grid_images[keep], combos[keep][:, cols]


def slice_scores(model, images: np.ndarray, factors: np.ndarray, seed: int) -> dict:
    """MIG and DCI of ``model``'s codes on the source slice (DCI: a seeded 2/3 – 1/3 split)."""
    from darla.metrics import representation_of
    from vision.metrics.dci_score import dci_from_codes
    from vision.metrics.mutual_info_gap import mig_from_codes

    codes = representation_of(model)(images)
    order = np.random.default_rng(seed).permutation(len(codes))
    cut = 2 * len(codes) // 3
    tr, te = order[:cut], order[cut:]
    return {"mig": mig_from_codes(codes, factors, names=list(SLICE_FACTORS)),
            "dci": dci_from_codes(codes[tr], factors[tr], codes[te], factors[te], seed=seed)}


def score(model_dir: Path, run_dir: Path, grid, slice_data, seed: int) -> dict:
    import vision
    from darla.metrics import memoised_representation, metrics_for, representation_of
    from vision.checkpoint import read_meta

    model = vision.load(model_dir)
    kl = read_meta(model_dir).get("extra", {})
    probe = json.loads((run_dir / "probe.json").read_text()) if (run_dir / "probe.json").exists() else {}
    represent = memoised_representation(representation_of(model), grid.grid_images)
    grid_metrics = metrics_for(represent, grid, seed=seed, fast=True)  # as results/metrics/ (--fast)
    return {
        "source_slice": slice_scores(model, *slice_data, seed=seed),
        "source_probe": {f: probe.get("factors", {}).get(f, {}).get("normalized") for f in PROBE_FACTORS},
        "grid": grid_metrics,
        "active_latents": _active_latents(model, grid.grid_images),
        "train": kl.get("train", {}),
    }


def _active_latents(model, images: np.ndarray) -> int:
    """Latents whose mean KL over ``images`` exceeds 0.01 nats (the UDR filter's threshold)."""
    from darla.metrics import kl_per_latent

    return int((kl_per_latent(model, images) > 0.01).sum())


def run_one(name: str, seed: int, frames, work: Path, out: Path, grid, slice_data, progress: bool,
            max_steps: int | None = None) -> None:
    from vision.train import train_vision

    lever = RUNS[name]
    config = dict(lever.overrides)
    if lever.dae_steps is not None:
        dae_dir = train_vision("dae", frames, work / f"dae-{lever.dae_steps}-s{seed}", steps=lever.dae_steps,
                               seed=seed, lr=5e-4, config={"latents": 100}, probe=False, progress=progress,
                               precision="auto", workers="auto")
        config["dae_checkpoint"] = str(dae_dir)
    run_dir = work / f"{name}-s{seed}"
    for steps in lengths_of(name, max_steps):
        dest = out / "levers" / f"{name}__s{seed}__{steps}.json"
        if dest.exists():
            continue
        t0 = time.perf_counter()
        model_dir = train_vision(lever.model, frames, run_dir, steps=steps, seed=seed, lr=5e-4, batch_size=64,
                                 config=config, progress=progress, precision="auto", workers="auto")
        train_s = time.perf_counter() - t0
        keep = run_dir / f"model-{steps}"  # the next length resumes into model/; UDR needs this one
        if not keep.exists():
            shutil.copytree(model_dir, keep)
        result = {"run": name, "model": lever.model, "seed": seed, "steps": steps, "overrides": lever.overrides,
                  "dae_steps": lever.dae_steps,
                  "train_seconds_this_leg": round(train_s, 1), **score(model_dir, run_dir, grid, slice_data, seed)}
        from darla.machine import describe
        from vision.checkpoint import atomic_write_bytes

        result["machine"] = describe()
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dest, json.dumps(result, indent=2, default=float).encode())
        log.info("%s: slice MIG %.3f DCI %.3f | grid MIG %.3f DCI %.3f", dest.name,
                 result["source_slice"]["mig"]["mig"], result["source_slice"]["dci"]["disentanglement"],
                 result["grid"]["mig"]["mig"], result["grid"]["dci"]["disentanglement"])


def udr_point(name: str, steps: int, seeds: list[int], frames, work: Path, out: Path,
               num_points: int = 1000) -> dict:
    """UDR (Duan et al. 2020) across the ``seeds`` of run ``name`` at ``steps``, on ``num_points`` collected
    source frames (seeded): unsupervised, so a selection signal. Written to ``levers/udr__<run>__<steps>.json``."""
    from darla.machine import describe
    from darla.metrics import udr_of_checkpoints
    from vision.checkpoint import atomic_write_bytes

    if len(seeds) < 2:
        raise SystemExit(f"--udr needs at least 2 seeds (--seeds), got {seeds}")
    ckpts = [work / f"{name}-s{seed}" / f"model-{steps}" for seed in seeds]
    missing = [str(c) for c in ckpts if not (c / "config.json").exists()]
    if missing:
        raise SystemExit(f"--udr {name}@{steps}: no checkpoint at {', '.join(missing)}; train those points first "
                         f"(python results/darla_vision/levers.py --runs {name} --seeds {','.join(map(str, seeds))})")
    pick = np.random.default_rng([steps, 2020]).choice(len(frames.frames), num_points, replace=False)
    result = udr_of_checkpoints(np.asarray(frames.frames[np.sort(pick)]), ckpts, seed=0)
    result.update(run=name, steps=steps, seeds=seeds, num_points=num_points, data="collected source frames",
                  machine=describe())
    dest = out / "levers" / f"udr__{name}__{steps}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, json.dumps(result, indent=2, default=float).encode())
    log.info("%s: UDR %s (seeds %s)", dest.name, [round(v, 3) for v in result["model_scores"]], seeds)
    return result


def lengths_of(name: str, max_steps: int | None = None) -> tuple[int, ...]:
    """The lengths at which run ``name`` is scored, up to ``max_steps`` (``None``: all of them)."""
    return tuple(n for n in RUNS[name].lengths if max_steps is None or n <= max_steps)


def table(out: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted((out / "levers").glob("*__s*__*.json"))]
    udr = {}  # (run, steps, seed) → that seed's UDR score against the other seeds
    for p in sorted((out / "levers").glob("udr__*.json")):
        u = json.loads(p.read_text())
        udr.update({(u["run"], u["steps"], seed): v for seed, v in zip(u["seeds"], u["model_scores"])})
    rows.sort(key=lambda r: (list(RUNS).index(r["run"]) if r["run"] in RUNS else 99, r["steps"], r["seed"]))
    head = ("| run | change | seed | steps | slice MIG | slice DCI dis. | probe good_dist | probe good_angle | "
            "probe pair | active latents | UDR | grid MIG | grid DCI dis. | grid FactorVAE | train s |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        p = r["source_probe"]
        change = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "—"
        model = r.get("model", "beta_vae_dae")  # points scored before the amendment are all β-VAE_DAE
        if model != "beta_vae_dae":
            change = f"{model} on pixels (zoo default)" if change == "—" else f"{model} on pixels, {change}"
        elif r["dae_steps"] != 1500:
            change += f" (DAE {r['dae_steps']} steps)"

        def f(v):
            return "–" if v is None else f"{v:.2f}"
        lines.append(
            f"| {r['run']} | {change} | {r['seed']} | {r['steps']} | {f(r['source_slice']['mig']['mig'])} | "
            f"{f(r['source_slice']['dci']['disentanglement'])} | {f(p.get('good_dist'))} | {f(p.get('good_angle'))} | "
            f"{f(p.get('pair'))} | {r['active_latents']} | {f(udr.get((r['run'], r['steps'], r['seed'])))} | "
            f"{f(r['grid']['mig']['mig'])} | "
            f"{f(r['grid']['dci']['disentanglement'])} | {f(r['grid']['factor_vae']['eval_accuracy'])} | "
            f"{r['train_seconds_this_leg']:.0f} |")
    return "\n".join(lines)


def write_table(out: Path) -> None:
    from vision.checkpoint import atomic_write_bytes

    readme = out / "README.md"
    text = readme.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"{readme} lacks the {TABLE_START!r} … {TABLE_END!r} markers")
    pre, rest = text.split(TABLE_START, 1)
    _, post = rest.split(TABLE_END, 1)
    atomic_write_bytes(readme, (pre + TABLE_START + "\n" + table(out) + "\n" + TABLE_END + post).encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of: {', '.join(RUNS)}")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "darla_vision")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--table-only", action="store_true", help="rewrite the README table from the JSONs")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="score each run only at its lengths up to this many steps (e.g. 8000 for extra seeds)")
    parser.add_argument("--udr", metavar="RUN@STEPS", default=None,
                        help="UDR across --seeds of RUN at STEPS (trained points only), e.g. base@8000")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"unknown run(s) {unknown}; choose from {', '.join(RUNS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.udr:
        run, _, steps = args.udr.partition("@")
        if run not in RUNS or not steps.isdigit():
            raise SystemExit(f"--udr takes RUN@STEPS with RUN one of {', '.join(RUNS)}, got {args.udr!r}")
        udr_point(run, int(steps), seeds, stage_frames(args.work, progress=not args.no_progress), args.work,
                  args.out)
    elif not args.table_only:
        import envs
        frames = stage_frames(args.work, progress=not args.no_progress)
        grid = envs.grid_dataset(envs.factor_dataset("seekavoid-factors", obs_size=64),
                                 cache_file=args.work / "seekavoid-factors-64.npy", progress=not args.no_progress)
        slice_data = source_slice(grid)
        for seed in seeds:
            for name in names:
                run_one(name, seed, frames, args.work, args.out, grid, slice_data, not args.no_progress,
                        max_steps=args.max_steps)
                write_table(args.out)
    write_table(args.out)


if __name__ == "__main__":
    main()
