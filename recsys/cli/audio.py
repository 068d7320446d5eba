"""CLI for audio: ``recsys cnn train|predict`` and ``recsys features extract``."""
from __future__ import annotations

from pathlib import Path

import click


def _print_cv(report: dict) -> None:
    cv = report.get("cv")
    if not cv:
        click.echo("cross-validation skipped (--folds < 2)")
        return
    click.echo(f"{cv['n_splits']}-fold CV grouped by song: {cv['n_songs']} songs, {cv['n_test_chunks']} test chunks; "
               f"majority-class song accuracy {cv['majority_song_accuracy']:.3f}")
    rows = [("CNN", "chunk", cv["cnn"]["chunk"]), ("CNN", "song (vote)", cv["cnn"]["song_vote"]),
            ("CNN", "song (mean prob)", cv["cnn"]["song_mean"]),
            ("baseline LR(MFCC+chroma)", "chunk", cv["baseline_logreg_mfcc_chroma"]["chunk"]),
            ("baseline LR(MFCC+chroma)", "song (mean prob)", cv["baseline_logreg_mfcc_chroma"]["song_mean"])]
    click.echo(f"  {'model':26s} {'level':17s} {'accuracy':>8s} {'macro-F1':>8s} {'n':>6s}")
    for model, level, m in rows:
        click.echo(f"  {model:26s} {level:17s} {m['accuracy']:8.3f} {m['macro_f1']:8.3f} {m['n']:6d}")


def register(main: click.Group) -> None:
    """Add the ``cnn`` and ``features`` groups to the top-level ``recsys`` group."""

    @main.group()
    def cnn() -> None:
        """Chunk CNN genre classifier on audio (song-grouped folds, per-chunk softmax, song vote)."""

    @cnn.command("train")
    @click.option("--audio-dir", required=True, type=click.Path(path_type=Path), help="Folder of audio (one sub-folder per genre unless --labels).")
    @click.option("--labels", type=click.Path(path_type=Path), default=None, help="CSV with columns file,genre (file relative to --audio-dir).")
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="Model directory to write.")
    @click.option("--folds", default=5, show_default=True, help="Stratified folds over songs (0/1 = no CV).")
    @click.option("--chunk-seconds", default=3.0, show_default=True, type=float)
    @click.option("--excerpt-seconds", default=30.0, show_default=True, type=float, help="Middle excerpt per song (0 = whole file).")
    @click.option("--epochs", default=30, show_default=True)
    @click.option("--batch-size", default=32, show_default=True)
    @click.option("--n-mels", default=64, show_default=True)
    @click.option("--patience", default=6, show_default=True, help="Early stopping on held-out training songs.")
    @click.option("--no-augment", is_flag=True, help="Disable gain/shift/noise/SpecAugment augmentation.")
    @click.option("--seed", default=0, show_default=True)
    @click.option("--jobs", default=1, show_default=True, help="Parallel decoding processes.")
    @click.option("--cache", type=click.Path(path_type=Path), default=None,
                  help="Cache folder for decoded chunk log-mels (reused across runs; keyed by content + settings).")
    def cnn_train(audio_dir, labels, out, folds, chunk_seconds, excerpt_seconds, epochs, batch_size, n_mels,
                  patience, no_augment, seed, jobs, cache) -> None:
        """Train on labelled audio; report CV metrics per chunk and per song beside a classical baseline."""
        from pipelines.train_cnn import run

        from ..audio.cnn import CNNConfig

        cfg = CNNConfig(chunk_seconds=chunk_seconds, train_hop_seconds=chunk_seconds / 2,
                        excerpt_seconds=excerpt_seconds or None, epochs=epochs, batch_size=batch_size,
                        n_mels=n_mels, patience=patience, folds=folds, augment=not no_augment, seed=seed)
        report = run(audio_dir, out, labels=labels, config=cfg, jobs=jobs, cache_dir=cache,
                     cross_validation=folds >= 2)
        for s in report["skipped"]:
            click.echo(f"skipped {s['file']}: {s['reason']}", err=True)
        _print_cv(report)
        click.echo(f"final model: {report['final']['train_songs']} training songs, "
                   f"{report['final']['epochs']} epochs -> {out} (metrics in {out / 'metrics.json'})")

    @cnn.command("predict")
    @click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path))
    @click.option("--audio-dir", required=True, type=click.Path(path_type=Path))
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="CSV: file, predicted_genre, p_<genre>...")
    def cnn_predict(model_dir, audio_dir, out) -> None:
        """Predict a genre per file: mean chunk softmax + mode vote over chunks."""
        from ..audio.cnn import predict_files
        from ..io import write_table

        preds, failures = predict_files(model_dir, audio_dir)
        write_table(preds, out)
        click.echo(f"{len(preds) - len(failures)}/{len(preds)} file(s) predicted -> {out}")
        for f, reason in failures:
            click.echo(f"  failed {f}: {reason}", err=True)

    @main.group()
    def features() -> None:
        """Audio feature blocks (spectral, audiostats, cnn, stems, lyrics) for a folder of audio."""

    @features.command("extract")
    @click.option("--audio-dir", required=True, type=click.Path(path_type=Path))
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="Feature directory (Parquet per block + cache).")
    @click.option("--blocks", default="spectral,audiostats", show_default=True,
                  help="Comma list of spectral, audiostats, cnn, stems, lyrics (or module:Class).")
    @click.option("--jobs", default=1, show_default=True, help="Parallel worker processes.")
    @click.option("--mapping", type=click.Path(path_type=Path), default=None, help="CSV file,track_id (else the file stem).")
    @click.option("--set", "sets", multiple=True, metavar="BLOCK.KEY=VALUE", help="Block option, e.g. cnn.model=models/cnn.")
    @click.option("--excerpt-seconds", default=30.0, show_default=True, type=float, help="Middle excerpt (0 = whole file).")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    @click.option("--scheduler", default=None, metavar="ADDRESS",
                  help="Run files on Dask: tcp://host:8786 (running scheduler) or 'local' (LocalCluster, --jobs workers).")
    def features_extract(audio_dir, out, blocks, jobs, mapping, sets, excerpt_seconds, quiet, scheduler) -> None:
        """Decode each file once, run each block, cache per (content, block, settings); resumable."""
        from pipelines.extract_features import ExtractConfig, parse_sets, run

        cfg = ExtractConfig(blocks=tuple(b.strip() for b in blocks.split(",") if b.strip()),
                            options=parse_sets(sets), excerpt_seconds=excerpt_seconds or None, jobs=max(1, jobs),
                            scheduler=scheduler or None)
        summary = run(audio_dir, out, cfg, mapping=mapping, progress=not quiet)
        for line in summary.lines():
            click.echo(line)
