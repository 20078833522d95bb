"""Statistics for few-seed RL evaluation: IQM and bootstrap confidence intervals.

Following Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice", rliable): report
the interquartile mean (IQM, the mean of the middle 50 % of scores) next to the mean, and percentile
bootstrap confidence intervals that resample episodes within each training seed and/or the seeds
themselves (stratified bootstrap), rather than point estimates over a handful of runs.

Scores are arrays: ``(episodes,)`` or ``(seeds, episodes)``. Everything here is a pure function of its
arguments and an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

Stat = Callable[..., np.ndarray]
RESAMPLE = ("episodes", "seeds", "both")


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def iqm(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean after dropping the lowest and highest 25 % of scores.

    Same convention as ``scipy.stats.trim_mean(x, 0.25)`` (used by rliable): ``floor(0.25 n)`` scores
    are cut from each end. With ``axis=None`` the array is flattened.

    :param x: scores
    :param axis: axis along which to compute (``None``: all scores)
    """
    a = np.asarray(x, dtype=np.float64)
    if axis is None:
        a, axis = a.reshape(-1), 0
    n = a.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty array; evaluate at least one episode")
    cut = int(0.25 * n)
    a = np.sort(a, axis=axis)
    core = np.take(a, np.arange(cut, n - cut), axis=axis)
    return core.mean(axis=axis)


def _apply_stat(stat: Stat, samples: np.ndarray) -> np.ndarray:
    """``stat`` over the last axis of ``samples (n_boot, n)``; vectorised if ``stat`` takes ``axis``."""
    try:
        out = np.asarray(stat(samples, axis=-1), dtype=np.float64)
        if out.shape == samples.shape[:-1]:
            return out
    except TypeError:
        pass
    return np.array([stat(s) for s in samples], dtype=np.float64)


