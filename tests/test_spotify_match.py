"""`recsys spotify match`: a music folder of generated, tagged FLAC/OGG/MP3/WAV files against a catalogue.

Files are written here with soundfile and tagged with mutagen: accents, "feat.", remaster and live
suffixes, an ISRC-only file, an untagged "Artist - Title" file, and decoys (wrong duration, a cover
by another artist, a title that differs by a number, an untagged file with a meaningless name, a song
not in the catalogue) that must not match.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mutagen")
pytest.importorskip("rapidfuzz")
sf = pytest.importorskip("soundfile")

from click.testing import CliRunner  # noqa: E402

from recsys.cli import main  # noqa: E402
from recsys.spotify.match import Matcher, match_folder, split_artists, split_title  # noqa: E402

SR = 16000
FORMATS = {".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"), ".mp3": ("MP3", "MPEG_LAYER_III"),
           ".wav": ("WAV", "PCM_16")}
WORDS = ["river", "midnight", "golden", "echo", "paper", "wild", "summer", "glass", "ocean", "fire", "velvet",
         "silent", "neon", "morning", "heart", "city", "shadow", "honey", "storm", "satellite"]
ARTISTS = ["Sigur Rós", "Beyoncé", "Mötley Crüe", "The Weeknd", "Björk", "Céline Dion", "Daft Punk",
           "Zoë Keating", "Los Ángeles Azules", "Ólafur Arnalds", "Hozier", "Alizée"]


def _write(path: Path, seconds: float, tags: dict | None, seed: int) -> float:
    """A short tone file; ``tags`` written with mutagen (None: untagged). Returns the duration in seconds."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = (0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t) + 0.01 * rng.standard_normal(len(t)))
    fmt, sub = FORMATS[path.suffix]
    sf.write(path, y.astype(np.float32), SR, format=fmt, subtype=sub)
    if tags:
        import mutagen

        if path.suffix == ".wav":
            from mutagen.id3 import TALB, TIT2, TPE1, TSRC
            from mutagen.wave import WAVE

            f = WAVE(path)
            f.add_tags()
            frames = {"title": TIT2, "artist": TPE1, "album": TALB, "isrc": TSRC}
            for k, v in tags.items():
                f.tags.add(frames[k](encoding=3, text=[v]))
            f.save()
        else:
            f = mutagen.File(path, easy=True)
            if f.tags is None:
                f.add_tags()
            for k, v in tags.items():
                f[k] = v
            f.save()
    return len(y) / SR


