"""Block ``lyrics``: Whisper transcript of the vocal stem -> TF-IDF + NMF topic mixture (gated by quality).

Only transcripts graded ``ok`` by the quality gate reach the topic model; the others are missing
for this block (``ok=False`` with the status as reason), like any file a block could not read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import options_to_config
from ..errors import InputError
from ..lyrics import LyricTopics, read_user_lyrics
from .base import BlockSpec

log = logging.getLogger(__name__)


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
        from ..audio.transcription import (
            LyricsSettings,
            QualityGate,
            TranscriptCache,
            _lang_list,
            default_cache_dir,
            make_transcriber,
        )

        if config is not None and options:
            raise InputError("pass either a LyricsConfig or keyword options, not both")
        c = self.config = config or options_to_config(LyricsConfig, options, where="lyrics")
        self.transcriber = make_transcriber(c.backend, model=c.model, device=c.device,
                                            compute_type=c.compute_type,
                                            beam_size=c.beam_size, cpu_threads=c.cpu_threads,
                                            vad_filter=c.vad_filter, download=c.download)
        self.transcriber.check()  # missing local weights fail before any file is processed
        try:
            temps = tuple(float(t) for t in str(c.temperatures).replace(";", ",").split(",") if t.strip())
        except ValueError:
            raise InputError(f"lyrics.temperatures: expected numbers like 0,0.2,0.4, "
                             f"got {c.temperatures!r}") from None
        quality = QualityGate(temperatures=temps, max_compression_ratio=c.max_compression_ratio,
                              fallback_logprob=c.fallback_logprob, min_avg_logprob=c.min_avg_logprob,
                              max_no_speech_prob=c.max_no_speech_prob,
                              min_distinct_ngrams=c.min_distinct_ngrams,
                              max_fallback_share=c.max_fallback_share)
        self.lyrics_settings = LyricsSettings(separate=c.separate, language=c.language,
                                              languages=_lang_list(c.languages), min_seconds=c.min_seconds,
                                              min_vocal_seconds=c.min_vocal_seconds, gate=c.gate,
                                              quality=quality)
        off = isinstance(c.cache_dir, str) and c.cache_dir.lower() in ("off", "false", "no")
        self.cache = None if off else TranscriptCache(Path(c.cache_dir) if c.cache_dir
                                                      else default_cache_dir())
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
            from ..audio.separation import make_separator

            self._sep = make_separator(self.config.separator, model=self.config.separator_model,
                                       device=self.config.device, download=self.config.download)
        return self._sep

    def settings(self) -> dict[str, Any]:
        import dataclasses

        sep = self.separator
        return {"transcriber": self.transcriber.identity(), "separator": sep.identity() if sep else None,
                "lyrics": dataclasses.asdict(self.lyrics_settings)}

    def transcribe(self, y: np.ndarray, sr: int) -> Any:
        """The graded :class:`~recsys.audio.transcription.Transcript` of one excerpt (separated, cached)."""
        from ..audio.transcription import transcribe_excerpt

        return transcribe_excerpt(y, sr, transcriber=self.transcriber, separator=self.separator,
                                  settings=self.lyrics_settings, cache=self.cache)

    def extract(self, y: np.ndarray, sr: int, *, path: Path | None = None) -> dict[str, Any]:
        """One excerpt's transcript, status, confidence and language as text/number columns."""
        t = self.transcribe(y, sr)
        sep = self.separator
        source = t.language_source
        if t.language_probability is not None:
            source += f" (p={t.language_probability:.2f})"
        # Numeric columns become embedding features: only the instrumental flag, the voice
        # seconds and (after finalize) the topics; bookkeeping (confidence too) stays in text columns.
        conf = "" if np.isnan(t.confidence) else f"{t.confidence:.2f}"
        return {"lyrics__text": t.text, "lyrics__language": t.language or "",
                "lyrics__language_source": source,
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
            log.warning("lyrics: %d text(s) in the corpus, too few for topics; topic columns left empty",
                        len(corpus))
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


SPEC = BlockSpec(name="lyrics", source="audio", version=2, order=50,
                 columns="lyrics__topic_* (NMF topic mixture), "
                         "lyrics__status, lyrics__language, lyrics__confidence",
                 help="topics of the transcribed vocals, quality-gated (--set lyrics.model=NAME_OR_PATH)",
                 extractor=lambda: LyricsBlock)
