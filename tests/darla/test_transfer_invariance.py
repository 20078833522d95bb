"""Twin frames of results/transfer/invariance.py: the same states rendered in two domains."""

import dataclasses

import numpy as np
import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def inv():
    return load_script("results/transfer/invariance.py", "transfer_invariance")


def test_twins_share_every_state_and_differ_only_where_the_domain_does(inv):
    same_a, same_b = inv.twin_frames("A-default", twin="A-default", episodes=2, max_steps=4, obs_size=32)
    np.testing.assert_array_equal(same_a, same_b)  # one domain twice: identical frames
    a, b = inv.twin_frames("A-changed", episodes=2, max_steps=4, obs_size=32)
    assert a.shape == b.shape == same_a.shape and a.shape[1:] == (32, 32, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5  # the changed room's floor and walls


def test_a_target_that_moves_the_agent_is_not_a_twin(inv):
    from envs.seekavoid.domains import get_domain

    jittered = dataclasses.replace(get_domain("A-default"), name="A-default-jitter", spawn_jitter=0.5)
    with pytest.raises(RuntimeError, match="pose differs"):
        inv.twin_frames(jittered, episodes=3, max_steps=2, obs_size=32)


def test_shift_ratio_and_agreement_bounds(inv):
    rng = np.random.default_rng(0)
    f = rng.normal(size=(500, 8))
    assert inv.shift_ratio(f, f) == 0.0
    assert inv.shift_ratio(f, rng.normal(size=(500, 8))) == pytest.approx(1.0, abs=0.15)  # unrelated frames
    acts = rng.integers(3, size=600)
    same, chance = inv.agreement(acts, acts)
    assert same == 1.0 and chance == pytest.approx(1 / 3, abs=0.06)


def test_on_policy_twins_flag_the_episodes_whose_decisions_the_target_changes(inv):
    forward = inv.on_policy_twins(lambda f: np.full(len(f), 2), "A-changed", episodes=2, obs_size=32)
    assert forward["step_agreement"] == 1.0 and forward["changed_episodes"] == 0.0 and forward["steps"] >= 2

    def by_floor(frames):  # forward on a reddish (default, orange) floor, turn left on a bluish one
        floor = frames[:, 24:].astype(float)
        return np.where(floor[..., 2].mean((1, 2)) > floor[..., 0].mean((1, 2)), 0, 2)

    r = inv.on_policy_twins(by_floor, "A-changed", episodes=2, obs_size=32)
    assert r["changed_episodes"] == 1.0 and r["step_agreement"] < 0.5
