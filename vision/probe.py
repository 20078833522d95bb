"""What a representation encodes: held-out linear probes from features to ground-truth factors.

Not a disentanglement metric (those live in ``vision.metrics``): a quick check that the information
the agent needs is *linearly available* in the frozen features. A plain β-VAE at β = 4 on our
miniworld frames kept ~4 nats, all room appearance, and PPO on it learnt nothing — a probe on the
object factors would have said so before the expensive stage 2.

Discrete factors with few values get a logistic-regression probe scored by accuracy against the
majority-class rate; continuous ones a ridge regression scored by R² against 0 (predicting the
mean). Pure functions of arrays, like disentanglement_lib's metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

#: Substrings that mark a factor as task-relevant when the caller names none: which objects, which
#: one is good, where they are. Room appearance, light and camera are nuisances.
DEFAULT_TASK_PATTERNS: tuple[str, ...] = ("pair", "good", "side", "object", "obj_", "identity", "position")
#: Minimum normalised score, (score − chance) / (1 − chance), for a factor to count as recoverable.
DEFAULT_THRESHOLDS: dict[str, float] = {"discrete": 0.5, "continuous": 0.5}
KINDS = ("discrete", "continuous")
MAX_DISCRETE_VALUES = 20


def infer_kind(values: np.ndarray) -> str:
    """``discrete`` if the values are integers with at most 20 distinct values, else ``continuous``;
    ``constant`` if there is a single value (nothing to probe)."""
    values = np.asarray(values)
    uniq = np.unique(values)
    if uniq.size <= 1:
        return "constant"
    if uniq.size <= MAX_DISCRETE_VALUES and np.all(np.equal(np.mod(uniq, 1), 0)):
        return "discrete"
    return "continuous"


def probe_factors(
    features: np.ndarray,
    factors: np.ndarray,
    factor_names: Sequence[str],
    kinds: Mapping[str, str] | Sequence[str] | None = None,
    seed: int = 0,
    test_fraction: float = 0.25,
    rows: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Fit one linear probe per factor on a random split; score it on the held-out part.

    :param features: ``(N, D)`` float representation (e.g. posterior means).
    :param factors: ``(N, F)`` ground-truth factor values.
    :param factor_names: ``F`` names, one per column.
    :param kinds: per factor ``discrete`` or ``continuous`` (a mapping by name or a list); inferred by
        :func:`infer_kind` where missing.
    :param seed: seed of the train/test split and the probes.
    :param test_fraction: share of the rows held out.
    :param rows: optional ``(N,)`` boolean masks by factor name: the rows in which that factor can be
        seen at all (e.g. an object's identity only in frames that show the object); its probe is fit
        and scored on those rows only. Factors without a mask use every row.
    :return: ``{"n_train", "n_test", "feature_dim", "factors": {name: {"kind", "metric", "score",
        "chance", "normalized", "n_values"}}}``; ``normalized`` = (score − chance) / (1 − chance).
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64)
    if features.ndim != 2 or factors.ndim != 2 or features.shape[0] != factors.shape[0]:
        raise ValueError(
            f"probe_factors expects features (N, D) and factors (N, F) with the same N, got "
            f"{features.shape} and {factors.shape}"
        )
    if len(factor_names) != factors.shape[1]:
        raise ValueError(f"{len(factor_names)} factor names for {factors.shape[1]} factor columns: {list(factor_names)}")
    n = features.shape[0]
    if n < 8:
        raise ValueError(f"probe_factors needs at least 8 rows to hold some out, got {n}")
    kinds_by_name = _kinds_by_name(kinds, factor_names)

    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_test = max(2, int(round(n * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    scaler = StandardScaler().fit(features[train])
    f_all_train = np.nan_to_num(scaler.transform(features[train]))
    f_all_test = np.nan_to_num(scaler.transform(features[test]))

    out: dict[str, dict] = {}
    all_train, all_test = train, test
    for j, name in enumerate(factor_names):
        y = factors[:, j]
        kind = kinds_by_name.get(name) or infer_kind(y)
        entry: dict = {"kind": kind, "n_values": int(np.unique(y).size), "rows": n}
        train, test = all_train, all_test
        f_train, f_test = f_all_train, f_all_test
        if rows is not None and name in rows:
            mask = np.asarray(rows[name], dtype=bool)
            if mask.shape != (n,):
                raise ValueError(f"rows['{name}'] must be a boolean mask of shape ({n},), got {mask.shape}")
            keep_train, keep_test = mask[train], mask[test]
            train, test = train[keep_train], test[keep_test]
            f_train, f_test = f_all_train[keep_train], f_all_test[keep_test]
            entry["rows"] = int(mask.sum())
        if kind == "constant" or test.size < 2 or np.unique(y[train]).size < 2:
            entry.update(metric="none", score=math.nan, chance=math.nan, normalized=math.nan)
        elif kind == "discrete":
            labels = y.astype(np.int64)
            clf = LogisticRegression(max_iter=1000, random_state=seed).fit(f_train, labels[train])
            score = float(np.mean(clf.predict(f_test) == labels[test]))
            # Chance: always answering the training set's most common value.
            values, counts = np.unique(labels[train], return_counts=True)
            chance = float(np.mean(labels[test] == values[np.argmax(counts)]))
            entry.update(metric="accuracy", score=score, chance=chance, normalized=_normalize(score, chance))
        else:
            reg = Ridge(alpha=1.0, random_state=seed).fit(f_train, y[train])
            score = float(r2_score(y[test], reg.predict(f_test)))
            entry.update(metric="r2", score=score, chance=0.0, normalized=score)
        out[name] = entry
    return {"n_train": int(all_train.size), "n_test": int(all_test.size), "feature_dim": int(features.shape[1]),
            "factors": out}


def probe_transfer(
    source_features: np.ndarray,
    source_factors: np.ndarray,
    target_features: np.ndarray,
    target_factors: np.ndarray,
    factor_names: Sequence[str],
    probe: Sequence[str] | None = None,
    kinds: Mapping[str, str] | Sequence[str] | None = None,
    seed: int = 0,
    source_rows: Mapping[str, np.ndarray] | None = None,
    target_rows: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Does what a linear read-out learns on source frames still hold on target frames?

    A representation-level version of zero-shot transfer, with no RL: for each factor in ``probe``, fit
    the probe of :func:`probe_factors` on *all* (visible) source rows and score it on the target rows,
    next to its held-out score within the source. A policy on frozen features can act on a factor in a
    new domain only if the features still say the same thing about it there; a factor whose target score
    falls to chance while its source score is high is where transfer breaks.

    :param source_features, target_features: ``(N_s, D)``, ``(N_t, D)`` features of the two frame sets
    :param source_factors, target_factors: ``(N_s, F)``, ``(N_t, F)`` factor values, columns = ``factor_names``
    :param probe: the factor names to probe (default: those matching :data:`DEFAULT_TASK_PATTERNS`)
    :param source_rows, target_rows: optional visibility masks by factor name, as in :func:`probe_factors`
    :return: ``{"factors": {name: {"kind", "metric", "source": {score, chance, normalized},
        "target": {score, chance, normalized}, "rows": [n_source, n_target]}}, "mean_normalized":
        {"source", "target"}}`` (both means over the factors scored on both sides); chance on the target
        is the training (source) majority value's frequency there (accuracy; 1 / number of source values
        when the target holds a single value, as the pair does in ``A-changed``) or 0 (R² against the
        target mean).
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    fs, ft = np.asarray(source_features, np.float64), np.asarray(target_features, np.float64)
    ys, yt = np.asarray(source_factors, np.float64), np.asarray(target_factors, np.float64)
    if fs.ndim != 2 or ft.ndim != 2 or fs.shape[1] != ft.shape[1]:
        raise ValueError(f"probe_transfer expects (N, D) source and target features of the same D, got "
                         f"{fs.shape} and {ft.shape}")
    if ys.shape != (fs.shape[0], len(factor_names)) or yt.shape != (ft.shape[0], len(factor_names)):
        raise ValueError(f"factors must be (N, {len(factor_names)}) for {list(factor_names)} and match the features' "
                         f"rows, got source {ys.shape} and target {yt.shape}")
    names = list(probe) if probe is not None else select_task_factors(factor_names)
    missing = [n for n in names if n not in factor_names]
    if missing:
        raise ValueError(f"factor(s) {missing} to probe are not in the data; valid: {', '.join(factor_names)}")
    within = probe_factors(fs, ys, factor_names, kinds=kinds, seed=seed, rows=source_rows)["factors"]
    scaler = StandardScaler().fit(fs)
    xs, xt = np.nan_to_num(scaler.transform(fs)), np.nan_to_num(scaler.transform(ft))
    out: dict[str, dict] = {}
    for name in names:
        j = list(factor_names).index(name)
        ms = np.ones(len(fs), bool) if not source_rows or name not in source_rows else np.asarray(source_rows[name], bool)
        mt = np.ones(len(ft), bool) if not target_rows or name not in target_rows else np.asarray(target_rows[name], bool)
        w = within[name]
        kind = w["kind"]  # as probe_factors judged it (over all source rows), so metric and scoring agree
        entry = {"kind": kind, "metric": w["metric"], "rows": [int(ms.sum()), int(mt.sum())],
                 "source": {k: w[k] for k in ("score", "chance", "normalized")}}
        if kind == "constant" or mt.sum() < 2 or np.unique(ys[ms, j]).size < 2:
            entry["target"] = {"score": math.nan, "chance": math.nan, "normalized": math.nan}
        elif kind == "discrete":
            labels_s, labels_t = ys[ms, j].astype(np.int64), yt[mt, j].astype(np.int64)
            clf = LogisticRegression(max_iter=1000, random_state=seed).fit(xs[ms], labels_s)
            score = float(np.mean(clf.predict(xt[mt]) == labels_t))
            values, counts = np.unique(labels_s, return_counts=True)
            if np.unique(labels_t).size > 1:
                chance = float(np.mean(labels_t == values[np.argmax(counts)]))
            else:  # one value in the target (e.g. the pair in A-changed): a majority guess says nothing; use uniform
                chance = 1.0 / values.size
            entry["target"] = {"score": score, "chance": chance, "normalized": _normalize(score, chance)}
        else:
            reg = Ridge(alpha=1.0, random_state=seed).fit(xs[ms], ys[ms, j])
            score = float(r2_score(yt[mt, j], reg.predict(xt[mt])))
            entry["target"] = {"score": score, "chance": 0.0, "normalized": score}
        out[name] = entry

    # over the factors scored on both sides, so the two means are comparable
    both = [e for e in out.values()
            if math.isfinite(e["source"]["normalized"]) and math.isfinite(e["target"]["normalized"])]

    def mean_of(side: str) -> float:
        return float(np.mean([e[side]["normalized"] for e in both])) if both else math.nan

    return {"factors": out, "mean_normalized": {"source": mean_of("source"), "target": mean_of("target")},
            "n_source": len(fs), "n_target": len(ft)}


def select_task_factors(factor_names: Sequence[str], patterns: Sequence[str] = DEFAULT_TASK_PATTERNS) -> list[str]:
    """Names among ``factor_names`` containing one of ``patterns`` (case-insensitive)."""
    return [n for n in factor_names if any(p.lower() in n.lower() for p in patterns)]


def task_factors_recoverable(
    result: dict,
    required: Sequence[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> tuple[bool, str]:
    """Whether every required factor is linearly recoverable from the features.

    :param result: the output of :func:`probe_factors`.
    :param required: factor names that the task needs; default: those matching
        :data:`DEFAULT_TASK_PATTERNS`. Names the data does not have are an error.
    :param thresholds: minimum normalised score per kind (default :data:`DEFAULT_THRESHOLDS`).
    :return: ``(ok, message)``; the message names each failing factor with its score and chance.
    """
    thr = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    names = list(result["factors"])
    if required is None:
        required = select_task_factors(names)
    else:
        missing = [r for r in required if r not in result["factors"]]
        if missing:
            raise ValueError(f"task factor(s) {missing} are not in the probed factors; valid: {', '.join(names)}")
    if not required:
        return True, "no task-relevant factors among " + ", ".join(names)
    failing = []
    for name in required:
        e = result["factors"][name]
        if e["kind"] not in KINDS or not math.isfinite(e["chance"]) or e["chance"] >= 1.0:
            continue  # constant here, or too few visible rows to score: nothing to judge
        if not e["normalized"] >= thr[e["kind"]]:
            failing.append(
                f"{name} ({e['metric']} {e['score']:.2f}, chance {e['chance']:.2f}, "
                f"normalised {e['normalized']:.2f} < {thr[e['kind']]:.2f})"
            )
    if failing:
        return False, "task factors not linearly recoverable from the features: " + "; ".join(failing)
    return True, "task factors recoverable: " + ", ".join(required)


def probe_report(result: dict, required: Sequence[str] | None = None,
                 thresholds: Mapping[str, float] | None = None) -> str:
    """A Markdown table of :func:`probe_factors`' result; task factors marked with ``*``."""
    thr = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    names = list(result["factors"])
    task = set(select_task_factors(names) if required is None else required)
    lines = [
        "| factor | kind | rows | probe | held-out score | chance | normalised | recoverable |",
        "|---|---|---:|---|---:|---:|---:|:---:|",
    ]
    for name, e in result["factors"].items():
        if e["kind"] in KINDS:
            ok = "yes" if e["normalized"] >= thr[e["kind"]] else "no"
            probe = "logistic" if e["kind"] == "discrete" else "ridge"
            nums = f"{e['metric']} {e['score']:.3f} | {e['chance']:.3f} | {e['normalized']:.3f}"
        else:
            ok, probe, nums = "–", "–", "– | – | –"
        label = f"{name}*" if name in task else name
        lines.append(f"| {label} | {e['kind']} ({e['n_values']} values) | {e.get('rows', '')} | {probe} | {nums} | {ok} |")
    lines.append("")
    lines.append(
        f"{result['n_train']} train / {result['n_test']} held-out rows, {result['feature_dim']}-d features; "
        "* = task-relevant; rows = frames in which the factor is visible (all, unless masked); "
        "normalised = (score − chance) / (1 − chance)."
    )
    return "\n".join(lines)


