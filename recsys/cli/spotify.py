"""``recsys spotify``: import playlists / liked songs, and sort liked songs into genre playlists.

Endpoints follow ``RECSYS_SPOTIFY_API_URL`` / ``RECSYS_SPOTIFY_AUTH_URL``; credentials come from
the environment or ``.env`` and are never printed. Spotify content is for labelling and sorting
a user's own library: Spotify's Developer Policy forbids training models on it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import FORCE_FILE

STATS_HELP = ("table of statistics matched by track_id (CSV/Parquet with any of the 12 statistics, "
              "e.g. FEATURES/audiostats.parquet from the audio pipeline or a public dataset)")


def _client(config_file: str | None, auth: str, *, interactive: bool = False):
    from ..config import load_section
    from ..spotify.client import SpotifyClient, SpotifyConfig

    cfg = SpotifyConfig.from_env(base=load_section(config_file, "spotify", SpotifyConfig))
    return SpotifyClient.connect(cfg, auth=auth, interactive=interactive)


def _progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _print_report(report, out: Path | None, df) -> None:
    from ..spotify.importer import FEATURE_STATS

    where = f" -> {out}" if out else ""
    click.echo(f"imported {report.rows} rows ({report.tracks} tracks) "
               f"from {len(report.sources)} source(s){where}")
    for s in report.sources:
        extra = f", {s.get('skipped', 0)} skipped" if s.get("skipped") else ""
        click.echo(f"  {s['name'] or s['source']}: {s['rows']} rows{extra} [{s['status']}]")
    if report.skipped:
        click.echo("skipped items: " + ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items())))
    if report.completed_by_lookup:
        click.echo(f"completed {report.completed_by_lookup} incomplete track(s) with GET /tracks")
    if report.resumed_pages:
        click.echo(f"resumed: {report.resumed_pages} page(s) came from the checkpoint")
    click.echo(f"statistics: audio-features {report.audio_features} ({report.features_found} tracks), "
               f"{report.stats_from_file} filled from --stats, {report.missing_stats} track(s) without any")
    if report.artist_genres != "off":
        click.echo(f"artist genres: {report.artist_genres} ({report.artists} artists)")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.missing_stats and df is not None and len(df):
        missing_cols = [c for c in FEATURE_STATS if df[c].isna().all()]
        click.echo(f"missing: {report.missing_stats} track(s) have no audio statistics"
                   + (f" (columns entirely empty: {', '.join(missing_cols)})" if missing_cols else "")
                   + ". They are written as empty (NaN) values and the catalogue still builds an index "
                     "from histories and metadata (build-index --catalog CAT --histories PLAYS). To add "
                     "statistics, match your music folder by its tags (recsys spotify match), then --stats; "
                     "see docs/spotify.md.")


def _stats(path: str | None):
    if not path:
        return None
    from ..spotify.importer import read_stats

    return read_stats(path)


def _import_options(fn):
    opts = [
        click.option("--stats", "stats_file", type=click.Path(dir_okay=False), help=STATS_HELP),
        click.option("--audio-features/--no-audio-features", default=True,
                     help="Ask Spotify's audio-features endpoint (only apps with access get answers)."),
        click.option("--artist-genres/--no-artist-genres", default=True,
                     help="Label tracks with their artists' genres mapped to the 13 parents."),
        click.option("--market", default=None, help="ISO country code (or from_token) for playability."),
        click.option("--restart", is_flag=True, help="Ignore a checkpoint of an interrupted run."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bars (default: when a terminal)."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False),
                     help="TOML with a [spotify] section."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _write_histories(df, path: str | None, *, force: bool = False) -> None:
    """``--histories-out``: one history per playlist (and liked songs) for build-index --histories."""
    if not path:
        return
    from ..io import write_table
    from ..spotify.importer import LIKED_ID, playlist_histories

    h = playlist_histories(df)
    if len(h) == 0:
        click.echo("histories: nothing imported, no file written")
        return
    write_table(h, path, output=True, force=force)
    users = h["user_id"].astype(str)
    n_pl = users[users != LIKED_ID].nunique()
    click.echo(f"histories: {users.nunique()} ({n_pl} playlist(s)"
               + (" + liked songs" if (users == LIKED_ID).any() else "")
               + f"), {len(h)} plays -> {path}")


HISTORIES_HELP = ("Also write listening histories (.parquet/.csv): one per playlist (user_id = playlist id, "
                  "position = playlist order, added_at) and one for liked songs (build-index --histories).")


def _run_import(*, playlists, liked: bool, out: str, auth: str, stats_file, audio_features, artist_genres,
                market, restart, progress, config_file, histories_out=None, force: bool = False):
    import shutil

    from ..io import check_output_file, write_table
    from ..spotify.importer import ImportConfig, Importer

    out_path = Path(out)
    for path in (out, histories_out):  # before any network call (recsys.io's rule for outputs)
        if path:
            check_output_file(path, inputs=[stats_file, config_file], force=force)
    stats = _stats(stats_file)  # read before any network call: a bad file fails fast
    client = _client(config_file, auth)
    ck = out_path.parent / f".{out_path.name}.partial"
    if restart:
        shutil.rmtree(ck, ignore_errors=True)
    imp = Importer(client, config=ImportConfig(market=market, audio_features=audio_features,
                                               artist_genres=artist_genres),
                   checkpoint=ck, progress=_progress(progress))
    df, report = imp.run(playlists, liked=liked, stats=stats)
    if len(df) == 0:
        click.echo("nothing imported (every source was empty or skipped); no file written")
        _print_report(report, None, df)
        return
    write_table(df, out_path, output=True, force=force)
    _print_report(report, out_path, df)
    _write_histories(df, histories_out, force=force)


def register(main: click.Group) -> None:
    """Add ``recsys spotify ...`` to the top-level group."""

    @main.group("spotify")
    def spotify() -> None:
        """Spotify Web API: import playlists and liked songs, write genre playlists.

        Credentials: RECSYS_SPOTIFY_CLIENT_ID / RECSYS_SPOTIFY_CLIENT_SECRET (or SPOTIPY_*) in the
        environment or .env. Spotify's Developer Policy forbids training models on Spotify content.
        """

    @spotify.command("login")
    @click.option("--config", "config_file", type=click.Path(dir_okay=False),
                  help="TOML with a [spotify] section.")
    def login(config_file) -> None:
        """Authorise recsys for your account (browser + local redirect, or PKCE without a secret)."""
        client = _client(config_file, "user", interactive=True)
        user = client.current_user_id()
        click.echo(f"authorised as Spotify user {user}; token cached in {client.config.user_token_path}")

    @spotify.command("import")
    @click.option("--playlist", "playlists", multiple=True, metavar="REF[=GENRE]",
                  help="Playlist URL, URI or id; '=genre' makes it stand for that genre (repeatable).")
    @click.option("--liked", is_flag=True,
                  help="Also import your liked songs (needs `recsys spotify login`).")
    @click.option("--out", required=True, type=click.Path(dir_okay=False),
                  help="Catalogue to write (.parquet/.csv).")
    @click.option("--auth", type=click.Choice(["auto", "app", "user"]), default="auto", show_default=True,
                  help="app: client credentials; user: your login; auto: user when logged in.")
    @click.option("--histories-out", type=click.Path(dir_okay=False), help=HISTORIES_HELP)
    @click.option("--force", is_flag=True, help=FORCE_FILE)
    @_import_options
    def import_(playlists, liked, out, auth, **kw) -> None:
        """Import playlists (and liked songs) into a catalogue table, one row per (track, playlist)."""
        from ..errors import InputError
        from ..spotify.labels import parse_playlist_spec

        if not playlists and not liked:
            raise InputError("give at least one --playlist (or --liked)")
        specs = [parse_playlist_spec(p) for p in playlists]
        _run_import(playlists=specs, liked=liked, out=out, auth=auth, **kw)

    @spotify.command("liked")
    @click.option("--out", required=True, type=click.Path(dir_okay=False),
                  help="Catalogue to write (.parquet/.csv).")
    @click.option("--histories-out", type=click.Path(dir_okay=False), help=HISTORIES_HELP)
    @click.option("--force", is_flag=True, help=FORCE_FILE)
    @_import_options
    def liked(out, **kw) -> None:
        """Import your liked songs into a catalogue table."""
        _run_import(playlists=[], liked=True, out=out, auth="user", **kw)

    @spotify.command("match")
    @click.option("--catalog", required=True, type=click.Path(dir_okay=False),
                  help="Catalogue from `recsys spotify import` (track_name, track_artist, duration_ms).")
    @click.option("--audio-dir", required=True, type=click.Path(file_okay=False),
                  help="Your music folder (searched recursively; files keep their names).")
    @click.option("--out", required=True, type=click.Path(dir_okay=False),
                  help="Matches to write (CSV: track_id, file, method, score, ...): the --mapping of "
                       "`recsys features extract`.")
    @click.option("--unmatched", "unmatched_out", type=click.Path(dir_okay=False),
                  help="Also write every unmatched file with the reason (CSV).")
    @click.option("--min-title", type=click.FloatRange(0, 100), default=None,
                  help="Title similarity a match needs (0-100, default 90).")
    @click.option("--duration-tolerance", type=click.FloatRange(0, None), default=None,
                  help="Seconds a file may differ from the catalogue's duration (default 8; or 4 %).")
    @click.option("--progress/--no-progress", default=None, help="Progress bar (default: when a terminal).")
    @click.option("--force", is_flag=True, help=FORCE_FILE)
    def match(catalog, audio_dir, out, unmatched_out, min_title, duration_tolerance, progress, force) -> None:
        """Match audio files to catalogue tracks by their tags: ISRC, then artist + title (+ duration).

        Next: `recsys features extract --audio-dir MUSIC --mapping OUT --only-mapped --blocks audiostats
        --out FEATURES`, then `recsys build-index ... --stats FEATURES/audiostats.parquet`.
        """
        import dataclasses

        from ..catalog import load_catalog
        from ..io import check_output_file, write_table
        from ..spotify.match import MatchConfig, match_folder

        for path in (out, unmatched_out):  # never over the catalogue or a user's file (recsys.io)
            if path is not None:
                check_output_file(path, inputs=[catalog, audio_dir], force=force)
        cfg = MatchConfig()
        if min_title is not None:
            cfg = dataclasses.replace(cfg, min_title=min_title)
        if duration_tolerance is not None:
            cfg = dataclasses.replace(cfg, duration_s=duration_tolerance)
        cat = load_catalog(catalog, on_conflict="first")
        res = match_folder(cat, audio_dir, config=cfg, progress=_progress(progress))
        write_table(res.matches, out, output=True, force=force)
        if unmatched_out:
            write_table(res.unmatched, unmatched_out, output=True, force=force)
        n = len(res.matches)
        how = ", ".join(f"{k} {v}" for k, v in sorted(res.methods.items()))
        click.echo(f"matched {n} of {res.n_files} file(s) ({100.0 * n / res.n_files:.0f} %)"
                   + (f": {how}" if how else "") + f" -> {out}; {res.matches['track_id'].nunique()} of "
                   f"{len(cat)} catalogue tracks have a file")
        if len(res.unmatched):
            click.echo(f"not matched: {len(res.unmatched)} file(s)"
                       + ("" if unmatched_out else " (--unmatched FILE writes them all)"))
            for f, why in list(zip(res.unmatched["file"], res.unmatched["reason"]))[:20]:
                click.echo(f"  {f}: {why}")
            if len(res.unmatched) > 20:
                click.echo(f"  ... and {len(res.unmatched) - 20} more")

    @spotify.command("sort-liked")
    @click.option("--model", "model_dir", type=click.Path(file_okay=False),
                  help="Saved tabular genre model dir.")
    @click.option("--predictions", "predictions_file", type=click.Path(dir_okay=False),
                  help="CSV/Parquet with track_id,predicted_genre instead of a model.")
    @click.option("--genres", default=None, help="Comma-separated parent genres to make playlists for "
                  "(default: every predicted genre).")
    @click.option("--apply", "apply_", is_flag=True, help="Execute the plan (default is a dry run).")
    @click.option("--dry-run", is_flag=True, help="Only print the plan (the default).")
    @click.option("--prefix", default="recsys: ", show_default=True, help="Playlist name prefix.")
    @click.option("--save-predictions", type=click.Path(dir_okay=False),
                  help="Also write the predictions table.")
    @_import_options
    def sort_liked(model_dir, predictions_file, genres, apply_, dry_run, prefix, save_predictions,
                   stats_file, audio_features, artist_genres, market, restart, progress, config_file) -> None:
        """Predict a parent genre per liked song and create/update one playlist per chosen genre."""
        import shutil

        import pandas as pd

        from ..errors import InputError
        from ..io import write_table
        from ..spotify.importer import ImportConfig, Importer
        from ..spotify.playlists import (PlaylistState, apply_plan, parse_genres, plan_playlists,
                                         predictions_from_model, read_predictions)

        if bool(model_dir) == bool(predictions_file):
            raise InputError("give exactly one of --model MODEL_DIR or --predictions FILE")
        if apply_ and dry_run:
            raise InputError("--apply and --dry-run contradict each other")
        preds_given = read_predictions(predictions_file) if predictions_file else None
        stats = _stats(stats_file)
        client = _client(config_file, "user")
        ck = client.config.directory / "liked-import.partial"
        if restart:
            shutil.rmtree(ck, ignore_errors=True)
        imp = Importer(client, config=ImportConfig(market=market, artist_genres=False,
                                                   audio_features=audio_features and preds_given is None),
                       checkpoint=ck, progress=_progress(progress))
        rows, report = imp.run([], liked=True, stats=stats)
        click.echo(f"liked songs: {report.tracks} tracks"
                   + (f" ({', '.join(f'{k} {v}' for k, v in sorted(report.skipped.items()))} skipped)"
                      if report.skipped else ""))
        for note in report.notes:
            click.echo(f"note: {note}")
        liked_ids = set(rows["track_id"].astype(str)) if len(rows) else set()
        if preds_given is not None:
            preds = preds_given[preds_given["track_id"].isin(liked_ids)].drop_duplicates("track_id")
            missing = len(liked_ids - set(preds["track_id"]))
            if missing:
                click.echo(f"{missing} liked song(s) have no prediction in {predictions_file}; left unplaced")
        else:
            preds, missing = (predictions_from_model(model_dir, rows) if len(rows)
                              else (pd.DataFrame({"track_id": [], "predicted_genre": []}), 0))
            if missing:
                click.echo(f"{missing} liked song(s) have no audio statistics and cannot be predicted; "
                           "supply them with --stats FILE (e.g. FEATURES/audiostats.parquet)")
        if save_predictions:
            write_table(preds, save_predictions)
        chosen = parse_genres(genres, preds["predicted_genre"].astype(str).tolist())
        if not chosen:
            click.echo("no genre to make playlists for (no predictions)")
            return
        state = PlaylistState(client.config.playlist_state_path)
        plan = plan_playlists(client, preds, chosen, state=state, prefix=prefix)
        for line in plan.lines():
            click.echo(line)
        if not apply_:
            click.echo("dry run: nothing changed on Spotify (rerun with --apply to execute)")
            return
        if plan.changes == 0:
            click.echo("applied: nothing to change")
            return
        done = apply_plan(client, plan, state=state)
        click.echo(f"applied: {done['created']} playlist(s) created, {done['added']} track(s) added, "
                   f"{done['removed']} removed")
