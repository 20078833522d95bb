"""Stage-1 collection pinned to its documented semantics by a hand replay, and a multi-worker collection killed
(SIGKILL) mid-chunk that resumes to the bytes of an uninterrupted run.

Chunk ``k`` of a collection with seed ``s`` is: a generator from ``SeedSequence([s, k])``; the env reset with
seed ``rng.integers(2**31 - 1)``; the reset frame, then the frame after every uniform random action (the same
generator), a new episode after each termination (its reset frame recorded too); chunk ``k`` holds frames
``k * chunk_size`` onward. Replaying that by hand catches a chunk seeded like another (seed reuse), chunks in
the wrong order, a label one frame off its frame, and the policy drawing from another generator.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401
from envs.collect import collect_frames
from envs.frames import FrameDataset
from envs.seekavoid import SeekAvoidEnv

# chunk 0 holds several episodes (they end at a touch or after 60 steps), chunk 1 is short
ARGS = dict(frames=160, split="source", obs_size=16, chunk_size=130, seed=3, progress=False)


def _hand_chunk(seed: int, k: int, length: int, domains: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    env = gymnasium.make("darla/SeekAvoid-v0", domain=domains, layout="choice", obs_size=ARGS["obs_size"])
    rng = np.random.default_rng(np.random.SeedSequence([seed, k]))
    obs, info = env.reset(seed=int(rng.integers(2**31 - 1)))
    frames, factors, names = [obs], [info["factors"]], [info["domain"]]
    episodes = 1
    while len(frames) < length:
        obs, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        frames.append(obs), factors.append(info["factors"]), names.append(info["domain"])
        if (terminated or truncated) and len(frames) < length:
            obs, info = env.reset()  # unseeded: the env's own seeded generator goes on
            episodes += 1
            frames.append(obs), factors.append(info["factors"]), names.append(info["domain"])
    env.close()
    assert length < 60 or episodes >= 2, "the replay should cross an episode boundary"
    f = np.array([[float(d[n]) for n in SeekAvoidEnv.FACTOR_NAMES] for d in factors], np.float32)
    return np.stack(frames), f, np.array([domains.index(n) for n in names], np.int16)


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> FrameDataset:
    return FrameDataset(collect_frames(tmp_path_factory.mktemp("pinned") / "data", workers=1, **ARGS))


def test_every_chunk_is_its_hand_replay_in_order(collected):
    domains = collected.domain_names
    n, size = ARGS["frames"], ARGS["chunk_size"]
    assert len(collected) == n
    for k, start in enumerate(range(0, n, size)):
        length = min(size, n - start)
        frames, factors, dom = _hand_chunk(ARGS["seed"], k, length, domains)
        np.testing.assert_array_equal(collected.frames[start:start + length], frames, err_msg=f"chunk {k} frames")
        np.testing.assert_array_equal(collected.factors[start:start + length], factors, err_msg=f"chunk {k} factors")
        np.testing.assert_array_equal(collected.domains[start:start + length], dom, err_msg=f"chunk {k} domains")


def test_chunks_are_not_copies_of_each_other(collected):
    tail = ARGS["frames"] - ARGS["chunk_size"]
    assert not np.array_equal(collected.frames[:tail], collected.frames[ARGS["chunk_size"]:])


def _kill_mid_chunk(out: Path, args: dict, rng: random.Random) -> bool:
    """Start a 2-worker collection in a subprocess, SIGKILL its process group a random few milliseconds after
    a random number (1-6) of its chunk files exist, so that other chunks are being rendered and written by both
    processes; ``True`` if it was killed unfinished."""
    code = (f"import envs\nfrom envs.collect import collect_frames\nif __name__ == '__main__':\n"
            f"    collect_frames({str(out)!r}, workers=2, **{args!r})\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        wanted = rng.randint(1, 6)
        while time.monotonic() < deadline and proc.poll() is None and \
                len(list((out / "chunks").glob("chunk_*.npz"))) < wanted:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        proc.wait()
    return not (out / "meta.json").exists()


def _bytes(d: Path) -> dict[str, bytes]:
    return {name: (d / name).read_bytes() for name in ("frames.npy", "factors.npy", "domains.npy", "meta.json")}


def _kill_and_resume(tmp_path: Path, trials: int, seed: int) -> int:
    args = {**ARGS, "frames": 1000, "chunk_size": 25}  # 40 chunks: a kill after a few lands mid-collection
    reference = _bytes(collect_frames(tmp_path / "reference", workers=1, **args))
    rng, killed = random.Random(seed), 0
    for trial in range(trials):
        out = tmp_path / f"killed{trial}"
        killed += _kill_mid_chunk(out, args, rng)
        collect_frames(out, workers=2, **args)
        assert _bytes(out) == reference, f"trial {trial}"
        assert not list(out.rglob("*.tmp*")) and not (out / "chunks").exists()
    return killed


def test_a_two_worker_collection_killed_mid_chunk_resumes_to_the_same_bytes(tmp_path):
    assert _kill_and_resume(tmp_path, trials=1, seed=0) == 1, "killed too late to test a resume"


@pytest.mark.slow
def test_two_worker_collections_killed_at_random_moments_resume_to_the_same_bytes(tmp_path):
    assert _kill_and_resume(tmp_path, trials=5, seed=1) >= 3
