"""Disentanglement metrics of the zoo on dSprites and seekavoid-factors: the results table in README.md.

For each dataset, one training array of images is drawn (dSprites: ``--dsprites-images`` factor
combinations sampled uniformly; seekavoid-factors: the whole 4,860-image grid, rendered once and cached
as ``.npy`` in ``--cache``). Every (model, seed) is trained on it with :func:`vision.train.train_vision`
into ``--work`` (resumable: a rerun reuses finished models and finished metric JSONs), then scored with
the five supervised metrics of :func:`vision.metrics.evaluate_metrics` (β-VAE, FactorVAE, MIG, DCI,
SAP) and, across the seeds of each model, UDR (Duan et al. 2020, :func:`vision.metrics.udr_from_codes`,
with the paper's KL > 0.01 filter on informative latents).

Outputs in ``--out``: one ``<dataset>__<model>__seed<k>.json`` per run, ``summary.json`` (mean ± std
over seeds per metric, UDR per model) and the table section of ``README.md`` (between the
``metrics-table`` markers), next to the published dSprites reference points.

Run from the repository root::

    python results/metrics/run.py --out results/metrics --seeds 0,1 --fast

Two speed-ups that do not change any number: seekavoid-factors metrics look images up in the cached
grid instead of re-rendering them (1.35 ms/image), and the representation of a seekavoid model is
memoised per image (the metrics draw ~150k images from a 4,860-image grid, so almost all are repeats;
identical bytes give identical deterministic features).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("PYGLET_HEADLESS", "1")

import numpy as np

log = logging.getLogger("results.metrics")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

DATASETS = ("dsprites", "seekavoid-factors")
#: The models each dataset trains by default (β-VAE_DAE is DARLA's vision: its own domain only).
MODELS = {
    "dsprites": ("vae", "beta_vae", "beta_tcvae", "factor_vae", "cci_vae"),
    "seekavoid-factors": ("vae", "beta_vae", "beta_tcvae", "factor_vae", "cci_vae", "beta_vae_dae"),
}
#: Config overrides per model (besides ``latents``): each method's default weight from its paper.
MODEL_CONFIG = {
    "vae": {},  # β = 1
    "beta_vae": {},  # β = 4 (Higgins et al. 2017, dSprites)
    "beta_tcvae": {},  # β = 6 on the total correlation, α = γ = 1 (Chen et al. 2018); dataset_size set below
    # γ = 35, D 6×1000, full batches for the VAE and D (Kim & Mnih 2018, dSprites); explicit so stored
    # results of the earlier default (γ = 10, D 6×256, half batches) do not pass as current
    "factor_vae": {"gamma": 35.0, "disc_hidden": 1000},
    # γ = 1000, C 0 → 25 nats (Burgess et al. 2018); the schedule spans the run (c_steps set below)
    "cci_vae": {},
    "beta_vae_dae": {},  # β = 1 on the DAE feature error, lr 5e-4 (DARLA setting of DESIGN.md)
}
SUPERVISED = ("beta_vae", "factor_vae", "mig", "dci", "sap")
#: ``(metric, score key, column title)`` of the README table.
COLUMNS = (
    ("beta_vae", "eval_accuracy", "β-VAE score"),
    ("factor_vae", "eval_accuracy", "FactorVAE score"),
    ("mig", "mig", "MIG"),
    ("dci", "disentanglement", "DCI dis."),
    ("dci", "completeness", "DCI compl."),
    ("dci", "informativeness_test", "DCI info."),
    ("sap", "sap", "SAP"),
    ("udr", "udr", "UDR"),
)
#: Published dSprites numbers (300k iterations): Kim & Mnih 2018 (FactorVAE metric), Chen et al. 2018 (MIG).
PUBLISHED = {
    "factor_vae": {"factor_vae": 0.82, "beta_vae": 0.63, "vae": 0.63},
    "mig": {"beta_tcvae": 0.45, "beta_vae": 0.21, "vae": 0.10},
}
TABLE_START = "<!-- metrics-table:start (written by run.py; edits inside are overwritten) -->"
TABLE_END = "<!-- metrics-table:end -->"


# -- data ----------------------------------------------------------------------------------------
def load_dataset(name: str, cache_dir: Path, num_images: int, image_size: int = 64, data_seed: int = 0):
    """``(metric dataset, training images (n, H, W, C) uint8)`` for ``name``.

    dSprites: ``num_images`` factor combinations drawn uniformly (``data_seed``), rendered on demand;
    seekavoid-factors: the whole grid (``num_images`` is ignored), cached in ``cache_dir``.
    """
    import envs

    if name == "dsprites":
        data = envs.factor_dataset("dsprites", image_size=image_size)
        factors = data.sample_factors(num_images, np.random.default_rng(data_seed))
        return data, data.images(factors)
    if name == "seekavoid-factors":
        data = envs.factor_dataset("seekavoid-factors", obs_size=image_size)
        grid = envs.grid_dataset(data, cache_file=cache_dir / f"seekavoid-factors_{image_size}.npy")
        return grid, grid.grid_images
    raise ValueError(f"unknown dataset '{name}'; valid: {', '.join(DATASETS)}")


# -- one run -------------------------------------------------------------------------------------
def run_settings(args: argparse.Namespace, dataset: str, model: str, seed: int, num_images: int) -> dict:
    """Everything that decides a run's numbers; a stored JSON with other settings is recomputed."""
    config = {"latents": args.latents, **MODEL_CONFIG[model]}
    if model == "beta_tcvae":
        config["dataset_size"] = num_images
    if model == "cci_vae":  # C reaches c_max at the run's last update, whatever --steps is
        config["c_steps"] = max(0, steps_for(args, dataset) - 1)
    if model == "beta_vae_dae":  # J = the DAE through its 4th conv (64×4×4) at 64×64; the last one on smaller images
        from vision.nets import conv_channels

        config["dae_layer"] = min(4, len(conv_channels(args.image_size)))
    return {"dataset": dataset, "model": model, "seed": seed, "image_size": args.image_size,
            "steps": steps_for(args, dataset),
            "batch_size": args.batch_size, "lr": args.lr, "images": num_images, "config": config,
            "dae_steps": args.dae_steps if model == "beta_vae_dae" else None,
            "fast": args.fast, "metric_params": args.metric_params, "metric_seed": seed}


