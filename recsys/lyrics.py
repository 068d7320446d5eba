"""Lyric topics: TF-IDF + NMF over transcripts and user lyrics, and the ``lyrics`` feature block.

The lyrics block says what a song is about. Per file it transcribes the vocal stem of the
excerpt (:mod:`recsys.audio.transcription`) and grades it (``lyrics__status``: ok,
low_confidence, repetitive, instrumental, wrong_language, failed); once the whole corpus is in,
``finalize`` fits topics over every ``ok`` transcript plus any lyrics the user supplies
(``track_id,text``) and adds one ``lyrics__topic_<k>`` column per topic. Rows whose transcript is
not ``ok`` (and who have no user lyrics) get ``ok=False``: the lyrics block is missing for them.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import InputError, ModelError, SchemaError
from .io import artifact_dir, read_json, read_manifest, read_table, write_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: io manifest (kind, version, SHA-256 per file)
KIND = "recsys.lyric_topics"
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"
#: sung filler that carries no topic (added to English stop words)
FILLERS = frozenset("""oh ooh ohh ah ahh aah yeah yea yeh hey la na da mm mmm hmm uh huh whoa woah wo
ay ayy eh ha ho yo ya gonna wanna gotta em im don didn ll ve re doesn isn ain cause""".split())


def _stop_words(stop_words: str | Sequence[str] | None) -> list[str] | None:
    if stop_words is None or stop_words == "none":
        return None
    if stop_words == "english":
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return sorted(set(ENGLISH_STOP_WORDS) | FILLERS)
    return sorted(set(stop_words))


class LyricTopics:
    """TF-IDF + NMF topic model (scikit-learn), saved as JSON + ``.npy`` (no pickle).

    ``fit(texts)`` learns the vocabulary, IDF weights and ``n_topics`` topics (fewer when the
    corpus is too small: ``n_topics_``); ``transform(texts)`` gives each text's topic weights,
    rows normalised to sum to 1 (a text with no known word is all zeros).
    """

    def __init__(self, n_topics: int = 8, *, max_features: int = 5000, min_df: int | float = 1,
                 max_df: float = 0.95, stop_words: str | Sequence[str] | None = "english",
                 sublinear_tf: bool = True, max_iter: int = 400, random_state: int = 0) -> None:
        self.n_topics = n_topics
        self.max_features = max_features
        self.min_df = min_df
        self.max_df = max_df
        self.stop_words = stop_words
        self.sublinear_tf = sublinear_tf
        self.max_iter = max_iter
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n_topics", "max_features", "min_df", "max_df", "stop_words",
                                              "sublinear_tf", "max_iter", "random_state")}

    @staticmethod
    def _clean(texts: Iterable[Any]) -> list[str]:
        return ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]

    @property
    def topics_found(self) -> int:
        """How many topics the fitted model has (``n_topics`` or fewer on a small corpus)."""
        return self.n_topics_

    def fit(self, texts: Iterable[str], y: Any = None) -> "LyricTopics":
        from sklearn.decomposition import NMF
        from sklearn.feature_extraction.text import TfidfVectorizer

        docs = [t for t in self._clean(texts) if t.strip()]
        if not docs:
            raise InputError("no lyrics to fit topics on (every transcript is empty or instrumental)")
        max_df = self.max_df if len(docs) > 2 else 1.0  # a tiny corpus would lose every word
        vec = TfidfVectorizer(max_features=self.max_features, min_df=self.min_df, max_df=max_df,
                              stop_words=_stop_words(self.stop_words), token_pattern=TOKEN_PATTERN,
                              sublinear_tf=self.sublinear_tf, lowercase=True, strip_accents="unicode")
        try:
            X = vec.fit_transform(docs)
        except ValueError as exc:  # empty vocabulary
            raise InputError(f"no words left to model topics ({exc})") from None
        k = int(min(self.n_topics, X.shape[0], X.shape[1]))
        if k < self.n_topics:
            log.warning("only %d topic(s) fit this corpus (%d texts, %d words); asked for %d",
                        k, X.shape[0], X.shape[1], self.n_topics)
        nmf = NMF(n_components=k, init="nndsvda", max_iter=self.max_iter, random_state=self.random_state)
        nmf.fit(X)
        self.vocabulary_ = list(vec.get_feature_names_out())
        self.idf_ = np.asarray(vec.idf_, dtype=np.float64)
        self.components_ = np.asarray(nmf.components_, dtype=np.float64)
        self.n_topics_ = k
        self.n_documents_ = X.shape[0]
        return self

    def _check(self) -> None:
        if not hasattr(self, "components_"):
            raise ModelError("LyricTopics is not fitted; call fit() or load() first")

    def tfidf(self, texts: Iterable[str]):
        """TF-IDF rows of ``texts`` in the fitted vocabulary (the vectoriser's own weighting)."""
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        self._check()
        cv = CountVectorizer(vocabulary=self.vocabulary_, token_pattern=TOKEN_PATTERN, lowercase=True,
                             strip_accents="unicode")
        X = cv.transform(self._clean(texts)).astype(np.float64)
        if self.sublinear_tf:
            X.data = np.log(X.data) + 1.0
        X = X.multiply(self.idf_[None, :]).tocsr()
        return normalize(X, norm="l2")

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """Topic proportions ``(n_texts, n_topics_)``; each non-empty row sums to 1."""
        from sklearn.decomposition import non_negative_factorization

        X = self.tfidf(texts)
        W, _, _ = non_negative_factorization(X, H=self.components_, n_components=self.n_topics_,
                                             update_H=False, init="custom", max_iter=self.max_iter,
                                             random_state=self.random_state)
        s = W.sum(axis=1, keepdims=True)
        return np.divide(W, s, out=np.zeros_like(W), where=s > 0)

    def fit_transform(self, texts: Sequence[str], y: Any = None) -> np.ndarray:
        return self.fit(texts).transform(texts)

    def top_words(self, n: int = 10) -> list[list[str]]:
        """The ``n`` heaviest words of each topic."""
        self._check()
        return [[self.vocabulary_[i] for i in np.argsort(-row)[:n] if row[i] > 0] for row in self.components_]

    def save(self, path: str | Path, *, force: bool = False) -> None:
        """Write the artefact dir: ``topics.json`` (vocabulary), ``idf.npy``, ``components.npy``
        + manifest."""
        self._check()
        with artifact_dir(path, kind=KIND, version=FORMAT_VERSION, settings=self.get_params(),
                          force=force) as (tmp, extra):
            write_json(tmp / "topics.json", {"vocabulary": self.vocabulary_})
            for name, arr in (("idf.npy", self.idf_), ("components.npy", self.components_)):
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                (tmp / name).write_bytes(buf.getvalue())
            extra.update(n_topics_=self.n_topics_, n_documents_=self.n_documents_)

    @classmethod
    def load(cls, path: str | Path) -> "LyricTopics":
        """Load a saved topic model (kind, version and checksums verified)."""
        path = Path(path)
        meta = read_manifest(path, kind=KIND, version=FORMAT_VERSION,
                             what="lyric topic model", error=ModelError)
        try:
            vocab = list(read_json(path / "topics.json", error=ModelError)["vocabulary"])
            idf = np.load(path / "idf.npy", allow_pickle=False)
            comp = np.load(path / "components.npy", allow_pickle=False)
            n_topics = int(meta["n_topics_"])
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise ModelError(f"{path}: lyric topic model is corrupted ({exc})") from None
        if idf.shape != (len(vocab),) or comp.ndim != 2 or comp.shape != (n_topics, len(vocab)):
            raise ModelError(f"{path}: lyric topic model arrays do not match its vocabulary "
                             f"(idf {idf.shape}, components {comp.shape}, {len(vocab)} words)")
        obj = cls(**meta["settings"])
        obj.vocabulary_, obj.idf_, obj.components_ = vocab, idf, comp
        obj.n_topics_, obj.n_documents_ = n_topics, int(meta.get("n_documents_", 0))
        return obj


def read_user_lyrics(path: str | Path) -> pd.DataFrame:
    """A user lyrics table (CSV/TSV/Parquet) with columns ``track_id`` and ``text`` (or ``lyrics``)."""
    df = read_table(path)
    if "text" not in df.columns and "lyrics" in df.columns:
        df = df.rename(columns={"lyrics": "text"})
    missing = [c for c in ("track_id", "text") if c not in df.columns]
    if missing:
        raise SchemaError(f"{path}: lyrics table needs columns track_id,text (missing {', '.join(missing)})")
    df = df[["track_id", "text"]].dropna()
    df["track_id"] = df["track_id"].astype(str)
    df["text"] = df["text"].astype(str)
    return df[df["text"].str.strip() != ""].drop_duplicates("track_id", keep="last").reset_index(drop=True)


def texts_from_table(df: pd.DataFrame, *, where: str = "table") -> pd.Series:
    """The text column of a transcripts table (``lyrics__text``, ``text``, ``lyrics`` or ``transcript``)."""
    for c in ("lyrics__text", "text", "lyrics", "transcript"):
        if c in df.columns:
            return df[c].fillna("").astype(str)
    raise SchemaError(f"{where}: no text column (expected one of lyrics__text, text, lyrics, transcript)")
