"""Pool the frozen-vision rows of several transfer studies of one split into one metric-vs-transfer
analysis: every distinct vision checkpoint (a model at a vision seed and settings) is one point.

A single study has one checkpoint per model, so its Spearman ρ between a disentanglement metric and
transfer rests on five to seven points. The ablations of a split (other vision seeds, β, latent counts;
each a ``run.py`` study with its own ``--out``) add checkpoints of the same split, evaluated the same
way. This script reads their ``summary.json`` files, never trains or evaluates anything, and writes

* ``--out/pooled.json``: per point its study, model, vision seed, settings, checkpoint, target and hard
  ratios (95% CIs) and metrics, ``rank_correlations`` over the points, and ``across_vision_seeds``: per
  model (and setting) trained at several vision seeds, its ratios over those checkpoints with a CI that
  resamples checkpoints too (:func:`across_vision_seeds`);
* ``--out/pooled_metric_vs_transfer.png``: the metric-vs-transfer plot of the points;
* the ``pooled-table`` section of ``--out/README.md``.

Run from the repository root after the studies, e.g.::

    python results/transfer/pool.py --studies results/transfer/camera results/transfer/camera/vision-seed1 \\
        results/transfer/camera/ablations/* --out results/transfer/camera

Points share stage-1 frames (and the β-VAE_DAE ablations one DAE), so they are not independent
samples: read the p-values as descriptive.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import shlex
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("results.transfer.pool")

HERE = Path(__file__).resolve().parent
TABLE_START = "<!-- pooled-table:start (written by pool.py; edits inside are overwritten) -->"
TABLE_END = "<!-- pooled-table:end -->"
#: settings that identify a checkpoint but not what was varied (left out of a point's label)
HIDDEN_SETTINGS = ("dae_checkpoint",)
#: a point's entry for what pooling needs but ``pooled.json`` does not hold (machine paths, fingerprints)
PRIVATE = "_pool"
#: base-config entries that may differ between the checkpoints of one model pooled across vision seeds (the
#: seed itself; what a point's label already holds; what does not change a trained stage)
FREE_BASE_KEYS = (("seed",), ("device",), ("collect", "workers"), ("collect", "split"), ("vision", "model"),
                  ("vision", "model_config"), ("policy", "seeds"))


@functools.cache
def _study_module():
    """``run.py`` (a script, not a package module), loaded once."""
    spec = importlib.util.spec_from_file_location("transfer_study_run", HERE / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def point_label(model: str, vision_seed: int, settings: dict) -> str:
    """``beta_vae_dae s0 beta=4``: the model, its vision seed and the settings that differ from its defaults
    (``data=…``: stage-1 frames of other domains than the split's source)."""
    return " ".join([model, f"s{vision_seed}", *_setting_words(settings)])


def _setting_words(settings: dict) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(settings.items()) if k not in HIDDEN_SETTINGS]


def _base_fingerprint(base: dict) -> str:
    """The study's base config without :data:`FREE_BASE_KEYS`: two checkpoints of one model are pooled across
    vision seeds only if their fingerprints (vision steps, policy budget, evaluation, …) are equal."""
    base = json.loads(json.dumps(base))
    for *parents, key in FREE_BASE_KEYS:
        node = base
        for parent in parents:
            node = node.get(parent, {})
        node.pop(key, None)
    return json.dumps(base, sort_keys=True)


