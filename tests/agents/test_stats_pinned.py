"""Bootstrap intervals pinned to theory: the width of each interval and each resampling mode against its
closed-form standard error, and the coverage of the 95% interval by Monte Carlo on a known distribution.

A 90% interval labelled 95% is 16% narrower (1.645 vs 1.960 standard errors), a mode that resamples nothing
has width 0, a mode that resamples the wrong level has the other level's width: each is far outside the
tolerances here (5-12%, set by the bootstrap's own noise at these sizes, seeds fixed).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from agents.stats import bootstrap_ci, hierarchical_ratio_ci, ratio_ci, stratified_bootstrap_ci, summarize

Z95 = norm.ppf(0.975)


def _width_in_se(ci: tuple[float, float] | list[float], se: float, ci_level: float = 0.95) -> float:
    """Interval width over the width a normal interval of that level would have (1.0 = as theory says)."""
    return (ci[1] - ci[0]) / (2 * norm.ppf(0.5 + ci_level / 2) * se)


def test_bootstrap_ci_of_the_mean_has_the_normal_width_and_is_centred():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=400)
    se = x.std() / np.sqrt(x.size)  # the bootstrap's standard error of the mean: population std (ddof=0)
    for level in (0.95, 0.9, 0.5):
        ci = bootstrap_ci(x, n_boot=20_000, ci=level, rng=1)
        assert _width_in_se(ci, se, level) == pytest.approx(1.0, abs=0.04), level
        assert (ci[0] + ci[1]) / 2 == pytest.approx(x.mean(), abs=0.05 * se * 4)


def test_the_95_percent_interval_covers_the_true_mean_95_percent_of_the_time():
    """Monte Carlo: 400 samples of 60 draws from N(0, 1); the percentile bootstrap's 95% interval covers 0 in
    about 94% of them (it is slightly narrow at n = 60), a 90% one in about 89%: the band separates them."""
    rng = np.random.default_rng(2)
    covered = [int(lo <= 0.0 <= hi) for lo, hi in
               (bootstrap_ci(rng.normal(size=60), n_boot=2000, rng=rng) for _ in range(400))]
    coverage = np.mean(covered)
    assert 0.92 <= coverage <= 0.975, coverage


def _two_level(seeds: int, episodes: int, between: float, within: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, between, size=(seeds, 1)) + rng.normal(0, within, size=(seeds, episodes))


def _theory_se(a: np.ndarray, resample: str) -> float:
    """Standard error of the grand mean under each resampling mode (population variances, as the bootstrap)."""
    s, e = a.shape
    between = a.mean(axis=1).var() / s  # whole seeds redrawn
    within = a.var(axis=1).mean() / (s * e)  # episodes redrawn within each seed
    return float(np.sqrt({"seeds": between, "episodes": within, "both": between + within}[resample]))


@pytest.mark.parametrize("resample", ["episodes", "seeds", "both"])
@pytest.mark.parametrize("between, within", [(1.0, 0.3), (0.2, 2.0), (1.0, 4.0)])
def test_each_resampling_mode_has_the_width_of_its_own_level(resample, between, within):
    a = _two_level(30, 40, between, within)
    ci = stratified_bootstrap_ci(a, n_boot=8000, rng=3, resample=resample)
    assert _width_in_se(ci, _theory_se(a, resample)) == pytest.approx(1.0, abs=0.08)


def test_the_modes_differ_where_the_levels_do():
    """Between-seed spread dominates: episodes-only is much narrower than seeds-only (redrawing seeds also carries
    the episode noise inside each seed mean, so the reverse does not hold)."""
    seedy = _two_level(30, 40, 1.0, 0.1)
    w = {m: np.diff(stratified_bootstrap_ci(seedy, n_boot=4000, rng=0, resample=m))[0] for m in
         ("episodes", "seeds", "both")}
    assert w["episodes"] < w["seeds"] / 5 and w["seeds"] <= w["both"] * 1.05


def test_summarize_is_the_mean_and_a_both_levels_interval():
    a = _two_level(20, 30, 0.5, 1.0, seed=4) + 2.0
    s = summarize(a, n_boot=8000, rng=0)
    assert s["mean"] == pytest.approx(a.mean()) and s["n_seeds"] == 20 and s["n_episodes"] == 30
    np.testing.assert_allclose(s["seed_means"], a.mean(axis=1))
    assert _width_in_se(s["ci"], _theory_se(a, "both")) == pytest.approx(1.0, abs=0.08)


def test_ratio_is_target_mean_over_source_mean_and_its_interval_has_the_delta_method_width():
    rng = np.random.default_rng(5)
    source = rng.uniform(1.0, 3.0, size=(1, 2000))
    target = rng.uniform(0.0, 1.0, size=(1, 2000))  # independent of source: the delta method is simple
    r = ratio_ci(target, source, n_boot=8000, rng=0, resample="episodes")
    t, s = target.mean(), source.mean()
    assert r["ratio"] == pytest.approx(t / s) and r["target_mean"] == pytest.approx(t)
    assert r["source_mean"] == pytest.approx(s) and r["undefined_fraction"] == 0.0
    n = target.size
    se = (t / s) * np.sqrt(target.var() / n / t**2 + source.var() / n / s**2)  # Var(T/S) by the delta method
    assert _width_in_se(r["ci"], se) == pytest.approx(1.0, abs=0.06)
    swapped = ratio_ci(source, target, n_boot=100, rng=0)
    assert swapped["ratio"] == pytest.approx(s / t)  # the argument order matters: target first


@pytest.mark.parametrize("resample", ["episodes", "seeds", "both"])
def test_ratio_over_a_constant_source_resamples_like_the_target_alone(resample):
    """With every source return 2, ratio = target mean / 2: its interval is the target's, halved, in each mode."""
    target = _two_level(30, 40, 1.0, 2.0, seed=6) + 5.0
    r = ratio_ci(target, np.full_like(target, 2.0), n_boot=8000, rng=0, resample=resample)
    assert r["ratio"] == pytest.approx(target.mean() / 2)
    assert _width_in_se(r["ci"], _theory_se(target, resample) / 2) == pytest.approx(1.0, abs=0.08)


