"""Transcribers through their real loading paths with tiny random weights; gates, languages, cache."""
from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.audio.load import load_audio
from recsys.audio.separation import ClassicalSeparator
from recsys.audio.transcription import (FasterWhisperTranscriber, LyricsSettings, OpenAIWhisperTranscriber,
                                        TranscriptCache, UnsupportedLanguage, make_transcriber,
                                        transcribe_excerpt)
from recsys.errors import DependencyError, InputError, ModelError

from _stems_helpers import SPEECH, music_file, tiny_whisper_checkpoint

SR = 22050


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("whisper")
    return {"a": tiny_whisper_checkpoint(d / "a.pt", seed=0), "b": tiny_whisper_checkpoint(d / "b.pt", seed=1),
            "en": tiny_whisper_checkpoint(d / "en.pt", seed=2, multilingual=False)}


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    y, _ = load_audio(SPEECH / "ljspeech" / "LJ001-0004.flac", sr=SR)
    return y


NO_SEP = LyricsSettings(separate=False, min_vocal_seconds=1.0)


def test_openai_whisper_random_checkpoint_through_load_model(ckpts, speech):
    tr = OpenAIWhisperTranscriber(str(ckpts["a"]))
    langs = tr.supported_languages()
    assert len(langs) == 99 and "en" in langs and "fr" in langs  # multilingual dims
    t = tr.transcribe(load_audio(SPEECH / "ljspeech" / "LJ001-0002.flac", sr=16000)[0])
    assert t.language in langs and t.language_source == "detected"
    assert 0.0 <= t.language_probability <= 1.0
    assert t.status in ("ok", "empty") and t.backend == "openai-whisper"
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
    assert t.status == "unsupported_language" and t.text == "" and "fr" in t.reason
    # an allow-list that excludes the (only possible) language refuses before decoding
    t = transcribe_excerpt(speech, SR, transcriber=tr,
                           settings=LyricsSettings(separate=False, languages=("de", "es")))
    assert t.status == "unsupported_language" and t.language == "en"
    assert t.language_source == "english-only model"
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
    assert t.status == "too_short" and "0.50 s" in t.reason
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
                               settings=LyricsSettings(separate=False, min_vocal_seconds=1.5))
    assert not other.cached
    files[0].write_text("{ truncated")
    assert not transcribe_excerpt(speech, SR, transcriber=a, settings=NO_SEP, cache=cache).cached


def test_cli_transcribe_with_local_checkpoint(ckpts, tmp_path):
    import soundfile as sf
    from click.testing import CliRunner

    from recsys.cli import main

    runner = CliRunner()
    args = ["lyrics", "transcribe", str(SPEECH / "ljspeech" / "LJ001-0004.flac"), "--backend", "openai-whisper",
            "--model", str(ckpts["a"]), "--no-separate", "--min-vocal-seconds", "1", "--cache-dir", str(tmp_path / "c")]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "status: ok" in res.output or "status: empty" in res.output
    assert "[detected]" in res.output and "separator: none" in res.output
    res = runner.invoke(main, args)
    assert res.exit_code == 0 and "(cached)" in res.output
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR * 4, np.float32), SR)
    res = runner.invoke(main, ["lyrics", "transcribe", str(silent), "--backend", "openai-whisper", "--model",
                               str(ckpts["a"]), "--separator", "classical", "--no-cache"])
    assert res.exit_code == 0 and "status: instrumental" in res.output
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
    assert rec["lyrics__status"] == "unsupported_language" and rec["lyrics__language"] == "en"
    assert rec["lyrics__instrumental"] == 0 and rec["lyrics__vocal_seconds"] > 1.0
    assert rec["lyrics__separator"] == "none" and rec["lyrics__backend"] == "openai-whisper"
    numeric = {k for k, v in rec.items() if isinstance(v, (int, float))}
    assert numeric == {"lyrics__instrumental", "lyrics__vocal_seconds"}  # bookkeeping stays textual
    with pytest.raises(ModelError, match="missing.pt"):
        get_extractor("lyrics", backend="openai-whisper", model=str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="vocal gate"):
        get_extractor("lyrics", gate="loudness", model=str(ckpts["a"]), backend="openai-whisper")
