"""CLI for audio: ``recsys cnn train|predict`` and ``recsys features extract``."""
from __future__ import annotations

from pathlib import Path

import click

from .. import blocks as block_registry
from .common import FORCE_DIR, FORCE_FILE


def _print_cv(report: dict) -> None:
    cv = report.get("cv")
    if not cv:
        click.echo("cross-validation skipped (--folds < 2)")
        return
    click.echo(f"{cv['n_splits']}-fold CV grouped by song: {cv['n_songs']} songs, "
               f"{cv['n_test_chunks']} test chunks; "
               f"majority-class song accuracy {cv['majority_song_accuracy']:.3f}")
    rows = [("CNN", "chunk", cv["cnn"]["chunk"]), ("CNN", "song (vote)", cv["cnn"]["song_vote"]),
            ("CNN", "song (mean prob)", cv["cnn"]["song_mean"]),
            ("baseline LR(MFCC+chroma)", "chunk", cv["baseline_logreg_mfcc_chroma"]["chunk"]),
            ("baseline LR(MFCC+chroma)", "song (mean prob)", cv["baseline_logreg_mfcc_chroma"]["song_mean"])]
    click.echo(f"  {'model':26s} {'level':17s} {'accuracy':>8s} {'macro-F1':>8s} {'n':>6s}")
    for model, level, m in rows:
        click.echo(f"  {model:26s} {level:17s} {m['accuracy']:8.3f} {m['macro_f1']:8.3f} {m['n']:6d}")


def _cnn(name: str):
    """A CNNConfig default (CLI defaults are read from the dataclass, never restated)."""
    from ..audio.cnn import CNNConfig
    from ..config import option_default

    return option_default(CNNConfig, name)


