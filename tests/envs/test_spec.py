"""Domains for any env: DomainSpec by value and in YAML, catalogs, splits, the generalised leakage guard."""

import dataclasses
import sys

import gymnasium
import numpy as np
import pytest
import yaml

import envs  # noqa: F401
from envs.seekavoid.domains import get_domain
from envs.spec import DomainCatalog, DomainMixture, DomainSpec, make_domains_env
from tests.envs.toy import SQUARES_ID

DOMAINS_YAML = """
domains:
  - name: plain
  - name: hue
    wrappers:
      - {name: hue_shift, degrees: 90}
  - name: big
    kwargs: {height: 60, width: 80, image_obs: true}
splits:
  source: [plain, big]
  target: [hue, {name: jitter, wrappers: [{name: color_jitter, seed: 4}]}]
"""


@pytest.fixture
def catalog(tmp_path):
    path = tmp_path / "domains.yaml"
    path.write_text(DOMAINS_YAML)
    return DomainCatalog(SQUARES_ID, kwargs={"factors": False}, domains_file=path, obs_size=32)


def test_domain_spec_round_trips_through_a_mapping_and_yaml():
    spec = DomainSpec("hue", "CarRacing-v3", kwargs={"continuous": False, "nested": {"b": 1, "a": [1, 2]}},
                      wrappers=[{"name": "hue_shift", "degrees": 90}, {"name": "random_conv", "seed": 2}])
    again = DomainSpec.from_dict(yaml.safe_load(yaml.safe_dump(spec.to_dict())))
    assert again == spec and hash(again) == hash(spec)
    assert dataclasses.replace(spec, name="other") != spec
    assert dataclasses.replace(spec, name="other").value_key() == spec.value_key()  # same content
    assert dataclasses.replace(spec, wrappers=()).value_key() != spec.value_key()


