"""Stage-1 collection on envs darla was not written for: any action space, frames of any size or from
``render()``, factors optional, the generalised leakage guard; SeekAvoid's bytes unchanged."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import envs  # noqa: F401
from envs import collect
from envs.collect import collect_frames
from envs.frames import FrameDataset
from tests.envs.toy import SQUARES_ID

ARRAYS = ("frames.npy", "factors.npy", "domains.npy", "meta.json")
DOMAINS_YAML = """
domains:
  - name: plain
  - name: small
    kwargs: {height: 20, width: 30}
  - name: hue
    wrappers: [{name: hue_shift, degrees: 90}]
splits:
  source: [plain, small]
  target: [hue]
"""
TOY = dict(frames=150, obs_size=16, chunk_size=40, seed=0, progress=False, env_id=SQUARES_ID)


def _bytes(d: Path) -> dict[str, bytes]:
    return {name: (d / name).read_bytes() for name in ARRAYS}


@pytest.fixture(scope="module")
def domains_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("toy") / "domains.yaml"
    path.write_text(DOMAINS_YAML)
    return path


@pytest.fixture(scope="module")
def box_collection(tmp_path_factory, domains_file) -> Path:
    """Box actions, position-vector observations (frames from render()), no factors; rendered by workers only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(collect, "_MAIN_PROCESS_RENDERS", False)
        return collect_frames(tmp_path_factory.mktemp("c") / "data", workers=3, domains_file=domains_file, **TOY)


def test_box_action_env_without_factors_collects_resized_frames_of_its_domains(box_collection):
    data = FrameDataset(box_collection)
    assert data.frames.shape == (150, 16, 16, 3) and data.factor_names == [] and data.factors.shape == (150, 0)
    assert data.domain_names == ["plain", "small"]
    assert set(np.unique(data.domains)) == {0, 1}  # both source domains drawn (one per episode)
    meta = json.loads((box_collection / "meta.json").read_text())
    assert meta["env_id"] == SQUARES_ID and meta["factor_names"] == []
    frames = data.frames
    assert len({frames[i].tobytes() for i in range(0, 150, 7)}) > 10  # the square moves: random Box actions


@pytest.mark.parametrize("workers", [1, 2])
def test_bytes_do_not_depend_on_the_workers(box_collection, tmp_path, domains_file, workers):
    out = collect_frames(tmp_path / "d", workers=workers, domains_file=domains_file, **TOY)
    assert _bytes(out) == _bytes(box_collection)
    other = collect_frames(tmp_path / "s", workers=1, domains_file=domains_file, **{**TOY, "seed": 1})
    assert _bytes(other)["frames.npy"] != _bytes(box_collection)["frames.npy"]


class SimulatedKill(BaseException):
    pass


def test_killed_generic_collection_resumes_to_the_same_bytes(box_collection, tmp_path, domains_file, monkeypatch):
    real, calls = collect.render_chunk, []

    def dying(env, task, report=None):
        if len(calls) >= 2:
            raise SimulatedKill()
        calls.append(task.index)
        return real(env, task, report)

    out = tmp_path / "data"
    monkeypatch.setattr(collect, "render_chunk", dying)
    with pytest.raises(SimulatedKill):
        collect_frames(out, workers=1, domains_file=domains_file, **TOY)
    assert not (out / "meta.json").exists() and len(list((out / "chunks").iterdir())) == 2
    calls.clear()
    monkeypatch.setattr(collect, "render_chunk", lambda env, task, report=None: calls.append(task.index)
                        or real(env, task, report))
    collect_frames(out, workers=1, domains_file=domains_file, **TOY)
    assert sorted(calls) == [2, 3]  # only the chunks the kill left undone
    assert _bytes(out) == _bytes(box_collection)


def test_factors_are_taken_from_info_when_the_env_reports_them(tmp_path):
    out = collect_frames(tmp_path / "f", workers=1, env_kwargs={"factors": True, "image_obs": True, "grey": True,
                                                                "height": 60, "width": 80, "continuous": False},
                         **{**TOY, "frames": 60})
    data = FrameDataset(out)
    assert data.factor_names == ["x", "y", "red"] and data.frames.shape == (60, 16, 16, 3)
    f = data.factors
    assert (0 <= f[:, :2]).all() and (f[:, :2] <= 1).all() and (f[:, 2] >= 60).all()
    assert len(np.unique(f[:, 0])) > 5
    # a grey 60×80 frame became 3 equal channels of 16×16
    assert (data.frames[..., 0] == data.frames[..., 1]).all()


