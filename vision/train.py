"""Stage 1, "learn to see": one training loop for every model of the zoo.

:func:`train_vision` samples random minibatches of frames, calls ``model.train_step`` (so models with
several optimisers, like FactorVAE's discriminator, plug in unchanged), logs to TensorBoard, writes
resumable checkpoints, probes the trained features against the data's ground-truth factors and saves
the final model with :func:`vision.save`.

Out directory layout::

    out_dir/
      model/            the final checkpoint (vision.save; extra: run, probe table)
      ckpt/latest.json  which step directory is the newest complete checkpoint
      ckpt/step_000500/ model/ (vision.save) + optim.safetensors (optimiser tensors, torch RNG) + state.json
      dae/              beta_vae_dae only: the DAE pre-trained first (itself a train_vision out_dir)
      tb/               TensorBoard event files
      probe.json, probe.md

A killed run resumes from ``ckpt/latest.json``: weights, optimiser moments, the step counter, the
minibatch RNG (numpy) and the noise RNG (torch) are restored, so the resumed run ends with the same
weights as an uninterrupted one. The two newest checkpoints are kept: a new one is written into a
temporary directory, fsynced, renamed into place and fsynced again before ``latest.json`` points at
it, and a damaged newest checkpoint (truncated file, bad JSON, missing weights) falls back to the
previous one with a warning naming the file (or to a fresh start if none is readable).

Speed (``benchmarks/vision.py``): frames that fit in :data:`IN_MEMORY_MAX_BYTES` are read once into a
uint8 tensor and minibatches are gathered from it with ``index_select`` and scaled to float in one
pass, already channels-last; a model's fixed per-frame targets (:meth:`VisionModel.target_cache`,
β-VAE_DAE's J(x)) are computed once; glibc is told to keep freed memory (the per-step activation
buffers otherwise go back to the kernel and are page-faulted in again every step: ~30k minor faults
and a large share of system time per β-VAE_DAE step); and ``precision`` picks bf16 autocast where it
is fast and safe.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from vision import parallel
from vision.base import VisionModel, config_dict, make, model_class, to_tensor
from vision.checkpoint import CONFIG, CheckpointError, atomic_write_bytes, load, read_meta, save

log = logging.getLogger(__name__)

CKPT_DIR = "ckpt"
MODEL_DIR = "model"
DAE_DIR = "dae"
LATEST = "latest.json"
DEFAULT_DAE_STEPS = 1500
PROBE_MAX_FRAMES = 5000
IMAGE_EVERY_LOGS = 10  # reconstructions go to TensorBoard every 10th scalar log
KEEP_CHECKPOINTS = 2  # the newest and the previous good one, to fall back to if the newest is damaged
#: Frames up to this size are copied once into a RAM tensor (20k 64×64×3 frames are 246 MB); larger
#: datasets stay memory-mapped and each minibatch is gathered from the map.
IN_MEMORY_MAX_BYTES = 2 << 30
PRECISIONS = ("auto", "fp32", "bf16")
#: The ``precision`` train_vision uses when none is given. fp32: bf16 matches its loss curves (benchmarks/
#: results/precision.json) and is 1.6x faster on 1 thread, but on 2 threads its step time swings from
#: 1.7x faster to 7x slower than fp32 whenever other processes share the cores; opt in with "auto"/"bf16".
DEFAULT_PRECISION = "fp32"


def train_vision(
    model_or_name: str | VisionModel,
    data: Any,
    out_dir: str | os.PathLike,
    steps: int,
    batch_size: int = 64,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    log_every: int = 50,
    checkpoint_every: int = 500,
    progress: bool = True,
    config: dict[str, Any] | None = None,
    dae_steps: int | None = None,
    probe: bool = True,
    task_factors: Sequence[str] | None = None,
    precision: str = DEFAULT_PRECISION,
    workers: int | str = 1,
) -> Path:
    """Train a vision model on frames; return the final checkpoint directory ``out_dir/model``.

    :param model_or_name: a registered name (built with ``config``; ``image_size`` and ``channels``
        are taken from the data) or a built :class:`VisionModel` (trained in place).
    :param data: ``(N, H, W, C)`` uint8 frames (a numpy memmap is fine), or an object with ``.frames``
        like ``envs.frames.FrameDataset`` (then ``.factors``/``.factor_names`` feed the probe).
    :param out_dir: run directory; an unfinished run in it is resumed, a finished one with the same
        settings is returned as is.
    :param steps: optimiser updates in total (including any done before a resume).
    :param batch_size: frames per update, drawn uniformly with replacement.
    :param lr: learning rate; ``None`` keeps the model config's ``lr``.
    :param seed: seeds the weights, the minibatch order and the models' noise.
    :param device: torch device.
    :param log_every: steps between TensorBoard scalar logs (the only host syncs beyond the step).
    :param checkpoint_every: steps between resumable checkpoints (one is also written at the end).
    :param progress: show a tqdm progress bar.
    :param config: model config overrides when ``model_or_name`` is a name.
    :param dae_steps: ``beta_vae_dae`` without a ``dae_checkpoint``: steps of the DAE trained first into
        ``out_dir/dae`` (default 1500; reused if already there).
    :param probe: after training, fit linear probes from features to the data's factors
        (:mod:`vision.probe`); warn if task-relevant factors are not recoverable.
    :param task_factors: the task-relevant factor names for that warning; default: the factors matching
        :data:`vision.probe.DEFAULT_TASK_PATTERNS`.
    :param precision: ``fp32``; ``bf16`` (``torch.autocast`` around each ``train_step``: convolutions and
        matrix products in bfloat16, the loss reductions and KL in float32, weights and Adam in float32);
        ``auto`` = ``bf16`` if the model declares it safe (``VisionModel.autocast_safe``), the device
        runs bf16 fast (:func:`resolve_precision`) and, on a CPU, each process has one torch thread
        (``workers`` > 1 or a 1-thread process), else ``fp32``. Part of the run's signature.
    :param workers: training processes on a CPU (:mod:`vision.parallel`): 1 (this process, its torch
        threads), ``W`` (each of ``W`` single-threaded-per-core processes takes ``batch_size / W`` frames of
        every minibatch and gradients are averaged before each step), or ``auto`` (one per core for models
        that declare ``data_parallel_safe``; :func:`vision.parallel.resolve_workers`). ``W > 1`` needs an
        ``if __name__ == "__main__":`` guard in a calling script. Part of the run's signature when > 1.
    """
    out_dir = Path(out_dir)
    frames, factors, factor_names = _unpack_data(data)
    _check_positive(steps=steps, batch_size=batch_size, log_every=log_every, checkpoint_every=checkpoint_every)
    if lr is not None and not lr > 0:
        raise ValueError(f"lr must be > 0 or None (use the model's), got {lr}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    n, size, _, channels = frames.shape
    device = torch.device(device)

    torch.manual_seed(seed)  # the initial weights
    model = _build_model(model_or_name, config, size, channels, lr, n)
    world = parallel.resolve_workers(workers, device, batch_size, model)
    if world > 1 and frames.nbytes > IN_MEMORY_MAX_BYTES:
        log.info("vision: %d frames exceed IN_MEMORY_MAX_BYTES; training in one process (data-parallel "
                 "workers share the frames in RAM)", n)
        world = 1
    threads = max(1, parallel.available_cores() // world) if world > 1 else torch.get_num_threads()
    amp_dtype = resolve_precision(precision, device, model, threads=threads)
    signature = _run_signature(model, batch_size, seed, frames.shape)
    if amp_dtype is not None:  # bf16 runs are other runs: never resumed into or reused as fp32 ones
        signature["precision"] = "bf16"
    if world > 1:  # the batch split and the ranks' noise streams make other numbers than one process
        signature["workers"] = world

    final_dir = out_dir / MODEL_DIR
    done = _finished_run(final_dir, signature, steps)
    if done is not None:
        log.info("vision: %s already trained for %d steps in %s; reusing it", model.name, steps, final_dir)
        return done

    extra: dict[str, Any] = {}
    if hasattr(model, "set_dae") and not bool(getattr(model, "dae_ready", True)):
        dae_path = _pretrain_dae(model, data, out_dir, dae_steps, batch_size, lr, seed, device, progress,
                                 precision, workers)
        model.set_dae(load(dae_path))
        extra["dae"] = str(dae_path)
    model.to(device)
    optimizers = model.configure_optimizers()
    _keep_freed_memory()
    source = _frame_source(frames)
    # After set_dae and .to(device): a cache of J(x) must come from the trained DAE's final weights.
    targets = model.target_cache(source, device)

    rng = np.random.default_rng(seed)  # minibatch indices
    torch.manual_seed(seed + 1)  # the models' noise (ε, masks), separate from the init stream
    rank_rng: dict[str, torch.Tensor] = {}  # the other ranks' noise RNG states, from a checkpoint
    start = _resume(out_dir / CKPT_DIR, model, optimizers, rng, signature, device, rank_rng)
    if start > steps:
        raise ValueError(
            f"{out_dir} holds a checkpoint at step {start}, beyond the requested {steps} steps; "
            "pass steps >= that or use a fresh out_dir"
        )

    writer = _summary_writer(out_dir / "tb")
    model.train()
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    log.info("vision: training %s with %s, %s, targets %s, frames %s", model.name,
             f"{world} data-parallel processes × {threads} torch thread(s)" if world > 1
             else f"{threads} torch threads",
             "bf16 autocast" if amp_dtype is not None else "fp32",
             "cached" if targets is not None else "on the fly",
             "in RAM" if isinstance(source, torch.Tensor) else "memory-mapped")
    bar = tqdm(total=steps, initial=start, disable=not progress, desc=f"train {model.name}", unit="step")
    loop = _Loop(model, optimizers, source, targets, rng, n, batch_size, device, autocast, log_every,
                 checkpoint_every, steps)

    def checkpoint(step: int, rank_states: list[torch.Tensor] | None) -> None:
        tensors = {f"rng.torch.rank{r}": s for r, s in enumerate(rank_states or []) if r > 0}
        _write_checkpoint(out_dir / CKPT_DIR, model, optimizers, rng, signature, step, tensors)

    try:
        if world == 1:
            loop.run(start, writer=writer, bar=bar, checkpoint=checkpoint)
        else:
            _run_data_parallel(loop, world, threads, start, seed, amp_dtype, rank_rng, writer, bar, checkpoint)
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    model.eval()
    extra["train"] = {**signature, "steps": steps, "lr": _current_lr(optimizers)}
    if hasattr(data, "root"):  # FrameDataset: `darla traverse` finds the frames again from here
        extra["data"] = str(data.root)
    if probe and factors is not None and factor_names:
        # A frame dataset may know which rows show each factor and which factors its task needs
        # (envs.frames.FrameDataset does, for SeekAvoid); vision stays ignorant of the env.
        rows = data.probe_rows() if hasattr(data, "probe_rows") else None
        if task_factors is None:
            task_factors = getattr(data, "task_factors", None)
        extra["probe"] = _probe_and_report(model, frames, factors, factor_names, out_dir, seed, device, task_factors,
                                           rows)
    save(model, final_dir, extra=extra)
    log.info("vision: %s trained for %d steps; checkpoint %s", model.name, steps, final_dir)
    return final_dir


# -- the training loop (one process, or each rank of a data-parallel run) -----------------------------
class _Loop:
    """The minibatch loop of :func:`train_vision`; a data-parallel rank runs the same loop on its share."""

    def __init__(self, model: VisionModel, optimizers: list[torch.optim.Optimizer], source: Any,
                 targets: torch.Tensor | None, rng: np.random.Generator, n: int, batch_size: int,
                 device: torch.device, autocast: Any, log_every: int, checkpoint_every: int, steps: int):
        self.model, self.optimizers, self.source, self.targets, self.rng = model, optimizers, source, targets, rng
        self.n, self.batch_size, self.device, self.autocast = n, batch_size, device, autocast
        self.log_every, self.checkpoint_every, self.steps = log_every, checkpoint_every, steps

    def run(self, start: int, rank: int = 0, world: int = 1, writer: Any = None, bar: Any = None,
            checkpoint: Any = None) -> None:
        """Steps ``start + 1 … steps``; rank 0 logs, shows ``bar`` and writes checkpoints."""
        model, sums, count = self.model, {}, 0
        for step in range(start + 1, self.steps + 1):
            idx = np.sort(self.rng.integers(0, self.n, size=self.batch_size))  # sorted: sequential memmap reads
            if world > 1:
                idx = idx[rank::world]  # every rank draws the same batch and takes its share
            x = _batch(self.source, idx, self.device)
            with self.autocast:
                if self.targets is None:
                    terms = model.train_step(x, self.optimizers)
                else:
                    target = self.targets.index_select(0, torch.from_numpy(idx).to(self.targets.device))
                    terms = model.train_step(x, self.optimizers, target=target)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if step % self.log_every == 0 or step == self.steps:
                means = {k: v / count for k, v in sums.items()}
                if world > 1:
                    means = parallel.mean_over_ranks(means)
                if rank == 0:
                    _log_scalars(writer, model, x, means, step,
                                 images=(step // self.log_every) % IMAGE_EVERY_LOGS == 0)
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:3]})
                sums, count = {}, 0
            if step % self.checkpoint_every == 0 or step == self.steps:
                states = parallel.gather_rng_states() if world > 1 else None
                if rank == 0 and checkpoint is not None:
                    checkpoint(step, states)
            if bar is not None:
                bar.update(1)


def _run_data_parallel(loop: _Loop, world: int, threads: int, start: int, seed: int, amp_dtype: Any,
                       rank_rng: dict[str, torch.Tensor], writer: Any, bar: Any, checkpoint: Any) -> None:
    """Run ``loop`` as rank 0 of ``world`` processes; ranks 1… are spawned workers (:mod:`vision.parallel`)."""
    import copy
    import tempfile

    import torch.distributed as dist
    import torch.multiprocessing as mp

    if isinstance(loop.source, torch.Tensor):
        loop.source.share_memory_()  # read by every rank; moved to shared memory once, not copied per worker
    if loop.targets is not None:
        loop.targets.share_memory_()
    store = tempfile.mkdtemp(prefix="darla-vision-ddp-")
    init_file = os.path.join(store, "rendezvous")
    ctx = mp.get_context("spawn")
    procs = []
    own_threads = torch.get_num_threads()
    opt_states = copy.deepcopy([o.state_dict() for o in loop.optimizers])
    for rank in range(1, world):
        noise = rank_rng.get(f"rng.torch.rank{rank}")
        if noise is None:  # a fresh run (or a checkpoint without this rank's stream)
            noise = torch.Generator().manual_seed(parallel.noise_seed(seed, rank)).get_state()
        args = (rank, world, init_file, threads, copy.deepcopy(loop.model), opt_states, loop.source, loop.targets,
                loop.rng.bit_generator.state, noise, start, loop.batch_size, loop.n, str(loop.device), amp_dtype,
                loop.log_every, loop.checkpoint_every, loop.steps)
        p = ctx.Process(target=_worker_main, args=args, daemon=True, name=f"darla-vision-rank{rank}")
        p.start()
        procs.append(p)
    hooks = []
    ok = False
    try:
        try:
            parallel.init(0, world, init_file)
        except Exception as e:
            raise RuntimeError(_dead_workers_message(procs, "before joining the process group") or
                               f"vision: data-parallel workers did not join ({e}); set vision.workers: 1") from None
        torch.set_num_threads(threads)
        hooks = parallel.average_gradients_before_step(loop.optimizers, world)
        try:
            loop.run(start, rank=0, world=world, writer=writer, bar=bar, checkpoint=checkpoint)
            dist.barrier()
        except RuntimeError as e:  # a collective failed: say which worker died, if one did
            for p in procs:
                p.join(timeout=5)
            message = _dead_workers_message(procs, "during training")
            if message:
                raise RuntimeError(message) from e
            raise
        ok = True
    finally:
        for h in hooks:
            h.remove()
        torch.set_num_threads(own_threads)
        for p in procs:
            p.join(timeout=60 if ok else 1)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        if dist.is_initialized():
            dist.destroy_process_group()
        shutil.rmtree(store, ignore_errors=True)
    bad = [p for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(_dead_workers_message(bad, "at the end of training") or "vision: a worker failed")


def _dead_workers_message(procs: Sequence[Any], when: str) -> str | None:
    dead = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode not in (None, 0)]
    if not dead:
        return None
    return (f"vision: data-parallel worker {', '.join(dead)} stopped {when}; its error is printed above. "
            "If this runs from a script, put its entry point under `if __name__ == \"__main__\":`; rerun to "
            "resume from the last checkpoint, or set vision.workers: 1 (train-vision --workers 1)")


def _worker_main(rank: int, world: int, init_file: str, threads: int, model: VisionModel, opt_states: list[dict],
                 source: torch.Tensor, targets: torch.Tensor | None, rng_state: dict, noise_state: torch.Tensor,
                 start: int, batch_size: int, n: int, device: str, amp_dtype: Any, log_every: int,
                 checkpoint_every: int, steps: int) -> None:
    """Rank ``rank`` of a data-parallel :func:`train_vision` (the entry point of a spawned worker)."""
    import torch.distributed as dist

    torch.set_num_threads(threads)
    _keep_freed_memory()
    parallel.init(rank, world, init_file)
    try:
        optimizers = model.configure_optimizers()
        for opt, state in zip(optimizers, opt_states):
            opt.load_state_dict(state)
        parallel.average_gradients_before_step(optimizers, world)
        rng = np.random.default_rng()
        rng.bit_generator.state = rng_state
        torch.set_rng_state(noise_state)
        model.train()
        dev = torch.device(device)
        autocast = torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        _Loop(model, optimizers, source, targets, rng, n, batch_size, dev, autocast, log_every, checkpoint_every,
              steps).run(start, rank=rank, world=world)
        dist.barrier()  # rank 0 leaves the group only after every rank is done with it
    finally:
        dist.destroy_process_group()
    # Leave without the interpreter's finalisation: tearing down gloo's threads there aborts now and
    # then ("terminate called without an active exception", exit -6) after a complete, correct run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# -- data and model ------------------------------------------------------------------------------
def _unpack_data(data: Any) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """``(frames (N, H, W, C) uint8, factors (N, F) or None, factor names or None)``."""
    factors = names = None
    if hasattr(data, "frames"):
        frames = data.frames
        factors = getattr(data, "factors", None)
        names = list(getattr(data, "factor_names", []) or []) or None
    else:
        frames = data
    if not isinstance(frames, np.ndarray):
        raise TypeError(
            f"train_vision data must be a (N, H, W, C) uint8 array or an object with .frames "
            f"(envs.frames.FrameDataset), got {type(data).__name__}"
        )
    if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[1] != frames.shape[2]:
        raise ValueError(
            f"train_vision expects square uint8 frames (N, H, W, C), got {frames.shape} {frames.dtype}; "
            "collect frames with `darla collect` or convert with (x * 255).astype(np.uint8)"
        )
    if frames.shape[0] < 1:
        raise ValueError("train_vision got an empty frame array")
    if factors is not None:
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[0] != frames.shape[0] or (names and len(names) != factors.shape[1]):
            raise ValueError(
                f"factors {factors.shape} do not match frames {frames.shape} and names {names}; "
                "expected (N, F) with F names"
            )
    return frames, factors, names


def resolve_precision(precision: str, device: torch.device | str, model: VisionModel | None = None,
                      threads: int = 1) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (``None`` = plain fp32).

    ``auto`` picks bf16 only where it is both fast and checked: the model declares
    ``autocast_safe`` (its losses keep reductions and KL in fp32 and its loss curves were compared
    with fp32's), and the device has native bf16: a CUDA GPU with ``torch.cuda.is_bf16_supported()``,
    or a CPU with AVX512-BF16 or AMX (oneDNN bf16 kernels; without them bf16 is emulated and slower)
    trained by processes of one torch thread each (bf16 on several threads of one process stalls whenever
    other processes share the cores: benchmarks/vision.py; data-parallel ``workers`` give one thread each).

    :param precision: ``auto``, ``fp32`` or ``bf16``.
    :param device: the training device.
    :param model: the model to train (``auto`` only); ``None`` skips the model check.
    :param threads: torch threads of each training process (``auto`` on a CPU only).
    :raises ValueError: an unknown ``precision``, or ``bf16`` on a device that has no bf16 autocast.
    """
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"precision 'bf16' asked for, but {device} has no bfloat16 support; use precision fp32")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"precision 'bf16' supports cpu and cuda devices, got {device}; use precision fp32")
        if model is not None and not getattr(model, "autocast_safe", False):
            log.warning("vision: %s is not declared autocast_safe; training it in bf16 as asked, but its "
                        "loss curves were not compared with fp32's", model.name)
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if model is not None and not getattr(model, "autocast_safe", False):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        if not cpu_has_fast_bf16():
            return None
        if threads > 1:
            log.info("vision: precision auto trains %s in fp32: bf16 on several torch threads of one process "
                     "stalls whenever other processes share the cores (benchmarks/vision.py); it is used with one "
                     "thread per process (workers)", getattr(model, "name", "the model"))
            return None
        return torch.bfloat16
    return None


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN with AVX512-BF16 or AMX-BF16)."""
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
        if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
            return False
        with open("/proc/cpuinfo") as f:  # the ISA flag itself; mkldnn's check above also accepts emulation
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except (OSError, AttributeError, RuntimeError):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


_MALLOC_TUNED = False


def _keep_freed_memory() -> None:
    """Tell glibc's malloc to keep freed memory for reuse instead of returning it to the kernel.

    A training step allocates and frees the same large activation buffers every step; with glibc's
    defaults many of them are ``mmap``-ed and ``munmap``-ed (or trimmed off the heap) each time, so the
    next step page-faults them in again: ~30k minor faults per β-VAE_DAE step and a large share of the
    system time (measured, see benchmarks/vision.py). Process-wide and idempotent; a no-op off glibc.
    The cost is that the heap keeps its peak size until the process exits.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        return
    if not ok:
        log.debug("vision: mallopt refused; freed memory goes back to the kernel as usual")


