"""``recsys genres ...``: map genre strings to parents, train and apply the tabular genre model."""
from __future__ import annotations

from pathlib import Path

import click

from .common import FORCE_DIR, FORCE_FILE


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
@click.option("--on-conflict", type=click.Choice(["error", "first"]), default="error", show_default=True,
              help="Rows of one track_id that name different songs: stop with an error, or keep the first.")
@click.option("--force", is_flag=True, help=FORCE_FILE)
def map_cmd(catalog_path: Path, out: Path, genre_map: Path | None, report: Path | None,
            on_conflict: str, force: bool) -> None:
    """Map genre/subgenre strings to the 13 parent genres and merge duplicate tracks."""
    from ..catalog import merge_tracks, read_rows
    from ..genres.taxonomy import Taxonomy
    from ..io import check_output_file, write_table

    check_output_file(out, inputs=[catalog_path, genre_map], force=force)
    if report is not None:
        check_output_file(report, inputs=[catalog_path, genre_map, out], force=force)
    taxonomy = Taxonomy.load(genre_map)
    rows = read_rows(catalog_path, taxonomy=taxonomy)
    strings = [*rows.get("playlist_genre", rows.get("genre", [])), *rows.get("playlist_subgenre", [])]
    rep = taxonomy.report(strings)
    merged = merge_tracks(rows, on_conflict=on_conflict)
    write_table(merged, out, output=True, force=force)
    if report is not None:
        write_table(rep, report, output=True, force=force)
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


@genres.command("train")
@click.option("--catalog", "catalog_path", required=True, type=click.Path(path_type=Path),
              help="CSV/TSV/Parquet with track_id, the 12 statistics and genre labels.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Model directory to write (replaced atomically): model, report.json, confusion.*")
@click.option("--model", "model_kind", type=click.Choice(["lightgbm", "dnn"]), default="lightgbm",
              show_default=True, help="Estimator behind the genre classifier.")
@click.option("--folds", type=click.IntRange(2, 50), default=5, show_default=True,
              help="Artist-grouped cross-validation folds (>= 2).")
@click.option("--genre-map", type=click.Path(path_type=Path), default=None,
              help="Your edited genre,parent CSV (default: the bundled one).")
@click.option("--no-smote", is_flag=True, help="Do not oversample minority genres in training folds.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed for folds, SMOTE and models.")
@click.option("--n-estimators", type=click.IntRange(1, 100_000), default=None,
              help="LightGBM trees (default from the estimator).")
@click.option("--epochs", type=click.IntRange(1, 100_000), default=None,
              help="DNN maximum epochs (early stopping may end sooner).")
@click.option("--force", is_flag=True, help=FORCE_DIR)
@click.option("--on-conflict", type=click.Choice(["error", "first"]), default="error", show_default=True,
              help="Rows of one track_id that name different songs: stop with an error, or keep the first.")
def train_cmd(catalog_path: Path, out: Path, model_kind: str, folds: int, genre_map: Path | None,
              no_smote: bool, seed: int, n_estimators: int | None, epochs: int | None, force: bool,
              on_conflict: str) -> None:
    """Artist-grouped CV of the genre model beside baselines, then fit on all tracks and save."""
    from pipelines.train_genres import run

    from ..io import output_lock

    params = {}
    if n_estimators is not None:
        params["n_estimators"] = n_estimators
    if epochs is not None:
        params["epochs"] = epochs
    with output_lock(out):  # a second run into the same --out stops here, before any work
        run(catalog_path, out, model=model_kind, folds=folds, genre_map=genre_map, smote=not no_smote,
            seed=seed, params=params, echo=click.echo, force=force, on_conflict=on_conflict)


@genres.command("predict")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="Directory written by `recsys genres train`.")
@click.option("--catalog", "catalog_path", required=True, type=click.Path(path_type=Path),
              help="Table with track_id and the 12 statistics (labels optional).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Predictions table (CSV/TSV/Parquet by extension), one row per input row.")
@click.option("--genre-map", type=click.Path(path_type=Path), default=None,
              help="Genre,parent CSV used to derive true_genre from labels in the input.")
@click.option("--no-artist-pooling", is_flag=True,
              help="Predict every row alone instead of pooling it with its artist's other rows.")
@click.option("--force", is_flag=True, help=FORCE_FILE)
def predict_cmd(model_dir: Path, catalog_path: Path, out: Path, genre_map: Path | None,
                no_artist_pooling: bool, force: bool) -> None:
    """Predict a parent genre and per-genre probabilities for every input row.

    By default each row's probabilities are pooled with those of the same artist's other rows in
    the input (the model's ``artist_pooling`` weight): an artist's tracks vote together.
    """
    from ..catalog import read_rows
    from ..genres.tabular import predict_table
    from ..genres.taxonomy import Taxonomy
    from ..io import check_output_file, write_table

    check_output_file(out, inputs=[catalog_path, genre_map, model_dir], force=force)
    preds = predict_table(model_dir, read_rows(catalog_path, taxonomy=Taxonomy.load(genre_map)),
                          pool_artists=not no_artist_pooling)
    write_table(preds, out, output=True, force=force)
    click.echo(f"{len(preds)} rows -> {out}")
    counts = preds["predicted_genre"].value_counts()
    click.echo("predicted: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
    if "true_genre" in preds.columns:
        known = preds["true_genre"].notna()
        if known.any():
            acc = float((preds.loc[known, "true_genre"] == preds.loc[known, "predicted_genre"]).mean())
            click.echo(f"accuracy against true_genre on {int(known.sum())} labelled rows: {acc:.3f} "
                       "(an honest estimate only if these artists were not in training)")


def register(main: click.Group) -> None:
    """Attach the ``genres`` command group to the top-level CLI."""
    main.add_command(genres)
