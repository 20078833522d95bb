"""Why a policy keeps or loses its return in a shifted domain: twin frames, features and actions.

Every target domain of the study shows object pair A, like the source domain ``A-default``; it differs
from it only in nuisances (room style, light, camera height). SeekAvoid seeds the layout apart from the
domain, so with the same episode seed and the same actions the agent and the objects are in the same
places in both domains: *twin frames* that differ only in the nuisance. For each target domain this
script plays random-policy episodes in ``A-default`` and in the target side by side (checking that the
agent's pose stays identical) and, for every model of a finished transfer study (``summary.json``),
measures on the twins:

* **feature shift** — on random-policy twins, the mean squared distance between the features of twin
  frames over the mean squared distance between two unrelated ``A-default`` frames: 0 = the features
  ignore the nuisance, 1 = the nuisance moves them as far as a different scene would. The features are
  what the policy's MLP sees: the frozen vision's features, or each pixel policy's own CNN features.
* **action agreement** — on the same random-policy twins, how often the deterministic policy takes the
  same action on both, next to *chance*: its agreement on two unrelated ``A-default`` frames.
* **changed episodes** — on the policy's own trajectories: it plays ``A-default`` with the evaluation's
  episode seeds (so these are exactly its evaluated source episodes) while the target twin of every state
  is rendered too; an episode counts as changed if at any step the policy would act differently on the
  target frame. Only changed episodes can end differently in the target, so this bounds the return lost
  and shows whether decisions change where they matter (near the objects), not only on average.

Nothing is trained; target frames are only analysed. Run from the repository root after ``run.py``::

    python results/transfer/invariance.py --study results/transfer --work runs/transfer
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("PYGLET_HEADLESS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

log = logging.getLogger("results.transfer.invariance")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TWIN = "A-default"
TABLE_START = "<!-- invariance-table:start (written by invariance.py; edits inside are overwritten) -->"
TABLE_END = "<!-- invariance-table:end -->"


def _twin_envs(target, twin, obs_size: int, layout: str):
    import gymnasium

    import envs  # noqa: F401  (registers darla/SeekAvoid-v0)

    return tuple(gymnasium.make("darla/SeekAvoid-v0", domain=d, obs_size=obs_size, layout=layout)
                 for d in (twin, target))


def _check_twins(env_a, env_b, episode: int) -> None:
    pa, pb = env_a.unwrapped.agent, env_b.unwrapped.agent
    if not (np.allclose(pa.pos, pb.pos) and np.isclose(pa.dir, pb.dir)):
        raise RuntimeError(f"{env_a.unwrapped.domain.name} and {env_b.unwrapped.domain.name} diverged in episode "
                           f"{episode}: the agent's pose differs, so they are not twins (the domains change the "
                           "layout, not only the nuisance)")


def walk_twins(target, choose, twin=TWIN, episodes: int = 100, max_steps: int = 60, seed: int = 4242,
               obs_size: int = 64, layout: str = "choice"):
    """Play episodes in ``twin`` and ``target`` side by side from identical states. At every step the
    action ``choose(episode, frame_twin, frame_target)`` is taken in both envs, so their states stay
    identical. Episode ``i`` starts from ``reset(seed=seed + i)`` and lasts until either env ends it or
    ``max_steps``; raises if the agent's poses ever differ.

    :return: per episode, the ``twin`` env's return"""
    env_a, env_b = _twin_envs(target, twin, obs_size, layout)
    returns = np.zeros(episodes)
    try:
        for i in range(episodes):
            obs_a, _ = env_a.reset(seed=seed + i)
            obs_b, _ = env_b.reset(seed=seed + i)
            for _ in range(max_steps):
                _check_twins(env_a, env_b, i)
                action = choose(i, obs_a, obs_b)
                obs_a, reward, term_a, trunc_a, _ = env_a.step(action)
                obs_b, _, term_b, trunc_b, _ = env_b.step(action)
                returns[i] += float(reward)
                if term_a or trunc_a or term_b or trunc_b:
                    break
    finally:
        env_a.close()
        env_b.close()
    return returns


def twin_frames(target, twin=TWIN, episodes: int = 100, max_steps: int = 30, seed: int = 4242,
                obs_size: int = 64, layout: str = "choice") -> tuple[np.ndarray, np.ndarray]:
    """Random-policy frames of ``twin`` and ``target`` from identical states: ``(n, H, W, 3)`` each
    (uniformly random actions, :func:`walk_twins`)."""
    rng = np.random.default_rng(seed)
    frames_a, frames_b = [], []

    def choose(_, frame_a, frame_b):
        frames_a.append(frame_a)
        frames_b.append(frame_b)
        return int(rng.integers(3))  # turn left, turn right, forward

    walk_twins(target, choose, twin, episodes, max_steps, seed, obs_size, layout)
    return np.stack(frames_a), np.stack(frames_b)