def steps_for(args: argparse.Namespace, dataset: str) -> int:
    """Training steps on ``dataset`` (``--steps-seekavoid`` overrides ``--steps`` there)."""
    if dataset == "seekavoid-factors" and args.steps_seekavoid:
        return args.steps_seekavoid
    return args.steps


def result_path(out: Path, dataset: str, model: str, seed: int) -> Path:
    return out / f"{dataset}__{model}__seed{seed}.json"


def _relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (JSONs stay valid in another checkout)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _absolute(path: str | Path) -> Path:
    """A path stored by :func:`_relative`, back as an absolute path (relative ones are under the repository)."""
    path = Path(path)
    return path if path.is_absolute() else REPO / path


def write_json(path: Path, payload: dict) -> None:
    from vision.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=_json_default) + "\n").encode())


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def train_and_score(args: argparse.Namespace, dataset: str, data, images: np.ndarray, model_name: str,
                    seed: int) -> dict:
    """Train (or reuse) one model, score it with the supervised metrics (or reuse the JSON); return the record."""
    import vision
    from darla.metrics import kl_per_latent, memoised_representation, representation_of
    from envs import GridFactorDataset
    from vision.metrics import FAST_PARAMS, evaluate_metrics
    from vision.train import train_vision

    settings = run_settings(args, dataset, model_name, seed, len(images))
    path = result_path(args.out, dataset, model_name, seed)
    if path.exists():
        record = json.loads(path.read_text())
        if _same_settings(record.get("settings", {}), settings) and _checkpoint_matches(record, settings):
            log.info("%s: finished earlier, reusing", path.name)
            return record
        # other settings, or the checkpoint is gone or was trained on by another run sharing --work (UDR
        # reloads every seed's model): train and score again
    work = args.work / dataset / model_name / f"seed{seed}"
    timing_file = work / "train_seconds.json"
    start = time.perf_counter()
    ckpt = train_vision(model_name, images, work, steps=settings["steps"], batch_size=args.batch_size, lr=args.lr,
                        seed=seed, device="cpu", config=dict(settings["config"]), dae_steps=args.dae_steps,
                        probe=False, progress=args.progress)
    elapsed = time.perf_counter() - start
    if elapsed > 5.0 or not timing_file.exists():  # a reused checkpoint keeps the time it was trained in
        write_json(timing_file, {"seconds": elapsed})
    train_seconds = json.loads(timing_file.read_text())["seconds"]

    model = vision.load(ckpt)
    represent = representation_of(model)
    if isinstance(data, GridFactorDataset):
        represent = memoised_representation(represent, data.grid_images)
    start = time.perf_counter()
    results = evaluate_metrics(data, represent, metrics=SUPERVISED, seed=seed, fast=args.fast,
                               params=args.metric_params)
    metric_seconds = time.perf_counter() - start
    kl = kl_per_latent(model, images[np.random.default_rng(seed).choice(len(images), min(2000, len(images)), replace=False)])
    record = {
        "settings": settings,
        "checkpoint": _relative(ckpt),
        "metric_params": {m: {**(FAST_PARAMS[m] if args.fast else {}), **(args.metric_params or {}).get(m, {})}
                          or "published defaults" for m in SUPERVISED},
        "train_seconds": round(train_seconds, 1),
        "metric_seconds": round(metric_seconds, 1),
        "kl_per_latent": None if kl is None else [round(float(v), 4) for v in kl],
        "active_latents": None if kl is None else int((kl > 0.01).sum()),
        "results": results,
    }
    write_json(path, record)
    log.info("%s: train %.0f s, metrics %.0f s", path.name, train_seconds, metric_seconds)
    return record