def _normalize(score: float, chance: float) -> float:
    return (score - chance) / (1.0 - chance) if chance < 1.0 else 0.0


def _kinds_by_name(kinds: Mapping[str, str] | Sequence[str] | None, names: Sequence[str]) -> dict[str, str]:
    if kinds is None:
        return {}
    if isinstance(kinds, Mapping):
        unknown = sorted(set(kinds) - set(names))
        if unknown:
            raise ValueError(f"kinds given for unknown factor(s) {unknown}; valid: {', '.join(names)}")
        by_name = dict(kinds)
    else:
        if len(kinds) != len(names):
            raise ValueError(f"{len(kinds)} kinds for {len(names)} factors {list(names)}")
        by_name = dict(zip(names, kinds))
    for name, kind in by_name.items():
        if kind not in KINDS:
            raise ValueError(f"kind of factor '{name}' must be one of {', '.join(KINDS)}, got {kind!r}")
    return by_name


def latent_factor_correlations(
    features: np.ndarray,
    factors: np.ndarray,
    factor_names: Sequence[str],
    rows: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """``(D, F)`` absolute Pearson correlation of each latent with each factor (0 for constant columns),
    each factor on its visible ``rows`` only (see :func:`probe_factors`)."""
    features = np.asarray(features, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64)
    out = np.zeros((features.shape[1], factors.shape[1]))
    for j, name in enumerate(factor_names):
        mask = np.asarray(rows[name], dtype=bool) if rows is not None and name in rows else slice(None)
        f, y = features[mask], factors[mask, j]
        if len(y) < 3 or y.std() == 0:
            continue
        fs = f.std(0)
        ok = fs > 0
        cov = ((f[:, ok] - f[:, ok].mean(0)) * (y - y.mean())[:, None]).mean(0)
        out[ok, j] = np.abs(cov / (fs[ok] * y.std()))
    return out


def latent_factor_report(
    features: np.ndarray,
    factors: np.ndarray,
    factor_names: Sequence[str],
    latents: Sequence[int],
    rows: Mapping[str, np.ndarray] | None = None,
    labels: Mapping[int, str] | None = None,
    top: int = 3,
) -> str:
    """Markdown: for each latent in ``latents``, the ``top`` factors it correlates with most."""
    corr = latent_factor_correlations(features, factors, factor_names, rows)
    lines = ["| latent | most correlated factors (abs. Pearson r) |", "|---|---|"]
    for j in latents:
        best = np.argsort(-corr[j])[:top]
        cells = ", ".join(f"{factor_names[k]} {corr[j, k]:.2f}" for k in best if corr[j, k] > 0)
        label = labels.get(j, f"z{j}") if labels else f"z{j}"
        lines.append(f"| {label} | {cells or '–'} |")
    return "\n".join(lines)
