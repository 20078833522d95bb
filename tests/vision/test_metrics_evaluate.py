"""evaluate_metrics / metrics_table / METRICS, seeding, import direction, and a dSprites smoke check."""

import subprocess
import sys

import numpy as np
import pytest

from vision.metrics import METRICS, evaluate_metrics, metrics_table, mig
from vision.metrics.testing import IdentityFactorData, identity_representation

TINY = {
    "beta_vae": {"batch_size": 8, "num_train": 60, "num_eval": 30},
    "factor_vae": {"batch_size": 8, "num_train": 60, "num_eval": 30, "num_variance_estimate": 200},
    "mig": {"num_train": 500},
    "dci": {"num_train": 300, "num_test": 100, "classifier": "random_forest"},
    "sap": {"num_train": 300, "num_test": 100},
}
DATA = IdentityFactorData((3, 4, 5))


@pytest.fixture(scope="module")
def results():
    return evaluate_metrics(DATA, identity_representation, seed=3, params=TINY)


def test_runs_every_metric_and_identity_scores_high(results):
    assert tuple(results) == METRICS == ("beta_vae", "factor_vae", "mig", "dci", "sap")
    assert results["beta_vae"]["eval_accuracy"] == 1.0
    assert results["factor_vae"]["eval_accuracy"] == 1.0
    assert results["mig"]["mig"] > 0.9 and results["dci"]["disentanglement"] > 0.9
    assert all(isinstance(v, float) for scores in results.values() for v in scores.values())


def test_same_seed_same_numbers_and_a_metric_does_not_depend_on_the_others(results):
    assert evaluate_metrics(DATA, identity_representation, seed=3, params=TINY) == results
    alone = evaluate_metrics(DATA, identity_representation, metrics=("mig",), seed=3, params=TINY)
    assert alone["mig"] == results["mig"]


def test_metrics_table_is_markdown_with_one_row_per_score(results):
    table = metrics_table(results)
    lines = table.strip().splitlines()
    assert lines[0] == "| metric | score | value |" and lines[1] == "|---|---|---|"
    assert "| beta_vae | eval_accuracy | 1.0000 |" in lines
    assert len(lines) == 2 + sum(len(s) for s in results.values())
    assert "model_scores" not in metrics_table({"udr": {"udr": 0.5, "model_scores": [0.4, 0.6]}})


def test_unknown_metric_and_params_name_the_valid_choices():
    with pytest.raises(ValueError, match="valid: beta_vae, factor_vae, mig, dci, sap"):
        evaluate_metrics(DATA, identity_representation, metrics=("mgi",))
    with pytest.raises(ValueError, match="udr"):
        evaluate_metrics(DATA, identity_representation, metrics=("udr",))
    with pytest.raises(ValueError, match="params"):
        evaluate_metrics(DATA, identity_representation, metrics=("mig",), params={"dcx": {}})


def test_vision_metrics_does_not_import_envs():
    code = "import sys, vision.metrics; sys.exit(1 if any(m == 'envs' or m.startswith('envs.') for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_mig_on_dsprites_finds_position_in_a_hand_made_representation():
    import envs

    data = envs.factor_dataset("dsprites", image_size=32)

    def centre_and_area(images):  # (n, 32, 32, 1) → centre x, centre y, area
        mask = images[..., 0] > 0
        area = mask.sum(axis=(1, 2))
        ys, xs = np.mgrid[0:32, 0:32]
        return np.stack([(mask * xs).sum((1, 2)) / area, (mask * ys).sum((1, 2)) / area, area], axis=1)

    out = mig(data, centre_and_area, np.random.default_rng(0), num_train=2000)
    assert out["mig_pos_x"] > 0.5 and out["mig_pos_y"] > 0.5
    assert out["mig_orientation"] < 0.1