@pytest.mark.parametrize("build, message", [
    (lambda: DomainSpec("", "X-v0"), "domain name must be a non-empty string"),
    (lambda: DomainSpec("a,b", "X-v0"), "without commas"),
    (lambda: DomainSpec("a", "X-v0", kwargs={"f": object()}), "must be plain data"),
    (lambda: DomainSpec("a", "X-v0", wrappers={"name": "hue_shift"}), "wrappers must be a list"),
    (lambda: DomainSpec("a", "X-v0", wrappers=[{"name": "hue"}]), "domain 'a': unknown wrapper 'hue'"),
    (lambda: DomainSpec.from_dict({"name": "a", "wrapers": []}, "X-v0"), "unknown key(s) ['wrapers']"),
    (lambda: DomainSpec.from_dict({"name": "a"}), "has no env_id"),
])
def test_bad_domain_specs_raise_naming_the_field(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_catalog_resolves_names_splits_inline_domains_and_merges_base_kwargs(catalog):
    assert catalog.splits == {"source": ["plain", "big"], "target": ["hue", "jitter"]}
    names = [d.name for d in catalog.resolve("source,target,plain")]
    assert names == ["plain", "big", "hue", "jitter"]  # deduplicated, first occurrence order
    big = catalog.resolve("big")[0]
    assert big.kwargs == {"factors": False, "height": 60, "width": 80, "image_obs": True}
    assert all(d.env_id == SQUARES_ID for d in catalog.resolve("source,target"))
    with pytest.raises(ValueError, match="unknown domain or split 'hues'.*valid splits: source, target"):
        catalog.resolve("hues")
    with pytest.raises(ValueError, match="names no domain"):
        catalog.resolve(" , ")


def test_generic_env_has_a_default_domain_and_source_split_and_no_target():
    c = DomainCatalog("CartPole-v1")
    assert [d.name for d in c.resolve("source")] == ["default"]
    with pytest.raises(ValueError, match="unknown domain or split 'target'"):
        c.resolve("source,target")


def test_a_yaml_file_of_domains_resolves_like_names(catalog, tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump([{"name": "dark", "wrappers": [{"name": "brightness", "factor": 0.3}]}]))
    assert [d.name for d in catalog.resolve(f"source,{extra}")] == ["plain", "big", "dark"]


@pytest.mark.parametrize("text, message", [
    ("domains: [{name: a}]\nsplit: {}", "unknown top-level key(s) ['split']"),
    ("splits: {source: [nope]}", "split 'source': unknown domain 'nope'"),
    ("splits: {source: []}", "must be a non-empty list"),
    ("domains: [{name: a, wrappers: [{name: shift, max_shift: 2, dx: 1}]}]", None),  # values checked at make
    ("just text", "must hold a mapping"),
    ("domains: [{name: a}, {name: a, kwargs: {x: 1}}]", "two different domains are both named 'a'"),
])
def test_bad_domain_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    if message is None:
        DomainCatalog(SQUARES_ID, domains_file=path)
        return
    with pytest.raises(ValueError) as info:
        DomainCatalog(SQUARES_ID, domains_file=path)
    assert message in str(info.value) and "bad.yaml" in str(info.value)


def test_leakage_guard_refuses_target_domains_by_name_and_by_value(catalog):
    assert catalog.held_out(catalog.resolve("source")) == []
    assert catalog.held_out(catalog.resolve("hue,plain")) == ["hue"]
    renamed = DomainSpec("innocent", SQUARES_ID, wrappers=[{"name": "hue_shift", "degrees": 90}])
    assert catalog.held_out([renamed]) == ["innocent"]  # the target's content under another name
    other = DomainSpec("innocent", SQUARES_ID, wrappers=[{"name": "hue_shift", "degrees": 60}])
    assert catalog.held_out([other]) == []


def test_seekavoid_is_a_provider_of_the_same_interface():
    c = DomainCatalog("darla/SeekAvoid-v0")
    assert [d.name for d in c.resolve("source")] == ["A-default", "B-default", "B-changed"]
    assert c.resolve("A-changed")[0].kwargs["domain"] == get_domain("A-changed").to_dict()
    assert c.held_out(c.resolve("source")) == []
    assert c.held_out(c.resolve("cam-source")) == []
    # the pair-by-room rule, and value equality with an evaluation domain under another name
    renamed_target = dataclasses.replace(get_domain("A-changed"), name="A-renamed", light=(0.7, 0.8))
    copy_of_third = dataclasses.replace(get_domain("A-third"), name="A-3")
    assert c.held_out(c.resolve([renamed_target, copy_of_third, get_domain("B-default")])) == ["A-renamed", "A-3"]
    with_wrapper = c.resolve([{"name": "A-hue", "pair": "A", "room": "default",
                               "wrappers": [{"name": "hue_shift", "degrees": 30}]}])[0]
    assert with_wrapper.wrappers[0]["name"] == "hue_shift"


def test_make_env_renders_non_image_observations_and_labels_the_domain():
    spec = DomainSpec("plain", SQUARES_ID)  # the toy's observation is a position vector
    env = spec.make_env()
    obs, info = env.reset(seed=0)
    assert obs.shape == (40, 48, 3) and obs.dtype == np.uint8 and info["domain"] == "plain"
    assert env.step(env.action_space.sample())[-1]["domain"] == "plain"
    env.close()
    resized = make_domains_env([spec], obs_size=32, channels=1)
    assert resized.reset(seed=0)[0].shape == (32, 32, 1)


def test_mixture_draws_one_domain_per_episode_from_a_seeded_stream(catalog):
    env = catalog.make(catalog.resolve("source,target"))
    assert isinstance(env.unwrapped, DomainMixture)

    def run(seed):
        out = [env.reset(seed=seed)]
        out += [env.reset() for _ in range(11)]
        return [i["domain"] for _, i in out], np.stack([o for o, _ in out])

    names, frames = run(3)
    names2, frames2 = run(3)
    assert names == names2 and np.array_equal(frames, frames2)
    assert set(names) == {"plain", "big", "hue", "jitter"}
    assert frames.shape[1:] == (32, 32, 3)
    assert run(4)[0] != names


def test_mixture_refuses_domains_with_different_action_spaces():
    a = DomainSpec("a", SQUARES_ID)
    b = DomainSpec("b", SQUARES_ID, kwargs={"continuous": False})
    with pytest.raises(ValueError, match="domains 'a' and 'b' have different action_spaces"):
        make_domains_env([a, b])


def test_domains_env_is_registered_for_policy_json():
    spec = DomainSpec("plain", SQUARES_ID)
    env = gymnasium.make("darla/Domains-v0", domain=[spec.to_dict()], obs_size=16)
    assert env.reset(seed=0)[0].shape == (16, 16, 3)
    env.close()


def test_import_envs_stays_light():
    import subprocess

    code = "import sys, envs, envs.spec, envs.collect; print(sorted(m for m in ('torch', 'miniworld', 'pyglet') " \
           "if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_miniworld_ids_register_themselves_on_first_use():
    import subprocess

    code = ("import envs, gymnasium\nfrom envs.spec import DomainSpec\nassert 'MiniWorld-OneRoom-v0' not in "
            "gymnasium.registry\nenv = DomainSpec('d', 'MiniWorld-OneRoom-v0').make_env()\n"
            "print(env.reset(seed=0)[0].shape)\nenv.close()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("(60, 80, 3)")


def test_miniworld_envs_sharing_a_process_each_draw_their_own_scene():
    # miniworld compiles each env's static scene into GL display list 1, shared by the envs of a process:
    # a OneRoom with domain_rand next to a default one would draw the other's light and textures.
    import miniworld  # noqa: F401  (registers the ids)

    specs = [DomainSpec("rand", "MiniWorld-OneRoom-v0", kwargs={"domain_rand": True}),
             DomainSpec("plain", "MiniWorld-OneRoom-v0")]
    actions = [0, 2, 1]

    def frames(env, seed):
        return [env.reset(seed=seed)[0]] + [env.step(a)[0] for a in actions]

    alone = []
    for spec, seed in zip(specs, (3, 4)):
        env = spec.make_env()
        alone.append(frames(env, seed))
        env.close()
    together = [spec.make_env() for spec in specs]
    got = [[e.reset(seed=s)[0]] for e, s in zip(together, (3, 4))]  # every reset before any step
    for a in actions:
        for f, e in zip(got, together):
            f.append(e.step(a)[0])
    for e in together:
        e.close()
    for spec, mine, ref in zip(specs, got, alone):
        for t, (x, y) in enumerate(zip(mine, ref)):
            np.testing.assert_array_equal(x, y, err_msg=f"{spec.name}, step {t}")
    assert np.abs(alone[0][0].astype(int) - alone[1][0]).mean() > 3  # the two scenes really differ


def test_a_missing_optional_package_names_the_extra_that_installs_it(monkeypatch):
    def make(*args, **kwargs):  # gymnasium's own message when Box2D is missing
        raise gymnasium.error.DependencyNotInstalled('Box2D is not installed, you can install it by run `pip install '
                                                     'swig` followed by `pip install "gymnasium[box2d]"`')

    monkeypatch.setattr(gymnasium, "make", make)
    with pytest.raises(ValueError, match="domain 'd': env 'CarRacing-v3' needs a package that is not installed.*"
                                         "pip install 'darla\\[box2d\\]'"):
        DomainSpec("d", "CarRacing-v3").make_env()


def test_old_module_paths_resolve_to_where_the_modules_live_now():
    from envs.moved import current_name
    from envs.seekavoid.provider import SeekAvoidProvider
    from envs.spec import _PROVIDERS, provider_of, register_provider

    assert current_name("envs.seekavoid_factors.SeekAvoidFactors") == "envs.seekavoid.factors.SeekAvoidFactors"
    assert current_name("envs.seekavoid_provider:SeekAvoidProvider") == "envs.seekavoid.provider:SeekAvoidProvider"
    assert current_name("envs.domains:get_domain") == "envs.seekavoid.domains:get_domain"
    for same in ("envs.seekavoid.factors.SeekAvoidFactors", "envs.seekavoid:SeekAvoidEnv", "my_pkg.envs:MyEnv"):
        assert current_name(same) == same
    saved = dict(_PROVIDERS)
    try:
        register_provider("test/OldProvider-v0", "envs.seekavoid_provider:SeekAvoidProvider")
        assert isinstance(provider_of("test/OldProvider-v0"), SeekAvoidProvider)
    finally:
        _PROVIDERS.clear()
        _PROVIDERS.update(saved)