def _frame_source(frames: np.ndarray) -> torch.Tensor | np.ndarray:
    """The frames minibatches are gathered from: a uint8 RAM tensor if they fit, else the array itself.

    A memory map is read once here (a 20k-frame 64×64 dataset: 246 MB, well under
    :data:`IN_MEMORY_MAX_BYTES`); an in-RAM writable array is shared, not copied.
    """
    if frames.nbytes > IN_MEMORY_MAX_BYTES:
        log.info("vision: %d frames (%.1f GB) exceed IN_MEMORY_MAX_BYTES; gathering minibatches from the "
                 "memory map", len(frames), frames.nbytes / 1e9)
        return frames
    if isinstance(frames, np.memmap) or not frames.flags.writeable or not frames.flags.c_contiguous:
        frames = np.array(frames, order="C")  # one sequential read, instead of a fancy-indexed copy per step
    return torch.from_numpy(frames)


def _batch(source: torch.Tensor | np.ndarray, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    """Minibatch ``idx`` as ``(B, C, H, W)`` float in [0, 1], the values of :func:`vision.to_tensor`.

    The result is channels-last in memory (the permute of an NHWC tensor), which CPU convolutions
    prefer, without the extra copy ``.contiguous()`` + ``.to(memory_format=...)`` would make.
    """
    if isinstance(source, torch.Tensor):
        u8 = source.index_select(0, torch.from_numpy(idx))
    else:
        u8 = torch.from_numpy(np.ascontiguousarray(source[idx]))
    return u8.to(device, non_blocking=True).float().div_(255.0).permute(0, 3, 1, 2)


def _build_model(
    model_or_name: str | VisionModel, config: dict[str, Any] | None, size: int, channels: int, lr: float | None,
    dataset_size: int,
) -> VisionModel:
    if isinstance(model_or_name, VisionModel):
        if config:
            raise ValueError("config overrides apply to a model name; a built model already has its config")
        model = model_or_name
    elif isinstance(model_or_name, str):
        cfg = dict(config or {})
        for key, value in (("image_size", size), ("channels", channels)):
            if key in cfg and cfg[key] != value:
                raise ValueError(f"config {key}={cfg[key]} does not match the data's frames ({key} {value})")
            cfg[key] = value
        if lr is not None:
            cfg["lr"] = lr
        # β-TCVAE's minibatch estimators of q(z) need N, the number of training images (Chen 2018, §C.1).
        if "dataset_size" not in cfg and any(f.name == "dataset_size" for f in fields(model_class(model_or_name).config_cls)):
            cfg["dataset_size"] = dataset_size
        model = make(model_or_name, **cfg)
    else:
        raise TypeError(f"model_or_name must be a registered model name or a VisionModel, got {model_or_name!r}")
    c = model.config
    if (c.image_size, c.channels) != (size, channels):
        raise ValueError(
            f"model '{model.name}' is built for {c.channels}×{c.image_size}² images, the data has "
            f"{channels}×{size}²; build it with image_size={size}, channels={channels}"
        )
    if lr is not None:
        c.lr = float(lr)
    return model


def _pretrain_dae(model: VisionModel, data: Any, out_dir: Path, dae_steps: int | None, batch_size: int,
                  lr: float | None, seed: int, device: torch.device, progress: bool, precision: str,
                  workers: int | str = 1) -> Path:
    """β-VAE_DAE's J: train (or reuse) a ``dae`` on the same frames in ``out_dir/dae``."""
    c = model.config
    steps = DEFAULT_DAE_STEPS if dae_steps is None else dae_steps
    log.info("vision: pre-training the DAE for %s (%d steps) in %s", model.name, steps, out_dir / DAE_DIR)
    return train_vision(
        "dae", data, out_dir / DAE_DIR, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device,
        progress=progress, config={"latents": c.dae_bottleneck}, probe=False, precision=precision, workers=workers,
    )


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


def _run_signature(model: VisionModel, batch_size: int, seed: int, shape: tuple[int, ...]) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (steps may grow)."""
    return {"model": model.name, "config": _jsonable(config_dict(model)), "batch_size": batch_size,
            "seed": seed, "data_shape": list(shape)}


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _finished_run(final_dir: Path, signature: dict[str, Any], steps: int) -> Path | None:
    if not (final_dir / CONFIG).exists():
        return None
    try:
        train = read_meta(final_dir).get("extra", {}).get("train", {})
    except CheckpointError:
        return None
    same = {k: train.get(k) for k in signature} == signature and train.get("steps") == steps
    return final_dir if same else None


# -- checkpoints ---------------------------------------------------------------------------------
def _write_checkpoint(ckpt_root: Path, model: VisionModel, optimizers: list[torch.optim.Optimizer],
                      rng: np.random.Generator, signature: dict[str, Any], step: int,
                      extra_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``ckpt/step_XXXXXXX`` completely, then point ``latest.json`` at it, then drop older ones.

    The step is written into a hidden temporary directory; every file in it and the directory are
    fsynced, it is renamed into place and the parent fsynced, and only then is ``latest.json``
    replaced. The previous checkpoint is kept (:data:`KEEP_CHECKPOINTS`), so a crash or a damaged
    newest checkpoint always leaves a good one to resume from.
    """
    ckpt_root.mkdir(parents=True, exist_ok=True)
    step_dir = ckpt_root / f"step_{step:07d}"
    tmp_dir = ckpt_root / f".{step_dir.name}.tmp"
    if tmp_dir.exists():  # a write killed half-way
        shutil.rmtree(tmp_dir)
    save(model, tmp_dir / MODEL_DIR)
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state(), **(extra_tensors or {})}
    groups = []
    for i, opt in enumerate(optimizers):
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, pstate in sd["state"].items():
            for key, value in pstate.items():
                if torch.is_tensor(value):
                    tensors[f"opt{i}.{pid}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(pid), {})[key] = value
        groups.append({"param_groups": sd["param_groups"], "scalars": scalars})
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, str(tmp_dir / "optim.safetensors"))
    state = {"step": step, "signature": signature, "optimizers": groups, "numpy_rng": rng.bit_generator.state}
    atomic_write_bytes(tmp_dir / "state.json", json.dumps(state, default=_json_default).encode())
    for path in (*sorted((tmp_dir / MODEL_DIR).iterdir()), tmp_dir / "optim.safetensors"):
        _fsync(path)  # vision.save renames its weights without an fsync
    _fsync(tmp_dir / MODEL_DIR)
    _fsync(tmp_dir)
    if step_dir.exists():  # a checkpoint of the same step that latest.json may not point to
        shutil.rmtree(step_dir)
    os.replace(tmp_dir, step_dir)
    _fsync(ckpt_root)
    atomic_write_bytes(ckpt_root / LATEST, json.dumps({"step": step, "dir": step_dir.name}).encode())
    _fsync(ckpt_root)
    for old in _step_dirs(ckpt_root)[KEEP_CHECKPOINTS:]:
        shutil.rmtree(old, ignore_errors=True)
    return step_dir


