import math

import numpy as np
import pytest

from vision.probe import infer_kind, probe_factors, probe_report, select_task_factors, task_factors_recoverable


@pytest.fixture(scope="module")
def encoded():
    """Features that encode 'object_pair' (discrete, 4 values) and 'object_x' (continuous) linearly,
    plus a 'light' factor they do not encode at all."""
    rng = np.random.default_rng(0)
    n = 600
    pair = rng.integers(0, 4, n)
    x = rng.uniform(-1, 1, n)
    light = rng.uniform(0, 1, n)
    onehot = np.eye(4)[pair]
    feats = np.concatenate([onehot * 2.0, x[:, None], rng.normal(size=(n, 3))], axis=1)
    feats += 0.05 * rng.normal(size=feats.shape)
    factors = np.stack([pair, x, light], axis=1).astype(np.float32)
    return feats, factors, ["object_pair", "object_x", "light"]


def test_probe_finds_linearly_encoded_factors(encoded):
    res = probe_factors(*encoded)
    pair, x = res["factors"]["object_pair"], res["factors"]["object_x"]
    assert pair["kind"] == "discrete" and pair["metric"] == "accuracy"
    assert pair["score"] > 0.95 and 0.15 < pair["chance"] < 0.4
    assert x["kind"] == "continuous" and x["score"] > 0.95


def test_probe_reports_chance_for_noise():
    rng = np.random.default_rng(1)
    n = 800
    factors = np.stack([rng.integers(0, 4, n), rng.uniform(size=n)], axis=1)
    res = probe_factors(rng.normal(size=(n, 8)), factors, ["shape", "tint"])
    shape, tint = res["factors"]["shape"], res["factors"]["tint"]
    assert abs(shape["score"] - shape["chance"]) < 0.1
    assert shape["normalized"] < 0.15
    assert tint["score"] < 0.1  # R² about 0 (or below) for noise


def test_task_factor_check_names_the_unrecoverable_factor(encoded):
    res = probe_factors(*encoded)
    ok, msg = task_factors_recoverable(res, required=["object_pair", "object_x"])
    assert ok, msg
    ok, msg = task_factors_recoverable(res, required=["object_pair", "light"])
    assert not ok and "light" in msg and "object_pair" not in msg


def test_default_task_factors_are_object_ones_not_nuisances():
    names = ["floor_style", "wall_style", "object_pair", "good_side", "light", "object_x", "camera_height"]
    assert select_task_factors(names) == ["object_pair", "good_side", "object_x"]


def test_unknown_required_factor_lists_valid_ones(encoded):
    res = probe_factors(*encoded)
    with pytest.raises(ValueError, match="valid: object_pair, object_x, light"):
        task_factors_recoverable(res, required=["pair"])


def test_constant_factor_is_reported_not_probed(encoded):
    feats, factors, names = encoded
    factors = np.concatenate([factors, np.ones((len(factors), 1), np.float32)], axis=1)
    res = probe_factors(feats, factors, names + ["room"])
    assert res["factors"]["room"]["kind"] == "constant" and math.isnan(res["factors"]["room"]["score"])


def test_report_is_a_markdown_table_with_one_row_per_factor(encoded):
    md = probe_report(probe_factors(*encoded))
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3
    assert "object_pair*" in md and "| light |" in md


def test_kinds_override_inference_and_bad_kind_is_rejected(encoded):
    feats, factors, names = encoded
    res = probe_factors(feats, factors, names, kinds={"object_pair": "continuous"})
    assert res["factors"]["object_pair"]["metric"] == "r2"
    with pytest.raises(ValueError, match="discrete, continuous"):
        probe_factors(feats, factors, names, kinds={"light": "ordinal"})


def test_infer_kind():
    assert infer_kind(np.array([0, 1, 2, 1.0])) == "discrete"
    assert infer_kind(np.linspace(0, 1, 50)) == "continuous"
    assert infer_kind(np.zeros(5)) == "constant"


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same N"):
        probe_factors(np.zeros((10, 2)), np.zeros((9, 1)), ["a"])