def _percentiles(boot: np.ndarray, ci: float) -> tuple[float, float]:
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}; e.g. ci=0.95 for a 95% interval")
    alpha = (1 - ci) / 2
    lo, hi = np.nanpercentile(boot, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def bootstrap_ci(
    x: np.ndarray,
    stat: Stat = np.mean,
    n_boot: int = 10_000,
    ci: float = 0.95,
    rng: np.random.Generator | int | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``stat`` over i.i.d. scores.

    :param x: scores ``(n,)`` (flattened if more dimensions)
    :param stat: statistic, e.g. ``np.mean`` or :func:`iqm` (called with ``axis=-1`` when it accepts it)
    :param n_boot: bootstrap resamples
    :param ci: coverage, e.g. 0.95
    :param rng: a Generator or a seed
    :return: ``(low, high)``
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("bootstrap_ci of an empty array; evaluate at least one episode")
    idx = _rng(rng).integers(0, a.size, size=(n_boot, a.size))
    return _percentiles(_apply_stat(stat, a[idx]), ci)


def _stratified_indices(
    shape: tuple[int, int], n_boot: int, resample: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices ``(n_boot, seeds, episodes)`` of stratified bootstrap resamples."""
    if resample not in RESAMPLE:
        raise ValueError(f"unknown resample '{resample}'; valid: {', '.join(RESAMPLE)}")
    s, e = shape
    if resample in ("seeds", "both"):
        rows = rng.integers(0, s, size=(n_boot, s, 1))
    else:
        rows = np.broadcast_to(np.arange(s)[None, :, None], (n_boot, s, 1))
    if resample in ("episodes", "both"):
        cols = rng.integers(0, e, size=(n_boot, s, e))  # episodes resampled within each (drawn) seed
    else:
        cols = np.broadcast_to(np.arange(e)[None, None, :], (n_boot, s, e))
    return np.broadcast_to(rows, (n_boot, s, e)), cols


def _as_matrix(x: np.ndarray, name: str = "scores") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name} must be (episodes,) or (seeds, episodes) and non-empty, got shape {a.shape}")
    return a


def stratified_bootstrap_ci(
    scores: np.ndarray,
    stat: Stat = np.mean,
    n_boot: int = 10_000,
    ci: float = 0.95,
    rng: np.random.Generator | int | None = None,
    resample: Literal["episodes", "seeds", "both"] = "both",
) -> tuple[float, float]:
    """Bootstrap CI over a ``(seeds, episodes)`` score matrix (rliable's stratified bootstrap).

    ``resample="episodes"`` redraws episodes within each training seed (seeds fixed);
    ``"seeds"`` redraws whole seeds; ``"both"`` redraws seeds, then episodes within each drawn seed
    (the two-level bootstrap: both sources of variance). ``stat`` is taken over all resampled scores.

    :param scores: ``(seeds, episodes)`` or ``(episodes,)``
    :return: ``(low, high)``
    """
    a = _as_matrix(scores)
    rows, cols = _stratified_indices(a.shape, n_boot, resample, _rng(rng))
    samples = a[rows, cols].reshape(n_boot, -1)  # (n_boot, seeds * episodes)
    return _percentiles(_apply_stat(stat, samples), ci)


def ratio_ci(
    target: np.ndarray,
    source: np.ndarray,
    n_boot: int = 10_000,
    ci: float = 0.95,
    rng: np.random.Generator | int | None = None,
    resample: Literal["episodes", "seeds", "both"] = "both",
) -> dict[str, float | list[float]]:
    """Target/source return ratio ``mean(target) / mean(source)`` with a paired bootstrap CI.

    ``target`` and ``source`` are paired score matrices ``(seeds, episodes)``: entry ``[s, i]`` of both
    comes from training seed ``s`` and episode seed ``i``, so each resample draws the same (seed,
    episode) cells from both, keeping the pairing (same layouts in both domains).
    Resamples whose source mean is <= 0 give an undefined ratio and are dropped (reported as
    ``undefined_fraction``); a non-positive source mean gives ``ratio = nan``.

    :return: ``{"ratio", "ci": [low, high], "target_mean", "source_mean", "undefined_fraction"}``
    """
    t, s = _as_matrix(target, "target"), _as_matrix(source, "source")
    if t.shape != s.shape:
        raise ValueError(
            f"target {t.shape} and source {s.shape} scores must be paired (same seeds x episodes); "
            "evaluate both on the same policies and episode seeds"
        )
    rows, cols = _stratified_indices(t.shape, n_boot, resample, _rng(rng))
    tb = t[rows, cols].reshape(n_boot, -1).mean(axis=1)
    sb = s[rows, cols].reshape(n_boot, -1).mean(axis=1)
    t_mean, s_mean = float(t.mean()), float(s.mean())
    ratio = t_mean / s_mean if s_mean > 0 else float("nan")
    lo, hi, undefined = _ratio_interval(tb, sb, ci)
    return {"ratio": ratio, "ci": [lo, hi], "target_mean": t_mean, "source_mean": s_mean,
            "undefined_fraction": undefined}


def _ratio_interval(target_boot: np.ndarray, source_boot: np.ndarray, ci: float) -> tuple[float, float, float]:
    """Percentile interval of resampled ratios ``target_boot / source_boot``; resamples whose source mean is
    <= 0 are undefined and dropped. :return: ``(low, high, undefined_fraction)``"""
    ok = source_boot > 0
    boot = np.where(ok, target_boot / np.where(ok, source_boot, 1.0), np.nan)
    lo, hi = _percentiles(boot, ci) if ok.any() else (float("nan"), float("nan"))
    return lo, hi, float(1 - ok.mean())


def hierarchical_ratio_ci(
    targets: Sequence[np.ndarray],
    sources: Sequence[np.ndarray],
    n_boot: int = 10_000,
    ci: float = 0.95,
    rng: np.random.Generator | int | None = None,
) -> dict[str, float | list[float]]:
    """Target/source ratio over several groups (e.g. vision checkpoints), with a three-level bootstrap CI.

    ``targets[g]`` and ``sources[g]`` are group ``g``'s paired ``(seeds, episodes)`` score matrices (as in
    :func:`ratio_ci`). The estimate gives each group equal weight: mean over groups of their target means,
    over the same of their source means. Each resample draws groups with replacement, then seeds and
    episodes within each drawn group (:func:`ratio_ci`'s ``"both"``), so the CI carries the spread between
    groups as well as within them.

    With few groups the interval undercovers: the bootstrap cannot reach beyond the groups it has, so with
    two groups that disagree it is about the range of the two (a 95% interval needs five or more groups).
    Read it as how far the groups' ratios spread, and report ``n_groups`` next to it.

    :return: ``{"ratio", "ci": [low, high], "group_ratios", "n_groups", "undefined_fraction"}``
    """
    if len(targets) != len(sources) or not targets:
        raise ValueError(f"need one source per target group and at least one group, got {len(targets)} target "
                         f"and {len(sources)} source groups")
    pairs = [(_as_matrix(t, "target"), _as_matrix(s, "source")) for t, s in zip(targets, sources)]
    for i, (t, s) in enumerate(pairs):
        if t.shape != s.shape:
            raise ValueError(f"group {i}: target {t.shape} and source {s.shape} scores must be paired "
                             "(same seeds x episodes)")
    g = _rng(rng)
    n = len(pairs)
    drawn = g.integers(0, n, size=(n_boot, n))  # groups redrawn per resample
    tb, sb = np.zeros(n_boot), np.zeros(n_boot)
    for slot in range(n):  # each drawn slot gets its own seeds-and-episodes resample of the group it drew
        for i, (t, s) in enumerate(pairs):
            hit = np.flatnonzero(drawn[:, slot] == i)
            if hit.size:
                rows, cols = _stratified_indices(t.shape, hit.size, "both", g)
                tb[hit] += t[rows, cols].reshape(hit.size, -1).mean(axis=1) / n
                sb[hit] += s[rows, cols].reshape(hit.size, -1).mean(axis=1) / n
    t_mean = float(np.mean([t.mean() for t, _ in pairs]))
    s_mean = float(np.mean([s.mean() for _, s in pairs]))
    lo, hi, undefined = _ratio_interval(tb, sb, ci)
    return {"ratio": t_mean / s_mean if s_mean > 0 else float("nan"), "ci": [lo, hi],
            "group_ratios": [float(t.mean() / s.mean()) if s.mean() > 0 else float("nan") for t, s in pairs],
            "n_groups": n, "undefined_fraction": undefined}


def summarize(
    scores: np.ndarray, n_boot: int = 10_000, ci: float = 0.95, rng: np.random.Generator | int | None = None
) -> dict[str, float | int | list[float]]:
    """Mean and IQM with stratified bootstrap CIs (seeds and episodes) of a ``(seeds, episodes)`` matrix."""
    a = _as_matrix(scores)
    g = _rng(rng)
    return {
        "mean": float(a.mean()),
        "ci": list(stratified_bootstrap_ci(a, np.mean, n_boot, ci, g)),
        "iqm": float(iqm(a)),
        "iqm_ci": list(stratified_bootstrap_ci(a, iqm, n_boot, ci, g)),
        "std": float(a.std()),
        "seed_means": [float(m) for m in a.mean(axis=1)],
        "n_seeds": int(a.shape[0]),
        "n_episodes": int(a.shape[1]),
    }


# -- comparing algorithms over runs x tasks (rliable's aggregate tools) ----------------------------------
def _runs_by_tasks(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty (runs, tasks) matrix, got shape {a.shape}; "
                         "build it with agents.evaluate.rliable_scores")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN/inf scores; drop the runs whose score is undefined first")
    return a


def _task_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½ P(X = Y) per task (Mann–Whitney U / (n_x n_y)) of ``x (..., n_x, tasks)`` against
    ``y (..., n_y, tasks)``: every pair of runs compared; :return: ``(..., tasks)``"""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return gt + 0.5 * eq


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Probability that algorithm X beats algorithm Y on a task (Agarwal et al. 2021, sec. 4.3).

    For each task, the Mann–Whitney U statistic of X's runs against Y's normalised by ``n_x n_y``:
    the chance that a random run of X scores higher than a random run of Y, ties counting half;
    then the mean over tasks. 1.0: X beats Y on every pair; 0.5: no difference. Same value as
    ``rliable.metrics.probability_of_improvement``.

    :param x: scores of X, ``(runs_x, tasks)``
    :param y: scores of Y, ``(runs_y, tasks)``, same tasks (the run counts may differ)
    """
    a, b = _runs_by_tasks(x, "x"), _runs_by_tasks(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x has {a.shape[1]} tasks and y {b.shape[1]}; compare both on the same tasks")
    return float(_task_improvement(a, b).mean())


def _stratified_runs(a: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, runs, tasks)`` resamples of ``a (runs, tasks)``: runs redrawn within each task (the
    strata), independently per task, as rliable's ``StratifiedBootstrap``."""
    idx = rng.integers(0, a.shape[0], size=(n_boot, *a.shape))
    return a[idx, np.arange(a.shape[1])]


def probability_of_improvement_ci(
    x: np.ndarray,
    y: np.ndarray,
    n_boot: int = 2_000,
    ci: float = 0.95,
    rng: np.random.Generator | int | None = None,
    chunk: int = 256,
) -> dict[str, float | int | list[float]]:
    """:func:`probability_of_improvement` with a stratified bootstrap percentile CI.

    Each resample redraws X's runs and, independently, Y's runs within every task (rliable's
    ``StratifiedIndependentBootstrap``), so the interval reflects how few runs each side has.

    :param x: scores of X, ``(runs_x, tasks)``
    :param y: scores of Y, ``(runs_y, tasks)``
    :param n_boot: bootstrap resamples
    :param ci: coverage, e.g. 0.95
    :param rng: a Generator or a seed
    :param chunk: resamples compared at once (bounds memory: ``chunk * runs_x * runs_y * tasks``)
    :return: ``{"p", "ci": [low, high], "n_runs_x", "n_runs_y", "n_tasks"}``
    """
    p = probability_of_improvement(x, y)
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    g = _rng(rng)
    xb, yb = _stratified_runs(a, n_boot, g), _stratified_runs(b, n_boot, g)
    boot = np.empty(n_boot)
    for start in range(0, n_boot, chunk):  # the pairwise comparisons, not the resamples, need the memory
        boot[start:start + chunk] = _task_improvement(xb[start:start + chunk], yb[start:start + chunk]).mean(axis=-1)
    lo, hi = _percentiles(boot, ci)
    return {"p": p, "ci": [lo, hi], "n_runs_x": int(a.shape[0]), "n_runs_y": int(b.shape[0]), "n_tasks": int(a.shape[1])}


def performance_profile(
    scores: np.ndarray,
    taus: np.ndarray,
    n_boot: int = 2_000,
    ci: float = 0.95,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Score distribution (performance profile) with a stratified bootstrap band (Agarwal et al. 2021, sec. 4.2).

    The profile at ``tau`` is the fraction of all (run, task) scores above ``tau`` — rliable's
    ``create_performance_profile`` with its default ``use_score_distribution=True``. The band redraws
    runs within each task.

    :param scores: ``(runs, tasks)``
    :param taus: thresholds ``(k,)``
    :param n_boot: bootstrap resamples
    :param ci: coverage, e.g. 0.95
    :param rng: a Generator or a seed
    :return: ``(profile (k,), band (2, k))``: the profile and the lower/upper bounds
    """
    a = _runs_by_tasks(scores, "scores")
    t = np.asarray(taus, dtype=np.float64).reshape(-1)
    if t.size == 0:
        raise ValueError("taus is empty; pass thresholds, e.g. np.linspace(min_score, max_score, 101)")
    profile = (a.reshape(-1, 1) > t).mean(axis=0)
    boot = _stratified_runs(a, n_boot, _rng(rng)).reshape(n_boot, -1)  # (n_boot, runs * tasks)
    # the fraction of scores above each tau = 1 - (empirical CDF at tau), from sorted scores
    sorted_boot = np.sort(boot, axis=1)
    above = 1.0 - np.stack([np.searchsorted(row, t, side="right") for row in sorted_boot]) / boot.shape[1]
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}; e.g. ci=0.95 for a 95% interval")
    alpha = (1 - ci) / 2
    band = np.percentile(above, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return profile, band
