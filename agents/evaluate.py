"""Stage 3, "transfer": zero-shot evaluation of unchanged policies in source and target domains.

DARLA (Higgins et al. 2017, sec. 4): the policy learnt in the source domains is run, without any
update, in target domains whose appearance it never saw. Every domain is evaluated on the same
episode seeds (episode ``i`` calls ``env.reset(seed=seed + i)``), so with an env that keeps the layout
per seed (``darla/SeekAvoid-v0`` does) the comparison is paired: same layouts, different appearance.

Reported per domain over training seeds x episodes: mean and IQM with stratified bootstrap 95% CIs
(:mod:`agents.stats`); the target/source return ratio with a paired bootstrap CI, where the source
return of an episode is its mean over the source domains.

``agents`` does not import ``envs``: pass ``env_factory(domain) -> gym.Env`` (``darla`` wires
``gymnasium.make("darla/SeekAvoid-v0", domain=d, ...)``); without it, ``gymnasium.make`` is called
with the env id and kwargs recorded in the policy's ``policy.json``, ``domain`` replaced.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.stats import ratio_ci, summarize
from agents.train import load_policy, wrap_env
from vision.checkpoint import atomic_write_bytes

logger = logging.getLogger(__name__)

EnvFactory = Callable[[Any], gym.Env]


def domain_name(domain: Any) -> str:
    """A domain's name: the string itself, ``domain.name``, or ``str(domain)``."""
    if isinstance(domain, str):
        return domain
    return str(getattr(domain, "name", domain))


def _load(policy: str | os.PathLike | BaseAlgorithm | tuple[BaseAlgorithm, dict[str, Any]], device: str
          ) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """A policy to evaluate: a darla policy directory (loaded without pickle, :func:`agents.train.load_policy`),
    a ``(model, meta)`` pair from ``load_policy`` (e.g. a foreign SB3 zip loaded for an env's spaces, or a
    policy whose vision was relocated), or an SB3 model (observations passed through unchanged)."""
    if isinstance(policy, tuple) and len(policy) == 2 and isinstance(policy[0], BaseAlgorithm):
        return policy[0], dict(policy[1])
    if isinstance(policy, BaseAlgorithm):  # any SB3 model: observations are passed through unchanged
        return policy, {"mode": "native", "algo": type(policy).__name__.lower(), "path": None, "train_domains": []}
    return load_policy(policy, device=device)


def _default_factory(meta: dict[str, Any]) -> EnvFactory:
    env_id = meta.get("env_id")
    kwargs = {k: v for k, v in (meta.get("env_kwargs") or {}).items() if k != "domain"}
    if not env_id or env_id not in gym.registry:
        raise ValueError(
            f"no env_factory given and the policy's env id {env_id!r} is not a registered gymnasium env; "
            "pass env_factory=lambda domain: gymnasium.make(ID, domain=domain, ...) (for SeekAvoid: import envs first)"
        )
    return lambda domain: gym.make(env_id, domain=domain, **kwargs)


def _vision_name(meta: dict[str, Any]) -> str | None:
    """The vision model's registry name (``"beta_vae_dae"``), ``"pixels"`` for end-to-end policies, or None."""
    if meta.get("mode") == "pixels":
        return "pixels"
    return getattr(meta.get("vision_model"), "name", None) or None


