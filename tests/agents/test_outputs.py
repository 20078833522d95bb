"""The long-format evaluation CSV: same numbers as the JSON, read by pandas, turned into rliable's score dict."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import vision
from agents.evaluate import (
    CSV_COLUMNS,
    evaluation_csv,
    evaluation_rows,
    read_evaluation_csv,
    rliable_scores,
    write_evaluation,
    write_evaluation_csv,
    zero_shot_evaluate,
)


def fake_result(returns: dict[str, list[list[float]]], source: list[str], vision: str | None = "beta_vae",
                vision_id: str = "abcd", seed: int = 100, policy_seeds: list[int] | None = None,
                mode: str = "latent") -> dict:
    """A hand-made zero_shot_evaluate result (per-episode fields only): ``returns[domain][policy][episode]``."""
    domains = list(returns)
    n_pol, n_ep = len(returns[domains[0]]), len(returns[domains[0]][0])
    seeds = policy_seeds if policy_seeds is not None else list(range(n_pol))
    return {
        "policies": [f"/runs/{vision}/policy-s{s}" for s in seeds],
        "policy_meta": [{"algo": "ppo", "mode": mode, "vision_checkpoint": f"/runs/{vision}/model",
                         "vision_id": vision_id, "seed": s, "steps": 100, "train_domains": source,
                         **({"vision_name": vision} if vision else {})} for s in seeds],
        "domains": domains, "source": source, "target": [d for d in domains if d not in source],
        "episodes": n_ep, "seed": seed, "episode_seeds": [seed + i for i in range(n_ep)], "deterministic": True,
        "returns": returns,
        "lengths": {d: [[3 + i + 10 * k for i in range(n_ep)] for k in range(n_pol)] for d in domains},
    }


@pytest.fixture
def result():
    return fake_result({"A-default": [[1.0, 0.5, 0.25], [0.0, 1.0, 1.0]],
                        "A-changed": [[0.125, -1.0, 0.1], [0.3, 0.7, 1 / 3]]},
                       source=["A-default"], policy_seeds=[3, 7])


def test_csv_rows_match_the_json_per_episode_numbers(result, tmp_path):
    path = write_evaluation_csv(result, tmp_path / "evaluation.csv")
    rows = read_evaluation_csv(path)
    assert len(rows) == 2 * 2 * 3  # policies × domains × episodes
    assert tuple(path.read_text().splitlines()[0].split(",")) == CSV_COLUMNS
    for r in rows:
        k = result["policies"].index(r["policy"])
        assert r["policy_seed"] == result["policy_meta"][k]["seed"]
        assert r["return"] == result["returns"][r["domain"]][k][r["episode"]]  # exact: repr precision
        assert r["length"] == result["lengths"][r["domain"]][k][r["episode"]]
        assert r["episode_seed"] == result["seed"] + r["episode"]
        assert r["split"] == ("source" if r["domain"] == "A-default" else "target")
        assert (r["vision_model"], r["vision_id"], r["algo"], r["mode"]) == ("beta_vae", "abcd", "ppo", "latent")
    # every (policy, domain, episode) cell exactly once
    assert len({(r["policy"], r["domain"], r["episode"]) for r in rows}) == len(rows)


def test_csv_reads_with_pandas(result, tmp_path):
    pd = pytest.importorskip("pandas")
    path = write_evaluation_csv(result, tmp_path / "evaluation.csv")
    df = pd.read_csv(path)
    assert list(df.columns) == list(CSV_COLUMNS)
    means = df.groupby(["domain", "policy_seed"])["return"].mean()
    assert means["A-changed", 7] == pytest.approx(np.mean(result["returns"]["A-changed"][1]))
    assert df["length"].dtype.kind == "i" and df["return"].dtype.kind == "f"


def test_missing_values_are_empty_cells_and_pixels_policies_are_labelled(tmp_path):
    r = fake_result({"A-default": [[1.0]], "A-changed": [[0.0]]}, source=["A-default"], vision=None, mode="pixels")
    r["policy_meta"][0]["vision_id"] = None
    rows = read_evaluation_csv(write_evaluation_csv(r, tmp_path / "e.csv"))
    assert rows[0]["vision_model"] == "pixels" and rows[0]["vision_id"] is None
    assert ",pixels,," in (tmp_path / "e.csv").read_text()


def test_read_evaluation_csv_rejects_other_csvs(tmp_path):
    (tmp_path / "x.csv").write_text("timesteps,mean_return\n1,2\n")
    with pytest.raises(ValueError, match="not an evaluation CSV.*'policy'"):
        read_evaluation_csv(tmp_path / "x.csv")


def test_rliable_scores_shape_and_values(result):
    scores = rliable_scores(evaluation_rows(result), split="target")
    assert list(scores) == ["beta_vae"]
    assert scores["beta_vae"].shape == (2, 1)  # (runs = policies, tasks = target domains)
    np.testing.assert_allclose(scores["beta_vae"][:, 0], np.mean(result["returns"]["A-changed"], axis=1))
    both = rliable_scores(evaluation_rows(result), split="all")
    assert both["beta_vae"].shape == (2, 2)
    np.testing.assert_allclose(both["beta_vae"][:, 0], np.mean(result["returns"]["A-default"], axis=1))


def test_rliable_scores_groups_algorithms_and_reads_a_dataframe(result, tmp_path):
    other = fake_result({"A-default": [[0.0, 0.0, 0.0]] * 3, "A-changed": [[2.0, 2.0, 2.0]] * 3},
                        source=["A-default"], vision="vae", vision_id="ffff")
    rows = evaluation_rows(result) + evaluation_rows(other)
    scores = rliable_scores(rows)
    assert {k: v.shape for k, v in scores.items()} == {"beta_vae": (2, 1), "vae": (3, 1)}
    np.testing.assert_allclose(scores["vae"], 2.0)
    pd = pytest.importorskip("pandas")
    write_evaluation_csv(other, tmp_path / "o.csv")
    df_scores = rliable_scores(pd.read_csv(tmp_path / "o.csv"))
    np.testing.assert_allclose(df_scores["vae"], scores["vae"])


def test_rliable_scores_refuses_runs_missing_a_task(result):
    rows = [r for r in evaluation_rows(result) if not (r["policy_seed"] == 7 and r["domain"] == "A-changed")]
    rows += evaluation_rows(fake_result({"A-default": [[1.0]], "B-changed": [[1.0]]}, source=["A-default"]))
    with pytest.raises(ValueError, match="without domain"):
        rliable_scores(rows)
    with pytest.raises(ValueError, match="split must be"):
        rliable_scores(evaluation_rows(result), split="targets")


def test_write_evaluation_writes_the_csv_of_a_real_evaluation(tiny_checkpoint, tiny_env_fn, tmp_path):
    """zero_shot_evaluate records the vision model's name; write_evaluation's CSV agrees with its JSON."""
    from agents.train import train_policy

    vis = tmp_path / "vision"
    shutil.copytree(tiny_checkpoint, vis)
    policy = train_policy(env_fn=tiny_env_fn, env_kwargs={"domain": "A-default"}, vision=str(vis), algo="ppo",
                          steps=64, n_envs=1, seed=0, out_dir=tmp_path / "p", mode="latent",
                          algo_kwargs={"n_steps": 32, "batch_size": 32, "n_epochs": 1}, progress=False)
    result = zero_shot_evaluate([policy], ["A-default", "A-changed"], env_factory=tiny_env_fn, episodes=3,
                                seed=5, progress=False, n_boot=50)
    out = write_evaluation(result, tmp_path / "eval")
    saved = json.loads((out / "evaluation.json").read_text())
    rows = read_evaluation_csv(out / "evaluation.csv")
    meta = json.loads((policy / "policy.json").read_text())
    assert {r["vision_model"] for r in rows} == {vision.load(vis).name}
    assert {r["vision_id"] for r in rows} == {meta["vision_id"]}
    assert [r["return"] for r in rows] == [x for d in saved["domains"] for x in saved["returns"][d][0]]
    assert [r["length"] for r in rows] == [x for d in saved["domains"] for x in saved["lengths"][d][0]]
    assert evaluation_csv(saved) == (out / "evaluation.csv").read_text()  # the JSON alone rebuilds the CSV
