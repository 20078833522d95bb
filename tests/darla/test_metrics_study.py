"""The metrics study script (results/metrics/run.py): its data helpers, memoisation, aggregation,
README rewriting, and a tiny end-to-end run that resumes."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from envs.factors import FactorDataset

RUN_PY = Path(__file__).resolve().parents[2] / "results" / "metrics" / "run.py"
TINY_PARAMS = {
    "beta_vae": {"batch_size": 8, "num_train": 10, "num_eval": 5},
    "factor_vae": {"batch_size": 8, "num_train": 10, "num_eval": 5, "num_variance_estimate": 100},
    "mig": {"num_train": 100},
    "dci": {"num_train": 60, "num_test": 30},
    "sap": {"num_train": 60, "num_test": 30},
}


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("metrics_study_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _TinyFactors(FactorDataset):
    """2 × 3 factors; the image's two pixels hold the factor values (so every combination differs)."""

    name = "tiny"
    factor_names = ("a", "b")
    factor_sizes = (2, 3)
    observation_shape = (1, 2, 1)

    def images(self, factors):
        f = self.validate_factors(factors)
        return (f[:, None, :, None] * 40 + 7).astype(np.uint8)


def test_all_factor_combinations_row_i_is_unravel_index(study):
    combos = study.all_factor_combinations((2, 3, 4))
    assert combos.shape == (24, 3)
    for i in (0, 5, 23):
        assert tuple(combos[i]) == np.unravel_index(i, (2, 3, 4))


def test_grid_dataset_looks_up_the_same_images_the_dataset_renders(study):
    data = _TinyFactors()
    grid = data.images(study.all_factor_combinations(data.factor_sizes))
    cached = study.GridFactorDataset(data, grid)
    factors = data.sample_factors(50, np.random.default_rng(0))
    np.testing.assert_array_equal(cached.images(factors), data.images(factors))
    with pytest.raises(ValueError, match="delete the cached"):
        study.GridFactorDataset(data, grid[:-1])


def test_memoised_representation_matches_direct_and_encodes_only_unknown_images(study):
    data = _TinyFactors()
    grid = data.images(study.all_factor_combinations(data.factor_sizes))
    calls = []

    def represent(images):
        calls.append(len(images))
        return images.reshape(len(images), -1).astype(np.float64) * 2.0

    memo = study.memoised_representation(represent, grid)
    calls.clear()
    known = grid[[5, 0, 5, 3]]
    np.testing.assert_array_equal(memo(known), represent(known))
    assert calls == [4]  # only the direct call above encoded anything
    calls.clear()
    unknown = np.full((2, 1, 2, 1), 255, np.uint8)
    np.testing.assert_array_equal(memo(np.concatenate([known[:1], unknown])),
                                  np.concatenate([represent(known[:1]), represent(unknown)]))
    assert calls == [2, 1, 2]  # memo encoded the 2 unknown images; then the two reference calls


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
    assert entry["mig.mig"]["mean"] == pytest.approx(0.2) and entry["mig.mig"]["std"] == pytest.approx(0.1)
    assert entry["udr.udr"]["mean"] == pytest.approx(0.5)
    assert "0.20 ± 0.10" in study.markdown_tables(summary)


def test_tiny_run_writes_one_json_per_seed_and_a_rerun_reuses_them(study, tmp_path):
    argv = ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--cache", str(tmp_path / "cache"),
            "--datasets", "dsprites", "--models", "vae", "--seeds", "0,1", "--steps", "2", "--image-size", "16",
            "--dsprites-images", "64", "--batch-size", "8", "--threads", "1", "--no-progress", "--fast",
            "--metric-params", json.dumps(TINY_PARAMS)]
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


def test_unknown_dataset_error_names_the_valid_ones(study, tmp_path):
    with pytest.raises(ValueError, match="valid: dsprites, seekavoid-factors"):
        study.load_dataset("shapes3d", tmp_path, 10)
