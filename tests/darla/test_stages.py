"""Keyed, resumable pipeline stages."""

import json

import pytest

from darla.pipeline import DONE, Stage


def test_finished_stage_is_reused_not_rerun(tmp_path):
    calls = []

    def fn(d):
        calls.append(d)
        (d / "artefact.txt").write_text("x")
        return {"value": 1}

    first = Stage(tmp_path, "collect", "k1").run(fn, {"a": 1})
    second = Stage(tmp_path, "collect", "k1").run(fn, {"a": 1})
    assert len(calls) == 1
    assert first["value"] == second["value"] == 1
    assert json.loads((tmp_path / "collect-k1" / DONE).read_text())["key"] == "k1"


def test_changed_key_runs_in_a_new_directory_and_keeps_the_old(tmp_path):
    Stage(tmp_path, "vision", "k1").run(lambda d: {"v": 1}, {})
    Stage(tmp_path, "vision", "k2").run(lambda d: {"v": 2}, {})
    assert (tmp_path / "vision-k1" / DONE).exists() and (tmp_path / "vision-k2" / DONE).exists()


def test_interrupted_stage_has_no_done_marker_and_reruns(tmp_path):
    def dies(d):
        (d / "partial.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Stage(tmp_path, "policy", "k").run(dies, {})
    stage = Stage(tmp_path, "policy", "k")
    assert not stage.done
    record = stage.run(lambda d: {"ok": (d / "partial.bin").exists()}, {})
    assert record["ok"] is True  # the rerun sees what the killed run left and can resume from it
    assert stage.done


def _policy_stage_name(tmp_path, monkeypatch, overrides):
    import agents.train
    from darla.config import load_config
    from darla.pipeline import train_policy_stage

    monkeypatch.setattr(agents.train, "train_policy", lambda **kw: kw["out_dir"])
    config = load_config(None, ["policy.mode=pixels", *overrides])
    stage, _ = train_policy_stage(config, tmp_path, None, "pixels", 0, progress=False)
    return stage.dir.name


def test_pixel_policy_key_changes_with_the_training_domains(tmp_path, monkeypatch):
    default = _policy_stage_name(tmp_path, monkeypatch, [])
    assert _policy_stage_name(tmp_path, monkeypatch, ["collect.split=A-default"]) != default
    assert _policy_stage_name(tmp_path, monkeypatch, []) == default


def test_policies_train_in_policy_domains_and_an_empty_value_keeps_the_old_key(tmp_path, monkeypatch):
    import agents.train
    from darla.config import load_config
    from darla.pipeline import evaluation_domains, train_policy_stage

    default = _policy_stage_name(tmp_path, monkeypatch, [])
    assert _policy_stage_name(tmp_path, monkeypatch, ["policy.domains="]) == default
    assert _policy_stage_name(tmp_path, monkeypatch, ["policy.domains=source"]) == default  # same domains, same key
    cam = ["collect.split=cam-source", "evaluate.domains=cam-source,cam-target"]  # the evaluation must hold B-highcam
    narrow = [*cam, "policy.domains=A-default,B-default"]
    assert _policy_stage_name(tmp_path, monkeypatch, narrow) != _policy_stage_name(tmp_path, monkeypatch, cam)
    calls = []
    monkeypatch.setattr(agents.train, "train_policy", lambda **kw: calls.append(kw) or kw["out_dir"])
    config = load_config(None, ["policy.mode=pixels", *narrow, "evaluate.domains=cam-source,cam-target"])
    train_policy_stage(config, tmp_path / "n", None, "pixels", 0, progress=False)
    # the policy's env is made from the resolved domain specs (recorded in policy.json), in that order
    assert calls[0]["env_id"] == "darla/Domains-v0"
    assert [d["name"] for d in calls[0]["env_kwargs"]["domain"]] == ["A-default", "B-default"]
    _, source = evaluation_domains(config)
    assert source == ["A-default", "B-default"]  # B-highcam is evaluated as a target of these policies


@pytest.mark.parametrize("overrides, needle", [
    (["policy.domains=A-default,A-highcam"], "held-out target domain(s) A-highcam"),
    (["policy.domains=A-dfault"], "unknown domain or split 'A-dfault'"),
    (["policy.domains=A-default,B-highcam"], "lacks the training domain(s) B-highcam (policy.domains"),
])
def test_bad_policy_domains_name_the_field(overrides, needle):
    from darla.config import ConfigError, load_config
    from darla.pipeline import evaluation_domains

    with pytest.raises(ConfigError, match="policy.domains") as e:
        evaluation_domains(load_config(None, overrides))
    assert needle in str(e.value)


def test_evaluate_key_changes_when_a_yaml_domain_file_is_edited(tmp_path, monkeypatch):
    import dataclasses

    import darla.pipeline as pipeline
    from darla.config import load_config
    from envs.seekavoid.domains import dump_domains_yaml, get_domain

    seen = []
    monkeypatch.setattr(pipeline, "evaluate_policies", lambda *a, **kw: seen.append(a[1]) or {})
    spec = tmp_path / "shifts.yaml"
    dump_domains_yaml([get_domain("A-default")], spec)  # the file must exist when the config is validated
    config = load_config(None, [f"evaluate.domains=source,{spec}"])
    names = []
    for height in (1.1, 1.2):
        dump_domains_yaml([dataclasses.replace(get_domain("A-default"), name="A-low", cam_height=(height, height))],
                          spec)
        stage, _ = pipeline.evaluate_stage(config, tmp_path / "stages", [tmp_path / "policy-s0-k"], progress=False)
        names.append(stage.dir.name)
    assert names[0] != names[1]
    # domains reach the evaluation as specs by value (SeekAvoid's scene mapping in kwargs["domain"])
    assert [d.kwargs["domain"]["cam_height"] for d in seen[1] if d.name == "A-low"] == [[1.2, 1.2]]


@pytest.mark.parametrize("domains, needle", [("source,A-chnged", "A-chnged"), ("target", "A-default")])
def test_run_rejects_bad_evaluation_domains_before_training(tmp_path, capsys, domains, needle):
    from darla.cli import main

    assert main(["-q", "run", "--out", str(tmp_path / "run"), "--set", f"evaluate.domains={domains}"]) == 2
    err = capsys.readouterr().err
    assert "evaluate.domains" in err and needle in err
    assert not (tmp_path / "run").exists()


def test_policy_key_changes_with_the_env_render_revision(tmp_path, monkeypatch):
    # policies trained on frames rendered by an older (fixed) env must retrain, not be reused
    import envs.seekavoid.env

    default = _policy_stage_name(tmp_path, monkeypatch, [])
    monkeypatch.setattr(envs.seekavoid.env, "RENDER_REVISION", envs.seekavoid.env.RENDER_REVISION + 1)
    assert _policy_stage_name(tmp_path, monkeypatch, []) != default
