"""Train each generative zoo model briefly on collected frames and draw its latent traversal → ``docs/zoo``.

For every model this runs the public CLI exactly as a user would::

    darla -q train-vision --model NAME --data DATA --out WORK/NAME --steps N [--dae-steps M]
    darla -q traverse WORK/NAME/model --data DATA --out OUT/NAME_traversal.png --max-latents 8

so ``OUT/<model>_traversal.png`` and its latent→factor table ``OUT/<model>_traversal.md`` come from the
same code as ``darla traverse`` (``darla.report.traversal_with_latent_table``). Wall-clock times go to
``OUT/timings.json``. Training outputs stay in ``--work`` (keep it outside git).

    python scripts/make_zoo_traversals.py --data DIR --work runs/zoo --out docs/zoo --steps 600 \
        [--models infogan,dc_ign,disbm,icf,scan] [--dae-steps 300]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

ZOO = ("infogan", "dc_ign", "disbm", "icf", "scan")


def darla_cmd() -> list[str]:
    """The ``darla`` entry point of this interpreter's environment (falls back to ``python -m darla.cli``)."""
    exe = Path(sys.executable).with_name("darla")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "darla.cli"]


def run(cmd: list[str]) -> float:
    """Run ``cmd``, raising with its output on failure; return wall-clock seconds."""
    logger.info("$ %s", " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return dt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a directory made by `darla collect`")
    p.add_argument("--work", type=Path, default=Path("runs/zoo"), help="training outputs (outside git)")
    p.add_argument("--out", type=Path, default=Path("docs/zoo"))
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--dae-steps", type=int, default=None,
                   help="DAE iterations of scan's beta_vae_dae visual model (default: half of --steps)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-latents", type=int, default=8)
    p.add_argument("--models", default=",".join(ZOO), help=f"comma-separated subset of {','.join(ZOO)}")
    p.add_argument("--keep-going", action="store_true", help="record a failing model and continue")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import vision
    from vision.base import model_class

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in models:
        if not model_class(name).generative:
            raise ValueError(f"model '{name}' is not generative (no decoder to traverse); choose from "
                             f"{[m for m in ZOO if model_class(m).generative]}")
    del vision
    dae_steps = args.dae_steps if args.dae_steps is not None else max(args.steps // 2, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    timings_path = args.out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    darla = darla_cmd()
    for name in models:
        work = args.work / name
        if work.exists():
            shutil.rmtree(work)  # a fresh run each time: train-vision would otherwise resume
        train = [*darla, "-q", "train-vision", "--model", name, "--data", str(args.data), "--out", str(work),
                 "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--dae-steps", str(dae_steps)]
        png = args.out / f"{name}_traversal.png"
        traverse = [*darla, "-q", "traverse", str(work / "model"), "--data", str(args.data), "--out", str(png),
                    "--max-latents", str(args.max_latents)]
        try:
            t_train = run(train)
            t_trav = run(traverse)
        except RuntimeError as err:
            if not args.keep_going:
                raise
            logger.error("%s failed: %s", name, err)
            timings[name] = {"error": str(err)[-2000:]}
            continue
        timings[name] = {"steps": args.steps, "dae_steps": dae_steps if name == "scan" else None,
                         "batch_size": args.batch_size, "train_seconds": round(t_train, 1),
                         "traverse_seconds": round(t_trav, 1), "train_cmd": " ".join(train[len(darla):]),
                         "traverse_cmd": " ".join(traverse[len(darla):])}
        logger.info("%s: train %.0f s, traverse %.0f s → %s", name, t_train, t_trav, png)
        tmp = timings_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(timings, indent=2) + "\n")
        os.replace(tmp, timings_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
