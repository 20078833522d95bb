"""Zero-shot evaluation numbers pinned by hand: every return is chosen by the test (an env whose reward is a
table of (domain, policy, episode seed)), so the means, the per-domain and overall ratios (target mean / source
mean, the source of an episode being its mean over the source domains) and their intervals are known exactly,
in the result, in ``evaluation.json`` and ``evaluation.md``, and in the transfer study's ``summary.json`` rows.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.evaluate import write_evaluation, zero_shot_evaluate
from agents.stats import ratio_ci, summarize
from tests.scripts import load_script

EPISODES, SEED = 6, 100
SOURCE, TARGET = ["A-default", "B-default"], ["A-changed", "A-third"]
#: returns[domain][policy k][episode i]: two policies, six episodes; chosen so that no two ways of pairing or
#: averaging them agree (every swap, transpose or wrong mean gives another number)
RETURNS = {
    "A-default": [[1.0, 1.0, 0.5, 1.0, 0.0, 1.0], [1.0, 0.5, 1.0, 1.0, 1.0, 0.0]],
    "B-default": [[0.5, 1.0, 1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.5, 0.5, 1.0]],
    "A-changed": [[0.0, 1.0, 0.5, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.5, 0.0, 0.0]],
    "A-third": [[0.0, 0.0, 0.0, 1.0, -1.0, 0.0], [0.5, 0.0, 0.0, 0.0, 0.0, 0.0]],
}


class TableEnv(gym.Env):
    """Two steps per episode whose rewards (a quarter, then three quarters) sum to
    ``RETURNS[domain][action][seed - SEED]`` (the action is the policy)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, domain: str):
        self.domain, self.episode, self.t = domain, None, 0

    def reset(self, *, seed=None, options=None):
        self.episode, self.t = seed - SEED, 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        total = RETURNS[self.domain][int(action)][self.episode]
        return np.zeros(2, np.float32), total * (0.25 if self.t == 1 else 0.75), self.t == 2, False, {}


class FixedAction(BaseAlgorithm):
    """A stand-in SB3 model that always plays ``action`` (so policy ``k`` reads row ``k`` of the table)."""

    def __init__(self, action: int):  # no BaseAlgorithm.__init__: nothing to train
        self.action = action

    def _setup_model(self):  # pragma: no cover - abstract in SB3
        pass

    def learn(self, *a, **kw):  # pragma: no cover
        raise NotImplementedError

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.array(self.action), None


@pytest.fixture(scope="module")
def result():
    return zero_shot_evaluate([FixedAction(0), FixedAction(1)], SOURCE + TARGET, env_factory=TableEnv,
                              episodes=EPISODES, seed=SEED, source=SOURCE, progress=False, n_boot=4000)


def _a(name):
    return np.asarray(RETURNS[name])


def test_returns_are_the_table_row_per_policy(result):
    for name in RETURNS:
        np.testing.assert_array_equal(result["returns"][name], RETURNS[name])  # the episode's summed reward
        np.testing.assert_array_equal(result["lengths"][name], np.full((2, EPISODES), 2))
        assert result["summary"][name]["mean_length"] == 2.0
    assert result["source"] == SOURCE and result["target"] == TARGET


def test_per_domain_means_and_ratios_are_target_mean_over_source_mean(result):
    source_scores = (_a("A-default") + _a("B-default")) / 2  # an episode's source return: mean over the source
    for name in RETURNS:
        assert result["summary"][name]["mean"] == pytest.approx(_a(name).mean())
        assert result["summary"][name]["split"] == ("source" if name in SOURCE else "target")
    assert set(result["ratios"]) == set(TARGET)
    for name in TARGET:
        r = result["ratios"][name]
        assert r["ratio"] == pytest.approx(_a(name).mean() / source_scores.mean())
        assert r["target_mean"] == pytest.approx(_a(name).mean())
        assert r["source_mean"] == pytest.approx(source_scores.mean())
    assert result["ratios"]["A-changed"]["ratio"] == pytest.approx(16 / 37)  # by hand: 4/12 over 18.5/24


def test_overall_numbers_are_the_means_over_source_and_over_target_domains(result):
    source_scores = (_a("A-default") + _a("B-default")) / 2
    target_scores = (_a("A-changed") + _a("A-third")) / 2
    o = result["overall"]
    assert o["source"]["mean"] == pytest.approx(37 / 48) and o["target"]["mean"] == pytest.approx(0.1875)
    assert o["ratio"]["mean"] == pytest.approx(9 / 37)
    np.testing.assert_allclose(o["source"]["seed_means"], source_scores.mean(axis=1))
    np.testing.assert_allclose(o["target"]["seed_means"], target_scores.mean(axis=1))


