"""Walk the ``recsys`` click tree: tests that check every command (help, fuzzing) share this."""
from __future__ import annotations

from typing import Iterator

import click


def commands(group: click.Group,
             path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """(path, command) for every leaf command below ``group``, sorted by name."""
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from commands(cmd, path + (name,))
        else:
            yield path + (name,), cmd