def _fold(s: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """(catalogue, folder, expected file -> track_id, decoy files)."""
    rng = np.random.default_rng(7)
    music = tmp_path_factory.mktemp("music")
    (music / "sub dir").mkdir()
    rows, expected, decoys = [], {}, []
    exts = list(FORMATS)

    def track(name: str, artist: str, seconds: float | None, isrc: str | None = None) -> str:
        tid = f"sp{len(rows):020d}"
        rows.append({"track_id": tid, "track_name": name, "track_artist": artist,
                     "track_album_name": f"Album of {artist}", "track_popularity": float(len(rows)),
                     "duration_ms": None if seconds is None else seconds * 1000 + rng.uniform(-400, 400),
                     "track_isrc": isrc})
        return tid

    # 24 generated targets, each tagged with one of the variations a real folder has
    variations = ["plain", "no_accents", "feat", "remaster_cat", "remaster_file", "live", "case", "ampersand",
                  "apostrophe", "typo"]
    for i in range(24):
        title = f"{WORDS[i % 20].title()} {WORDS[(i * 7 + 3) % 20].title()}"
        artist = ARTISTS[i % len(ARTISTS)]
        seconds = float(rng.uniform(1.5, 3.0))
        kind = variations[i % len(variations)]
        cat_title, cat_artist, f_title, f_artist = title, artist, title, artist
        if kind == "no_accents":
            f_title, f_artist = _fold(title), _fold(artist)
        elif kind == "feat":
            cat_title, cat_artist = f"{title} (feat. Zoë Keating)", f"{artist}, Zoë Keating"
            f_artist = f"{artist} feat. Zoe Keating"
        elif kind == "remaster_cat":
            cat_title = f"{title} - Remastered 2011"
        elif kind == "remaster_file":
            f_title = f"{title} (2009 Remaster)"
        elif kind == "live":
            cat_title, f_title = f"{title} - Live", f"{title} (Live)"
        elif kind == "case":
            f_title, f_artist = title.upper(), artist.lower()
        elif kind == "ampersand":
            cat_artist, f_artist = f"{artist} & Hozier", f"{artist} and Hozier"
        elif kind == "apostrophe":
            cat_title, f_title = f"Don't Fade {title}", f"Dont Fade {title}"
        elif kind == "typo":  # one letter dropped by whoever tagged the file
            cat_title, f_title = f"{title} Overture", f"{title} Overtre"
        tid = track(cat_title, cat_artist, seconds)
        ext = exts[i % len(exts)]
        rel = f"{'sub dir/' if i % 3 == 0 else ''}{i:02d} {_fold(f_title)}{ext}"
        dur = _write(music / rel, seconds, {"title": f_title, "artist": f_artist, "album": "x"}, seed=i)
        rows[-1]["duration_ms"] = dur * 1000 + rng.uniform(-400, 400)
        expected[rel] = tid
    # an ISRC-only file whose title tag is wrong
    tid = track("Hoppípolla", "Sigur Rós", 2.0, isrc="GBAYE0601498")
    _write(music / "isrc.flac", 2.0, {"title": "Track 1", "artist": "Unknown", "isrc": "GB-AYE-06-01498"},
           seed=100)
    expected["isrc.flac"] = tid
    # an untagged file named "Artist - Title"
    tid = track("One More Time", "Daft Punk", 2.0)
    _write(music / "Daft Punk - One More Time.wav", 2.0, None, 101)
    expected["Daft Punk - One More Time.wav"] = tid
    # decoys ---------------------------------------------------------------------------------------
    track("Long Song", "Björk", 185.0)  # the catalogue's version is three minutes long
    _write(music / "decoy duration.mp3", 2.0, {"title": "Long Song", "artist": "Björk"}, 102)
    track("Hallelujah", "Leonard Cohen", 2.0)  # a cover by someone else
    _write(music / "decoy cover.ogg", 2.0, {"title": "Hallelujah", "artist": "Jeff Buckley"}, 103)
    track("Song 2", "Blur", 2.0)  # a different number is a different song
    _write(music / "decoy number.flac", 2.0, {"title": "Song 21", "artist": "Blur"}, 104)
    _write(music / "track01.wav", 2.0, None, 105)  # untagged, meaningless name
    _write(music / "decoy unknown.mp3", 2.0, {"title": "Nowhere Near", "artist": "Nobody Known"}, 106)
    (music / "notes.txt").write_text("not audio")
    decoys = ["decoy duration.mp3", "decoy cover.ogg", "decoy number.flac", "track01.wav",
              "decoy unknown.mp3"]
    return pd.DataFrame(rows), music, expected, decoys


def test_normalisation():
    assert split_title("Here Comes the Sun - Remastered 2009") == ("here comes the sun", [], False)
    assert split_title("Crazy in Love (feat. JAY-Z)") == ("crazy in love", ["jay z"], False)
    assert split_title("Wonderwall (Live)")[2] and split_title("Wonderwall - Live at Wembley")[2]
    assert split_title("Blue (Da Ba Dee) [Remix]")[0] == "blue da ba dee remix"  # not a version: kept
    assert split_artists("Beyoncé feat. Jay-Z & Kendrick") == ["beyonce", "jay z", "kendrick"]
    cat = pd.DataFrame({"track_id": ["a", "b", "c"], "track_name": ["Golden Honey (feat. Zoë Keating)"] * 2
                        + ["September"], "track_artist": ["Mötley Crüe, Zoë Keating", "Hozier, Zoë Keating",
                                                           "Earth, Wind & Fire"]})
    from recsys.spotify.match import FileTags

    m = Matcher(cat)

    def one(title, artist):
        return m.match(FileTags("x.flac", title=title, artist=artist))

    # a shared featured artist is not the same song: the main artist decides
    assert one("Golden Honey", "Hozier feat. Zoe Keating")[0]["track_id"] == "b"
    assert one("September", "Earth Wind and Fire")[0]["track_id"] == "c"
    row, why = one("Golden Honey", "Zoë Keating")  # on both: refused rather than guessed
    assert row is None and why.startswith("ambiguous")


def test_match_rate_and_no_wrong_match_on_decoys(library):
    cat, music, expected, decoys = library
    res = match_folder(cat, music)
    got = dict(zip(res.matches["file"], res.matches["track_id"]))
    right = sum(got.get(f) == t for f, t in expected.items())
    assert right / len(expected) >= 0.95, res.unmatched.to_string()
    assert all(got[f] == expected[f] for f in got if f in expected)  # nothing matched to the wrong track
    assert not set(got) & set(decoys)
    why = dict(zip(res.unmatched["file"], res.unmatched["reason"]))
    assert "duration differs" in why["decoy duration.mp3"]
    assert "by 'Leonard Cohen'" in why["decoy cover.ogg"]
    assert "not 'Artist - Title'" in why["track01.wav"]
    assert res.n_files == len(expected) + len(decoys)
    assert got["isrc.flac"] == expected["isrc.flac"]
    methods = dict(zip(res.matches["file"], res.matches["method"]))
    assert methods["isrc.flac"] == "isrc" and methods["Daft Punk - One More Time.wav"] == "filename"
    assert set(res.matches["method"]) == {"isrc", "tags", "filename"}


def test_bad_catalogue_and_folder_are_one_clear_error(tmp_path, library):
    from recsys.errors import InputError, SchemaError

    with pytest.raises(SchemaError, match="track_artist"):
        Matcher(pd.DataFrame({"track_id": ["a"], "track_name": ["x"]}))
    with pytest.raises(InputError, match="no audio files"):
        match_folder(library[0], tmp_path)


def test_cli_match_then_extract_only_mapped_then_build_with_stats(library, tmp_path):
    """The documented pipeline: match -> features extract --mapping -> build-index --stats."""
    pytest.importorskip("librosa")
    cat, music, expected, _ = library
    cat_path = tmp_path / "sp.parquet"
    cat.to_parquet(cat_path)
    matches, unmatched = tmp_path / "matches.csv", tmp_path / "unmatched.csv"
    runner = CliRunner()
    res = runner.invoke(main, ["spotify", "match", "--catalog", str(cat_path), "--audio-dir", str(music),
                               "--out", str(matches), "--unmatched", str(unmatched)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"matched {len(expected)} of {len(expected) + 5} file(s)" in res.output
    assert "not matched: 5 file(s)" in res.output and "decoy cover.ogg:" in res.output
    m = pd.read_csv(matches)
    assert list(m.columns[:4]) == ["track_id", "file", "method", "score"]
    assert len(pd.read_csv(unmatched)) == 5
    res = runner.invoke(main, ["features", "extract", "--audio-dir", str(music), "--only-mapped",
                               "--out", str(tmp_path / "f0")])
    assert res.exit_code == 2 and "--only-mapped needs --mapping" in res.output
    # keep the extraction small: four matched files
    small = tmp_path / "matches4.csv"
    m.head(4).to_csv(small, index=False)
    feats = tmp_path / "features"
    res = runner.invoke(main, ["features", "extract", "--audio-dir", str(music), "--mapping", str(small),
                               "--only-mapped", "--blocks", "audiostats", "--out", str(feats), "--quiet"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    a = pd.read_parquet(feats / "audiostats.parquet")
    assert len(a) == 4 and set(a["track_id"]) == set(m.head(4)["track_id"]) and a["ok"].all()
    hist = pd.DataFrame({"user_id": ["u1"] * 10 + ["u2"] * 10,
                         "position": list(range(10)) * 2, "track_id": list(cat["track_id"][:10]) * 2})
    hist.to_parquet(tmp_path / "plays.parquet")
    config = tmp_path / "engine.toml"
    config.write_text('[engine.projection]\nmethod = "pca"\n')
    res = runner.invoke(main, ["build-index", "--catalog", str(cat_path), "--histories",
                               str(tmp_path / "plays.parquet"), "--stats", str(feats / "audiostats.parquet"),
                               "--config", str(config), "--out", str(tmp_path / "idx")],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    n = len(cat)
    assert f"no audio statistics for {n - 4} of {n} tracks" in res.output
    assert "statistics filled from --stats: 4 tracks" in res.output
    t = pd.read_parquet(tmp_path / "idx" / "tracks.parquet").set_index("track_id")
    filled = t.loc[list(m.head(4)["track_id"])]
    assert filled["tempo"].notna().all() and filled["danceability"].notna().all()
    assert t["tempo"].notna().sum() == 4
