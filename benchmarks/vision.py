"""Throughput of ``vision.train.train_vision``: β-VAE_DAE lever by lever, and every default zoo model.

For β-VAE_DAE (64×64×3, batch 64) side by side, each in a fresh process (glibc's malloc setting is
process-wide) and in alternating order over the rounds:

* ``old``: the step loop of ``train_vision`` before the speed work (commit a2503a7), reproduced:
  minibatches fancy-indexed from the memory-mapped frames, ``to_tensor`` + ``.contiguous(channels_last)``,
  J(x) recomputed every step, fp32, glibc's default malloc; no logging or checkpoints;
* ``old+<lever>``: the same with one lever switched on (``malloc``: keep freed memory; ``ram``: frames
  in a RAM tensor, batches by ``index_select``; ``cache``: J(x) cached; ``bf16``: autocast), and
  ``old-channels_last`` with the one lever the old loop had switched off;
* ``train_vision``: the whole optimised call as stage 1 makes it (frames memory-mapped, ``darla run``'s
  ``precision: auto`` and ``workers: auto``; ``train_vision-1proc-fp32`` / ``-1proc-bf16`` / ``-2proc-fp32``
  pin one process with every torch thread, or two data-parallel processes; copying the frames to RAM, the J(x) cache, TensorBoard logs every 50 steps and
  the checkpoint + final save all inside the timing);
* ``bare``: a hand-written PyTorch loop of the same model (numpy frames, ``model.loss``, Adam).

Then ``old`` against ``train_vision`` for each model of the default zoo. The loop variants are timed
after :data:`WARMUP` steps. A ``train_vision`` variant makes three calls in its process: one of
:data:`WARMUP` steps that pays the imports, then a short (:data:`WARMUP` steps) and a long
(``WARMUP + steps``) call; its images/s is ``steps × batch`` over the difference of the two, so the
per-call start-up that both pay (worker processes, frames to RAM, the J(x) cache, checkpoint and save)
cancels, as it is amortised in a real run of thousands of steps. That start-up is recorded as
``startup_seconds``, and the long call's whole time as ``call_seconds``. (Before this, the single timed
call of 60 steps put the start-up inside: 728 images/s for β-VAE_DAE's default on the machine where the
difference measured 1,280.) The minflt and sys columns of these variants are differences too, and near
zero noise can make them slightly negative.

    python benchmarks/vision.py [--steps 100] [--rounds 2] [--frames 2048]

Writes ``benchmarks/results/vision.json`` (each variant's best round: other processes only ever add
time; the machine may be shared, so the ratios measured side by side are the robust numbers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path and its name would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vision  # noqa: E402
from darla.machine import describe  # noqa: E402
from vision.checkpoint import atomic_write_bytes  # noqa: E402

RESULT = Path(__file__).parent / "results" / "vision.json"
ZOO = ("ae", "dae", "vae", "beta_vae", "beta_vae_dae", "beta_tcvae", "factor_vae", "cci_vae")
#: ``train_vision`` calls: (precision, workers). ``train_vision`` = stage 1's defaults (``darla run``: precision
#: auto, workers auto: one single-threaded process per core, bf16 where the model is checked for it);
#: the others pin one setting: one process with all torch threads (fp32 = the default before
#: data-parallel training), or two data-parallel processes in fp32.
TRAIN_VARIANTS = {"train_vision": ("auto", "auto"), "train_vision-1proc-fp32": ("fp32", 1),
                  "train_vision-1proc-bf16": ("bf16", 1), "train_vision-2proc-fp32": ("fp32", 2)}
LEVERS = ("old", "old+malloc", "old+ram", "old+cache", "old+bf16", "old-channels_last", *TRAIN_VARIANTS, "bare")
WARMUP = 5


def synthetic_frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``(n, size, size, 3)`` uint8: a tinted floor and one coloured square per frame."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n, size, size, 3), dtype=np.uint8)
    frames[:] = rng.integers(40, 200, size=(n, 1, 1, 3), dtype=np.uint8)
    side = size // 4
    for i in range(n):
        y, x = rng.integers(0, size - side, 2)
        frames[i, y : y + side, x : x + side] = rng.integers(0, 256, 3, dtype=np.uint8)
    return frames


def build(name: str, size: int) -> vision.VisionModel:
    """The model at its defaults; β-VAE_DAE gets an (untrained) DAE: speed does not depend on its weights."""
    model = vision.make(name, image_size=size, **({"dataset_size": 2048} if name == "beta_tcvae" else {}))
    if name == "beta_vae_dae":
        model.set_dae(vision.make("dae", image_size=size, latents=model.config.dae_bottleneck))
    return model


def _usage() -> tuple[float, int, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_minflt, r.ru_stime


def worker(kind: str, name: str, frames_path: str, steps: int, batch_size: int, seed: int) -> dict:
    """One measurement in this (fresh) process: seconds, minor page faults and system time of ``steps``."""
    import vision.train as vt

    frames = np.load(frames_path, mmap_mode="r", allow_pickle=False)
    n, size = len(frames), frames.shape[1]
    torch.manual_seed(seed)
    model = build(name, size)
    if kind in TRAIN_VARIANTS:
        precision, workers = TRAIN_VARIANTS[kind]
        kw = dict(batch_size=batch_size, seed=seed, progress=False, probe=False, log_every=50,
                  precision=precision, workers=workers)
        with tempfile.TemporaryDirectory() as tmp:  # a short first call: imports, oneDNN kernels, worker start
            vt.train_vision(build(name, size), frames, tmp, steps=WARMUP, **kw)
        usage = []
        for n_steps, m in ((WARMUP, build(name, size)), (WARMUP + steps, model)):
            with tempfile.TemporaryDirectory() as tmp:
                t0, f0, s0 = _usage()
                final = vt.train_vision(m, frames, tmp, steps=n_steps, **kw)
                t1, f1, s1 = _usage()
                train = vision.checkpoint.read_meta(final)["extra"]["train"]
            usage.append((t1 - t0, f1 - f0, s1 - s0))
        (ts, fs, ss), (tl, fl, sl) = usage
        # The difference of a long and a short call is the cost of `steps` updates without the per-call
        # start-up (worker processes, frames to RAM, the J(x) cache, the final save), which both pay.
        # minflt/sys of this process only (rank 0).
        return {"seconds": tl - ts, "minflt": fl - fs, "sys_s": sl - ss, "call_seconds": tl,
                "startup_seconds": max(0.0, ts - WARMUP * (tl - ts) / steps),
                "precision": train.get("precision", "fp32"), "workers": train.get("workers", 1)}
    model.train()
    opts = model.configure_optimizers()
    rng = np.random.default_rng(seed)
    if kind == "bare":
        frames = np.array(frames)
        opt = opts[0]

        def step() -> None:
            idx = rng.integers(0, n, size=batch_size)
            x = torch.from_numpy(frames[idx]).permute(0, 3, 1, 2).float().div_(255.0)
            loss = model.loss(x)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        lever = kind.split("+", 1)[1] if "+" in kind else ""
        if lever == "malloc":
            vt._keep_freed_memory()
        source = vt._frame_source(frames) if lever == "ram" else frames
        targets = model.target_cache(frames) if lever == "cache" else None
        channels_last = kind != "old-channels_last"
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if lever == "bf16" else contextlib.nullcontext()

        def step() -> None:
            idx = np.sort(rng.integers(0, n, size=batch_size))
            if lever == "ram":
                x = vt._batch(source, idx, torch.device("cpu"))
            else:  # the loop of a2503a7
                x = vision.to_tensor(np.asarray(source[idx]))
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
            with amp:
                if targets is None:
                    model.train_step(x, opts)
                else:
                    model.train_step(x, opts, target=targets.index_select(0, torch.from_numpy(idx)))

    for _ in range(WARMUP):
        step()
    t0, f0, s0 = _usage()
    for _ in range(steps):
        step()
    t1, f1, s1 = _usage()
    return {"seconds": t1 - t0, "minflt": f1 - f0, "sys_s": s1 - s0}


def measure(kind: str, name: str, frames_path: str, steps: int, batch_size: int, seed: int) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--model", name, "--frames-file", frames_path,
         "--steps", str(steps), "--batch-size", str(batch_size), "--seed", str(seed)],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict], steps: int, batch_size: int) -> dict:
    best = min(runs, key=lambda r: r["seconds"])
    out = {"images_per_s": round(steps * batch_size / best["seconds"], 1),
           "rounds_images_per_s": [round(steps * batch_size / r["seconds"], 1) for r in runs],
           "minflt_per_step": round(best["minflt"] / steps),
           "sys_ms_per_step": round(1000 * best["sys_s"] / steps, 2)}
    if "startup_seconds" in best:
        out["startup_seconds"] = round(best["startup_seconds"], 2)
        out["call_images_per_s"] = round((WARMUP + steps) * batch_size / best["call_seconds"], 1)
    for key in ("precision", "workers"):
        if key in best:
            out[key] = best[key]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="timed updates per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=2048)
    parser.add_argument("--models", nargs="+", default=list(ZOO))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--frames-file", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.frames_file, args.steps, args.batch_size, args.seed)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        frames_path = str(Path(tmp) / "frames.npy")
        np.save(frames_path, synthetic_frames(args.frames, args.size))
        plan = [(kind, "beta_vae_dae") for kind in LEVERS]
        plan += [(kind, m) for m in args.models if m != "beta_vae_dae" for kind in ("old", "train_vision")]
        runs: dict[tuple[str, str], list[dict]] = {p: [] for p in plan}
        for r in range(args.rounds):
            for kind, name in plan if r % 2 == 0 else plan[::-1]:
                res = measure(kind, name, frames_path, args.steps, args.batch_size, r)
                runs[(kind, name)].append(res)
                print(f"round {r} {name:<13} {kind:<18} {args.steps * args.batch_size / res['seconds']:8.1f} "
                      f"images/s, {res['minflt'] / args.steps:8.0f} minflt/step", flush=True)

    s = {k: summarise(v, args.steps, args.batch_size) for k, v in runs.items()}
    bvd = {kind: s[(kind, "beta_vae_dae")] for kind in LEVERS}
    old = bvd["old"]["images_per_s"]
    zoo = {}
    for m in args.models:
        o, t = s[("old", m)]["images_per_s"], s[("train_vision", m)]["images_per_s"]
        zoo[m] = {"old_images_per_s": o, "train_vision_images_per_s": t, "ratio": round(t / o, 2),
                  "precision": s[("train_vision", m)]["precision"], "workers": s[("train_vision", m)]["workers"]}
    result = {
        "image_size": args.size, "batch_size": args.batch_size, "frames": args.frames,
        "steps_per_round": args.steps, "rounds": args.rounds, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "machine": describe(),
        "beta_vae_dae": {
            "variants": bvd,
            "lever_ratio_vs_old": {k: round(v["images_per_s"] / old, 2) for k, v in bvd.items()},
            "train_vision_images_per_s": bvd["train_vision"]["images_per_s"],
            "old_images_per_s": old,
            "bare_images_per_s": bvd["bare"]["images_per_s"],
            "ratio_vs_old": round(bvd["train_vision"]["images_per_s"] / old, 2),
            "ratio_vs_bare": round(bvd["train_vision"]["images_per_s"] / bvd["bare"]["images_per_s"], 2),
            "ratio_vs_1proc_fp32": round(bvd["train_vision"]["images_per_s"]
                                         / bvd["train_vision-1proc-fp32"]["images_per_s"], 2),
        },
        "zoo": zoo,
        "estimator": "best round of each variant, each in a fresh process; rounds alternate the order",
        "goal": "beta_vae_dae train_vision >= 1000 images/s on 2 cores (>= 2.7x the old loop)",
    }
    atomic_write_bytes(RESULT, (json.dumps(result, indent=2) + "\n").encode())
    print(f"\n{'beta_vae_dae':<20}{'images/s':>10}{'vs old':>8}{'minflt/step':>13}{'sys ms/step':>13}")
    for kind, v in bvd.items():
        print(f"{kind:<20}{v['images_per_s']:>10.1f}{v['images_per_s'] / old:>8.2f}{v['minflt_per_step']:>13}"
              f"{v['sys_ms_per_step']:>13}")
    print(f"\n{'model':<14}{'old':>8}{'train_vision':>14}{'ratio':>7}")
    for m, v in zoo.items():
        print(f"{m:<14}{v['old_images_per_s']:>8.1f}{v['train_vision_images_per_s']:>14.1f}{v['ratio']:>7.2f}")
    print(f"written to {RESULT}")


if __name__ == "__main__":
    main()
