"""``report.md`` of a run directory: config, probe table, traversal, learning curves, transfer table and
plot, timings, provenance (package versions, git SHA) — and ``summary.json`` with the headline numbers,
``provenance.json`` with the versions."""

from __future__ import annotations

import csv
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from vision.checkpoint import atomic_write_bytes

INPUTS = "report_inputs.json"
PROVENANCE = "provenance.json"
# Distributions whose versions decide a run's numbers (``importlib.metadata`` names).
PACKAGES = ("torch", "gymnasium", "stable-baselines3", "miniworld", "numpy", "darla")


def git_state(path: str | Path | None = None) -> dict[str, Any]:
    """The git commit of the darla checkout at ``path`` (default: the one this module is imported from).

    :param path: a directory inside the checkout; its git toplevel must be the darla source tree (an
        installed copy inside some other repository reports no commit rather than that repository's)
    :return: ``{"sha", "dirty", "note"}``: ``dirty`` is True when tracked files differ from the commit
        (untracked files do not count); ``sha``/``dirty`` are None, with a ``note``, when there is no
        git checkout or no git
    """
    root = Path(path) if path is not None else Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        if top != root.resolve():
            return {"sha": None, "dirty": None, "note": f"{root} is not the top of a git checkout"}
        return {"sha": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
                "note": None}
    except FileNotFoundError:
        return {"sha": None, "dirty": None, "note": "git is not installed"}
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return {"sha": None, "dirty": None, "note": f"{root} is not a git checkout"}


def provenance(path: str | Path | None = None) -> dict[str, Any]:
    """What produced a run: python and :data:`PACKAGES` versions (None where not installed), platform,
    git SHA and dirty flag of the darla checkout (:func:`git_state`), and when this was recorded (UTC).

    :param path: passed to :func:`git_state`
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"versions": versions, "platform": platform.platform(), "git": git_state(path),
            "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def provenance_lines(prov: dict[str, Any]) -> list[str]:
    """The Markdown lines of ``report.md``'s provenance section."""
    g = prov["git"]
    if g["sha"]:
        commit = f"`{g['sha']}`" + (" (dirty: tracked files differ from this commit)" if g["dirty"] else " (clean)")
    else:
        commit = f"unknown ({g['note']})"
    lines = [f"darla commit: {commit}; recorded {prov['recorded']} on {prov['platform']}.", "",
             "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v or 'not installed'} |" for k, v in prov["versions"].items()]
    if prov.get("note"):
        lines += ["", prov["note"]]
    return lines


def write_report(run_dir: Path, config: Any, data_dir: Path | None, vision_dir: Path | None,
                 policy_dirs: list[Path], eval_dir: Path, timings: dict[str, float]) -> Path:
    run_dir = Path(run_dir)
    inputs = {
        "config": config.to_dict(),
        "data_dir": str(data_dir) if data_dir else None,
        "vision_dir": str(vision_dir) if vision_dir else None,
        "policy_dirs": [str(p) for p in policy_dirs],
        "eval_dir": str(eval_dir),
        "timings": timings,
        "provenance": provenance(),
    }
    atomic_write_bytes(run_dir / INPUTS, json.dumps(inputs, indent=2).encode())
    return _render(run_dir, inputs)


def rewrite_report(run_dir: Path) -> Path:
    path = Path(run_dir) / INPUTS
    if not path.exists():
        raise FileNotFoundError(f"'{run_dir}' holds no finished darla run ({INPUTS} missing); run `darla run --out {run_dir}`")
    return _render(Path(run_dir), json.loads(path.read_text()))


