"""Benchmark: artist-grouped K-fold CV of the tabular genre models beside baselines.

Runs LightGBM and the DNN (both with SMOTE in training folds) plus the majority-class and
logistic-regression-on-12-statistics baselines on the SAME artist-grouped folds, and LightGBM
on the 12 statistics + year + popularity only (the reference point of issue 2).

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python scripts/bench_genres.py \
        [--catalog ../shared/data/spotify/spotify_songs_dev.csv.gz] [--folds 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from recsys.schema import STATS
from recsys.genres.evaluate import (Candidate, artist_groups, cross_validate, logreg_baseline,
                                    majority_baseline, metrics_table)
from recsys.genres.tabular import GenreClassifier, tabular_features

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "spotify" / "spotify_songs_dev.csv.gz"


class _Subset:
    """Fit a GenreClassifier on a subset of the feature columns (for the reference row)."""

    def __init__(self, cols: list[str], **params) -> None:
        self.cols, self.params = cols, params

    def fit(self, X, y):
        self.clf_ = GenreClassifier(**self.params).fit(X[self.cols], y)
        return self

    def predict(self, X):
        return self.clf_.predict(X[self.cols])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", default=str(DEFAULT))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="lightgbm,dnn,lightgbm-stats+year+pop",
                    help="comma list of: lightgbm, dnn, lightgbm-nosmote, lightgbm-notext, "
                         "lightgbm-stats+year+pop")
    ap.add_argument("--params", default="{}", help='JSON of GenreClassifier parameters, e.g. {"text_C": 4}')
    ap.add_argument("--json", default=None, help="also write the full CV report here")
    args = ap.parse_args()

    from pipelines.train_genres import labelled_tracks

    t0 = time.perf_counter()
    cat = labelled_tracks(args.catalog)
    X = tabular_features(cat)
    y = cat["parent_genre"].astype(str).to_numpy()
    groups = artist_groups(cat)
    print(f"{args.catalog}: {len(cat)} tracks, {len(set(groups))} artists, "
          f"{X.shape[1] - 1} numeric features + title text (loaded in {time.perf_counter() - t0:.1f}s)")
    s = args.seed
    kw = json.loads(args.params)
    known = {
        "lightgbm": lambda: GenreClassifier(model="lightgbm", random_state=s, **kw),
        "lightgbm-nosmote": lambda: GenreClassifier(model="lightgbm", smote=False, random_state=s, **kw),
        "lightgbm-notext": lambda: GenreClassifier(model="lightgbm", text=False, random_state=s, **kw),
        "dnn": lambda: GenreClassifier(model="dnn", random_state=s, **kw),
        "lightgbm-stats+year+pop": lambda: _Subset([*STATS, "release_year", "track_popularity"],
                                                   random_state=s),
    }
    cands = [Candidate(m, known[m], per_track=None if m.startswith("lightgbm-stats") else f"{m}-per-track")
             for m in args.models.split(",")]
    cands += [Candidate("majority", majority_baseline),
              Candidate("logreg-12-stats", lambda: logreg_baseline(s))]
    cv = cross_validate(cands, X, y, groups, n_splits=args.folds, seed=s, progress=print)
    print(metrics_table(cv))
    print("fit+predict seconds over all folds: "
          + ", ".join(f"{n} {r['fit_predict_seconds']:.0f}" for n, r in cv["results"].items()))
    print(f"total {time.perf_counter() - t0:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(cv, indent=2))


if __name__ == "__main__":
    main()