def test_intervals_are_95_percent_paired_bootstrap_intervals(result):
    """The intervals of the result equal the library's 95% ones computed afresh from the table (to bootstrap
    noise: with 12 returns per domain the percentiles move in steps of 1/24): a wrong level, unpaired or
    unresampled interval is further off."""
    source_scores = (_a("A-default") + _a("B-default")) / 2
    target_scores = (_a("A-changed") + _a("A-third")) / 2
    for name in RETURNS:
        ref = summarize(_a(name), n_boot=20_000, rng=1)
        np.testing.assert_allclose(result["summary"][name]["ci"], ref["ci"], atol=0.07)
        np.testing.assert_allclose(result["summary"][name]["iqm_ci"], ref["iqm_ci"], atol=0.09)
    ref = ratio_ci(target_scores, source_scores, n_boot=20_000, rng=1)
    np.testing.assert_allclose(result["overall"]["ratio"]["ci"], ref["ci"], atol=0.07)
    ref = ratio_ci(_a("A-changed"), source_scores, n_boot=20_000, rng=1)
    np.testing.assert_allclose(result["ratios"]["A-changed"]["ci"], ref["ci"], atol=0.07)
    narrow = ratio_ci(_a("A-changed"), source_scores, n_boot=20_000, ci=0.9, rng=1)["ci"]
    assert np.diff(result["ratios"]["A-changed"]["ci"])[0] > np.diff(narrow)[0] + 0.03  # not a 90% interval


def test_evaluation_json_and_md_carry_the_same_numbers(result, tmp_path):
    out = write_evaluation(result, tmp_path / "eval")
    written = json.loads((out / "evaluation.json").read_text())
    assert written["overall"]["ratio"]["mean"] == pytest.approx(9 / 37)
    assert written["ratios"]["A-third"]["ratio"] == pytest.approx(_a("A-third").mean() / (37 / 48))
    assert written["summary"]["B-default"]["mean"] == pytest.approx(_a("B-default").mean())
    md = (out / "evaluation.md").read_text()
    ratio = result["ratios"]["A-changed"]
    assert f"| A-changed | target | {result['summary']['A-changed']['mean']:.3f}" in md
    assert f"{ratio['ratio']:.3f} [{ratio['ci'][0]:.2f}, {ratio['ci'][1]:.2f}]" in md
    o = result["overall"]["ratio"]
    assert f"| {o['mean']:.3f} [{o['ci'][0]:.2f}, {o['ci'][1]:.2f}] |" in md


def test_transfer_study_summary_rows_are_target_over_source(result, tmp_path):
    """results/transfer/run.py's summary.json rows, from this evaluation.json."""
    study = load_script("results/transfer/run.py", "transfer_study_pinned")
    write_evaluation(result, tmp_path / "eval")
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    row = study.model_row(evaluation, n_boot=4000, target="A-changed")
    assert row["source"]["mean"] == pytest.approx(37 / 48)
    assert row["target"]["mean"] == pytest.approx(1 / 3)
    assert row["target"]["ratio"]["mean"] == pytest.approx(16 / 37)
    assert row["hard"]["domains"] == ["A-third"]
    assert row["hard"]["ratio"]["mean"] == pytest.approx(_a("A-third").mean() / (37 / 48))
    ref = ratio_ci(_a("A-changed"), (_a("A-default") + _a("B-default")) / 2, n_boot=20_000, rng=1)["ci"]
    np.testing.assert_allclose(row["target"]["ratio"]["ci"], ref, atol=0.07)
    assert {n: v["mean"] for n, v in row["per_domain"].items()} == pytest.approx(
        {n: _a(n).mean() for n in RETURNS})


def test_an_undefined_ratio_is_null_in_the_json_and_a_dash_in_the_table(tmp_path, monkeypatch):
    """Every source return 0: target/source is undefined; strict JSON writes null (not NaN, not 0)."""
    zeros = {name: [[0.0] * EPISODES] * 2 if name in SOURCE else RETURNS[name] for name in RETURNS}
    monkeypatch.setitem(globals(), "RETURNS", zeros)
    result = zero_shot_evaluate([FixedAction(0), FixedAction(1)], SOURCE + TARGET, env_factory=TableEnv,
                                episodes=EPISODES, seed=SEED, source=SOURCE, progress=False, n_boot=200)
    assert np.isnan(result["overall"]["ratio"]["mean"])
    out = write_evaluation(result, tmp_path / "eval")
    written = json.loads((out / "evaluation.json").read_text())
    assert written["overall"]["ratio"]["mean"] is None and written["ratios"]["A-changed"]["ratio"] is None
    assert "| A-changed | target | 0.333 [" in (out / "evaluation.md").read_text()
    assert "| – |" in (out / "evaluation.md").read_text()


def test_the_default_source_is_what_the_policies_recorded_they_trained_in():
    from agents.evaluate import _split

    names = ["A-default", "B-default", "A-changed"]
    assert _split(names, None, [{"train_domains": ["B-default"], "env_kwargs": {}}]) == (
        ["B-default"], ["A-default", "A-changed"])
    assert _split(names, None, [{"train_domains": [], "env_kwargs": {"domain": "A-default, B-default"}}]) == (
        ["A-default", "B-default"], ["A-changed"])
