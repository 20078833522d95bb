"""Every bad config value fails at ``--print-config`` and at the start of ``darla run`` (before collection), in
one line naming the field, the bad value and the fix; the CLI never shows a traceback unless ``--debug``."""

import pytest

from darla.cli import main
from darla.config import ConfigError, load_config

#: (override, words the one-line error must contain)
BAD = [
    ("vision.model=nope", ["vision.model", "'nope'", "beta_vae_dae"]),
    ("vision.model=beta_vae_dea", ["vision.model", "did you mean beta_vae_dae?"]),
    ("vision.model_config={dae_layr: 9}", ["vision.model_config.dae_layr", "did you mean dae_layer?"]),
    ("vision.model_config.beta=-1", ["vision.model_config", "beta must be >= 0"]),
    ("vision.model_config.image_size=32", ["vision.model_config.image_size", "env.obs_size"]),
    ("vision.model_config.dae_checkpoint=/no/such/dae", ["vision.model_config.dae_checkpoint", "/no/such/dae"]),
    ("env.obs_size=32", ["vision.model_config", "env.obs_size=32", "dae_layer must be in 1..3"]),
    ("policy.algo_kwargs={n_step: 8}", ["policy.algo_kwargs.n_step", "did you mean n_steps?"]),
    ("policy.algo=ppp", ["policy.algo", "did you mean ppo?", "a2c"]),
    ("policy.seeds=[true]", ["policy.seeds", "[True]", "integers"]),
    ("policy.seeds=[0, 1.5]", ["policy.seeds", "integers"]),
    ("seed=true", ["seed", "expects int"]),
    ("policy.steps=[", ["--set 'policy.steps=['", "not valid YAML"]),
    ("collect.split=nowhere", ["collect.split", "'nowhere'", "valid splits"]),
    ("collect.split=A-default,A-changed", ["collect.split", "A-changed", "source split"]),
    ("evaluate.domains=source,A-chnged", ["evaluate.domains", "A-chnged"]),
    ("policy.domains=A-dfault", ["policy.domains", "A-dfault"]),
    ("evaluate.domains=source,/no/such/shifts.yaml", ["evaluate.domains", "/no/such/shifts.yaml", "does not exist"]),
]


@pytest.mark.parametrize("override, words", BAD, ids=[b[0] for b in BAD])
def test_print_config_refuses_bad_values_in_one_line(override, words, capsys):
    assert main(["run", "--print-config", "--set", override]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err and "Traceback" not in err, err
    assert err.startswith("darla run: error: ")
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize("override", ["vision.model=nope", "vision.model_config={dae_layr: 9}",
                                      "policy.algo_kwargs={n_step: 8}", "policy.seeds=[true]", "env.obs_size=32"])
def test_darla_run_fails_before_collection(override, tmp_path, capsys, monkeypatch):
    import darla.pipeline

    def no_collection(*a, **kw):  # would cost minutes: it must never be reached
        raise AssertionError("collection started")

    monkeypatch.setattr(darla.pipeline, "collect_stage", no_collection)
    assert main(["-q", "run", "--out", str(tmp_path / "run"), "--set", override]) == 2
    assert override.split("=")[0].split(".")[0] in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_valid_model_configs_pass_at_every_size_they_fit():
    assert load_config(None, ["env.obs_size=32", "vision.model_config.dae_layer=3"]).env.obs_size == 32
    assert load_config(None, ["vision.model=scan", "vision.model_config.visual.latents=10"]).vision.model == "scan"
    with pytest.raises(ConfigError, match="vision.model_config.visual"):  # scan's visual is a beta_vae_dae
        load_config(None, ["vision.model=scan", "vision.model_config.visual.dae_layr=3"])
    # pixel policies train no vision model: its config does not matter, the image size does
    assert load_config(None, ["policy.mode=pixels", "vision.model_config.dae_layer=9"]).policy.mode == "pixels"
    assert load_config(None, ["policy.algo=a2c", "policy.algo_kwargs={n_steps: 8}"]).policy.algo == "a2c"
    with pytest.raises(ConfigError, match="policy.algo_kwargs.batch_size.*A2C"):  # PPO's, not A2C's
        load_config(None, ["policy.algo=a2c", "policy.algo_kwargs={batch_size: 8}"])


def test_a_bad_config_file_is_one_line_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy:\n  steps: [1\n")
    assert main(["run", "--print-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(bad) in err and "not valid YAML" in err and "line" in err
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["run", "--print-config", "--config", str(binary)]) == 2
    assert str(binary) in capsys.readouterr().err
    assert main(["run", "--print-config", "--config", str(tmp_path)]) == 2  # a directory
    assert "is not a file" in capsys.readouterr().err


def test_train_vision_bad_set_is_one_line(tmp_path, capsys):
    assert main(["train-vision", "--data", str(tmp_path), "--out", str(tmp_path / "v"), "--set", "dae_layer=["]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--set 'dae_layer=['" in err and "not valid YAML" in err


def test_unexpected_errors_are_one_line_exit_1_and_debug_shows_the_traceback(monkeypatch, capsys):
    import darla.commands

    def broken(args):
        raise KeyError("factor_names")

    monkeypatch.setattr(darla.commands, "cmd_report", broken)
    assert main(["report", "x"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("darla report: error: internal error KeyError: 'factor_names' (run with --debug for the "
                   "traceback)")
    with pytest.raises(KeyError):
        main(["--debug", "report", "x"])

    def user_error(args):
        raise ValueError("line one\nline two")

    monkeypatch.setattr(darla.commands, "cmd_report", user_error)
    assert main(["report", "x"]) == 2
    assert capsys.readouterr().err.strip() == ("darla report: error: line one line two (run with --debug for the "
                                               "traceback)")