def test_vector_factors_need_names(tmp_path):
    from envs.collect import factor_names_of

    class _Env:
        unwrapped = type("U", (), {"factor_names": ("a", "b")})()

    assert factor_names_of(_Env(), {"factors": np.zeros(2)}) == ("a", "b")
    assert factor_names_of(_Env(), {"factors": [1, 2, 3], "factor_names": ["p", "q", "r"]}) == ("p", "q", "r")
    assert factor_names_of(_Env(), {}) == ()
    with pytest.raises(ValueError, match="vector of 3 values but names them"):
        factor_names_of(_Env(), {"factors": [1, 2, 3]})


def test_explore_policy_on_a_box_env_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="'explore' needs a Discrete action space.*use policy='random'"):
        collect_frames(tmp_path / "e", workers=1, policy="explore", **{**TOY, "frames": 10})


def test_source_dataset_refuses_target_domains_by_name_and_by_value(tmp_path, domains_file):
    with pytest.raises(ValueError, match=r"refusing to render \['hue'\]"):
        collect_frames(tmp_path / "t", workers=1, domains_file=domains_file, split="plain,hue", **TOY)
    renamed = [{"name": "plain"}, {"name": "sneaky", "wrappers": [{"name": "hue_shift", "degrees": 90}]}]
    with pytest.raises(ValueError, match=r"refusing to render \['sneaky'\]"):
        collect_frames(tmp_path / "t", workers=1, domains_file=domains_file, domains=renamed, **TOY)
    assert not (tmp_path / "t").exists()  # refused before any work
    out = collect_frames(tmp_path / "a", workers=1, domains_file=domains_file, split="hue", allow_target=True,
                         **{**TOY, "frames": 20})
    assert json.loads((out / "meta.json").read_text())["held_out_domains"] == ["hue"]


def test_corrupt_request_without_meta_names_the_file_and_the_fix(tmp_path):
    out = tmp_path / "broken"
    out.mkdir()
    (out / "collect.json").write_text("{ truncated")
    with pytest.raises(ValueError, match=r"collect\.json is unreadable.*no meta\.json.*--overwrite.*delete"):
        collect_frames(out, workers=1, **{**TOY, "frames": 10})
    assert collect_frames(out, workers=1, overwrite=True, **{**TOY, "frames": 10}) == out


def test_seekavoid_collection_keeps_its_bytes_and_request():
    """Pinned digests of a SeekAvoid collection made before the generic core (main at a2503a7)."""
    import tempfile

    d = collect_frames(Path(tempfile.mkdtemp()) / "d", frames=64, obs_size=16, chunk_size=32, workers=1,
                       progress=False)
    digests = [hashlib.sha256((d / n).read_bytes()).hexdigest()[:16] for n in ARRAYS]
    assert digests == ["dba3e84fc753ca08", "9a099d8468cbd496", "af9f05812d499a9c", "5036d5492048fd76"]


def test_grey_collection_keeps_one_channel(tmp_path):
    out = collect_frames(tmp_path / "g", workers=1, channels=1, **{**TOY, "frames": 20})
    data = FrameDataset(out)
    assert data.frames.shape == (20, 16, 16, 1) and data.obs_shape == (1, 16, 16)


def test_multidiscrete_action_env_collects_deterministically(tmp_path):
    kw = {**TOY, "frames": 40, "env_kwargs": {"multi_discrete": True}}
    a = collect_frames(tmp_path / "a", workers=1, **kw)
    b = collect_frames(tmp_path / "b", workers=2, **kw)
    assert _bytes(a) == _bytes(b)
    frames = FrameDataset(a).frames
    assert frames.shape == (40, 16, 16, 3)
    # the random policy moves the square: consecutive frames of an episode differ
    assert np.mean([not np.array_equal(frames[i], frames[i + 1]) for i in range(19)]) > 0.5
