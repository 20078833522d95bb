"""Stage 1 of DARLA: render the frames the vision model learns to see from.

DARLA (Higgins, Pal et al. 2017; stage 1, "learn to see") trains its vision module on observations
collected by a random (or exploratory) agent in the *source* domains, with the nuisances randomised
per episode by the environment. Never the target combination: the vision would no longer be zero-shot.

:func:`collect_frames` renders ``frames`` observations of ``darla/SeekAvoid-v0`` over a split's
domains in parallel processes and stores them in a directory that
:class:`envs.frames.FrameDataset` reads with a memory map::

    out_dir/
      frames.npy    (N, H, W, 3) uint8     readable with np.load(mmap_mode="r")
      factors.npy   (N, F) float32         ground-truth factors, columns = meta["factor_names"]
      domains.npy   (N,) int16             index into meta["domains"]
      meta.json     written last: its presence means the collection is complete
      collect.json  the request (arguments) this directory was made for

Work is split into chunks of ``chunk_size`` frames. Chunk ``k`` is rendered by one env reset with a
seed derived from ``(seed, k)`` only, so the bytes do not depend on the number of workers or on which
process rendered it. Each finished chunk is written as ``chunks/chunk_XXXXX.npz`` (temp file +
rename); a killed collection rerun with the same arguments reuses finished chunks and ends
byte-identical to an uninterrupted run. The final arrays are assembled into temp files and renamed,
``meta.json`` last, then the chunks are deleted.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import logging
import multiprocessing as mp
import os
import queue as queue_lib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

#: version of the on-disk layout; bump when the files or their meaning change
FORMAT_VERSION = 1
ENV_ID = "darla/SeekAvoid-v0"
#: ``random``: uniform actions every step. ``explore``: forward-biased actions held for 1–4 steps, so
#: more frames show the agent approaching and touching objects (as a random walk rarely does).
POLICIES = ("random", "explore")
FRAMES_FILE, FACTORS_FILE, DOMAINS_FILE = "frames.npy", "factors.npy", "domains.npy"
META_FILE, REQUEST_FILE, CHUNK_DIR = "meta.json", "collect.json", "chunks"
_OWN_ENTRIES = (FRAMES_FILE, FACTORS_FILE, DOMAINS_FILE, META_FILE, REQUEST_FILE, CHUNK_DIR)
_PROGRESS_EVERY = 32  # frames between progress messages from a worker
#: whether the calling process renders chunks too while the workers start (tests turn it off to make
#: the workers render every chunk)
_MAIN_PROCESS_RENDERS = True


# ----------------------------------------------------------------------------------------------- files
def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _mkstemp(directory: Path, name: str) -> tuple[int, str]:
    """A temp file next to ``directory / name`` (``.name.XXXX.tmp``) with normal file permissions."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.fchmod(fd, _file_mode())  # mkstemp makes 0600; the dataset is meant to be shared like any file
    return fd, tmp


