"""Tabular genre classifier: features from audio statistics + metadata, LightGBM or a torch DNN.

One scikit-learn-style estimator, :class:`GenreClassifier`, wraps an imbalanced-learn pipeline
(median imputation -> scaling for the DNN -> SMOTE -> model). SMOTE lives inside the pipeline so
it only ever sees the rows passed to ``fit`` (a training fold), never test rows. Models are saved
in their own formats (LightGBM text, torch ``state_dict``) next to JSON metadata, never pickled.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..schema import STATS
from ..errors import InputError, ModelError, SchemaError
from ..io import (MANIFEST, atomic_dir, check_output_dir, read_json, read_lightgbm, read_manifest, write_json,
                  write_manifest)
from .dnn import DEFAULTS as DNN_DEFAULTS
from .text import TEXT_COLUMN, TitleTextModel, title_text

#: Bumped when the feature set or the on-disk layout changes; load() refuses other versions.
FORMAT_VERSION = 3  # 3: io manifest (kind, version, SHA-256 per file)
KIND = "recsys.genre_model"
MODEL_KINDS = ("lightgbm", "dnn")
#: Fewer non-empty titles than this and the title text model is skipped (nothing to learn).
MIN_TEXT_ROWS = 30

#: Metadata features derived from columns a user's table usually has (never artist or playlist).
META_FEATURES: tuple[str, ...] = (
    "release_year", "release_date_precision", "track_popularity",
    "name_words", "name_chars", "name_remix", "name_feat", "name_live_acoustic", "name_nonascii",
    "name_spanish_words", "name_upper_ratio", "name_remaster", "name_dash", "name_paren",
    "album_words", "album_is_single", "album_compilation", "album_remaster", "album_nonascii",
    "album_spanish_words",
)
FEATURES: tuple[str, ...] = (*STATS, *META_FEATURES)

_REMIX = re.compile(r"\b(remix|mix|rmx|edit|bootleg|vip|rework|flip|mashup|dub)\b", re.I)
_FEAT = re.compile(r"\b(feat\.?|ft\.?|featuring|with)\b|\bx\b|&", re.I)
_LIVE = re.compile(r"\b(live|acoustic|unplugged|session|demo|version|instrumental)\b", re.I)
_COMPILATION = re.compile(r"\b(hits|best of|greatest|collection|essentials|anthology|"
                          r"compilation|vol\.?|volume|playlist|summer|party)\b", re.I)
_REMASTER = re.compile(r"\b(remaster(ed)?|deluxe|anniversary|expanded|edition|reissue)\b", re.I)
# Very common Spanish/Portuguese function words: a cheap "title language" signal.
_SPANISH = frozenset("""de la el que en y los las mi tu te me un una por con para no se lo
    amor corazón corazon quiero vida noche baila bailar mami papi como más mas todo nada
    contigo sin bebé bebe loca loco dime sola solo ella yo eres soy voy vamos otra vez""".split())
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _numeric(df: pd.DataFrame, col: str) -> pd.Series:
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise SchemaError(f"column {col} must be numeric, got {raw[bad].iloc[0]!r} at row {i + 1}")
    return num.astype("float64")


def _text(df: pd.DataFrame, col: str) -> pd.Series | None:
    if col not in df.columns:
        return None
    s = df[col]
    return s.astype("object").where(s.notna(), None)


def _map_text(s: pd.Series | None, n: int, fn) -> np.ndarray:
    if s is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else float(fn(str(v))) for v in s.tolist()], dtype=np.float64)


def _spanish_words(text: str) -> int:
    return sum(w.lower() in _SPANISH for w in _WORD.findall(text))


def _upper_ratio(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def _base_title(text: str) -> str:
    return re.sub(r"\s*[\(\[-].*$", "", text).strip().lower()


def tabular_features(df: pd.DataFrame) -> pd.DataFrame:
    """The feature table: 12 statistics + metadata-derived columns, one row per input row.

    Uses only what a user's own table has (statistics, release date, popularity, track and
    album names); never artist identity or playlist fields, which would leak the label.
    A missing metadata column gives a NaN column, so a table of the 12 statistics alone works.
    The numeric columns are :data:`FEATURES`; a last text column ``title_text`` (track | album
    name, featured artists removed) feeds the classifier's title text model.
    """
    if df is None or len(df) == 0:
        raise SchemaError("feature table: input is empty")
    missing = [c for c in STATS if c not in df.columns]
    if missing:
        raise SchemaError(f"missing column(s) {', '.join(missing)} "
                          f"(need the 12 statistics: {', '.join(STATS)})")
    n = len(df)
    out = pd.DataFrame(index=df.index)
    for col in STATS:
        out[col] = _numeric(df, col)
        if out[col].isna().all():
            raise SchemaError(f"column {col} has no values (all missing)")
    if "release_year" in df.columns:
        out["release_year"] = _numeric(df, "release_year")
    elif "track_album_release_date" in df.columns:
        date = df["track_album_release_date"].astype("string")
        out["release_year"] = pd.to_numeric(date.str.slice(0, 4), errors="coerce").astype("float64")
    else:
        out["release_year"] = np.nan
    date = _text(df, "track_album_release_date")
    # Spotify stores old or obscure releases with year-only dates: 0 = year, 1 = month, 2 = day.
    out["release_date_precision"] = _map_text(
        date, n, lambda s: {4: 0, 7: 1, 10: 2}.get(len(s.strip()), np.nan))
    out["track_popularity"] = _numeric(df, "track_popularity") if "track_popularity" in df.columns else np.nan
    name = _text(df, "track_name")
    out["name_words"] = _map_text(name, n, lambda s: len(s.split()))
    out["name_chars"] = _map_text(name, n, len)
    out["name_remix"] = _map_text(name, n, lambda s: bool(_REMIX.search(s)))
    out["name_feat"] = _map_text(name, n, lambda s: bool(_FEAT.search(s)))
    out["name_live_acoustic"] = _map_text(name, n, lambda s: bool(_LIVE.search(s)))
    out["name_nonascii"] = _map_text(name, n, lambda s: any(ord(c) > 127 and c.isalpha() for c in s))
    out["name_spanish_words"] = _map_text(name, n, _spanish_words)
    out["name_upper_ratio"] = _map_text(name, n, _upper_ratio)
    out["name_remaster"] = _map_text(name, n, lambda s: bool(_REMASTER.search(s)))
    out["name_dash"] = _map_text(name, n, lambda s: " - " in s)
    out["name_paren"] = _map_text(name, n, lambda s: "(" in s or "[" in s)
    album = _text(df, "track_album_name")
    out["album_words"] = _map_text(album, n, lambda s: len(s.split()))
    if album is not None and name is not None:
        out["album_is_single"] = [np.nan if (a is None or t is None)
                                  else float(_base_title(a) == _base_title(t))
                                  for a, t in zip(album.tolist(), name.tolist())]
    else:
        out["album_is_single"] = np.nan
    out["album_compilation"] = _map_text(album, n, lambda s: bool(_COMPILATION.search(s)))
    out["album_remaster"] = _map_text(album, n, lambda s: bool(_REMASTER.search(s)))
    out["album_nonascii"] = _map_text(album, n, lambda s: any(ord(c) > 127 and c.isalpha() for c in s))
    out["album_spanish_words"] = _map_text(album, n, _spanish_words)
    out = out[list(FEATURES)].astype("float64")
    out[TEXT_COLUMN] = title_text(df)
    return out


@dataclass
class GenreModelConfig:
    """Tunables of :class:`GenreClassifier` (TOML section ``[genres]``)."""

    model: str = "lightgbm"
    smote: bool = True
    smote_k: int = 5
    random_state: int = 0
    text: bool = True
    text_C: float = 2.0
    # weight of the mean probabilities of the same artist's tracks in one prediction call (0: per track)
    artist_pooling: float = 0.8
    # LightGBM
    n_estimators: int = 600
    learning_rate: float = 0.03
    num_leaves: int = 31
    min_child_samples: int = 20
    subsample: float = 0.8
    colsample_bytree: float = 0.7
    reg_lambda: float = 1.0
    # DNN (defaults: recsys.genres.dnn.DEFAULTS)
    hidden: tuple[int, ...] = DNN_DEFAULTS["hidden"]
    dropout: float = DNN_DEFAULTS["dropout"]
    weight_decay: float = DNN_DEFAULTS["weight_decay"]
    lr: float = DNN_DEFAULTS["lr"]
    epochs: int = DNN_DEFAULTS["epochs"]
    batch_size: int = DNN_DEFAULTS["batch_size"]
    patience: int = DNN_DEFAULTS["patience"]
    val_fraction: float = DNN_DEFAULTS["val_fraction"]
    n_jobs: int = 1


_PARAM_NAMES = tuple(f.name for f in dataclasses.fields(GenreModelConfig))


class GenreClassifier:
    """Genre classifier on :func:`tabular_features` (LightGBM or torch DNN), scikit-learn style.

    ``fit(X, y)`` -> self; ``predict_proba`` columns follow ``classes_``. Internally an imblearn
    pipeline imputes medians, scales (DNN), oversamples with SMOTE (fit only) and trains the model.
    """

    def __init__(self, model: str = "lightgbm", smote: bool = True, random_state: int = 0,
                 **params: Any) -> None:
        """Keyword parameters and their defaults: the fields of :class:`GenreModelConfig`."""
        unknown = set(params) - set(_PARAM_NAMES)
        if unknown:
            raise TypeError(f"unknown parameter(s) {', '.join(sorted(unknown))} for GenreClassifier")
        config = dataclasses.asdict(GenreModelConfig(model=model, smote=smote, random_state=random_state))
        for k, v in {**config, **params}.items():
            setattr(self, k, tuple(v) if k == "hidden" else v)

    # -- scikit-learn protocol -------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn API, so the estimator can be cloned in CV)."""
        return {name: getattr(self, name) for name in _PARAM_NAMES}

    def set_params(self, **params: Any) -> "GenreClassifier":
        """Set constructor parameters (scikit-learn API); unknown names raise ValueError."""
        for k, v in params.items():
            if k not in _PARAM_NAMES:
                raise ValueError(f"unknown parameter {k!r} for GenreClassifier")
            setattr(self, k, tuple(v) if k == "hidden" else v)
        return self

    def __repr__(self) -> str:
        return f"GenreClassifier(model={self.model!r}, smote={self.smote}, random_state={self.random_state})"

    # -- building blocks -------------------------------------------------------------------
    def _make_model(self, n_classes: int):
        if self.model == "lightgbm":
            from lightgbm import LGBMClassifier

            return LGBMClassifier(
                n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                min_child_samples=self.min_child_samples, subsample=self.subsample, subsample_freq=1,
                colsample_bytree=self.colsample_bytree, reg_lambda=self.reg_lambda,
                random_state=self.random_state, n_jobs=self.n_jobs, verbose=-1, deterministic=True,
                force_row_wise=True)
        from .dnn import TorchMLPClassifier

        return TorchMLPClassifier(**{k: getattr(self, k) for k in DNN_DEFAULTS},
                                  random_state=self.random_state, n_threads=self.n_jobs)

    def _pipeline(self, n_classes: int, min_class: int):
        from imblearn.over_sampling import SMOTE
        from imblearn.pipeline import Pipeline
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import StandardScaler

        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median",
                                                                 keep_empty_features=True))]
        if self.model == "dnn":
            steps.append(("scale", StandardScaler()))
        if self.smote and min_class > 1:
            steps.append(("smote", SMOTE(k_neighbors=min(self.smote_k, min_class - 1),
                                         random_state=self.random_state)))
        steps.append(("model", self._make_model(n_classes)))
        return Pipeline(steps)

    def _matrix(self, X: pd.DataFrame | np.ndarray, *, fitting: bool) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            X = X.drop(columns=[TEXT_COLUMN], errors="ignore")
            if fitting:
                self.input_features_ = [str(c) for c in X.columns]
            else:
                missing = [c for c in self.input_features_ if c not in X.columns]
                if missing:
                    raise SchemaError(f"feature table lacks column(s) {', '.join(missing[:5])}"
                                      + (" ..." if len(missing) > 5 else ""))
                X = X[self.input_features_]
            try:
                arr = X.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                bad = next(c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c]))
                raise SchemaError(f"feature column {bad} must be numeric") from None
        else:
            try:
                arr = np.asarray(X, dtype=np.float64)
            except (TypeError, ValueError):
                raise SchemaError("features must be numeric") from None
            if arr.ndim != 2:
                raise SchemaError(f"features must be a 2-D table, got shape {arr.shape}")
            if fitting:
                self.input_features_ = [f"f{i}" for i in range(arr.shape[1])]
            elif arr.shape[1] != len(self.input_features_):
                raise SchemaError(f"expected {len(self.input_features_)} feature columns, got {arr.shape[1]}")
        if np.isinf(arr).any():
            raise SchemaError("features contain infinite values")
        return arr

    # -- fit / predict ---------------------------------------------------------------------
    def fit(self, X: pd.DataFrame | np.ndarray, y: Sequence[Any], *,
            groups: Sequence[Any] | None = None) -> "GenreClassifier":
        """Fit text model, imputer/scaler/SMOTE/model on (X, y); rows with a missing label are an error.

        ``groups`` (e.g. artists) only shapes the title text model's inner out-of-fold split;
        without it the inner split is grouped by album name.
        """
        if self.model not in MODEL_KINDS:
            raise InputError(f"unknown model {self.model!r} (choose {' or '.join(MODEL_KINDS)})")
        if X is None or len(X) == 0:
            raise InputError("cannot fit a genre model on an empty table")
        arr = self._matrix(X, fitting=True)
        labels = pd.Series(list(y) if not isinstance(y, pd.Series) else y.tolist(), dtype="object")
        if len(labels) != len(arr):
            raise SchemaError(f"{len(arr)} feature rows but {len(labels)} labels")
        if labels.isna().any():
            raise SchemaError(f"{int(labels.isna().sum())} row(s) have no genre label; "
                              "drop them before fitting")
        labels = labels.astype(str)
        classes, codes = np.unique(labels.to_numpy(), return_inverse=True)
        if len(classes) < 2:
            raise SchemaError(f"labels have a single class ({classes[0]!r}); "
                              "need at least two genres to train")
        counts = np.bincount(codes)
        self.text_model_ = None
        texts = _texts(X)
        if self.text and texts is not None and sum(bool(t) for t in texts) >= MIN_TEXT_ROWS:
            tm = TitleTextModel(C=self.text_C, random_state=self.random_state)
            try:
                tm.fit(texts, codes, len(classes), groups=None if groups is None else list(groups))
            except ValueError:  # vocabulary empty: titles too few or too short to learn from
                tm = None
            if tm is not None:
                arr = np.hstack([arr, tm.oof])
                self.text_model_ = tm
        self.feature_names_ = list(self.input_features_) + (
            [f"text_p_{c}" for c in classes] if self.text_model_ is not None else [])
        pipe = self._pipeline(len(classes), int(counts.min()))
        pipe.fit(arr, codes)
        self.classes_ = np.asarray([str(c) for c in classes], dtype=object)
        self.n_features_in_ = arr.shape[1]
        self.class_counts_ = {str(c): int(n) for c, n in zip(classes, counts)}
        self.impute_medians_ = np.asarray(pipe.named_steps["impute"].statistics_, dtype=np.float64)
        self.impute_medians_ = np.where(np.isnan(self.impute_medians_), 0.0, self.impute_medians_)
        if "scale" in pipe.named_steps:
            sc = pipe.named_steps["scale"]
            self.scale_mean_ = np.asarray(sc.mean_, dtype=np.float64)
            self.scale_std_ = np.asarray(sc.scale_, dtype=np.float64)
        else:
            self.scale_mean_ = self.scale_std_ = None
        est = pipe.named_steps["model"]
        self.model_ = est.booster_ if self.model == "lightgbm" else est
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ModelError("GenreClassifier is not fitted yet (call fit or load)")

    def _transform(self, arr: np.ndarray) -> np.ndarray:
        arr = np.where(np.isnan(arr), self.impute_medians_[None, :], arr)
        if self.scale_mean_ is not None:
            arr = (arr - self.scale_mean_) / self.scale_std_
        return arr

    def predict_proba(self, X: pd.DataFrame | np.ndarray, *,
                      groups: Sequence[Any] | None = None) -> np.ndarray:
        """Class probabilities, shape (n, len(classes_)), columns in ``classes_`` order.

        With ``groups`` (one artist key per row, e.g. :func:`~recsys.genres.evaluate.artist_groups`)
        each row's probabilities are pooled with those of its artist's other rows in ``X``
        (:func:`pool_by_group`, weight ``artist_pooling``); without them every row stands alone.
        """
        self._check_fitted()
        if X is None or len(X) == 0:
            return np.zeros((0, len(self.classes_)))
        arr = self._matrix(X, fitting=False)
        if self.text_model_ is not None:
            texts = _texts(X)
            arr = np.hstack([arr, self.text_model_.predict_proba(texts if texts is not None
                                                                 else [""] * len(arr))])
        arr = self._transform(arr)
        if self.model == "lightgbm":
            proba = np.asarray(self.model_.predict(arr), dtype=np.float64)
            if proba.ndim == 1:  # binary objective returns P(class 1)
                proba = np.column_stack([1.0 - proba, proba])
        else:
            proba = self.model_.predict_proba(arr)
        if groups is not None:
            proba = pool_by_group(proba, groups, weight=self.artist_pooling)
        return proba

    def predict(self, X: pd.DataFrame | np.ndarray, *, groups: Sequence[Any] | None = None) -> np.ndarray:
        """Most probable genre label per row (values from ``classes_``); ``groups`` as in predict_proba."""
        proba = self.predict_proba(X, groups=groups)
        return self.classes_[np.argmax(proba, axis=1)] if len(proba) else np.asarray([], dtype=object)

    # -- persistence -----------------------------------------------------------------------
    def write_files(self, directory: str | os.PathLike) -> None:
        """Write the model files into an existing directory (use :meth:`save` for atomic saves)."""
        self._check_fitted()
        d = Path(directory)
        model_file = "model.lgb.txt" if self.model == "lightgbm" else "model.pt"
        if self.model == "lightgbm":
            self.model_.save_model(str(d / model_file))
            arch: dict[str, Any] = {}
        else:
            arch = self.model_.save_state(d / model_file)
        if self.text_model_ is not None:
            write_json(d / "text_model.json", self.text_model_.to_dict())
        write_json(d / "preprocess.json", {
            "input_features": self.input_features_,
            "feature_names": self.feature_names_, "impute_medians": self.impute_medians_.tolist(),
            "scale_mean": None if self.scale_mean_ is None else self.scale_mean_.tolist(),
            "scale_std": None if self.scale_std_ is None else self.scale_std_.tolist()})
        write_manifest(d, kind=KIND, version=FORMAT_VERSION, settings=self.get_params(), model=self.model,
                       classes=list(self.classes_), class_counts=self.class_counts_, architecture=arch)

    def save(self, directory: str | os.PathLike, *, force: bool = False) -> Path:
        """Save atomically: the directory appears complete or not at all (never over a user's files)."""
        check_output_dir(directory, kind=KIND, force=force)
        with atomic_dir(directory) as tmp:
            self.write_files(tmp)
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "GenreClassifier":
        """Load a saved model; any missing, truncated or corrupted file is a one-line ModelError."""
        d = Path(directory)
        if d.exists() and not d.is_dir():
            raise ModelError(f"{d}: not a directory (expected a saved genre model)")
        meta = read_manifest(d, kind=KIND, version=FORMAT_VERSION, what="genre model", error=ModelError)
        try:
            params = {k: v for k, v in meta["settings"].items() if k in _PARAM_NAMES}
            files: dict[str, str] = meta["files"]
            classes = [str(c) for c in meta["classes"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{d / MANIFEST}: malformed model metadata ({exc})") from None
        pre = read_json(d / "preprocess.json", what="model metadata", error=ModelError)
        self = cls(**params)
        try:
            self.input_features_ = [str(c) for c in pre["input_features"]]
            self.feature_names_ = [str(c) for c in pre["feature_names"]]
            self.impute_medians_ = np.asarray(pre["impute_medians"], dtype=np.float64)
            self.scale_mean_ = (None if pre["scale_mean"] is None
                                else np.asarray(pre["scale_mean"], dtype=np.float64))
            self.scale_std_ = (None if pre["scale_std"] is None
                               else np.asarray(pre["scale_std"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{d / 'preprocess.json'}: malformed preprocessing ({exc})") from None
        self.classes_ = np.asarray(classes, dtype=object)
        self.class_counts_ = dict(meta.get("class_counts") or {})
        self.n_features_in_ = len(self.feature_names_)
        self.text_model_ = None
        if "text_model.json" in files:
            obj = read_json(d / "text_model.json", what="model metadata", error=ModelError)
            try:
                self.text_model_ = TitleTextModel.from_dict(obj)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ModelError(f"{d / 'text_model.json'}: malformed text model ({exc})") from None
            if self.text_model_.n_classes_ != len(classes):
                raise ModelError(f"{d / 'text_model.json'}: text model classes do not match the genre model")
        if self.model == "lightgbm":
            self.model_ = read_lightgbm(d / "model.lgb.txt", error=ModelError)
        else:
            from .dnn import TorchMLPClassifier

            self.model_ = TorchMLPClassifier.load_state(d / "model.pt", meta.get("architecture") or {},
                                                        n_features=self.n_features_in_,
                                                        n_classes=len(classes))
        return self


def pool_by_group(proba: np.ndarray, groups: Sequence[Any], *, weight: float) -> np.ndarray:
    """``(1 - weight) * p_row + weight * mean(p over the row's group)``: an artist's tracks vote together.

    Genre is largely a property of the artist, so the model's own predictions for an artist's other
    tracks are evidence about each one (no label is used). Singleton groups are unchanged.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"artist_pooling must be in [0, 1], got {weight}")
    keys = np.asarray(groups, dtype=object)
    if len(keys) != len(proba):
        raise ValueError(f"groups has {len(keys)} entries for {len(proba)} rows")
    if weight == 0.0 or len(proba) == 0:
        return proba
    _, inv = np.unique(keys.astype(str), return_inverse=True)
    sums = np.zeros((int(inv.max()) + 1, proba.shape[1]))
    np.add.at(sums, inv, proba)
    mean = sums[inv] / np.bincount(inv)[inv, None]
    return (1.0 - weight) * proba + weight * mean


def _texts(X: Any) -> list[str] | None:
    if isinstance(X, pd.DataFrame) and TEXT_COLUMN in X.columns:
        col = X[TEXT_COLUMN]
        return ["" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v)
                for v in col.tolist()]
    return None


def predict_table(model: "GenreClassifier | str | os.PathLike", rows: pd.DataFrame, *,
                  pool_artists: bool = True) -> pd.DataFrame:
    """Predictions for every row of a read catalogue (``catalog.read_rows``, not merged): track_id,
    predicted_genre, true_genre (only when the rows have genre labels), p_<genre>.

    ``pool_artists``: pool each row's probabilities with its artist's other rows (the model's
    ``artist_pooling`` weight); rows without an artist stand alone.
    """
    from .evaluate import artist_groups

    clf = model if isinstance(model, GenreClassifier) else GenreClassifier.load(model)
    groups = artist_groups(rows) if pool_artists else None
    proba = clf.predict_proba(tabular_features(rows), groups=groups)
    out = pd.DataFrame({"track_id": rows["track_id"].astype(str).to_numpy(),
                        "predicted_genre": clf.classes_[np.argmax(proba, axis=1)].astype(str)})
    if "parent_genre" in rows.columns:
        out["true_genre"] = rows["parent_genre"].astype("string").to_numpy()
    for j, genre in enumerate(clf.classes_):
        out[f"p_{genre}"] = proba[:, j]
    return out