def load_points(studies: Sequence[Path]) -> tuple[dict, dict]:
    """The frozen-vision rows of ``studies`` keyed by :func:`point_label`, and the split they share.
    Each point keeps its row's name in the study (``row``) and, under :data:`PRIVATE` (not written to
    ``pooled.json``), the study folder as given, its label without the vision seed, and
    :func:`_base_fingerprint`.

    :raises FileNotFoundError: a study folder without ``summary.json``.
    :raises ValueError: studies of different splits, or two different checkpoints with one label.
    """
    relative = _study_module()._relative
    points: dict[str, dict] = {}
    split = None
    seen_checkpoints: dict[str, str] = {}
    for study in studies:
        path = Path(study) / "summary.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: pass study folders written by results/transfer/run.py "
                                    f"(its --out), e.g. --studies results/transfer/camera")
        summary = json.loads(path.read_text())
        this_split = summary.get("split", {"name": "room"})
        if split is None:
            split = this_split
        elif this_split.get("name") != split.get("name") or this_split.get("policy") != split.get("policy"):
            raise ValueError(f"{path} is a study of split {this_split.get('name')!r} (policies in "
                             f"{this_split.get('policy')!r}), the first study's is {split.get('name')!r} "
                             f"({split.get('policy')!r}); pool studies of one split only")
        base_vision = summary["base"]["vision"]
        data = summary["base"].get("collect", {}).get("split", this_split.get("source"))
        for name, row in summary["models"].items():
            if "metrics" not in row:  # pixels: no vision checkpoint, no metrics
                continue
            model = row["model"]
            settings = dict(base_vision.get("model_config") or {}) if model == base_vision["model"] else {}
            shown = settings if data == this_split.get("source") else {**settings, "data": data}
            label = point_label(model, summary["vision_seed"], shown)
            checkpoint = row.get("vision_checkpoint", f"{path}:{name}")
            if checkpoint in seen_checkpoints:
                log.warning("%s: %s is the checkpoint of %s already pooled; kept once", path, name,
                            seen_checkpoints[checkpoint])
                continue
            if label in points:
                raise ValueError(f"{path}: {name} and {points[label]['study']} are different checkpoints with the "
                                 f"same label {label!r}; pool each setting once")
            seen_checkpoints[checkpoint] = label
            points[label] = {**row, "study": relative(Path(study)), "row": name, "vision_seed": summary["vision_seed"],
                             "settings": settings, "stage1_data": data,
                             PRIVATE: {"dir": Path(study), "variant": " ".join([model, *_setting_words(shown)]),
                                       "config": _base_fingerprint({**summary["base"], "algo": row.get("algo")})}}
    if not points:
        raise ValueError(f"no frozen-vision rows in {[str(s) for s in studies]}: "
                         "pixels-only studies have no metrics to pool")
    return points, split


def across_vision_seeds(points: dict, split: dict, n_boot: int = 10_000) -> dict:
    """Per model and setting with two or more vision seeds: the target and hard ratios over its checkpoints.

    Each checkpoint is one group of :func:`agents.stats.hierarchical_ratio_ci`: the estimate weighs the
    checkpoints equally, and the interval resamples checkpoints, then policy seeds and episodes within each
    (with two or three checkpoints it is about their range, not a 95% CI). Checkpoints are grouped by
    model, settings and stage-1 data, and only if their studies' other settings agree
    (:func:`_base_fingerprint`); a model with several such configurations gets one group per configuration.
    Reads each point's ``evaluation.json`` (copied into its study folder by ``run.py``).

    :raises FileNotFoundError: a study folder without its rows' ``evaluation.json``.
    """
    from agents.stats import hierarchical_ratio_ci

    study = _study_module()
    target_domain, scores = study.headline_target({"split": split}), study.domain_scores
    groups: dict[tuple[str, str], list[str]] = {}
    for label, row in points.items():
        groups.setdefault((row[PRIVATE]["variant"], row[PRIVATE]["config"]), []).append(label)
    configs: dict[str, int] = {}
    out = {}
    for (name, _), labels in groups.items():
        configs[name] = configs.get(name, 0) + 1
        if configs[name] > 1:
            log.warning("%s: studies with other settings (vision steps, policy budget, evaluation, …) than %s's "
                        "first group; pooled separately as %s (config %d)", labels, name, name, configs[name])
            name = f"{name} (config {configs[name]})"
        if len({points[label]["vision_seed"] for label in labels}) < 2:
            continue
        evaluations = []
        for label in labels:
            path = points[label][PRIVATE]["dir"] / points[label]["row"] / "evaluation.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist: {label}'s study was not written by run.py "
                                        "(it copies each row's evaluation.json into <--out>/<model>/)")
            evaluations.append(json.loads(path.read_text()))
        entry = {"points": labels, "vision_seeds": [points[label]["vision_seed"] for label in labels],
                 "policy_seeds": [len(e["policies"]) for e in evaluations]}
        hard = (points[labels[0]].get("hard") or {}).get("domains") or []
        if any(((points[label].get("hard") or {}).get("domains") or []) != hard for label in labels):
            log.warning("%s: the checkpoints' studies name different hard domains; %s is pooled over %s", name,
                        name, hard)
        for key, domains in (("target", [target_domain]), ("hard", hard)):
            if domains and all(all(d in e["returns"] for d in domains) for e in evaluations):
                entry[key] = hierarchical_ratio_ci([scores(e, domains) for e in evaluations],
                                                   [scores(e, e["source"]) for e in evaluations],
                                                   n_boot=n_boot, rng=0)
        out[name] = entry
    return out