def on_policy_twins(act, target, twin=TWIN, episodes: int = 40, seed: int = 10000, max_steps: int = 60,
                    obs_size: int = 64, layout: str = "choice") -> dict:
    """Follow the policy ``act(frames) -> actions`` through ``twin`` (its source-domain trajectory) and ask
    it, at every step, what it would do on the ``target`` twin frame of the same state.

    :return: ``step_agreement`` (over all steps), ``changed_episodes`` (fraction of episodes with at least
        one step where the target frame would change the action: only those can end differently in the
        target) and ``twin_return`` (mean return of the followed trajectories)."""
    agree, changed = [], np.zeros(episodes, bool)

    def choose(i, frame_a, frame_b):
        a, b = np.asarray(act(np.stack([frame_a, frame_b]))).reshape(2)
        agree.append(a == b)
        changed[i] |= a != b
        return int(a)

    returns = walk_twins(target, choose, twin, episodes, max_steps, seed, obs_size, layout)
    return {"step_agreement": float(np.mean(agree)), "changed_episodes": float(changed.mean()),
            "twin_return": float(returns.mean()), "steps": len(agree)}


def cached_twins(work: Path, target: str, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """:func:`twin_frames`, kept in ``work/twin-frames/`` under a name that carries every setting."""
    from envs.seekavoid import RENDER_REVISION
    from vision.checkpoint import atomic_write_bytes

    name = "-".join(f"{k}{v}" for k, v in sorted(kwargs.items())) + f"-r{RENDER_REVISION}"  # frames of this renderer
    path = work / "twin-frames" / f"{TWIN}--{target}-{name}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:  # a cache: never unpickle
            return z["twin"], z["target"]
    a, b = twin_frames(target, **kwargs)
    buf = io.BytesIO()
    np.savez_compressed(buf, twin=a, target=b)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return a, b


def _write_json(path: Path, payload: dict) -> None:
    """Strict JSON (NaN -> null), written atomically."""
    from agents.evaluate import strict_json
    from vision.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(strict_json(payload), indent=2).encode())


def shift_ratio(f_twin: np.ndarray, f_target: np.ndarray, seed: int = 0) -> float:
    """Mean squared twin distance over mean squared distance between unrelated twin-domain frames."""
    perm = np.random.default_rng(seed).permutation(len(f_twin))
    same_scene = np.mean(np.sum((f_twin - f_target) ** 2, axis=1))
    other_scene = np.mean(np.sum((f_twin - f_twin[perm]) ** 2, axis=1))
    return float(same_scene / other_scene) if other_scene > 0 else float("nan")


