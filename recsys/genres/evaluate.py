"""Honest genre metrics: artist-grouped cross-validation beside baselines on the same folds.

No artist is ever in both the training and the test part of a fold (a model would otherwise
learn to recognise artists, not genres). Resampling (SMOTE) happens inside each model's
pipeline, so it only sees the training rows of a fold. Every report carries a majority-class
and a logistic-regression-on-12-statistics baseline computed on exactly the same folds.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..schema import STATS
from ..errors import SchemaError
from ..io import atomic_path

Progress = Callable[[str], None]


def artist_groups(catalog: pd.DataFrame) -> np.ndarray:
    """Group key per row: the artist; a row without an artist is its own group (``track:<id>``)."""
    n = len(catalog)
    if "track_artist" in catalog.columns:
        artist = catalog["track_artist"].astype("object")
        artist = artist.where(artist.notna(), None).tolist()
    else:
        artist = [None] * n
    ids = (catalog["track_id"].astype(str).tolist() if "track_id" in catalog.columns
           else [str(i) for i in range(n)])
    return np.asarray([f"artist:{str(a).strip().lower()}" if a is not None and str(a).strip()
                       else f"track:{t}" for a, t in zip(artist, ids)], dtype=object)


def grouped_folds(y: Sequence[Any], groups: Sequence[Any], *, n_splits: int = 5,
                  seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, artist-grouped K folds as (train_idx, test_idx) pairs."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y, dtype=object)
    groups = np.asarray(groups, dtype=object)
    if n_splits < 2:
        raise SchemaError(f"--folds must be at least 2, got {n_splits}")
    n_groups = len(set(groups.tolist()))
    if n_groups < n_splits:
        raise SchemaError(f"only {n_groups} distinct artist(s); "
                          f"need at least {n_splits} for {n_splits} grouped folds")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = [(np.asarray(tr), np.asarray(te)) for tr, te in cv.split(np.zeros(len(y)), y.astype(str), groups)]
    for tr, te in folds:  # the property every genre figure rests on
        if set(groups[tr].tolist()) & set(groups[te].tolist()):
            raise RuntimeError("artist leaked across a fold")
    return folds


def genre_metrics(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over ``labels``, per-genre F1 and support, and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y_true = np.asarray(y_true, dtype=object).astype(str)
    y_pred = np.asarray(y_pred, dtype=object).astype(str)
    labels = [str(x) for x in labels]
    per = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_genre_f1": {lab: float(f) for lab, f in zip(labels, per)},
        "support": {lab: int((y_true == lab).sum()) for lab in labels},
        "labels": labels,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def majority_baseline():
    """Always predicts the most frequent genre of the training fold."""
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="most_frequent")


def logreg_baseline(seed: int = 0):
    """Multinomial logistic regression on the 12 statistics (median-imputed, standardised)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    select = ColumnTransformer([("stats", "passthrough", list(STATS))], remainder="drop")
    return Pipeline([("select", select), ("impute", SimpleImputer(strategy="median")),
                     ("scale", StandardScaler()),
                     ("model", LogisticRegression(max_iter=2000, random_state=seed))])


@dataclass
class Candidate:
    """A named model factory evaluated on the shared folds.

    A model whose ``predict`` takes ``groups`` (artist pooling) is given the test fold's artists;
    ``per_track`` names a second row scoring the same fitted model without them.
    """

    name: str
    make: Callable[[], Any]
    per_track: str | None = None


