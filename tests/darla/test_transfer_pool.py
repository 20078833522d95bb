"""results/transfer/pool.py: pooling the frozen-vision rows of several studies of one split."""

import json

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def pool():
    return load_script("results/transfer/pool.py", "transfer_pool")


def _row(model, metric, ratio, checkpoint):
    results = {"dci": {"disentanglement": metric}, "mig": {"mig": 1 - metric}}
    return {"model": model, "metrics": {"results": results}, "vision_checkpoint": checkpoint,
            "target": {"ratio": {"mean": ratio, "ci": [ratio - 0.1, ratio + 0.1]}},
            "hard": {"ratio": {"mean": ratio / 2, "ci": [0.0, ratio]}}}


def _study(tmp_path, name, rows, seed=0, base_model="beta_vae_dae", model_config=None, split="camera-narrow",
           data="cam-source"):
    folder = tmp_path / name
    folder.mkdir(parents=True)
    summary = {"split": {"name": split, "source": "cam-source", "policy": ["A-default", "B-default"],
                         "target_domain": "A-highcam"},
               "base": {"collect": {"split": data},
                        "vision": {"model": base_model, "model_config": model_config or {}}},
               "vision_seed": seed, "models": rows}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_pooled_points_are_labelled_by_seed_and_settings_and_ranked(pool, tmp_path):
    main = _study(tmp_path, "main", {"pixels": {"model": "pixels", "target": {"ratio": {"mean": 0.9, "ci": [0.8, 1]}}},
                                     "vae": _row("vae", 0.1, 0.5, "ck/vae0"),
                                     "beta_vae_dae": _row("beta_vae_dae", 0.3, 0.9, "ck/bvd0")})
    seed1 = _study(tmp_path, "seed1", {"beta_vae_dae": _row("beta_vae_dae", 0.2, 0.8, "ck/bvd1")}, seed=1)
    beta = _study(tmp_path, "beta4", {"beta_vae_dae": _row("beta_vae_dae", 0.4, 1.0, "ck/bvd0b4")},
                  model_config={"beta": 4, "dae_checkpoint": "/runs/x/dae/model"})
    narrow = _study(tmp_path, "coverage", {"beta_vae_dae": _row("beta_vae_dae", 0.05, 0.4, "ck/bvd0n")},
                    data="A-default,B-default")  # stage-1 frames without the raised camera
    _with_evaluation(main, "beta_vae_dae", 0.9, 0.45)  # two vision seeds of one model: their evaluations are read
    _with_evaluation(seed1, "beta_vae_dae", 0.8, 0.4)
    out = tmp_path / "out"
    pooled = pool.main(["--studies", str(main), str(seed1), str(beta), str(narrow), "--out", str(out)])

    assert list(pooled["points"]) == ["vae s0", "beta_vae_dae s0", "beta_vae_dae s1", "beta_vae_dae s0 beta=4",
                                      "beta_vae_dae s0 data=A-default,B-default"]
    assert pooled["points"]["beta_vae_dae s0 beta=4"]["settings"]["dae_checkpoint"] == "/runs/x/dae/model"
    rho = pooled["rank_correlations"]["DCI disentanglement vs target/source"]
    assert rho["n_models"] == 5 and rho["rho"] == pytest.approx(1.0)  # metric and ratio in the same order
    assert pooled["rank_correlations"]["MIG vs target/source"]["rho"] == pytest.approx(-1.0)
    saved = json.loads((out / "pooled.json").read_text())
    assert saved["points"].keys() == pooled["points"].keys() and saved["split"]["name"] == "camera-narrow"
    assert (out / "pooled_metric_vs_transfer.png").stat().st_size > 0
    readme = (out / "README.md").read_text()
    assert "| beta_vae_dae s0 beta=4 |" in readme and "pooled-table:end" in readme

    # the same checkpoint given twice (a study pooled again) counts once
    again = pool.main(["--studies", str(main), str(main), "--out", str(tmp_path / "again")])
    assert list(again["points"]) == ["vae s0", "beta_vae_dae s0"]


