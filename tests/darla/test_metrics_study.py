"""The metrics study script (results/metrics/run.py): aggregation, README rewriting, and a tiny
end-to-end run that resumes. (Its grid dataset and memoised encoder are library code, tested in
tests/envs/test_factors.py and tests/darla/test_metrics_grid.py.)"""

import json

import pytest

from tests.scripts import load_script

TINY_PARAMS = {
    "beta_vae": {"batch_size": 8, "num_train": 10, "num_eval": 5},
    "factor_vae": {"batch_size": 8, "num_train": 10, "num_eval": 5, "num_variance_estimate": 100},
    "mig": {"num_train": 100},
    "dci": {"num_train": 60, "num_test": 30},
    "sap": {"num_train": 60, "num_test": 30},
}


def _tiny_argv(tmp_path, seeds):
    """A 2-step VAE on 64 16-px dSprites images, scored with tiny metric samples."""
    return ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--cache", str(tmp_path / "cache"),
            "--datasets", "dsprites", "--models", "vae", "--seeds", seeds, "--steps", "2", "--image-size", "16",
            "--dsprites-images", "64", "--batch-size", "8", "--threads", "1", "--no-progress", "--fast",
            "--metric-params", json.dumps(TINY_PARAMS)]


@pytest.fixture(scope="module")
def study():
    return load_script("results/metrics/run.py", "metrics_study_run")


def test_rewrite_table_section_replaces_only_the_marked_block(study, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n\n{study.TABLE_START}\nold table\n{study.TABLE_END}\n\nreading\n")
    study.rewrite_table_section(readme, "| new | table |\n")
    text = readme.read_text()
    assert "old table" not in text and "| new | table |" in text
    assert text.startswith("# Title\n\nintro\n") and text.endswith("\nreading\n")


def test_aggregate_gives_mean_and_std_over_seeds(study):
    def record(seed, mig):
        return {"settings": {"dataset": "dsprites", "model": "vae", "seed": seed}, "train_seconds": 1.0,
                "metric_seconds": 1.0, "active_latents": 3, "results": {"mig": {"mig": mig}}}

    summary = study.aggregate([record(0, 0.1), record(1, 0.3)],
                              {("dsprites", "vae"): {"model_scores": [0.4, 0.6], "pairwise": [[0, 0.4], [0.6, 0]]}})
    entry = summary["dsprites"]["vae"]
    # sample std over seeds: |0.3 - 0.1| / sqrt(2)
    assert entry["mig.mig"]["mean"] == pytest.approx(0.2) and entry["mig.mig"]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert entry["udr.udr"]["mean"] == pytest.approx(0.5)
    assert "0.20 ± 0.14" in study.markdown_tables(summary)


def test_write_summary_of_a_partial_rerun_keeps_the_other_models_and_their_udr(study, tmp_path):
    def entry(v):
        return {"seeds": [0, 1], "train_seconds": [1.0, 1.0], "metric_seconds": [1.0, 1.0], "mig.mig": v}

    path = tmp_path / "summary.json"
    study.write_summary(path, {"dsprites": {"vae": entry(0.1), "beta_vae": entry(0.2)}},
                        {("dsprites", "vae"): {"u": 1}, ("dsprites", "beta_vae"): {"u": 2}})
    merged = study.write_summary(path, {"dsprites": {"beta_vae": entry(0.3)}}, {("dsprites", "beta_vae"): {"u": 3}})
    assert merged["dsprites"]["vae"]["mig.mig"] == 0.1 and merged["dsprites"]["beta_vae"]["mig.mig"] == 0.3
    stored = json.loads(path.read_text())
    assert stored["udr"] == {"dsprites/vae": {"u": 1}, "dsprites/beta_vae": {"u": 3}}
    assert stored["compute_seconds"]["dsprites"] == 8.0


def test_tiny_run_writes_one_json_per_seed_and_a_rerun_reuses_them(study, tmp_path):
    argv = _tiny_argv(tmp_path, "0,1")
    summary = study.main(argv)
    out = tmp_path / "out"
    jsons = sorted(p.name for p in out.glob("dsprites__*.json"))
    assert jsons == ["dsprites__vae__seed0.json", "dsprites__vae__seed1.json"]
    record = json.loads((out / jsons[0]).read_text())
    assert set(record["results"]) == set(study.SUPERVISED)
    assert record["settings"]["steps"] == 2 and record["settings"]["config"]["latents"] == 10
    assert summary["dsprites"]["vae"]["seeds"] == [0, 1]
    assert "| vae | 2 |" in (out / "README.md").read_text()
    stamps = [(out / j).stat().st_mtime_ns for j in jsons]
    again = study.main(argv)
    assert [(out / j).stat().st_mtime_ns for j in jsons] == stamps
    assert again["dsprites"]["vae"]["mig.mig"] == summary["dsprites"]["vae"]["mig.mig"]


def test_rerun_retrains_a_run_whose_checkpoint_is_gone_or_was_trained_further(study, tmp_path):
    argv = _tiny_argv(tmp_path, "0")
    first = study.main(argv)
    out_json = tmp_path / "out" / "dsprites__vae__seed0.json"
    stamp = out_json.stat().st_mtime_ns
    import shutil

    shutil.rmtree(tmp_path / "work")  # a fresh machine: the JSON is committed, the checkpoint is not
    again = study.main(argv)
    assert out_json.stat().st_mtime_ns != stamp  # trained and scored again ...
    assert again["dsprites"]["vae"]["mig.mig"] == first["dsprites"]["vae"]["mig.mig"]  # ... to the same numbers

    # Another study sharing --work trains the checkpoint on to 4 steps: the 2-step JSON must not be reused
    # with a 4-step checkpoint behind it; going back is refused with a clear message.
    other = list(argv)
    other[other.index("--out") + 1], other[other.index("--steps") + 1] = str(tmp_path / "other"), "4"
    study.main(other)
    with pytest.raises(ValueError, match="beyond the requested 2 steps"):
        study.main(argv)


def test_unknown_dataset_error_names_the_valid_ones(study, tmp_path):
    with pytest.raises(ValueError, match="valid: dsprites, seekavoid-factors"):
        study.load_dataset("shapes3d", tmp_path, 10)