def register(main: click.Group) -> None:
    """Add the ``cnn`` and ``features`` groups to the top-level ``recsys`` group."""

    @main.group()
    def cnn() -> None:
        """Chunk CNN genre classifier on audio (song-grouped folds, per-chunk softmax, song vote)."""

    @cnn.command("train")
    @click.option("--audio-dir", required=True, type=click.Path(path_type=Path),
                  help="Folder of audio (one sub-folder per genre unless --labels).")
    @click.option("--labels", type=click.Path(path_type=Path), default=None,
                  help="CSV with columns file,genre (file relative to --audio-dir).")
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="Model directory to write.")
    @click.option("--folds", default=_cnn("folds"), show_default=True, type=click.IntRange(0, 50),
                  help="Stratified folds over songs (0/1 = no CV).")
    @click.option("--chunk-seconds", default=_cnn("chunk_seconds"), show_default=True,
                  type=click.FloatRange(min=0.1), help="Seconds per chunk the CNN classifies.")
    @click.option("--excerpt-seconds", default=_cnn("excerpt_seconds"), show_default=True,
                  type=click.FloatRange(min=0), help="Middle excerpt per song (0 = whole file).")
    @click.option("--epochs", default=_cnn("epochs"), show_default=True, type=click.IntRange(1, 10_000),
                  help="Maximum training epochs.")
    @click.option("--batch-size", default=_cnn("batch_size"), show_default=True, type=click.IntRange(1, 4096),
                  help="Chunks per training batch.")
    @click.option("--n-mels", default=_cnn("n_mels"), show_default=True, type=click.IntRange(8, 512),
                  help="Mel bands of the input spectrogram.")
    @click.option("--patience", default=_cnn("patience"), show_default=True, type=click.IntRange(1, 1000),
                  help="Early stopping on held-out training songs.")
    @click.option("--no-augment", is_flag=True, help="Disable gain/shift/noise/SpecAugment augmentation.")
    @click.option("--seed", default=_cnn("seed"), show_default=True, type=click.IntRange(0, 2**32 - 1),
                  help="Seed for folds, init and augmentation.")
    @click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 256),
                  help="Parallel decoding processes.")
    @click.option("--cache", type=click.Path(path_type=Path), default=None,
                  help="Cache folder for decoded chunk log-mels "
                       "(reused across runs; keyed by content + settings).")
    @click.option("--force", is_flag=True, help=FORCE_DIR)
    def cnn_train(audio_dir, labels, out, folds, chunk_seconds, excerpt_seconds, epochs, batch_size, n_mels,
                  patience, no_augment, seed, jobs, cache, force) -> None:
        """Train on labelled audio; report CV metrics per chunk and per song beside a classical baseline."""
        from pipelines.train_cnn import run

        from ..audio.cnn import CNNConfig

        cfg = CNNConfig(chunk_seconds=chunk_seconds, train_hop_seconds=chunk_seconds / 2,
                        excerpt_seconds=excerpt_seconds or None, epochs=epochs, batch_size=batch_size,
                        n_mels=n_mels, patience=patience, folds=folds, augment=not no_augment, seed=seed)
        from ..io import output_lock

        with output_lock(out):  # a second run into the same --out stops here, before any work
            report = run(audio_dir, out, labels=labels, config=cfg, jobs=jobs, cache_dir=cache,
                         cross_validation=folds >= 2, force=force)
        for s in report["skipped"]:
            click.echo(f"skipped {s['file']}: {s['reason']}", err=True)
        _print_cv(report)
        click.echo(f"final model: {report['final']['train_songs']} training songs, "
                   f"{report['final']['epochs']} epochs -> {out} (metrics in {out / 'metrics.json'})")

    @cnn.command("predict")
    @click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
                  help="Model directory written by `recsys cnn train`.")
    @click.option("--audio-dir", required=True, type=click.Path(path_type=Path),
                  help="Folder of audio to label.")
    @click.option("--out", required=True, type=click.Path(path_type=Path),
                  help="CSV: file, predicted_genre, p_<genre>...")
    @click.option("--force", is_flag=True, help=FORCE_FILE)
    def cnn_predict(model_dir, audio_dir, out, force) -> None:
        """Predict a genre per file: mean chunk softmax + mode vote over chunks."""
        from ..audio.cnn import predict_files
        from ..io import check_output_file, write_table

        check_output_file(out, inputs=[model_dir, audio_dir], force=force)
        preds, failures = predict_files(model_dir, audio_dir)
        write_table(preds, out, output=True, force=force)
        click.echo(f"{len(preds) - len(failures)}/{len(preds)} file(s) predicted -> {out}")
        for f, reason in failures:
            click.echo(f"  failed {f}: {reason}", err=True)

    @main.group()
    def features() -> None:
        """Audio feature blocks for a folder of audio (see `features extract --help` for the blocks)."""

    @features.command("extract")
    @click.option("--audio-dir", required=True, type=click.Path(path_type=Path),
                  help="Folder of audio (searched recursively; wav, flac, ogg, mp3, ...).")
    @click.option("--out", required=True, type=click.Path(path_type=Path),
                  help="Feature directory (Parquet per block + cache).")
    @click.option("--blocks", default=",".join(block_registry.default_names()), show_default=True,
                  help=f"Comma list of blocks (or module:Class). {block_registry.describe()}.")
    @click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 256),
                  help="Parallel worker processes.")
    @click.option("--mapping", type=click.Path(path_type=Path), default=None,
                  help="CSV file,track_id (else the file stem), e.g. matches.csv of `recsys spotify match`.")
    @click.option("--only-mapped", is_flag=True,
                  help="Extract only the files --mapping names (skip the rest of the folder).")
    @click.option("--set", "sets", multiple=True, metavar="BLOCK.KEY=VALUE",
                  help="Block option, e.g. cnn.model=models/cnn.")
    @click.option("--excerpt-seconds", default=30.0, show_default=True, type=click.FloatRange(min=0),
                  help="Middle excerpt (0 = whole file).")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    @click.option("--scheduler", default=None, metavar="ADDRESS",
                  help="Run files on Dask: tcp://host:8786 (running scheduler) "
                       "or 'local' (LocalCluster, --jobs workers).")
    @click.option("--force", is_flag=True,
                  help="--out holds files recsys did not write: move that folder into .recsys-trash/ beside "
                       "it (printed) and start a new features dir. An earlier features dir is resumed, "
                       "never merged with foreign files.")
    def features_extract(audio_dir, out, blocks, jobs, mapping, only_mapped, sets, excerpt_seconds, quiet,
                         scheduler, force) -> None:
        """Decode each file once, run each block, cache per (content, block, settings); resumable."""
        from pipelines.extract_features import ExtractConfig, parse_sets, run

        cfg = ExtractConfig(blocks=tuple(b.strip() for b in blocks.split(",") if b.strip()),
                            options=parse_sets(sets), excerpt_seconds=excerpt_seconds or None,
                            jobs=max(1, jobs), scheduler=scheduler or None)
        from ..io import output_lock

        with output_lock(out):
            summary = run(audio_dir, out, cfg, mapping=mapping, progress=not quiet, force=force,
                          only_mapped=only_mapped)
        for line in summary.lines():
            click.echo(line)