def test_rows_mask_scores_a_factor_only_where_it_is_visible():
    """A factor the features encode only in some frames (an object in view) is recoverable on those
    rows and not over all rows."""
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 2, size=n)
    visible = rng.random(n) < 0.3
    feats = rng.normal(size=(n, 4))
    feats[visible, 0] += 4.0 * (y[visible] - 0.5)  # the code shows y only when visible
    factors = y[:, None].astype(float)
    everywhere = probe_factors(feats, factors, ["side"], kinds=["discrete"])
    masked = probe_factors(feats, factors, ["side"], kinds=["discrete"], rows={"side": visible})
    assert masked["factors"]["side"]["normalized"] > 0.9
    assert everywhere["factors"]["side"]["normalized"] < 0.6
    assert masked["factors"]["side"]["rows"] == int(visible.sum())


def test_rows_mask_of_the_wrong_shape_is_an_error():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="rows\\['a'\\]"):
        probe_factors(rng.normal(size=(50, 2)), rng.normal(size=(50, 1)), ["a"], rows={"a": np.ones(10, bool)})


def test_latent_factor_correlations_find_the_latent_that_copies_a_factor():
    from vision.probe import latent_factor_correlations, latent_factor_report

    rng = np.random.default_rng(0)
    factors = rng.normal(size=(500, 2))
    feats = np.stack([rng.normal(size=500), 3 * factors[:, 1] + 1, np.ones(500)], axis=1)  # z1 = factor b, z2 constant
    corr = latent_factor_correlations(feats, factors, ["a", "b"])
    assert corr[1, 1] > 0.99 and corr[0].max() < 0.2 and corr[2].max() == 0
    assert "| z1 | b 1.00" in latent_factor_report(feats, factors, ["a", "b"], latents=[1])


def test_a_factor_with_one_value_in_the_held_out_rows_is_not_judged():
    """chance = 1 (every held-out row has the same value) says nothing about the features."""
    entry = {"kind": "discrete", "metric": "accuracy", "score": 1.0, "chance": 1.0, "normalized": 0.0, "n_values": 2}
    bad = {**entry, "chance": 0.5, "score": 0.5}
    assert task_factors_recoverable({"factors": {"side": entry}}, required=["side"])[0]
    assert not task_factors_recoverable({"factors": {"side": bad}}, required=["side"])[0]


# -- probe_transfer ---------------------------------------------------------------------------------
def _domain(n, rng, room):
    """Frames of one room: good_side ∈ {0, 1}, good_angle ∈ [-0.5, 0.5], and the room id."""
    side = rng.integers(0, 2, n)
    angle = rng.uniform(-0.5, 0.5, n)
    return np.stack([side, angle, np.full(n, room)], axis=1).astype(float)


def test_probe_transfer_keeps_scores_when_features_ignore_the_room():
    from vision.probe import probe_transfer

    rng = np.random.default_rng(0)
    src, tgt = _domain(400, rng, 0), _domain(200, rng, 1)
    feats = lambda f: np.c_[f[:, :2] + rng.normal(0, 0.05, (len(f), 2)), f[:, 2]]  # noqa: E731
    out = probe_transfer(feats(src), src, feats(tgt), tgt, ["good_side", "good_angle", "room"],
                         probe=["good_side", "good_angle"])
    for name in ("good_side", "good_angle"):
        assert out["factors"][name]["source"]["normalized"] > 0.9
        assert out["factors"][name]["target"]["normalized"] > 0.9
    assert out["mean_normalized"]["target"] > 0.9 and out["factors"]["good_side"]["rows"] == [400, 200]


