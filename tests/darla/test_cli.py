"""The stand-alone stage subcommands, chained as a user would: collect → train-vision → traverse →
metrics, plus their error paths."""

import json

import numpy as np
import pytest

from darla.cli import main


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "data"
    assert main(["-q", "collect", "--out", str(out), "--frames", "64", "--obs-size", "16", "--workers", "1"]) == 0
    return out


def test_collect_writes_a_frame_dataset(collected):
    from envs.frames import FrameDataset

    data = FrameDataset(collected)
    assert len(data) == 64 and data.frames.shape == (64, 16, 16, 3)
    assert set(data.domain_names) <= {"A-default", "B-default", "B-changed"}


def test_collect_refuses_the_target_split(tmp_path, capsys):
    assert main(["-q", "collect", "--out", str(tmp_path / "t"), "--frames", "8", "--split", "target"]) == 2
    assert "A-changed" in capsys.readouterr().err


def test_train_vision_traverse_and_metrics_chain(collected, tmp_path, capsys):
    out = tmp_path / "vae"
    assert main(["-q", "train-vision", "--model", "vae", "--data", str(collected), "--out", str(out), "--steps", "3",
                 "--batch-size", "8", "--latents", "4"]) == 0
    ckpt = out / "model"
    meta = json.loads((ckpt / "config.json").read_text())
    assert meta["model"] == "vae" and meta["config"]["latents"] == 4 and meta["config"]["image_size"] == 16
    png = tmp_path / "t.png"
    assert main(["-q", "traverse", str(ckpt), "--out", str(png)]) == 0  # finds its frames via the checkpoint
    assert png.stat().st_size > 0
    result = tmp_path / "m.json"
    cache = tmp_path / "grid.npy"
    assert main(["-q", "metrics", str(ckpt), "--dataset", "seekavoid-factors", "--metrics", "mig", "--fast",
                 "--out", str(result), "--grid-cache", str(cache)]) == 0
    mig = json.loads(result.read_text())["results"]["mig"]["mig"]
    assert np.isfinite(mig) and 0.0 <= mig <= 1.0
    assert np.load(cache).shape == (4860, 16, 16, 3)  # the whole seekavoid-factors grid, rendered once


def test_train_vision_unknown_model_lists_valid_names(collected, tmp_path, capsys):
    assert main(["-q", "train-vision", "--model", "vea", "--data", str(collected), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "vea" in err and "beta_vae_dae" in err


def test_metrics_on_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["-q", "metrics", str(tmp_path / "nope"), "--dataset", "dsprites"]) == 2
    assert "no vision checkpoint" in capsys.readouterr().err


def test_evaluate_defaults_to_the_env_settings_the_policy_was_trained_with(tmp_path, monkeypatch):
    import darla.pipeline

    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "policy.json").write_text(json.dumps({"env_kwargs": {"obs_size": 32, "layout": "collect"}}))
    seen = {}
    monkeypatch.setattr(darla.pipeline, "evaluate_policies", lambda *a, **kw: seen.update(kw["env_kw"]) or {})
    assert main(["-q", "evaluate", "--policy", str(policy), "--out", str(tmp_path / "e")]) == 0
    assert seen == {"obs_size": 32, "layout": "collect"}
    assert main(["-q", "evaluate", "--policy", str(policy), "--out", str(tmp_path / "e"), "--layout", "choice"]) == 0
    assert seen["layout"] == "choice"


def test_evaluate_of_a_directory_without_a_policy_is_a_clear_error(tmp_path, capsys):
    assert main(["-q", "evaluate", "--policy", str(tmp_path), "--out", str(tmp_path / "e")]) == 2
    assert "not a policy directory" in capsys.readouterr().err


def test_train_vision_wires_dc_ign_to_its_factor_dataset_like_darla_run(collected, tmp_path, monkeypatch):
    from vision.models.dc_ign import DCIGN

    attached = []
    original = DCIGN.attach_factor_dataset

    def spy(self, dataset):
        attached.append(dataset.name)
        return original(self, dataset)

    monkeypatch.setattr(DCIGN, "attach_factor_dataset", spy)
    out = tmp_path / "dc_ign"
    assert main(["-q", "train-vision", "--model", "dc_ign", "--data", str(collected), "--out", str(out), "--steps", "2",
                 "--batch-size", "8"]) == 0
    assert attached == ["seekavoid-factors"]
    assert json.loads((out / "model" / "config.json").read_text())["model"] == "dc_ign"
