"""Transcribers through their real loading paths with tiny random weights; gates, languages, cache."""
from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.audio.load import load_audio
from recsys.audio.separation import ClassicalSeparator
from recsys.audio.transcription import (
    ENGLISH_ONLY,
    FasterWhisperTranscriber,
    LyricsSettings,
    OpenAIWhisperTranscriber,
    QualityGate,
    TranscriptCache,
    UnsupportedLanguage,
    compression_ratio,
    distinct_ngram_ratio,
    grade,
    make_transcriber,
    transcribe_excerpt,
)
from recsys.errors import DependencyError, InputError, ModelError
from recsys.testing.stems import SPEECH, music_file, tiny_whisper_checkpoint

SR = 22050


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("whisper")
    return {"a": tiny_whisper_checkpoint(d / "a.pt", seed=0),
            "b": tiny_whisper_checkpoint(d / "b.pt", seed=1),
            "en": tiny_whisper_checkpoint(d / "en.pt", seed=2, multilingual=False)}


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    y, _ = load_audio(SPEECH / "ljspeech" / "LJ001-0004.flac", sr=SR)
    return y


# random weights babble in loops: one temperature keeps these tests fast
# (the fallback is tested on real weights)
GREEDY = QualityGate(temperatures=(0.0,))
NO_SEP = LyricsSettings(separate=False, min_vocal_seconds=1.0, quality=GREEDY)


def test_openai_whisper_random_checkpoint_through_load_model(ckpts, speech):
    tr = OpenAIWhisperTranscriber(str(ckpts["a"]))
    langs = tr.supported_languages()
    assert len(langs) == 99 and "en" in langs and "fr" in langs  # multilingual dims
    t = tr.transcribe(load_audio(SPEECH / "ljspeech" / "LJ001-0002.flac", sr=16000)[0])
    assert t.language in langs and t.language_source == "detected"
    assert 0.0 <= t.language_probability <= 1.0
    assert t.backend == "openai-whisper"
    # random weights babble: whatever comes out is graded, and a loop is never "ok"
    assert t.status in ("repetitive", "low_confidence", "failed", "instrumental"), (t.status, t.text[:80])
    assert t.n_segments == 0 or (np.isfinite(t.avg_logprob) and 0 <= t.confidence <= 1)
    assert t.model == tr.identity()["weights"] and t.model.startswith("sha256:")
    # another checkpoint is another identity (cache keys follow weight content, not file names)
    assert OpenAIWhisperTranscriber(str(ckpts["b"])).identity() != tr.identity()


def test_english_only_model_and_unsupported_language(ckpts, speech):
    tr = OpenAIWhisperTranscriber(str(ckpts["en"]))
    assert tr.supported_languages() == ["en"]
    with pytest.raises(UnsupportedLanguage, match="'fr'.*English-only"):
        tr.transcribe(np.zeros(16000, dtype=np.float32), language="fr")
    # in a batch it is a defined outcome, not a crash, and nothing is decoded
    t = transcribe_excerpt(speech, SR, transcriber=tr, settings=LyricsSettings(separate=False, language="fr"))
    assert t.status == "wrong_language" and t.text == "" and "fr" in t.reason
    # an allow-list without English refuses before decoding; the model never claims "en"
    t = transcribe_excerpt(speech, SR, transcriber=tr,
                           settings=LyricsSettings(separate=False, languages=("de", "es")))
    assert t.status == "wrong_language" and t.language == ENGLISH_ONLY and "English-only" in t.reason
    assert t.language_source == "english-only model"
    t = tr.transcribe(speech[: 16000 * 3], languages=("en", "es"))
    assert t.language == ENGLISH_ONLY and t.status != "wrong_language"
    with pytest.raises(UnsupportedLanguage):
        OpenAIWhisperTranscriber(str(ckpts["a"])).transcribe(np.zeros(16000, np.float32), language="xx")


