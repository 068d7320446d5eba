"""The ``recsys`` command line: thin click groups that parse, call the library, print.

Each area registers its commands from its own module (``register(main)``), so heavy imports
(torch, librosa, faiss) happen only when a command that needs them runs.
"""
from __future__ import annotations

import logging
import sys

from .. import threads

threads.configure()  # before click/pandas/numpy import anything numeric

import click  # noqa: E402

from ..errors import RecsysError  # noqa: E402


class _Main(click.Group):
    """Turns :class:`RecsysError` into one line on stderr and a non-zero exit, no traceback."""

    def invoke(self, ctx: click.Context):  # noqa: D401
        try:
            return super().invoke(ctx)
        except RecsysError as exc:
            from ..progress import close_bars

            close_bars()  # the error line never shares a progress bar's line
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            from ..progress import close_bars

            close_bars()
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="recsys")
def main(verbose: int) -> None:
    """recsys: genre labels, track embeddings, clusters and what to play next."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from ..progress import on_terminal, show_lines

    show_lines("recsys.io", prefix="note: ", level=level)  # what --force moved aside, what a rebuild kept
    if on_terminal():
        from tqdm.contrib.logging import logging_redirect_tqdm

        # log lines go through tqdm.write for the whole command: they never share a progress bar's line
        click.get_current_context().with_resource(logging_redirect_tqdm())
    else:  # no bars off a terminal: progress comes as plain lines ("build-index: embedding (4/8)")
        show_lines()


def _register_all() -> None:
    from . import audio, engine, genres, playlist, search, serve, spotify, stems

    for module in (genres, engine, audio, stems, spotify, serve, playlist, search):
        module.register(main)


_register_all()

#: One or two example lines per command, shown at the end of its --help (paths as in the README).
EXAMPLES: dict[str, list[str]] = {
    "genres map": ["recsys genres map --catalog data/spotify_demo.csv.gz --out out/catalog.parquet "
                   "--report out/genre_report.csv"],
    "genres train": ["recsys genres train --catalog data/spotify_demo.csv.gz --out out/genre_model --folds 3",
                     "recsys genres train --catalog my_tracks.parquet --out out/genre_dnn --model dnn"],
    "genres predict": ["recsys genres predict --model out/genre_model --catalog new_tracks.csv "
                       "--out out/preds.csv"],
    "build-index": ["recsys build-index --catalog data/spotify_demo.csv.gz --simulate-users 500 "
                    "--out out/idx",
                    "recsys build-index --catalog cat.csv --features out/features --histories plays.parquet "
                    "--out out/idx"],
    "recommend": ["recsys recommend --index out/idx --recent 6b2RcmUt1g9N9mQ3CbjX2Y "
                  "--recent 09IStsImFySgyp0pIQdqAc",
                  "recsys recommend --index out/idx --user u42 -k 20 --json"],
    "playlist": ["recsys playlist --index out/idx --seed 6b2RcmUt1g9N9mQ3CbjX2Y "
                 "--seed 09IStsImFySgyp0pIQdqAc --length 30 --arc rise",
                 "recsys playlist --index out/idx --seed 6b2RcmUt1g9N9mQ3CbjX2Y --out set.m3u "
                 "--audio-dir data/audio"],
    "similar": ["recsys similar --index out/idx --track 6b2RcmUt1g9N9mQ3CbjX2Y -k 5"],
    "rules mine": ["recsys rules mine --histories plays.parquet --out out/rules.parquet "
                   "--min-confidence 0.1"],
    "simulate-users": ["recsys simulate-users --catalog data/spotify_demo.csv.gz --users 500 "
                       "--out out/users.parquet"],
    "evaluate": ["recsys evaluate --index out/idx --histories out/idx/histories.parquet",
                 "recsys evaluate --index out/idx --histories plays.parquet --ablate"],
    "cnn train": ["recsys cnn train --audio-dir my_music/ --labels labels.csv --out out/cnn --folds 5"],
    "cnn predict": ["recsys cnn predict --model out/cnn --audio-dir new_music/ --out out/cnn_preds.csv"],
    "features extract": ["recsys features extract --audio-dir data/audio --out out/features --jobs 2",
                         "recsys features extract --audio-dir music/ --out out/features "
                         "--blocks spectral,cnn --set cnn.model=out/cnn"],
    "stems separate": ["recsys stems separate song.ogg --out out/stems --backend classical"],
    "lyrics transcribe": ["recsys lyrics transcribe song.ogg --backend faster-whisper "
                          "--model /path/to/whisper-ct2"],
    "lyrics topics": ["recsys lyrics topics --transcripts out/features/lyrics.parquet --topics 8 "
                      "--save out/topics"],
    "spotify login": ["recsys spotify login"],
    "spotify import": ["recsys spotify import --playlist https://open.spotify.com/playlist/ID "
                       "--out out/sp.parquet",
                       "recsys spotify import --playlist ID1 --playlist ID2 --liked --out out/sp.parquet "
                       "--histories-out out/plays.parquet"],
    "spotify match": ["recsys spotify match --catalog out/sp.parquet --audio-dir ~/Music "
                      "--out out/matches.csv"],
    "spotify liked": ["recsys spotify liked --out out/liked.parquet"],
    "spotify save-playlist": ["recsys playlist --index out/idx --seed 6b2RcmUt1g9N9mQ3CbjX2Y --out set.json",
                              "recsys spotify save-playlist --from set.json --name 'Friday set' --apply"],
    "spotify sort-liked": ["recsys spotify sort-liked --model out/genre_model --genres pop,rock",
                           "recsys spotify sort-liked --model out/genre_model --genres pop,rock --apply"],
    "serve": ["recsys serve --index out/demo/index   # then open http://127.0.0.1:8000/"],
    "report": ["recsys report 6b2RcmUt1g9N9mQ3CbjX2Y --index out/demo/index --out report.png"],
    "search": ["recsys search 'beyonce halo' --index out/demo/index",
               "recsys search daft --index out/idx -k 20 --json"],
}


def _add_examples(group: click.Group, prefix: str = "") -> None:
    """Append each command's example lines to its --help (``\\b`` keeps click from re-wrapping them)."""
    for name, cmd in group.commands.items():
        key = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            _add_examples(cmd, key + " ")
        elif key in EXAMPLES:
            cmd.epilog = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[key])


_add_examples(main)
