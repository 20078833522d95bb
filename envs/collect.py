"""Stage 1 of DARLA: render the frames the vision model learns to see from.

DARLA (Higgins, Pal et al. 2017; stage 1, "learn to see") trains its vision module on observations
collected by a random (or exploratory) agent in the *source* domains, with the nuisances randomised
per episode by the environment. Never the target combination: the vision would no longer be zero-shot.

:func:`collect_frames` renders ``frames`` observations of any gymnasium env over a split's domains
(:mod:`envs.spec`; default env: ``darla/SeekAvoid-v0``) in parallel processes and stores them in a
directory that :class:`envs.frames.FrameDataset` reads with a memory map::

    out_dir/
      frames.npy    (N, H, W, C) uint8     readable with np.load(mmap_mode="r"); H = W = obs_size
      factors.npy   (N, F) float32         ground-truth factors, columns = meta["factor_names"] (F = 0 when
                                           the env reports none)
      domains.npy   (N,) int16             index into meta["domains"]
      meta.json     written last: its presence means the collection is complete
      collect.json  the request (arguments) this directory was made for

Work is split into chunks of ``chunk_size`` frames. Chunk ``k`` is rendered by one env reset with a
seed derived from ``(seed, k)`` only, so the bytes do not depend on the number of workers or on which
process rendered it. Each finished chunk is written as ``chunks/chunk_XXXXX.npz`` (temp file +
rename); a killed collection rerun with the same arguments reuses finished chunks and ends
byte-identical to an uninterrupted run. The final arrays are assembled into temp files and renamed,
``meta.json`` last, then the chunks are deleted.

Frames are the env's observations after the domain's wrappers, resized to ``obs_size`` (an env whose
observation is not an image is rendered: ``render()`` becomes the observation, see :mod:`envs.spec`).
Factors are ``info["factors"]`` when the env reports them — a mapping name → number, or a vector named by
``info["factor_names"]`` (or the env's ``factor_names`` attribute) — and are otherwise absent (``F = 0``):
the vision probe and the disentanglement metrics then have nothing to measure and are skipped. The
behaviour policy samples any action space (``Discrete``, ``Box``, ``MultiDiscrete``, ``MultiBinary``) with
the space's own ``sample()``, seeded from the chunk's seed.
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from atomicio import atomic_write_text, fsync_replace, remove_temp_files, temp_path
from envs.seekavoid.domains import SEEKAVOID_ID, held_out_domains  # noqa: F401  (held_out_domains: re-exported)

logger = logging.getLogger(__name__)

#: version of the on-disk layout; bump when the files or their meaning change
FORMAT_VERSION = 1
#: the env :func:`collect_frames` renders unless told otherwise
DEFAULT_ENV_ID = SEEKAVOID_ID
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
def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


_remove_temp_files = remove_temp_files


# ------------------------------------------------------------------------------------------- domains
def _resolve_request_domains(split: str | None, domains: Any, allow_target: bool, catalog) -> tuple[str, list]:
    if split is not None and domains is not None:
        raise ValueError(f"pass either split={split!r} or domains={domains!r}, not both")
    spec = "source" if split is None and domains is None else (split if split is not None else domains)
    resolved = catalog.resolve(spec)
    label = spec if isinstance(spec, str) else ",".join(d.name for d in resolved)
    bad = [] if allow_target else catalog.held_out(resolved)
    if bad:
        raise ValueError(
            f"refusing to render {bad} into a stage-1 dataset: they equal (by name or by value) a domain of an "
            f"evaluation split of {catalog.env_id!r} (every split but 'source' / '*-source'; for SeekAvoid also any "
            "domain showing a held-out target combination of object pair, room style and, for the camera split, "
            "camera height), and a vision model trained on them would no longer be evaluated zero-shot; collect "
            "over a source split ('source', 'cam-source') or source domain names instead "
            "(allow_target=True makes an analysis-only dataset)"
        )
    return label, resolved


# ---------------------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class _EnvRecipe:
    """What a worker needs to build its env (picklable: domain specs are plain data)."""

    domains: tuple  # DomainSpec, base kwargs merged in
    obs_size: int
    channels: int

    def make(self):
        import envs  # noqa: F401  (headless pyglet, registers envs and providers)
        from envs.spec import make_domains_env

        return make_domains_env(list(self.domains), obs_size=self.obs_size, channels=self.channels)


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
    """``info["factors"]`` (a mapping, or a vector in ``names`` order) → ``(F,)`` float32 in the order of ``names``."""
    if not names:
        return np.zeros(0, dtype=np.float32)
    if factors is None:
        raise KeyError(f"the env reported no info['factors'] in this frame, expected {list(names)}")
    if not isinstance(factors, dict):
        vec = np.asarray(factors, dtype=np.float32).reshape(-1)
        if vec.shape != (len(names),):
            raise ValueError(f"info['factors'] has {vec.size} values, expected {len(names)} ({list(names)})")
        return vec
    try:
        return np.array([float(factors[n]) for n in names], dtype=np.float32)
    except KeyError as e:
        raise KeyError(f"info['factors'] has no factor {e}; it has {sorted(factors)}, expected {list(names)}") from None


def factor_names_of(env, info: dict) -> tuple[str, ...]:
    """Names of the ground-truth factors an env reports: the keys of ``info["factors"]`` (a mapping), or for a
    vector ``info["factor_names"]`` or the env's ``factor_names`` / ``FACTOR_NAMES`` attribute; ``()`` when the env
    reports no factors."""
    factors = info.get("factors")
    if factors is None:
        return ()
    if isinstance(factors, dict):
        return tuple(str(k) for k in factors)
    names = info.get("factor_names")
    if names is None:
        for attr in ("factor_names", "FACTOR_NAMES"):
            names = getattr(env.unwrapped, attr, None)
            if names is not None:
                break
    n = int(np.asarray(factors).size)
    if names is None or len(names) != n:
        raise ValueError(f"the env reports info['factors'] as a vector of {n} values but names them "
                         f"{names!r}; give info['factor_names'] (or a factor_names attribute) of that length, or "
                         "report a mapping name → number")
    return tuple(str(x) for x in names)


class _ActionPolicy:
    """The behaviour policy of the collection (see :data:`POLICIES`).

    ``random`` on a ``Discrete`` space draws ``rng.integers(n)`` (as before the generic core, so SeekAvoid data
    keeps its bytes); on any other space it calls the space's own ``sample()``, the space seeded from ``rng``.
    """

    def __init__(self, name: str, action_space, forward_action: int, rng: np.random.Generator):
        from gymnasium import spaces

        self.name, self.space, self.forward, self.rng = name, action_space, forward_action, rng
        self.discrete = isinstance(action_space, spaces.Discrete) and int(action_space.start) == 0
        if name == "explore" and not self.discrete:
            raise ValueError(f"collection policy 'explore' needs a Discrete action space (forward + turns), the env has "
                             f"{action_space}; use policy='random'")
        if not self.discrete:
            action_space.seed(int(rng.integers(2**31 - 1)))
        self.n = int(action_space.n) if self.discrete else 0
        self._action, self._left = 0, 0

    def __call__(self) -> Any:
        if not self.discrete:
            return self.space.sample()
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

    :param env: an env over the task's domains reporting ``info["domain"]`` (:func:`envs.spec.make_domains_env`)
    :param task: which chunk
    :param report: called with the number of frames rendered since the last call (progress)
    :return: ``frames (L, H, W, C) uint8``, ``factors (L, F) float32``, ``domains (L,) int16``
    """
    rng = np.random.default_rng(chunk_seed_sequence(task.seed, task.index))
    env_seed = int(rng.integers(2**31 - 1))
    actions = getattr(env.unwrapped, "actions", None)
    forward = int(getattr(actions, "move_forward", getattr(env.action_space, "n", 1) - 1))
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
        factors[i] = _factor_vector(info.get("factors"), task.factor_names)
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
    from atomicio import atomic_open

    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


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
        except (OSError, ValueError) as e:  # finished collection whose request file was lost: compare meta
            if not (out / META_FILE).is_file():
                raise ValueError(f"{out / REQUEST_FILE} is unreadable ({type(e).__name__}: {e}) and {out} has no "
                                 f"{META_FILE}: the collection cannot be resumed; pass overwrite=True "
                                 "(--overwrite) or delete the directory") from None
            try:
                previous = json.loads((out / META_FILE).read_text()).get("request")
            except (OSError, ValueError) as e2:
                raise ValueError(f"both {out / REQUEST_FILE} and {out / META_FILE} are unreadable ({e2}); pass "
                                 "overwrite=True (--overwrite) or delete the directory") from None
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
            tmps[name] = temp_path(out, name)
            arrays[name] = np.lib.format.open_memmap(tmps[name], mode="w+", dtype=dtype, shape=shape)
        for t in tasks:
            chunk = _read_chunk(Path(t.path), t, frame_shape)
            if chunk is None:
                raise RuntimeError(f"chunk {t.path} vanished or is corrupt during assembly; rerun to render it again")
            for name, (_, _, key) in specs.items():
                arrays[name][t.start:t.start + t.length] = chunk[key]
        for arr in arrays.values():
            arr.flush()
        del arrays, arr
        for name, tmp in tmps.items():
            fsync_replace(tmp, out / name)
    finally:
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def _probe_env(recipe: _EnvRecipe) -> tuple[tuple[str, ...], Any]:
    """Make the env once to learn what it reports: factor names and the action space (for a clear error)."""
    env = recipe.make()
    try:
        _, info = env.reset(seed=0)
        return factor_names_of(env, info), env.action_space
    finally:
        env.close()


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
    env_id: str | None = None,
    domains_file: str | os.PathLike | None = None,
    channels: int = 3,
    catalog: Any = None,
) -> Path:
    """Render ``frames`` observations of an env over a split's domains into ``out_dir``.

    DARLA's stage-1 ("learn to see") data (Higgins, Pal et al. 2017): a random or exploratory behaviour
    policy in the source domains, nuisances randomised per episode by the env (one domain drawn per episode).
    Rendering runs in this process and ``workers - 1`` spawned processes, each with its own env, in chunks
    of ``chunk_size`` frames; see the module docstring for the directory layout and resume semantics.

    :param out_dir: directory to create (or resume / reuse when it holds the same request)
    :param frames: number of frames ``N``
    :param split: a split name (``"source"``) or comma-separated split/domain names / YAML files; default ``"source"``
    :param domains: instead of ``split``: a list of domain names, ``DomainSpec`` or SeekAvoid ``Domain`` objects
    :param workers: rendering processes, this one included (``1``: no worker processes)
    :param seed: master seed; the dataset's bytes are a function of the request, not of ``workers``
    :param obs_size: side of the square frames (any env's frames are resized to it)
    :param layout: SeekAvoid layout, ``"choice"`` or ``"collect"`` (other envs ignore it)
    :param policy: behaviour policy, one of :data:`POLICIES` (``explore`` needs a ``Discrete`` action space)
    :param chunk_size: frames per chunk (unit of parallel work and of resume; part of the request)
    :param progress: show a tqdm progress bar
    :param overwrite: replace a collection made with different arguments instead of raising
    :param allow_target: allow held-out (evaluation) domains (analysis data only: a vision model trained on
        them is no longer zero-shot)
    :param env_kwargs: extra keyword arguments for every domain's ``gymnasium.make`` (part of the request)
    :param env_id: the gymnasium env (default :data:`DEFAULT_ENV_ID`); its provider names its domains and splits
    :param domains_file: YAML file of domains and splits of that env (:mod:`envs.spec`)
    :param channels: 3 (RGB) or 1 (grey) channels per frame
    :param catalog: an :class:`envs.spec.DomainCatalog` instead of ``env_id``/``env_kwargs``/``domains_file``/
        ``obs_size``/``channels``/``layout``
    :return: ``out_dir`` as a ``Path``
    :raises ValueError: a held-out domain is requested, a bad argument, or ``out_dir`` holds a
        different collection (without ``overwrite``)
    """
    from envs.spec import DomainCatalog

    _check_args(frames, workers, obs_size, policy, chunk_size)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    if catalog is None:
        catalog = DomainCatalog(env_id or DEFAULT_ENV_ID, kwargs=env_kwargs, domains_file=domains_file,
                                obs_size=obs_size, channels=channels, layout=layout)
    obs_size, channels = catalog.obs_size, catalog.channels
    label, resolved = _resolve_request_domains(split, domains, allow_target, catalog)
    domain_names = [d.name for d in resolved]
    recipe = _EnvRecipe(tuple(resolved), int(obs_size), int(channels))
    factor_names = catalog.factor_names()
    if factor_names is None:
        factor_names, _ = _probe_env(recipe)
        if not factor_names:
            logger.info("%s reports no info['factors']: the dataset has none, so the vision probe and the "
                        "disentanglement metrics will be skipped", catalog.env_id)
    env_kwargs = dict(sorted((env_kwargs or {}).items()))
    request_dict = {
        "version": FORMAT_VERSION, "frames": int(frames), "split": label, "domains": domain_names,
        "domain_specs": [catalog.provider.describe(d) for d in resolved], "seed": int(seed), "obs_size": int(obs_size),
        "layout": layout, "policy": policy, "chunk_size": int(chunk_size), "env_kwargs": env_kwargs,
        "factor_names": list(factor_names), "held_out_domains": catalog.held_out(resolved),
    }
    # Keys that only other envs need, so the requests of existing SeekAvoid collections stay unchanged.
    if catalog.env_id != SEEKAVOID_ID:
        request_dict["env_id"] = catalog.env_id
    if channels != 3:
        request_dict["channels"] = int(channels)
    request = json.loads(_json(request_dict))
    out = Path(out_dir)
    if _prepare_dir(out, request, overwrite):
        logger.info("%s already holds this collection; reusing it", out)
        return out

    frame_shape = (int(obs_size), int(obs_size), int(channels))
    tasks = _plan_chunks(frames, chunk_size, seed, policy, domain_names, factor_names, out / CHUNK_DIR)
    todo = [t for t in tasks if _read_chunk(Path(t.path), t, frame_shape) is None]
    done_frames = sum(t.length for t in tasks) - sum(t.length for t in todo)
    if done_frames:
        logger.info("resuming %s: %d of %d chunks already rendered", out, len(tasks) - len(todo), len(tasks))
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
    if "env_id" in request:
        meta["env_id"] = request["env_id"]
    _atomic_write_text(out / META_FILE, _json(meta))
    shutil.rmtree(out / CHUNK_DIR, ignore_errors=True)
    logger.info("collected %d frames of %s into %s", frames, label, out)
    return out
