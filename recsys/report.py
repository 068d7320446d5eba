"""Per-track report (PNG): statistics against the catalogue, genre probabilities, place on the map, and audio.

With an audio file for the track: the log-mel spectrogram and chroma of the excerpt (the shared
front-end of ``recsys.audio.frontend``), the chunk CNN's genre probabilities over time when a CNN
model is given, and the accompaniment (``stems``) block's features against the catalogue when the
features dir has them. Rendering uses matplotlib's object API (no pyplot state), Agg backend.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aiff", ".aif")


def audio_file_map(track_ids, *, features: str | Path | None = None,
                   audio_dir: str | Path | None = None) -> dict[str, Path]:
    """track_id -> audio file: the features tables' ``file`` column, else ``<audio_dir>/**/<track_id>.*``."""
    if not audio_dir:
        return {}
    known = set(map(str, track_ids))
    root = Path(audio_dir)
    out: dict[str, Path] = {}
    if features and Path(features).is_dir():
        for p in sorted(Path(features).glob("*.parquet")):
            try:
                tab = pd.read_parquet(p, columns=["file", "track_id"])
            except Exception:  # a table without a file column: nothing to map
                continue
            for tid, f in zip(tab["track_id"].astype(str), tab["file"].astype(str)):
                if tid in known and tid not in out and (root / f).is_file():
                    out[tid] = root / f
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in AUDIO_SUFFIXES and p.stem in known and p.stem not in out:
                out[p.stem] = p
    return out


