"""SeekAvoid env: API, seeding, paired layouts, reward semantics, rendering of the domains."""

import math
import sys

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401  (headless, registers the env)
from envs.seekavoid import SeekAvoidEnv
from envs.seekavoid.domains import get_domain, get_split, list_domains

SIZE = 32
TURN_LEFT, TURN_RIGHT, FORWARD = 0, 1, 2


@pytest.fixture(scope="module")
def env():
    e = SeekAvoidEnv(domain=list_domains(), obs_size=SIZE)
    yield e
    e.close()


def _seek(env, good: bool, max_steps: int = 60):
    """Scripted policy: turn toward the nearest good (or bad) object, then walk to it."""
    total, steps = 0.0, 0
    info = env._info()
    while steps < max_steps:
        angle = info["factors"]["good_angle" if good else "bad_angle"]
        action = FORWARD if abs(angle) < math.radians(12) else (TURN_LEFT if angle > 0 else TURN_RIGHT)
        _, r, term, trunc, info = env.step(action)
        total, steps = total + r, steps + 1
        if term or trunc:
            return total, term, trunc, steps
    return total, False, False, steps


def test_passes_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    e = gymnasium.make("darla/SeekAvoid-v0", domain="source", obs_size=SIZE)
    check_env(e.unwrapped, skip_render_check=True)
    assert e.observation_space.shape == (SIZE, SIZE, 3) and e.action_space.n == 3
    e.close()


def test_same_seed_same_bytes_and_rewards():
    a, b = (SeekAvoidEnv(domain="source", obs_size=SIZE) for _ in range(2))
    actions = np.random.default_rng(0).integers(0, 3, size=80)
    runs = []
    for e in (a, b):
        obs, info = e.reset(seed=11)
        frames, rewards, domains = [obs], [], [info["domain"]]
        for act in actions:
            obs, r, term, trunc, info = e.step(int(act))
            frames.append(obs)
            rewards.append(r)
            if term or trunc:
                obs, info = e.reset()
                frames.append(obs)
                domains.append(info["domain"])
        runs.append((np.stack(frames), rewards, domains))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:]


LAYOUT_KEYS = ("good_side", "agent_x", "agent_z", "agent_dir", "good_dist", "good_angle", "bad_dist", "bad_angle")


def test_same_seed_gives_same_layout_in_every_domain(env):
    for seed in range(4):
        layouts = {}
        for name in list_domains():
            _, info = env.reset(seed=seed, options={"domain": name})
            assert info["domain"] == name
            layouts[name] = tuple(round(info["factors"][k], 9) for k in LAYOUT_KEYS)
        assert len(set(layouts.values())) == 1, layouts


def test_layout_and_appearance_vary_across_seeds(env):
    sides = {env.reset(seed=s, options={"domain": "A-default"})[1]["factors"]["good_side"] for s in range(12)}
    assert sides == {0.0, 1.0}
    lights = {round(env.reset(seed=s, options={"domain": "A-default"})[1]["factors"]["light"], 6) for s in range(3)}
    assert len(lights) == 3


def test_multi_domain_env_draws_one_source_domain_per_episode_reproducibly():
    e = SeekAvoidEnv(domain="source", obs_size=SIZE)
    seqs = []
    for _ in range(2):
        e.reset(seed=5)
        seqs.append([e.reset()[1]["domain"] for _ in range(30)])
    assert seqs[0] == seqs[1]
    assert set(seqs[0]) == {d.name for d in get_split("source")}
    e.close()


@pytest.mark.parametrize("domain", ["A-default", "B-changed"])
def test_walking_to_the_good_object_pays_plus_one_and_ends(env, domain):
    for seed in range(3):
        env.reset(seed=seed, options={"domain": domain})
        total, term, trunc, steps = _seek(env, good=True)
        assert (total, term, trunc) == (1.0, True, False), (seed, steps)


def test_walking_to_the_bad_object_pays_minus_one_and_ends(env):
    env.reset(seed=1, options={"domain": "A-changed"})
    total, term, trunc, _ = _seek(env, good=False)
    assert (total, term, trunc) == (-1.0, True, False)


