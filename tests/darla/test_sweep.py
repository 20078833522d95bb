"""``darla sweep``: a grid over vision models × seeds sharing stage-1 data and vision checkpoints."""

import dataclasses
import json
import os
from pathlib import Path

import pytest

from darla.config import load_config
from darla.sweep import Trial, grid, run_sweep, trial_config
from tests.darla.test_run import TINY


def _tiny_base():
    return load_config(None, [t for t in TINY if not t.startswith("vision.model_config")], check_vision=False)


def test_trial_config_sets_model_seed_and_pixel_mode():
    base = _tiny_base()
    pixels = trial_config(dataclasses.replace(base, env=dataclasses.replace(base.env, obs_size=64)),
                          Trial("pixels", 3, "ppo"))
    assert pixels.policy.mode == "pixels" and pixels.policy.seeds == [3]
    # TINY's algo_kwargs are PPO's (batch_size, n_epochs): an A2C trial needs its own, or validation refuses it
    vae = trial_config(dataclasses.replace(base, policy=dataclasses.replace(base.policy, algo_kwargs={"n_steps": 8})),
                       Trial("vae", 1, "a2c"))
    assert (vae.vision.model, vae.policy.mode, vae.policy.algo, vae.policy.seeds) == ("vae", "latent", "a2c", [1])


def test_pixel_trial_on_images_too_small_for_the_cnn_fails_before_anything_trains(tmp_path):
    from darla.config import ConfigError

    with pytest.raises(ConfigError, match="env.obs_size.*64 or more for policy.mode=pixels"):
        run_sweep(_tiny_base(), tmp_path, models=["vae", "pixels"], seeds=[0], use_ray=False, progress=False)
    assert not list((tmp_path / "stages").iterdir())


def test_unknown_model_in_grid_lists_valid_names():
    with pytest.raises(ValueError, match="vea.*beta_vae_dae"):
        grid(["vea"], [0], ["ppo"])


def test_repeated_seed_in_grid_is_rejected():
    with pytest.raises(ValueError, match=r"seeds \[0, 0\] repeat"):
        grid(["vae"], [0, 0], ["ppo"])


def test_sequential_sweep_shares_data_and_vision_and_summarises_per_model(tmp_path):
    summary_path = run_sweep(_tiny_base(), tmp_path, models=["ae", "vae"], seeds=[0, 1], use_ray=False, progress=False)
    summary = json.loads(summary_path.read_text())
    assert set(summary["results"]) == {"ae/ppo", "vae/ppo"}
    for row in summary["results"].values():
        assert row["seeds"] == [0, 1] and "source" in row and "target" in row
    stages = [p.name.rsplit("-", 1)[0] for p in (tmp_path / "stages").iterdir()]
    assert stages.count("collect") == 1  # stage-1 data collected once for every model
    assert stages.count("vision") == 2  # one vision model each, shared by both seeds
    assert sum(s.startswith("policy-") for s in stages) == 4
    assert "| ae | ppo | 2 |" in (tmp_path / "summary.md").read_text()
    # A rerun (a resumed sweep) trains nothing new.
    before = sorted(p.name for p in (tmp_path / "stages").iterdir())
    run_sweep(_tiny_base(), tmp_path, models=["ae", "vae"], seeds=[0, 1], use_ray=False, progress=False)
    assert sorted(p.name for p in (tmp_path / "stages").iterdir()) == before
    # `darla run` on the sweep's stages reproduces one model's row from them, training nothing.
    from darla.cli import main

    args = ["-q", "run", "--out", str(tmp_path / "vae-run"), "--stage-root", str(tmp_path / "stages"),
            "--set", "vision.model=vae", "--set", "policy.seeds=[0, 1]"]
    for item in TINY:
        if not item.startswith("vision.model_config"):
            args += ["--set", item]
    assert main(args) == 0
    assert sorted(p.name for p in (tmp_path / "stages").iterdir()) == before
    run_summary = json.loads((tmp_path / "vae-run" / "summary.json").read_text())
    assert run_summary["source"]["mean"] == summary["results"]["vae/ppo"]["source"]["mean"]
    assert (tmp_path / "vae-run" / "report.md").exists() and not (tmp_path / "vae-run" / "stages").exists()


def test_vision_only_sweep_trains_data_and_vision_and_a_full_sweep_reuses_them(tmp_path):
    visions = run_sweep(_tiny_base(), tmp_path, models=["ae"], seeds=[0, 1], use_ray=False, progress=False,
                        vision_only=True)
    assert visions.name == "visions.json"
    ae_dir = Path(json.loads(visions.read_text())["ae"])
    assert (ae_dir / "DONE.json").exists()
    stages = sorted(p.name for p in (tmp_path / "stages").iterdir())
    assert [s.rsplit("-", 1)[0] for s in stages] == ["collect", "vision"]  # no policy stage yet
    run_sweep(_tiny_base(), tmp_path, models=["ae"], seeds=[0, 1], use_ray=False, progress=False)
    after = [p.name for p in (tmp_path / "stages").iterdir()]
    assert sorted(n for n in after if n.startswith(("collect-", "vision-"))) == stages  # reused, none retrained
    assert sum(n.startswith("policy-") for n in after) == 2


def test_vision_only_without_a_vision_model_is_a_clear_error(tmp_path, capsys):
    from darla.cli import main

    assert main(["-q", "sweep", "--models", "pixels", "--seeds", "0", "--no-ray", "--vision-only",
                 "--out", str(tmp_path)]) == 2
    assert "no vision to train" in capsys.readouterr().err


def test_empty_seed_list_is_a_clear_error(tmp_path, capsys):
    from darla.cli import main

    assert main(["-q", "sweep", "--models", "vae", "--seeds", "", "--no-ray", "--out", str(tmp_path)]) == 2
    assert "no seeds" in capsys.readouterr().err


def _interval(stage_dir):
    return (stage_dir / "stage.json").stat().st_mtime, (stage_dir / "DONE.json").stat().st_mtime


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs to run two Ray jobs at once")
def test_ray_sweep_trains_distinct_vision_models_in_parallel_before_the_policies(tmp_path):
    pytest.importorskip("ray.tune")
    summary = json.loads(run_sweep(_tiny_base(), tmp_path, models=["ae", "vae"], seeds=[0], use_ray=True,
                                   progress=False).read_text())
    assert set(summary["results"]) == {"ae/ppo", "vae/ppo"}
    stages = {p.name: p for p in (tmp_path / "stages").iterdir()}
    visions = [_interval(p) for n, p in stages.items() if n.startswith("vision-")]
    policies = [_interval(p) for n, p in stages.items() if n.startswith("policy-")]
    assert len(visions) == 2 and len(policies) == 2
    (a0, a1), (b0, b1) = visions
    assert a0 < b1 and b0 < a1  # the two vision models trained at the same time
    assert min(start for start, _ in policies) >= max(end for _, end in visions)  # vision first, then policies