def _env_line(env: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """The env part of the report's first line: SeekAvoid's layout, or any other env's id and its domains."""
    from darla.config import DEFAULT_ENV_ID

    env_id = env.get("id", DEFAULT_ENV_ID)  # configs written before env.id existed are SeekAvoid's
    if env_id == DEFAULT_ENV_ID:
        return f"layout `{env['layout']}`"
    source, target = evaluation.get("source") or [], evaluation.get("target") or []
    kwargs = f" {json.dumps(env['kwargs'], sort_keys=True)}" if env.get("kwargs") else ""
    return (f"env `{env_id}`{kwargs} (source domains: {', '.join(source) or '–'}; target domains: "
            f"{', '.join(target) or '–'})")


def _render(run_dir: Path, inputs: dict[str, Any]) -> Path:
    import yaml

    cfg = inputs["config"]
    evaluation = json.loads((Path(inputs["eval_dir"]) / "evaluation.json").read_text())
    summary = headline(evaluation)
    summary.update({"vision_model": cfg["vision"]["model"] if cfg["policy"]["mode"] != "pixels" else "pixels",
                    "policy_steps": cfg["policy"]["steps"], "seeds": cfg["policy"]["seeds"],
                    "timings": inputs["timings"]})
    atomic_write_bytes(run_dir / "summary.json", json.dumps(summary, indent=2).encode())
    prov = inputs.get("provenance")
    if prov is None:  # a run written before provenance was recorded: say that these are today's versions
        prov = {**provenance(), "note": "Recorded when the report was re-written, not when the run ran "
                                        "(the run predates provenance records)."}
    atomic_write_bytes(run_dir / PROVENANCE, json.dumps(prov, indent=2).encode())

    lines = ["# darla run report", ""]
    lines += [f"Vision: **{summary['vision_model']}**, policy: **{cfg['policy']['algo']}** "
              f"({cfg['policy']['mode']}), {cfg['policy']['steps']:,} env steps × {len(cfg['policy']['seeds'])} "
              f"seed(s), {_env_line(cfg['env'], evaluation)}, {cfg['env']['obs_size']}×{cfg['env']['obs_size']} "
              "frames.", ""]
    lines += ["## Zero-shot transfer", ""]
    for key in ("source", "target", "ratio"):
        if key in summary:
            lines.append(f"- **{key}**: {format_estimate(summary[key])}")
    lines.append("")
    md = Path(inputs["eval_dir"]) / "evaluation.md"
    if md.exists():
        lines += [md.read_text().strip(), ""]
    png = Path(inputs["eval_dir"]) / "transfer.png"
    if png.exists():
        lines += [f"![transfer]({_rel(png, run_dir)})", ""]

    curves = learning_curves_png([Path(p) for p in inputs["policy_dirs"]], run_dir / "learning_curves.png")
    if curves:
        lines += ["## Learning curves (source domains)", "", f"![learning curves]({_rel(curves, run_dir)})", ""]

    if inputs.get("vision_dir"):
        vdir = Path(inputs["vision_dir"])
        lines += ["## Vision", ""]
        probe = vdir / "probe.md"
        if probe.exists():
            lines += ["What the frozen features encode (held-out linear probes on stage-1 factors):", "",
                      probe.read_text().strip(), ""]
        trav = vdir / "traversal.png"
        if trav.exists():
            lines += ["Latent traversal (rows sorted by KL; top: originals and reconstructions):", "",
                      f"![traversal]({_rel(trav, run_dir)})", ""]
            table = trav.with_suffix(".md")
            if table.exists():
                lines += ["What the shown latents correlate with (frames where the factor is visible):", "",
                          table.read_text().strip(), ""]

    lines += ["## Timings (seconds)", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in inputs["timings"].items()]
    lines += ["", "## Provenance", "", *provenance_lines(prov), "", f"Also in `{PROVENANCE}`.",
              "", "## Config", "", "```yaml", yaml.safe_dump(cfg, sort_keys=False).strip(), "```", "",
              f"Reproduce: `darla run --config {run_dir / 'config.yaml'} --out {run_dir}`", ""]
    out = run_dir / "report.md"
    atomic_write_bytes(out, "\n".join(lines).encode())
    return out


def replace_marked_section(text: str, start: str, end: str, block: str) -> str:
    """``text`` with what lies between the ``start`` and ``end`` marker lines replaced by ``block``; the
    markers and everything around them are kept. Without the markers, they and the block are appended."""
    section = f"{start}\n{block.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        return before + section + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + section + "\n"


def rewrite_marked_section(path: str | Path, start: str, end: str, block: str, default: str = "") -> Path:
    """:func:`replace_marked_section` on the file ``path`` (``default`` if it does not exist), atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else default
    atomic_write_bytes(path, replace_marked_section(text, start, end, block).encode())
    return path


def headline(evaluation: dict[str, Any]) -> dict[str, Any]:
    """Source, target and ratio (mean and CI) from an ``evaluation.json``."""
    overall = evaluation.get("overall", {})
    return {k: {"mean": overall[k]["mean"], "ci": overall[k]["ci"]} for k in ("source", "target", "ratio")
            if k in overall}


def format_estimate(estimate: dict[str, Any]) -> str:
    """``0.950 (95% CI 0.900 – 0.980)``; ``n/a`` where undefined (e.g. a ratio over a zero source return)."""
    mean, ci = estimate.get("mean"), estimate.get("ci") or [None, None]
    if mean is None:
        return "n/a"
    if None in ci:
        return f"{mean:.3f}"
    return f"{mean:.3f} (95% CI {ci[0]:.3f} – {ci[1]:.3f})"


def learning_curves_png(policy_dirs: list[Path], out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = []
    for d in policy_dirs:
        path = Path(d) / "learning_curve.csv"
        if not path.exists():
            continue
        with open(path) as f:
            rows = [r for r in csv.DictReader(f) if r.get("mean_return") not in (None, "", "nan")]
        if rows:
            series.append((Path(d).name, [float(r["timesteps"]) for r in rows], [float(r["mean_return"]) for r in rows]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, x, y in series:
        ax.plot(x, y, label=name)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episode return")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(path)


def traversal_with_latent_table(model, data, out_png: Path, seed: int = 0, max_latents: int | None = 12,
                                sample: int = 4000) -> str:
    """Traversal PNG of ``model`` on frames of ``data`` plus ``<out_png>.md``: for the latents shown,
    the ground-truth factors each correlates with most (on frames where the factor is visible)."""
    import numpy as np

    import vision
    from vision.probe import latent_factor_report
    from vision.train import encode_frames
    from vision.traverse import latent_scores, traverse

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data), size=min(sample, len(data)), replace=False))
    frames = np.asarray(data.frames[idx])
    # The PNG shows the first 8 of these frames and, like the table, orders latents by KL over 512.
    traverse(model, frames[:512], out_png, max_latents=max_latents)
    device = next(model.parameters()).device  # wherever the caller put the model (darla run: its device)
    feats = encode_frames(model, frames, device)
    scores, name = latent_scores(model, vision.to_tensor(frames[:512], device))
    order = [int(j) for j in np.argsort(-scores, kind="stable")[: max_latents or len(scores)]]
    rows = data.probe_rows() if hasattr(data, "probe_rows") else None
    table = latent_factor_report(feats, np.asarray(data.factors)[idx], list(data.factor_names), order,
                                 rows={k: v[idx] for k, v in rows.items()} if rows else None,
                                 labels={j: f"z{j} ({name} {scores[j]:.2f})" for j in order})
    atomic_write_bytes(Path(out_png).with_suffix(".md"), (table + "\n").encode())
    return table
