"""Files that are not audio, or broken audio, through the CLI: named failures, no decoder chatter,
no tracks."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from click.testing import CliRunner

from recsys.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


def test_bad_files_are_named_and_left_out(tmp_path, capfd):
    audio = tmp_path / "audio"
    audio.mkdir()
    good = sorted(DATA.glob("*.ogg"))[0]
    shutil.copy(good, audio / "good.ogg")
    (audio / "text.mp3").write_text("hello, this is a text file with an mp3 name\n")
    (audio / "empty.wav").write_bytes(b"")
    (audio / "cut.ogg").write_bytes(good.read_bytes()[:3000])
    sf.write(audio / "blip.wav", np.zeros(2205, dtype="float32"), 22050)  # 0.1 s
    r = CliRunner().invoke(main, ["features", "extract", "--audio-dir", str(audio),
                                  "--out", str(tmp_path / "f"), "--quiet"])
    assert r.exit_code == 0, r.output
    err = capfd.readouterr().err
    assert "Note:" not in err and "resync" not in err  # mpg123's notes stay out of the terminal
    failures = pd.read_csv(tmp_path / "f" / "failures.csv")
    reason = dict(zip(failures["file"].map(lambda f: Path(f).name), failures["reason"]))
    assert "not an audio file" in reason["text.mp3"]
    assert "empty" in reason["empty.wav"] and "truncated or damaged" in reason["cut.ogg"]
    assert "good.ogg" not in reason
    cat = tmp_path / "idx"
    r = CliRunner().invoke(main, ["build-index", "--features", str(tmp_path / "f"), "--simulate-users", "0",
                                  "--no-genre-probs", "--out", str(cat)])
    assert r.exit_code == 0, r.output
    tracks = pd.read_parquet(cat / "tracks.parquet")["track_id"].tolist()
    assert "good" in tracks and not {"text", "empty", "cut"} & set(tracks)
    assert "left out" in r.output
