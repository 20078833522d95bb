"""Data-parallel stage-1 training on one machine: ``W`` processes with one torch thread each.

On a 2-core CPU, two single-threaded processes that each take half of every minibatch and average
their gradients before each optimiser step train β-VAE_DAE faster than one process with two threads,
and much faster under bf16, whose oneDNN kernels scale badly across threads (``benchmarks/vision.py``,
``data_parallel`` rows). One barrier per step (the gradient all-reduce) replaces the thousands of
OpenMP fork/joins per step of a two-thread process, so a busy neighbour slows training in proportion
instead of stalling it.

How a step stays the step of one process (:func:`vision.train.train_vision` drives this):

* every rank draws the full minibatch from the same numpy stream (same seed, same state) and takes
  the rows ``idx[rank::W]``;
* a pre-step hook on every optimiser all-reduces the gradients of its parameters (one flat buffer,
  gloo) and divides by ``W``: for a loss that is a batch *mean* of per-sample terms the average of the
  ranks' gradients is the gradient of the whole batch. Only models that declare
  :attr:`vision.base.VisionModel.data_parallel_safe` train this way (batch-statistic losses such as
  β-TCVAE's minibatch estimators or FactorVAE's permutations would change meaning);
* each rank has its own noise stream (ε of the reparameterisation, the DAE's masks); the ranks' torch
  RNG states are gathered into each checkpoint, so a resumed run continues every stream exactly.

Workers are started with ``spawn`` (never ``fork``: torch's OpenMP pool and any OpenGL context of the
parent must not be copied), so a script that trains with ``workers > 1`` needs an
``if __name__ == "__main__":`` guard, like ``SubprocVecEnv``.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

#: Fewest frames each rank's share of a minibatch may hold under ``workers: auto``.
MIN_ROWS_PER_WORKER = 16
MAX_AUTO_WORKERS = 8
#: How long a rank waits in a collective for the others (a dead worker fails the run after this).
TIMEOUT_S = 300


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str, device: torch.device | str, batch_size: int, model: Any = None) -> int:
    """The number of training processes for ``workers`` (``"auto"`` or a positive int).

    ``auto``: on a CPU, one per core, at most :data:`MAX_AUTO_WORKERS` and at most one per
    :data:`MIN_ROWS_PER_WORKER` frames of the minibatch, the largest such count that divides
    ``batch_size``; 1 on a GPU (one process drives it) or for a model that is not
    ``data_parallel_safe``.

    :raises ValueError: ``workers`` is neither ``auto`` nor a positive integer, or does not divide
        ``batch_size``, or is > 1 on a non-CPU device.
    """
    device = torch.device(device)
    safe = model is None or bool(getattr(model, "data_parallel_safe", False))
    if workers == "auto":
        if device.type != "cpu" or not safe:
            return 1
        limit = max(1, min(available_cores(), MAX_AUTO_WORKERS, batch_size // MIN_ROWS_PER_WORKER))
        return next(w for w in range(limit, 0, -1) if batch_size % w == 0)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"vision workers must be 'auto' or a positive integer, got {workers!r}")
    if workers == 1:
        return 1
    if device.type != "cpu":
        raise ValueError(f"vision workers={workers} runs data-parallel CPU processes; on {device} use workers 1 or auto")
    if batch_size % workers:
        raise ValueError(f"vision workers={workers} must divide batch_size={batch_size} (each takes an equal share); "
                         f"use a divisor of {batch_size} or workers auto")
    if not safe:
        log.warning("vision: %s is not data_parallel_safe (its loss is not a batch mean of per-sample terms); "
                    "training it in one process", model.name)
        return 1
    return workers


def init(rank: int, world: int, init_file: str) -> None:
    """Join the gloo process group of ``world`` ranks that rendezvous through ``init_file``."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=TIMEOUT_S))


def average_gradients_before_step(optimizers: Sequence[torch.optim.Optimizer], world: int) -> list[Any]:
    """Register a pre-step hook on each optimiser that replaces every gradient by its mean over ranks."""

    def hook(opt: torch.optim.Optimizer, *_: Any) -> None:
        params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            if p.grad is not None:
                p.grad.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    return [opt.register_step_pre_hook(hook) for opt in optimizers]


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """``values`` averaged over the ranks (every rank calls this with the same keys)."""
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def gather_rng_states() -> list[torch.Tensor] | None:
    """Every rank's torch CPU RNG state, on rank 0 (``None`` elsewhere)."""
    state = torch.get_rng_state()
    if dist.get_rank() == 0:
        out = [torch.empty_like(state) for _ in range(dist.get_world_size())]
        dist.gather(state, out, dst=0)
        return out
    dist.gather(state, None, dst=0)
    return None


def noise_seed(seed: int, rank: int) -> int:
    """The torch seed of rank ``rank``'s noise stream in a fresh run (rank 0: ``seed + 1`` as in one process)."""
    return seed + 1 + 1_000_003 * rank
