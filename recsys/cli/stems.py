"""``recsys stems ...`` (vocal/accompaniment separation) and ``recsys lyrics ...`` (transcripts, topics)."""
from __future__ import annotations

from pathlib import Path

import click


def _write_wav(path: Path, y, sr: int, *, force: bool = False) -> None:
    import soundfile as sf

    from ..io import atomic_path

    with atomic_path(path, output=True, force=force) as tmp:
        sf.write(str(tmp), y, sr, format="WAV", subtype="PCM_16")


def _excerpt(file: Path, *, sr: int, seconds: float | None):
    from ..audio.load import load_excerpt

    return load_excerpt(file, sr=sr, seconds=seconds)


def register(main: click.Group) -> None:
    """Add the ``stems`` and ``lyrics`` groups to the top-level ``recsys`` group."""

    @main.group()
    def stems() -> None:
        """Separate vocals from accompaniment (Demucs, or the offline classical separator)."""

    @stems.command("separate")
    @click.argument("file", type=click.Path(path_type=Path))
    @click.option("--out", "out", required=True, type=click.Path(path_type=Path, file_okay=False),
                  help="Folder for vocals.wav and accompaniment.wav.")
    @click.option("--backend", type=click.Choice(["auto", "demucs", "classical"]),
                  default="auto", show_default=True,
                  help="auto = Demucs when its weights are on disk, else classical.")
    @click.option("--model", default="htdemucs", show_default=True,
                  help="Demucs model name, or a local .th/.safetensors file or weights folder.")
    @click.option("--name", default=None, help="Bag name inside a weights folder (NAME.yaml).")
    @click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
    @click.option("--overlap", default=0.25, show_default=True, type=float,
                  help="Overlap between Demucs segments.")
    @click.option("--download", is_flag=True, help="Let demucs download missing pretrained weights.")
    @click.option("--seconds", default=30.0, show_default=True, type=float,
                  help="Excerpt length (middle of the file).")
    @click.option("--full", is_flag=True, help="Separate the whole file instead of an excerpt.")
    @click.option("--force", is_flag=True,
                  help="Replace vocals.wav / accompaniment.wav in --out even if recsys did not write them "
                       "(the old files are moved into .recsys-trash/ beside them).")
    def separate_cmd(file: Path, out: Path, backend: str, model: str, name: str | None, device: str,
                     overlap: float, download: bool, seconds: float, full: bool, force: bool) -> None:
        """Write FILE's vocals and accompaniment stems as wav files in --out (other files there are kept)."""
        from ..audio.separation import ClassicalSeparator, make_separator
        from ..io import check_output_file

        for stem in ("vocals.wav", "accompaniment.wav"):
            check_output_file(out / stem, inputs=[file], force=force)

        sep = make_separator(backend, model=model, name=name, device=device,
                             overlap=overlap, download=download)
        sr = 44100 if sep.backend == "demucs" else 22050
        y, sr = _excerpt(file, sr=sr, seconds=None if full else seconds)
        if len(y) == 0:
            from ..errors import InputError

            raise InputError(f"{file}: no audio samples decoded")
        if backend == "auto" and isinstance(sep, ClassicalSeparator):
            click.echo(f"note: demucs weights {model!r} not found locally; using the classical separator "
                       "(pass --backend demucs --download, or --model PATH, for Demucs)", err=True)
        stems_ = sep.separate(y, sr)
        out.mkdir(parents=True, exist_ok=True)
        _write_wav(out / "vocals.wav", stems_.vocals, sr, force=force)
        _write_wav(out / "accompaniment.wav", stems_.accompaniment, sr, force=force)
        click.echo(f"backend: {stems_.backend}  excerpt: {len(y) / sr:.1f} s at {sr} Hz", err=True)
        click.echo(str(out / "vocals.wav"))
        click.echo(str(out / "accompaniment.wav"))

    @main.group()
    def lyrics() -> None:
        """Transcribe sung vocals (Whisper) and model lyric topics (TF-IDF + NMF)."""

    @lyrics.command("transcribe")
    @click.argument("file", type=click.Path(path_type=Path))
    @click.option("--backend", type=click.Choice(["faster-whisper", "openai-whisper"]),
                  default="faster-whisper", show_default=True,
                  help="Whisper implementation (CTranslate2 or the reference PyTorch one).")
    @click.option("--model", default="tiny", show_default=True,
                  help="Whisper model name, or a local path (CTranslate2 folder / openai-whisper .pt).")
    @click.option("--no-separate", is_flag=True, help="Transcribe the mixture, not the vocal stem.")
    @click.option("--separator", type=click.Choice(["auto", "demucs", "classical"]),
                  default="auto", show_default=True,
                  help="Vocal separator run before transcription (auto: Demucs when its weights are there).")
    @click.option("--separator-model", default="htdemucs", show_default=True,
                  help="Demucs model name or local weights for --separator demucs.")
    @click.option("--language", default=None, help="Force a language code (default: detect).")
    @click.option("--languages", default=None,
                  help="Accepted languages, e.g. en,es: others are graded wrong_language (default: any).")
    @click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
    @click.option("--compute-type", default="int8", show_default=True, help="faster-whisper compute type.")
    @click.option("--beam-size", default=1, show_default=True, type=click.IntRange(1, 20),
                  help="Beam width of Whisper's decoder (1 = greedy).")
    @click.option("--download", is_flag=True, help="Allow downloading missing weights.")
    @click.option("--seconds", default=30.0, show_default=True, type=float,
                  help="Excerpt length (middle of the file).")
    @click.option("--full", is_flag=True, help="Transcribe the whole file.")
    @click.option("--min-vocal-seconds", default=3.0, show_default=True, type=float,
                  help="Less voice than this in the vocal stem = instrumental, not transcribed.")
    @click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                  help="Transcript cache (default ~/.cache/recsys/transcripts).")
    @click.option("--no-cache", is_flag=True, help="Neither read nor write the transcript cache.")
    def transcribe_cmd(file: Path, backend: str, model: str, no_separate: bool, separator: str,
                       separator_model: str, language: str | None, languages: str | None, device: str,
                       compute_type: str, beam_size: int,
                       download: bool, seconds: float, full: bool, min_vocal_seconds: float,
                       cache_dir: Path | None, no_cache: bool) -> None:
        """Print STATUS, CONFIDENCE and the transcript of FILE's vocals, tab-separated (details go to stderr).

        Only "ok" transcripts are trusted; the others (low_confidence, repetitive, instrumental,
        wrong_language, failed) are what the lyrics block treats as missing.
        """
        from ..blocks.lyrics import LyricsBlock, LyricsConfig

        # the lyrics block's own transcription (same settings, cache and quality gate as features extract)
        block = LyricsBlock(LyricsConfig(
            backend=backend, model=model, device=device, compute_type=compute_type, beam_size=beam_size,
            download=download, language=language, languages=languages, separate=not no_separate,
            separator=separator, separator_model=separator_model, min_vocal_seconds=min_vocal_seconds,
            cache_dir="off" if no_cache else (str(cache_dir) if cache_dir else None)))
        block.transcriber.load()  # fail on missing/corrupt weights before decoding anything
        sep = block.separator
        y, sr = _excerpt(file, sr=22050, seconds=None if full else seconds)
        t = block.transcribe(y, sr)
        lang = t.language or "?"
        if t.language_probability is not None:
            lang += f" (p={t.language_probability:.2f})"
        conf = "-" if t.confidence != t.confidence else f"{t.confidence:.2f}"  # NaN: nothing decoded
        click.echo(f"status: {t.status}{' - ' + t.reason if t.reason else ''}  confidence: {conf}  "
                   f"language: {lang} [{t.language_source or 'n/a'}]  "
                   f"separator: {sep.backend if sep else 'none'}  "
                   f"model: {backend} {t.model}{'  (cached)' if t.cached else ''}", err=True)
        click.echo(f"{t.status}\t{conf}\t{t.text}")

    @lyrics.command("topics")
    @click.option("--transcripts", type=click.Path(path_type=Path), default=None,
                  help="Table with a text column (e.g. the lyrics block Parquet from `features extract`).")
    @click.option("--catalog", type=click.Path(path_type=Path), default=None,
                  help="Catalogue table with track_id and a lyrics/text column.")
    @click.option("--lyrics", "lyrics_file", type=click.Path(path_type=Path), default=None,
                  help="User lyrics table track_id,text (replaces transcripts of the same track).")
    @click.option("--topics", "k", default=8, show_default=True, type=click.IntRange(1, 500),
                  help="Number of NMF topics.")
    @click.option("--words", default=10, show_default=True, type=click.IntRange(1, 100),
                  help="Top words printed per topic.")
    @click.option("--save", type=click.Path(path_type=Path, file_okay=False), default=None,
                  help="Save the fitted topic model (JSON + npy) to this folder.")
    def topics_cmd(transcripts: Path | None, catalog: Path | None, lyrics_file: Path | None, k: int,
                   words: int, save: Path | None) -> None:
        """Fit TF-IDF + NMF topics and print each topic's top words."""
        import pandas as pd

        from ..errors import InputError
        from ..io import read_table
        from ..lyrics import LyricTopics, read_user_lyrics, texts_from_table

        if not (transcripts or catalog or lyrics_file):
            raise InputError("give --transcripts, --catalog and/or --lyrics")
        frames = []
        for path in (transcripts, catalog):
            if path is not None:
                df = read_table(path)
                if "lyrics__status" in df.columns:  # a lyrics block table: only trusted transcripts
                    graded = df["lyrics__status"].fillna("").astype(str)
                    click.echo(f"{path}: {int((graded != 'ok').sum())} transcript(s) not ok, left out",
                               err=True)
                    df = df[graded == "ok"]
                frames.append(pd.DataFrame({"track_id": df["track_id"].astype(str) if "track_id" in df.columns
                                            else [f"{path.name}:{i}" for i in range(len(df))],
                                            "text": texts_from_table(df, where=str(path)).to_numpy()}))
        corpus = (pd.concat(frames, ignore_index=True) if frames
                  else pd.DataFrame(columns=["track_id", "text"]))
        if lyrics_file is not None:
            user = read_user_lyrics(lyrics_file)
            corpus = pd.concat([corpus[~corpus["track_id"].isin(set(user["track_id"]))], user],
                               ignore_index=True)
        texts = [t for t in corpus["text"] if str(t).strip()]
        model = LyricTopics(k).fit(texts)
        click.echo(f"{len(texts)} texts, {len(model.vocabulary_)} words, {model.topics_found} topics",
                   err=True)
        for i, ws in enumerate(model.top_words(words)):
            click.echo(f"topic {i}: {' '.join(ws)}")
        if save is not None:
            model.save(save)
            click.echo(f"saved: {save}", err=True)
