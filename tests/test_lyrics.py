"""Lyric topics (TF-IDF + NMF): fit, top words, save/load without pickle, the block's finalize, the CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.blocks import get_extractor
from recsys.cli import main
from recsys.errors import InputError, ModelError, SchemaError
from recsys.blocks.lyrics import LyricsBlock
from recsys.lyrics import LyricTopics, read_user_lyrics

# Lines from traditional songs in the public domain, grouped by what they are about.
SEA = ["my bonnie lies over the ocean my bonnie lies over the sea bring back my bonnie to me",
       "the ship sailed over the stormy sea the sailor on the ocean waves far from home",
       "blow the wind southerly the ship is on the sea waves and the sailor my love",
       "row row row your boat gently down the stream over the water to the sea"]
HOME = ["home home on the range where the deer and the antelope play the skies are not cloudy all day",
        "oh susanna don't you cry for me i come from alabama with a banjo on my knee going home",
        "way down upon the swanee river far far away that's where my heart is turning home",
        "be it ever so humble there's no place like home sweet home"]
FAITH = ["amazing grace how sweet the sound that saved a wretch like me i once was lost but now am found",
         "swing low sweet chariot coming for to carry me home to heaven the lord and the angels",
         "glory glory hallelujah his truth is marching on the lord in heaven",
         "nearer my god to thee nearer to thee the lord my faith in heaven and grace"]
CORPUS = SEA + HOME + FAITH


def test_topics_separate_themes_and_top_words_are_readable():
    m = LyricTopics(3, random_state=0).fit(CORPUS)
    assert m.n_topics_ == 3 and len(m.vocabulary_) > 30
    words = m.top_words(6)
    assert all(len(w) == 6 for w in words)
    assert not {"the", "my", "oh", "and"} & {w for ws in words for w in ws}  # stop words and fillers
    W = m.transform(CORPUS)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-9)
    # each theme's songs share a dominant topic, and the three themes get three different ones
    dominant = [np.bincount(W[i:i + 4].argmax(axis=1), minlength=3).argmax() for i in (0, 4, 8)]
    assert len(set(dominant)) == 3, (dominant, words)
    for i in (0, 4, 8):
        assert (W[i:i + 4].argmax(axis=1) == dominant[i // 4]).sum() >= 3
    # a text with no known word has no topic weight at all
    assert np.all(m.transform(["zzz qqq"]) == 0)


def test_save_load_round_trip_and_corruption(tmp_path):
    m = LyricTopics(3).fit(CORPUS)
    m.save(tmp_path / "t")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["components.npy", "idf.npy",
                                                                  "manifest.json",
                                                                   "topics.json"]
    m2 = LyricTopics.load(tmp_path / "t")
    np.testing.assert_allclose(m2.transform(CORPUS), m.transform(CORPUS))
    assert m2.top_words(5) == m.top_words(5)
    (tmp_path / "t" / "idf.npy").write_bytes(b"garbage")
    with pytest.raises(ModelError, match=r"idf\.npy: truncated or modified"):
        LyricTopics.load(tmp_path / "t")
    (tmp_path / "t" / "idf.npy").unlink()
    with pytest.raises(ModelError, match=r"idf\.npy: missing"):
        LyricTopics.load(tmp_path / "t")
    with pytest.raises(ModelError, match="not fitted"):
        LyricTopics(2).top_words()


def test_small_or_empty_corpus():
    m = LyricTopics(8).fit(CORPUS[:2])
    assert m.n_topics_ == 2  # never more topics than texts
    with pytest.raises(InputError, match="no lyrics"):
        LyricTopics(2).fit(["", "   ", None])
    with pytest.raises(InputError, match="no words left"):
        LyricTopics(2).fit(["oh yeah", "la la la the"])


def test_user_lyrics_file(tmp_path):
    p = tmp_path / "l.csv"
    pd.DataFrame({"track_id": ["a", "b", "c"], "lyrics": ["one two", "", "three"]}).to_csv(p, index=False)
    df = read_user_lyrics(p)
    assert list(df.track_id) == ["a", "c"]
    pd.DataFrame({"id": ["a"], "text": ["x"]}).to_csv(p, index=False)
    with pytest.raises(SchemaError, match="track_id"):
        read_user_lyrics(p)


def test_block_finalize_adds_topic_columns_and_uses_user_lyrics(tmp_path):
    user = tmp_path / "user.tsv"
    pd.DataFrame({"track_id": ["t0", "u1", "u2"],
                  "text": [SEA[0], HOME[0], FAITH[0]]}).to_csv(user, sep="\t", index=False)
    block = get_extractor("lyrics", topics="3", lyrics=str(user), topics_out=str(tmp_path / "tm"),
                          cache_dir="off")
    assert isinstance(block, LyricsBlock) and block.cache is None
    texts = [""] + CORPUS[1:] + [""]
    table = pd.DataFrame({"track_id": [f"t{i}" for i in range(len(texts))], "lyrics__text": texts,
                          "lyrics__status": ["ok"] * (len(texts) - 1) + ["instrumental"]})
    out = block.finalize(table)
    cols = [f"lyrics__topic_{k}" for k in range(3)]
    assert list(out.columns[-3:]) == cols and len(out) == len(table)
    assert out.loc[0, "lyrics__text_source"] == "user"  # empty transcript, user lyrics supplied
    assert np.isfinite(out.loc[0, cols].to_numpy(float)).all()
    assert np.isnan(out.loc[len(texts) - 1, cols].to_numpy(float)).all()  # instrumental: no topics
    assert block.topics_.n_documents_ == len(CORPUS) + 2  # + the two user-only texts
    assert (tmp_path / "tm" / "topics.json").exists()
    # too little text (one transcript, no user lyrics): the columns exist but are empty
    alone = LyricsBlock(topics=3, cache_dir="off")
    few = alone.finalize(pd.DataFrame({"track_id": ["x", "y"], "lyrics__text": ["", SEA[1]]}))
    assert few[cols].isna().all().all() and alone.topics_ is None


def test_cli_topics(tmp_path):
    tr = tmp_path / "lyrics_block.parquet"
    loop = "going to the mall " * 20
    pd.DataFrame({"track_id": [f"t{i}" for i in range(len(CORPUS) + 1)], "lyrics__text": CORPUS + [loop],
                  "lyrics__status": ["ok"] * len(CORPUS) + ["repetitive"]}).to_parquet(tr)
    res = CliRunner().invoke(main, ["lyrics", "topics", "--transcripts", str(tr), "--topics", "3",
                                    "--words", "5",
                                    "--save", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "1 transcript(s) not ok, left out" in res.stderr and "mall" not in res.stdout
    lines = [line for line in res.output.splitlines() if line.startswith("topic ")]
    assert len(lines) == 3 and all(len(line.split(":", 1)[1].split()) == 5 for line in lines)
    assert LyricTopics.load(tmp_path / "m").n_topics_ == 3
    cat = tmp_path / "cat.csv"
    pd.DataFrame({"track_id": ["a", "b"], "track_name": ["x", "y"]}).to_csv(cat, index=False)
    res = CliRunner().invoke(main, ["lyrics", "topics", "--catalog", str(cat)])
    assert res.exit_code == 2 and "no text column" in res.output
    res = CliRunner().invoke(main, ["lyrics", "topics"])
    assert res.exit_code == 2 and "--transcripts" in res.output


def test_block_options_are_checked():
    with pytest.raises(InputError, match="unknown option.*topcs"):
        get_extractor("lyrics", topcs=3, cache_dir="off")
    with pytest.raises(InputError, match=r"lyrics.topics: cannot use .many. \(expected int\)"):
        get_extractor("lyrics", topics="many", cache_dir="off")
    with pytest.raises(InputError, match="at least 1 topic"):
        get_extractor("lyrics", topics="0", cache_dir="off")
    block = get_extractor("lyrics", topics="4", languages=["en", "es"], separate="no", cache_dir="off")
    assert block.n_topics == 4 and block.lyrics_settings.languages == ("en", "es") and block.separator is None
