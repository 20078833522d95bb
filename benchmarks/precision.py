"""bf16 autocast against fp32: loss curves of ``train_vision`` for β-VAE_DAE and the DAE, two seeds each.

The question behind ``train_vision(precision="auto")``: does training under bf16 autocast (convolutions
and matrix products in bfloat16; loss reductions, KL, weights and Adam in fp32) learn the same as fp32?
Each (model, precision, seed) is one ``train_vision`` run on the same frames; its TensorBoard ``loss``
(mean over each ``--log-every`` window) is the curve. β-VAE_DAE runs share one fp32-trained DAE, so only
the β-VAE_DAE's own precision differs. The verdict compares the two precisions' seed means over the
last quarter of the curve with the spread between seeds of the same precision.

    python benchmarks/precision.py --data <frame dataset dir> [--steps 800] [--seeds 0 1]

Writes ``benchmarks/results/precision.json`` and ``benchmarks/results/precision.png``.
"""

from __future__ import annotations

import argparse
import json
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
from vision.train import cpu_has_fast_bf16, train_vision  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def curve(run_dir: Path) -> tuple[list[int], list[float]]:
    """(steps, loss) of a train_vision run, from its TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    events = acc.Scalars("loss/loss")
    return [e.step for e in events], [float(e.value) for e in events]


def run_model(name: str, data, steps: int, seeds: list[int], log_every: int, dae_dir: Path | None,
              work: Path) -> dict:
    out: dict = {"steps": steps, "runs": []}
    for seed in seeds:
        for precision in ("fp32", "bf16"):
            if name == "beta_vae_dae":
                torch.manual_seed(seed)
                size = data.frames.shape[1]
                model = vision.make("beta_vae_dae", image_size=size, dae_bottleneck=100)
                model.set_dae(vision.load(dae_dir))
            else:
                model = name
            run_dir = work / f"{name}-{precision}-{seed}"
            start = time.perf_counter()
            train_vision(model, data, run_dir, steps=steps, seed=seed, log_every=log_every, progress=False,
                         probe=False, precision=precision, checkpoint_every=steps)
            seconds = time.perf_counter() - start
            xs, ys = curve(run_dir)
            out["runs"].append({"precision": precision, "seed": seed, "seconds": round(seconds, 1),
                                "steps": xs, "loss": ys})
            print(f"{name} {precision} seed {seed}: final {ys[-1]:.2f} in {seconds:.0f} s", flush=True)
    tail = {}
    for precision in ("fp32", "bf16"):
        finals = [float(np.mean(r["loss"][-max(1, len(r["loss"]) // 4):])) for r in out["runs"]
                  if r["precision"] == precision]
        tail[precision] = {"per_seed": [round(f, 3) for f in finals], "mean": round(float(np.mean(finals)), 3),
                           "seed_range": round(float(np.ptp(finals)), 3)}
    gap = abs(tail["bf16"]["mean"] - tail["fp32"]["mean"])
    noise = max(tail["fp32"]["seed_range"], tail["bf16"]["seed_range"])
    out["last_quarter_loss"] = tail
    out["bf16_minus_fp32"] = round(tail["bf16"]["mean"] - tail["fp32"]["mean"], 3)
    out["seed_noise"] = round(noise, 3)
    out["within_seed_noise"] = bool(gap <= noise)
    out["seconds_ratio_fp32_over_bf16"] = round(
        sum(r["seconds"] for r in out["runs"] if r["precision"] == "fp32")
        / sum(r["seconds"] for r in out["runs"] if r["precision"] == "bf16"), 2)
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(result["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4))
    for ax, name in zip(np.atleast_1d(axes), models):
        m = result["models"][name]
        for r in m["runs"]:
            ax.plot(r["steps"], r["loss"], color="tab:blue" if r["precision"] == "fp32" else "tab:orange",
                    linestyle="-" if r["seed"] == min(x["seed"] for x in m["runs"]) else "--",
                    label=f"{r['precision']} seed {r['seed']}", linewidth=1)
        ax.set_title(f"{name}: bf16 − fp32 = {m['bf16_minus_fp32']:+.2f}, seed noise {m['seed_noise']:.2f}")
        ax.set_xlabel("step")
        ax.set_ylabel(f"training loss (mean of {result['log_every']} steps)")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a frame dataset directory (darla collect)")
    parser.add_argument("--merge", nargs="+", help="combine the models of these result files into --out")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--dae-steps", type=int, default=500, help="the fp32 DAE β-VAE_DAE runs share")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--models", nargs="+", default=["beta_vae_dae", "dae"])
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(RESULTS / "precision.json"))
    args = parser.parse_args()
    if args.merge:  # runs of several models done in parallel processes, one file each
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        result = {**parts[0], "models": {k: v for part in parts for k, v in part["models"].items()}}
        atomic_write_bytes(Path(args.out), (json.dumps(result, indent=2) + "\n").encode())
        plot(result, Path(args.out).with_suffix(".png"))
        return
    if not args.data:
        parser.error("--data is required (a `darla collect` directory)")
    if args.threads:
        torch.set_num_threads(args.threads)
    from envs.frames import FrameDataset

    data = FrameDataset(args.data)
    result = {"frames": list(data.frames.shape), "steps": args.steps, "dae_steps": args.dae_steps,
              "seeds": args.seeds, "log_every": args.log_every, "torch_threads": torch.get_num_threads(),
              "cpu_fast_bf16": cpu_has_fast_bf16(), "machine": describe(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dae_dir = None
        if "beta_vae_dae" in args.models:
            dae_dir = train_vision("dae", data, work / "dae", steps=args.dae_steps, seed=0, progress=False,
                                   probe=False, precision="fp32", config={"latents": 100})
        for name in args.models:
            result["models"][name] = run_model(name, data, args.steps, args.seeds, args.log_every, dae_dir, work)
    out = Path(args.out)
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    plot(result, out.with_suffix(".png"))
    for name, m in result["models"].items():
        print(f"{name}: bf16 - fp32 = {m['bf16_minus_fp32']:+.3f} (seed noise {m['seed_noise']:.3f}; "
              f"within: {m['within_seed_noise']}); fp32/bf16 time {m['seconds_ratio_fp32_over_bf16']}")


if __name__ == "__main__":
    main()
