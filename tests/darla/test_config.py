"""Config loading, overrides and validation errors of ``darla run``."""

from pathlib import Path

import pytest
import yaml

from darla.config import ConfigError, RunConfig, load_config, stage_key

ROOT = Path(__file__).resolve().parents[2]


def test_committed_default_yaml_equals_builtin_defaults():
    assert load_config(ROOT / "configs" / "default.yaml") == RunConfig()


def test_set_overrides_nested_fields_and_parses_yaml_values():
    config = load_config(None, ["policy.steps=5000", "policy.seeds=[1, 2]", "vision.model_config.beta=4"])
    assert config.policy.steps == 5000
    assert config.policy.seeds == [1, 2]
    assert config.vision.model_config == {"beta": 4}


def test_unknown_field_names_the_field_and_valid_choices():
    with pytest.raises(ConfigError, match=r"policy\.stepz.*valid fields here: .*steps"):
        load_config(None, ["policy.stepz=5"])


def test_wrong_type_names_field_and_type():
    with pytest.raises(ConfigError, match=r"policy\.steps.*expects int"):
        load_config(None, ["policy.steps=abc"])


@pytest.mark.parametrize(
    "override, field",
    [("env.obs_size=48", "env.obs_size"), ("policy.algo=nope", "policy.algo"), ("collect.split=target", "collect.split"), ("collect.split=cam-target", "collect.split"),
     ("policy.mode=raw", "policy.mode"), ("vision.lr=-1", "vision.lr"), ("policy.seeds=[]", "policy.seeds"),
     ("policy.seeds=[0, 0]", "policy.seeds")],
)
def test_bad_values_are_rejected_with_the_field_name(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


def test_yaml_file_overrides_and_malformed_file(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text(yaml.safe_dump({"policy": {"steps": 123}, "evaluate": {"episodes": 3}}))
    config = load_config(good)
    assert (config.policy.steps, config.evaluate.episodes, config.vision.steps) == (123, 3, RunConfig().vision.steps)
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_stage_key_changes_with_config_and_is_stable():
    a = stage_key({"steps": 1, "lr": 0.1})
    assert a == stage_key({"lr": 0.1, "steps": 1})
    assert a != stage_key({"steps": 2, "lr": 0.1})


def test_repeated_overrides_of_algo_kwargs_and_nested_model_config_accumulate():
    config = load_config(None, ["policy.algo_kwargs.n_steps=64", "policy.algo_kwargs.batch_size=32", "vision.model=scan",
                                "vision.model_config.visual.beta=2", "vision.model_config.visual.latents=10"])
    assert config.policy.algo_kwargs == {"n_steps": 64, "batch_size": 32}
    assert config.vision.model_config == {"visual": {"beta": 2, "latents": 10}}


def test_exponent_floats_without_a_dot_are_floats_in_overrides_and_files(tmp_path):
    config = load_config(None, ["vision.lr=1e-4", "policy.algo_kwargs.learning_rate=3e-4"])
    assert config.vision.lr == 1e-4 and config.policy.algo_kwargs["learning_rate"] == 3e-4
    path = tmp_path / "c.yaml"
    path.write_text("vision:\n  lr: 2e-4\n")
    assert load_config(path).vision.lr == 2e-4
    assert yaml.safe_load("1e-4") == "1e-4"  # the stock loader is left as it is


def test_a_scalar_where_a_section_belongs_names_the_section():
    with pytest.raises(ConfigError, match=r"config section 'vision' must be a mapping"):
        load_config(None, ["vision=3"])
