"""``darla compare``: several vision models side by side, with the aggregate tools of Agarwal et al. 2021.

Each input is a ``darla evaluate --out`` directory or a ``darla run --out`` directory. Its per-episode
returns (``evaluation.csv``; from ``evaluation.json`` for evaluations written before the CSV existed)
are labelled by the vision model its policies were trained on, and grouped by label: inputs with the
same label (e.g. two vision seeds of one model) pool their runs. A run is one policy (training seed
on one vision checkpoint), a task is a domain, a run's score on a task its mean return over episodes.

For three scores — target return (tasks: target domains), source return (source domains), and the
target/source ratio (per run and target domain: its mean target return over its mean return across
the source domains) — it writes

- ``compare.md`` / ``compare.json``: the probability of improvement P(X > Y) of every pair of labels
  with a stratified bootstrap 95% CI (sec. 4.3 of the paper), and each label's runs and mean score;
- ``profiles.png``: performance profiles (the fraction of run × task scores above τ) with bootstrap
  bands (sec. 4.2).

rliable computes the statistics when it imports (``pip install -e ".[rliable]"``); otherwise the
equivalent functions of :mod:`agents.stats` do (they agree on the same data; see tests/agents/test_stats.py).
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluate import (
    evaluation_rows,
    read_evaluation_csv,
    run_task_means,
    strict_json,
)
from agents.stats import performance_profile, probability_of_improvement_ci
from vision.checkpoint import atomic_write_bytes

logger = logging.getLogger(__name__)

SCORES = {"target": "target return", "source": "source return", "ratio": "target/source ratio"}
BACKENDS = ("auto", "rliable", "numpy")
RUN_KEY = ("input", "vision_id", "policy")


def rliable_library() -> Any | None:
    """``rliable.library`` if it imports, else None (logged: rliable 1.2's bootstrap needs ``arch``,
    whose 7.x releases fail to import under pandas 3)."""
    try:
        from rliable import library

        return library
    except Exception as e:
        logger.info("rliable unavailable (%s: %s); using agents.stats", type(e).__name__, e)
        return None


def find_evaluation(path: str | os.PathLike) -> Path:
    """The evaluation directory of ``path``: ``path`` itself if it holds ``evaluation.csv`` or
    ``evaluation.json``, else the ``eval_dir`` recorded in a run's ``report_inputs.json``."""
    path = Path(path)
    if (path / "evaluation.csv").exists() or (path / "evaluation.json").exists():
        return path
    inputs = path / "report_inputs.json"
    if inputs.exists():
        eval_dir = Path(json.loads(inputs.read_text())["eval_dir"])
        for cand in (eval_dir, path / "stages" / eval_dir.name):  # as recorded, or the run dir moved with its stages
            if (cand / "evaluation.json").exists():
                return cand
        raise FileNotFoundError(f"run '{path}' records evaluation '{eval_dir}', which holds no evaluation.json; "
                                f"rerun `darla run --out {path}`")
    raise FileNotFoundError(f"'{path}' holds no evaluation (evaluation.csv or evaluation.json) and is no darla run "
                            "(report_inputs.json); pass a `darla evaluate --out` or `darla run --out` directory")


def load_rows(eval_dir: Path) -> list[dict[str, Any]]:
    """Per-episode rows of an evaluation directory: its CSV, else converted from its JSON."""
    if (eval_dir / "evaluation.csv").exists():
        return read_evaluation_csv(eval_dir / "evaluation.csv")
    return evaluation_rows(json.loads((eval_dir / "evaluation.json").read_text()))