def test_missing_and_corrupt_whisper_weights(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelError, match=r"nope\.pt.*not found.*openai-whisper checkpoint"):
        OpenAIWhisperTranscriber(str(missing)).load()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelError, match=r"bad\.pt: cannot load openai-whisper weights.*expected"):
        OpenAIWhisperTranscriber(str(bad)).load()
    import torch

    wrong = tmp_path / "wrong.pt"
    torch.save({"something": torch.zeros(3)}, wrong)
    with pytest.raises(ModelError, match=r"wrong\.pt.*dims"):
        OpenAIWhisperTranscriber(str(wrong)).load()
    # faster-whisper: a folder without model.bin, then a folder with a corrupted one
    empty = tmp_path / "ct2"
    empty.mkdir()
    with pytest.raises(ModelError, match=r"ct2: faster-whisper weights missing model\.bin, config\.json"):
        FasterWhisperTranscriber(str(empty)).load()
    (empty / "model.bin").write_bytes(b"not a ctranslate2 model")
    (empty / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"ct2: cannot load faster-whisper weights.*CTranslate2"):
        FasterWhisperTranscriber(str(empty)).load()


def test_names_not_cached_need_download(tmp_path):
    with pytest.raises(DependencyError, match="'tiny' is not cached.*--download"):
        OpenAIWhisperTranscriber("tiny", download_root=str(tmp_path)).load()
    with pytest.raises(DependencyError, match="'tiny' is not in the local HuggingFace cache.*--model PATH"):
        FasterWhisperTranscriber("tiny", download_root=str(tmp_path)).load()
    with pytest.raises(InputError, match="unknown openai-whisper model"):
        OpenAIWhisperTranscriber("gigantic").load()
    with pytest.raises(InputError, match="unknown transcription backend"):
        make_transcriber("kaldi")


