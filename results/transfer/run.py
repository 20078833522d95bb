"""The transfer study: vision models × training seeds through ``darla sweep``, the disentanglement
metrics of each vision on ``seekavoid-factors``, and the tables and plot of ``README.md``.

1. ``darla sweep`` (:func:`darla.sweep.run_sweep`) trains everything into ``--work``: stage-1 frames
   once, one vision checkpoint per model (the base config's ``seed``), one PPO policy per training seed,
   then evaluates each model's policies together in the base config's domains (default here: source,
   target and the harder shifted targets, 40 paired episodes each). Resumable: rerun the same command.
2. Each vision checkpoint is scored with the supervised metrics (``darla metrics --fast`` settings) on
   ``seekavoid-factors`` (``--out/metrics/``), and with :func:`vision.probe.probe_transfer`: linear probes of
   the task factors fit on 4,000 of its stage-1 frames and scored on 4,000 random-policy frames of
   ``A-changed`` and of the hard targets (``--out/probe/``). Both are reused while the checkpoint is the same.
3. ``--out/summary.json``: per vision model (``pixels`` included) the source return, the DARLA target
   (``A-changed``), the mean over the harder shifted targets, their target/source ratios, all with 95%
   stratified-bootstrap CIs over seeds × episodes, plus seeds, steps and metrics; ``metric_vs_transfer.png``;
   and the table section of ``--out/README.md`` between the ``transfer-table`` markers.

Run from the repository root::

    python results/transfer/run.py --models pixels,ae,dae,vae,beta_vae,beta_vae_dae,beta_tcvae,factor_vae \\
        --seeds 0,1,2,3,4 --work runs/transfer --out results/transfer

``--split camera`` runs the same study on the camera split (``cam-source`` / ``cam-target`` /
``cam-hard`` of ``envs.seekavoid.domains``: camera height instead of the room style is the shifted factor)::

    python results/transfer/run.py --split camera --seeds 0,1,2,3,4 --work runs/camera --out results/transfer/camera

Any config field can be set as in ``darla run`` (``--set policy.steps=150000``, ``--config FILE``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("PYGLET_HEADLESS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

log = logging.getLogger("results.transfer")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_MODELS = ("pixels", "ae", "dae", "vae", "beta_vae", "beta_vae_dae", "beta_tcvae", "factor_vae")
#: The DARLA target domain (pair A in the changed room): the headline target of the room split.
DARLA_TARGET = "A-changed"
#: ``--split``: stage-1 (and, unless ``policy`` names fewer, policy) source split, target split and hard
#: split of ``envs.seekavoid.domains``. ``room`` is DARLA's split (the room style is the shifted factor); ``camera``
#: shifts the camera height instead (pair B is seen with the camera raised, pair A only at the default
#: height; the target is pair A with the camera raised); ``camera-narrow`` keeps camera's stage 1 but
#: trains the policies at the default camera height only (A-default, B-default), so only the vision has
#: seen the raised camera; ``room-narrow`` does the same for the room split: stage 1 on ``source`` (pair B
#: in both rooms), policies in A-default and B-default only, so only the vision has seen the changed room.
SPLITS = {
    "room": {"source": "source", "policy": "", "target": "target", "hard": "hard"},
    "room-narrow": {"source": "source", "policy": "A-default,B-default", "target": "target", "hard": "hard"},
    "camera": {"source": "cam-source", "policy": "", "target": "cam-target", "hard": "cam-hard"},
    "camera-narrow": {"source": "cam-source", "policy": "A-default,B-default", "target": "cam-target",
                      "hard": "cam-hard"},
}
#: ``(metric, score key, label)``: the metrics plotted against transfer.
METRICS = (
    ("beta_vae", "eval_accuracy", "β-VAE score"),
    ("factor_vae", "eval_accuracy", "FactorVAE score"),
    ("mig", "mig", "MIG"),
    ("dci", "disentanglement", "DCI disentanglement"),
    ("sap", "sap", "SAP"),
)
TABLE_START = "<!-- transfer-table:start (written by run.py; edits inside are overwritten) -->"
TABLE_END = "<!-- transfer-table:end -->"


# -- statistics over a group of domains ----------------------------------------------------------------
def domain_scores(evaluation: dict, domains: Sequence[str]) -> np.ndarray:
    """Mean return over ``domains`` per (policy seed, episode) of an ``evaluation.json``: episodes are paired
    across domains (same episode seeds), so the mean keeps the ``(seeds, episodes)`` shape."""
    return np.mean([np.asarray(evaluation["returns"][d], dtype=float) for d in domains], axis=0)


def group_estimates(evaluation: dict, domains: Sequence[str], n_boot: int = 2000, seed: int = 0) -> dict | None:
    """Mean return over ``domains`` (per seed and episode, episodes paired across domains) and its
    target/source ratio, with stratified-bootstrap CIs as in ``darla evaluate``; ``None`` if none was
    evaluated."""
    from agents.stats import ratio_ci, summarize

    names = [d for d in domains if d in evaluation["returns"]]
    if not names:
        return None
    rng = np.random.default_rng(seed)
    scores = domain_scores(evaluation, names)
    source = domain_scores(evaluation, evaluation["source"])
    s = summarize(scores, n_boot=n_boot, rng=rng)
    r = ratio_ci(scores, source, n_boot=n_boot, rng=rng)
    return {"domains": names, "mean": s["mean"], "ci": s["ci"], "iqm": s["iqm"], "iqm_ci": s["iqm_ci"],
            "seed_means": s["seed_means"],
            "ratio": {"mean": r["ratio"], "ci": r["ci"], "undefined_fraction": r["undefined_fraction"]}}


def model_row(evaluation: dict, n_boot: int = 2000, target: str = DARLA_TARGET,
              hard: Sequence[str] | None = None) -> dict:
    """Source, the headline ``target``, the ``hard`` targets (default: every other target) and per-domain
    means of one model's ``evaluation.json``."""
    source = group_estimates(evaluation, evaluation["source"], n_boot)
    hard = [d for d in evaluation["target"] if d != target and (hard is None or d in hard)]
    return {
        "source": {k: source[k] for k in ("domains", "mean", "ci", "iqm", "iqm_ci", "seed_means")},
        "target": group_estimates(evaluation, [target], n_boot),
        "hard": group_estimates(evaluation, hard, n_boot),
        "per_domain": {n: {"mean": s["mean"], "ci": s["ci"], "split": s["split"]}
                       for n, s in evaluation["summary"].items()},
        "episodes": evaluation["episodes"],
        "n_seeds": len(evaluation["policies"]),
    }