def infer_label(path: Path, eval_dir: Path, rows: list[dict[str, Any]]) -> str:
    """The vision model of an input: the CSV's ``vision_model`` column, else a run's ``summary.json``,
    else the policies' ``policy.json`` (``pixels``, or the model recorded in their vision checkpoint),
    else the directory name."""
    names = {r.get("vision_model") for r in rows} - {None, ""}
    if len(names) == 1:
        return str(names.pop())
    if len(names) > 1:
        raise ValueError(f"'{eval_dir}' evaluates policies of several vision models {sorted(names)}; "
                         "evaluate one model per directory or pass --label")
    summary = path / "summary.json"
    if summary.exists():
        model = json.loads(summary.read_text()).get("vision_model")
        if model:
            return str(model)
    for policy in dict.fromkeys(r["policy"] for r in rows):
        meta_path = Path(policy) / "policy.json"
        if not meta_path.exists():
            continue
        meta = json.loads(meta_path.read_text())
        if meta.get("mode") == "pixels":
            return "pixels"
        checkpoint = meta.get("vision_checkpoint")
        if checkpoint and (Path(checkpoint) / "config.json").exists():
            from vision.checkpoint import read_meta

            return str(read_meta(checkpoint)["model"])
    return path.resolve().name


def _score_matrices(rows: list[dict[str, Any]], score: str
                    ) -> tuple[list[str], dict[str, np.ndarray], dict[str, int], list[str]]:
    """``(tasks, {label: (runs, tasks)}, {label: runs dropped}, tasks left out)`` for ``score`` in :data:`SCORES`.

    Tasks are the domains every label has (in the first label's order). For the ratio, runs whose mean
    source return is <= 0 have no ratio and are dropped (counted)."""
    tasks, cells = run_task_means(rows, "source" if score == "source" else "target", "label", RUN_KEY)
    if score == "ratio":
        _, src = run_task_means(rows, "source", "label", RUN_KEY)
    common = [t for t in tasks if all(t in run for runs in cells.values() for run in runs.values())]
    if not common:
        raise ValueError(f"no {score} domain is shared by every run of every label ({sorted(cells)}); "
                         "evaluate the models on the same domains")
    out, dropped = {}, {}
    for label, runs in cells.items():
        matrix = []
        for key, run in runs.items():
            values = np.array([run[t] for t in common])
            if score == "ratio":
                base = np.mean(list(src.get(label, {}).get(key, {}).values()) or [np.nan])
                if not base > 0:
                    dropped[label] = dropped.get(label, 0) + 1
                    continue
                values = values / base
            matrix.append(values)
        if not matrix:
            raise ValueError(f"label {label!r} has no run with a positive mean source return; its {score} is "
                             "undefined (compare target returns instead)")
        out[label] = np.array(matrix)
    return common, out, dropped, [t for t in tasks if t not in common]


def _pair_estimates(scores: dict[str, np.ndarray], backend: str, n_boot: int, rng: np.random.Generator,
                    bar: Any = None) -> dict[tuple[str, str], dict[str, Any]]:
    """P(X > Y) and CI of every unordered pair (filled in both directions: P(Y > X) = 1 - P(X > Y))."""
    labels = list(scores)
    pairs = [(x, y) for i, x in enumerate(labels) for y in labels[i + 1:]]
    est: dict[tuple[str, str], dict[str, Any]] = {}
    for x, y in pairs:
        if backend == "rliable":
            from rliable import library, metrics

            point, interval = library.get_interval_estimates({"xy": (scores[x], scores[y])},
                                                             metrics.probability_of_improvement, reps=n_boot)
            lo, hi = np.asarray(interval["xy"]).reshape(-1)[:2]
            est[x, y] = {"p": float(point["xy"]), "ci": [float(lo), float(hi)]}
        else:
            r = probability_of_improvement_ci(scores[x], scores[y], n_boot=n_boot, rng=rng)
            est[x, y] = {"p": r["p"], "ci": r["ci"]}
        if bar is not None:
            bar.update(1)
    for (x, y), e in list(est.items()):
        est[y, x] = {"p": 1.0 - e["p"], "ci": [1.0 - e["ci"][1], 1.0 - e["ci"][0]]}
    return est


