"""Whisper transcription of a vocal stem (openai-whisper or faster-whisper), with a transcript cache.

Transcription is the most expensive step of the lyrics block, so results are cached on disk,
keyed by the excerpt's content hash, the separator, the transcriber's weights (content hash for
local files) and every setting that changes the text: a transcript made by another model is
never reused. Excerpts whose vocal stem carries too little voice are flagged ``instrumental``
and not transcribed; a language the model cannot handle or the user does not accept gives
``wrong_language``.

Every decoded transcript then passes a quality gate (:class:`QualityGate`): Whisper decodes each
30-s window without conditioning on the previous text and re-decodes it at higher temperatures
when it loops (gzip compression ratio) or is unsure (average log-probability); the gate then
grades the result from the same per-segment figures plus a repetition measure over the whole
text (distinct word n-gram ratio). Only ``ok`` transcripts are meant to feed topic models.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import DependencyError, InputError, ModelError
from ..io import read_json, sha256_file, sha256_json, write_json
from ..config import looks_like_path, to_bool
from .load import resample

log = logging.getLogger(__name__)

WHISPER_SR = 16000
BACKENDS = ("faster-whisper", "openai-whisper")
HOW_TO_GET_WHISPER = (
    "download the weights once where the network allows (pass --download / --set lyrics.download=true), "
    "or pass a local model with --model PATH (--set lyrics.model=PATH): a CTranslate2 folder "
    "(model.bin, config.json, tokenizer.json) for faster-whisper, a .pt checkpoint for openai-whisper")

#: Transcript.status values: only ``ok`` texts are trusted
STATUSES = ("ok", "low_confidence", "repetitive", "instrumental", "wrong_language", "failed")
#: what an English-only (``*.en``) model records as the language: it cannot tell
ENGLISH_ONLY = "unknown (English-only model)"


class UnsupportedLanguage(InputError):
    """The requested language is not one the model can transcribe."""


@dataclass(frozen=True)
class QualityGate:
    """Decoding safeguards and the thresholds that grade a transcript (``lyrics.*`` options).

    Decoding uses Whisper's own safeguards: a window whose text compresses more than
    ``max_compression_ratio`` or whose average token log-probability is below ``fallback_logprob``
    (-1.0) is decoded again at the next of ``temperatures``; a window with no-speech probability
    above ``max_no_speech_prob`` and such a low log-probability is dropped. The final text is graded:

    * ``repetitive``: the whole text's gzip ratio is above ``max_compression_ratio`` (2.4: a loop),
      or fewer than ``min_distinct_ngrams`` (0.4) of its word ``ngram``-grams (3) are distinct
      (judged from ``min_words`` words on);
    * ``instrumental``: the duration-weighted no-speech probability is above ``max_no_speech_prob`` (0.6);
    * ``low_confidence``: the duration-weighted average log-probability is below ``min_avg_logprob``
      (-0.8, i.e. a geometric-mean token probability ``confidence`` below 0.45; measured with tiny.en:
      English speech and song -0.56 to -0.26, unreadable vocals -0.97 and lower), or more than
      ``max_fallback_share`` (0.5) of the decoded audio had its greedy text rejected by those same
      checks: what a hotter re-decode then produces is a sample, not a reading.
    """

    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    max_compression_ratio: float = 2.4
    fallback_logprob: float = -1.0
    min_avg_logprob: float = -0.8
    max_no_speech_prob: float = 0.6
    min_distinct_ngrams: float = 0.4
    ngram: int = 3
    min_words: int = 12
    max_fallback_share: float = 0.5

    def __post_init__(self) -> None:
        temps = tuple(float(t) for t in self.temperatures)
        if not temps or any(t < 0 for t in temps):
            raise InputError(f"temperatures: expected non-negative numbers, got {self.temperatures!r}")
        object.__setattr__(self, "temperatures", temps)
        if self.ngram < 1:
            raise InputError(f"ngram: expected >= 1, got {self.ngram}")
        for name in ("min_distinct_ngrams", "max_no_speech_prob", "max_fallback_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name}: expected a fraction in [0, 1], got {getattr(self, name)!r}")


@dataclass
class Transcript:
    """One excerpt's transcript, its quality figures and the verdict (``status``, ``reason``)."""

    text: str = ""
    language: str | None = None
    language_probability: float | None = None
    language_source: str = ""  # "detected" | "forced" | "english-only model" | ""
    status: str = "ok"
    reason: str = ""
    confidence: float = float("nan")  # exp(avg_logprob): geometric-mean token probability
    avg_logprob: float = float("nan")  # duration-weighted over segments
    no_speech_prob: float = float("nan")  # duration-weighted over segments
    compression_ratio: float = float("nan")  # gzip ratio of the whole text
    distinct_ngrams: float = float("nan")  # distinct / total word n-grams of the whole text
    temperature: float = float("nan")  # highest decoding temperature any window needed
    fallback_share: float = float("nan")  # share of the decoded audio re-decoded above temperature 0
    n_segments: int = 0
    vocal_seconds: float = float("nan")
    duration: float = float("nan")
    backend: str = ""
    model: str = ""
    cached: bool = False

    @property
    def instrumental(self) -> bool:
        return self.status == "instrumental"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Transcript":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*", re.UNICODE)