def test_pool_refuses_mixed_splits_and_folders_without_a_summary(pool, tmp_path):
    camera = _study(tmp_path, "camera", {"vae": _row("vae", 0.1, 0.5, "ck/a")})
    room = _study(tmp_path, "room", {"vae": _row("vae", 0.1, 0.5, "ck/b")}, split="room")
    with pytest.raises(ValueError, match="split 'room'.*pool studies of one split only"):
        pool.main(["--studies", str(camera), str(room), "--out", str(tmp_path / "o")])
    with pytest.raises(FileNotFoundError, match="summary.json does not exist.*--studies"):
        pool.main(["--studies", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    other = _study(tmp_path, "other", {"vae": _row("vae", 0.2, 0.6, "ck/c")})
    with pytest.raises(ValueError, match="same label 'vae s0'"):
        pool.main(["--studies", str(camera), str(other), "--out", str(tmp_path / "o")])


def _with_evaluation(folder, name, ratio, hard_ratio, seeds=3):
    """Write ``folder/name/evaluation.json``: source return 1 everywhere, exact target and hard ratios."""
    ones = [[1.0] * 8] * seeds
    returns = {"A-default": ones, "B-default": ones, "A-highcam": [[ratio] * 8] * seeds,
               "A-highcam-dim": [[hard_ratio] * 8] * seeds}
    (folder / name).mkdir()
    (folder / name / "evaluation.json").write_text(json.dumps(
        {"policies": list(range(seeds)), "source": ["A-default", "B-default"], "returns": returns}))


def test_models_with_several_vision_seeds_get_a_ratio_over_their_checkpoints(pool, tmp_path):
    rows = {}
    for seed, (vae, bvd) in enumerate([(0.5, 0.95), (0.3, 0.2)]):
        rows[seed] = {"vae": _row("vae", 0.1, vae, f"ck/vae{seed}"),
                      "beta_vae_dae": _row("beta_vae_dae", 0.3, bvd, f"ck/bvd{seed}")}
        for r in rows[seed].values():
            r["hard"]["domains"] = ["A-highcam-dim"]
    s0 = _study(tmp_path, "s0", rows[0])
    s1 = _study(tmp_path, "s1", rows[1], seed=1)
    beta = _study(tmp_path, "beta4", {"beta_vae_dae": _row("beta_vae_dae", 0.4, 1.0, "ck/b4")}, model_config={"beta": 4})
    for folder, seed in ((s0, 0), (s1, 1)):
        _with_evaluation(folder, "vae", [0.5, 0.3][seed], 0.1)
        _with_evaluation(folder, "beta_vae_dae", [0.95, 0.2][seed], 0.4)
    summary = json.loads((s0 / "summary.json").read_text())
    summary["split"]["target_domain"] = "A-highcam"
    for folder in (s0, s1, beta):
        (folder / "summary.json").write_text(json.dumps({**json.loads((folder / "summary.json").read_text()),
                                                         "split": summary["split"]}))
    out = tmp_path / "out"
    pooled = pool.main(["--studies", str(s0), str(s1), str(beta), "--out", str(out)])

    groups = pooled["across_vision_seeds"]
    assert list(groups) == ["vae", "beta_vae_dae"]  # beta=4 has one seed: no pooled ratio
    bvd = groups["beta_vae_dae"]
    assert bvd["points"] == ["beta_vae_dae s0", "beta_vae_dae s1"] and bvd["vision_seeds"] == [0, 1]
    assert bvd["target"]["group_ratios"] == pytest.approx([0.95, 0.2])
    assert bvd["target"]["ratio"] == pytest.approx(0.575) and bvd["target"]["ci"] == pytest.approx([0.2, 0.95])
    assert bvd["hard"]["ratio"] == pytest.approx(0.4) and bvd["hard"]["ci"] == pytest.approx([0.4, 0.4])
    assert "| beta_vae_dae | 0, 1 | 3, 3 | 0.95, 0.20 | 0.57 [0.20, 0.95] |" in (out / "README.md").read_text()

    # a seed-1 study trained with other settings is not pooled with seed 0's checkpoints
    longer = _study(tmp_path, "longer", {"vae": _row("vae", 0.1, 0.9, "ck/vae1-long")}, seed=1)
    summary = json.loads((longer / "summary.json").read_text())
    summary["base"]["vision"]["steps"] = 8000
    (longer / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="same label 'vae s1'"):  # same label as s1's vae: refused outright
        pool.main(["--studies", str(s0), str(s1), str(longer), "--out", str(out)])
    separate = pool.main(["--studies", str(s0), str(longer), "--out", str(out)])
    assert "vae" not in separate["across_vision_seeds"] and "beta_vae_dae" not in separate["across_vision_seeds"]

    (s1 / "vae" / "evaluation.json").unlink()
    with pytest.raises(FileNotFoundError, match="vae s1's study was not written by run.py"):
        pool.main(["--studies", str(s0), str(s1), "--out", str(out)])