def _same_settings(stored: dict, settings: dict) -> bool:
    """Whether a stored run was made with ``settings`` (records from before ``image_size`` was stored
    were all 64 px)."""
    return {"image_size": 64, **stored} == json.loads(json.dumps(settings))


def _checkpoint_matches(record: dict, settings: dict) -> bool:
    """The record's checkpoint still exists and holds exactly ``settings['steps']`` steps (the work
    directory is shared by runs with other ``--out``, which may have trained it further)."""
    from vision.checkpoint import CheckpointError, read_meta

    ckpt = _absolute(record.get("checkpoint", ""))
    try:
        return read_meta(ckpt).get("extra", {}).get("train", {}).get("steps") == settings["steps"]
    except CheckpointError:  # missing or unreadable checkpoint
        return False


def udr_of_seeds(data, records: list[dict], seed: int = 0, num_points: int = 1000) -> dict:
    """UDR (Duan et al. 2020) across the seeds of one model: the same ``num_points`` images encoded by
    each, Lasso similarity, latents with KL ≤ 0.01 left out (the paper's filter)."""
    from darla.metrics import udr_of_checkpoints

    rng = np.random.default_rng([seed, 2020])
    images = data.images(data.sample_factors(num_points, rng))
    result = udr_of_checkpoints(images, [_absolute(r["checkpoint"]) for r in records], seed=seed)
    result["seeds"] = [r["settings"]["seed"] for r in records]
    return result


# -- summary and README --------------------------------------------------------------------------
def aggregate(records: list[dict], udr: dict[tuple[str, str], dict]) -> dict:
    """``{dataset: {model: {column: {"mean", "std", "values"}}, ...}}`` over seeds; UDR's values are the
    per-seed model scores, its mean the model's UDR."""
    summary: dict = {}
    for r in records:
        s = r["settings"]
        entry = summary.setdefault(s["dataset"], {}).setdefault(s["model"], {"seeds": [], "train_seconds": [],
                                                                            "metric_seconds": [],
                                                                            "active_latents": []})
        entry["seeds"].append(s["seed"])
        entry["train_seconds"].append(r["train_seconds"])
        entry["metric_seconds"].append(r["metric_seconds"])
        entry["active_latents"].append(r["active_latents"])
        for metric, key, _ in COLUMNS:
            if metric in r["results"]:
                entry.setdefault(f"{metric}.{key}", []).append(float(r["results"][metric][key]))
    for (dataset, model), result in udr.items():
        summary[dataset][model]["udr.udr"] = list(result["model_scores"])
        summary[dataset][model]["udr_pairwise"] = result["pairwise"]
    for models in summary.values():
        for entry in models.values():
            for metric, key, _ in COLUMNS:
                values = entry.get(f"{metric}.{key}")
                if isinstance(values, list):
                    # sample std over seeds (ddof 1); 0 for a single seed
                    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                    entry[f"{metric}.{key}"] = {"mean": float(np.mean(values)), "std": std, "values": values}
    return summary


