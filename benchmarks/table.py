"""Render ``benchmarks/results/*.json`` as the Markdown table in README.md (between the
``<!-- benchmarks -->`` markers), so the README shows exactly what the committed JSON files hold.

    python benchmarks/table.py           # rewrite the README section
    python benchmarks/table.py --check   # exit 1 if the README is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from darla.report import replace_marked_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- benchmarks -->", "<!-- /benchmarks -->"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(result: dict) -> str:
    """The CPU a result was measured on (``darla.machine.describe``); older JSONs did not record it."""
    m = result.get("machine") or {}
    if not m.get("cpu_model"):
        return "not recorded"
    flags = [f for f in ("amx_bf16", "avx512_bf16") if f in m.get("cpu_flags", [])]
    return f"{m['cpu_model']}, {m.get('cpus', '?')} cores" + (f" ({', '.join(flags)})" if flags else "")


def table() -> str:
    rows = ["| benchmark | darla | plain alternative | ratio | goal | command | machine |",
            "|---|---|---|---:|---|---|---|"]
    c = _load("collect")
    if c:
        rows.append(f"| stage-1 collection, 64×64 | `darla collect` 2 workers: {c['collect_frames']['fps']:,.0f} frames/s "
                    f"| one SeekAvoid env in-process: {c['seekavoid_single_env']['fps']:,.0f} frames/s "
                    f"(raw miniworld OneRoom: {c['raw_miniworld_oneroom']['fps']:,.0f}) | {c['ratio']:.2f}× | ≥ 1.6× "
                    f"| `python benchmarks/collect.py` | {_machine(c)} |")
    v = _load("vision")
    if v:
        b = v["beta_vae_dae"]
        rows.append(f"| vision training, beta_vae_dae {v['image_size']}×{v['image_size']}, batch {v['batch_size']} "
                    f"| `train_vision`: {b['train_vision_images_per_s']:,.0f} images/s "
                    f"| loop before #16: {b['old_images_per_s']:,.0f} images/s; bare PyTorch loop: "
                    f"{b['bare_images_per_s']:,.0f} | {b['ratio_vs_old']:.2f}× vs old | ≥ 1,000 images/s "
                    f"| `python benchmarks/vision.py` | {_machine(v)} |")
        zoo = "; ".join(f"{m} {z['train_vision_images_per_s']:,.0f} ({z['ratio']:.2f}×)" for m, z in v["zoo"].items())
        rows.append(f"| vision training, each zoo model | images/s (vs loop before #16): {zoo} | loop before #16 "
                    f"| – | faster | `python benchmarks/vision.py` | {_machine(v)} |")
    a = _load("agents")
    if a:
        r = a["results"]
        rows.append(f"| PPO env steps/s, SeekAvoid 64×64 | latent VecEnv: {r['latent']['steps_per_s']:,.0f} "
                    f"| frozen extractor: {r['extractor']['steps_per_s']:,.0f}; pixels CnnPolicy: "
                    f"{r['pixels']['steps_per_s']:,.0f} | {a['ratios']['latent_vs_extractor']:.2f}× vs extractor "
                    f"| ≥ 2× vs extractor | `python benchmarks/agents.py` | {_machine(a)} |")
    pp = (a or {}).get("pipeline")
    if pp:
        r, q = pp["results"], pp["ratios"]
        rows.append(f"| PPO latent steps/s, the pipeline's policy stage (`darla run`) | now (default: DummyVecEnv, "
                    f"1 torch thread): {r['pipeline_dummy']['steps_per_s']:,.0f}; SubprocVecEnv: "
                    f"{r['pipeline_subproc']['steps_per_s']:,.0f} "
                    f"| before (2 threads, passive OpenMP): {r['pipeline_before']['steps_per_s']:,.0f}; "
                    f"bare benchmark setup (2 threads, spinning OpenMP): {r['bare']['steps_per_s']:,.0f} "
                    f"| {q['pipeline_dummy_vs_pipeline_before']:.2f}× vs before (subproc {q['subproc_vs_dummy']:.2f}× "
                    f"vs dummy) | > before | `python benchmarks/agents.py` (shared machine, {pp['time'][:10]}) | {_machine(a)} |")
    run = _load("run")
    if run:
        util = f", CPU {run['cpu_utilisation']:.0%} of all cores" if "cpu_utilisation" in run else ""
        goals = run.get("goals", {})
        rows.append(f"| default `darla run` (all stages, CPU) | {run['minutes']:.1f} min, peak RSS "
                    f"{run['peak_rss_gib']:.2f} GiB{util}, source return {run['source_mean']:.2f}, target "
                    f"{run['target_mean']:.2f} | – | – | ≤ {goals.get('minutes', 10):g} min, "
                    f"≤ {goals.get('peak_rss_gib', 4):g} GiB, source ≥ {goals.get('source_mean', 0.9):g} "
                    f"| `python benchmarks/run.py` | {_machine(run)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        sys.exit(f"README.md lacks the {START} … {END} markers")
    new = replace_marked_section(text, START, END, table())
    if args.check:
        sys.exit(0 if new == text else 1)
    readme.write_text(new)
    print(table())


if __name__ == "__main__":
    main()