def test_silence_instrumental_and_short_are_not_transcribed(ckpts, monkeypatch):
    tr = OpenAIWhisperTranscriber(str(ckpts["a"]))

    def must_not_run(*a, **k):
        raise AssertionError("transcribe() called on an excerpt without vocals")

    monkeypatch.setattr(tr, "transcribe", must_not_run)
    t = transcribe_excerpt(np.zeros(SR * 5, np.float32), SR, transcriber=tr, separator=ClassicalSeparator())
    assert t.status == "instrumental" and t.instrumental and "0.0 s of voice" in t.reason
    t = transcribe_excerpt(np.full(SR // 2, 0.1, np.float32), SR, transcriber=tr)
    assert t.status == "failed" and "0.50 s" in t.reason
    path = music_file()
    if path is None:
        pytest.skip("no real music recording available")
    y, _ = load_audio(path, sr=SR, offset=10.0, duration=15.0)  # string orchestra, no voice
    t = transcribe_excerpt(y, SR, transcriber=tr, separator=ClassicalSeparator())
    assert t.status == "instrumental", t.reason
    # the energy gate alone would be fooled by the solo strings the classical separator leaves in "vocals"
    assert t.vocal_seconds < 3.0


def test_cache_reuses_same_model_never_another(ckpts, speech, tmp_path):
    cache = TranscriptCache(tmp_path / "cache")
    a = OpenAIWhisperTranscriber(str(ckpts["a"]))
    b = OpenAIWhisperTranscriber(str(ckpts["b"]))
    ta = transcribe_excerpt(speech, SR, transcriber=a, settings=NO_SEP, cache=cache)
    assert not ta.cached and ta.model == a.identity()["weights"]
    files = sorted((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1
    again = transcribe_excerpt(speech, SR, transcriber=a, settings=NO_SEP, cache=cache)
    assert again.cached and again.text == ta.text and cache.hits == 1
    # model B on the same audio: a miss, transcribed by B itself
    tb = transcribe_excerpt(speech, SR, transcriber=b, settings=NO_SEP, cache=cache)
    assert not tb.cached and tb.model == b.identity()["weights"] != ta.model
    b_file = [f for f in (tmp_path / "cache").rglob("*.json") if f not in files][0]
    # plant model A's entry where model B's transcript lives: it must not be served to B
    b_file.write_text(files[0].read_text())
    tb2 = transcribe_excerpt(speech, SR, transcriber=b, settings=NO_SEP, cache=cache)
    assert not tb2.cached and tb2.model == b.identity()["weights"]
    assert json.loads(b_file.read_text())["model"] == b.identity()  # rewritten by B
    # other settings are other keys; a corrupted entry is a miss, not a crash
    other = transcribe_excerpt(speech, SR, transcriber=a, cache=cache,
                               settings=LyricsSettings(separate=False, min_vocal_seconds=1.5, quality=GREEDY))
    assert not other.cached
    files[0].write_text("{ truncated")
    assert not transcribe_excerpt(speech, SR, transcriber=a, settings=NO_SEP, cache=cache).cached


def test_cli_transcribe_with_local_checkpoint(ckpts, tmp_path):
    import soundfile as sf
    from click.testing import CliRunner

    from recsys.cli import main

    runner = CliRunner()
    args = ["lyrics", "transcribe", str(SPEECH / "ljspeech" / "LJ001-0004.flac"),
            "--backend", "openai-whisper",
            "--model", str(ckpts["a"]), "--no-separate", "--min-vocal-seconds", "1",
            "--cache-dir", str(tmp_path / "c")]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    status, conf, _text = res.stdout.rstrip("\n").split("\t")
    assert status in ("ok", "low_confidence", "repetitive", "instrumental", "failed")
    assert f"status: {status}" in res.stderr and f"confidence: {conf}" in res.stderr
    assert conf == "-" or 0 <= float(conf) <= 1
    assert "[detected]" in res.output and "separator: none" in res.output
    res = runner.invoke(main, args)
    assert res.exit_code == 0 and "(cached)" in res.output
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR * 4, np.float32), SR)
    res = runner.invoke(main, ["lyrics", "transcribe", str(silent), "--backend", "openai-whisper", "--model",
                               str(ckpts["a"]), "--separator", "classical", "--no-cache"])
    assert res.exit_code == 0 and "status: instrumental" in res.output
    assert res.stdout == "instrumental\t-\t\n"
    res = runner.invoke(main, ["lyrics", "transcribe", str(silent), "--backend", "openai-whisper",
                               "--model", str(tmp_path / "missing.pt"), "--no-cache"])
    assert res.exit_code == 2 and "missing.pt" in res.output and "openai-whisper checkpoint" in res.output


def test_cached_whisper_name_is_checked_not_redownloaded(ckpts, tmp_path):
    # a file where openai-whisper caches "tiny", but not the published weights (checksum differs)
    import shutil

    shutil.copy(ckpts["a"], tmp_path / "tiny.pt")
    with pytest.raises(ModelError, match=r"tiny\.pt: cached openai-whisper weights are corrupted"):
        OpenAIWhisperTranscriber("tiny", download_root=str(tmp_path)).load()


def test_lyrics_block_with_openai_whisper_options_from_strings(ckpts, speech, tmp_path):
    from recsys.blocks import get_extractor

    block = get_extractor("lyrics", backend="openai-whisper", model=str(ckpts["en"]), separate="false",
                          min_vocal_seconds="1", languages="es, fr", cache_dir=str(tmp_path / "c"))
    assert block.settings()["separator"] is None and block.lyrics_settings.languages == ("es", "fr")
    rec = block.extract(speech, SR, path=None)
    assert rec["lyrics__status"] == "wrong_language" and rec["lyrics__language"] == ENGLISH_ONLY
    assert rec["lyrics__instrumental"] == 0 and rec["lyrics__vocal_seconds"] > 1.0
    assert rec["lyrics__separator"] == "none" and rec["lyrics__backend"] == "openai-whisper"
    numeric = {k for k, v in rec.items() if isinstance(v, (int, float))}
    assert numeric == {"lyrics__instrumental", "lyrics__vocal_seconds"}  # bookkeeping stays textual
    with pytest.raises(ModelError, match="missing.pt"):
        get_extractor("lyrics", backend="openai-whisper", model=str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="vocal gate"):
        get_extractor("lyrics", gate="loudness", model=str(ckpts["a"]), backend="openai-whisper")


SEG = {"start": 0.0, "end": 10.0, "avg_logprob": -0.3, "no_speech_prob": 0.05, "temperature": 0.0}
SPEECHY = ("and so my fellow americans ask not what your country can do for you "
           "ask what you can do for your country")
LOOP = "I'm going to go to the mall and " * 25


def test_repetition_measures():
    assert compression_ratio(SPEECHY) < 2.0 and compression_ratio(LOOP) > 2.4
    assert distinct_ngram_ratio(SPEECHY) > 0.8 and distinct_ngram_ratio(LOOP) < 0.1
    assert distinct_ngram_ratio("Oh la la") == 1.0 and np.isnan(distinct_ngram_ratio("two words"))
    assert np.isnan(compression_ratio(""))


def test_grade_gives_each_status_with_a_reason():
    g = QualityGate()
    ok = grade([SEG], SPEECHY, gate=g)
    assert ok["status"] == "ok" and ok["reason"] == "" and ok["confidence"] == pytest.approx(np.exp(-0.3))
    loop = grade([SEG], LOOP, gate=g)
    assert loop["status"] == "repetitive" and "compresses" in loop["reason"]
    # a repeated phrase that gzip does not catch (short, varied) still fails the distinct n-gram test
    chorus = "hold me now hold me now baby hold me now hold me now " * 2
    assert grade([SEG], chorus, gate=g)["status"] == "repetitive"
    unsure = grade([{**SEG, "avg_logprob": -1.4, "temperature": 1.0}], SPEECHY, gate=g)
    assert unsure["status"] == "low_confidence" and "-1.40 < -0.8" in unsure["reason"]
    assert unsure["confidence"] == pytest.approx(np.exp(-1.4))
    # greedy text rejected by Whisper for most of the audio: the hotter sample is not trusted
    sampled = grade([{**SEG, "avg_logprob": -0.8, "temperature": 0.4}, {**SEG, "start": 10, "end": 12}],
                    SPEECHY,
                    gate=g)
    assert sampled["status"] == "low_confidence" and "83%" in sampled["reason"]
    assert sampled["fallback_share"] == pytest.approx(10 / 12)
    silence = grade([{**SEG, "no_speech_prob": 0.9}], "Thank you.", gate=g)
    assert silence["status"] == "instrumental" and "0.90 > 0.6" in silence["reason"]
    empty = grade([], "", gate=g)
    assert empty["status"] == "failed" and empty["n_segments"] == 0
    # thresholds are configuration
    assert grade([{**SEG, "avg_logprob": -1.4}], SPEECHY,
                 gate=QualityGate(min_avg_logprob=-2.0))["status"] == "ok"
    with pytest.raises(InputError, match="max_fallback_share"):
        QualityGate(max_fallback_share=2.0)
    with pytest.raises(InputError, match="temperatures"):
        QualityGate(temperatures=())


def test_only_ok_transcripts_reach_topics_and_the_block_is_missing_otherwise(tmp_path):
    import pandas as pd

    from recsys.blocks import get_extractor

    block = get_extractor("lyrics", topics="1", cache_dir="off")
    table = pd.DataFrame({"track_id": list("abcde"), "ok": [True] * 4 + [False],
                          "reason": [""] * 4 + ["broken"],
                          "lyrics__text": ["the sea and the ship sailing", "sweet home on the range",
                                           LOOP, "sea ship home range sailing", ""],
                          "lyrics__status": ["ok", "ok", "repetitive", "low_confidence", None],
                          "lyrics__reason": ["", "", "text compresses 9x", "log-prob -1.4", None]})
    out = block.finalize(table).set_index("track_id")
    assert list(out["ok"]) == [True, True, False, False, False]
    assert out.loc["c", "reason"] == "repetitive: text compresses 9x" and out.loc["e", "reason"] == "broken"
    assert out.loc[["c", "d", "e"], "lyrics__topic_0"].isna().all()
    assert np.allclose(out.loc[["a", "b"], "lyrics__topic_0"], 1.0)
    assert "mall" not in block.topics_.vocabulary_ and block.topics_.n_documents_ == 2
