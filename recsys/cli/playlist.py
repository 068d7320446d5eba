"""``recsys playlist``: a whole playlist after seed tracks, ordered for smooth transitions, and its export."""

from __future__ import annotations

import json

import click

from ..validate import MAX_K


def _print_playlist(tracks, as_json: bool, eng) -> None:
    from ..playlist import describe

    note = getattr(tracks, "note", None)
    if note:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps({"playlist": [t.to_dict() for t in tracks]}, indent=2))
        return
    for line in describe(tracks, name_of=_title_of(eng)):
        click.echo(line)


def _title_of(eng):
    """track id -> title (the id when unknown), for reasons that name tracks."""
    t = eng.tracks
    rows = {str(i): r for r, i in enumerate(t.ids.tolist())}

    def name(tid: str) -> str | None:
        r = rows.get(tid)
        n = t.names[r] if r is not None else None
        return str(n) if n is not None else None

    return name


def _with_warnings(fn):
    """Run fn, echoing library warnings (unknown seed ids) on stderr as 'warning: ...'."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    return result


def register(main: click.Group) -> None:
    """Add ``recsys playlist`` (and ``recsys spotify save-playlist`` when the spotify group exists)."""

    @main.command("playlist")
    @click.option(
        "--index",
        "index_dir",
        required=True,
        type=click.Path(file_okay=False),
        help="Index directory written by `recsys build-index`.",
    )
    @click.option(
        "--seed",
        "seed",
        multiple=True,
        required=True,
        help="A seed track id (repeat, oldest first): the playlist continues after them.",
    )
    @click.option(
        "--length",
        type=click.IntRange(1, MAX_K),
        default=30,
        show_default=True,
        help="How many tracks the playlist gets.",
    )
    @click.option(
        "--arc",
        type=click.Choice(["flat", "rise", "peak", "fall"]),
        default="flat",
        show_default=True,
        help="Energy over the playlist: steady, rising, up then down, falling.",
    )
    @click.option(
        "--selection",
        type=click.Choice(["auto", "fusion", "single", "iterative", "ranked"]),
        default=None,
        help="How tracks are chosen: fused ranked lists (fusion), one recommender call (single), batches "
        "that join the context (iterative), or the continuation ranker (ranked); auto: ranked when the "
        "index has one, else fusion (default: the playlist config's).",
    )
    @click.option("--unordered", is_flag=True, help="Keep score order (no transition optimisation).")
    @click.option("--json", "as_json", is_flag=True, help='Print JSON ({"playlist": [...]}).')
    @click.option(
        "--out",
        type=click.Path(dir_okay=False),
        help="Also write the playlist: .m3u/.m3u8 (local audio paths), .json or .csv.",
    )
    @click.option(
        "--audio-dir",
        type=click.Path(file_okay=False),
        help="Audio folder of the index's tracks (files named by track id, or the features' "
        "file column): M3U entries point at these files.",
    )
    @click.option(
        "--features",
        type=click.Path(file_okay=False),
        help="Features dir whose tables map track ids to files under --audio-dir.",
    )
    def playlist(index_dir, seed, length, arc, selection, unordered, as_json, out, audio_dir, features):
        """A playlist after the seed tracks: chosen by the recommender, ordered by key, tempo and energy."""
        from ..engine import Engine
        from ..playlist import write_playlist
        from ..report import audio_file_map

        eng = Engine.load(index_dir)
        tracks = _with_warnings(
            lambda: eng.playlist(list(seed), length, arc=arc, selection=selection, ordered=not unordered)
        )
        _print_playlist(tracks, as_json, eng)
        if out:
            audio = audio_file_map([t.track_id for t in tracks], features=features, audio_dir=audio_dir)
            info = write_playlist(tracks, out, audio_files=audio)
            click.echo(f"{out}: {info}", err=as_json)

    _register_spotify(main)


def print_continuation(eng, histories, *, valid, n: int, max_playlists, seed: int, as_json: bool) -> None:
    """`recsys evaluate --task continuation`: one table, every method from the same run."""
    from ..continuation import evaluate_continuation

    table, info = evaluate_continuation(
        eng, histories, valid=valid, n=n, max_playlists=max_playlists, seed=seed, progress=True
    )
    if as_json:
        click.echo(json.dumps({"info": info, "results": table.to_dict(orient="records")}, indent=2))
        return
    v = info.get("validation")
    if v:
        click.echo(f"validation ({v['playlists']:,} playlists): selection by recall@{n} -> {v['chosen']}")
        for r in v["results"]:
            if r["method"].endswith("score order"):
                click.echo(
                    f"  {r['method']}: R-precision {r['r_precision']:.4f}, recall@{n} {r[f'recall@{n}']:.4f}"
                )
    click.echo(
        f"continuation of {info['playlists']:,} held-out playlists (seed = first {info['n_seed']}, "
        f"truth = the rest, median {info['median_truth']:.0f}); every method returns {n}"
    )
    if info["unknown_plays"]:
        click.echo(
            f"warning: {info['unknown_plays']:,} plays of tracks not in the index were ignored", err=True
        )
    click.echo(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    lat = ", ".join(
        f"{m} p50 {t['p50_ms']:.0f} / p99 {t['p99_ms']:.0f} ms" for m, t in info["latency"].items()
    )
    click.echo(
        f"key_compatible: share of adjacent pairs that are Camelot neighbours; tempo_step: median "
        f"|log2 tempo ratio| folded (2x = 0); chosen selection: {info['chosen']}"
    )
    click.echo(f"latency per playlist: {lat}")


def _register_spotify(main: click.Group) -> None:
    """``recsys spotify save-playlist``: the genre write-back's dry-run-then-apply for one playlist file."""
    group = main.commands.get("spotify")
    if not isinstance(group, click.Group):
        return

    @group.command("save-playlist")
    @click.option(
        "--from",
        "source",
        required=True,
        type=click.Path(dir_okay=False, exists=True),
        help="Playlist file from `recsys playlist --out` (.json or .csv).",
    )
    @click.option("--name", required=True, help="Name of the Spotify playlist to create (or update).")
    @click.option("--apply", "apply_", is_flag=True, help="Execute the plan (default is a dry run).")
    @click.option(
        "--config", "config_file", type=click.Path(dir_okay=False), help="TOML file with a [spotify] table."
    )
    def save_playlist(source, name, apply_, config_file) -> None:
        """Write a recsys playlist to Spotify as a new private playlist (dry run unless --apply)."""
        from ..playlist_spotify import apply_save, plan_save, read_track_ids
        from ..spotify.playlists import PlaylistState
        from .spotify import _client

        ids = read_track_ids(source)
        client = _client(config_file, "user")
        state = PlaylistState(client.config.playlist_state_path)
        plan = plan_save(client, ids, name, state=state)
        for line in plan.lines():
            click.echo(line)
        if not apply_:
            click.echo("dry run: nothing changed on Spotify (rerun with --apply to execute)")
            return
        if plan.playlist_id is not None and not plan.to_add:
            click.echo("applied: nothing to change")
            return
        done = apply_save(client, plan, state=state, description=f"Made by recsys from {len(ids)} tracks.")
        click.echo(f"applied: {done['created']} playlist(s) created, {done['added']} track(s) added")
