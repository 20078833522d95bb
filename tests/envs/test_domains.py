"""Domains, splits and their YAML form."""

import dataclasses

import pytest

from envs.seekavoid.domains import (
    PAIRS,
    ROOM_STYLES,
    Domain,
    dump_domains_yaml,
    get_domain,
    get_split,
    is_source_split,
    list_domains,
    list_splits,
    load_domains_yaml,
    resolve_domains,
)


def test_target_combination_is_never_in_source_but_its_parts_are():
    source = get_split("source")
    (target,) = get_split("target")
    assert target.name == "A-changed"
    assert all((d.pair, d.room) != (target.pair, target.room) for d in source)
    assert target.pair in {d.pair for d in source} and target.room in {d.room for d in source}


def test_hard_split_domains_are_shifted_and_not_in_source():
    source = {d.name for d in get_split("source")}
    hard = get_split("hard")
    assert hard and not source & {d.name for d in hard}
    assert any(d.room.name == "third" for d in hard)  # a room style never seen in source
    assert "third" not in {d.room.name for d in get_split("source")}


def test_camera_split_holds_out_pair_a_with_the_raised_camera_only():
    source = get_split("cam-source")
    (target,) = get_split("cam-target")
    assert target.name == "A-highcam" and target.room.name == "default"
    raised = [d for d in source if d.cam_height == target.cam_height]
    assert [d.pair for d in raised] == ["B"]  # the raised camera is seen, with pair B only
    assert target.pair in {d.pair for d in source} and min(target.cam_height) > max(source[0].cam_height)
    hard = get_split("cam-hard")
    assert hard and all(d.cam_height == target.cam_height and d.pair == "A" for d in hard)
    assert not {d.name for d in hard} & {d.name for d in source}


def test_only_the_source_splits_are_training_splits():
    assert [s for s in list_splits() if is_source_split(s)] == ["source", "cam-source"]
    assert not is_source_split("nowhere-source")  # not a built-in split


def test_default_and_changed_rooms_have_different_floor_and_wall_colours():
    d, c = ROOM_STYLES["default"], ROOM_STYLES["changed"]
    assert max(abs(a - b) for a, b in zip(d.floor, c.floor)) > 0.5
    assert max(abs(a - b) for a, b in zip(d.wall, c.wall)) > 0.5


def test_object_pairs_differ_in_shape_not_only_colour():
    shapes = [o.shape for p in PAIRS.values() for o in (p.good, p.bad)]
    assert len(set(shapes)) == len(shapes) == 4


def test_resolve_domains_expands_splits_deduplicates_and_keeps_order():
    got = [d.name for d in resolve_domains("target,source,A-changed,A-default")]
    assert got == ["A-changed", "A-default", "B-default", "B-changed"]
    custom = dataclasses.replace(get_domain("A-changed"), name="A-changed-darker", light=(0.3, 0.4))
    got = resolve_domains(["A-default", custom, "A-default"])
    assert [d.name for d in got] == ["A-default", "A-changed-darker"] and got[1].light == (0.3, 0.4)


@pytest.mark.parametrize(
    "call, listed",
    [
        (lambda: get_domain("C-default"), "A-default"),
        (lambda: get_split("nope"), "source"),
        (lambda: resolve_domains("source,C-default"), "B-changed"),
        (lambda: Domain("x", room="purple"), "changed"),
        (lambda: Domain("x", pair="C"), "A, B"),
    ],
)
def test_unknown_names_raise_value_error_listing_valid_names(call, listed):
    with pytest.raises(ValueError, match=listed):
        call()


def test_two_different_domains_with_one_name_are_rejected():
    other = dataclasses.replace(get_domain("A-default"), light=(0.2, 0.3))
    with pytest.raises(ValueError, match="both named 'A-default'"):
        resolve_domains(["A-default", other])


def test_bad_nuisance_ranges_are_rejected_with_the_field_name():
    with pytest.raises(ValueError, match="cam_height"):
        Domain("x", cam_height=(1.6, 1.4))
    with pytest.raises(ValueError, match="light_tint"):
        Domain("x", light_tint=(1.0, 2.0, 1.0))


def test_dataclasses_replace_makes_a_new_shift_and_converts_room_names():
    d = dataclasses.replace(get_domain("A-default"), name="A-third-2", room="third")
    assert d.room is ROOM_STYLES["third"] and d.pair == "A"
    assert hash(d) != hash(get_domain("A-default"))


def test_every_builtin_domain_round_trips_through_dict():
    for name in list_domains():
        d = get_domain(name)
        assert Domain.from_dict(d.to_dict()) == d
    assert set(list_splits()) >= {"source", "target", "hard"}


def test_yaml_file_defines_new_domains_and_round_trips(tmp_path):
    path = tmp_path / "domains.yaml"
    path.write_text(
        "- name: A-purple\n"
        "  pair: A\n"
        "  room: {floor: [0.5, 0.2, 0.7], wall: [0.9, 0.9, 0.9], floor_pattern: checker}\n"
        "  light: [0.7, 0.8]\n"
        "- name: B-third\n"
        "  pair: B\n"
        "  room: third\n"
        "  cam_height: 1.2\n"
    )
    purple, b_third = load_domains_yaml(path)
    assert purple.room.floor == (0.5, 0.2, 0.7) and purple.room.floor_pattern == "checker"
    assert purple.light == (0.7, 0.8) and b_third.cam_height == (1.2, 1.2)
    assert b_third.room is ROOM_STYLES["third"]
    out = tmp_path / "again.yaml"
    dump_domains_yaml([purple, b_third], out)
    assert load_domains_yaml(out) == [purple, b_third]


def test_yaml_with_unknown_key_names_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- name: X\n  lihgt: [0.5, 0.6]\n")
    with pytest.raises(ValueError, match="lihgt"):
        load_domains_yaml(path)