def test_episode_truncates_at_the_step_limit_without_reward(env):
    env.reset(seed=0, options={"domain": "A-default"})
    rewards = []
    for i in range(60):
        _, r, term, trunc, _ = env.step(TURN_LEFT)
        rewards.append(r)
        assert not term and trunc == (i == 59)
    assert sum(rewards) == 0


def test_random_policy_touches_in_most_episodes_with_mean_return_near_zero():
    e = SeekAvoidEnv(domain="A-default", obs_size=16)
    rng = np.random.default_rng(0)
    returns, touched = [], 0
    e.reset(seed=0)
    for _ in range(40):
        total = 0.0
        while True:
            _, r, term, trunc, _ = e.step(int(rng.integers(3)))
            total += r
            if term or trunc:
                break
        returns.append(total)
        touched += term
        e.reset()
    assert touched >= 20 and abs(np.mean(returns)) < 0.35
    e.close()


def test_collect_layout_removes_touched_objects_and_ends_when_all_good_collected():
    e = SeekAvoidEnv(domain="A-default", layout="collect", num_objects=2, obs_size=SIZE)
    _, info = e.reset(seed=0)
    assert len(e.objects) == 4 and info["factors"]["good_side"] == -1
    good_paid = 0
    for _ in range(120):
        before = [o.reward for o in e.objects]
        angle = info["factors"]["good_angle"]
        action = FORWARD if abs(angle) < math.radians(12) else (TURN_LEFT if angle > 0 else TURN_RIGHT)
        _, r, term, trunc, info = e.step(action)
        after = [o.reward for o in e.objects]
        removed = sorted(before)
        for v in after:
            removed.remove(v)
        assert r == sum(removed)  # each touched object pays its reward once and disappears
        good_paid += removed.count(1.0)
        if term or trunc:
            break
    assert term and not trunc and good_paid == 2
    assert not any(o.reward > 0 for o in e.objects)
    e.close()


def _mean_rgb(frame, rows):
    return frame[rows].reshape(-1, 3).mean(axis=0)


def test_first_frame_shows_floor_walls_in_room_colours(env):
    top, bottom = slice(0, 3), slice(SIZE - 3, SIZE)
    obs, _ = env.reset(seed=0, options={"domain": "A-default"})
    wall, floor = _mean_rgb(obs, top), _mean_rgb(obs, bottom)
    assert wall.argmax() == 1 and floor[0] > floor[1] > floor[2]  # green walls, orange floor
    obs2, _ = env.reset(seed=0, options={"domain": "A-changed"})
    wall, floor = _mean_rgb(obs2, top), _mean_rgb(obs2, bottom)
    assert wall.argmax() == 0 and floor.argmax() == 2  # red walls, blue floor
    assert np.abs(obs.astype(int) - obs2).mean() > 40  # strongly different in pixel space


def test_first_frame_shows_both_objects(env):
    obs, _ = env.reset(seed=2, options={"domain": "B-default"})
    for _ in env.objects:
        f = env._info()["factors"]
        assert abs(f["good_angle"]) < math.radians(30) and abs(f["bad_angle"]) < math.radians(30)
    objects = list(env.objects)
    for o in objects:  # remove one object at a time: each covers a sizeable part of the frame
        env.entities.remove(o)
        env._render_static()
        without = env.render_obs()
        env.entities.append(o)
        assert (np.abs(without.astype(int) - obs).sum(axis=2) > 30).mean() > 0.03


def test_factor_vector_follows_factor_names(env):
    _, info = env.reset(seed=0, options={"domain": "B-changed"})
    vec = env.factor_vector()
    assert vec.shape == (len(SeekAvoidEnv.FACTOR_NAMES),) and vec.dtype == np.float32
    names = SeekAvoidEnv.FACTOR_NAMES
    assert vec[names.index("pair")] == 1 and vec[names.index("room")] == 1
    assert np.array_equal(vec, SeekAvoidEnv.factors_to_vector(info["factors"]))
    _, _, _, _, info = env.step(FORWARD)
    assert info["domain"] == "B-changed" and set(info["factors"]) == set(names)