# -- metrics of the vision checkpoints -------------------------------------------------------------------
def vision_metrics(checkpoint: Path, out_json: Path, grid_cache: Path, seed: int = 0) -> dict:
    """``darla metrics --fast`` of ``checkpoint`` on seekavoid-factors, reused while ``out_json`` names the
    same checkpoint directory (stage directories are keyed by their config)."""
    from darla.metrics import checkpoint_metrics

    rel = _relative(checkpoint)
    if out_json.exists():
        record = json.loads(out_json.read_text())
        if record.get("checkpoint") == rel and record.get("seed") == seed:
            return record
    start = time.perf_counter()
    checkpoint_metrics(checkpoint, "seekavoid-factors", seed=seed, out=out_json, fast=True, grid_cache=grid_cache)
    record = json.loads(out_json.read_text())
    record.update(checkpoint=rel, seconds=round(time.perf_counter() - start, 1))
    _write_json(out_json, record)
    return record


def probe_frames(work: Path, name: str, domains: str, obs_size: int, layout: str, frames: int = 4000,
                 seed: int = 777):
    """Frames of ``domains`` (target domains allowed: analysis data, never trained on) for the probes, in
    the study's layout and image size (one directory per collection, so a rerun with other settings
    collects anew instead of failing on the old one)."""
    from envs.collect import collect_frames
    from envs.frames import FrameDataset

    out = collect_frames(work / "probe-frames" / f"{name}-{layout}-{obs_size}px-{frames}-s{seed}", frames=frames,
                         split=domains, workers=1, seed=seed, obs_size=obs_size, layout=layout,
                         allow_target=True, progress=False)
    return FrameDataset(out)