def seeds_table(groups: dict) -> str:
    lines = ["| model (settings) | vision seeds | policy seeds | target/source per checkpoint | target/source, pooled "
             "[bootstrap interval] | hard/source, pooled [bootstrap interval] |", "|---|---|---|---|---|---|"]
    for name, g in groups.items():
        cells = [name, ", ".join(map(str, g["vision_seeds"])), ", ".join(map(str, g["policy_seeds"]))]
        t, h = g.get("target"), g.get("hard")
        cells.append(", ".join(f"{r:.2f}" for r in t["group_ratios"]) if t else "–")
        for e in (t, h):
            cells.append(f"{e['ratio']:.2f} [{e['ci'][0]:.2f}, {e['ci'][1]:.2f}]" if e else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(points: dict, study) -> str:
    head = ["point (model, vision seed, settings)", "study", "target/source", "hard/source"] + \
           [label for _, _, label in study.METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in points.items():
        cells = [label, f"`{row['study']}`", study._est((row.get("target") or {}).get("ratio")),
                 study._est((row.get("hard") or {}).get("ratio"))]
        for metric, key, _ in study.METRICS:
            v = study.metric_value(row.get("metrics"), metric, key)
            cells.append("–" if v is None else f"{v:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def correlations_table(correlations: dict) -> str:
    lines = ["| metric vs ratio | Spearman ρ | p | points |", "|---|---|---|---|"]
    for name, c in correlations.items():
        lines.append(f"| {name} | {c['rho']:.2f} | {c['p']:.3f} | {c['n_models']} |")
    return "\n".join(lines) + "\n"


def pool(args: argparse.Namespace) -> dict:
    from darla.report import rewrite_marked_section

    study = _study_module()
    points, split = load_points(args.studies)
    across = across_vision_seeds(points, split)
    points = {label: {k: v for k, v in row.items() if k != PRIVATE} for label, row in points.items()}
    pooled = {"command": "python results/transfer/pool.py " + " ".join(shlex.quote(a) for a in args.argv),
              "split": split, "studies": [study._relative(Path(s)) for s in args.studies], "points": points}
    pooled["rank_correlations"] = study.rank_correlations({"models": points})
    pooled["across_vision_seeds"] = across
    args.out.mkdir(parents=True, exist_ok=True)
    study._write_json(args.out / "pooled.json", pooled)
    study.metric_vs_transfer_png({"split": split, "models": points}, args.out / "pooled_metric_vs_transfer.png")
    table = markdown_table(points, study) + "\n" + correlations_table(pooled["rank_correlations"])
    if pooled["across_vision_seeds"]:
        table += ("\nModels with more than one vision seed: the ratio over their checkpoints (equal weight per "
                  "checkpoint). The interval resamples checkpoints, then policy seeds and episodes; with two or "
                  "three checkpoints it is about their range and undercovers, not a 95% CI:\n\n"
                  + seeds_table(pooled["across_vision_seeds"]))
    rewrite_marked_section(args.out / "README.md", TABLE_START, TABLE_END, table, default="# Pooled transfer study\n")
    return pooled


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--studies", type=Path, nargs="+", required=True, help="study folders (run.py --out) of one split")
    p.add_argument("--out", type=Path, required=True, help="where pooled.json, the plot and README.md go")
    return _study_module().parse_recorded(p, argv)


def main(argv: Sequence[str] | None = None) -> dict:
    return _study_module().script_main(pool, parse_args(argv))


if __name__ == "__main__":
    main()