def run_episodes(
    model: BaseAlgorithm, env: gym.Env, episodes: int, seed: int, deterministic: bool = True, max_steps: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """Play ``episodes`` episodes, episode ``i`` from ``env.reset(seed=seed + i)``.

    :return: returns ``(episodes,)`` and lengths ``(episodes,)``
    """
    returns = np.zeros(episodes, dtype=np.float64)
    lengths = np.zeros(episodes, dtype=np.int64)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total, n = False, 0.0, 0
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(action.item() if np.ndim(action) == 0 else action)
            total += float(reward)
            n += 1
            done = terminated or truncated or n >= max_steps
        returns[i], lengths[i] = total, n
    return returns, lengths


def _split(names: list[str], source: Sequence[Any] | None, metas: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Source and target domain names among ``names``: explicit ``source``, else the domains the
    policies saw during training (``train_domains`` in ``policy.json``)."""
    if source is not None:
        wanted = [domain_name(d) for d in source]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ValueError(f"source domain(s) {unknown} are not among the evaluated domains; valid: {', '.join(names)}")
        src = set(wanted)
    else:
        src = set()
        for m in metas:
            src.update(m.get("train_domains") or [])
            spec = (m.get("env_kwargs") or {}).get("domain")
            if isinstance(spec, str):
                src.update(s.strip() for s in spec.split(","))
            elif isinstance(spec, list):
                src.update(s if isinstance(s, str) else str(s.get("name", "")) if isinstance(s, dict) else "" for s in spec)
    return [n for n in names if n in src], [n for n in names if n not in src]


def zero_shot_evaluate(
    policies: Sequence[str | os.PathLike | BaseAlgorithm],
    domains: Sequence[Any],
    env_factory: EnvFactory | None = None,
    episodes: int = 20,
    seed: int = 0,
    deterministic: bool = True,
    source: Sequence[Any] | None = None,
    progress: bool = True,
    n_boot: int = 10_000,
    device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate unchanged policies (one per training seed) in every domain on the same episode seeds.

    :param policies: policy directories from :func:`agents.train.train_policy` (one per training seed),
        ``(model, meta)`` pairs from :func:`agents.train.load_policy` (foreign SB3 zips), or SB3 models
        (their observations are passed through unchanged)
    :param domains: domains to evaluate: anything ``env_factory`` accepts (names, ``Domain`` objects)
    :param env_factory: ``env_factory(domain) -> gym.Env`` of frames; default: ``gymnasium.make`` with
        the env id and kwargs of the first policy's ``policy.json``
    :param episodes: episodes per domain and policy
    :param seed: episode ``i`` uses ``reset(seed=seed + i)`` in every domain; also seeds torch for
        stochastic actions (``deterministic=False``)
    :param deterministic: greedy actions
    :param source: names (or domains) that count as source; default: the domains the policies were
        trained on (``train_domains`` / ``env_kwargs["domain"]`` in ``policy.json``); the rest are targets
    :param progress: show a tqdm bar over (policy, domain) pairs
    :param n_boot: bootstrap resamples of the CIs
    :param device: torch device
    :return: a JSON-able dict: ``returns``/``lengths`` (domain -> ``[seeds][episodes]``), ``summary``
        (domain -> mean, IQM, CIs, split), ``ratios`` (target domain -> ratio and CI), ``overall``
        (``source``, ``target``, ``ratio``: each with ``mean`` and ``ci``), and what was evaluated
    """
    if not policies:
        raise ValueError("no policies to evaluate; pass the policy directories of your training seeds")
    if not domains:
        raise ValueError("no domains to evaluate; pass e.g. ['A-default', 'A-changed'] or resolved Domain objects")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    names = [domain_name(d) for d in domains]
    if len(set(names)) != len(names):
        raise ValueError(f"domains must have distinct names, got {names}")

    loaded = [_load(p, device) for p in policies]
    metas = [m for _, m in loaded]
    factory = env_factory or _default_factory(metas[0])
    src, tgt = _split(names, source, metas)

    returns = {n: np.zeros((len(loaded), episodes)) for n in names}
    lengths = {n: np.zeros((len(loaded), episodes), dtype=np.int64) for n in names}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(loaded) * len(names), desc="zero-shot evaluation", disable=not progress)
    for k, (model, meta) in enumerate(loaded):
        for domain, name in zip(domains, names):
            torch.manual_seed(seed)
            env = wrap_env(factory(domain), meta) if meta["mode"] != "native" else factory(domain)
            try:
                returns[name][k], lengths[name][k] = run_episodes(model, env, episodes, seed, deterministic)
            finally:
                env.close()
            bar.update(1)
    bar.close()

    rng = np.random.default_rng(seed)
    summary = {n: {**summarize(returns[n], n_boot=n_boot, rng=rng), "split": "source" if n in src else "target",
                   "mean_length": float(lengths[n].mean())} for n in names}
    result: dict[str, Any] = {
        "policies": [m.get("path") or f"<{m['algo']} model>" for m in metas],
        "policy_meta": [{**{k: m.get(k) for k in ("algo", "mode", "vision_checkpoint", "vision_id", "seed", "steps",
                                                   "train_domains")}, "vision_name": _vision_name(m)} for m in metas],
        "domains": names,
        "source": src,
        "target": tgt,
        "episodes": episodes,
        "seed": seed,
        "episode_seeds": [seed + i for i in range(episodes)],
        "deterministic": deterministic,
        "returns": {n: returns[n].tolist() for n in names},
        "lengths": {n: lengths[n].tolist() for n in names},
        "summary": summary,
        "ratios": {},
        "overall": {},
    }
    if src and tgt:
        source_scores = np.mean([returns[n] for n in src], axis=0)  # (seeds, episodes), paired by seed
        target_scores = np.mean([returns[n] for n in tgt], axis=0)
        for n in tgt:
            result["ratios"][n] = ratio_ci(returns[n], source_scores, n_boot=n_boot, rng=rng)
        r = ratio_ci(target_scores, source_scores, n_boot=n_boot, rng=rng)
        result["overall"] = {
            "source": summarize(source_scores, n_boot=n_boot, rng=rng),
            "target": summarize(target_scores, n_boot=n_boot, rng=rng),
            "ratio": {"mean": r["ratio"], "ci": r["ci"], "undefined_fraction": r["undefined_fraction"]},
        }
    else:
        logger.warning("no source/target split among %s (source: %s); ratios not computed; pass source=[...]",
                       names, src)
    return result


# -- writers ---------------------------------------------------------------------------------------
def strict_json(x: Any) -> Any:
    """NaN/inf -> None so the JSON is strict."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: strict_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [strict_json(v) for v in x]
    return x


def _fmt(value: float | None, ci: Sequence[float | None] | None = None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    s = f"{value:.3f}"
    if ci is not None and all(c is not None and math.isfinite(c) for c in ci):
        s += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return s


def evaluation_table(result: dict[str, Any]) -> str:
    """The Markdown table of :func:`write_evaluation`: one row per domain, then the overall rows."""
    lines = ["| domain | split | mean return [95% CI] | IQM [95% CI] | target/source [95% CI] | seeds × episodes |",
             "|---|---|---|---|---|---|"]
    for n in result["domains"]:
        s = result["summary"][n]
        r = result["ratios"].get(n)
        lines.append(f"| {n} | {s['split']} | {_fmt(s['mean'], s['ci'])} | {_fmt(s['iqm'], s['iqm_ci'])} | "
                     f"{_fmt(r['ratio'], r['ci']) if r else '–'} | {s['n_seeds']} × {s['n_episodes']} |")
    o = result.get("overall") or {}
    if o:
        lines.append(f"| **source (mean of {', '.join(result['source'])})** | source | "
                     f"{_fmt(o['source']['mean'], o['source']['ci'])} | {_fmt(o['source']['iqm'], o['source']['iqm_ci'])} "
                     f"| – | |")
        lines.append(f"| **target (mean of {', '.join(result['target'])})** | target | "
                     f"{_fmt(o['target']['mean'], o['target']['ci'])} | {_fmt(o['target']['iqm'], o['target']['iqm_ci'])} "
                     f"| {_fmt(o['ratio']['mean'], o['ratio']['ci'])} | |")
    return "\n".join(lines) + "\n"


def transfer_plot(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Bar plot of mean return per domain (source blue, target orange) with 95% CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result["domains"]
    means = np.array([result["summary"][n]["mean"] for n in names])
    cis = np.array([result["summary"][n]["ci"] for n in names], dtype=np.float64).reshape(len(names), 2)
    err = np.abs(np.stack([means - cis[:, 0], cis[:, 1] - means]))
    colors = ["tab:blue" if result["summary"][n]["split"] == "source" else "tab:orange" for n in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.5))
    ax.bar(range(len(names)), means, yerr=err, color=colors, capsize=4)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_ylabel("mean episode return")
    ratio = (result.get("overall") or {}).get("ratio")
    title = "zero-shot transfer (blue: source, orange: target)"
    if ratio and ratio["mean"] is not None and math.isfinite(ratio["mean"]):
        title += f"\ntarget/source = {ratio['mean']:.2f}"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


# One row per (policy, domain, episode); the column order of evaluation.csv.
CSV_COLUMNS = ("policy", "policy_seed", "algo", "mode", "vision_model", "vision_id", "domain", "split", "episode",
               "episode_seed", "return", "length")


def evaluation_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-episode numbers of a :func:`zero_shot_evaluate` result in long format (tidy data).

    One row per (policy, domain, episode) with the columns :data:`CSV_COLUMNS`: the policy directory and
    its training seed, algorithm, mode, vision model name and checkpoint digest (``vision_id``), the
    domain and its split role (``source``/``target``), the episode index, its ``env.reset`` seed, return
    and length. Works on results read back from ``evaluation.json`` too (older ones lack
    ``vision_name``: the column is then empty, or ``pixels`` for pixel policies).

    :param result: a :func:`zero_shot_evaluate` result (or the parsed ``evaluation.json``)
    :return: rows, policy-major, then domains in evaluation order, then episodes
    """
    src = set(result.get("source") or [])
    episode_seeds = result.get("episode_seeds") or [result["seed"] + i for i in range(result["episodes"])]
    metas = result.get("policy_meta") or [{} for _ in result["policies"]]
    rows = []
    for k, (policy, meta) in enumerate(zip(result["policies"], metas)):
        vision = meta.get("vision_name") or ("pixels" if meta.get("mode") == "pixels" else None)
        for name in result["domains"]:
            returns, lengths = result["returns"][name][k], result["lengths"][name][k]
            for i, (ret, length) in enumerate(zip(returns, lengths)):
                rows.append({"policy": policy, "policy_seed": meta.get("seed"), "algo": meta.get("algo"),
                             "mode": meta.get("mode"), "vision_model": vision, "vision_id": meta.get("vision_id"),
                             "domain": name, "split": "source" if name in src else "target", "episode": i,
                             "episode_seed": episode_seeds[i], "return": float(ret), "length": int(length)})
    return rows


def evaluation_csv(result: dict[str, Any]) -> str:
    """:func:`evaluation_rows` as CSV text (header :data:`CSV_COLUMNS`; missing values are empty cells;
    returns written with ``repr`` precision so they read back exactly)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in evaluation_rows(result):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def write_evaluation_csv(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write :func:`evaluation_csv` to ``path`` atomically.

    :param result: a :func:`zero_shot_evaluate` result
    :param path: the CSV file, e.g. ``out_dir / "evaluation.csv"``
    :return: ``path``
    """
    path = Path(path)
    atomic_write_bytes(path, evaluation_csv(result).encode())
    return path


def read_evaluation_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of an ``evaluation.csv`` with ``return`` as float, ``episode``/``episode_seed``/``length`` as int
    and ``policy_seed`` as int or None (no pandas needed; ``pandas.read_csv`` reads the file as well).

    :param path: a file written by :func:`write_evaluation_csv`
    """
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("policy", "domain", "split", "episode", "return") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"'{path}' is not an evaluation CSV: column(s) {missing} missing; write it with "
                             "agents.evaluate.write_evaluation_csv or `darla evaluate`")
        rows = []
        for r in reader:
            row: dict[str, Any] = {k: (v if v != "" else None) for k, v in r.items()}
            row["return"] = float(r["return"])
            for k in ("episode", "episode_seed", "length", "policy_seed"):
                if row.get(k) is not None:
                    row[k] = int(row[k])
            rows.append(row)
    return rows


def rliable_scores(rows: Sequence[dict[str, Any]], split: str = "target", by: str = "vision_model",
                   run_key: Sequence[str] = ("vision_id", "policy")) -> dict[str, np.ndarray]:
    """rliable's score dict ``{algorithm: (runs, tasks) array}`` from long-format evaluation rows.

    A run is one policy (one training seed on one vision checkpoint: rows sharing ``run_key``), a task
    is a domain of ``split``, a score is the run's mean return over its episodes in that domain.
    Algorithms are the values of column ``by``. Tasks (columns) are the domains in first-seen order and
    must be the same for every algorithm, as rliable's aggregates need.

    :param rows: rows of :func:`evaluation_rows` / :func:`read_evaluation_csv`, or a ``pandas.DataFrame``
        of ``evaluation.csv`` (its records are used)
    :param split: ``"target"``, ``"source"`` or ``"all"`` (every domain)
    :param by: column naming the algorithm (``vision_model``; or e.g. ``mode``, ``algo``)
    :param run_key: columns that identify a run within an algorithm
    :return: ``{algorithm: array (runs, tasks)}`` and no other keys
    """
    tasks, cells = run_task_means(rows, split, by, run_key)
    out = {}
    for algo, runs in cells.items():
        lacking = sorted({t for run in runs.values() for t in tasks if t not in run})
        if lacking:
            raise ValueError(f"{by} {algo!r} has runs without domain(s) {lacking}; every run needs every task "
                             f"(evaluate all policies on the same domains)")
        out[algo] = np.array([[run[t] for t in tasks] for run in runs.values()], dtype=np.float64)
    return out


def run_task_means(rows: Sequence[dict[str, Any]], split: str = "target", by: str = "vision_model",
                   run_key: Sequence[str] = ("vision_id", "policy")
                   ) -> tuple[list[str], dict[str, dict[tuple, dict[str, float]]]]:
    """Mean return of every (algorithm, run, domain) cell of long-format rows (see :func:`rliable_scores`).

    :return: ``(tasks, {algorithm: {run key: {domain: mean return}}})``, domains and runs in first-seen order
    """
    if hasattr(rows, "to_dict"):  # a pandas DataFrame
        rows = rows.to_dict("records")
    if split not in ("target", "source", "all"):
        raise ValueError(f"split must be 'target', 'source' or 'all', got {split!r}")
    sums: dict[str, dict[tuple, dict[str, list[float]]]] = {}
    tasks: list[str] = []
    for r in rows:
        if split != "all" and r["split"] != split:
            continue
        if r["domain"] not in tasks:
            tasks.append(r["domain"])
        run = tuple(str(r.get(c)) for c in run_key)
        cell = sums.setdefault(str(r.get(by)), {}).setdefault(run, {}).setdefault(r["domain"], [0.0, 0])
        cell[0] += float(r["return"])
        cell[1] += 1
    if not tasks:
        raise ValueError(f"no rows of split {split!r}; the evaluation has no {split} domains")
    return tasks, {a: {run: {t: s / n for t, (s, n) in cells.items()} for run, cells in runs.items()}
                   for a, runs in sums.items()}


def write_evaluation(result: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``evaluation.json``, ``evaluation.csv`` (per episode, long format: :func:`evaluation_rows`),
    ``evaluation.md`` (Markdown table) and ``transfer.png`` to ``out_dir``.

    :return: ``out_dir``
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "evaluation.json", json.dumps(strict_json(result), indent=2).encode())
    write_evaluation_csv(result, out / "evaluation.csv")
    header = (f"Zero-shot evaluation: {len(result['policies'])} policy seed(s) × {result['episodes']} episodes per "
              f"domain, episode seeds {result['seed']}…{result['seed'] + result['episodes'] - 1} in every domain"
              f"{'' if result['deterministic'] else ' (stochastic actions)'}.\n\n")
    atomic_write_bytes(out / "evaluation.md", (header + evaluation_table(result)).encode())
    transfer_plot(result, out / "transfer.png")
    return out