def compression_ratio(text: str) -> float:
    """gzip (zlib) compression ratio of ``text`` as Whisper computes it; NaN for an empty text."""
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else float("nan")


def distinct_ngram_ratio(text: str, *, n: int = 3) -> float:
    """Distinct / total word ``n``-grams (lower-cased); 1.0 = no repetition; NaN with fewer than n words."""
    words = [w.lower() for w in _WORD.findall(text)]
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def grade(segments: list[dict[str, float]], text: str, *, gate: QualityGate) -> dict[str, Any]:
    """Quality figures, ``status`` and one-line ``reason`` of a decoded text.

    ``segments``: one dict per decoded segment with ``start``, ``end``, ``avg_logprob``,
    ``no_speech_prob`` and ``temperature`` (what both Whisper backends report).
    """
    out: dict[str, Any] = {"n_segments": len(segments), "compression_ratio": compression_ratio(text),
                           "distinct_ngrams": distinct_ngram_ratio(text, n=gate.ngram)}
    if segments:
        w = np.array([max(float(s["end"]) - float(s["start"]), 0.1) for s in segments])
        lp = float(np.average([float(s["avg_logprob"]) for s in segments], weights=w))
        ns = float(np.average([float(s["no_speech_prob"]) for s in segments], weights=w))
        temps = np.array([float(s["temperature"]) for s in segments])
        out.update(avg_logprob=lp, no_speech_prob=ns, confidence=float(np.exp(lp)),
                   temperature=float(temps.max()),
                   fallback_share=float(np.average(temps > 0, weights=w)))
    n_words = len(_WORD.findall(text))
    if not text.strip():
        status, reason = "failed", "no words decoded (Whisper skipped every window as no speech)"
    elif out["compression_ratio"] > gate.max_compression_ratio:
        status, reason = "repetitive", (f"text compresses {out['compression_ratio']:.2f}x "
                                        f"(> {gate.max_compression_ratio:g}): a decoding loop")
    elif n_words >= gate.min_words and out["distinct_ngrams"] < gate.min_distinct_ngrams:
        status, reason = "repetitive", (f"only {out['distinct_ngrams']:.0%} of its word {gate.ngram}-grams "
                                        f"are distinct (< {gate.min_distinct_ngrams:.0%})")
    elif segments and out["no_speech_prob"] > gate.max_no_speech_prob:
        status, reason = "instrumental", (f"no-speech probability {out['no_speech_prob']:.2f} "
                                          f"> {gate.max_no_speech_prob:g}")
    elif segments and out["avg_logprob"] < gate.min_avg_logprob:
        status, reason = "low_confidence", (f"average token log-probability {out['avg_logprob']:.2f} "
                                            f"< {gate.min_avg_logprob:g} "
                                            f"(confidence {out['confidence']:.2f}, "
                                            f"decoded at temperature {out['temperature']:g})")
    elif segments and out["fallback_share"] > gate.max_fallback_share:
        status, reason = "low_confidence", (f"Whisper rejected its greedy text for "
                                            f"{out['fallback_share']:.0%} of "
                                            f"the audio (loop or low probability) "
                                            f"and sampled up to temperature "
                                            f"{out['temperature']:g} (confidence {out['confidence']:.2f})")
    else:
        status, reason = "ok", ""
    out.update(status=status, reason=reason)
    return out


