"""Bring your own environment: config fields, stage keys, and the CLI pipeline end to end on an env darla
was not written for (tests/envs/toy.py: Box actions, frames from render(), no factors)."""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from darla.config import ConfigError, load_config, stage_key
from tests.envs.toy import SQUARES_ID

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = {
    "domains": [{"name": "plain"},
                {"name": "hue", "wrappers": [{"name": "hue_shift", "degrees": 120}]},
                {"name": "conv", "wrappers": [{"name": "random_conv", "seed": 3, "per_episode": False}]}],
    "splits": {"source": ["plain"], "target": ["hue", "conv"]},
}


@pytest.fixture
def domains_file(tmp_path) -> Path:
    path = tmp_path / "domains.yaml"
    path.write_text(yaml.safe_dump(DOMAINS))
    return path


def test_env_fields_load_from_overrides_and_kwargs_merge_key_by_key(domains_file):
    config = load_config(None, [f"env.id={SQUARES_ID}", "env.kwargs.height=60", "env.kwargs.width=80",
                                f"env.domains={domains_file}", "env.channels=1"])
    assert config.env.id == SQUARES_ID and config.env.kwargs == {"height": 60, "width": 80}
    assert config.env.channels == 1
    with pytest.raises(ConfigError, match="env.channels.*1 \\(grey\\) or 3"):
        load_config(None, ["env.channels=2"])
    with pytest.raises(ConfigError, match="env.domains.*existing YAML file"):
        load_config(None, ["env.domains=/no/such.yaml"])


def test_default_seekavoid_stage_keys_are_the_ones_before_the_generic_core(tmp_path, monkeypatch):
    from darla import pipeline

    config = load_config(None, [])
    monkeypatch.setattr("envs.collect.collect_frames", lambda *a, **k: None)
    stage, _ = pipeline.collect_stage(config, tmp_path, progress=False)
    legacy_env = {"obs_size": config.env.obs_size, "layout": config.env.layout}
    assert stage.key == stage_key({"collect": asdict(config.collect), "env": legacy_env, "seed": config.seed})
    other, _ = pipeline.collect_stage(load_config(None, ["env.kwargs.max_steps=30"]), tmp_path, progress=False)
    assert other.key != stage.key


def test_stage_keys_follow_the_domain_specs_of_a_domains_file(tmp_path, domains_file, monkeypatch):
    from darla import pipeline

    monkeypatch.setattr("envs.collect.collect_frames", lambda *a, **k: None)
    config = load_config(None, [f"env.id={SQUARES_ID}", f"env.domains={domains_file}"])
    first, _ = pipeline.collect_stage(config, tmp_path / "a", progress=False)
    edited = {**DOMAINS, "domains": [{"name": "plain", "kwargs": {"height": 30}}, *DOMAINS["domains"][1:]]}
    domains_file.write_text(yaml.safe_dump(edited))
    second, _ = pipeline.collect_stage(config, tmp_path / "b", progress=False)
    assert first.key != second.key  # same names, another source domain: another dataset


def test_a_generic_env_without_targets_fails_before_training_naming_the_field():
    from darla.pipeline import evaluation_domains

    config = load_config(None, [f"env.id={SQUARES_ID}"])
    with pytest.raises(ConfigError, match="'evaluate.domains' = 'source,target' is invalid: unknown domain or split "
                                          "'target'.*valid splits: source"):
        evaluation_domains(config)
    domains, source = evaluation_domains(load_config(None, [f"env.id={SQUARES_ID}", "evaluate.domains=source"]))
    assert [d.name for d in domains] == source == ["default"]


def test_policies_cannot_train_in_a_target_domain_of_a_domains_file(domains_file):
    from darla.pipeline import evaluation_domains

    config = load_config(None, [f"env.id={SQUARES_ID}", f"env.domains={domains_file}", "policy.domains=plain,hue"])
    with pytest.raises(ConfigError, match="held-out target domain\\(s\\) hue"):
        evaluation_domains(config)


def _darla(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "darla.cli", "-q", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def test_cli_runs_all_three_stages_on_a_box_action_env_without_factors(tmp_path, domains_file):
    config = {
        "env": {"id": SQUARES_ID, "domains": str(domains_file)},
        "collect": {"frames": 200, "workers": 1},
        "vision": {"steps": 20, "dae_steps": 10, "batch_size": 16},
        "policy": {"steps": 256, "n_envs": 2, "algo_kwargs": {"n_steps": 64, "batch_size": 64}},
        "evaluate": {"episodes": 2},
    }
    (tmp_path / "my_env.yaml").write_text(yaml.safe_dump(config))
    proc = _darla("run", "--config", "my_env.yaml", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no ground-truth factors" in proc.stderr  # the one-line note, not an error
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert "source" in summary and "target" in summary
    evaluation = json.loads(next((run / "stages").glob("evaluate-*/evaluation.json")).read_text())
    assert evaluation["domains"] == ["plain", "hue", "conv"]
    policy = json.loads(next((run / "stages").glob("policy-s0-*/policy.json")).read_text())
    assert policy["env_id"] == "darla/Domains-v0"
    assert [d["name"] for d in policy["env_kwargs"]["domain"]] == ["plain"]
    assert list((run / "stages").glob("vision-*/traversal.png"))
    assert not list((run / "stages").glob("vision-*/probe.md"))  # no factors: no probe
    # a rerun reuses every stage
    again = _darla("run", "--config", "my_env.yaml", "--out", "run", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr.count("reusing") >= 3


def test_cli_collect_takes_an_env_and_a_domains_file(tmp_path, domains_file):
    proc = _darla("collect", "--out", "data", "--frames", "30", "--workers", "1", "--obs-size", "16", "--env",
                  SQUARES_ID, "--domains", str(domains_file), "--split", "source", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    assert meta["env_id"] == SQUARES_ID and meta["frame_shape"] == [16, 16, 3] and meta["domains"] == ["plain"]