def test_custom_domain_object_and_constructor_errors():
    custom = get_domain("A-default").__class__("A-mauve", "A", {"name": "mauve", "floor": (0.6, 0.3, 0.6),
                                                              "wall": (0.9, 0.9, 0.9)})
    e = SeekAvoidEnv(domain=custom, obs_size=16)
    _, info = e.reset(seed=0)
    assert info["domain"] == "A-mauve" and info["factors"]["room"] == -1
    e.close()
    with pytest.raises(ValueError, match="A-default"):
        SeekAvoidEnv(domain="C-default", obs_size=16)
    with pytest.raises(ValueError, match="choice, collect"):
        SeekAvoidEnv(layout="maze", obs_size=16)


def test_works_with_standard_wrappers_and_make_time_limit():
    e = gymnasium.make("darla/SeekAvoid-v0", domain="A-default", obs_size=SIZE, max_episode_steps=5)
    e = gymnasium.wrappers.FrameStackObservation(gymnasium.wrappers.GrayscaleObservation(e), 2)
    obs, _ = e.reset(seed=0)
    assert obs.shape == (2, SIZE, SIZE)
    for _ in range(5):
        obs, _, term, trunc, _ = e.step(TURN_LEFT)
    assert trunc and not term
    e.close()


def test_observable_rows_mark_objects_in_view_and_not_behind_the_agent():
    from envs.seekavoid import SeekAvoidEnv, observable_rows

    env = SeekAvoidEnv(domain="A-default", obs_size=16)
    _, info = env.reset(seed=3)
    names = SeekAvoidEnv.FACTOR_NAMES
    vectors = [SeekAvoidEnv.factors_to_vector(info["factors"])]
    for _ in range(9):  # 9 × 20° = turned around: both objects behind
        _, _, _, _, info = env.step(0)
        vectors.append(SeekAvoidEnv.factors_to_vector(info["factors"]))
    rows = observable_rows(np.stack(vectors), names)
    assert rows["good_side"][0] and rows["pair"][0]  # the first frame shows both objects
    assert not rows["pair"][-1] and not rows["good_angle"][-1]
    assert "room" not in rows  # always visible: no mask
    env.close()


def _frames(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    return [obs] + [env.step(a)[0] for a in actions]


def test_envs_sharing_a_process_each_draw_their_own_scene():
    # miniworld compiles every env's static scene (rooms, objects, light) into one shared display list;
    # interleaved envs (a DummyVecEnv) must still each render exactly what they would alone.
    actions = [0, 2, 1, 2]
    specs = [("A-default", 3), ("B-changed", 4), ("A-changed-dim", 5)]
    alone = []
    for domain, seed in specs:
        env = gymnasium.make("darla/SeekAvoid-v0", domain=domain, obs_size=32)
        alone.append(_frames(env, seed, actions))
        env.close()
    together = [gymnasium.make("darla/SeekAvoid-v0", domain=d, obs_size=32) for d, _ in specs]
    got = [[e.reset(seed=s)[0]] for e, (_, s) in zip(together, specs)]  # every reset before any step
    for a in actions:
        for frames, e in zip(got, together):
            frames.append(e.step(a)[0])
    for e in together:
        e.close()
    for (domain, _), mine, ref in zip(specs, got, alone):
        for t, (x, y) in enumerate(zip(mine, ref)):
            np.testing.assert_array_equal(x, y, err_msg=f"{domain}, step {t}")


def test_seekavoid_is_a_package_of_the_envs_core_and_its_old_entry_point_still_resolves():
    import importlib
    import subprocess

    from gymnasium.envs.registration import load_env_creator

    import envs.seekavoid
    from envs.seekavoid.env import SeekAvoidEnv as Env

    # the flat module envs/seekavoid.py of earlier versions: its entry point names the same class
    assert load_env_creator("envs.seekavoid:SeekAvoidEnv") is Env
    assert load_env_creator(gymnasium.spec("darla/SeekAvoid-v0").entry_point) is Env
    assert envs.seekavoid.RENDER_REVISION == importlib.import_module("envs.seekavoid.env").RENDER_REVISION
    with pytest.raises(AttributeError, match="envs.seekavoid' has no attribute 'nope'"):
        envs.seekavoid.nope  # noqa: B018
    # importing the core (domains, provider registry) does not load miniworld and OpenGL
    code = "import sys, envs, envs.seekavoid.domains; print('miniworld' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
