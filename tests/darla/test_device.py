"""``device: auto`` resolution, the missing-device error, and the device through the stages (all on CPU:
CUDA and MPS availability are monkeypatched)."""

from __future__ import annotations

import pytest
import torch

from darla import pipeline
from darla.config import ConfigError, RunConfig, load_config, resolve_device


def _machine(monkeypatch, cuda: bool = False, mps: bool = False, count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu"),
                                                  (True, False, "cuda")])
def test_auto_resolves_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _machine(monkeypatch, cuda=cuda, mps=mps)
    assert resolve_device("auto") == expected
    assert RunConfig().resolved_device == expected  # auto is the default


def test_explicit_devices_are_kept_when_present(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=True, count=2)
    assert [resolve_device(d) for d in ("cpu", "cuda", "cuda:1", "mps")] == ["cpu", "cuda", "cuda:1", "mps"]


@pytest.mark.parametrize("device, machine, needle", [
    ("cuda", {}, "CUDA is not available"),
    ("cuda:3", {"cuda": True, "count": 1}, r"1 CUDA device\(s\) \(cuda:0 … cuda:0\)"),
    ("mps", {"cuda": True}, "MPS is not available"),
    ("gpu", {}, "expected auto, cpu, cuda, cuda:N or mps"),
    ("cuda:x", {}, "expected auto, cpu, cuda, cuda:N or mps"),
])
def test_missing_or_misspelt_device_fails_at_load_with_the_field_and_the_fix(monkeypatch, device, machine, needle):
    _machine(monkeypatch, **machine)
    with pytest.raises(ConfigError, match=needle) as e:
        load_config(None, [f"device={device}"])
    message = str(e.value)
    assert "'device'" in message and repr(device) in message and "\n" not in message
    if "expected" not in needle:
        assert "auto or cpu" in message or "use device: cuda or auto" in message


def test_print_config_fails_on_a_missing_gpu(monkeypatch, capsys):
    from darla.cli import main

    _machine(monkeypatch)
    assert main(["run", "--print-config", "--set", "device=cuda"]) == 2
    err = capsys.readouterr().err
    assert "config field 'device' = 'cuda' is invalid: CUDA is not available" in err and len(err.splitlines()) == 1


def test_python_api_fails_on_a_missing_gpu_before_collection(monkeypatch, tmp_path):
    _machine(monkeypatch)
    monkeypatch.setattr(pipeline, "collect_stage", lambda *a, **k: pytest.fail("collected before the device check"))
    with pytest.raises(ConfigError, match="CUDA is not available"):
        pipeline.run_pipeline(RunConfig(device="cuda"), tmp_path / "run", progress=False)  # never validated
    with pytest.raises(ConfigError, match="MPS is not available"):
        pipeline.train_stages(RunConfig(device="mps"), tmp_path / "stages", progress=False)


def _policy_call(tmp_path, monkeypatch, overrides, cuda=False):
    import agents.train

    calls = []
    monkeypatch.setattr(agents.train, "train_policy",
                        lambda **kw: calls.append({**kw, "threads": torch.get_num_threads()}) or kw["out_dir"])
    _machine(monkeypatch, cuda=cuda)
    config = load_config(None, ["policy.mode=pixels", *overrides])
    stage, record = pipeline.train_policy_stage(config, tmp_path, None, "pixels", 0, progress=False)
    return stage.dir.name, calls[-1], record


def test_policy_stage_trains_on_the_resolved_device_and_its_key_ignores_the_device(tmp_path, monkeypatch):
    name_cpu, call_cpu, record = _policy_call(tmp_path / "a", monkeypatch, ["device=cpu"])
    assert call_cpu["device"] == "cpu" and record["device"] == "cpu"
    name_auto, call_cuda, record = _policy_call(tmp_path / "b", monkeypatch, [], cuda=True)
    assert call_cuda["device"] == "cuda" and record["device"] == "cuda"
    assert name_auto == name_cpu  # the same policy whichever device trained it: a CPU stage is reused on a GPU


def test_vision_and_evaluate_keys_do_not_depend_on_the_device(tmp_path, monkeypatch):
    from darla.config import stage_key

    seen = []
    monkeypatch.setattr(pipeline, "stage_key", lambda *parts: seen.append(parts) or stage_key(*parts))
    monkeypatch.setattr(pipeline.Stage, "run", lambda self, fn, cfg: {"seconds": 0})
    for device in ("cpu", "auto"):
        config = RunConfig(device=device)
        pipeline.train_vision_stage(config, tmp_path, pipeline.Stage(tmp_path, "collect", "k"), progress=False)
        pipeline.evaluate_stage(config, tmp_path, [tmp_path / "policy-s0-x"], progress=False)
    assert seen[:2] == seen[2:] and "device" not in repr(seen)


def test_evaluation_runs_on_the_resolved_device(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(pipeline, "evaluate_policies", lambda *a, **kw: seen.append(kw["device"]) or {})
    _machine(monkeypatch, mps=True)
    pipeline.evaluate_stage(RunConfig(), tmp_path, [tmp_path / "policy-s0-x"], progress=False)
    assert seen == ["mps"]


def test_sweep_trials_ask_ray_for_a_gpu_only_on_cuda(monkeypatch):
    from darla.sweep import trial_resources

    _machine(monkeypatch, cuda=True)
    assert trial_resources(RunConfig(), 2.0) == {"cpu": 2.0, "gpu": 1}
    assert trial_resources(RunConfig(device="cpu"), 1.0) == {"cpu": 1.0}
    _machine(monkeypatch, mps=True)
    assert trial_resources(RunConfig(), 1.0) == {"cpu": 1.0}


def _gpu_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"
    spec = importlib.util.spec_from_file_location("benchmarks_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_without_cuda_says_so_and_exits_non_zero(monkeypatch, capsys, tmp_path):
    _machine(monkeypatch)
    assert _gpu_benchmark().main(["--out", str(tmp_path / "gpu.json")]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu" in err
    assert not (tmp_path / "gpu.json").exists()


@pytest.mark.slow
def test_gpu_benchmark_dry_run_on_cpu_measures_every_stage(tmp_path):
    import json

    assert _gpu_benchmark().main(["--device", "cpu", "--quick", "--out", str(tmp_path / "gpu.json")]) == 0
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["collection"]["frames_per_s"] > 0
    assert report["vision"]["beta_vae_dae"]["fp32"]["images_per_s"] > 0 and "bf16" in report["vision"]["beta_vae"]
    assert report["ppo"]["latent"]["steps_per_s"] > 0 and report["ppo"]["extractor"]["steps_per_s"] > 0
    assert report["evaluation"]["episodes_per_s"] > 0
