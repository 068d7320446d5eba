"""The Python API validates like the CLI: one clear RecsysError for each misuse a new user tried."""
from __future__ import annotations

import numpy as np
import pytest

from recsys.engine import Engine
from recsys.errors import InputError, NotFittedError, RecsysError
from recsys.testing.engine import fast_config, make_catalog, planted_histories


@pytest.fixture(scope="module")
def eng():
    from recsys.schema import STATS

    cat = make_catalog(60)
    # three tracks without any statistic or metadata value: no feature block
    cat.loc[[10, 11, 12], [*STATS, "track_popularity"]] = np.nan
    return Engine.build(cat, histories=planted_histories(cat, n_users=20),
                        config=fast_config(genre_probs=False))


@pytest.mark.parametrize("call", ["recommend", "similar", "cluster_of", "cluster_members", "save", "summary"])
def test_unbuilt_engine_says_how_to_build(call, tmp_path):
    args = {"recommend": (["t0001"],), "similar": ("t0001",), "cluster_of": ("t0001",),
            "cluster_members": (0,), "save": (tmp_path / "x",), "summary": ()}[call]
    with pytest.raises(NotFittedError, match="Engine.build"):
        getattr(Engine(), call)(*args)
    assert issubclass(NotFittedError, RecsysError)


@pytest.mark.parametrize("k", [0, -3, 2.5, "10", None, True, 10**9])
def test_bad_k_is_an_input_error(eng, k):
    with pytest.raises(InputError, match="k must be"):
        eng.recommend(["t0001"], k=k)
    with pytest.raises(InputError, match="k must be"):
        eng.similar("t0001", k=k)


def test_recent_as_a_string_is_refused_not_split_into_characters(eng):
    with pytest.raises(InputError, match="not a single string"):
        eng.recommend("t0001")
    with pytest.raises(InputError, match="track ids are strings"):
        eng.recommend([1.5])


def test_short_results_say_why(eng):
    recs = eng.recommend(["t0001"], k=1000)
    assert 0 < len(recs) < 1000 and "only" in recs.note
    full = eng.recommend(["t0001"], k=3)
    assert len(full) == 3 and full.note is None
    sim = eng.similar("t0001", k=1000)
    assert len(sim) == 56 and "only 56 of 1000" in sim.note


def test_similar_skips_tracks_without_features(eng):
    empty = set(np.flatnonzero(~np.any(eng.embeddings, axis=1)).tolist())
    assert len(empty) == 3
    # tracks with a zero vector (no block at all) are never "similar" to anything
    got = eng.similar("t0002", k=100)
    assert len(got) == 56 and not {eng.tracks.row(r.track_id) for r in got} & empty
    assert eng.similar("t0010", k=5).note.endswith("has no feature block (nothing to compare it by)")