def _profiles(scores: dict[str, np.ndarray], backend: str, n_boot: int, rng: np.random.Generator,
              points: int = 101) -> tuple[np.ndarray, dict[str, dict[str, list[float]]]]:
    everything = np.concatenate([s.reshape(-1) for s in scores.values()])
    lo, hi = float(everything.min()), float(everything.max())
    span = hi - lo if hi > lo else max(abs(lo), 1.0)  # all scores equal: a window around them
    taus = np.linspace(lo - 0.02 * span, hi + 0.02 * span, points)
    out = {}
    if backend == "rliable":
        from rliable import library

        prof, band = library.create_performance_profile(scores, taus, reps=n_boot)
        for label in scores:
            b = np.asarray(band[label])
            out[label] = {"profile": np.asarray(prof[label]).tolist(), "low": b[0].tolist(), "high": b[1].tolist()}
    else:
        for label, s in scores.items():
            prof, band = performance_profile(s, taus, n_boot=n_boot, rng=rng)
            out[label] = {"profile": prof.tolist(), "low": band[0].tolist(), "high": band[1].tolist()}
    return taus, out


def _fmt(e: dict[str, Any]) -> str:
    return f"{e['p']:.2f} [{e['ci'][0]:.2f}, {e['ci'][1]:.2f}]"


