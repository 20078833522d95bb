"""A transfer study on an environment nobody here wrote (issue #17): vision rows × policy seeds through
``darla sweep`` on one env's ``config.yaml`` + ``domains.yaml``, a uniform-random policy on the same episode
seeds, the statistics of the SeekAvoid study (``results/transfer/``), ``darla compare``, and the results table
of the study's ``README.md``.

Each study directory (``results/oneroom/``, ``results/carracing/``) holds ``config.yaml`` (a ``darla run``
config), ``domains.yaml`` (its splits), ``README.md`` (question, protocol, results between markers) and a
``run.py`` that calls :func:`main` with the study's options. From the repository root::

    python results/oneroom/run.py                 # train + evaluate (resumable: rerun to continue), then report
    python results/oneroom/run.py --report        # only re-write the outputs from a finished run

1. :func:`darla.sweep.run_sweep` (sequential, no Ray: one core) trains into ``--work``: stage-1 frames once, one
   vision checkpoint per model (the config's ``seed``), one PPO policy per policy seed, then evaluates each row's
   policies together (deterministic, ``evaluate.episodes`` per seed and domain, the same episode seeds in every
   domain). Every stage is keyed by its config and reused on a rerun; a killed run resumes.
2. A uniform-random policy is played on every evaluated domain with the same episode seeds, ``len(seeds)``
   runs (action streams seeded 0, 1, …), so its ``(runs, episodes)`` matrices line up with the policies'. It is
   cached per domain in ``--work/random/`` (resumable too).
3. ``--out/summary.json`` and the ``README.md`` table (between the ``envstudy-table`` markers): per row the
   source and mean-target returns (mean and IQM, 95% stratified-bootstrap CIs over seeds × episodes), the
   source return above the random policy's and P(row > random) on the source, the target/source ratio (paired
   bootstrap, ``agents.stats.ratio_ci``; only where returns cannot be negative), the random-normalised ratio
   ``(target − random_target) / (source − random_source)`` with the same paired bootstrap (the random means are
   constants), per-domain means, the training returns, and the measured rates of every stage.
   ``--out/compare/``: ``darla compare`` of the rows (P(X > Y), performance profiles); with
   ``normalise_compare`` its inputs are the rows' evaluations with each domain's random mean subtracted.
   ``--out/<row>/``: the evaluation table, JSON and CSV, bar plot, learning curves, traversal.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
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

log = logging.getLogger("results.envstudy")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_MODELS = ("pixels", "vae", "beta_vae", "beta_vae_dae")
DEFAULT_SEEDS = (0, 1, 2)
TABLE_START = "<!-- envstudy-table:start (written by results/envstudy.py; edits inside are overwritten) -->"
TABLE_END = "<!-- envstudy-table:end -->"
RANDOM = "random"
N_BOOT = 2000


def _transfer():
    """``results/transfer/run.py`` (its statistics and output helpers), imported by path."""
    spec = importlib.util.spec_from_file_location("transfer_study_run", REPO / "results" / "transfer" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the random policy ---------------------------------------------------------------------------------
class RandomPolicy:
    """Uniform random actions from a copy of ``space`` seeded once (``predict`` as SB3's, for
    :func:`agents.evaluate.run_episodes`)."""

    def __init__(self, space, seed: int):
        self.space = copy.deepcopy(space)
        self.space.seed(int(seed))

    def predict(self, obs, deterministic: bool = True):
        return np.asarray(self.space.sample()), None


class ConstantPolicy:
    """The same action at every step (a reference such as CarRacing's "gas only")."""

    def __init__(self, action):
        self.action = np.asarray(action)

    def predict(self, obs, deterministic: bool = True):
        return self.action, None


def baseline_returns(config, work: Path, name: str, make_policy, runs: int, progress: bool = False) -> dict:
    """Returns of a fixed policy (``make_policy(action_space, run)``) on every domain of ``evaluate.domains``,
    episode ``i`` from ``reset(seed=config.seed + 10_000 + i)`` as in the evaluation stage:
    ``{"returns": {domain: [runs][episodes]}, "lengths": ..., "seconds": {domain: s}}``.

    One file per domain under ``work/<name>/``, keyed by the domain's full description, the episode seeds and
    the run count, so a rerun reuses what is done and a changed domain is played again."""
    from agents.evaluate import run_episodes
    from darla.pipeline import domain_catalog, evaluation_domains
    from vision.checkpoint import atomic_write_bytes

    domains, _ = evaluation_domains(config)
    catalog = domain_catalog(config)
    seed, episodes = config.seed + 10_000, config.evaluate.episodes
    out: dict[str, Any] = {"returns": {}, "lengths": {}, "seconds": {}}
    (work / name).mkdir(parents=True, exist_ok=True)
    for d in domains:
        key = {"domain": catalog.provider.describe(d), "obs_size": config.env.obs_size, "seed": seed,
               "episodes": episodes, "runs": runs}
        path = work / name / f"{d.name}.json"
        if path.exists():
            record = json.loads(path.read_text())
            if record.get("key") == key:
                for k in ("returns", "lengths", "seconds"):
                    out[k][d.name] = record[k]
                continue
        start = time.perf_counter()
        returns, lengths = [], []
        env = catalog.make([d])
        try:
            for r in range(runs):
                ret, length = run_episodes(make_policy(env.action_space, r), env, episodes, seed)
                returns.append(ret.tolist())
                lengths.append(length.tolist())
        finally:
            env.close()
        seconds = round(time.perf_counter() - start, 1)
        record = {"key": key, "returns": returns, "lengths": lengths, "seconds": seconds}
        atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
        out["returns"][d.name], out["lengths"][d.name], out["seconds"][d.name] = returns, lengths, seconds
        if progress:
            log.info("%s policy on %s: mean return %.3f (%d runs x %d episodes, %.0f s)", name, d.name,
                     float(np.mean(returns)), runs, episodes, seconds)
    return out


def random_baseline(config, work: Path, runs: int, progress: bool = False) -> dict:
    """The uniform-random policy's returns (:func:`baseline_returns`), ``runs`` runs whose action streams are
    seeded by their index only: on domains that differ from the source only in their pixels (wrappers) it plays
    exactly the source's episodes."""
    return baseline_returns(config, work, RANDOM, lambda space, r: RandomPolicy(space, r), runs, progress)


def reference_returns(config, work: Path, references: dict, progress: bool = False) -> dict:
    """Each constant-action reference ``{label: action}`` (one run: it is deterministic) on every domain."""
    return {label: baseline_returns(config, work, f"constant-{label}", lambda space, r, a=action: ConstantPolicy(a),
                                    1, progress)
            for label, action in references.items()}


# -- statistics ------------------------------------------------------------------------------------------
def _scores(returns: dict, names: Sequence[str]) -> np.ndarray:
    """Mean return over ``names`` per (seed, episode): episodes are paired across domains (same episode
    seeds), so the mean keeps the ``(seeds, episodes)`` shape."""
    return np.mean([np.asarray(returns[n], dtype=float) for n in names], axis=0)


def _summary(scores: np.ndarray, rng: np.random.Generator) -> dict:
    from agents.stats import summarize

    s = summarize(scores, n_boot=N_BOOT, rng=rng)
    return {k: s[k] for k in ("mean", "ci", "iqm", "iqm_ci", "seed_means")}


def _ratio(target: np.ndarray, source: np.ndarray, rng: np.random.Generator) -> dict:
    from agents.stats import ratio_ci

    r = ratio_ci(target, source, n_boot=N_BOOT, rng=rng)
    return {"mean": r["ratio"], "ci": r["ci"], "undefined_fraction": r["undefined_fraction"]}


def row_statistics(evaluation: dict, random: dict, raw_ratio: bool, seed: int = 0) -> dict:
    """One row's statistics from its ``evaluation.json`` and the random policy's returns (same domains and
    episode seeds): source / mean-target / per-target returns, the ratios, and the comparison with random."""
    from agents.stats import probability_of_improvement_ci

    rng = np.random.default_rng(seed)
    returns, src, tgt = evaluation["returns"], evaluation["source"], evaluation["target"]
    source = _scores(returns, src)
    rand_src = float(np.mean(_scores(random, src)))
    row: dict[str, Any] = {"n_seeds": len(evaluation["policies"]), "episodes": evaluation["episodes"],
                           "source": _summary(source, rng), "random_source": rand_src}
    row["source_minus_random"] = _summary(source - rand_src, rng)
    # P(row > random) on the source: runs = policy seeds (their mean return), against the random runs
    rand_runs = np.asarray(_scores(random, src), dtype=float).mean(axis=1, keepdims=True)
    row["p_beats_random"] = probability_of_improvement_ci(source.mean(axis=1, keepdims=True), rand_runs,
                                                          n_boot=N_BOOT, rng=rng)
    groups = {"targets": list(tgt), **{n: [n] for n in tgt}}
    row["targets"] = {}
    for name, names in groups.items():
        scores = _scores(returns, names)
        rand_t = float(np.mean(_scores(random, names)))
        entry = {"domains": names, **_summary(scores, rng), "random": rand_t,
                 "normalised_ratio": _ratio(scores - rand_t, source - rand_src, rng)}
        if raw_ratio:
            entry["ratio"] = _ratio(scores, source, rng)
        row["targets"][name] = entry
    row["per_domain"] = {n: float(np.mean(returns[n])) for n in evaluation["domains"]}
    return row


def reference_difference(evaluation: dict, reference: dict, seed: int = 0) -> dict:
    """Source return of a row minus a deterministic reference's on the same episode (paired by episode seed:
    ``row[s, i] - reference[i]``), with the stratified bootstrap over seeds × episodes."""
    src = evaluation["source"]
    diff = _scores(evaluation["returns"], src) - _scores(reference, src)[0][None, :]
    return _summary(diff, np.random.default_rng(seed))


def random_row(returns: dict, source: Sequence[str], targets: Sequence[str], seed: int = 0,
               random: dict | None = None) -> dict:
    """Source, mean-target and per-domain returns of a baseline; with ``random`` (the random policy's returns)
    also its random-normalised ratio per target (for a reference: what a policy that only does this gets)."""
    rng = np.random.default_rng(seed)
    row = {"n_runs": len(next(iter(returns.values()))), "source": _summary(_scores(returns, source), rng),
           "targets": {"targets": _summary(_scores(returns, targets), rng)},
           "per_domain": {n: float(np.mean(v)) for n, v in returns.items()}}
    if random is not None:
        src, rand_src = _scores(returns, source), float(np.mean(_scores(random, source)))
        for name, names in {"targets": list(targets), **{n: [n] for n in targets}}.items():
            scores, rand_t = _scores(returns, names), float(np.mean(_scores(random, names)))
            row["targets"].setdefault(name, {})["normalised_ratio"] = _ratio(scores - rand_t, src - rand_src, rng)
    return row


def training_returns(curve_csv: Path) -> dict | None:
    """First and last logged training return (stochastic actions) of ``learning_curve.csv``."""
    import csv

    if not curve_csv.exists():
        return None
    with open(curve_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("mean_return") not in (None, "")]
    if not rows:
        return None
    return {"first": float(rows[0]["mean_return"]), "last": float(rows[-1]["mean_return"]),
            "best": max(float(r["mean_return"]) for r in rows), "timesteps": int(rows[-1]["timesteps"])}


# -- outputs ---------------------------------------------------------------------------------------------
def _est(e: dict | None, key: str = "mean", ci: str = "ci", digits: int = 2) -> str:
    if not e or e.get(key) is None or not np.isfinite(e[key]):
        return "–"
    lo, hi = (e.get(ci) or [None, None])[:2]
    if lo is None or hi is None or not np.isfinite([lo, hi]).all():
        return f"{e[key]:.{digits}f}"
    return f"{e[key]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown_table(summary: dict) -> str:
    """The study's results: the main table, the per-target ratios, per-domain means, training and timing."""
    raw = summary["raw_ratio"]
    digits = summary.get("digits", 2)
    rows = summary["rows"]
    lines = [f"Run on {summary['finished']} ({summary['wall_minutes']:.1f} min of wall clock for this invocation). "
             f"Brackets: 95% CIs over {summary['n_seeds']} policy seeds × {summary['episodes']} episodes per domain "
             f"(stratified bootstrap, {N_BOOT} resamples). Targets: mean over {', '.join(summary['targets'])}.", ""]
    head = ["row", "source", "source IQM", "source − random", "P(row > random), source", "targets", "targets IQM"]
    head += ["target/source"] if raw else []
    head += ["(target − random) / (source − random)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        t = row["targets"]["targets"]
        p = row["p_beats_random"]
        cells = [name, _est(row["source"], digits=digits), _est(row["source"], "iqm", "iqm_ci", digits),
                 _est(row["source_minus_random"], digits=digits), f"{p['p']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]",
                 _est(t, digits=digits), _est(t, "iqm", "iqm_ci", digits)]
        cells += [_est(t.get("ratio"))] if raw else []
        cells += [_est(t["normalised_ratio"])]
        lines.append("| " + " | ".join(cells) + " |")
    r = summary["random"]
    cells = [f"random ({r['n_runs']} runs)", _est(r["source"], digits=digits), _est(r["source"], "iqm", "iqm_ci", digits),
             "0", "–", _est(r["targets"]["targets"], digits=digits), _est(r["targets"]["targets"], "iqm", "iqm_ci", digits)]
    cells += ["–"] if raw else []
    cells += ["–"]
    lines.append("| " + " | ".join(cells) + " |")
    for label, ref in summary["references"].items():
        cells = [f"constant {label} (action {ref['action']})", _est(ref["source"], digits=digits),
                 _est(ref["source"], "iqm", "iqm_ci", digits), f"{ref['source']['mean'] - r['source']['mean']:.{digits}f}",
                 "–", _est(ref["targets"]["targets"], digits=digits), _est(ref["targets"]["targets"], "iqm", "iqm_ci", digits)]
        cells += ["–"] if raw else []
        cells += ["–"]
        lines.append("| " + " | ".join(cells) + " |")
    for label in summary["references"]:
        lines += ["", f"Source return minus the constant-{label} reference's on the same episode (paired by episode "
                  "seed; 95% CI over seeds × episodes): " + "; ".join(
                      f"{name} {_est(row['versus_reference'][label], digits=digits)}" for name, row in rows.items()) + "."]

    targets = summary["targets"]
    lines += ["", "Per target domain: " + ("target/source, then " if raw else "")
              + "(target − random) / (source − random), paired bootstrap 95% CIs:", ""]
    lines += ["| row | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for name, row in rows.items():
        cells = []
        for d in targets:
            e = row["targets"][d]
            cells.append((f"{_est(e.get('ratio'))}; " if raw else "") + _est(e["normalised_ratio"]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for label, ref in summary["references"].items():
        cells = [("–; " if raw else "") + _est(ref["targets"][d]["normalised_ratio"]) for d in targets]
        lines.append(f"| constant {label} | " + " | ".join(cells) + " |")

    domains = summary["domains"]
    lines += ["", "Mean return per domain (over seeds × episodes; the random policy over its runs × the same "
              "episodes), and the training return (stochastic actions, mean of the last logged episodes, "
              "per seed):", ""]
    lines += ["| row | " + " | ".join(domains) + " | training return, last (first) |", "|---|" + "---|" * (len(domains) + 1)]
    extra = [("random", r)] + [(f"constant {label}", ref) for label, ref in summary["references"].items()]
    for name, row in list(rows.items()) + extra:
        train = row.get("training") or []
        tr = ", ".join(f"{t['last']:.{digits}f} ({t['first']:.{digits}f})" for t in train if t) or "–"
        lines.append(f"| {name} | " + " | ".join(f"{row['per_domain'].get(d, float('nan')):.{digits}f}" for d in domains)
                     + f" | {tr} |")

    lines += ["", "Measured in this run (seconds of each stage's own `DONE.json`; one core):", ""]
    lines += ["| stage | seconds | work | rate |", "|---|---:|---|---|"]
    for item in summary["timing"]:
        lines.append(f"| {item['stage']} | {item['seconds']:.0f} | {item['work']} | {item['rate']} |")
    lines += ["", f"Sum of stage seconds: {summary['stage_seconds_total'] / 60:.1f} min. "
              f"`darla compare`: [`compare/compare.md`](compare/compare.md), [`compare/profiles.png`](compare/profiles.png)"
              + (" (inputs: returns minus each domain's random mean)." if summary["normalised_compare"] else ".")]
    return "\n".join(lines) + "\n"


def timing_rows(config, rows_meta: dict, random: dict, references: dict) -> tuple[list[dict], float]:
    """Per-stage seconds and rates for the README (what the budget arithmetic of the protocol predicts)."""
    items, total = [], 0.0

    def rec(d: Path) -> dict | None:
        p = Path(d) / "DONE.json"
        return json.loads(p.read_text()) if p.exists() else None

    seen: set[str] = set()
    for model, meta in rows_meta.items():
        for kind, d in meta["stages"]:
            if str(d) in seen:
                continue
            seen.add(str(d))
            r = rec(d)
            if not r:
                continue
            s = float(r.get("seconds", 0.0))
            total += s
            if kind == "collect":
                n = config.collect.frames
                items.append({"stage": "collect", "seconds": s, "work": f"{n} frames", "rate": f"{n / s:.0f} frames/s"})
            elif kind == "vision":
                steps = config.vision.steps
                extra = f" (+ DAE {config.vision.dae_steps} steps)" if model == "beta_vae_dae" else ""
                items.append({"stage": f"vision {model}", "seconds": s, "work": f"{steps} steps{extra}",
                              "rate": f"{s / steps:.3f} s/step"})
            elif kind == "policy":
                steps = config.policy.steps
                items.append({"stage": f"policy {model} seed {r['stage'].split('-s')[-1]}", "seconds": s,
                              "work": f"{steps} env steps", "rate": f"{steps / s:.0f} steps/s"})
            elif kind == "evaluate":
                n = meta["n_episodes"]
                items.append({"stage": f"evaluate {model}", "seconds": s, "work": f"{n} episodes",
                              "rate": f"{s / n:.2f} s/episode"})
    rs = sum(float(v) for v in random["seconds"].values())
    n = sum(len(v) * len(v[0]) for v in random["returns"].values())
    total += rs
    items.append({"stage": "random policy", "seconds": rs, "work": f"{n} episodes",
                  "rate": f"{rs / max(n, 1):.2f} s/episode"})
    for label, ref in references.items():
        rs = sum(float(v) for v in ref["seconds"].values())
        n = sum(len(v) * len(v[0]) for v in ref["returns"].values())
        total += rs
        items.append({"stage": f"constant {label}", "seconds": rs, "work": f"{n} episodes",
                      "rate": f"{rs / max(n, 1):.2f} s/episode"})
    return items, total


def normalised_inputs(eval_dirs: dict[str, Path], random_means: dict[str, float], out: Path) -> list[Path]:
    """Copies of the rows' ``evaluation.csv`` with each domain's random-policy mean subtracted from every return
    (``out/<row>/evaluation.csv``), for ``darla compare``: P(X > Y) is unchanged by a per-domain shift; the
    ratio and the profiles become improvement over random."""
    import csv
    import io

    from agents.evaluate import CSV_COLUMNS, read_evaluation_csv
    from vision.checkpoint import atomic_write_bytes

    dirs = []
    for name, d in eval_dirs.items():
        rows = read_evaluation_csv(Path(d) / "evaluation.csv")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            r = {**r, "return": repr(float(r["return"]) - random_means[r["domain"]])}
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in CSV_COLUMNS})
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target / "evaluation.csv", buf.getvalue().encode())
        dirs.append(target)
    return dirs


# -- the study -------------------------------------------------------------------------------------------
def base_config(args: argparse.Namespace):
    from darla.config import load_config

    return load_config(args.config, list(args.overrides))


def run_study(args: argparse.Namespace) -> dict:
    """Train and evaluate everything (resumable), then :func:`report`."""
    from darla.sweep import run_sweep

    start = time.time()
    base = base_config(args)
    log.info("study %s: rows %s, policy seeds %s, work %s", args.study, args.models, args.seeds, args.work)
    run_sweep(base, args.work, models=list(args.models), seeds=list(args.seeds), use_ray=False, progress=args.progress)
    random_baseline(base, args.work, runs=len(args.seeds), progress=True)
    reference_returns(base, args.work, args.references, progress=True)
    return report(args, wall_seconds=time.time() - start)


def report(args: argparse.Namespace, wall_seconds: float | None = None) -> dict:
    """Statistics, ``darla compare``, copies and the README table from a finished run in ``--work``; trains
    nothing (a missing evaluation is an error naming the command to run)."""
    from darla.compare import compare
    from darla.pipeline import domain_catalog, evaluation_domains
    from darla.sweep import PIXELS, Trial, trial_config

    tr = _transfer()
    base = base_config(args)
    sweep_path = args.work / "summary.json"
    if not sweep_path.exists():
        raise SystemExit(f"{sweep_path} does not exist: run the study first (the same command without --report)")
    sweep = json.loads(sweep_path.read_text())
    # cached by the run; played here only if missing or stale (cheap next to the policies, needed by every statistic)
    random = random_baseline(base, args.work, runs=len(args.seeds))
    references = reference_returns(base, args.work, args.references)
    domains, source = evaluation_domains(base)
    names = [d.name for d in domains]
    targets = [n for n in names if n not in source]
    rows, rows_meta, eval_dirs = {}, {}, {}
    for entry in sweep["results"].values():
        model = entry["model"]
        if model not in args.models:
            continue
        eval_dir = Path(entry["evaluation"])
        evaluation = json.loads((eval_dir / "evaluation.json").read_text())
        if sorted(evaluation["policy_meta"][i]["seed"] for i in range(len(evaluation["policies"]))) != sorted(args.seeds):
            raise SystemExit(f"{eval_dir} evaluates seeds other than {args.seeds}: rerun the study")
        row = row_statistics(evaluation, random["returns"], raw_ratio=args.raw_ratio, seed=base.seed)
        policy_dirs = [Path(p) for p in evaluation["policies"]]
        row["training"] = [training_returns(p / "learning_curve.csv") for p in policy_dirs]
        row["versus_reference"] = {label: reference_difference(evaluation, ref["returns"], seed=base.seed)
                                   for label, ref in references.items()}
        row["evaluation"] = tr._relative(eval_dir)
        config = trial_config(base, Trial(model, args.seeds[0], base.policy.algo))
        stages = [("policy", p) for p in policy_dirs] + [("evaluate", eval_dir)]
        vision_dir = None
        if model != PIXELS:
            vision_dir = _vision_dir(policy_dirs[0])
            stages = [("collect", _data_dir(vision_dir)), ("vision", vision_dir)] + stages
            row["vision_checkpoint"] = tr._relative(vision_dir / "model")
        rows_meta[model] = {"stages": stages, "n_episodes": len(policy_dirs) * len(names) * evaluation["episodes"]}
        row["files"] = _copy(args.out / model, eval_dir, vision_dir, policy_dirs, args.seeds)
        row["algo"], row["steps"], row["mode"] = config.policy.algo, config.policy.steps, config.policy.mode
        rows[model] = row
        eval_dirs[model] = eval_dir
    missing = [m for m in args.models if m not in rows]
    if missing:
        raise SystemExit(f"rows {missing} are not in {sweep_path}: run the study first")
    rows = {m: rows[m] for m in args.models}
    timing, total = timing_rows(base, rows_meta, random, references)
    summary: dict[str, Any] = {
        "command": args.command,
        "study": tr._relative(args.study),
        "config": base.to_dict(),
        "domains": names, "source": source, "targets": targets,
        "domain_specs": [domain_catalog(base).provider.describe(d) for d in domains],
        "n_seeds": len(args.seeds), "seeds": list(args.seeds), "episodes": base.evaluate.episodes,
        "raw_ratio": args.raw_ratio, "normalised_compare": args.normalise_compare, "digits": args.digits,
        "rows": rows,
        "random": {**random_row(random["returns"], source, targets, seed=base.seed), "seconds": random["seconds"]},
        "references": {label: {**random_row(ref["returns"], source, targets, seed=base.seed, random=random["returns"]),
                               "action": args.references[label],
                               "seconds": ref["seconds"]} for label, ref in references.items()},
        "timing": timing, "stage_seconds_total": round(total, 1),
        "wall_minutes": round((wall_seconds or 0.0) / 60, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    if wall_seconds is None:  # --report: keep the run's own wall clock
        old = args.out / "summary.json"
        if old.exists():
            prev = json.loads(old.read_text())
            summary["wall_minutes"], summary["finished"] = prev.get("wall_minutes", 0.0), prev.get("finished", "")
    cmp_dir = args.out / "compare"
    inputs = [eval_dirs[m] for m in rows]
    if args.normalise_compare:
        means = {d: float(np.mean(v)) for d, v in random["returns"].items()}
        inputs = normalised_inputs({m: eval_dirs[m] for m in rows}, means, args.work / "compare-inputs")
    cmd = "darla compare " + " ".join(shlex.quote(tr._relative(p)) for p in inputs) + f" --out {tr._relative(cmp_dir)}"
    compare(inputs, cmp_dir, labels=list(rows), n_boot=N_BOOT, seed=base.seed, backend="numpy", command=cmd)
    summary["compare"] = {"command": cmd, "dir": tr._relative(cmp_dir)}
    args.out.mkdir(parents=True, exist_ok=True)
    tr._write_json(args.out / "summary.json", summary)
    from darla.report import rewrite_marked_section

    rewrite_marked_section(args.out / "README.md", TABLE_START, TABLE_END, markdown_table(summary),
                           default=f"# {args.study.name}\n")
    log.info("wrote %s and the table of %s", args.out / "summary.json", args.out / "README.md")
    return summary


def _vision_dir(policy_dir: Path) -> Path:
    """The vision stage directory a latent policy was trained on (``policy.json``'s ``vision_checkpoint``)."""
    meta = json.loads((policy_dir / "policy.json").read_text())
    return Path(meta["vision_checkpoint"]).parent


def _data_dir(vision_dir: Path) -> Path:
    """The stage-1 data stage of a vision stage (the ``data`` key in its ``stage.json``)."""
    key = json.loads((vision_dir / "stage.json").read_text())["config"]["data"]
    return vision_dir.parent / f"collect-{key}"


def _copy(dest: Path, eval_dir: Path, vision_dir: Path | None, policy_dirs: list[Path], seeds) -> list[str]:
    import shutil

    wanted = [(eval_dir / n, n) for n in ("evaluation.md", "evaluation.json", "evaluation.csv", "transfer.png")]
    if vision_dir is not None:
        wanted += [(vision_dir / n, n) for n in ("traversal.png", "traversal.md")]
    wanted += [(p / "learning_curve.csv", f"learning_curve_s{s}.csv") for p, s in zip(policy_dirs, seeds)]
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for src, name in wanted:
        if src.exists():
            shutil.copyfile(src, dest / name)
            copied.append(name)
    return copied


def _csv(kind):
    return lambda text: [kind(t.strip()) for t in text.split(",") if t.strip()]


def parse_args(study: Path, argv: Sequence[str] | None, raw_ratio: bool, normalise_compare: bool,
               digits: int, references: dict | None = None) -> argparse.Namespace:
    name = study.name
    p = argparse.ArgumentParser(prog=f"results/{name}/run.py",
                                description=f"The {name} transfer study (results/{name}/README.md).")
    p.add_argument("--models", type=_csv(str), default=list(DEFAULT_MODELS), help="rows: vision models, 'pixels'")
    p.add_argument("--seeds", type=_csv(int), default=list(DEFAULT_SEEDS), help="policy training seeds")
    p.add_argument("--work", type=Path, default=REPO / "runs" / name, help="stage root of the sweep (outside git)")
    p.add_argument("--out", type=Path, default=study, help="summary.json, compare/, per-row files, README.md table")
    p.add_argument("--config", type=Path, default=study / "config.yaml", help="the darla run config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, as in darla run")
    p.add_argument("--report", action="store_true", help="only write the outputs from a finished run in --work")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    args.study, args.raw_ratio, args.normalise_compare, args.digits = study, raw_ratio, normalise_compare, digits
    args.references = dict(references or {})
    args.command = f"python results/{name}/run.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    return args


def main(study: Path, argv: Sequence[str] | None = None, raw_ratio: bool = True, normalise_compare: bool = False,
         digits: int = 2, references: dict | None = None) -> dict:
    """Entry of a study's ``run.py``.

    :param study: the study directory (``config.yaml``, ``domains.yaml``, ``README.md``)
    :param argv: command-line arguments (default ``sys.argv[1:]``)
    :param raw_ratio: report target/source of raw returns (only where returns cannot be negative)
    :param normalise_compare: ``darla compare`` on returns minus each domain's random mean
    :param digits: decimals of returns in the table
    :param references: constant-action references ``{label: action}`` played on every domain (one run)
    """
    args = parse_args(Path(study).resolve(), argv, raw_ratio, normalise_compare, digits, references)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.path.insert(0, str(REPO))
    return report(args) if args.report else run_study(args)
