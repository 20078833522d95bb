"""``darla run`` end to end on a tiny config: report, stage reuse, resume, CLI errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from darla.cli import main

TINY = [
    "collect.frames=256",
    "collect.workers=1",
    "env.obs_size=32",
    "vision.steps=10",
    "vision.dae_steps=5",
    "vision.batch_size=16",
    "vision.model_config.dae_layer=3",
    "policy.steps=256",
    "policy.n_envs=2",
    "policy.algo_kwargs={n_steps: 64, batch_size: 64, n_epochs: 1}",
    "evaluate.episodes=2",
]


def _args(out: Path, extra: list[str] = ()) -> list[str]:
    args = ["-q", "run", "--out", str(out)]
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return args


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(_args(out)) == 0
    return out


def test_tiny_run_writes_report_summary_and_every_stage(tiny_run):
    report = (tiny_run / "report.md").read_text()
    for section in ("Zero-shot transfer", "A-changed", "Learning curves", "What the frozen features encode",
                    "Latent traversal", "Reproduce"):
        assert section in report
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert {"source", "target"} <= set(summary)
    assert summary["vision_model"] == "beta_vae_dae"
    stages = sorted(p.name.rsplit("-", 1)[0] for p in (tiny_run / "stages").iterdir())
    assert stages == ["collect", "evaluate", "policy-s0", "vision"]
    assert all((p / "DONE.json").exists() for p in (tiny_run / "stages").iterdir())
    for png in ("learning_curves.png",):
        assert (tiny_run / png).stat().st_size > 1000


def test_rerun_reuses_every_finished_stage(tiny_run):
    done = {p: (p / "DONE.json").stat().st_mtime_ns for p in (tiny_run / "stages").iterdir()}
    assert main(_args(tiny_run)) == 0
    assert {p: (p / "DONE.json").stat().st_mtime_ns for p in (tiny_run / "stages").iterdir()} == done


def test_changed_policy_config_reruns_policy_and_evaluation_but_reuses_vision(tiny_run):
    before = {p.name for p in (tiny_run / "stages").iterdir()}
    assert main(_args(tiny_run, ["policy.seeds=[1]"])) == 0
    after = {p.name for p in (tiny_run / "stages").iterdir()}
    new = sorted(n.rsplit("-", 1)[0] for n in after - before)
    assert new == ["evaluate", "policy-s1"]


def test_interrupted_stage_is_redone_on_rerun(tiny_run):
    (policy,) = [p for p in (tiny_run / "stages").iterdir() if p.name.startswith("policy-s0")]
    (policy / "DONE.json").unlink()  # as if killed before the stage finished
    (policy / "policy.safetensors").write_bytes(b"truncated")
    assert main(_args(tiny_run)) == 0
    assert (policy / "DONE.json").exists()
    assert (policy / "policy.safetensors").stat().st_size > 1000


def test_bad_override_is_a_clear_error_naming_the_field(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "--set", "policy.algo=nope"]) == 2
    err = capsys.readouterr().err
    assert "policy.algo" in err and "ppo" in err
    assert not (tmp_path / "stages").exists()


@pytest.mark.slow
def test_kill_9_at_any_moment_then_rerun_completes(tmp_path):
    """SIGKILL a real ``darla run`` at several moments; each rerun must finish with a readable report."""
    cmd = [sys.executable, "-m", "darla.cli", *_args(tmp_path)]
    env = {**os.environ, "PYGLET_HEADLESS": "1"}
    for delay in (3.0, 8.0, 15.0):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert json.loads((tmp_path / "summary.json").read_text())["vision_model"] == "beta_vae_dae"


ZOO_SETTINGS = {
    # models whose defaults need more than the tiny config offers
    "beta_vae_dae": ["vision.model_config.dae_layer=3"],
    "scan": ["vision.model_config={visual: {dae_layer: 3}}"],
}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ae", "dae", "vae", "beta_vae", "cci_vae", "beta_tcvae", "factor_vae", "infogan",
                                   "dc_ign", "disbm", "icf", "scan"])
def test_every_zoo_model_plugs_into_the_pipeline(model, tmp_path):
    """Each vision model runs through collect → vision → frozen-feature PPO → zero-shot evaluation."""
    extra = [f"vision.model={model}"]
    tiny = [t for t in TINY if not t.startswith("vision.model_config")]
    args = ["-q", "run", "--out", str(tmp_path)]
    for item in [*tiny, *extra, *ZOO_SETTINGS.get(model, [])]:
        args += ["--set", item]
    assert main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["vision_model"] == model and "target" in summary


def test_evaluate_a_trained_policy_on_a_user_defined_yaml_domain(tiny_run, tmp_path):
    import dataclasses

    from envs.seekavoid.domains import dump_domains_yaml, get_domain

    purple = dataclasses.replace(get_domain("A-default"), name="A-lowcam-custom", cam_height=(1.1, 1.1))
    spec = tmp_path / "shifts.yaml"
    dump_domains_yaml([purple], spec)
    (policy,) = [p for p in (tiny_run / "stages").iterdir() if p.name.startswith("policy-s0")]
    out = tmp_path / "eval"
    assert main(["-q", "evaluate", "--policy", str(policy), "--domains", f"source,{spec}", "--episodes", "2",
                 "--out", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert "A-lowcam-custom" in json.dumps(result["summary"])
    assert "A-lowcam-custom" in (out / "evaluation.md").read_text()


def test_evaluate_a_seekavoid_policy_with_a_shift_of_the_wrapper_registry(tiny_run, tmp_path):
    (policy,) = [p for p in (tiny_run / "stages").iterdir() if p.name.startswith("policy-s0")]
    out = tmp_path / "eval"
    assert main(["-q", "evaluate", "--policy", str(policy), "--domains", "A-default", "--shift", "brightness=0.5",
                 "--episodes", "1", "--out", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    sources = ["A-default", "B-default", "B-changed"]  # the run's source split, recorded in policy.json
    assert result["source"] == sources and result["target"] == [f"{n}+brightness=0.5" for n in sources]
    run_eval = json.loads(next((tiny_run / "stages").glob("evaluate-*/evaluation.json")).read_text())
    # A-default rendered by the SeekAvoid provider as in the run (first episode seed 10000 in both)
    assert result["returns"]["A-default"][0][0] == run_eval["returns"]["A-default"][0][0]
