"""Title text model: character n-grams of track and album names -> genre probabilities.

Titles carry language (Spanish titles are a strong latin cue) and conventions ("- Original Mix",
"Remastered"). A TF-IDF + logistic regression on them gives genre probabilities that the tabular
model uses as extra features. Training rows get out-of-fold probabilities (grouped, so a row's own
album never scores it), new rows the full model's. "feat./with ..." segments are removed so
featured artists' names are not used. Saved as JSON (vocabulary, idf, coefficients), never pickled.
"""
from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

import numpy as np
from scipy.special import softmax
import pandas as pd

#: Name of the text column :func:`recsys.genres.tabular.tabular_features` adds.
TEXT_COLUMN = "title_text"
_FEAT = re.compile(r"[\(\[]?\s*\b(feat\.?|ft\.?|featuring|with)\s[^\)\]]*[\)\]]?", re.I)
NGRAMS = (2, 4)


def clean_title(text: object) -> str:
    """Lower-cased title without featured-artist segments; '' for missing."""
    if text is None or text is pd.NA or (isinstance(text, float) and np.isnan(text)):
        return ""
    return re.sub(r"\s+", " ", _FEAT.sub(" ", str(text))).strip().lower()


def title_text(df: pd.DataFrame) -> pd.Series:
    """``"<track name> | <album name>"`` per row (empty parts when the columns are absent)."""
    n = len(df)
    name = df["track_name"].tolist() if "track_name" in df.columns else [None] * n
    album = df["track_album_name"].tolist() if "track_album_name" in df.columns else [None] * n
    return pd.Series([f"{clean_title(a)} | {clean_title(b)}" if (clean_title(a) or clean_title(b)) else ""
                      for a, b in zip(name, album)], index=df.index, dtype=object)


def _album_key(text: str) -> str:
    return text.split(" | ", 1)[1] if " | " in text else text


class TitleTextModel:
    """TF-IDF (char 2-4-grams, sublinear tf, l2) + multinomial logistic regression on titles."""

    def __init__(self, *, max_features: int = 20000, C: float = 2.0, inner_folds: int = 5,
                 random_state: int = 0) -> None:
        self.max_features = max_features
        self.C = C
        self.inner_folds = inner_folds
        self.random_state = random_state

    def _fit_one(self, texts: Sequence[str], codes: np.ndarray, n_classes: int) -> dict[str, Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, min_df=2, sublinear_tf=True,
                              max_features=self.max_features, dtype=np.float64)
        M = vec.fit_transform(texts)
        lr = LogisticRegression(C=self.C, max_iter=1000, random_state=self.random_state).fit(M, codes)
        coef = np.zeros((n_classes, M.shape[1]))
        intercept = np.full(n_classes, -1e3)  # a class absent here gets ~0 probability
        if len(lr.classes_) == 2 and lr.coef_.shape[0] == 1:
            coef[lr.classes_[1]], intercept[lr.classes_[1]] = lr.coef_[0], lr.intercept_[0]
            coef[lr.classes_[0]], intercept[lr.classes_[0]] = 0.0, 0.0
        else:
            coef[lr.classes_], intercept[lr.classes_] = lr.coef_, lr.intercept_
        vocab = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        return {"vocabulary": vocab, "idf": vec.idf_.astype(np.float64), "coef": coef, "intercept": intercept}

    @staticmethod
    def _proba(state: dict[str, Any], texts: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import CountVectorizer

        counts = CountVectorizer(analyzer="char_wb", ngram_range=NGRAMS, vocabulary=state["vocabulary"],
                                 dtype=np.float64).transform(list(texts))
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf
        M = counts.multiply(state["idf"][None, :]).tocsr()
        norms = np.sqrt(np.asarray(M.multiply(M).sum(axis=1))).ravel()
        norms[norms == 0] = 1.0
        M = M.multiply(1.0 / norms[:, None]).tocsr()
        return softmax(np.asarray(M @ state["coef"].T) + state["intercept"][None, :], axis=1)

    @property
    def oof(self) -> np.ndarray:
        """Out-of-fold class probabilities of the training rows (what a stacked model may learn from)."""
        return self.oof_

    def fit(self, texts: Sequence[str], codes: np.ndarray, n_classes: int,
            groups: Sequence[Any] | None = None) -> "TitleTextModel":
        """Fit the full model and out-of-fold probabilities ``oof_`` for the training rows.

        Inner folds are grouped by ``groups`` (the artist when the caller knows it) or else by
        album name, so tracks of one album never score each other.
        """
        from sklearn.model_selection import StratifiedGroupKFold

        texts = [str(t) for t in texts]
        codes = np.asarray(codes, dtype=np.int64)
        g = np.asarray(groups if groups is not None
                       else [_album_key(t) or f"row{i}" for i, t in enumerate(texts)],
                       dtype=object).astype(str)
        self.oof_ = np.full((len(texts), n_classes), 1.0 / n_classes)
        k = min(self.inner_folds, len(set(g.tolist())), int(np.bincount(codes).max()))
        if k >= 2:
            cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=self.random_state)
            with warnings.catch_warnings():  # rare genres with fewer rows than folds are fine here
                warnings.simplefilter("ignore", UserWarning)
                splits = list(cv.split(np.zeros(len(codes)), codes, g))
            for tr, te in splits:
                if len(np.unique(codes[tr])) < 2:
                    continue
                try:
                    state = self._fit_one([texts[i] for i in tr], codes[tr], n_classes)
                except ValueError:  # e.g. no n-gram seen twice in a tiny fold: leave it uniform
                    continue
                self.oof_[te] = self._proba(state, [texts[i] for i in te])
        self.state_ = self._fit_one(texts, codes, n_classes)
        self.n_classes_ = n_classes
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Genre probabilities ``(n, n_classes_)`` of each title from the full-data model."""
        return self._proba(self.state_, [str(t) for t in texts])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe model (vocabulary, idf, coefficients, params): saved without pickle."""
        s = self.state_
        return {"ngram_range": list(NGRAMS), "vocabulary": s["vocabulary"], "idf": s["idf"].tolist(),
                "coef": s["coef"].tolist(), "intercept": s["intercept"].tolist(),
                "params": {"max_features": self.max_features, "C": self.C, "inner_folds": self.inner_folds,
                           "random_state": self.random_state}}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "TitleTextModel":
        """Rebuild a model written by :meth:`to_dict`, checking that its arrays agree in shape."""
        self = cls(**obj.get("params", {}))
        idf = np.asarray(obj["idf"], dtype=np.float64)
        coef = np.asarray(obj["coef"], dtype=np.float64)
        intercept = np.asarray(obj["intercept"], dtype=np.float64)
        vocab = {str(k): int(v) for k, v in obj["vocabulary"].items()}
        if (coef.ndim != 2 or coef.shape[1] != len(idf) or len(vocab) != len(idf)
                or len(intercept) != coef.shape[0]):
            raise ValueError("text model arrays have inconsistent shapes")
        self.state_ = {"vocabulary": vocab, "idf": idf, "coef": coef, "intercept": intercept}
        self.n_classes_ = coef.shape[0]
        return self
