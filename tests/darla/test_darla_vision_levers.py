"""results/darla_vision/levers.py: the source-only slice it selects on, and the table it writes."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from tests.scripts import load_script

NAMES = ("floor", "wall", "object", "lateral", "depth", "heading", "light")
SIZES = (3, 3, 4, 5, 3, 3, 3)


@pytest.fixture(scope="module")
def levers():
    return load_script("results/darla_vision/levers.py", "darla_vision_levers")


def fake_grid():
    from envs.factors import all_factor_combinations

    combos = all_factor_combinations(SIZES)
    # each image's first pixel holds its floor and wall index, so the test can see which rows were kept
    images = np.zeros((len(combos), 4, 4, 3), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = combos[:, 0], combos[:, 1]
    return SimpleNamespace(factor_sizes=SIZES, factor_names=NAMES, grid_images=images)


def test_source_slice_is_the_default_room_with_every_other_factor_crossed(levers):
    images, factors = levers.source_slice(fake_grid())
    assert len(images) == 4 * 5 * 3 * 3 * 3 == 540
    assert (images[:, 0, 0, :2] == 0).all()  # floor = wall = default (style 0) in every kept image
    assert factors.shape == (540, len(levers.SLICE_FACTORS))
    assert len({tuple(r) for r in factors}) == 540  # fully crossed: every combination once
    assert [len(np.unique(factors[:, k])) for k in range(5)] == [4, 5, 3, 3, 3]


def point(run, steps, mig, seed=0, model=None):
    extra = {} if model is None else {"model": model}  # points from before the amendment have no "model"
    return {**extra, "run": run, "seed": seed, "steps": steps, "overrides": {"beta": 0.1} if run == "beta0.1" else {},
            "dae_steps": 1500, "train_seconds_this_leg": 200.0,
            "source_slice": {"mig": {"mig": mig}, "dci": {"disentanglement": 0.3}},
            "source_probe": {"good_dist": 0.9, "good_angle": None, "pair": 0.8},
            "active_latents": 12, "grid": {"mig": {"mig": 0.1}, "dci": {"disentanglement": 0.25},
                                           "factor_vae": {"eval_accuracy": 0.5}}}


def test_table_orders_runs_as_declared_and_rewrites_only_between_markers(levers, tmp_path):
    (tmp_path / "levers").mkdir()
    for p in (point("beta0.1", 4000, 0.21), point("vae", 4000, 0.3, model="vae"), point("base", 8000, 0.15),
              point("base", 4000, 0.11)):
        (tmp_path / "levers" / f"{p['run']}__s0__{p['steps']}.json").write_text(json.dumps(p))
    # a UDR file of base@8000 over seeds 0 and 3: its seed-0 score lands in base@8000's row only
    (tmp_path / "levers" / "udr__base__8000.json").write_text(json.dumps(
        {"run": "base", "steps": 8000, "seeds": [3, 0], "model_scores": [0.11, 0.47], "udr": 0.29}))
    (tmp_path / "README.md").write_text(f"before\n{levers.TABLE_START}\nstale\n{levers.TABLE_END}\nafter\n")
    levers.write_table(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "stale" not in text
    rows = [line for line in text.splitlines() if line.startswith(("| base", "| beta", "| vae"))]
    assert [r.split("|")[1].strip() + "@" + r.split("|")[4].strip() for r in rows] == \
        ["base@4000", "base@8000", "beta0.1@4000", "vae@4000"]
    assert "| beta=0.1 |" in rows[2] and "| 0.21 |" in rows[2] and "| – |" in rows[0]  # None shows as –
    assert "| vae on pixels (zoo default) |" in rows[3] and "| — |" in rows[0]
    assert "| 12 | 0.47 |" in rows[1] and "| 12 | – |" in rows[0]  # UDR column, after active latents


def test_udr_refuses_missing_checkpoints_and_a_single_seed_before_any_work(levers, tmp_path):
    with pytest.raises(SystemExit, match="at least 2 seeds"):
        levers.udr_point("base", 8000, [0], frames=None, work=tmp_path, out=tmp_path)
    (tmp_path / "base-s0" / "model-8000").mkdir(parents=True)
    (tmp_path / "base-s0" / "model-8000" / "config.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"base-s1/model-8000.*--runs base --seeds 0,1"):
        levers.udr_point("base", 8000, [0, 1], frames=None, work=tmp_path, out=tmp_path)
    with pytest.raises(SystemExit, match="RUN@STEPS"):
        levers.main(["--udr", "base8000", "--work", str(tmp_path / "w"), "--out", str(tmp_path)])
    assert not (tmp_path / "levers").exists() and not (tmp_path / "w").exists()


def test_max_steps_keeps_the_short_lengths_and_pixel_baselines_need_no_dae(levers):
    assert levers.lengths_of("base") == levers.RUNS["base"].lengths
    assert levers.lengths_of("base", 8000) == (4000, 8000)
    assert levers.lengths_of("base", 3999) == ()
    assert all((lever.dae_steps is None) == (lever.model != "beta_vae_dae") for lever in levers.RUNS.values())


def test_unknown_run_is_refused_before_any_work(levers, tmp_path):
    with pytest.raises(SystemExit, match="unknown run"):
        levers.main(["--runs", "base,nope", "--work", str(tmp_path / "w"), "--out", str(tmp_path)])
    assert not (tmp_path / "w").exists()