def _fsync_replace(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = _mkstemp(path.parent, path.name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        _fsync_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _remove_temp_files(directory: Path) -> None:
    """Delete leftovers of writes that a killed run never renamed (``.name.XXXX.tmp``)."""
    if directory.is_dir():
        for p in directory.glob(".*.tmp"):
            p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------- domains
def _domain_spec(d: Any) -> Any:
    """A JSON-able description of a domain, so a changed domain definition changes the request."""
    to_dict = getattr(d, "to_dict", None)
    return json.loads(json.dumps(to_dict(), default=repr)) if callable(to_dict) else repr(d)


def _room_key(room: Any) -> Any:
    """A room style's appearance, whatever it is called (a renamed copy of 'changed' is still 'changed')."""
    if isinstance(room, str):
        return room
    to_dict = getattr(room, "to_dict", None)
    if not callable(to_dict):
        return room
    return json.dumps({k: v for k, v in to_dict().items() if k != "name"}, sort_keys=True)


def held_out_domains(domains: Sequence[Any]) -> list[str]:
    """Names of the ``domains`` that must never be rendered into a stage-1 (vision training) dataset.

    Those are (a) any domain showing a target split's held-out combination, whatever its name or other
    nuisances: the object pair of a ``target`` domain in its room style (DARLA's split), or the object pair
    of a ``cam-target`` domain in its room style with an overlapping camera-height range (the camera
    split); and (b) any built-in domain of an evaluation split (every split but the source splits, e.g.
    ``hard``: ``A-third``).
    """
    from envs.domains import get_split, is_source_split, list_splits

    def overlaps(a, b) -> bool:
        return a[0] <= b[1] and b[0] <= a[1]

    targets = [(t, False) for t in get_split("target")] + [(t, True) for t in get_split("cam-target")]
    evaluation = {d.name: d for s in list_splits() if not is_source_split(s) for d in get_split(s)}
    return [d.name for d in domains
            if any(d.pair == t.pair and _room_key(d.room) == _room_key(t.room)
                   and (not cam or overlaps(d.cam_height, t.cam_height)) for t, cam in targets)
            or evaluation.get(d.name) == d]


def _resolve_request_domains(split: str | None, domains: Any, allow_target: bool) -> tuple[str, list]:
    from envs.domains import get_split, resolve_domains

    if split is not None and domains is not None:
        raise ValueError(f"pass either split={split!r} or domains={domains!r}, not both")
    spec = "source" if split is None and domains is None else (split if split is not None else domains)
    resolved = list(resolve_domains(spec))
    label = spec if isinstance(spec, str) else ",".join(d.name for d in resolved)
    bad = [] if allow_target else held_out_domains(resolved)
    if bad:
        target = ", ".join(t.name for s in ("target", "cam-target") for t in get_split(s))
        raise ValueError(
            f"refusing to render {bad} into a stage-1 dataset: they show a held-out target combination "
            f"(the object pair, room style and, for the camera split, camera height of {target}) or belong to "
            "an evaluation split, and a vision model trained on them would no longer be evaluated zero-shot; "
            "collect over a source split ('source', 'cam-source') or source domain names instead "
            "(allow_target=True makes an analysis-only dataset)"
        )
    return label, resolved


# ---------------------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class _EnvRecipe:
    """What a worker needs to build its env (picklable; domains may be custom Domain objects)."""

    domains: tuple
    layout: str
    obs_size: int
    env_kwargs: tuple  # sorted (key, value) pairs

    def make(self):
        import gymnasium

        import envs  # noqa: F401  (headless pyglet + registers the env)

        return gymnasium.make(ENV_ID, domain=list(self.domains), layout=self.layout, obs_size=self.obs_size,
                              **dict(self.env_kwargs))


@dataclass(frozen=True)
class _ChunkTask:
    index: int
    start: int  # first frame of the chunk in the dataset
    length: int
    seed: int
    policy: str
    domain_names: tuple[str, ...]
    factor_names: tuple[str, ...]
    path: str  # final chunk file


def chunk_seed_sequence(seed: int, chunk: int) -> np.random.SeedSequence:
    """The seed sequence of chunk ``chunk``: a function of ``(seed, chunk)`` only, so a chunk's bytes do not
    depend on the number of workers nor on which chunks were already rendered."""
    return np.random.SeedSequence([int(seed), int(chunk)])


def _factor_vector(factors: Any, names: Sequence[str]) -> np.ndarray:
    """``info["factors"]`` (dict) → ``(F,)`` float32 in the order of ``names``."""
    try:
        return np.array([float(factors[n]) for n in names], dtype=np.float32)
    except KeyError as e:
        raise KeyError(f"info['factors'] has no factor {e}; it has {sorted(factors)}, expected {list(names)}") from None


class _ActionPolicy:
    """The behaviour policy of the collection (see :data:`POLICIES`)."""

    def __init__(self, name: str, action_space, forward_action: int, rng: np.random.Generator):
        self.name, self.n, self.forward, self.rng = name, int(action_space.n), forward_action, rng
        self._action, self._left = 0, 0

    def __call__(self) -> int:
        if self.name == "random":
            return int(self.rng.integers(self.n))
        if self._left == 0:  # explore: forward half the time, otherwise another action; hold 1–4 steps
            others = [a for a in range(self.n) if a != self.forward]
            self._action = self.forward if self.rng.random() < 0.5 else int(self.rng.choice(others))
            self._left = int(self.rng.integers(1, 5))
        self._left -= 1
        return self._action


def render_chunk(env, task: _ChunkTask, report=None) -> dict[str, np.ndarray]:
    """Render the ``task.length`` frames of one chunk with ``env``.

    The env is reset with a seed drawn from :func:`chunk_seed_sequence`; later episodes of the chunk
    continue the env's own seeded RNG, so the chunk is a function of ``(seed, index)`` only.
    Frames: the reset observation, then the observation after every step (terminal frames included,
    they show the agent at an object), then the next episode's reset observation, and so on.

    :param env: a ``darla/SeekAvoid-v0`` env (any wrapper) over the task's domains
    :param task: which chunk
    :param report: called with the number of frames rendered since the last call (progress)
    :return: ``frames (L, H, W, 3) uint8``, ``factors (L, F) float32``, ``domains (L,) int16``
    """
    rng = np.random.default_rng(chunk_seed_sequence(task.seed, task.index))
    env_seed = int(rng.integers(2**31 - 1))
    actions = getattr(env.unwrapped, "actions", None)
    forward = int(getattr(actions, "move_forward", env.action_space.n - 1))
    policy = _ActionPolicy(task.policy, env.action_space, forward, rng)
    domain_index = {n: i for i, n in enumerate(task.domain_names)}

    obs, info = env.reset(seed=env_seed)
    frames = np.empty((task.length, *obs.shape), dtype=np.uint8)
    factors = np.empty((task.length, len(task.factor_names)), dtype=np.float32)
    domains = np.empty((task.length,), dtype=np.int16)
    pending = 0

    def record(i: int, obs: np.ndarray, info: dict) -> None:
        nonlocal pending
        try:
            domains[i] = domain_index[info["domain"]]
        except KeyError:
            raise ValueError(f"env reported domain {info.get('domain')!r}, "
                             f"not one of {list(task.domain_names)}") from None
        frames[i] = obs
        factors[i] = _factor_vector(info["factors"], task.factor_names)
        pending += 1
        if report is not None and pending >= _PROGRESS_EVERY:
            report(pending)
            pending = 0

    record(0, obs, info)
    i = 1
    while i < task.length:
        obs, _, terminated, truncated, info = env.step(policy())
        record(i, obs, info)
        i += 1
        if (terminated or truncated) and i < task.length:
            obs, info = env.reset()
            record(i, obs, info)
            i += 1
    if report is not None and pending:
        report(pending)
    return {"frames": frames, "factors": factors, "domains": domains}


def _write_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    fd, tmp = _mkstemp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        _fsync_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_chunk(path: Path, task: _ChunkTask, frame_shape: tuple[int, ...]) -> dict[str, np.ndarray] | None:
    """The chunk's arrays, or ``None`` if the file is missing or not what ``task`` asks for."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("frames", "factors", "domains")}
    except Exception as e:  # truncated / garbage file: render the chunk again
        logger.warning("chunk %s is unreadable (%s); rendering it again", path, e)
        return None
    ok = (arrays["frames"].shape == (task.length, *frame_shape) and arrays["frames"].dtype == np.uint8
          and arrays["factors"].shape == (task.length, len(task.factor_names))
          and arrays["domains"].shape == (task.length,))
    if not ok:
        logger.warning("chunk %s has unexpected shapes; rendering it again", path)
        return None
    return arrays


# Per-worker-process state: the env is built once per process and reused for every chunk it renders.
_worker_env: dict[str, Any] = {"recipe": None, "env": None}
_worker_queue = None


def _worker_init(progress_queue) -> None:
    global _worker_queue
    _worker_queue = progress_queue


def _worker_warmup(recipe: _EnvRecipe) -> int:
    """Build this worker's env for ``recipe`` (once per process); returns the process id."""
    if _worker_env["recipe"] != recipe:
        if _worker_env["env"] is not None:
            _worker_env["env"].close()
        _worker_env.update(recipe=recipe, env=recipe.make())
    return os.getpid()


def _worker_render(recipe: _EnvRecipe, task: _ChunkTask) -> int:
    _worker_warmup(recipe)
    env = _worker_env["env"]
    report = _worker_queue.put if _worker_queue is not None else None
    _write_chunk(Path(task.path), render_chunk(env, task, report))
    return task.index


# ------------------------------------------------------------------------------------------- driver
def _check_args(frames: int, workers: int, obs_size: int, policy: str, chunk_size: int) -> None:
    for name, value in (("frames", frames), ("workers", workers), ("obs_size", obs_size), ("chunk_size", chunk_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if policy not in POLICIES:
        raise ValueError(f"unknown collection policy {policy!r}; valid: {', '.join(POLICIES)}")


def _prepare_dir(out: Path, request: dict, overwrite: bool) -> bool:
    """Make ``out`` ready for ``request``. Returns ``True`` if it already holds the finished collection."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"collection output {out} exists and is not a directory; choose another --out")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    ours = REQUEST_FILE in entries or META_FILE in entries
    if entries and overwrite:
        logger.info("overwrite=True: removing the previous collection in %s", out)
        for name in _OWN_ENTRIES:
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        _remove_temp_files(out)
    elif entries and not ours:
        raise ValueError(f"{out} is not empty and holds no darla collection ({', '.join(entries[:5])}); "
                         "collect into an empty or new directory, or pass overwrite=True")
    elif entries:
        try:
            previous = json.loads((out / REQUEST_FILE).read_text())
        except (OSError, ValueError):  # finished collection whose request file was lost: compare meta
            previous = json.loads((out / META_FILE).read_text()).get("request")
        if previous != request:
            diff = sorted(k for k in set(previous or {}) | set(request)
                          if (previous or {}).get(k) != request.get(k))
            raise ValueError(
                f"{out} holds a collection made with different arguments (differ: {', '.join(diff)}); "
                "rerun with the same arguments to resume or reuse it, collect into another directory, "
                "or pass overwrite=True (or delete the directory) to replace it"
            )
        if (out / META_FILE).is_file():
            shutil.rmtree(out / CHUNK_DIR, ignore_errors=True)  # a run killed while cleaning up
            return True
    out.mkdir(parents=True, exist_ok=True)
    _remove_temp_files(out)
    _atomic_write_text(out / REQUEST_FILE, _json(request))  # first, so the directory is recognised as ours
    (out / CHUNK_DIR).mkdir(exist_ok=True)
    _remove_temp_files(out / CHUNK_DIR)
    return False


def _plan_chunks(frames: int, chunk_size: int, seed: int, policy: str, domain_names, factor_names,
                 chunk_dir: Path) -> list[_ChunkTask]:
    return [
        _ChunkTask(index=k, start=start, length=min(chunk_size, frames - start), seed=seed, policy=policy,
                   domain_names=tuple(domain_names), factor_names=tuple(factor_names),
                   path=str(chunk_dir / f"chunk_{k:05d}.npz"))
        for k, start in enumerate(range(0, frames, chunk_size))
    ]


def _render_in_process(recipe: _EnvRecipe, tasks: Iterable[_ChunkTask], bar) -> None:
    env = recipe.make()
    try:
        for task in tasks:
            _write_chunk(Path(task.path), render_chunk(env, task, bar.update))
    finally:
        env.close()


def _raise_chunk_failure(task: _ChunkTask | None, error: BaseException) -> None:
    """Re-raise a worker's error naming the chunk (``None``: while the worker was building its env)."""
    what = f"rendering chunk {task.index} (frames {task.start}–{task.start + task.length - 1})" if task else \
        "building its env"
    if isinstance(error, cf.process.BrokenProcessPool):
        raise RuntimeError(
            f"a collection worker process died while {what} ({error}). If you call "
            "collect_frames from a script, guard the call with `if __name__ == '__main__':` (spawned workers "
            "re-import the main script), or pass workers=1; finished chunks are kept, rerun to resume"
        ) from error
    raise RuntimeError(f"a worker process failed {what}: {error}") from error


def _render_in_workers(recipe: _EnvRecipe, tasks: list[_ChunkTask], workers: int, bar) -> None:
    """Render ``tasks`` with this process and ``workers - 1`` spawned processes, one env each.

    A worker needs ~1–2 s to start (import miniworld, build its env), so each first builds its env
    (a warm-up task) and is handed chunks only once ready, one at a time (topped up every few frames,
    so the last chunks are shared out evenly). Meanwhile this process renders chunks itself instead of
    idling: a collection never waits for start-up, and a small one is done before the workers are ready.
    """
    # spawn: a fresh interpreter per worker, no OpenGL context or pyglet state inherited through fork
    ctx = mp.get_context("spawn")
    progress = ctx.Queue()
    pool = cf.ProcessPoolExecutor(max_workers=workers - 1, mp_context=ctx, initializer=_worker_init,
                                  initargs=(progress,))
    todo = collections.deque(tasks)  # this process takes from the front, the workers from the back
    running: dict[cf.Future, _ChunkTask] = {}
    warmups = {pool.submit(_worker_warmup, recipe) for _ in range(workers - 1)}
    ready = 0

    def poll(frames_here: int = 0) -> None:
        nonlocal ready
        bar.update(frames_here)
        for fut in [f for f in warmups if f.done()]:
            warmups.discard(fut)
            if fut.exception() is not None:
                _raise_chunk_failure(None, fut.exception())
            ready += 1
        for fut in [f for f in running if f.done()]:
            task = running.pop(fut)
            if fut.exception() is not None:
                _raise_chunk_failure(task, fut.exception())
        while True:
            try:
                bar.update(progress.get_nowait())
            except queue_lib.Empty:
                break
        while todo and len(running) < ready:
            task = todo.pop()
            running[pool.submit(_worker_render, recipe, task)] = task

    env = None
    try:
        if _MAIN_PROCESS_RENDERS:
            env = recipe.make()
        while todo or running:
            if todo and env is not None:
                task = todo.popleft()
                _write_chunk(Path(task.path), render_chunk(env, task, poll))
            else:
                cf.wait([*running, *warmups], timeout=0.1, return_when=cf.FIRST_COMPLETED)
            poll()
    finally:
        if env is not None:
            env.close()
        # don't wait for workers still starting up: they have no work left and exit on their own
        pool.shutdown(wait=False, cancel_futures=True)


def _assemble(out: Path, tasks: list[_ChunkTask], frame_shape: tuple[int, ...], n_factors: int) -> None:
    """Copy the chunks into the final arrays: temp files, then rename each into place."""
    n = sum(t.length for t in tasks)
    specs = {FRAMES_FILE: ((n, *frame_shape), np.uint8, "frames"),
             FACTORS_FILE: ((n, n_factors), np.float32, "factors"),
             DOMAINS_FILE: ((n,), np.int16, "domains")}
    tmps: dict[str, str] = {}
    try:
        arrays = {}
        for name, (shape, dtype, _) in specs.items():
            fd, tmps[name] = _mkstemp(out, name)
            os.close(fd)
            arrays[name] = np.lib.format.open_memmap(tmps[name], mode="w+", dtype=dtype, shape=shape)
        for t in tasks:
            chunk = _read_chunk(Path(t.path), t, frame_shape)
            if chunk is None:
                raise RuntimeError(f"chunk {t.path} vanished or is corrupt during assembly; rerun to render it again")
            for name, (_, _, key) in specs.items():
                arrays[name][t.start:t.start + t.length] = chunk[key]
        for name, arr in arrays.items():
            arr.flush()
        del arrays, arr
        for name, tmp in tmps.items():
            _fsync_replace(tmp, out / name)
    finally:
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def _factor_names_of_env() -> tuple[str, ...]:
    import envs  # noqa: F401
    from envs.seekavoid import SeekAvoidEnv

    return tuple(SeekAvoidEnv.FACTOR_NAMES)


def collect_frames(
    out_dir: str | os.PathLike,
    frames: int,
    split: str | None = None,
    domains: str | Sequence[Any] | None = None,
    workers: int = 2,
    seed: int = 0,
    obs_size: int = 64,
    layout: str = "choice",
    policy: str = "random",
    chunk_size: int = 500,
    progress: bool = True,
    overwrite: bool = False,
    allow_target: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Render ``frames`` observations of ``darla/SeekAvoid-v0`` over a split's domains into ``out_dir``.

    DARLA's stage-1 ("learn to see") data (Higgins, Pal et al. 2017): a random or exploratory behaviour
    policy in the source domains, nuisances randomised per episode by the env (one domain drawn per episode).
    Rendering runs in this process and ``workers - 1`` spawned processes, each with its own env, in chunks
    of ``chunk_size`` frames; see the module docstring for the directory layout and resume semantics.

    :param out_dir: directory to create (or resume / reuse when it holds the same request)
    :param frames: number of frames ``N``
    :param split: a split name (``"source"``) or comma-separated split/domain names; default ``"source"``
    :param domains: instead of ``split``: a list of domain names or ``Domain`` objects
    :param workers: rendering processes, this one included (``1``: no worker processes)
    :param seed: master seed; the dataset's bytes are a function of the request, not of ``workers``
    :param obs_size: side of the square RGB frames
    :param layout: SeekAvoid layout, ``"choice"`` or ``"collect"``
    :param policy: behaviour policy, one of :data:`POLICIES`
    :param chunk_size: frames per chunk (unit of parallel work and of resume; part of the request)
    :param progress: show a tqdm progress bar
    :param overwrite: replace a collection made with different arguments instead of raising
    :param allow_target: allow the target split's (pair, room) combination (analysis data only: a
        vision model trained on it is no longer zero-shot)
    :param env_kwargs: extra keyword arguments for ``gymnasium.make`` (part of the request)
    :return: ``out_dir`` as a ``Path``
    :raises ValueError: a target combination is requested, a bad argument, or ``out_dir`` holds a
        different collection (without ``overwrite``)
    """
    _check_args(frames, workers, obs_size, policy, chunk_size)
    label, resolved = _resolve_request_domains(split, domains, allow_target)
    domain_names = [d.name for d in resolved]
    if len(set(domain_names)) != len(domain_names):
        raise ValueError(f"domain names must be unique, got {domain_names}")
    factor_names = _factor_names_of_env()
    env_kwargs = dict(sorted((env_kwargs or {}).items()))
    request = json.loads(_json({
        "version": FORMAT_VERSION, "frames": int(frames), "split": label, "domains": domain_names,
        "domain_specs": [_domain_spec(d) for d in resolved], "seed": int(seed), "obs_size": int(obs_size),
        "layout": layout, "policy": policy, "chunk_size": int(chunk_size), "env_kwargs": env_kwargs,
        "factor_names": list(factor_names), "held_out_domains": held_out_domains(resolved),
    }))
    out = Path(out_dir)
    if _prepare_dir(out, request, overwrite):
        logger.info("%s already holds this collection; reusing it", out)
        return out

    frame_shape = (int(obs_size), int(obs_size), 3)
    tasks = _plan_chunks(frames, chunk_size, seed, policy, domain_names, factor_names, out / CHUNK_DIR)
    todo = [t for t in tasks if _read_chunk(Path(t.path), t, frame_shape) is None]
    done_frames = sum(t.length for t in tasks) - sum(t.length for t in todo)
    if done_frames:
        logger.info("resuming %s: %d of %d chunks already rendered", out, len(tasks) - len(todo), len(tasks))
    recipe = _EnvRecipe(tuple(resolved), layout, int(obs_size), tuple(env_kwargs.items()))
    with tqdm(total=frames, initial=done_frames, desc=f"collect {label}", unit="frame", disable=not progress,
              dynamic_ncols=True) as bar:
        if todo and (workers == 1 or len(todo) == 1):
            _render_in_process(recipe, todo, bar)
        elif todo:
            _render_in_workers(recipe, todo, min(workers, len(todo)), bar)

    _assemble(out, tasks, frame_shape, len(factor_names))
    meta = {**{k: request[k] for k in ("version", "frames", "obs_size", "split", "domains", "factor_names", "seed",
                                       "layout", "policy", "chunk_size", "held_out_domains")},
            "frame_shape": list(frame_shape), "request": request}
    _atomic_write_text(out / META_FILE, _json(meta))
    shutil.rmtree(out / CHUNK_DIR, ignore_errors=True)
    logger.info("collected %d frames of %s into %s", frames, label, out)
    return out