def _encode(model, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
    from darla.metrics import representation_of

    return representation_of(model, batch_size=batch_size)(np.asarray(frames))


def vision_probe_transfer(checkpoint: Path, source, targets: dict, out_json: Path, seed: int = 0,
                          source_rows: int = 4000) -> dict:
    """:func:`vision.probe.probe_transfer` of the task factors: probes fit on ``source_rows`` stage-1
    frames, scored on each target frame set; reused while ``out_json`` names the same checkpoint."""
    import vision
    from envs.seekavoid import TASK_FACTORS
    from vision.probe import probe_transfer

    rel = _relative(checkpoint)
    if out_json.exists():
        record = json.loads(out_json.read_text())
        if (record.get("checkpoint") == rel and set(record.get("targets", {})) == set(targets)
                and record.get("source_rows") == min(source_rows, len(source))):
            return record
    model = vision.load(checkpoint)
    idx = np.sort(np.random.default_rng(seed).choice(len(source), min(source_rows, len(source)), replace=False))
    src_factors = np.asarray(source.factors)[idx]
    src_rows = {k: v[idx] for k, v in source.probe_rows().items()}
    src_feats = _encode(model, source.frames[idx])
    names = list(source.factor_names)
    record = {"checkpoint": rel, "factors": list(TASK_FACTORS), "source_rows": len(idx), "targets": {}}
    for label, data in targets.items():
        result = probe_transfer(src_feats, src_factors, _encode(model, data.frames[:]), np.asarray(data.factors), names,
                                probe=list(TASK_FACTORS), seed=seed, source_rows=src_rows,
                                target_rows=data.probe_rows())
        record["targets"][label] = result
    _write_json(out_json, record)
    return record


def metric_value(record: dict | None, metric: str, key: str) -> float | None:
    if not record:
        return None
    value = record.get("results", {}).get(metric, {}).get(key)
    return None if value is None else float(value)


# -- outputs -----------------------------------------------------------------------------------------
def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _write_json(path: Path, payload: Any) -> None:
    from agents.evaluate import strict_json
    from vision.checkpoint import atomic_write_bytes

    # NaN (an undefined ratio) becomes null: strict JSON readers reject bare NaN tokens
    text = json.dumps(strict_json(json.loads(json.dumps(payload, default=float))), indent=2, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def _est(e: dict | None, key: str = "mean", ci: str = "ci") -> str:
    if not e or e.get(key) is None or not np.isfinite(e[key]):
        return "–"  # not evaluated, or a ratio with a source return <= 0
    lo, hi = (e.get(ci) or [None, None])[:2]
    if lo is None or hi is None:
        return f"{e[key]:.2f}"
    return f"{e[key]:.2f} [{lo:.2f}, {hi:.2f}]"


def _learned(steps: list[int | None] | None) -> str:
    """``"18k (5/5)"``: median env steps to a 0.9 training return over the seeds that reached it."""
    if not steps:
        return "–"
    reached = [s for s in steps if s is not None]
    if not reached:
        return f"never (0/{len(steps)})"
    return f"{np.median(reached) / 1000:.0f}k ({len(reached)}/{len(steps)})"


def headline_target(summary: dict) -> str:
    """The study's headline target domain (summaries written before ``--split`` existed: ``A-changed``)."""
    return summary.get("split", {}).get("target_domain", DARLA_TARGET)


def markdown_table(summary: dict) -> str:
    """The study's main table: one row per vision model."""
    target_name = headline_target(summary)
    head = ["vision", "seeds", "source", f"target ({target_name})", "target/source", "hard targets",
            "hard/source"] + [label for _, _, label in METRICS] + ["probe source", f"probe {target_name}", "probe hard"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, row in summary["models"].items():
        cells = [model, str(row["n_seeds"]), _est(row["source"]), _est(row["target"]),
                 _est((row["target"] or {}).get("ratio")), _est(row["hard"]), _est((row["hard"] or {}).get("ratio"))]
        for metric, key, _ in METRICS:
            v = metric_value(row.get("metrics"), metric, key)
            cells.append("–" if v is None else f"{v:.2f}")
        for side, target in (("source", target_name), ("target", target_name), ("target", "hard")):
            v = probe_value(row.get("probe_transfer"), target, side)
            cells.append("–" if v is None else f"{v:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per domain (mean return over seeds × episodes), and the env steps after which the training return (stochastic actions) first reached 0.9 (median over the seeds that did):", ""]
    domains = list(next(iter(summary["models"].values()))["per_domain"])
    lines += ["| vision | " + " | ".join(domains) + " | training return 0.9 at |", "|---|" + "---|" * (len(domains) + 1)]
    for model, row in summary["models"].items():
        lines.append(f"| {model} | " + " | ".join(f"{row['per_domain'][d]['mean']:.2f}"
                                                 if d in row["per_domain"] else "–" for d in domains)
                     + f" | {_learned(row.get('learned_by'))} |")
    return "\n".join(lines) + "\n"


def probe_value(record: dict | None, target: str, side: str) -> float | None:
    """Mean normalised task-factor probe score (``side`` = source held-out or target) of one target set."""
    if not record or target not in record.get("targets", {}):
        return None
    v = record["targets"][target]["mean_normalized"][side]
    return None if v is None or not np.isfinite(v) else float(v)


def rank_correlations(summary: dict) -> dict:
    """Spearman ρ across vision models between each metric and the target and hard ratios."""
    from scipy.stats import spearmanr

    out = {}
    for metric, key, label in METRICS:
        for which in ("target", "hard"):
            xs, ys = [], []
            for row in summary["models"].values():
                x = metric_value(row.get("metrics"), metric, key)
                y = ((row.get(which) or {}).get("ratio") or {}).get("mean")
                if x is not None and y is not None and np.isfinite([x, y]).all():
                    xs.append(x)
                    ys.append(y)
            if len(xs) >= 3 and np.ptp(xs) > 0 and np.ptp(ys) > 0:
                rho, p = spearmanr(xs, ys)
                out[f"{label} vs {which}/source"] = {"rho": float(rho), "p": float(p), "n_models": len(xs)}
    return out


def metric_vs_transfer_png(summary: dict, path: Path) -> Path:
    """One panel per metric: the metric of each vision (x) against its target/source ratio (y, 95% CI),
    for the DARLA target and the hard targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target_name = headline_target(summary)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.4), sharey=True)
    for ax, (metric, key, label) in zip(axes, METRICS):
        for which, marker, colour in (("target", "o", "tab:blue"), ("hard", "s", "tab:orange")):
            for model, row in summary["models"].items():
                x = metric_value(row.get("metrics"), metric, key)
                r = (row.get(which) or {}).get("ratio") or {}
                if x is None or r.get("mean") is None:
                    continue
                if not np.isfinite(r["mean"]):
                    continue  # source return <= 0: no ratio to plot
                lo, hi = r["ci"]
                # a percentile CI of a ratio whose resamples were partly undefined can miss the point estimate
                yerr = np.clip(np.nan_to_num([[r["mean"] - lo], [hi - r["mean"]]]), 0, None)
                ax.errorbar([x], [r["mean"]], yerr=yerr, fmt=marker, color=colour,
                            capsize=2, label=target_name if which == "target" else "hard targets")
                ax.annotate(model, (x, r["mean"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.axhline(1.0, color="grey", lw=0.5)
    axes[0].set_ylabel("target / source return")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="upper center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    import io

    from vision.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def rewrite_table_section(readme: Path, table: str) -> None:
    """Replace the text between :data:`TABLE_START` and :data:`TABLE_END` in ``readme`` (appending the
    markers if missing), atomically."""
    from darla.report import rewrite_marked_section

    rewrite_marked_section(readme, TABLE_START, TABLE_END, table, default="# Transfer study\n")


# -- the study -----------------------------------------------------------------------------------------
def copy_artifacts(row: dict, dest: Path, vision_dir: Path | None, policy_dirs: list[Path]) -> list[str]:
    """Copy what a reader wants to see of one model next to the summary: the evaluation table, JSON and
    plot, the vision model's traversal / probe table / SCAN demo, and each seed's learning curve."""
    import shutil

    eval_dir = REPO / row["evaluation"]  # an absolute path stays as it is
    wanted = [(eval_dir / n, n) for n in ("evaluation.md", "evaluation.json", "transfer.png")]
    if vision_dir is not None:
        wanted += [(vision_dir / n, n) for n in ("traversal.png", "traversal.md", "scan_demo.png")]
        wanted += [(vision_dir / "probe.md", "vision_probe.md")]
    wanted += [(Path(d) / "learning_curve.csv", f"learning_curve_s{s}.csv") for d, s in zip(policy_dirs, row["seeds"])]
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for src, name in wanted:
        if src.exists():
            shutil.copyfile(src, dest / name)
            copied.append(name)
    return copied


def learned_by(curve_csv: Path, level: float = 0.9) -> int | None:
    """Env steps after which a policy's training return (``learning_curve.csv``, stochastic actions) first
    reached ``level`` of the best possible (+1); ``None`` if it never did within its budget."""
    import csv

    with open(curve_csv, newline="") as f:
        for row in csv.DictReader(f):
            if float(row["mean_return"]) >= level:
                return int(row["timesteps"])
    return None


def stage_seconds(stage_dirs: Sequence[Path | None]) -> dict:
    """Wall-clock seconds recorded by the finished stages ``stage_dirs`` (each counted once), by stage kind;
    other stages under the same root (earlier runs with other settings) are not counted."""
    totals: dict[str, float] = {}
    for done in sorted({Path(d) / "DONE.json" for d in stage_dirs if d is not None}):
        if not done.exists():
            continue
        record = json.loads(done.read_text())
        kind = record["stage"].split("-")[0]
        totals[kind] = totals.get(kind, 0.0) + float(record.get("seconds", 0.0))
    return {k: round(v, 1) for k, v in totals.items()}


def run_study(args: argparse.Namespace) -> dict:
    from darla.config import load_config
    from darla.pipeline import train_stages
    from darla.sweep import PIXELS, Trial, run_sweep, trial_config

    split = SPLITS[args.split]
    source_split, target_split, hard_split = split["source"], split["target"], split["hard"]
    from envs.seekavoid.domains import get_split

    (target_domain,) = (d.name for d in get_split(target_split))
    hard_domains = [d.name for d in get_split(hard_split)]
    base = load_config(args.config, [f"collect.split={source_split}", f"policy.domains={split['policy']}",
                                     f"evaluate.domains={source_split},{target_split},{hard_split}", *args.overrides])
    sweep_summary = json.loads(run_sweep(base, args.work, models=args.models, seeds=args.seeds, algos=args.algos,
                                         use_ray=False if args.no_ray else None,
                                         progress=args.progress).read_text())
    metrics_dir = args.out / "metrics"
    probe_targets = None
    rows: dict[str, dict] = {}
    used_stages: list[Path | None] = []
    for key, entry in sweep_summary["results"].items():
        model = entry["model"]
        name = model if len(args.algos or [None]) <= 1 else key.replace("/", "-")  # one row per (model, algo)
        evaluation = json.loads((Path(entry["evaluation"]) / "evaluation.json").read_text())
        row = {"model": model, "algo": entry["algo"], "seeds": entry["seeds"], "steps": entry["steps"],
               "evaluation": _relative(Path(entry["evaluation"])), **model_row(evaluation, target=target_domain, hard=hard_domains)}
        config = trial_config(base, Trial(model, entry["seeds"][0], entry["algo"]))
        config = dataclasses.replace(config, policy=dataclasses.replace(config.policy, seeds=entry["seeds"]))
        trained = train_stages(config, args.work / "stages", progress=False)  # all reused
        row["files"] = copy_artifacts(row, args.out / name, trained["vision_dir"], trained["policy_dirs"])
        row["learned_by"] = [learned_by(Path(d) / "learning_curve.csv") for d in trained["policy_dirs"]]
        used_stages += [trained["data_dir"], trained["vision_dir"], *trained["policy_dirs"], Path(entry["evaluation"])]
        if model != PIXELS:
            row["vision_checkpoint"] = _relative(trained["vision_dir"] / "model")
            row["metrics"] = vision_metrics(trained["vision_dir"] / "model", metrics_dir / f"{model}.json",
                                            args.work / "seekavoid-factors-grid.npy", seed=base.seed)
            if probe_targets is None:
                probe_targets = {name: probe_frames(args.work, spec, spec, base.env.obs_size, base.env.layout,
                                                    frames=args.probe_frames)
                                 for name, spec in ((target_domain, target_domain), ("hard", hard_split))}
            from envs.frames import FrameDataset

            row["probe_transfer"] = vision_probe_transfer(trained["vision_dir"] / "model",
                                                          FrameDataset(trained["data_dir"] / "data"), probe_targets,
                                                          args.out / "probe" / f"{model}.json", seed=base.seed,
                                                          source_rows=args.probe_frames)
        rows[name] = row
    summary = {
        "command": "python results/transfer/run.py " + " ".join(shlex.quote(a) for a in args.argv),
        "base": base.to_dict(),
        "split": {"name": args.split, "source": source_split, "policy": base.train_domains, "target": target_split,
                  "hard": hard_split, "target_domain": target_domain},
        "vision_seed": base.seed,
        "models": rows,
        "compute_seconds": stage_seconds(used_stages),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    summary["rank_correlations"] = rank_correlations(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_json(args.out / "summary.json", summary)
    metric_vs_transfer_png(summary, args.out / "metric_vs_transfer.png")
    rewrite_table_section(args.out / "README.md", markdown_table(summary))
    return summary


def _csv(kind):
    return lambda text: [kind(t.strip()) for t in text.split(",") if t.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=_csv(str), default=list(DEFAULT_MODELS))
    p.add_argument("--split", choices=list(SPLITS), default="room",
                   help="room: DARLA's split (source / target / hard); camera: cam-source / cam-target / cam-hard; "
                        "room-narrow, camera-narrow: room or camera, with policies trained in A-default and "
                        "B-default only")
    p.add_argument("--seeds", type=_csv(int), default=[0, 1, 2, 3, 4], help="policy training seeds")
    p.add_argument("--algos", type=_csv(str), default=None, help="SB3 algorithms (default: the config's, PPO)")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "transfer", help="sweep stage root (outside git)")
    p.add_argument("--out", type=Path, default=HERE, help="summary.json, the plot, metrics/ and README.md")
    p.add_argument("--config", type=Path, default=None, help="base YAML config (default: darla run's defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--probe-frames", type=int, default=4000,
                   help="frames per frame set (source, the headline target, hard) for the probe-transfer check")
    p.add_argument("--no-ray", action="store_true", help="run the trials one after another")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return parse_recorded(p, argv)


def parse_recorded(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` and keep it as ``args.argv``: the outputs record the command that wrote them."""
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def script_main(run, args: argparse.Namespace) -> Any:
    """The results scripts' entry: logging to stderr, the repository importable, then ``run(args)``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.path.insert(0, str(REPO))
    return run(args)


def main(argv: Sequence[str] | None = None) -> dict:
    return script_main(run_study, parse_args(argv))


if __name__ == "__main__":
    main()
