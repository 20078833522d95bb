"""``darla compare`` on hand-made evaluations."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from agents.evaluate import write_evaluation_csv
from darla.cli import main
from tests.agents.test_outputs import fake_result

TARGETS = ["A-changed", "A-third"]


def _returns(target: float, rng: np.random.Generator, policies: int = 3, episodes: int = 4) -> dict:
    """Source returns all 1.0; target returns ``target`` + small noise."""
    out = {"A-default": [[1.0] * episodes for _ in range(policies)]}
    for d in TARGETS:
        out[d] = (target + 0.01 * rng.random((policies, episodes))).tolist()
    return out


@pytest.fixture
def studies(tmp_path):
    """An evaluation dir with a CSV (labelled by its vision_model column) and a run dir whose evaluation has
    only the JSON of an older darla (no vision name: labelled by the run's summary.json)."""
    rng = np.random.default_rng(0)
    good = tmp_path / "eval-good"
    good.mkdir()
    r = fake_result(_returns(0.9, rng), source=["A-default"], vision="beta_vae_dae", vision_id="g")
    (good / "evaluation.json").write_text(json.dumps(r))
    write_evaluation_csv(r, good / "evaluation.csv")

    run = tmp_path / "run-bad"
    eval_dir = run / "stages" / "evaluate-123"
    eval_dir.mkdir(parents=True)
    bad = fake_result(_returns(0.2, rng, policies=4), source=["A-default"], vision=None, vision_id="b")
    (eval_dir / "evaluation.json").write_text(json.dumps(bad))
    (run / "report_inputs.json").write_text(json.dumps({"eval_dir": str(eval_dir)}))
    (run / "summary.json").write_text(json.dumps({"vision_model": "vae"}))
    return good, run


def _p(result: dict, score: str, x: str, y: str) -> dict:
    return next(e for e in result["scores"][score]["probability_of_improvement"] if (e["x"], e["y"]) == (x, y))


def test_compare_two_evaluations(studies, tmp_path, capsys):
    good, run = studies
    out = tmp_path / "cmp"
    assert main(["compare", str(good), str(run), "--out", str(out), "--n-boot", "200", "--backend", "numpy"]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert [d["label"] for d in result["inputs"]] == ["beta_vae_dae", "vae"]
    assert result["scores"]["target"]["runs"] == {"beta_vae_dae": 3, "vae": 4}
    assert result["scores"]["target"]["tasks"] == TARGETS and result["scores"]["target"]["left_out_tasks"] == []
    assert _p(result, "target", "beta_vae_dae", "vae") == {"x": "beta_vae_dae", "y": "vae", "p": 1.0, "ci": [1.0, 1.0]}
    assert _p(result, "target", "vae", "beta_vae_dae")["p"] == 0.0
    assert _p(result, "source", "vae", "beta_vae_dae")["p"] == 0.5  # identical source returns
    assert _p(result, "ratio", "beta_vae_dae", "vae")["p"] == 1.0
    prof = result["scores"]["target"]["profile"]
    assert len(prof["taus"]) == len(prof["vae"]["profile"]) and prof["vae"]["profile"][0] == 1.0
    md = (out / "compare.md").read_text()
    command = f"darla compare {good} {run} --out {out} --n-boot 200 --seed 0 --backend numpy"
    assert md.splitlines()[2] == f"Command: `{command}`"
    assert result["command"] == command
    assert "| **beta_vae_dae** | 3 |" in md and "1.00 [1.00, 1.00]" in md and "## target/source ratio" in md
    assert (out / "profiles.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "comparison:" in capsys.readouterr().out


def test_compare_pools_inputs_with_the_same_label_and_reads_explicit_labels(studies, tmp_path):
    good, run = studies
    seed1 = tmp_path / "eval-good-vision-seed-1"
    shutil.copytree(good, seed1)
    out = tmp_path / "cmp"
    assert main(["-q", "compare", str(good), str(run), str(seed1), str(good), "--out", str(out), "--n-boot", "50",
                 "--label", "a", "--label", "b", "--label", "a", "--label", "a", "--backend", "numpy"]) == 0
    result = json.loads((out / "compare.json").read_text())
    # the two evaluations labelled a pool their runs; the same directory twice adds none
    assert result["scores"]["target"]["runs"] == {"a": 6, "b": 4}


def test_compare_errors_are_one_line_and_name_the_fix(studies, tmp_path, capsys):
    good, run = studies
    assert main(["compare", str(good), str(good), "--out", str(tmp_path / "o")]) == 2
    assert "two or more labels" in capsys.readouterr().err
    assert main(["compare", str(good), str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "holds no evaluation" in capsys.readouterr().err
    assert main(["compare", str(good), str(run), "--label", "x", "--out", str(tmp_path / "o")]) == 2
    assert "1 label(s) for 2 input(s)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_compare_ratio_drops_runs_without_a_positive_source_return(studies, tmp_path):
    good, run = studies
    r = json.loads((good / "evaluation.json").read_text())
    r["returns"]["A-default"][0] = [0.0] * 4  # policy 0 never scores at the source
    r["returns"]["A-default"][1] = [2.0] * 4  # policy 1 scores 2 there, policy 2 scores 1
    write_evaluation_csv(r, good / "evaluation.csv")
    from darla.compare import compare

    compare([good, run], tmp_path / "cmp", n_boot=20, backend="numpy")
    ratio = json.loads((tmp_path / "cmp" / "compare.json").read_text())["scores"]["ratio"]
    assert ratio["runs"]["beta_vae_dae"] == 2 and ratio["dropped_runs"] == {"beta_vae_dae": 1}
    target = np.array([r["returns"][d] for d in TARGETS]).mean(axis=(0, 2))  # per policy
    assert ratio["mean"]["beta_vae_dae"] == pytest.approx((target[1] / 2 + target[2] / 1) / 2)
    assert "1 run(s) without a ratio" in (tmp_path / "cmp" / "compare.md").read_text()


def test_compare_rliable_backend_gives_the_numpy_backends_estimates(studies, tmp_path):
    from darla.compare import compare, rliable_library

    if rliable_library() is None:
        pytest.skip("rliable.library does not import here (rliable 1.2 + arch 7 need pandas < 3)")
    good, run = studies
    for backend in ("rliable", "numpy"):
        compare([good, run], tmp_path / backend, n_boot=30, backend=backend)
    a, b = (json.loads((tmp_path / k / "compare.json").read_text()) for k in ("rliable", "numpy"))
    assert a["backend"] == "rliable" and b["backend"] == "numpy"
    for score in ("target", "source", "ratio"):
        pa, pb = (s["scores"][score]["probability_of_improvement"] for s in (a, b))
        assert [(e["x"], e["y"], e["p"]) for e in pa] == [(e["x"], e["y"], e["p"]) for e in pb]
        assert a["scores"][score]["profile"]["vae"]["profile"] == b["scores"][score]["profile"]["vae"]["profile"]


def test_compare_rliable_backend_without_rliable_is_a_clear_error(studies, tmp_path, monkeypatch):
    import darla.compare

    monkeypatch.setattr(darla.compare, "rliable_library", lambda: None)
    good, run = studies
    with pytest.raises(RuntimeError, match="--backend numpy"):
        darla.compare.compare([good, run], tmp_path / "o", backend="rliable")
    darla.compare.compare([good, run], tmp_path / "o", n_boot=10)  # auto falls back
    assert json.loads((tmp_path / "o" / "compare.json").read_text())["backend"] == "numpy"


def test_compare_keeps_the_domains_every_label_has_and_names_the_rest(studies, tmp_path):
    good, run = studies
    r = json.loads((good / "evaluation.json").read_text())
    r["returns"]["B-extra"] = r["returns"]["A-third"]
    r["lengths"]["B-extra"] = r["lengths"]["A-third"]
    r["domains"].append("B-extra")
    write_evaluation_csv(r, good / "evaluation.csv")
    from darla.compare import compare

    md = compare([good, run], tmp_path / "cmp", n_boot=20, backend="numpy").read_text()
    target = json.loads((tmp_path / "cmp" / "compare.json").read_text())["scores"]["target"]
    assert target["tasks"] == TARGETS and target["left_out_tasks"] == ["B-extra"]
    assert "Left out (not evaluated for every run of every label): B-extra." in md