def compare(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, labels: Sequence[str] | None = None,
            n_boot: int = 2_000, seed: int = 0, backend: str = "auto", command: str | None = None,
            progress: bool = False) -> Path:
    """Compare the vision models of several evaluations or runs; writes ``compare.md``, ``compare.json``
    and ``profiles.png`` to ``out_dir`` (see the module docstring).

    :param inputs: ``darla evaluate --out`` or ``darla run --out`` directories
    :param out_dir: output directory
    :param labels: one label per input (default: its vision model, :func:`infer_label`); inputs sharing a
        label pool their runs
    :param n_boot: bootstrap resamples of the CIs and bands
    :param seed: seed of the bootstrap
    :param backend: ``"auto"`` (rliable if it imports, else :mod:`agents.stats`), ``"rliable"`` or ``"numpy"``
    :param command: the command line, written in the outputs' header
    :param progress: a tqdm bar over the pairs (rliable's bootstrap takes tens of seconds per pair)
    :return: the path of ``compare.md``
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if not inputs:
        raise ValueError("no inputs to compare; pass two or more evaluation or run directories")
    if labels is not None and len(labels) != len(inputs):
        raise ValueError(f"{len(labels)} label(s) for {len(inputs)} input(s); pass one --label per input or none")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if backend != "numpy":
        lib = rliable_library()
        if lib is None and backend == "rliable":
            raise RuntimeError('backend "rliable" requested but rliable.library does not import; '
                               'pip install -e ".[rliable]" (with pandas<3 for arch 7), or use --backend numpy')
        backend = "rliable" if lib is not None else "numpy"

    rows, described = [], []
    for k, path in enumerate(inputs):
        path = Path(path)
        eval_dir = find_evaluation(path)
        these = load_rows(eval_dir)
        label = labels[k] if labels else infer_label(path, eval_dir, these)
        for r in these:
            r["input"], r["label"] = str(path.resolve()), label  # the run key: one directory, one set of runs
        rows += these
        described.append({"input": str(path), "evaluation": str(eval_dir), "label": label,
                          "policies": len({r["policy"] for r in these})})
    names = list(dict.fromkeys(d["label"] for d in described))
    if len(names) < 2:
        raise ValueError(f"darla compare needs two or more labels (vision models), got {names}; pass evaluations of "
                         "other models, or --label per input")

    n_pairs = len(names) * (len(names) - 1) // 2 * len(SCORES)
    if backend == "rliable":
        # measured here (shared 2-core machine): 5 vs 5 runs x 7 tasks, 2,000 resamples: rliable 37-41 s per pair,
        # agents.stats 17-24 ms; same estimator
        logger.warning("rliable backend: %d P(X > Y) bootstraps of %d resamples, tens of seconds each; "
                       "--backend numpy computes the same estimators in milliseconds", n_pairs, n_boot)
    from tqdm.auto import tqdm

    bar = tqdm(total=n_pairs, desc=f"P(X > Y) ({backend})", disable=not progress)
    rng = np.random.default_rng(seed)
    state = np.random.get_state()
    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator; restored below
    result: dict[str, Any] = {"command": command, "backend": backend, "n_boot": n_boot, "seed": seed,
                              "inputs": described, "scores": {}}
    try:
        for score, title in SCORES.items():
            try:
                tasks, scores, dropped, left_out = _score_matrices(rows, score)
            except ValueError as e:
                logger.warning("%s not compared: %s", title, e)
                result["scores"][score] = {"skipped": str(e)}
                continue
            pairs = _pair_estimates(scores, backend, n_boot, rng, bar)
            taus, profiles = _profiles(scores, backend, n_boot, rng)
            result["scores"][score] = {
                "tasks": tasks, "left_out_tasks": left_out, "labels": list(scores), "dropped_runs": dropped,
                "runs": {k: int(v.shape[0]) for k, v in scores.items()},
                "mean": {k: float(v.mean()) for k, v in scores.items()},
                "probability_of_improvement": [{"x": x, "y": y, **e} for (x, y), e in pairs.items()],
                "profile": {"taus": taus.tolist(), **profiles},
            }
    finally:
        np.random.set_state(state)
        bar.close()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "compare.json", json.dumps(strict_json(result), indent=2).encode())
    _profiles_png(result, out / "profiles.png")
    md = out / "compare.md"
    atomic_write_bytes(md, _markdown(result).encode())
    return md


def _markdown(result: dict[str, Any]) -> str:
    lines = ["# Comparison of vision models", ""]
    if result["command"]:
        lines += [f"Command: `{result['command']}`", ""]
    lines += [(f"Statistics: {result['backend']} backend, {result['n_boot']:,} stratified bootstrap resamples, "
              f"seed {result['seed']}. A run is one policy (training seed × vision checkpoint), a task a domain, "
              "a score the run's mean return over its episodes there. P(X > Y): the chance that a run of X "
              "beats a run of Y on a task (ties count half), averaged over tasks; 0.5 = no difference "
              "(Agarwal et al. 2021). Profiles: `profiles.png`."), "",
              "| label | input | evaluation | policies |", "|---|---|---|---:|"]
    lines += [f"| {d['label']} | {d['input']} | {d['evaluation']} | {d['policies']} |" for d in result["inputs"]]
    for score, title in SCORES.items():
        s = result["scores"][score]
        lines += ["", f"## {title}", ""]
        if "skipped" in s:
            lines += [f"Not compared: {s['skipped']}"]
            continue
        lines += [f"Tasks: {', '.join(s['tasks'])}."]
        if s["left_out_tasks"]:
            lines += [f"Left out (not evaluated for every run of every label): {', '.join(s['left_out_tasks'])}."]
        for label, n in s["dropped_runs"].items():
            lines += [f"{label}: {n} run(s) without a ratio (mean source return <= 0) left out."]
        labels = s["labels"]
        est = {(e["x"], e["y"]): e for e in s["probability_of_improvement"]}
        lines += ["", "| P(row > column) [95% CI] | runs | mean | " + " | ".join(labels) + " |",
                  "|---|---:|---:|" + "---|" * len(labels)]
        for x in labels:
            cells = ["–" if x == y else _fmt(est[x, y]) for y in labels]
            lines.append(f"| **{x}** | {s['runs'][x]} | {s['mean'][x]:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _profiles_png(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [k for k in SCORES if "skipped" not in result["scores"][k]]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(4.2 * max(1, len(shown)), 3.4), squeeze=False)
    for ax, score in zip(axes[0], shown):
        s = result["scores"][score]
        taus = np.array(s["profile"]["taus"])
        for label in s["labels"]:
            p = s["profile"][label]
            (line,) = ax.plot(taus, p["profile"], label=f"{label} ({s['runs'][label]} runs)")
            ax.fill_between(taus, p["low"], p["high"], color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlabel(f"{SCORES[score]} τ")
        ax.set_ylabel("fraction of run × task scores > τ")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{SCORES[score]} ({len(s['tasks'])} tasks)", fontsize=9)
        ax.legend(fontsize=7)
    if result["command"]:
        fig.suptitle(result["command"], fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
