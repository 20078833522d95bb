"""IQM and bootstrap confidence intervals: known values and properties."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import trim_mean

from agents.stats import bootstrap_ci, hierarchical_ratio_ci, iqm, ratio_ci, stratified_bootstrap_ci, summarize


def test_iqm_known_values():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # drops 1, 2 and 7, 8
    assert iqm([0, 0, 0, 100]) == pytest.approx(0.0)  # one outlier of four is cut
    assert iqm([5.0]) == pytest.approx(5.0)
    x = np.random.default_rng(0).normal(size=(3, 37))
    assert iqm(x) == pytest.approx(trim_mean(x, 0.25, axis=None))
    np.testing.assert_allclose(iqm(x, axis=-1), trim_mean(x, 0.25, axis=-1))


def test_bootstrap_ci_contains_the_mean_and_shrinks_with_more_episodes():
    rng = np.random.default_rng(1)
    small, large = rng.choice([-1.0, 0.0, 1.0], size=20), rng.choice([-1.0, 0.0, 1.0], size=2000)
    lo_s, hi_s = bootstrap_ci(small, n_boot=2000, rng=0)
    lo_l, hi_l = bootstrap_ci(large, n_boot=2000, rng=0)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5
    lo, hi = bootstrap_ci(large, stat=iqm, n_boot=500, rng=0)
    assert lo <= iqm(large) <= hi


def test_bootstrap_ci_is_reproducible_with_a_seed_and_rejects_bad_ci():
    x = np.arange(10.0)
    assert bootstrap_ci(x, n_boot=300, rng=7) == bootstrap_ci(x, n_boot=300, rng=7)
    with pytest.raises(ValueError, match="ci must be in"):
        bootstrap_ci(x, ci=95)


def test_stratified_bootstrap_resamples_seeds_and_episodes_separately():
    # every seed identical: resampling seeds alone cannot move the mean
    same = np.tile(np.array([0.0, 1.0, 1.0, 0.0]), (3, 1))
    assert stratified_bootstrap_ci(same, n_boot=500, rng=0, resample="seeds") == (0.5, 0.5)
    # constant episodes within seeds: resampling episodes alone cannot move the mean
    per_seed = np.array([[0.0] * 5, [1.0] * 5, [0.5] * 5])
    assert stratified_bootstrap_ci(per_seed, n_boot=500, rng=0, resample="episodes") == (0.5, 0.5)
    lo, hi = stratified_bootstrap_ci(per_seed, n_boot=2000, rng=0, resample="both")
    assert lo < 0.5 < hi
    with pytest.raises(ValueError, match="valid: episodes, seeds, both"):
        stratified_bootstrap_ci(per_seed, resample="runs")


def test_ratio_ci_is_paired_by_seed_and_episode():
    rng = np.random.default_rng(0)
    source = rng.uniform(0.5, 1.5, size=(3, 40))
    r = ratio_ci(0.5 * source, source, n_boot=1000, rng=0)
    # paired resampling: every resample keeps the exact ratio
    assert r["ratio"] == pytest.approx(0.5) and r["ci"] == pytest.approx([0.5, 0.5])
    shuffled = ratio_ci(0.5 * rng.permutation(source.ravel()).reshape(3, 40), source, n_boot=1000, rng=0)
    assert shuffled["ci"][0] < 0.5 < shuffled["ci"][1]
    with pytest.raises(ValueError, match="paired"):
        ratio_ci(source[:, :10], source)



def test_hierarchical_ratio_ci_carries_the_spread_between_groups():
    rng = np.random.default_rng(0)
    source = rng.uniform(0.8, 1.2, size=(5, 40))
    # two checkpoints that agree: the pooled CI is about as tight as one group's
    agree = hierarchical_ratio_ci([0.9 * source, 0.9 * source], [source, source], n_boot=2000, rng=0)
    assert agree["ratio"] == pytest.approx(0.9) and agree["ci"] == pytest.approx([0.9, 0.9])
    # two that disagree (0.2 and 0.95, each exact within itself): the CI spans both, the estimate sits between
    apart = hierarchical_ratio_ci([0.2 * source, 0.95 * source], [source, source], n_boot=2000, rng=0)
    assert apart["group_ratios"] == pytest.approx([0.2, 0.95]) and apart["n_groups"] == 2
    assert apart["ci"][0] == pytest.approx(0.2, abs=1e-9) and apart["ci"][1] == pytest.approx(0.95, abs=1e-9)
    assert 0.2 < apart["ratio"] < 0.95
    # within-group noise still counts: one group of noisy scores gives ratio_ci's two-level interval
    noisy = rng.permutation((0.5 * source).ravel()).reshape(5, 40)
    one = hierarchical_ratio_ci([noisy], [source], n_boot=2000, rng=0)
    assert one["ci"][0] < 0.5 < one["ci"][1]
    # equal weight per group and a ratio of means: (mean 1.0 + mean 1.0) / (mean 2.0 + mean 1.0), whatever the shapes
    big, small = np.full((3, 10), 2.0), np.full((5, 40), 1.0)
    weighted = hierarchical_ratio_ci([0.5 * big, small], [big, small], n_boot=200, rng=0)
    assert weighted["ratio"] == pytest.approx(2 / 3) and weighted["group_ratios"] == pytest.approx([0.5, 1.0])
    # two copies of one group: each drawn copy gets its own inner resample, so the interval is ~1/sqrt(2) as wide
    wide = ratio_ci(noisy, source, n_boot=4000, rng=1)["ci"]
    twice = hierarchical_ratio_ci([noisy, noisy], [source, source], n_boot=4000, rng=1)["ci"]
    assert 1.25 < (wide[1] - wide[0]) / (twice[1] - twice[0]) < 1.65
    with pytest.raises(ValueError, match="group 1.*paired"):
        hierarchical_ratio_ci([source, source[:, :10]], [source, source])
    with pytest.raises(ValueError, match="one source per target group"):
        hierarchical_ratio_ci([source], [source, source])

def test_ratio_is_undefined_for_a_non_positive_source_return():
    r = ratio_ci(np.ones(10), -np.ones(10), n_boot=100, rng=0)
    assert np.isnan(r["ratio"]) and r["undefined_fraction"] == 1.0


def test_summarize_reports_mean_iqm_and_cis_that_contain_them():
    x = np.random.default_rng(2).choice([-1.0, 1.0], size=(2, 30))
    s = summarize(x, n_boot=1000, rng=0)
    assert s["mean"] == pytest.approx(x.mean()) and s["n_seeds"] == 2 and s["n_episodes"] == 30
    assert s["ci"][0] <= s["mean"] <= s["ci"][1] and s["iqm_ci"][0] <= s["iqm"] <= s["iqm_ci"][1]