def test_probe_transfer_exposes_a_code_that_the_room_rewrites():
    from vision.probe import probe_transfer

    rng = np.random.default_rng(1)
    src, tgt = _domain(400, rng, 0), _domain(200, rng, 1)
    # The side is encoded with the opposite sign in the unseen room: perfect within the source, wrong after.
    feats = lambda f: np.c_[np.where(f[:, 2] == 0, 1.0, -1.0) * (2 * f[:, 0] - 1), f[:, 1]]  # noqa: E731
    out = probe_transfer(feats(src), src, feats(tgt), tgt, ["good_side", "good_angle", "room"], probe=["good_side"])
    side = out["factors"]["good_side"]
    assert side["source"]["score"] == 1.0 and side["target"]["score"] == 0.0 and side["target"]["normalized"] < 0


def test_probe_transfer_errors_name_the_problem():
    from vision.probe import probe_transfer

    rng = np.random.default_rng(2)
    src = _domain(50, rng, 0)
    with pytest.raises(ValueError, match="same D"):
        probe_transfer(src, src, src[:, :2], src, ["good_side", "good_angle", "room"])
    with pytest.raises(ValueError, match=r"\['pair'\] to probe are not in the data"):
        probe_transfer(src, src, src, src, ["good_side", "good_angle", "room"], probe=["pair"])


def test_probe_transfer_single_valued_target_factor_is_scored_against_a_uniform_guess():
    from vision.probe import probe_transfer

    rng = np.random.default_rng(3)
    src = np.c_[rng.integers(0, 2, 300), rng.uniform(size=300)].astype(float)  # pair ∈ {A, B} in the source
    tgt = np.c_[np.zeros(100), rng.uniform(size=100)]  # only pair A in the target
    right = probe_transfer(src[:, :1], src, tgt[:, :1], tgt, ["pair", "x"], probe=["pair"])["factors"]["pair"]
    assert right["target"] == {"score": 1.0, "chance": 0.5, "normalized": 1.0}
    wrong = probe_transfer(src[:, :1], src, 1 - tgt[:, :1], tgt, ["pair", "x"], probe=["pair"])["factors"]["pair"]
    assert wrong["target"]["score"] == 0.0 and wrong["target"]["normalized"] == -1.0


def test_probe_transfer_visibility_masks_and_means_over_factors_scored_on_both_sides():
    from vision.probe import probe_transfer

    rng = np.random.default_rng(4)
    src, tgt = _domain(400, rng, 0), _domain(200, rng, 1)
    names = ["good_side", "good_angle", "room"]
    # The side is readable only where the object is visible; elsewhere the feature is noise.
    vis_s, vis_t = rng.random(400) < 0.5, rng.random(200) < 0.5
    feats = lambda f, vis: np.c_[np.where(vis, 2 * f[:, 0] - 1, rng.normal(0, 1, len(f))), f[:, 1]]  # noqa: E731
    masked = probe_transfer(feats(src, vis_s), src, feats(tgt, vis_t), tgt, names, probe=["good_side", "good_angle"],
                            source_rows={"good_side": vis_s}, target_rows={"good_side": vis_t})
    side = masked["factors"]["good_side"]
    assert side["rows"] == [int(vis_s.sum()), int(vis_t.sum())]
    assert side["target"]["score"] > 0.95  # scored only on visible target frames
    unmasked = probe_transfer(feats(src, vis_s), src, feats(tgt, vis_t), tgt, names, probe=["good_side"])
    assert unmasked["factors"]["good_side"]["target"]["score"] < 0.9  # invisible frames pull it toward chance

    # A factor with too few visible target rows is not judged, and leaves both means (source and target).
    none_visible = np.zeros(200, bool)
    out = probe_transfer(feats(src, vis_s), src, feats(tgt, vis_t), tgt, names, probe=["good_side", "good_angle"],
                         source_rows={"good_side": vis_s}, target_rows={"good_side": none_visible})
    assert np.isnan(out["factors"]["good_side"]["target"]["score"])
    angle = out["factors"]["good_angle"]
    assert out["mean_normalized"]["source"] == pytest.approx(angle["source"]["normalized"])
    assert out["mean_normalized"]["target"] == pytest.approx(angle["target"]["normalized"])
