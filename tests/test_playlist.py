"""Playlists: Camelot keys, folded tempo steps, energy arcs, the ordering optimiser, Engine.playlist,
export, the API and the continuation evaluation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import main
from recsys.engine import Engine
from recsys.errors import InputError
from recsys.playlist import (
    ARCS,
    OrderConfig,
    camelot,
    camelot_name,
    energy_arc,
    key_compatible,
    name_tracks,
    order_cost,
    order_tracks,
    select_tracks,
    tempo_step,
    transition_note,
    transition_stats,
    write_playlist,
)
from recsys.testing.engine import fast_config, make_catalog, planted_histories


def test_camelot_codes_and_neighbours():
    names = [camelot_name(c) for c in camelot([0, 9, 7, 4, 5, 11, 2], [1, 0, 1, 0, 1, 0, 0])]
    assert names == ["8B", "8A", "9B", "9A", "7B", "10A", "7A"]  # C, Am, G, Em, F, Bm, Dm
    assert camelot_name(camelot([np.nan], [1])[0]) == "?"
    c, am, g, f, d = camelot([0, 9, 7, 5, 2], [1, 0, 1, 1, 1])
    assert key_compatible(c, am) and key_compatible(c, g) and key_compatible(c, f) and key_compatible(c, c)
    assert not key_compatible(c, d)  # two steps round the wheel
    b, fs = camelot([11, 6], [1, 1])  # 1B and 2B, and 12B (E) next to 1B across the wrap
    assert key_compatible(b, fs) and key_compatible(b, camelot([4], [1])[0])
    assert not key_compatible(-1, c)


def test_tempo_step_folds_double_and_half_time():
    assert tempo_step(120, 240) == pytest.approx(0.0)
    assert tempo_step(120, 60) == pytest.approx(0.0)
    assert tempo_step(120, 126) == pytest.approx(np.log2(126 / 120))
    assert tempo_step(124, 252) == pytest.approx(np.log2(252 / 248))
    assert np.isnan(tempo_step(0, 120)) and np.isnan(tempo_step(np.nan, 120))


def test_energy_arcs_and_bad_arc():
    e = np.linspace(0.2, 0.9, 11)
    assert np.ptp(energy_arc(11, "flat", e)) == 0
    rise, fall, peak = (energy_arc(11, a, e) for a in ("rise", "fall", "peak"))
    assert np.all(np.diff(rise) > 0) and np.all(np.diff(fall) < 0)
    assert 0 < int(np.argmax(peak)) < 10
    with pytest.raises(InputError, match="arc"):
        energy_arc(5, "zigzag", e)


def _random_set(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 24, n), rng.uniform(80, 170, n), rng.uniform(0.2, 0.95, n)


@pytest.mark.parametrize("arc", ARCS)
def test_order_is_a_windowed_permutation_that_lowers_the_cost(arc):
    cfg = OrderConfig(window=6, budget_ms=1e6)
    better_keys = 0
    for seed in range(8):
        codes, tempos, energy = _random_set(50, seed)
        o = order_tracks(codes, tempos, energy, arc=arc, config=cfg)
        assert sorted(o.tolist()) == list(range(50))
        pos = np.empty(50, int)
        pos[o] = np.arange(50)
        reach = np.maximum(6, (0.25 * np.arange(50)).astype(int))  # relevance kept: nobody leaves its window
        assert (np.abs(pos - np.arange(50)) <= reach).all() and np.abs(pos[:24] - np.arange(24)).max() <= 6
        assert order_cost(o, codes, tempos, energy, arc=arc, config=cfg) < order_cost(
            np.arange(50), codes, tempos, energy, arc=arc, config=cfg
        )
        a, b = transition_stats(codes[o], tempos[o]), transition_stats(codes, tempos)
        assert a["tempo_step"] < b["tempo_step"]
        better_keys += a["key_compatible"] > b["key_compatible"]
    assert better_keys >= 7


def test_rise_orders_energy_upwards():
    codes, tempos, energy = _random_set(48, 3)
    cfg = OrderConfig(window=6, w_key=0, w_tempo=0, w_energy=0, stretch=0, budget_ms=1e6)
    o = order_tracks(codes, tempos, energy, arc="rise", config=cfg)
    # within windows of 6 the energy can only drift so far: the correlation with position still grows
    assert np.corrcoef(np.arange(48), energy[o])[0, 1] > np.corrcoef(np.arange(48), energy)[0, 1] + 0.1


def test_short_lists_keep_their_first_pick_first():
    codes, tempos, energy = _random_set(7, 1)
    assert order_tracks(codes, tempos, energy).tolist() == list(range(7))  # window n // 8 = 0
    assert order_tracks([], [], []).tolist() == []


def test_transition_note():
    c, g = camelot([9, 4], [0, 0])  # 8A -> 9A
    assert transition_note((c, 124.0, 0.70), (g, 126.0, 0.75)) == "8A -> 9A, 124 -> 126 BPM, energy +0.05"
    d = camelot([2], [1])[0]
    assert "key clash" in transition_note((c, 124.0, 0.7), (d, 62.0, 0.7))
    assert "half time" in transition_note((c, 124.0, 0.7), (d, 62.0, 0.7))
    assert transition_note(None, (c, 124.0, 0.7)).startswith("opens: 8A, 124 BPM")


def test_iterative_selection_feeds_accepted_tracks_back():
    calls = []

    def rec(rows, k):  # recommends the k rows after the largest row in the context
        calls.append(list(rows))
        top = max(rows)
        got = list(range(top + 1, top + 1 + k))
        return got, [1.0 / (1 + i) for i in range(k)], [[f"after {top}"] for _ in got]

    rows, scores, why = select_tracks(rec, [3], 7, selection="iterative", step=3)
    assert rows == [4, 5, 6, 7, 8, 9, 10] and len(calls) == 3 and calls[1] == [3, 4, 5, 6]
    assert why[3] == ["after 6"]
    rows, _, _ = select_tracks(rec, [3], 7, selection="single")
    assert rows == [4, 5, 6, 7, 8, 9, 10] and calls[-1] == [3]
    with pytest.raises(InputError, match="selection"):
        select_tracks(rec, [3], 2, selection="best")


def test_name_tracks_in_reasons():
    names = {"abcdef123": "Tiny Dancer"}
    assert name_tracks("next {abcdef123}->x conf 0.3", names.get) == "next {“Tiny Dancer”}->x conf 0.3"


# ------------------------------------------------------------------------------------------ engine
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    catalog = make_catalog(240)
    out = tmp_path_factory.mktemp("pl") / "index"
    eng = Engine.build(
        catalog, histories=planted_histories(catalog), out=out, config=fast_config(genre_probs=False), seed=0
    )
    return eng, out


def test_engine_playlist(built):
    eng, _ = built
    seed = ["t0000", "t0001", "t0002"]
    pl = eng.playlist(seed, 24, arc="rise")
    ids = [t.track_id for t in pl]
    assert len(ids) == 24 == len(set(ids)) and not set(ids) & set(seed)
    assert [t.position for t in pl] == list(range(24))
    assert sorted(t.relevance_rank for t in pl) == list(range(24))
    assert all(abs(t.relevance_rank - t.position) <= max(3, t.relevance_rank // 4) for t in pl)  # 24 // 8
    assert all(t.transition and t.reasons for t in pl)
    assert pl[1].transition.startswith(f"{pl[0].camelot} -> {pl[1].camelot}")
    d = pl[0].to_dict()
    assert {"transition", "camelot", "tempo", "energy", "reasons", "track_name"} <= set(d)
    # the same tracks as the score order, reordered
    plain = eng.playlist(seed, 24, ordered=False)
    assert sorted(t.track_id for t in plain) == sorted(ids)
    assert [t.relevance_rank for t in plain] == list(range(24))


def test_engine_playlist_bad_seeds(built):
    eng, _ = built
    with pytest.raises(InputError, match="none of the seed track ids"):
        eng.playlist(["nope", "also-nope"], 5)
    with pytest.raises(InputError, match="single string"):
        eng.playlist("t0000", 5)
    with pytest.raises(InputError, match="seed track"):
        eng.playlist([], 5)
    with pytest.raises(InputError, match="length"):
        eng.playlist(["t0000"], 0)
    with pytest.warns(UserWarning, match="unknown track id"):
        assert len(eng.playlist(["t0000", "nope"], 5)) == 5


def test_export_m3u_json_csv(built, tmp_path):
    eng, _ = built
    pl = eng.playlist(["t0000", "t0001"], 6)
    audio = {}
    for t in pl[:4]:
        f = tmp_path / "audio" / f"{t.track_id}.ogg"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"OggS")
        audio[t.track_id] = f
    assert "4 with a local audio path" in write_playlist(pl, tmp_path / "set.m3u", audio_files=audio)
    lines = (tmp_path / "set.m3u").read_text().splitlines()
    assert lines[0] == "#EXTM3U"
    paths = [ln for ln in lines if ln and not ln.startswith("#")]
    assert len(paths) == 4 and all(__import__("os").path.isfile(p) for p in paths)
    write_playlist(pl, tmp_path / "set.json")
    got = json.loads((tmp_path / "set.json").read_text())["playlist"]
    assert [g["track_id"] for g in got] == [t.track_id for t in pl]
    write_playlist(pl, tmp_path / "set.csv")
    tab = pd.read_csv(tmp_path / "set.csv")
    assert tab["track_id"].tolist() == [t.track_id for t in pl] and "transition" in tab.columns
    with pytest.raises(InputError, match="playlist files end in"):
        write_playlist(pl, tmp_path / "set.txt")


def test_cli_playlist(built, tmp_path):
    _, out = built
    r = CliRunner().invoke(
        main,
        [
            "playlist",
            "--index",
            str(out),
            "--seed",
            "t0000",
            "--seed",
            "t0001",
            "--length",
            "8",
            "--arc",
            "peak",
            "--json",
            "--out",
            str(tmp_path / "p.csv"),
        ],
    )
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert len(body["playlist"]) == 8 and (tmp_path / "p.csv").exists()
    r = CliRunner().invoke(main, ["playlist", "--index", str(out), "--seed", "t0000", "--length", "4"])
    assert r.exit_code == 0 and "↳" in r.output and " 4. " in r.output
    r = CliRunner().invoke(main, ["playlist", "--index", str(out), "--seed", "zzzz", "--length", "4"])
    assert (
        r.exit_code == 2 and "error: none of the seed track ids" in r.output and "Traceback" not in r.output
    )


def test_api_playlist(built):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recsys.serve import ServeOptions, create_app

    _, out = built
    client = TestClient(create_app(ServeOptions(index=str(out))), client=("127.0.0.1", 50000))
    r = client.post("/api/playlist", json={"seed": ["t0000", "t0001"], "length": 12, "arc": "fall"})
    assert r.status_code == 200, r.text
    pl = r.json()["playlist"]
    assert len(pl) == 12 and all({"transition", "map", "camelot", "reasons"} <= set(t) for t in pl)
    assert r.json()["note"] is None
    bad = [
        ({"seed": ["t0000", "nope"]}, 404, "unknown track id"),
        ({"seed": []}, 422, "seed"),
        ({"seed": ["t0000"], "length": 0}, 422, "length"),
        ({"seed": ["t0000"], "arc": "zigzag"}, 422, "arc"),
        ({"seed": "t0000"}, 422, "seed"),
        ({"seed": ["t0000"], "extra": 1}, 422, "extra"),
    ]
    for body, status, word in bad:
        r = client.post("/api/playlist", json=body)
        assert r.status_code == status and word in r.json()["error"], (body, r.text)


# ------------------------------------------------------------------------------------------ continuation
def test_continuation_metrics():
    from recsys.continuation import ndcg_at, r_precision, recall_at

    truth = {1, 2, 3, 4}
    ranked = [1, 9, 2, 8, 3, 7]
    assert r_precision(ranked, truth) == 0.5  # 1 and 2 in the first 4
    assert recall_at(ranked, truth, 5) == 0.75
    ideal = sum(1 / np.log2(i + 2) for i in range(4))
    assert ndcg_at(ranked, truth, 5) == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(6)) / ideal)
    assert ndcg_at([1, 2, 3, 4], truth, 50) == pytest.approx(1.0)


def test_split_playlists_holds_whole_playlists_out():
    from recsys.continuation import split_playlists

    h = planted_histories(make_catalog(240), n_users=160, seed=2)
    h["user_id"] = "p" + (h["user_id"].str[1:].astype(int) // 2).astype(str)  # 80 playlists of 24
    parts = split_playlists(h, min_tracks=15, test=0.25, valid=0.25, seed=1)
    users = {k: set(v["user_id"]) for k, v in parts.items()}
    assert not users["train"] & users["test"] and not users["train"] & users["valid"]
    assert not users["valid"] & users["test"] and len(users["test"]) == 20 == len(users["valid"])
    assert sum(len(v) for v in parts.values()) == len(h)


def test_continuation_evaluation_on_held_out_playlists(tmp_path):
    from recsys.continuation import evaluate_continuation

    catalog = make_catalog(240)
    h = planted_histories(catalog, n_users=160, seed=3)
    h["user_id"] = "p" + (h["user_id"].str[1:].astype(int) // 2).astype(str)  # 80 playlists of 24
    h["position"] = h.groupby("user_id").cumcount()
    test_ids = {f"p{i}" for i in range(60, 80)}
    train, test = h[~h["user_id"].isin(test_ids)], h[h["user_id"].isin(test_ids)]
    eng = Engine.build(catalog, histories=train, config=fast_config(genre_probs=False), seed=0)
    table, info = evaluate_continuation(eng, test, valid=test.iloc[: len(test) // 2], n=12)
    t = table.set_index("method")
    assert {
        "item-kNN",
        "V-SKNN",
        "ALS",
        "popularity",
        "playlist iterative, ordered",
        "playlist single, score order",
    } <= set(t.index)
    assert info["playlists"] == 20 and info["chosen"] in ("fusion", "iterative", "single")
    assert {"playlist fusion, ordered", "hybrid (index settings)", "item-kNN, uniform seed"} <= set(t.index)
    assert (t["returned"] == 12).all() and t["recall@12"].between(0, 1).all()
    # ordering moves tracks only within windows: same set, so the same recall, smoother transitions
    assert (
        t.loc["playlist iterative, ordered", "recall@12"]
        == t.loc["playlist iterative, score order", "recall@12"]
    )
    assert (
        t.loc["playlist iterative, ordered", "tempo_step"]
        <= t.loc["playlist iterative, score order", "tempo_step"]
    )
    assert t.loc["item-kNN", "recall@12"] > t.loc["popularity", "recall@12"]


def test_spotify_save_playlist_dry_run_then_apply(built, fake, spotify_env, tmp_path):
    from pathlib import Path

    from recsys.testing.spotify import make_track, write_user_token

    eng, _ = built
    pl = eng.playlist(["t0000", "t0001"], 8)
    tracks = [make_track(i) for i in range(8)]  # the fake knows Spotify-shaped ids: map ours onto them
    fake.add_tracks(tracks)
    for t, s in zip(pl, tracks):
        t.track_id = s["id"]
    write_playlist(pl, tmp_path / "set.json")
    write_user_token(Path(spotify_env["RECSYS_CONFIG_DIR"]), fake)
    run = CliRunner().invoke
    r = run(main, ["spotify", "save-playlist", "--from", str(tmp_path / "set.json"), "--name", "Friday set"])
    assert r.exit_code == 0, r.output
    assert "'Friday set': create; +8 to add" in r.output and "dry run" in r.output
    assert fake.user_playlists() == []
    r = run(main, ["spotify", "save-playlist", "--from", str(tmp_path / "set.json"), "--name", "Friday set",
                   "--apply"])
    assert r.exit_code == 0 and "1 playlist(s) created, 8 track(s) added" in r.output, r.output
    (meta,) = fake.user_playlists()
    assert meta["name"] == "Friday set" and meta["public"] is False
    assert fake.playlist_track_ids(meta["id"]) == [t.track_id for t in pl]  # in play order
    r = run(main, ["spotify", "save-playlist", "--from", str(tmp_path / "set.json"), "--name", "Friday set",
                   "--apply"])
    assert "update; +0 to add, 8 already there" in r.output and "nothing to change" in r.output
    assert len(fake.user_playlists()) == 1


def test_plain_reasons_name_tracks_by_title():
    from recsys.playlist import plain_reason, sound_of, summarise

    names = {"abcdef1": "Tiny Dancer", "abcdef2": "Rocket Man"}.get
    assert plain_reason("next {abcdef1}->zzz conf 0.33 lift 99.8", names) == (
        "Often played right after “Tiny Dancer” (33 % of the time)")
    assert plain_reason("rule {abcdef1,abcdef2}->zzz conf 0.50 lift 3.0", names) == (
        "Often in playlists with “Tiny Dancer” and “Rocket Man” (50 % of them)")
    assert plain_reason("in 4 of the 28 most similar histories", names) == (
        "In 4 of the 28 playlists most like this one")
    snd = sound_of(124.2, 9, 0)
    assert snd == " (tempo 124, A minor)"
    assert plain_reason("neighbour of abcdef2 (cos 0.91)", names, sound=snd) == (
        "Sounds close to “Rocket Man” (tempo 124, A minor)")
    assert plain_reason("something new about abcdef1", names) == "something new about “Tiny Dancer”"
    got = summarise(["same artist as abcdef1", "same artist as abcdef1", "popular (12 plays)", "x"], names)
    assert got == ["Same artist as “Tiny Dancer”", "Popular: in 12 playlists"]


def test_mpd_split_holds_out_whole_playlists(shared_data):
    """The MPD dev playlists (research only, read in place): test playlists never reach training."""
    from recsys.continuation import continuation_queries, split_playlists
    from recsys.users import read_histories

    h = read_histories(shared_data / "playlists" / "mpd_dev_playlists.tsv.gz")
    parts = split_playlists(h, min_tracks=15, test=0.2, valid=0.1, seed=0)
    train_ids = set(parts["train"]["user_id"])
    assert not train_ids & set(parts["test"]["user_id"]) and not train_ids & set(parts["valid"]["user_id"])
    assert len(set(parts["test"]["user_id"])) > 250
    row_of = {t: i for i, t in enumerate(sorted(set(h["track_id"])))}
    qs, info = continuation_queries(parts["test"], row_of, n_seed=10, min_tracks=15)
    assert all(len(q.seed) == 10 and len(q.truth) >= 5 and not set(q.seed) & q.truth for q in qs)
    assert info["playlists"] == len(set(parts["test"]["user_id"]))
