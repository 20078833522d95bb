"""Probability of improvement and performance profiles: known answers, and agreement with rliable."""

from __future__ import annotations

import numpy as np
import pytest

from agents.stats import (
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
)


def _rliable_library():
    try:  # rliable 1.2's bootstrap imports arch, and arch 7 fails to import under pandas 3 (TypeError)
        from rliable import library

        return library
    except Exception as e:
        pytest.skip(f"rliable.library does not import here ({type(e).__name__}: {e})")


@pytest.fixture
def xy():
    """Fixed scores with ties within and across algorithms, unequal run counts."""
    g = np.random.default_rng(3)
    x = np.round(g.normal(1.0, 1.0, (5, 4)), 1)
    y = np.round(g.normal(0.6, 1.0, (7, 4)), 1)
    y[:3, 2] = x[:3, 2]  # ties across algorithms on task 2
    return x, y


def test_probability_of_improvement_known_answers():
    x = np.array([[3.0, 10.0], [4.0, 11.0]])
    y = np.array([[1.0, 0.0], [2.0, 5.0], [2.5, 9.9]])
    assert probability_of_improvement(x, y) == 1.0  # every run of x beats every run of y on both tasks
    assert probability_of_improvement(y, x) == 0.0
    assert probability_of_improvement(x, x) == 0.5
    assert probability_of_improvement(np.ones((3, 2)), np.ones((4, 2))) == 0.5  # all ties count half
    # task 0: x beats y in 3 of 4 pairs; task 1: in 1 of 4 -> mean 0.5; ties count half (task 2: 0.5)
    a = np.array([[2.0, 0.0, 1.0], [3.0, 1.0, 1.0]])
    b = np.array([[1.0, 0.5, 1.0], [2.5, 2.0, 1.0]])
    assert probability_of_improvement(a, b) == pytest.approx((0.75 + 0.25 + 0.5) / 3)


def test_probability_of_improvement_validates_shapes():
    with pytest.raises(ValueError, match="tasks"):
        probability_of_improvement(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\(runs, tasks\)"):
        probability_of_improvement(np.zeros(3), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        probability_of_improvement(np.array([[np.nan]]), np.zeros((1, 1)))


def test_probability_of_improvement_ci_brackets_the_estimate_and_degenerates_when_certain(xy):
    x, y = xy
    r = probability_of_improvement_ci(x, y, n_boot=500, rng=0)
    assert r["ci"][0] <= r["p"] <= r["ci"][1] and 0 < r["ci"][0] < r["ci"][1] < 1
    assert (r["n_runs_x"], r["n_runs_y"], r["n_tasks"]) == (5, 7, 4)
    assert r == probability_of_improvement_ci(x, y, n_boot=500, rng=0)  # seeded
    assert probability_of_improvement_ci(x + 100, y, n_boot=200, rng=0)["ci"] == [1.0, 1.0]
    # runs redrawn per task: x and y anti-correlated across tasks keep P = 0.5 under a joint redraw only
    anti, flat = np.array([[0.0, 1.0], [1.0, 0.0]]), np.full((2, 2), 0.5)
    ci = probability_of_improvement_ci(anti, flat, n_boot=300, rng=0)["ci"]
    assert ci[0] < 0.5 < ci[1]
    # chunking does not change the answer
    assert probability_of_improvement_ci(x, y, n_boot=500, rng=0, chunk=7)["ci"] == r["ci"]


def test_performance_profile_known_array():
    scores = np.array([[0.0, 1.0], [2.0, 3.0]])
    profile, band = performance_profile(scores, [-1.0, 0.0, 0.5, 2.0, 3.0], n_boot=300, rng=0)
    np.testing.assert_allclose(profile, [1.0, 0.75, 0.75, 0.25, 0.0])  # strictly above tau
    assert band.shape == (2, 5)
    assert np.all(band[0] <= profile + 1e-12) and np.all(profile <= band[1] + 1e-12)
    np.testing.assert_allclose(band[:, 0], 1.0)  # nothing is below -1 in any resample
    np.testing.assert_allclose(band[:, -1], 0.0)
    # runs are redrawn within a task: task 0 is 0 or 2, task 1 is 1 or 3, so above 0.5 lies in [0.5, 1]
    assert band[0, 2] >= 0.5 and band[1, 2] == 1.0
    # runs are redrawn per task, not jointly: with anti-correlated tasks a joint redraw would fix the profile
    _, band = performance_profile(np.array([[0.0, 1.0], [1.0, 0.0]]), [0.5], n_boot=300, rng=0)
    assert band[0, 0] < 0.5 < band[1, 0]
    with pytest.raises(ValueError, match="taus is empty"):
        performance_profile(scores, [])


def test_probability_of_improvement_agrees_with_rliable_metrics(xy):
    metrics = pytest.importorskip("rliable.metrics")
    x, y = xy
    assert probability_of_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
    assert probability_of_improvement(y, x) == pytest.approx(metrics.probability_of_improvement(y, x), abs=1e-12)


def test_bootstrap_intervals_agree_with_rliable_library(xy):
    library = _rliable_library()
    from rliable import metrics

    x, y = xy
    state = np.random.get_state()
    try:
        np.random.seed(0)
        # rliable runs scipy's Mann-Whitney per resample and task: ~3 ms each, so few resamples
        _, interval = library.get_interval_estimates({"xy": (x, y)}, metrics.probability_of_improvement, reps=1000)
        taus = np.linspace(-1.5, 3.0, 10)
        profiles, bands = library.create_performance_profile({"x": x}, taus, reps=4000)
    finally:
        np.random.set_state(state)
    ours = probability_of_improvement_ci(x, y, n_boot=4000, rng=1)
    np.testing.assert_allclose(ours["ci"], np.asarray(interval["xy"]).reshape(-1), atol=0.03)  # Monte Carlo error
    profile, band = performance_profile(x, taus, n_boot=4000, rng=1)
    np.testing.assert_allclose(profile, profiles["x"], atol=1e-12)
    np.testing.assert_allclose(band, bands["x"], atol=0.051)  # 20 scores: the band moves in steps of 0.05
