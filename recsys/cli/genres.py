"""``recsys genres ...``: map genre strings to parents, train and apply the tabular genre model."""
from __future__ import annotations

from pathlib import Path

import click


@click.group()
def genres() -> None:
    """Genre taxonomy and the tabular genre classifier."""


@genres.command("map")
@click.option("--catalog", "catalog_path", required=True, type=click.Path(path_type=Path),
              help="CSV/TSV/Parquet with track_id, the 12 statistics and genre columns.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output table (extension picks the format); one row per track, labels merged.")
@click.option("--genre-map", type=click.Path(path_type=Path), default=None,
              help="Your edited genre,parent CSV (default: the bundled one).")
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="Also write the mapping report (genre, parent, source, count) here.")
def map_cmd(catalog_path: Path, out: Path, genre_map: Path | None, report: Path | None) -> None:
    """Map genre/subgenre strings to the 13 parent genres and merge duplicate tracks."""
    from ..catalog import merge_tracks, read_rows
    from ..genres.taxonomy import Taxonomy
    from ..io import write_table

    taxonomy = Taxonomy.load(genre_map)
    rows = read_rows(catalog_path, taxonomy=taxonomy)
    strings = [*rows.get("playlist_genre", rows.get("genre", [])), *rows.get("playlist_subgenre", [])]
    rep = taxonomy.report(strings)
    merged = merge_tracks(rows)
    write_table(merged, out)
    if report is not None:
        write_table(rep, report)
    click.echo(f"{len(rows)} rows -> {len(merged)} tracks written to {out}")
    if "parent_genre" in merged.columns:
        counts = merged["parent_genre"].value_counts(dropna=False)
        for parent, n in counts.items():
            label = parent if isinstance(parent, str) else "(unmapped)"
            click.echo(f"  {label:<14} {n}")
    for source, n in rep.groupby("source")["count"].sum().items():
        click.echo(f"  strings mapped by {source}: {n} occurrences")
    unmapped = rep[rep["source"] == "unmapped"]
    if len(unmapped):
        click.echo(f"unmapped strings ({len(unmapped)}): " + ", ".join(unmapped["genre"].head(20)))


def register(main: click.Group) -> None:
    main.add_command(genres)