@runtime_checkable
class Transcriber(Protocol):
    """Speech-to-text for 16-kHz mono audio."""

    backend: str

    def identity(self) -> dict[str, Any]:
        """Weights (content hash or name) and decoding settings: part of the transcript cache key."""

    def supported_languages(self) -> list[str]:
        """Language codes the loaded model can transcribe (``['en']`` for English-only models)."""

    def transcribe(self, audio: np.ndarray, *, language: str | None = None,
                   languages: tuple[str, ...] | None = None, gate: QualityGate | None = None) -> Transcript:
        """Graded transcript of ``audio`` (float32, 16 kHz). ``language`` forces one; ``languages`` is an
        allow-list; ``gate`` sets the decoding safeguards and quality thresholds."""


def _looks_like_path(model: str) -> bool:
    return looks_like_path(model, suffixes=(".pt",))


def _lang_list(value: Any) -> tuple[str, ...] | None:
    """``"en,fr"`` / list -> tuple of codes; empty / "any" -> None (no restriction)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",")]
    out = tuple(v.strip().lower() for v in value if v and v.strip())
    return None if not out or out == ("any",) else out


class _WhisperBase:
    backend = ""

    def __init__(self, model: str, *, device: str = "cpu", beam_size: int | str = 1,
                 download: bool | str = False, download_root: str | None = None) -> None:
        self.model = str(model)
        self.device = str(device)
        self.beam_size = int(beam_size)
        self.download = to_bool(download, name="download")
        self.download_root = download_root
        self._net: Any = None
        self._weights: str | None = None

    @property
    def is_local(self) -> bool:
        return _looks_like_path(self.model)

    def _weights_id(self) -> str:
        if self._weights is None:
            p = Path(self.model).expanduser()
            if self.is_local and p.is_file():
                self._weights = f"sha256:{sha256_file(p)[:16]}"
            elif self.is_local and (p / "model.bin").is_file():
                self._weights = f"sha256:{sha256_file(p / 'model.bin')[:16]}"
            else:
                self._weights = f"name:{self.model}"
        return self._weights

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "weights": self._weights_id(), "beam_size": self.beam_size}

    def _graded(self, segments: list[dict[str, float]], text: str, gate: QualityGate,
                **fields: Any) -> Transcript:
        return Transcript(text=text, backend=self.backend, model=self._weights_id(),
                          **fields, **grade(segments, text, gate=gate))

    def check(self) -> None:
        """Cheap pre-flight before a batch: raise the error ``load()`` would, where that is cheap to know."""

    def _check_forced(self, language: str | None) -> None:
        if language is not None and language not in self.supported_languages():
            what = "an English-only model" if self.supported_languages() == ["en"] else "this model"
            raise UnsupportedLanguage(f"language {language!r} is not supported by {what} ({self.model})")

    def _allowed(self, lang: str | None, prob: float | None, source: str,
                 languages: tuple[str, ...] | None) -> Transcript | None:
        """A ``wrong_language`` transcript when ``lang`` is not accepted (decided before decoding),
        else None."""
        if not languages:
            return None
        if lang == ENGLISH_ONLY:
            if "en" in languages:
                return None
            reason = f"an English-only model cannot transcribe the accepted languages {','.join(languages)}"
        elif lang in languages:
            return None
        else:
            p = f" (p={prob:.2f})" if prob is not None else ""
            reason = f"language {lang!r}{p} is not among the accepted languages {','.join(languages)}"
        return Transcript(language=lang, language_probability=prob, language_source=source,
                          status="wrong_language",
                          backend=self.backend, model=self._weights_id(), reason=reason)


class FasterWhisperTranscriber(_WhisperBase):
    """Whisper through CTranslate2 (faster-whisper): int8 on CPU, several times faster than PyTorch.

    ``model`` is a local CTranslate2 folder (``model.bin``, ``config.json``, tokenizer) or a
    name (``tiny``, ``base.en``, ``small`` ...) looked up in the HuggingFace cache, and downloaded
    only when ``download=True``.
    """

    backend = "faster-whisper"

    def __init__(self, model: str = "tiny", *, device: str = "cpu", compute_type: str = "int8",
                 beam_size: int | str = 1, cpu_threads: int | str = 0, vad_filter: bool | str = True,
                 download: bool | str = False, download_root: str | None = None) -> None:
        super().__init__(model, device=device, beam_size=beam_size, download=download,
                         download_root=download_root)
        self.compute_type = str(compute_type)
        self.cpu_threads = int(cpu_threads)
        self.vad_filter = to_bool(vad_filter, name="vad_filter")

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "compute_type": self.compute_type, "vad_filter": self.vad_filter}

    def check(self) -> None:
        """Cheap pre-flight (no model load): local weights exist with the expected files."""
        if self.is_local:
            p = Path(self.model).expanduser()
            missing = [f for f in ("model.bin", "config.json") if not (p / f).is_file()]
            if not p.is_dir() or missing:
                state = "not found" if not p.exists() else ("not a folder" if not p.is_dir()
                                                             else f"missing {', '.join(missing)}")
                raise ModelError(f"{p}: faster-whisper weights {state}; expected a CTranslate2 Whisper model "
                                 "folder with model.bin, config.json and tokenizer.json")

    def load(self) -> Any:
        if self._net is not None:
            return self._net
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise DependencyError("the faster-whisper backend needs faster-whisper "
                                  "(pip install 'recsys[lyrics]')") from None
        kwargs = dict(device=self.device, compute_type=self.compute_type, cpu_threads=self.cpu_threads)
        if self.is_local:
            p = Path(self.model).expanduser()
            expected = ("a CTranslate2 Whisper model folder with model.bin, config.json and "
                        "tokenizer.json (as faster-whisper downloads or ct2-transformers-converter writes)")
            missing = [f for f in ("model.bin", "config.json") if not (p / f).is_file()]
            if not p.is_dir() or missing:
                state = "not found" if not p.exists() else ("not a folder" if not p.is_dir()
                                                             else f"missing {', '.join(missing)}")
                raise ModelError(f"{p}: faster-whisper weights {state}; expected {expected}")
            try:
                self._net = WhisperModel(str(p), local_files_only=True, **kwargs)
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise ModelError(f"{p}: cannot load faster-whisper weights ({first}); "
                                 f"expected {expected}") from None
        else:
            try:
                self._net = WhisperModel(self.model, local_files_only=not self.download,
                                         download_root=self.download_root, **kwargs)
            except Exception as exc:
                if self.download:
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                    raise DependencyError(f"faster-whisper cannot download {self.model!r} ({first}); "
                                          + HOW_TO_GET_WHISPER) from None
                raise DependencyError(f"faster-whisper model {self.model!r} is not in the local HuggingFace "
                                      "cache (~/.cache/huggingface/hub); " + HOW_TO_GET_WHISPER) from None
        return self._net

    def supported_languages(self) -> list[str]:
        return list(self.load().supported_languages)

    def transcribe(self, audio: np.ndarray, *, language: str | None = None,
                   languages: tuple[str, ...] | None = None, gate: QualityGate | None = None) -> Transcript:
        g = gate or QualityGate()
        net = self.load()
        self._check_forced(language)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        # Windows decoded at temperature 0 are deterministic; a fallback sample may differ between runs
        # (CTranslate2's sampler cannot be re-seeded per call), one more reason the gate distrusts them.
        segments, info = net.transcribe(audio, language=language, beam_size=self.beam_size,
                                        vad_filter=self.vad_filter, condition_on_previous_text=False,
                                        temperature=list(g.temperatures),
                                        compression_ratio_threshold=g.max_compression_ratio,
                                        log_prob_threshold=g.fallback_logprob,
                                        no_speech_threshold=g.max_no_speech_prob)
        multilingual = bool(net.model.is_multilingual)
        if language:
            lang, prob, source = language, None, "forced"
        elif multilingual:
            lang, prob, source = info.language, float(info.language_probability), "detected"
        else:
            lang, prob, source = ENGLISH_ONLY, None, "english-only model"
        refused = self._allowed(lang, prob, source, languages)
        if refused is not None:  # the generator is lazy: nothing was decoded yet
            return refused
        segs = [{"start": s.start, "end": s.end, "avg_logprob": s.avg_logprob,
                 "no_speech_prob": s.no_speech_prob,
                 "temperature": s.temperature, "text": s.text} for s in segments]
        text = " ".join(str(s["text"]).strip() for s in segs).strip()
        return self._graded(segs, text, g, language=lang, language_probability=prob, language_source=source,
                            duration=float(info.duration))


class OpenAIWhisperTranscriber(_WhisperBase):
    """The reference PyTorch Whisper (``openai-whisper``): a model by name or a local ``.pt`` checkpoint.

    A name is loaded from ``~/.cache/whisper`` (downloaded only when ``download=True``); a path
    must be a checkpoint ``torch.save({'dims': ..., 'model_state_dict': ...})``, which
    ``whisper.load_model`` reads with ``weights_only=True``.
    """

    backend = "openai-whisper"

    def __init__(self, model: str = "tiny", *, device: str = "cpu", beam_size: int | str = 1,
                 download: bool | str = False, download_root: str | None = None) -> None:
        super().__init__(model, device=device, beam_size=beam_size, download=download,
                         download_root=download_root)

    def check(self) -> None:
        """Cheap pre-flight (no model load): a local checkpoint exists, or a name is cached/downloadable."""
        if self.is_local:
            p = Path(self.model).expanduser()
            if not p.is_file():
                raise ModelError(f"{p}: openai-whisper weights not found; expected an openai-whisper "
                                 "checkpoint .pt (torch.save of {'dims': ..., 'model_state_dict': ...})")

    def load(self) -> Any:
        if self._net is not None:
            return self._net
        try:
            import whisper
        except ImportError:
            raise DependencyError("the openai-whisper backend needs openai-whisper "
                                  "(pip install 'recsys[lyrics]')") from None
        expected = "an openai-whisper checkpoint .pt (torch.save of {'dims': ..., 'model_state_dict': ...})"
        if self.is_local:
            p = Path(self.model).expanduser()
            if not p.is_file():
                raise ModelError(f"{p}: openai-whisper weights not found; expected {expected}")
            try:
                self._net = whisper.load_model(str(p), device=self.device)
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise ModelError(f"{p}: cannot load openai-whisper weights ({first}); "
                                 f"expected {expected}") from None
        else:
            if self.model not in whisper.available_models():
                raise InputError(f"unknown openai-whisper model {self.model!r} "
                                 f"(names: {', '.join(whisper.available_models())}, or a .pt path)")
            root = self.download_root or os.path.join(os.getenv("XDG_CACHE_HOME",
                                                                os.path.expanduser("~/.cache")),
                                                      "whisper")
            url = whisper._MODELS[self.model]
            cached = Path(root) / os.path.basename(url)
            if cached.is_file() and not self.download:
                # load the cached file by path: whisper would re-download one whose checksum is wrong
                if sha256_file(cached) != url.split("/")[-2]:
                    raise ModelError(f"{cached}: cached openai-whisper weights are corrupted "
                                     f"(SHA-256 differs "
                                     f"from the published one); delete the file and download again")
                try:
                    self._net = whisper.load_model(str(cached), device=self.device)
                except Exception as exc:
                    raise ModelError(f"{cached}: cannot load cached openai-whisper weights ({exc})") from None
                return self._net
            if not self.download:
                raise DependencyError(f"openai-whisper model {self.model!r} is not cached at {cached}; "
                                      + HOW_TO_GET_WHISPER)
            try:
                self._net = whisper.load_model(self.model, device=self.device, download_root=root)
            except Exception as exc:
                raise DependencyError(f"openai-whisper cannot load {self.model!r} ({type(exc).__name__}: "
                                      f"{str(exc)[:160]}); " + HOW_TO_GET_WHISPER) from None
        return self._net

    def supported_languages(self) -> list[str]:
        from whisper.tokenizer import LANGUAGES

        net = self.load()
        if not net.is_multilingual:
            return ["en"]
        return list(LANGUAGES)[: net.num_languages]

    def transcribe(self, audio: np.ndarray, *, language: str | None = None,
                   languages: tuple[str, ...] | None = None, gate: QualityGate | None = None) -> Transcript:
        import torch
        import whisper

        g = gate or QualityGate()
        net = self.load()
        self._check_forced(language)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        prob: float | None = None
        if language:
            lang, decode_lang, source = language, language, "forced"
        elif not net.is_multilingual:
            lang, decode_lang, source = ENGLISH_ONLY, "en", "english-only model"
        else:
            mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)), net.dims.n_mels)
            with torch.inference_mode():
                _, probs = net.detect_language(mel.to(net.device))
            lang = decode_lang = max(probs, key=probs.get)
            prob, source = float(probs[lang]), "detected"
        refused = self._allowed(lang, prob, source, languages)
        if refused is not None:
            return refused
        opts: dict[str, Any] = {"beam_size": self.beam_size} if self.beam_size > 1 else {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # temperature fallback samples: the same audio gives the same text
            result = net.transcribe(audio, language=decode_lang, task="transcribe", fp16=False,
                                    condition_on_previous_text=False, verbose=None,
                                    temperature=g.temperatures,
                                    compression_ratio_threshold=g.max_compression_ratio,
                                    logprob_threshold=g.fallback_logprob,
                                    no_speech_threshold=g.max_no_speech_prob,
                                    **opts)
        segs = [{k: float(s[k]) for k in ("start", "end", "avg_logprob", "no_speech_prob", "temperature")}
                for s in result.get("segments", [])]
        text = str(result.get("text", "")).strip()
        return self._graded(segs, text, g, language=lang, language_probability=prob, language_source=source,
                            duration=len(audio) / WHISPER_SR)


def make_transcriber(backend: str = "faster-whisper", *, model: str = "tiny", device: str = "cpu",
                     compute_type: str = "int8", beam_size: int = 1, cpu_threads: int = 0,
                     vad_filter: bool = True, download: bool = False,
                     download_root: str | None = None) -> Transcriber:
    """The transcriber for ``backend`` (``faster-whisper`` or ``openai-whisper``)."""
    if backend == "faster-whisper":
        return FasterWhisperTranscriber(model, device=device, compute_type=compute_type, beam_size=beam_size,
                                        cpu_threads=cpu_threads, vad_filter=vad_filter, download=download,
                                        download_root=download_root)
    if backend == "openai-whisper":
        return OpenAIWhisperTranscriber(model, device=device, beam_size=beam_size, download=download,
                                        download_root=download_root)
    raise InputError(f"unknown transcription backend {backend!r} (choose from {', '.join(BACKENDS)})")


# --------------------------------------------------------------------------- cache

def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/recsys/transcripts`` (``~/.cache/recsys/transcripts``)."""
    return Path(os.getenv("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))) / "recsys" / "transcripts"


@dataclass
class TranscriptCache:
    """One JSON file per transcript under ``root``, written atomically (safe to kill and resume).

    Each entry stores the key's parts; an entry whose model identity differs from the asking
    transcriber's is ignored (and later overwritten), so another model's text is never reused.
    """

    root: Path
    hits: int = field(default=0, init=False)
    misses: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()

    @staticmethod
    def key(audio_sha: str, model: dict[str, Any], settings: dict[str, Any]) -> str:
        return sha256_json({"audio": audio_sha, "model": model, "settings": settings})

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, *, model: dict[str, Any]) -> Transcript | None:
        path = self._path(key)
        if not path.exists():
            self.misses += 1
            return None
        try:
            entry = read_json(path, what="cached transcript")
        except InputError:
            log.warning("%s: corrupted cache entry ignored", path)
            self.misses += 1
            return None
        if not isinstance(entry, dict) or entry.get("model") != model or "transcript" not in entry:
            log.warning("%s: cached transcript made by another model/settings; not reused", path)
            self.misses += 1
            return None
        self.hits += 1
        t = Transcript.from_dict(entry["transcript"])
        t.cached = True
        return t

    def put(self, key: str, transcript: Transcript, *, model: dict[str, Any], audio_sha: str,
            settings: dict[str, Any]) -> None:
        rec = transcript.to_dict()
        rec["cached"] = False
        write_json(self._path(key), {"model": model, "audio": audio_sha,
                                     "settings": settings, "transcript": rec})


# --------------------------------------------------------------------------- vocal excerpt -> transcript

def vocal_activity(vocals: np.ndarray, sr: int, *, mix: np.ndarray | None = None, frame_seconds: float = 0.05,
                   floor_db: float = -45.0, relative_db: float = -12.0) -> float:
    """Seconds of ``vocals`` whose frame level is above ``floor_db`` dBFS (and, given the ``mix``,
    within ``relative_db`` of the mixture's level in the same frame)."""
    n = max(1, int(frame_seconds * sr))
    m = len(vocals) // n
    if m == 0:
        return 0.0

    def frame_db(x: np.ndarray) -> np.ndarray:
        f = np.asarray(x[: m * n], dtype=np.float64).reshape(m, n)
        return 10.0 * np.log10(np.maximum(np.mean(f * f, axis=1), 1e-20))

    v = frame_db(vocals)
    active = v >= floor_db
    if mix is not None:
        active &= v >= frame_db(mix) + relative_db
    return float(active.sum() * n / sr)


def speech_seconds(audio16k: np.ndarray, *, threshold: float = 0.5) -> float:
    """Seconds of voice in 16-kHz audio by the Silero VAD that ships with faster-whisper.

    On a separated vocal stem this tells a voice from the solo instruments that a classical
    separator leaves in the "vocals" of an instrumental track.
    """
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ImportError:
        raise DependencyError("the 'vad' vocal gate needs faster-whisper (pip install 'recsys[lyrics]'); "
                              "or use gate=energy") from None
    ts = get_speech_timestamps(np.ascontiguousarray(audio16k, dtype=np.float32),
                               VadOptions(threshold=threshold))
    return float(sum(t["end"] - t["start"] for t in ts) / WHISPER_SR)


GATES = ("vad", "energy")
#: bumped when the decoding or grading logic changes: older cached transcripts are not reused
GRADING_VERSION = 3


@dataclass
class LyricsSettings:
    """Settings of excerpt transcription that change its result (part of the cache key).

    ``gate`` decides "instrumental" before decoding: ``vad`` = Silero voice activity on the vocal
    stem (default), ``energy`` = frames of the vocal stem above ``floor_db`` and within
    ``relative_db`` of the mix. ``quality`` grades what was decoded (:class:`QualityGate`).
    """

    separate: bool = True
    language: str | None = None
    languages: tuple[str, ...] | None = None
    min_seconds: float = 1.0
    min_vocal_seconds: float = 3.0
    gate: str = "vad"
    vad_threshold: float = 0.5
    floor_db: float = -45.0
    relative_db: float = -12.0
    quality: QualityGate = field(default_factory=QualityGate)

    def __post_init__(self) -> None:
        if self.gate not in GATES:
            raise InputError(f"unknown vocal gate {self.gate!r} (choose from {', '.join(GATES)})")


def transcribe_excerpt(y: np.ndarray, sr: int, *, transcriber: Transcriber, separator: Any = None,
                       settings: LyricsSettings | None = None,
                       cache: TranscriptCache | None = None) -> Transcript:
    """Separate (unless ``separator`` is None), gate on vocal activity, transcribe; cached.

    Returns a graded :class:`Transcript` whose ``status`` says what happened; never raises for
    silent/instrumental/short excerpts, a language that is not accepted or an untrustworthy text.
    """
    from .separation import separate_cached

    s = settings or LyricsSettings()
    y = np.ascontiguousarray(y, dtype=np.float32)
    duration = len(y) / float(sr)
    model_id = transcriber.identity()
    if duration < s.min_seconds:
        return Transcript(status="failed", reason=f"excerpt is {duration:.2f} s, "
                                                  f"shorter than {s.min_seconds:g} s",
                          duration=duration, backend=transcriber.backend,
                          model=str(model_id.get("weights", "")))
    key_settings = {**dataclasses.asdict(s), "sr": sr, "grading": GRADING_VERSION,
                    "separator": separator.identity() if (separator is not None and s.separate) else None}
    audio_sha = hashlib.sha256(y.tobytes()).hexdigest()
    key = TranscriptCache.key(audio_sha, model_id, key_settings)
    if cache is not None:
        hit = cache.get(key, model=model_id)
        if hit is not None:
            return hit
    if separator is not None and s.separate:
        stems = separate_cached(separator, y, sr)
        vocals, mix = stems.vocals, y
    else:
        vocals, mix = y, None
    vocals16 = resample(vocals, sr, WHISPER_SR)
    if s.gate == "vad":
        active = vocal_activity(vocals, sr, floor_db=s.floor_db)  # silence needs no VAD
        if active > 0:
            active = speech_seconds(vocals16, threshold=s.vad_threshold)
    else:
        active = vocal_activity(vocals, sr, mix=mix, floor_db=s.floor_db, relative_db=s.relative_db)
    if active < s.min_vocal_seconds:
        t = Transcript(status="instrumental", vocal_seconds=active, duration=duration,
                       backend=transcriber.backend,
                       model=str(model_id.get("weights", "")),
                       reason=f"{active:.1f} s of voice in the vocal stem ({s.gate} gate), "
                              f"fewer than {s.min_vocal_seconds:g} s")
    else:
        try:
            t = transcriber.transcribe(vocals16, language=s.language, languages=s.languages, gate=s.quality)
        except UnsupportedLanguage as exc:
            t = Transcript(status="wrong_language", reason=str(exc), language=s.language,
                           backend=transcriber.backend, model=str(model_id.get("weights", "")))
        t.vocal_seconds = active
        t.duration = duration
    if cache is not None:
        cache.put(key, t, model=model_id, audio_sha=audio_sha, settings=key_settings)
    return t
