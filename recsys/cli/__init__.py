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
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="recsys")
def main(verbose: int) -> None:
    """recsys: genre labels, track embeddings, clusters and what to play next."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _register_all() -> None:
    from . import audio, engine, genres, serve, spotify, stems

    for module in (genres, engine, audio, stems, spotify, serve):
        module.register(main)


_register_all()
