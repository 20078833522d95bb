"""The transfer study script (results/transfer/run.py): group statistics over domains, and a tiny
end-to-end study (pixels + one vision model, two seeds) that writes summary, metrics, plot and table
and reuses everything on a rerun."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.darla.test_run import TINY
from tests.scripts import load_script


@pytest.fixture(scope="module")
def study():
    return load_script("results/transfer/run.py", "transfer_study_run")


def _evaluation():
    """Two seeds × four episodes: source always 1; A-changed 0.5 on average; the hard domain 0."""
    ones = [[1.0] * 4] * 2
    return {"source": ["A-default", "B-default"], "target": ["A-changed", "A-third"], "policies": ["p0", "p1"],
            "episodes": 4,
            "returns": {"A-default": ones, "B-default": ones, "A-changed": [[1, 0, 1, 0], [1, 1, 0, 0]],
                        "A-third": [[0.0] * 4] * 2},
            "summary": {n: {"mean": m, "ci": [m, m], "split": s} for n, m, s in
                        (("A-default", 1, "source"), ("B-default", 1, "source"), ("A-changed", .5, "target"),
                         ("A-third", 0, "target"))}}


def test_model_row_separates_the_darla_target_from_the_hard_targets(study):
    row = study.model_row(_evaluation(), n_boot=200)
    assert row["source"]["mean"] == pytest.approx(1.0) and row["n_seeds"] == 2
    assert row["target"]["domains"] == ["A-changed"] and row["target"]["mean"] == pytest.approx(0.5)
    assert row["target"]["ratio"]["mean"] == pytest.approx(0.5)
    lo, hi = row["target"]["ratio"]["ci"]
    assert 0.0 <= lo < 0.5 < hi <= 1.0
    assert row["hard"]["domains"] == ["A-third"] and row["hard"]["ratio"]["mean"] == pytest.approx(0.0)


def test_the_headline_target_follows_the_split(study):
    evaluation = _evaluation()
    row = study.model_row(evaluation, n_boot=200, target="A-third")  # as --split camera names A-highcam
    assert row["target"]["domains"] == ["A-third"] and row["hard"]["domains"] == ["A-changed"]
    only = study.model_row(evaluation, n_boot=200, target="A-third", hard=["A-dim"])  # B-highcam-like extras
    assert only["hard"] is None  # targets outside the hard split are not lumped into it
    summary = {"split": {"target_domain": "A-third"}, "models": {"m": {**row, "n_seeds": 2}}}
    assert "| vision | seeds | source | target (A-third) |" in study.markdown_table(summary)
    assert study.headline_target({"models": {}}) == "A-changed"  # summaries written before --split
    args = study.parse_args(["--split", "camera"])
    assert study.SPLITS[args.split] == {"source": "cam-source", "policy": "", "target": "cam-target", "hard": "cam-hard"}
    assert study.SPLITS["camera-narrow"]["policy"] == study.SPLITS["room-narrow"]["policy"] == "A-default,B-default"
    assert study.SPLITS["room-narrow"]["source"] == "source"  # stage 1 still sees pair B in the changed room
    with pytest.raises(SystemExit):
        study.parse_args(["--split", "lighting"])


def test_group_estimates_of_unevaluated_domains_is_none(study):
    assert study.group_estimates(_evaluation(), ["A-third-dim-lowcam"]) is None


def test_tiny_study_writes_summary_metrics_plot_and_table_and_reuses_them(study, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["--models", "pixels,vae", "--seeds", "0,1", "--work", str(work), "--out", str(out), "--no-ray",
            "--no-progress", "--probe-frames", "200"]
    for item in TINY:
        if not item.startswith("vision.model_config"):
            argv += ["--set", item]
    argv += ["--set", "env.obs_size=64", "--set", "evaluate.episodes=1"]  # CnnPolicy needs >= 36 px
    summary = study.main(argv)
    assert list(summary["models"]) == ["pixels", "vae"]
    for row in summary["models"].values():
        assert row["seeds"] == [0, 1] and row["n_seeds"] == 2 and row["steps"] == 256
        assert np.isfinite(row["source"]["mean"]) and row["target"]["domains"] == ["A-changed"]
        assert len(row["hard"]["domains"]) >= 3  # the harder shifted targets are evaluated too
        assert len(row["learned_by"]) == 2  # one entry per seed (None: 256 steps never reach 0.9)
    assert "metrics" not in summary["models"]["pixels"]
    mig = summary["models"]["vae"]["metrics"]["results"]["mig"]["mig"]
    assert 0.0 <= mig <= 1.0
    probe = summary["models"]["vae"]["probe_transfer"]
    assert set(probe["targets"]) == {"A-changed", "hard"} and probe["source_rows"] == 200
    assert set(probe["targets"]["A-changed"]["factors"]) == {"pair", "good_side", "good_angle", "bad_angle"}
    saved = json.loads((out / "summary.json").read_text())
    assert saved["models"]["vae"]["vision_checkpoint"].endswith("/model") and "compute_seconds" in saved
    assert saved["command"].startswith("python results/transfer/run.py --models pixels,vae")
    assert (out / "metric_vs_transfer.png").stat().st_size > 0
    for model in ("pixels", "vae"):  # per-model evidence next to the summary
        files = saved["models"][model]["files"]
        assert {"evaluation.md", "evaluation.json", "learning_curve_s0.csv", "learning_curve_s1.csv"} <= set(files)
        assert all((out / model / f).exists() for f in files)
    assert "traversal.png" in saved["models"]["vae"]["files"]
    readme = (out / "README.md").read_text()
    assert study.TABLE_START in readme and "| vae | 2 |" in readme
    stamps = [(out / d / "vae.json").stat().st_mtime_ns for d in ("metrics", "probe")]
    again = study.main(argv)
    assert [(out / d / "vae.json").stat().st_mtime_ns for d in ("metrics", "probe")] == stamps  # reused
    assert again["models"]["vae"]["target"]["mean"] == summary["models"]["vae"]["target"]["mean"]
    # The twin-frame analysis reads the finished study: every model, every target domain, every seed.
    invariance = load_script("results/transfer/invariance.py", "transfer_invariance")
    inv_argv = ["--study", str(out), "--work", str(work), "--episodes", "2", "--max-steps", "4", "--targets",
                "A-changed,A-third"]
    inv = invariance.main(inv_argv)
    assert set(inv["models"]) == {"pixels", "vae"}
    for per in inv["models"].values():
        assert set(per) == {"A-changed", "A-third"}
        for r in per.values():
            assert len(r["agreement_seeds"]) == len(r["feature_shift_seeds"]) == len(r["return_drop_seeds"]) == 2
            assert 0.0 <= r["agreement"] <= 1.0 and r["feature_shift"] > 0.0  # the room change moves features
            assert len(r["changed_episodes_seeds"]) == 2 and 0.0 <= r["changed_episodes"] <= 1.0
    for model in ("pixels", "vae"):  # the on-policy walk replays the evaluation's A-default episodes exactly
        evaluation = json.loads((Path(summary["models"][model]["evaluation"]) / "evaluation.json").read_text())
        assert inv["models"][model]["A-third"]["twin_return_seeds"] == pytest.approx(
            evaluation["summary"]["A-default"]["seed_means"])
    assert json.loads((out / "invariance.json").read_text())["models"]["vae"]["A-changed"]["pairs"] >= 2
    assert "invariance-table:start" in (out / "README.md").read_text()
    cached = sorted((work / "invariance").iterdir())
    assert len(cached) == 2  # one analysis per model, reused on a rerun
    stamps = [c.stat().st_mtime_ns for c in cached]
    again = invariance.main(inv_argv)
    assert [c.stat().st_mtime_ns for c in cached] == stamps and again["models"] == inv["models"]


def test_a_policy_that_learned_nothing_neither_crashes_the_plot_nor_writes_nan(study, tmp_path):
    """Source return ~0: the ratio's percentile CI can miss its point estimate, or the ratio is undefined."""
    def row(mig, ratio, ci):
        results = {m: {k: mig} for m, k, _ in study.METRICS}
        return {"metrics": {"results": results}, "target": {"ratio": {"mean": ratio, "ci": ci}},
                "hard": {"ratio": {"mean": ratio, "ci": ci}}}

    nan = float("nan")
    summary = {"models": {"a": row(0.1, -5.0, [-4.87, 0.80]), "b": row(0.2, nan, [nan, nan]),
                          "c": row(0.3, 0.9, [0.8, 1.0]), "d": row(0.4, 1.0, [0.9, 1.0]),
                          "e": row(0.5, 0.7, [0.6, 0.8])}}
    png = study.metric_vs_transfer_png(summary, tmp_path / "plot.png")
    assert png.stat().st_size > 0
    rho = study.rank_correlations(summary)
    assert rho and all(v["n_models"] == 4 for v in rho.values())  # b (undefined ratio) left out, not NaN for all
    assert study._est(summary["models"]["b"]["target"]["ratio"]) == "–"
    study._write_json(tmp_path / "s.json", summary)
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and json.loads(text)["models"]["b"]["target"]["ratio"]["mean"] is None


def test_learned_by_is_the_first_step_at_the_level_or_none(study, tmp_path):
    curve = tmp_path / "learning_curve.csv"
    curve.write_text("timesteps,mean_return,episodes,mean_length\n1024,0.2,5,9\n2048,0.95,6,8\n3072,0.5,6,8\n")
    assert study.learned_by(curve) == 2048
    assert study.learned_by(curve, level=0.99) is None
    assert study._learned([2048, None, 4096]) == "3k (2/3)" and study._learned([None]) == "never (0/1)"
