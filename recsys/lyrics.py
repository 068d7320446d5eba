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
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import InputError, ModelError, SchemaError
from .io import atomic_dir, read_table

log = logging.getLogger(__name__)

FORMAT = "recsys.lyric_topics/1"
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

    def save(self, path: str | Path) -> None:
        """Write ``topics.json`` (params, vocabulary), ``idf.npy``, ``components.npy`` atomically."""
        self._check()
        with atomic_dir(path) as tmp:
            meta = {"format": FORMAT, "params": self.get_params(), "n_topics_": self.n_topics_,
                    "n_documents_": self.n_documents_, "vocabulary": self.vocabulary_}
            (tmp / "topics.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            for name, arr in (("idf.npy", self.idf_), ("components.npy", self.components_)):
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                (tmp / name).write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "LyricTopics":
        path = Path(path)
        expected = "a folder with topics.json, idf.npy and components.npy written by LyricTopics.save"
        try:
            meta = json.loads((path / "topics.json").read_text(encoding="utf-8"))
            idf = np.load(path / "idf.npy", allow_pickle=False)
            comp = np.load(path / "components.npy", allow_pickle=False)
        except FileNotFoundError as exc:
            raise ModelError(f"{path}: lyric topic model incomplete ({Path(exc.filename).name} missing); "
                             f"expected {expected}") from None
        except (ValueError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: lyric topic model is corrupted ({exc}); expected {expected}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise ModelError(f"{path}: not a lyric topic model (format {found!r}, expected {FORMAT!r})")
        vocab = list(meta["vocabulary"])
        if idf.shape != (len(vocab),) or comp.ndim != 2 or comp.shape != (meta["n_topics_"], len(vocab)):
            raise ModelError(f"{path}: lyric topic model arrays do not match its vocabulary "
                             f"(idf {idf.shape}, components {comp.shape}, {len(vocab)} words)")
        obj = cls(**meta["params"])
        obj.vocabulary_, obj.idf_, obj.components_ = vocab, idf, comp
        obj.n_topics_, obj.n_documents_ = int(meta["n_topics_"]), int(meta.get("n_documents_", 0))
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


def _record_key(table: pd.DataFrame) -> pd.Series | None:
    """Which column of the pipeline's table matches a user lyrics ``track_id``."""
    if "track_id" in table.columns:
        return table["track_id"].astype(str)
    if "path" in table.columns:
        return table["path"].astype(str).map(lambda p: Path(p).stem)
    return None


@dataclass
class LyricsConfig:
    """Options of the ``lyrics`` block (``[lyrics]`` in TOML, ``--set lyrics.KEY=VALUE``)."""

    backend: str = "faster-whisper"  # faster-whisper | openai-whisper
    model: str = "tiny"  # Whisper name, or a local CTranslate2 folder / .pt checkpoint
    device: str = "cpu"
    compute_type: str = "int8"  # faster-whisper only
    beam_size: int = 1
    cpu_threads: int = 0  # faster-whisper only; 0 = CTranslate2's default
    vad_filter: bool = True  # faster-whisper only
    download: bool = False  # allow downloading weights by name
    language: str | None = None  # force one language (default: detect)
    languages: str | None = None  # allow-list, e.g. "en,es": others give wrong_language
    separate: bool = True  # transcribe the vocal stem (else the mixture)
    separator: str = "auto"  # auto | demucs | classical
    separator_model: str = "htdemucs"
    min_seconds: float = 1.0
    min_vocal_seconds: float = 3.0  # less voice than this: instrumental, not transcribed
    gate: str = "vad"  # vad | energy
    # transcript quality gate (recsys.audio.transcription.QualityGate; Whisper's own thresholds)
    temperatures: str = "0,0.2,0.4,0.6,0.8,1"  # decoding temperature fallback
    max_compression_ratio: float = 2.4  # gzip ratio above: repetitive (a loop)
    fallback_logprob: float = -1.0  # a window's average log-probability below: re-decoded hotter
    min_avg_logprob: float = -0.8  # average token log-probability below: low_confidence
    max_no_speech_prob: float = 0.6  # no-speech probability above: instrumental
    min_distinct_ngrams: float = 0.4  # distinct word 3-gram share below: repetitive
    max_fallback_share: float = 0.5  # share of audio whose greedy text Whisper rejected above: low_confidence
    cache_dir: str | None = None  # transcript cache (default ~/.cache/recsys/transcripts; "off")
    topics: int = 8
    lyrics: str | None = None  # user lyrics file track_id,text
    topics_out: str | None = None  # folder to save the fitted topic model
    max_features: int = 5000


class LyricsBlock:
    """Feature block ``lyrics``: a transcript per excerpt, then ``lyrics__topic_<k>`` columns.

    Takes a :class:`LyricsConfig` or its fields as keyword options (strings are converted;
    an unknown option is an :class:`~recsys.errors.InputError`).
    """

    name = "lyrics"

    def __init__(self, config: LyricsConfig | None = None, **options: Any) -> None:
        from .audio.separation import config_from_options
        from .audio.transcription import (
            LyricsSettings,
            QualityGate,
            TranscriptCache,
            _lang_list,
            default_cache_dir,
            make_transcriber,
        )

        if config is not None and options:
            raise InputError("pass either a LyricsConfig or keyword options, not both")
        c = self.config = config or config_from_options(LyricsConfig, options, where="lyrics")
        self.transcriber = make_transcriber(c.backend, model=c.model, device=c.device, compute_type=c.compute_type,
                                            beam_size=c.beam_size, cpu_threads=c.cpu_threads,
                                            vad_filter=c.vad_filter, download=c.download)
        self.transcriber.check()  # missing local weights fail before any file is processed
        try:
            temps = tuple(float(t) for t in str(c.temperatures).replace(";", ",").split(",") if t.strip())
        except ValueError:
            raise InputError(f"lyrics.temperatures: expected numbers like 0,0.2,0.4, got {c.temperatures!r}") from None
        quality = QualityGate(temperatures=temps, max_compression_ratio=c.max_compression_ratio,
                              fallback_logprob=c.fallback_logprob, min_avg_logprob=c.min_avg_logprob,
                              max_no_speech_prob=c.max_no_speech_prob, min_distinct_ngrams=c.min_distinct_ngrams,
                              max_fallback_share=c.max_fallback_share)
        self.lyrics_settings = LyricsSettings(separate=c.separate, language=c.language,
                                              languages=_lang_list(c.languages), min_seconds=c.min_seconds,
                                              min_vocal_seconds=c.min_vocal_seconds, gate=c.gate, quality=quality)
        off = isinstance(c.cache_dir, str) and c.cache_dir.lower() in ("off", "false", "no")
        self.cache = None if off else TranscriptCache(Path(c.cache_dir) if c.cache_dir else default_cache_dir())
        if c.topics < 1:
            raise InputError(f"lyrics.topics: need at least 1 topic, got {c.topics}")
        self.n_topics = c.topics
        self.lyrics = c.lyrics
        self.topics_out = c.topics_out
        self.max_features = c.max_features
        self._sep: Any = None

    @property
    def separator(self) -> Any:
        if self._sep is None and self.lyrics_settings.separate:
            from .audio.separation import make_separator

            self._sep = make_separator(self.config.separator, model=self.config.separator_model,
                                       device=self.config.device, download=self.config.download)
        return self._sep

    def settings(self) -> dict[str, Any]:
        import dataclasses

        sep = self.separator
        return {"transcriber": self.transcriber.identity(), "separator": sep.identity() if sep else None,
                "lyrics": dataclasses.asdict(self.lyrics_settings)}

    def extract(self, y: np.ndarray, sr: int, *, path: Path | None = None) -> dict[str, Any]:
        from .audio.transcription import transcribe_excerpt

        t = transcribe_excerpt(y, sr, transcriber=self.transcriber, separator=self.separator,
                               settings=self.lyrics_settings, cache=self.cache)
        sep = self.separator
        source = t.language_source
        if t.language_probability is not None:
            source += f" (p={t.language_probability:.2f})"
        # Numeric columns become embedding features: only the instrumental flag, the voice
        # seconds and (after finalize) the topics; bookkeeping (confidence too) stays in text columns.
        conf = "" if np.isnan(t.confidence) else f"{t.confidence:.2f}"
        return {"lyrics__text": t.text, "lyrics__language": t.language or "", "lyrics__language_source": source,
                "lyrics__status": t.status, "lyrics__reason": t.reason, "lyrics__confidence": conf,
                "lyrics__instrumental": int(t.instrumental),
                "lyrics__vocal_seconds": 0.0 if np.isnan(t.vocal_seconds) else float(t.vocal_seconds),
                "lyrics__separator": sep.backend if sep else "none", "lyrics__backend": t.backend,
                "lyrics__model": t.model, "lyrics__from_cache": "yes" if t.cached else "no"}

    def topic_columns(self) -> list[str]:
        return [f"lyrics__topic_{k}" for k in range(self.n_topics)]

    def finalize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Fit topics on the ``ok`` transcripts (+ user lyrics) and add ``lyrics__topic_<k>`` columns.

        A track's user lyrics, when given, replace its transcript (``lyrics__text_source``).
        Tracks without trusted text get NaN topics and ``ok=False`` (the block is missing for
        them); with fewer than two texts in all, every row has NaN topics.
        """
        table = table.copy()
        texts = (table["lyrics__text"] if "lyrics__text" in table.columns
                 else pd.Series([""] * len(table), index=table.index)).fillna("").astype(str)
        status = (table["lyrics__status"].fillna("").astype(str) if "lyrics__status" in table.columns
                  else pd.Series(["ok"] * len(table), index=table.index))
        texts = texts.where(status == "ok", "")  # untrusted transcripts never reach the topic model
        source = pd.Series(np.where(texts.str.strip() != "", "transcript", ""), index=table.index)
        extra: list[str] = []
        if self.lyrics:
            user = read_user_lyrics(self.lyrics)
            key = _record_key(table)
            by_id = dict(zip(user["track_id"], user["text"]))
            if key is not None:
                matched = key.map(by_id)
                has = matched.notna()
                texts = texts.where(~has, matched.fillna(""))
                source = source.where(~has, "user")
                known = set(key)
                extra = [t for i, t in by_id.items() if i not in known]
            else:
                extra = list(by_id.values())
        table["lyrics__text_source"] = source
        if "ok" in table.columns:
            graded = status != ""  # rows that failed before grading keep their own reason
            untrusted = graded & (source == "")
            reasons = table.get("lyrics__reason", pd.Series([""] * len(table), index=table.index)).fillna("")
            why = (status + ": " + reasons.astype(str)).str.rstrip(": ")
            before = table["reason"].fillna("").astype(str) if "reason" in table.columns else ""
            table["reason"] = why.where(untrusted, before)
            table["ok"] = table["ok"].astype(bool) & ~untrusted
        corpus = [t for t in texts if t.strip()] + extra
        cols = self.topic_columns()
        if len(corpus) < 2:
            log.warning("lyrics: %d text(s) in the corpus, too few for topics; topic columns left empty", len(corpus))
            for c in cols:
                table[c] = np.nan
            self.topics_ = None
            return table
        model = LyricTopics(self.n_topics, max_features=self.max_features).fit(corpus)
        W = model.transform(list(texts))
        full = np.zeros((len(table), self.n_topics))
        full[:, : W.shape[1]] = W
        full[(texts.str.strip() == "").to_numpy()] = np.nan
        for k, c in enumerate(cols):
            table[c] = full[:, k]
        self.topics_ = model
        if self.topics_out:
            model.save(self.topics_out)
        return table


def texts_from_table(df: pd.DataFrame, *, where: str = "table") -> pd.Series:
    """The text column of a transcripts table (``lyrics__text``, ``text``, ``lyrics`` or ``transcript``)."""
    for c in ("lyrics__text", "text", "lyrics", "transcript"):
        if c in df.columns:
            return df[c].fillna("").astype(str)
    raise SchemaError(f"{where}: no text column (expected one of lyrics__text, text, lyrics, transcript)")


def tidy_words(text: str) -> list[str]:
    """Lower-case word tokens as the topic model sees them (for display and checks)."""
    return re.findall(TOKEN_PATTERN, text.lower())
