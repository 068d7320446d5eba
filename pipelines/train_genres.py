"""Batch stage: evaluate the tabular genre model by artist-grouped CV, then fit and save it.

Reads a catalogue, merges it to one row per track (label: the track's primary parent genre),
runs the chosen model and two baselines on the same artist-grouped folds (SMOTE only inside
each training fold), fits the final model on every labelled track, and writes the model dir
atomically: model files + report.json + confusion.txt + confusion.png.

Run it as ``recsys genres train --catalog data/spotify_demo.csv.gz --out out/genre_model``.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from recsys.catalog import load_catalog
from recsys.errors import SchemaError
from recsys.schema import STATS
from recsys.genres.evaluate import (Candidate, artist_groups, confusion_text, cross_validate, logreg_baseline,
                                    majority_baseline, metrics_table, save_confusion_png)
from recsys.genres.tabular import FEATURES, KIND, GenreClassifier, tabular_features
from recsys.genres.taxonomy import Taxonomy
from recsys.io import atomic_dir, check_output_dir, write_json, write_text

Echo = Callable[[str], None]


def labelled_tracks(catalog: str | os.PathLike | pd.DataFrame, *, genre_map: str | os.PathLike | None = None,
                    echo: Echo = print, on_conflict: str = "error") -> pd.DataFrame:
    """Merged catalogue restricted to tracks with a parent genre; errors if nothing is trainable."""
    taxonomy = Taxonomy.load(genre_map)
    cat = load_catalog(catalog, taxonomy=taxonomy, on_conflict=on_conflict)
    where = catalog if not isinstance(catalog, pd.DataFrame) else "catalog"
    # a catalogue may lack statistics (it still builds an index), but the genre model needs all 12
    empty = [c for c in STATS if c not in cat.columns or cat[c].isna().all()]
    if empty:
        raise SchemaError(f"{where}: the genre model needs the 12 statistics; no values for "
                          f"{', '.join(empty)}")
    if "parent_genre" not in cat.columns:
        raise SchemaError(f"{where}: no genre labels to train on (need a playlist_genre, genre or "
                          "playlist_subgenre column)")
    has = cat["parent_genre"].notna()
    dropped = int((~has).sum())
    cat = cat[has].reset_index(drop=True)
    if dropped:
        echo(f"dropped {dropped} track(s) whose genre maps to no parent (see `recsys genres map --report`)")
    if cat.empty:
        raise SchemaError(f"{where}: no track has a genre that maps to a parent genre")
    classes = cat["parent_genre"].astype(str).unique()
    if len(classes) < 2:
        raise SchemaError(f"{where}: labels have a single class ({classes[0]!r}); "
                          "need at least two genres to train")
    return cat


def run(catalog: str | os.PathLike | pd.DataFrame, out: str | os.PathLike, *, model: str = "lightgbm",
        folds: int = 5, genre_map: str | os.PathLike | None = None, smote: bool = True, seed: int = 0,
        params: dict[str, Any] | None = None, echo: Echo = print, force: bool = False,
        on_conflict: str = "error") -> dict[str, Any]:
    """Grouped CV of ``model`` beside baselines, then the final fit; returns the report dict."""
    params = dict(params or {})
    t0 = time.perf_counter()
    check_output_dir(out, kind=KIND, force=force,
                     inputs=[catalog if not isinstance(catalog, pd.DataFrame) else None, genre_map])
    cat = labelled_tracks(catalog, genre_map=genre_map, echo=echo, on_conflict=on_conflict)
    X = tabular_features(cat)
    y = cat["parent_genre"].astype(str).to_numpy()
    groups = artist_groups(cat)
    counts = pd.Series(y).value_counts()
    echo(f"{len(cat)} labelled tracks, {len(set(groups))} artists, {len(counts)} genres: "
         + ", ".join(f"{g} {n}" for g, n in counts.items()))

    def make() -> GenreClassifier:
        return GenreClassifier(model=model, smote=smote, random_state=seed, **params)

    # the model's figure pools each test track with its artist's other test tracks (artist_pooling);
    # the per-track row is the same fitted model without it
    candidates = [Candidate(model, make, per_track=f"{model}-per-track"),
                  Candidate("majority", majority_baseline),
                  Candidate("logreg-12-stats", lambda: logreg_baseline(seed))]
    echo(f"artist-grouped {folds}-fold CV ({model}{' + SMOTE in training folds' if smote else ''}) "
         "beside majority and logistic-regression baselines ...")
    cv = cross_validate(candidates, X, y, groups, n_splits=folds, seed=seed, progress=echo)
    table = metrics_table(cv)
    echo(table)

    echo(f"fitting final {model} on all {len(cat)} tracks ...")
    final = make().fit(X, y, groups=groups)
    chosen = cv["results"][model]
    report = {
        "stage": "train_genres", "model": model, "smote": smote, "seed": seed, "params": final.get_params(),
        "catalog": str(catalog) if not isinstance(catalog, pd.DataFrame) else "<DataFrame>",
        "genre_map": str(genre_map) if genre_map else None, "features": list(FEATURES),
        "class_counts": {str(k): int(v) for k, v in counts.items()}, "cv": cv,
        "summary": {name: {"accuracy": r["accuracy_mean"], "macro_f1": r["macro_f1_mean"]}
                    for name, r in cv["results"].items()},
        "python": platform.python_version(), "seconds": round(time.perf_counter() - t0, 1),
    }
    title = (f"{model}: artist-grouped {folds}-fold CV, accuracy {chosen['accuracy_mean']:.3f}, "
             f"macro-F1 {chosen['macro_f1_mean']:.3f}")
    out = Path(out)
    with atomic_dir(out) as tmp:
        write_json(tmp / "report.json", report)
        write_text(tmp / "metrics.txt", table + "\n")
        write_text(tmp / "confusion.txt", confusion_text(chosen["confusion"], chosen["labels"], title=title))
        save_confusion_png(chosen["confusion"], chosen["labels"], tmp / "confusion.png", title=title)
        final.write_files(tmp)  # last: its manifest checksums every file of the directory
    echo(f"model, report.json, confusion.txt and confusion.png written to {out}")
    return report