def _fsync(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes the renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _step_dirs(ckpt_root: Path) -> list[Path]:
    """The ``step_XXXXXXX`` directories under ``ckpt_root``, newest step first."""
    dirs = []
    for d in ckpt_root.glob("step_*"):
        suffix = d.name[len("step_"):]
        if d.is_dir() and suffix.isdigit():
            dirs.append((int(suffix), d))
    return [d for _, d in sorted(dirs, reverse=True)]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint's JSON")


class _DamagedCheckpoint(Exception):
    """One checkpoint cannot be read; the message names the file and why."""


def _resume(ckpt_root: Path, model: VisionModel, optimizers: list[torch.optim.Optimizer],
            rng: np.random.Generator, signature: dict[str, Any], device: torch.device,
            rank_rng: dict[str, torch.Tensor] | None = None) -> int:
    """Restore the newest good checkpoint under ``ckpt_root``; return its step (0 if none).

    Tries the directory ``latest.json`` names, then the other ``step_*`` directories newest first. A
    damaged one (missing or truncated file, bad JSON) is skipped with a warning naming the file; if
    none is good, training restarts from step 0 with a warning. A good checkpoint of a *different*
    run is an error, not damage.
    """
    if not ckpt_root.is_dir():
        return 0
    candidates = _step_dirs(ckpt_root)
    latest = ckpt_root / LATEST
    if latest.exists():
        try:
            named = ckpt_root / str(json.loads(latest.read_text())["dir"])
            candidates = [named] + [d for d in candidates if d != named]
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("vision: %s is damaged (%s); looking for checkpoints in %s", latest, e, ckpt_root)
    elif not candidates:
        return 0
    for step_dir in candidates:
        try:
            state, tensors, trained = _read_checkpoint(step_dir, signature, device)
        except _DamagedCheckpoint as e:
            log.warning("vision: checkpoint %s is damaged: %s; trying the previous one", step_dir, e)
            continue
        _restore(step_dir, state, tensors, trained, model, optimizers, rng, device)
        if rank_rng is not None:  # the noise streams of a data-parallel run's other ranks
            rank_rng.update({k: v for k, v in tensors.items() if k.startswith("rng.torch.rank")})
        log.info("vision: resuming %s from step %d (%s)", model.name, state["step"], step_dir)
        return int(state["step"])
    log.warning("vision: no readable checkpoint in %s; training %s from scratch", ckpt_root, model.name)
    return 0


def _read_checkpoint(step_dir: Path, signature: dict[str, Any], device: torch.device
                     ) -> tuple[dict[str, Any], dict[str, torch.Tensor], VisionModel]:
    """Read and check every file of one checkpoint before anything is restored from it."""
    state_path, optim_path = step_dir / "state.json", step_dir / "optim.safetensors"
    try:
        state = json.loads(state_path.read_text())
        missing = {"step", "signature", "optimizers", "numpy_rng"} - set(state)
        if missing:
            raise KeyError(f"no {', '.join(sorted(missing))}")
        int(state["step"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise _DamagedCheckpoint(f"{state_path} is unreadable ({type(e).__name__}: {e})") from None
    if _jsonable(state["signature"]) != _jsonable(signature):
        diff = sorted(k for k in set(signature) | set(state["signature"])
                      if state["signature"].get(k) != signature.get(k))
        raise ValueError(
            f"{step_dir.parent} holds a checkpoint of a different run (differs in {', '.join(diff)}); "
            "use a fresh out_dir, or delete it to start over"
        )
    try:
        tensors = load_file(str(optim_path))
    except (OSError, SafetensorError) as e:
        raise _DamagedCheckpoint(f"{optim_path} is unreadable ({e})") from None
    if "rng.torch" not in tensors:
        raise _DamagedCheckpoint(f"{optim_path} lacks the torch RNG state")
    try:
        trained = load(step_dir / MODEL_DIR, device=device)
    except CheckpointError as e:
        raise _DamagedCheckpoint(str(e)) from None
    return state, tensors, trained


def _restore(step_dir: Path, state: dict[str, Any], tensors: dict[str, torch.Tensor], trained: VisionModel,
             model: VisionModel, optimizers: list[torch.optim.Optimizer], rng: np.random.Generator,
             device: torch.device) -> None:
    if len(state["optimizers"]) != len(optimizers):
        raise CheckpointError(f"{step_dir}: {len(state['optimizers'])} optimiser states for {len(optimizers)} optimisers")
    model.load_state_dict(trained.state_dict())
    for i, (opt, saved) in enumerate(zip(optimizers, state["optimizers"])):
        per_param: dict[int, dict[str, Any]] = {}
        prefix = f"opt{i}."
        for name, value in tensors.items():
            if name.startswith(prefix):
                pid, key = name[len(prefix):].split(".", 1)
                per_param.setdefault(int(pid), {})[key] = value.to(device)
        for pid, scalars in saved["scalars"].items():
            per_param.setdefault(int(pid), {}).update(scalars)
        opt.load_state_dict({"state": per_param, "param_groups": saved["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    rng.bit_generator.state = state["numpy_rng"]


def _current_lr(optimizers: list[torch.optim.Optimizer]) -> float:
    return float(optimizers[0].param_groups[0]["lr"])


# -- logging -------------------------------------------------------------------------------------
def _summary_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but logging must never stop training
        log.warning("tensorboard is not installed; training without TensorBoard logs")
        return None
    return SummaryWriter(str(path))


def reconstruct(model: VisionModel, x: torch.Tensor) -> torch.Tensor:
    """``decode(features(x))``: the deterministic reconstruction ``(B, C, H, W)`` in [0, 1]."""
    return model.decode(model.features(x))


@torch.no_grad()
def _log_scalars(writer, model: VisionModel, x: torch.Tensor, means: dict[str, float], step: int,
                 images: bool) -> None:
    if writer is None:
        return
    for key, value in means.items():
        writer.add_scalar(f"loss/{key}", value, step)
    for key, vec in model.extra_logs(x).items():
        vec = vec.detach().float().cpu().flatten()
        if vec.numel() == 1:
            writer.add_scalar(key, float(vec), step)
            continue
        for j, v in enumerate(vec.tolist()):
            writer.add_scalar(f"{key}/{j:02d}", v, step)
        writer.add_scalar(f"{key}/total", float(vec.sum()), step)
    if images and model.generative:
        was_training = model.training
        model.eval()
        try:
            recon = reconstruct(model, x[:8])
            writer.add_images("reconstruction", torch.cat([x[:8], recon]).clamp(0, 1).cpu(), step)
        except NotImplementedError:
            pass
        finally:
            model.train(was_training)


# -- probe ---------------------------------------------------------------------------------------
@torch.no_grad()
def encode_frames(model: VisionModel, frames: np.ndarray, device: torch.device | str = "cpu",
                  batch_size: int = 256) -> np.ndarray:
    """``features`` of ``(N, H, W, C)`` uint8 frames in eval mode → ``(N, feature_dim)`` float32."""
    was_training = model.training
    model.eval()
    out = [model.features(to_tensor(np.asarray(frames[i:i + batch_size]), device)).float().cpu().numpy()
           for i in range(0, len(frames), batch_size)]
    model.train(was_training)
    return np.concatenate(out, axis=0)


def _probe_and_report(model: VisionModel, frames: np.ndarray, factors: np.ndarray, names: list[str],
                      out_dir: Path, seed: int, device: torch.device, task_factors: Sequence[str] | None,
                      rows: dict[str, np.ndarray] | None = None) -> dict:
    from vision.probe import probe_factors, probe_report, task_factors_recoverable

    n = len(frames)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(n, PROBE_MAX_FRAMES), replace=False))
    feats = encode_frames(model, frames[idx], device)
    result = probe_factors(feats, np.asarray(factors)[idx], names, seed=seed,
                           rows={k: np.asarray(v)[idx] for k, v in rows.items()} if rows else None)
    ok, message = task_factors_recoverable(result, required=task_factors)
    result["task_factors_ok"] = ok
    result["task_factors_message"] = message
    table = probe_report(result, required=task_factors)
    atomic_write_bytes(out_dir / "probe.json", json.dumps(result, indent=2, default=_json_default).encode())
    atomic_write_bytes(out_dir / "probe.md", (table + "\n").encode())
    if ok:
        log.info("vision probe: %s", message)
    else:
        log.warning("vision probe (%s): %s — a policy on these features may not learn the task; "
                    "try a lower beta, more latents, more steps or taller objects", model.name, message)
    return {"table": table, "task_factors_ok": ok, "message": message}
