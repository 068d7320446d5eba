"""Every command's --help shows an example, and every option says what it does."""
from __future__ import annotations

import click
from click.testing import CliRunner

from recsys.cli import main
from recsys.testing.cli import commands


def test_every_command_has_an_example_and_every_option_help():
    missing_example, missing_help = [], []
    for path, cmd in commands(main):
        out = CliRunner().invoke(main, [*path, "--help"]).output
        if "Examples:" not in out or f"recsys {' '.join(path)}" not in out:
            missing_example.append(" ".join(path))
        missing_help += [f"{' '.join(path)} {p.opts[0]}" for p in cmd.params
                         if isinstance(p, click.Option) and not p.help and p.opts[0] != "--help"]
    assert not missing_example, f"no example in --help: {missing_example}"
    assert not missing_help, f"options without help text: {missing_help}"