def cross_validate(candidates: Sequence[Candidate], X: pd.DataFrame, y: Sequence[Any],
                   groups: Sequence[Any], *, n_splits: int = 5, seed: int = 0,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Run every candidate on the same artist-grouped folds; return metrics per candidate.

    Each candidate reports the mean and standard deviation of accuracy and macro-F1 across folds,
    and per-genre F1 and a confusion matrix from all folds' out-of-fold predictions together.
    """
    import inspect
    import time

    y = np.asarray(y, dtype=object).astype(str)
    groups_arr = np.asarray(groups, dtype=object)
    labels = sorted(set(y.tolist()))
    folds = grouped_folds(y, groups, n_splits=n_splits, seed=seed)
    names = [n for c in candidates for n in (c.name, c.per_track) if n is not None]
    oof = {n: np.empty(len(y), dtype=object) for n in names}
    per_fold: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    seconds = {n: 0.0 for n in names}
    for k, (tr, te) in enumerate(folds, start=1):
        line = [f"fold {k}/{n_splits}: train {len(tr)} / test {len(te)} tracks"]
        for c in candidates:
            t0 = time.perf_counter()
            model = c.make()
            if "groups" in inspect.signature(model.fit).parameters:  # title text model's inner folds
                model.fit(X.iloc[tr], y[tr], groups=groups_arr[tr])
            else:
                model.fit(X.iloc[tr], y[tr])
            preds = {}
            if "groups" in inspect.signature(model.predict).parameters:  # artist pooling
                preds[c.name] = model.predict(X.iloc[te], groups=groups_arr[te])
                if c.per_track is not None:
                    preds[c.per_track] = model.predict(X.iloc[te])
            else:
                preds[c.name] = model.predict(X.iloc[te])
            for name in preds:  # one fit serves both rows
                seconds[name] += time.perf_counter() - t0
            for name, pred in preds.items():
                pred = np.asarray(pred, dtype=object).astype(str)
                oof[name][te] = pred
                m = genre_metrics(y[te], pred, labels)
                per_fold[name].append({"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
                line.append(f"{name} acc {m['accuracy']:.3f} F1 {m['macro_f1']:.3f}")
        if progress is not None:
            progress("  ".join(line))
    results: dict[str, Any] = {}
    for name in names:
        if not per_fold[name]:  # a per_track name whose model never took groups
            continue
        overall = genre_metrics(y, oof[name], labels)  # all folds' predictions together
        accs = np.array([f["accuracy"] for f in per_fold[name]])
        f1s = np.array([f["macro_f1"] for f in per_fold[name]])
        results[name] = {**overall, "accuracy_mean": float(accs.mean()), "accuracy_std": float(accs.std()),
                         "macro_f1_mean": float(f1s.mean()), "macro_f1_std": float(f1s.std()),
                         "folds": per_fold[name], "fit_predict_seconds": round(seconds[name], 2)}
    return {"n_tracks": int(len(y)), "n_groups": int(len(set(np.asarray(groups).tolist()))),
            "n_splits": n_splits, "seed": seed, "labels": labels,
            "fold_sizes": [[int(len(tr)), int(len(te))] for tr, te in folds], "results": results}


def metrics_table(cv: dict[str, Any]) -> str:
    """Plain-text table: accuracy and macro-F1 (mean ± sd over folds) and per-genre F1 per candidate."""
    labels = cv["labels"]
    names = list(cv["results"])
    width = max(len(n) for n in names) + 2
    head = f"{'model':<{width}}{'accuracy':>16}{'macro-F1':>16}"
    lines = [f"artist-grouped {cv['n_splits']}-fold CV: {cv['n_tracks']} tracks, {cv['n_groups']} artists",
             head]
    for n in names:
        r = cv["results"][n]
        lines.append(f"{n:<{width}}{r['accuracy_mean']:>9.3f} ± {r['accuracy_std']:.3f}"
                     f"{r['macro_f1_mean']:>9.3f} ± {r['macro_f1_std']:.3f}")
    lines.append("")
    lines.append("per-genre F1 (all out-of-fold predictions):")
    lw = max(len(lab) for lab in labels) + 2
    lines.append(f"{'genre':<{lw}}" + "".join(f"{n:>{max(len(n), 8) + 2}}" for n in names)
                 + f"{'support':>9}")
    support = cv["results"][names[0]]["support"]
    for lab in labels:
        lines.append(f"{lab:<{lw}}"
                     + "".join(f"{cv['results'][n]['per_genre_f1'][lab]:>{max(len(n), 8) + 2}.3f}"
                               for n in names) + f"{support[lab]:>9}")
    return "\n".join(lines)


def confusion_text(confusion: Sequence[Sequence[int]], labels: Sequence[str], *, title: str = "") -> str:
    """Confusion matrix as aligned text: rows are true genres, columns predicted."""
    cm = np.asarray(confusion, dtype=np.int64)
    w = max(7, max(len(x) for x in labels) + 1)
    lines = [title] if title else []
    lines.append("true \\ predicted".ljust(w) + "".join(f"{lab[:w - 1]:>{w}}" for lab in labels)
                 + f"{'recall':>{w}}")
    for i, lab in enumerate(labels):
        total = cm[i].sum()
        recall = cm[i, i] / total if total else float("nan")
        lines.append(f"{lab:<{w}}" + "".join(f"{v:>{w}d}" for v in cm[i]) + f"{recall:>{w}.3f}")
    return "\n".join(lines) + "\n"


def save_confusion_png(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | os.PathLike, *,
                       title: str = "") -> None:
    """Row-normalised confusion matrix heat map with counts, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(labels)
    fig = Figure(figsize=(1.0 + 0.8 * k, 0.8 + 0.7 * k), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true genre")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
