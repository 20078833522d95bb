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

    # load_config validates the domains, so the error comes before any stage (and at --print-config)
    with pytest.raises(ConfigError, match="'evaluate.domains' = 'source,target' is invalid: unknown domain or split "
                                          "'target'.*valid splits: source"):
        load_config(None, [f"env.id={SQUARES_ID}"])
    domains, source = evaluation_domains(load_config(None, [f"env.id={SQUARES_ID}", "evaluate.domains=source"]))
    assert [d.name for d in domains] == source == ["default"]


def test_policies_cannot_train_in_a_target_domain_of_a_domains_file(domains_file):

    with pytest.raises(ConfigError, match="held-out target domain\\(s\\) hue"):  # at load_config already
        load_config(None, [f"env.id={SQUARES_ID}", f"env.domains={domains_file}", "policy.domains=plain,hue"])


def _darla(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "darla.cli", "-q", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """``darla run`` on the toy env (Box actions, frames from render(), no factors), tiny budget: its directory,
    the domains file and the run's stderr."""
    tmp_path = tmp_path_factory.mktemp("toy_run")
    domains_file = tmp_path / "domains.yaml"
    domains_file.write_text(yaml.safe_dump(DOMAINS))
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
    return tmp_path, domains_file, proc.stderr


def test_cli_runs_all_three_stages_on_a_box_action_env_without_factors(toy_run):
    tmp_path, _, stderr = toy_run
    assert "no ground-truth factors" in stderr  # the one-line note, not an error
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
    # the report names the env and its domains, not SeekAvoid's layout
    first = (run / "report.md").read_text().splitlines()[2]
    assert f"env `{SQUARES_ID}`" in first and "source domains: plain; target domains: hue, conv" in first
    assert "layout" not in first
    # a rerun reuses every stage
    again = _darla("run", "--config", "my_env.yaml", "--out", "run", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr.count("reusing") >= 3


def test_cli_collect_takes_an_env_and_a_domains_file(tmp_path, domains_file):
    proc = _darla("collect", "--out", "data", "--frames", "30", "--workers", "1", "--obs-size", "16", "--env",
                  SQUARES_ID, "--domains", str(domains_file), "--split", "source", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    assert meta["env_id"] == SQUARES_ID and meta["frame_shape"] == [16, 16, 3] and meta["domains"] == ["plain"]


# -- stages 2 and 3 on any env through the CLI ---------------------------------------------------------------
def _main(*argv) -> int:
    from darla.cli import main

    return main(["-q", *map(str, argv)])


def _one_line_error(capsys, *argv) -> str:
    capsys.readouterr()
    assert _main(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_evaluate_cli_remakes_a_runs_domains_and_adds_shift_targets(toy_run, tmp_path):
    run_dir, domains_file, _ = toy_run
    stages = run_dir / "run" / "stages"
    policy = next(stages.glob("policy-s0-*"))
    run_eval = json.loads(next(stages.glob("evaluate-*/evaluation.json")).read_text())
    # policy.json records darla/Domains-v0 with the domains by value: no catalog or domains file needed
    assert _main("evaluate", "--policy", policy, "--shift", "hue=90", "--episodes", 2, "--out", tmp_path / "a") == 0
    result = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    assert result["domains"] == ["plain", "plain+hue=90"]
    assert result["source"] == ["plain"] and result["target"] == ["plain+hue=90"] and "plain+hue=90" in result["ratios"]
    assert result["returns"]["plain"] == run_eval["returns"]["plain"]  # the env the run evaluated, remade exactly
    # plus the targets of a domains file, named like the run's; a shift of any registry wrapper, by mapping
    assert _main("evaluate", "--policy", policy, "--domains", domains_file, "--shift",
                 "random_conv={seed: 3, per_episode: false}", "--episodes", 2, "--out", tmp_path / "b") == 0
    result = json.loads((tmp_path / "b" / "evaluation.json").read_text())
    assert result["domains"] == ["plain", "hue", "conv", "plain+random_conv={seed:3/per_episode:false}"]
    assert result["target"] == result["domains"][1:]
    for name in ("plain", "hue", "conv"):
        assert result["returns"][name] == run_eval["returns"][name]
    # the shifted target of the mapping renders exactly the file's 'conv' domain (same wrapper, same seed)
    assert result["returns"]["plain+random_conv={seed:3/per_episode:false}"] == result["returns"]["conv"]


def test_shift_flags_map_onto_the_wrapper_registry_and_bad_ones_fail_in_one_line(toy_run, capsys):
    import numpy as np

    from darla.cli import build_parser
    from darla.commands import _policy_record, evaluation_setup

    run_dir, _, _ = toy_run
    policy = next((run_dir / "run" / "stages").glob("policy-s0-*"))
    args = build_parser().parse_args(["evaluate", "--policy", str(policy), "--out", "x", "--shift", "hue=90",
                                      "--shift", "tint=1.0,0.8,0.6", "--shift", "noise=20"])
    setup = evaluation_setup(args, [_policy_record(policy)], [policy])
    by_name = {d.name: d for d in setup["domains"]}
    assert list(by_name) == ["plain", "plain+hue=90", "plain+tint=1.0/0.8/0.6", "plain+noise=20"]
    assert by_name["plain+hue=90"].wrappers == ({"name": "hue_shift", "degrees": 90},)
    assert by_name["plain+tint=1.0/0.8/0.6"].wrappers == ({"name": "color_tint", "rgb": [1.0, 0.8, 0.6]},)
    assert by_name["plain+noise=20"].wrappers == ({"name": "texture_noise", "amplitude": 20},)
    frames = {}
    for name in ("plain", "plain+hue=90"):
        env = setup["catalog"].make([by_name[name]])
        frames[name] = env.reset(seed=0)[0]
        env.close()
    assert frames["plain"].shape == frames["plain+hue=90"].shape == (64, 64, 3)  # the run's obs_size
    assert not np.array_equal(frames["plain"], frames["plain+hue=90"])
    assert "NAME a wrapper" in _one_line_error(capsys, "evaluate", "--policy", policy, "--shift", "sepia=1",
                                               "--out", "x")
    assert "degrees must be a finite number" in _one_line_error(capsys, "evaluate", "--policy", policy, "--shift",
                                                                "hue=abc", "--out", "x")


def test_evaluate_cli_runs_a_foreign_sb3_zip_on_an_env_id_and_a_domains_file(tmp_path, domains_file):
    import gymnasium as gym
    from stable_baselines3 import PPO

    from agents.evaluate import zero_shot_evaluate

    kwargs = {"image_obs": True, "height": 16, "width": 16}
    env = gym.make(SQUARES_ID, **kwargs)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, policy_kwargs={"net_arch": [8]})
    model.learn(32)
    model.save(tmp_path / "mine.zip")  # SB3's own format, read back without unpickling
    assert _main("evaluate", "--policy", tmp_path / "mine.zip", "--algo", "ppo", "--env", SQUARES_ID,
                 "--env-kwargs", json.dumps(kwargs), "--domains", domains_file, "--episodes", 2, "--seed", 3,
                 "--out", tmp_path / "e") == 0
    result = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert result["domains"] == ["plain", "hue", "conv"]
    assert result["source"] == ["plain"] and result["target"] == ["hue", "conv"]  # the file's splits
    direct = zero_shot_evaluate([model], ["plain"], env_factory=lambda d: gym.make(SQUARES_ID, **kwargs),
                                episodes=2, seed=3, progress=False, n_boot=10)
    assert result["returns"]["plain"] == direct["returns"]["plain"]  # the env's own frames, not resized


def test_train_policy_cli_on_any_env_trains_in_the_source_split_of_a_domains_file(tmp_path, domains_file, capsys):
    out = tmp_path / "p"
    assert _main("train-policy", "--mode", "pixels", "--env", SQUARES_ID, "--domains", domains_file, "--steps", 32,
                 "--n-envs", 1, "--algo-kwargs", "{n_steps: 16, batch_size: 16, n_epochs: 1}", "--out", out) == 0
    meta = json.loads((out / "policy.json").read_text())
    assert meta["env_id"] == "darla/Domains-v0" and meta["env_kwargs"]["obs_size"] == 64
    assert [(d["name"], d["env_id"]) for d in meta["env_kwargs"]["domain"]] == [("plain", SQUARES_ID)]
    err = _one_line_error(capsys, "train-policy", "--mode", "pixels", "--env", SQUARES_ID, "--domains",
                          f"{domains_file},plain,hue", "--steps", 32, "--n-envs", 1, "--out", tmp_path / "q")
    assert "held-out target domain(s) hue" in err
    # evaluated on its recorded domain plus the file's target split
    assert _main("evaluate", "--policy", out, "--domains", f"{domains_file},target", "--episodes", 1,
                 "--out", tmp_path / "e") == 0
    result = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert result["domains"] == ["plain", "hue", "conv"] and result["source"] == ["plain"]


def test_algorithm_checks_make_the_configured_envs_domains(domains_file):
    from darla.pipeline import check_policy_config

    check_policy_config(load_config(None, [f"env.id={SQUARES_ID}", "policy.algo=sac", "evaluate.domains=source"]))  # Box actions: SAC fits
    with pytest.raises(ConfigError, match="'policy.algo' = 'dqn'.*needs Discrete actions.*Box"):
        check_policy_config(load_config(None, [f"env.id={SQUARES_ID}", f"env.domains={domains_file}",
                                               "policy.algo=dqn"]))
    check_policy_config(load_config(None, [f"env.id={SQUARES_ID}", "env.kwargs.continuous=false", "policy.algo=dqn",
                                           "evaluate.domains=source"]))


def test_train_vision_icf_on_a_generic_env_needs_the_domains_file_of_its_data(tmp_path, domains_file, capsys):
    assert _main("collect", "--out", tmp_path / "data", "--frames", 40, "--workers", 1, "--obs-size", 16, "--env",
                 SQUARES_ID, "--env-kwargs", "{continuous: false}", "--domains", domains_file) == 0
    argv = ["train-vision", "--model", "icf", "--data", tmp_path / "data", "--steps", 2, "--batch-size", 8,
            "--out", tmp_path / "icf"]
    err = _one_line_error(capsys, *argv)
    assert "icf" in err and "plain" in err and "--domains FILE" in err
    assert _main(*argv, "--domains", domains_file) == 0
    assert (tmp_path / "icf" / "model").is_dir()


def test_run_fails_before_any_stage_on_a_domain_whose_env_cannot_be_made(tmp_path, domains_file):
    from darla.pipeline import run_pipeline

    config = load_config(None, [f"env.id={SQUARES_ID}", f"env.domains={domains_file}",
                                "env.kwargs={no_such_argument: 1}"])
    with pytest.raises(ConfigError, match="domain 'plain'.*rejects its keyword arguments \\['no_such_argument'\\]"
                                          ".*fix env.kwargs"):
        run_pipeline(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written, no stage started


def test_a_config_files_domains_path_resolves_beside_the_config_file(tmp_path, monkeypatch):
    study = tmp_path / "study"
    study.mkdir()
    (study / "my_domains.yaml").write_text(yaml.safe_dump(DOMAINS))
    (study / "my_env.yaml").write_text(yaml.safe_dump({"env": {"id": SQUARES_ID, "domains": "my_domains.yaml"},
                                                       "evaluate": {"domains": "source,target"}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(study / "my_env.yaml")
    assert Path(config.env.domains).resolve() == (study / "my_domains.yaml").resolve()
    (elsewhere / "my_domains.yaml").write_text(yaml.safe_dump(DOMAINS))
    assert Path(load_config(study / "my_env.yaml").env.domains).resolve() == (elsewhere / "my_domains.yaml").resolve()
    (study / "my_domains.yaml").unlink()
    (elsewhere / "my_domains.yaml").unlink()
    with pytest.raises(ConfigError, match="env.domains.*relative to the working directory or to the config file"):
        load_config(study / "my_env.yaml")


# -- vision models that need SeekAvoid's factors, grey frames, and the policy check at --print-config ----------
GENERIC = [f"env.id={SQUARES_ID}", "evaluate.domains=source"]


@pytest.mark.parametrize("model", ["dc_ign", "disbm", "scan"])
def test_factor_models_are_refused_on_an_env_without_seekavoid_factors(model):
    with pytest.raises(ConfigError, match=rf"'vision.model' = '{model}' is invalid for env.id '{SQUARES_ID}'"
                                          r".*seekavoid-factors.*use ae, dae, vae, beta_vae, beta_vae_dae"):
        load_config(None, [*GENERIC, f"vision.model={model}"])


@pytest.mark.parametrize("model", ["dc_ign", "disbm", "scan"])
def test_factor_models_are_refused_on_grey_frames(model):
    with pytest.raises(ConfigError, match=rf"'vision.model' = '{model}' is invalid with env.channels 1.*RGB.*"
                                          r"env.channels=3"):
        load_config(None, ["env.channels=1", f"vision.model={model}"])


def test_models_that_need_no_factors_load_on_any_env_and_on_grey_frames():
    for overrides in (["vision.model=beta_vae"], ["vision.model=cci_vae", "env.channels=1"],
                      ["vision.model=disbm", "vision.model_config.manifold_weight=0", "env.channels=1"]):
        load_config(None, [*GENERIC, *overrides])
    load_config(None, ["vision.model=dc_ign"])  # SeekAvoid, RGB: the default wiring


@pytest.mark.parametrize("model,overrides", [("cci_vae", []), ("disbm", ["vision.model_config.manifold_weight=0"])])
def test_grey_frames_train_the_models_built_by_the_pipeline(model, overrides, tmp_path):
    import numpy as np

    from darla.pipeline import build_vision_model
    from vision.train import train_vision

    config = load_config(None, [*GENERIC, "env.channels=1", "env.obs_size=16", f"vision.model={model}", *overrides])
    built = build_vision_model(config, None, tmp_path, progress=False)
    assert built.config.channels == 1
    frames = np.random.default_rng(0).integers(0, 256, (16, 16, 16, 1), dtype=np.uint8)
    out = train_vision(built, frames, tmp_path / model, steps=2, batch_size=8, progress=False, probe=False)
    assert out.is_dir()


def test_print_config_checks_the_algorithm_against_the_envs_action_space(capsys):
    from darla.cli import main

    assert main(["run", "--print-config", "--set", f"env.id={SQUARES_ID}", "--set", "env.kwargs.continuous=false",
                 "--set", "evaluate.domains=source", "--set", "policy.algo=sac"]) == 2
    err = capsys.readouterr().err
    assert "'policy.algo' = 'sac'" in err and "needs Box actions" in err and "Discrete" in err, err
    assert main(["run", "--print-config", "--set", f"env.id={SQUARES_ID}", "--set", "evaluate.domains=source",
                 "--set", "policy.algo=sac"]) == 0
    assert "algo: sac" in capsys.readouterr().out


def test_sweep_cli_runs_a_grid_on_a_generic_env_from_its_config_file(toy_run):
    tmp_path, _, _ = toy_run
    proc = _darla("sweep", "--config", "my_env.yaml", "--models", "pixels,vae", "--seeds", "0", "--no-ray",
                  "--out", "sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert set(summary["results"]) == {"pixels/ppo", "vae/ppo"}
    for row in summary["results"].values():  # scored on the domains file's source and target splits
        assert row["seeds"] == [0] and "source" in row and "target" in row
    stages = [p.name.rsplit("-", 1)[0] for p in (tmp_path / "sweep" / "stages").iterdir()]
    assert stages.count("collect") == 1 and stages.count("vision") == 1