def agreement(a_twin: np.ndarray, a_target: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(twin agreement, chance agreement on unrelated frames) of two action arrays."""
    perm = np.random.default_rng(seed).permutation(len(a_twin))
    return float(np.mean(a_twin == a_target)), float(np.mean(a_twin == a_twin[perm]))


class PolicyView:
    """A trained policy as two functions of frames: the features its MLP sees, and its deterministic action."""

    def __init__(self, policy_dir: str | Path):
        from agents.train import load_policy

        self.model, self.meta = load_policy(policy_dir)
        self.model.policy.set_training_mode(False)
        self._represent = None
        if self.meta["mode"] == "latent":
            from darla.metrics import representation_of

            self._represent = representation_of(self.meta["vision_model"])

    def observations(self, frames: np.ndarray) -> np.ndarray:
        """What the policy is fed for ``frames``: the frames, or (latent mode) the vision's float32 features."""
        return frames if self._represent is None else self._represent(frames).astype(np.float32)

    def features(self, obs: np.ndarray) -> np.ndarray:
        import torch

        policy = self.model.policy
        out = []
        with torch.no_grad():
            for i in range(0, len(obs), 256):
                t, _ = policy.obs_to_tensor(obs[i:i + 256])
                f = policy.extract_features(t)
                out.append((f[0] if isinstance(f, tuple) else f).cpu().numpy())  # actor's features
        return np.concatenate(out)

    def act(self, frames: np.ndarray) -> np.ndarray:
        """Deterministic actions on frames ``(B, H, W, 3)``."""
        return self.actions(self.observations(frames))

    def actions(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([self.model.predict(obs[i:i + 256], deterministic=True)[0]
                               for i in range(0, len(obs), 256)])


def return_drops(evaluation: dict, target: str, twin: str = TWIN) -> list[float] | None:
    """Per policy seed: mean return in ``twin`` minus mean return in ``target`` (same episode seeds)."""
    returns = evaluation["returns"]
    if target not in returns or twin not in returns:
        return None
    return [float(np.mean(a) - np.mean(b)) for a, b in zip(returns[twin], returns[target])]


def rank_link(result: dict) -> dict:
    """Spearman correlation, over every (policy seed, target), of the return drop from the twin domain with
    the fraction of changed episodes (on-policy), the random-state action agreement, and the feature shift."""
    from scipy.stats import spearmanr

    keys = ("changed_episodes", "agreement", "feature_shift")
    xs: dict[str, list] = {k: [] for k in keys}
    drop: list[float] = []
    for per in result.values():
        for r in per.values():
            if r["return_drop_seeds"] is None:
                continue
            for k in keys:
                xs[k] += r[f"{k}_seeds"]
            drop += r["return_drop_seeds"]
    if len(drop) < 3:
        return {}
    out: dict = {"n": len(drop)}
    for key, x in ((f"{k}_vs_drop", xs[k]) for k in keys):
        if np.ptp(x) == 0 or np.ptp(drop) == 0:
            out[key] = {"spearman": None, "p": None}  # a constant input has no rank correlation
            continue
        rho, p = spearmanr(x, drop)
        out[key] = {"spearman": float(rho), "p": float(p)}
    return out


def _twins_key(twins: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    import hashlib

    h = hashlib.sha256()
    for target, (a, b) in sorted(twins.items()):
        h.update(target.encode())
        h.update(a.tobytes())
        h.update(b.tobytes())
    return h.hexdigest()[:10]


def analyse(study: dict, twins: dict[str, tuple[np.ndarray, np.ndarray]], repo: Path = REPO,
            obs_size: int = 64, layout: str = "choice", cache: Path | None = None) -> dict:
    """Per model (as in ``study["models"]``) and target, over the model's policy seeds: the features' shift
    and the action agreement on random-policy twins (with chance), and on the policy's own trajectories in
    ``A-default`` (the evaluation's episode seeds) the step agreement and the fraction of episodes whose
    decisions the target would change, next to the seed's measured return drop."""
    out: dict[str, dict] = {}
    for name, row in study["models"].items():
        evaluation = json.loads((repo / row["evaluation"] / "evaluation.json").read_text())
        # one model's analysis is reused while its evaluation stage (keyed by its policies) and the twins are
        cached = None if cache is None else cache / f"{name}-{Path(row['evaluation']).name}-{_twins_key(twins)}.json"
        if cached is not None and cached.exists():
            out[name] = json.loads(cached.read_text())
            continue
        views = [PolicyView(repo / p) for p in evaluation["policies"]]  # repo / an absolute path = that path
        per_target = {}
        for target, (f_a, f_b) in twins.items():
            obs_a, obs_b = views[0].observations(f_a), views[0].observations(f_b)  # one vision for all seeds
            r: dict[str, list] = {k: [] for k in ("feature_shift", "agreement", "chance", "step_agreement",
                                                  "changed_episodes", "twin_return")}
            for v in views:
                r["feature_shift"].append(shift_ratio(v.features(obs_a), v.features(obs_b)))
                ag, ch = agreement(v.actions(obs_a), v.actions(obs_b))
                r["agreement"].append(ag)
                r["chance"].append(ch)
                walk = on_policy_twins(v.act, target, episodes=evaluation["episodes"], seed=evaluation["seed"],
                                       obs_size=obs_size, layout=layout)
                for k in ("step_agreement", "changed_episodes", "twin_return"):
                    r[k].append(walk[k])
            per_target[target] = {**{k: float(np.mean(v)) for k, v in r.items()},
                                  **{f"{k}_seeds": v for k, v in r.items()}, "pairs": len(f_a),
                                  "return_drop_seeds": return_drops(evaluation, target)}
        out[name] = per_target
        if cached is not None:
            _write_json(cached, per_target)
        log.info("%s: %s", name, {t: (round(v["feature_shift"], 2), round(v["changed_episodes"], 2))
                                  for t, v in per_target.items()})
    return out


def markdown_table(result: dict, targets: Sequence[str]) -> str:
    """One row per model, one column per target: ``feature shift / random-state agreement (chance) /
    changed episodes``."""
    lines = ["| vision | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for name, per in result.items():
        cells = [f"{per[t]['feature_shift']:.2f} / {per[t]['agreement']:.2f} ({per[t]['chance']:.2f}) / "
                 f"{per[t]['changed_episodes']:.2f}" for t in targets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, default=HERE, help="directory of the study's summary.json and README.md")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "transfer", help="where twin frames are cached")
    p.add_argument("--targets", default=None, help="comma-separated target domains (default: the study's)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--max-steps", type=int, default=30)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.path.insert(0, str(REPO))
    args = parse_args(argv)
    study = json.loads((args.study / "summary.json").read_text())
    base = study["base"]
    first = next(iter(study["models"].values()))
    evaluation = json.loads((REPO / first["evaluation"] / "evaluation.json").read_text())
    targets = args.targets.split(",") if args.targets else list(evaluation["target"])
    twins = {t: cached_twins(args.work, t, episodes=args.episodes, max_steps=args.max_steps,
                             obs_size=base["env"]["obs_size"], layout=base["env"]["layout"]) for t in targets}
    result = analyse(study, twins, obs_size=base["env"]["obs_size"], layout=base["env"]["layout"],
                     cache=args.work / "invariance")
    payload = {"command": "python results/transfer/invariance.py " + " ".join(args.argv), "twin": TWIN,
               "episodes": args.episodes, "max_steps": args.max_steps, "models": result,
               "rank_link": rank_link(result)}
    _write_json(args.study / "invariance.json", payload)
    from darla.report import rewrite_marked_section

    rewrite_marked_section(args.study / "README.md", TABLE_START, TABLE_END, markdown_table(result, targets))
    return payload


if __name__ == "__main__":
    main()