def _cell(stats: dict | None) -> str:
    if not stats:
        return "–"
    if len(stats["values"]) == 1:
        return f"{stats['mean']:.2f}"
    return f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def markdown_tables(summary: dict) -> str:
    """One Markdown table per dataset: mean ± std over seeds per metric; dSprites rows also give the
    published reference points."""
    parts = []
    for dataset, models in summary.items():
        head = ["model", "seeds"] + [title for _, _, title in COLUMNS] + ["active latents", "train s/run"]
        lines = [f"**{dataset}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for model, entry in models.items():
            row = [model, str(len(entry["seeds"]))] + [_cell(entry.get(f"{m}.{k}")) for m, k, _ in COLUMNS]
            active = [a for a in entry["active_latents"] if a is not None]
            row.append("/".join(str(a) for a in active) if active else "–")
            row.append(f"{np.mean(entry['train_seconds']):.0f}")
            lines.append("| " + " | ".join(row) + " |")
        if dataset == "dsprites":
            lines += ["", "Published dSprites reference points (300k iterations, original dSprites):", "",
                      "| model | FactorVAE score | MIG |", "|---|---|---|"]
            for model in ("vae", "beta_vae", "beta_tcvae", "factor_vae"):
                fv = PUBLISHED["factor_vae"].get(model)
                mg = PUBLISHED["mig"].get(model)
                lines.append(f"| {model} | {'–' if fv is None else f'{fv:.2f}'} | {'–' if mg is None else f'{mg:.2f}'} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def rewrite_table_section(readme: Path, table: str) -> None:
    """Replace the text between :data:`TABLE_START` and :data:`TABLE_END` in ``readme`` (appending the
    markers if missing), atomically."""
    from darla.report import rewrite_marked_section

    rewrite_marked_section(readme, TABLE_START, TABLE_END, table, default="# Disentanglement metrics\n")


# -- command line ----------------------------------------------------------------------------------
def _csv(kind: Callable):
    return lambda text: [kind(t.strip()) for t in text.split(",") if t.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE, help="JSONs, summary.json and README.md go here")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "metrics", help="training runs (outside git)")
    p.add_argument("--cache", type=Path, default=HERE / ".cache", help="rendered seekavoid-factors grid (outside git)")
    p.add_argument("--datasets", type=_csv(str), default=list(DATASETS))
    p.add_argument("--models", type=_csv(str), default=None,
                   help="models to train (default: all four on dsprites, plus beta_vae_dae on seekavoid-factors)")
    p.add_argument("--seeds", type=_csv(int), default=[0, 1])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--steps-seekavoid", type=int, default=None, help="steps on seekavoid-factors (default: --steps)")
    p.add_argument("--dae-steps", type=int, default=500, help="DAE pre-training steps of beta_vae_dae")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--latents", type=int, default=10)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--dsprites-images", type=int, default=30_000)
    p.add_argument("--fast", action="store_true", help="vision.metrics.FAST_PARAMS instead of the published defaults")
    p.add_argument("--metric-params", type=json.loads, default=None,
                   help='per-metric overrides as JSON, e.g. \'{"mig": {"num_train": 2000}}\'')
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        p.error(f"unknown dataset(s) {unknown}; valid: {', '.join(DATASETS)}")
    known = sorted({m for ms in MODELS.values() for m in ms})
    if args.models is not None and any(m not in known for m in args.models):
        p.error(f"unknown model(s) {[m for m in args.models if m not in known]}; valid: {', '.join(known)}")
    return args


def models_for(dataset: str, chosen: Sequence[str] | None) -> list[str]:
    """The models trained on ``dataset``: ``chosen`` (default all) restricted to those meant for it."""
    return [m for m in MODELS[dataset] if chosen is None or m in chosen]


def main(argv: Sequence[str] | None = None) -> dict:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records, udr = [], {}
    for dataset in args.datasets:
        data, images = load_dataset(dataset, args.cache, args.dsprites_images, args.image_size)
        log.info("%s: %d training images %s", dataset, len(images), images.shape[1:])
        for model in models_for(dataset, args.models):
            per_seed = [train_and_score(args, dataset, data, images, model, seed) for seed in args.seeds]
            records += per_seed
            if len(per_seed) >= 2:
                udr[(dataset, model)] = udr_of_seeds(data, per_seed, seed=min(args.seeds))
            # after every model: a killed run still leaves a consistent summary and table
            summary = write_summary(args.out / "summary.json", aggregate(records, udr), udr)
            rewrite_table_section(args.out / "README.md", markdown_tables(summary))
    log.info("done in %.0f s; %s", time.perf_counter() - started, args.out)
    return aggregate(records, udr)


def write_summary(path: Path, summary: dict, udr: dict[tuple[str, str], dict]) -> dict:
    """Write ``summary.json``, keeping the datasets and models of an earlier summary that this run did not
    touch (so ``--datasets seekavoid-factors`` or ``--models beta_vae_dae`` alone drops no other row);
    return the merged summary.
    ``compute_seconds`` per dataset sums the recorded training and metric times of its runs (a rerun that
    reuses finished runs keeps the times they were made in)."""
    merged = {"datasets": {}, "udr": {}, "compute_seconds": {}}
    if path.exists():
        old = json.loads(path.read_text())
        merged = {k: dict(old.get(k, {})) for k in merged}
    for dataset, models in summary.items():
        merged["udr"] = {k: v for k, v in merged["udr"].items() if k not in {f"{dataset}/{m}" for m in models}}
        merged["datasets"][dataset] = {**merged["datasets"].get(dataset, {}), **models}
    merged["udr"].update({f"{d}/{m}": v for (d, m), v in udr.items()})
    for dataset, models in merged["datasets"].items():
        merged["compute_seconds"][dataset] = round(sum(sum(e["train_seconds"]) + sum(e["metric_seconds"])
                                                       for e in models.values()), 1)
    write_json(path, merged)
    return merged["datasets"]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    main()
