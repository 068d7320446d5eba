"""``recsys search QUERY --index DIR``: the index's full-text track search (recsys/search.py)."""
from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add ``search`` to the top-level ``recsys`` group."""

    @main.command("search")
    @click.argument("query")
    @click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
                  help="Index directory written by `recsys build-index`.")
    @click.option("-k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Results to show.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    def search(query, index_dir, k, as_json):
        """Tracks whose title, artist or album match QUERY: exact titles first, then bm25 + popularity."""
        import json

        from ..engine import Engine
        from ..errors import InputError

        if not query.strip():
            raise InputError("search: QUERY must contain a non-space character")
        eng = Engine.load(index_dir)
        hits = [eng.track(t) for t in eng.search(query, k)]
        rows = [{"track_id": h.get("track_id"), "track_name": h.get("track_name"),
                 "track_artist": h.get("track_artist"), "track_album_name": h.get("track_album_name")}
                for h in hits]
        if as_json:
            click.echo(json.dumps({"query": query, "results": rows}, ensure_ascii=False, default=str))
            return
        if not rows:
            click.echo(f"no track matches {query!r}")
            return
        for i, r in enumerate(rows, 1):
            album = f"  [{r['track_album_name']}]" if r["track_album_name"] else ""
            click.echo(f"{i:>3}. {r['track_id']}  {r['track_name'] or ''} - {r['track_artist'] or ''}{album}")