def test_hierarchical_ratio_resamples_groups_and_within_them():
    rng = np.random.default_rng(7)
    values = np.linspace(0.2, 1.0, 12)
    # no spread within a group: the interval is the spread between groups, sd(values)/sqrt(G) ...
    flat_t = [np.full((2, 5), v) for v in values]
    ones = [np.ones((2, 5)) for _ in values]
    h = hierarchical_ratio_ci(flat_t, ones, n_boot=8000, rng=0)
    assert h["ratio"] == pytest.approx(values.mean()) and h["n_groups"] == 12
    np.testing.assert_allclose(h["group_ratios"], values)
    assert _width_in_se(h["ci"], values.std() / np.sqrt(values.size)) == pytest.approx(1.0, abs=0.1)
    # ... and with identical groups it is the within-group (seeds and episodes) spread of one group
    a = _two_level(20, 30, 0.5, 1.0, seed=8) + 3.0
    same = hierarchical_ratio_ci([a] * 6, [np.ones_like(a)] * 6, n_boot=8000, rng=0)
    assert same["ratio"] == pytest.approx(a.mean())
    assert _width_in_se(same["ci"], _theory_se(a, "both") / np.sqrt(6)) == pytest.approx(1.0, abs=0.1)
    # equal weight per group, not per episode
    big, small = np.full((1, 50), 1.0), np.full((1, 2), 0.0)
    eq = hierarchical_ratio_ci([big, small], [np.ones((1, 50)), np.ones((1, 2))], n_boot=200, rng=rng)
    assert eq["ratio"] == pytest.approx(0.5)
    # the point estimate is target over source, not the reverse
    inv = hierarchical_ratio_ci([np.full((1, 4), 1.0)], [np.full((1, 4), 4.0)], n_boot=100, rng=0)
    assert inv["ratio"] == pytest.approx(0.25) and inv["group_ratios"] == [pytest.approx(0.25)]


def test_summarize_iqm_interval_is_the_iqm_s_not_the_mean_s():
    """Outliers pull the mean far from the IQM: the IQM interval must bracket the IQM, away from the mean."""
    rng = np.random.default_rng(9)
    a = rng.uniform(0.0, 1.0, size=(5, 40))
    a[:, :4] = 50.0  # 10% outliers in every seed
    s = summarize(a, n_boot=2000, rng=0)
    assert s["iqm_ci"][0] <= s["iqm"] <= s["iqm_ci"][1] < 1.0 < s["ci"][0]