def _stats_panel(fig, spec, tracks: pd.DataFrame, row: int) -> None:
    from .schema import STATS

    have = [c for c in STATS if c in tracks.columns]
    sub = spec.subgridspec(2, 6, hspace=0.9, wspace=0.35)
    if not have:
        ax = fig.add_subplot(sub[:, :])
        ax.axis("off")
        ax.text(0.5, 0.5, "this index keeps no statistics (built before they were saved)", ha="center")
        return
    values = tracks[have].apply(pd.to_numeric, errors="coerce")
    have = [c for c in have if values[c].notna().any()]
    empty = [c for c in STATS if c not in have]
    how = ("add them with build-index --stats FILE (e.g. `recsys spotify match` + "
           "`features extract --mapping`, docs/spotify.md)")
    if not have:
        ax = fig.add_subplot(sub[:, :])
        ax.axis("off")
        ax.text(0.5, 0.5, f"no track in this index has audio statistics: nothing to compare.\n{how}",
                ha="center", va="center")
        return
    if empty:  # say which statistics the index lacks instead of drawing empty axes for them
        n = len(have)
        ax = fig.add_subplot(sub[:, n:] if n < 6 else sub[1, n - 6:])
        ax.axis("off")
        ax.text(0.02, 0.5, f"no values in this index for {len(empty)} statistic(s):\n"
                + "\n".join(", ".join(empty[i:i + 4]) for i in range(0, len(empty), 4))
                + "\n" + how.replace(" (e.g.", "\n(e.g."), va="center", fontsize=8)
    for i, c in enumerate(have[:12]):
        ax = fig.add_subplot(sub[i // 6, i % 6])
        v = pd.to_numeric(tracks[c], errors="coerce").to_numpy(dtype=np.float64)
        ok = v[np.isfinite(v)]
        x = v[row]
        if len(ok):
            ax.hist(ok, bins=30, color="#b9c7d8")
        if np.isfinite(x):
            srt = np.sort(ok)
            pct = 100.0 * (np.searchsorted(srt, x, "left") + np.searchsorted(srt, x, "right")) / 2.0 / len(ok)
            ax.axvline(x, color="#d62728", lw=2)
            ax.set_title(f"{c}\n{x:.3g} (p{pct:.0f})", fontsize=8)
        else:
            ax.set_title(f"{c}\nmissing", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])


def genre_probabilities(engine, row: int) -> dict[str, float] | None:
    """The index's genre model's probabilities for one track; missing statistics take the catalogue median."""
    model = engine.genre_model
    if model is None:
        return None
    from .errors import RecsysError
    from .genres.tabular import tabular_features
    from .schema import STATS

    frame = engine.tracks.frame
    t = frame.iloc[[row]].copy()
    for c in STATS:
        if c in t.columns and t[c].isna().all():
            t[c] = float(pd.to_numeric(frame[c], errors="coerce").median())
    try:
        P = np.asarray(model.predict_proba(tabular_features(t))[0], dtype=float)
    except RecsysError:
        return None
    return {str(c): round(float(p), 4) for c, p in zip(model.classes_, P)}


def _genre_panel(ax, engine, row: int) -> None:
    genres = engine.tracks.column("parent_genre")
    genre = None if genres is None else genres.iloc[row]
    genre = genre if isinstance(genre, str) else None  # pd.NA for audio-only tracks
    probs = genre_probabilities(engine, row)
    P = None if probs is None else np.asarray(list(probs.values()))
    if P is None:
        ax.axis("off")
        ax.text(0.02, 0.5, f"parent genre: {genre if isinstance(genre, str) else 'unknown'}\n"
                "(no genre model in this index: no probabilities)", va="center", fontsize=9)
        return
    classes = list(probs)
    order = np.argsort(P)
    ax.barh([classes[i] for i in order], P[order], color=["#d62728" if classes[i] == genre else "#4c72b0"
                                                          for i in order])
    ax.set_xlim(0, 1)
    ax.set_title("genre probabilities (genre model)" + (f"; labelled {genre}" if genre else ""), fontsize=9)
    ax.tick_params(labelsize=7)


def _map_panel(ax, engine, row: int) -> None:
    proj = engine.projection
    if proj is None:
        ax.axis("off")
        ax.text(0.5, 0.5, "no map in this index", ha="center")
        return
    P = proj.positions
    ax.scatter(P[:, 0], P[:, 1], s=2, c="#c0c0c0", linewidths=0)
    ax.scatter([P[row, 0]], [P[row, 1]], s=60, c="#d62728", marker="*")
    ax.set_title(f"catalogue map ({proj.method}), cluster {int(engine.clusters[row])}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _stems_panel(ax, features: str | Path | None, track_id: str) -> None:
    table = None
    if features and (Path(features) / "stems.parquet").exists():
        from .blocks import feature_columns, read_feature_block

        t = read_feature_block(features, "stems")
        t = t[t["ok"]]
        cols = feature_columns(t)
        if cols and (t["track_id"] == track_id).any():
            table = (t, cols)
    if table is None:
        ax.axis("off")
        ax.text(0.02, 0.5, "accompaniment features: no stems block for this track "
                "(recsys features extract --blocks stems)", va="center", fontsize=9)
        return
    t, cols = table
    X = t[cols].to_numpy(dtype=np.float64)
    mu, sd = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    x = t.loc[t["track_id"] == track_id, cols].to_numpy(dtype=np.float64).mean(axis=0)
    z = np.where(sd > 1e-12, (x - mu) / np.where(sd > 1e-12, sd, 1), 0.0)
    top = np.argsort(-np.abs(np.nan_to_num(z)))[:16][::-1]
    ax.barh([cols[i].replace("stems__", "") for i in top], z[top], color="#55a868")
    ax.axvline(0, color="k", lw=0.5)
    ax.set_title(f"accompaniment (stems block): z-score against {len(t)} tracks, 16 largest", fontsize=9)
    ax.tick_params(labelsize=6)


def track_report(engine, track_id: str, *, audio_file: str | Path | None = None,
                 features: str | Path | None = None, cnn_model: str | Path | None = None,
                 excerpt_seconds: float = 30.0, dpi: int = 90) -> bytes:
    """PNG bytes of one track's report; unknown ids raise InputError."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    row = engine.tracks.row(track_id)
    t = engine.tracks.frame
    audio: dict[str, Any] | None = None
    if audio_file is not None:
        audio = _audio_analysis(Path(audio_file), cnn_model, excerpt_seconds)
    n_audio = 0 if audio is None else (3 + (audio.get("cnn") is not None))
    fig = Figure(figsize=(13, 8.5 + 2.6 * n_audio), dpi=dpi)
    FigureCanvasAgg(fig)
    heights = [2.8, 2.4] + [2.2] * n_audio
    gs = fig.add_gridspec(len(heights), 2, height_ratios=heights, hspace=0.55, wspace=0.2)
    name = t["track_name"].iloc[row] if "track_name" in t.columns else None
    artist = t["track_artist"].iloc[row] if "track_artist" in t.columns else None
    title = name if isinstance(name, str) else str(track_id)
    title += f" — {artist}" if isinstance(artist, str) else ""
    tags = t["tags"].iloc[row] if "tags" in t.columns else None  # musicnn block's top tags
    title += f"\ntags: {tags}" if isinstance(tags, str) and tags else ""
    fig.suptitle(f"{title}   [{track_id}]", fontsize=13, y=0.995)
    _stats_panel(fig, gs[0, :], t, row)
    _genre_panel(fig.add_subplot(gs[1, 0]), engine, row)
    _map_panel(fig.add_subplot(gs[1, 1]), engine, row)
    if audio is not None:
        i = 2
        ax = fig.add_subplot(gs[i, :])
        ax.imshow(audio["mel_db"], origin="lower", aspect="auto", cmap="magma",
                  extent=(0, audio["seconds"], 0, audio["mel_db"].shape[0]))
        ax.set_title(f"log-mel spectrogram ({audio['mel_db'].shape[0]} bands), {audio['file']}", fontsize=9)
        ax.set_ylabel("mel band", fontsize=7)
        ax.tick_params(labelsize=7)
        ax = fig.add_subplot(gs[i + 1, :])
        ax.imshow(audio["chroma"], origin="lower", aspect="auto", cmap="viridis",
                  extent=(0, audio["seconds"], -0.5, 11.5))
        ax.set_yticks(range(12))
        ax.set_yticklabels(["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"], fontsize=6)
        ax.set_title("chroma (STFT)", fontsize=9)
        ax.tick_params(labelsize=7)
        j = i + 2
        if audio.get("cnn") is not None:
            probs, classes, step = audio["cnn"]
            ax = fig.add_subplot(gs[j, :])
            times = (np.arange(len(probs)) + 0.5) * step
            for c in range(probs.shape[1]):
                ax.plot(times, probs[:, c], marker="o", ms=3, label=classes[c])
            ax.set_ylim(0, 1)
            ax.set_xlim(0, audio["seconds"])
            ax.set_title("chunk CNN: genre probability per chunk over time", fontsize=9)
            ax.legend(fontsize=6, ncol=min(8, len(classes)), loc="upper right")
            ax.set_xlabel("seconds into the excerpt", fontsize=7)
            ax.tick_params(labelsize=7)
            j += 1
        _stems_panel(fig.add_subplot(gs[j, :]), features, str(track_id))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _audio_analysis(path: Path, cnn_model, seconds: float) -> dict[str, Any]:
    from .audio.frontend import chroma_stft, log_mel, mel_power, stft_magnitude
    from .audio.load import load_excerpt

    sr = 22050
    y, sr = load_excerpt(path, sr=sr, seconds=seconds)
    S = stft_magnitude(y, n_fft=2048, hop_length=512)
    out: dict[str, Any] = {"file": path.name, "seconds": len(y) / sr,
                           "mel_db": log_mel(M=mel_power(S=S, sr=sr, n_fft=2048, n_mels=64)),
                           "chroma": chroma_stft(S=S, sr=sr, n_fft=2048), "cnn": None}
    if cnn_model:
        from .audio.cnn import CNNModel

        m = CNNModel.load(cnn_model)
        probs = m.chunk_probs(y, sr)
        if len(probs):
            out["cnn"] = (np.asarray(probs), list(m.classes), float(m.frontend.get("chunk_seconds", 3.0)))
    return out


def write_report(engine, track_id: str, out: str | Path, **kwargs) -> Path:
    """Render :func:`track_report` and write it atomically to ``out``."""
    from .io import write_bytes

    png = track_report(engine, track_id, **kwargs)
    write_bytes(out, png)
    return Path(out)
