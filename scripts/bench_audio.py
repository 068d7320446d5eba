#!/usr/bin/env python
"""Benchmarks for the audio area: front-end speed, extraction throughput, CNN vs baseline.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python scripts/bench_audio.py [--only frontend,extract,cnn]

1. front-end: ms per 30-s excerpt after warm-up, shared STFT, default settings and variants,
   with and without decoding (Ogg Vorbis clips in data/audio);
2. extract: ``features extract`` throughput (tracks/s) with --jobs 1 and --jobs 2, cold cache,
   on distinct synthetic 60-s songs (FLAC), blocks spectral+audiostats;
3. cnn: song-grouped CV of the chunk CNN beside the MFCC/chroma logistic-regression baseline on
   (a) a synthetic 3-genre set and (b) the only real labelled clips available (tiny; see docs).
Prints a report and writes it as JSON (--out).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "audio"
SHARED = ROOT.parent / "shared" / "data" / "audio"


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def bench_frontend(repeats: int) -> dict:
    from recsys.audio import frontend as F
    from recsys.audio.load import load_excerpt
    from recsys.audio.stats import AudioStatsBlock

    # the >= 45-s music/whale clips
    clips = [p for p in sorted(DATA.glob("*.ogg")) if p.stat().st_size > 200_000]
    variants = {
        "default (stft chroma, tonnetz, beats, mel bands)": F.FrontendConfig(),
        "lean (no tonnetz, no mel-band stats)": F.FrontendConfig(tonnetz=False, mel_bands=False),
        "+ CQT chroma + CENS": F.FrontendConfig(chroma=("stft", "cqt", "cens")),
    }
    excerpts = {p.name: load_excerpt(p, sr=22050, seconds=30)[0] for p in clips}
    for y in excerpts.values():  # warm-up: numba JIT, FFT plans, filter banks
        F.spectral_features(F.Analysis(y, 22050))
    out: dict = {"clips": list(excerpts), "excerpt_seconds": 30, "ms_per_excerpt": {}}
    for name, cfg in variants.items():
        ms = [_median_ms(lambda y=y: F.spectral_features(F.Analysis(y, 22050, cfg)), repeats)
              for y in excerpts.values()]
        out["ms_per_excerpt"][name] = round(float(np.median(ms)), 1)
    stats = AudioStatsBlock()
    ms = []
    for name, y in excerpts.items():
        def both(y=y):
            F.spectral_features(F.analyse(y, 22050, F.FrontendConfig()))
            stats.extract(y, 22050, path=DATA / name)
        ms.append(_median_ms(lambda y=y: (F._LAST.clear(), both(y)), repeats))
    out["ms_per_excerpt"]["default + audiostats (shared STFT)"] = round(float(np.median(ms)), 1)
    ms_dec = [_median_ms(lambda p=p: load_excerpt(p, sr=22050, seconds=30), repeats) for p in clips]
    out["decode_ms_per_excerpt"] = round(float(np.median(ms_dec)), 1)
    ms_all = [_median_ms(lambda p=p: F.spectral_features(F.Analysis(load_excerpt(p, sr=22050, seconds=30)[0],
                                                                    22050)),
                         repeats) for p in clips]
    out["ms_per_excerpt_with_decoding (default)"] = round(float(np.median(ms_all)), 1)
    return out


def bench_extract(n_tracks: int, seconds: float) -> dict:
    import soundfile as sf

    from recsys.testing.audio import GENRES, synth_song
    from pipelines.extract_features import ExtractConfig, run

    tmp = Path(tempfile.mkdtemp(prefix="bench_audio_"))
    try:
        audio = tmp / "audio"
        audio.mkdir()
        for i in range(n_tracks):
            sf.write(audio / f"song_{i:03d}.flac", synth_song(GENRES[i % 3], seconds=seconds, seed=100 + i),
                     22050)
        out = {"tracks": n_tracks, "track_seconds": seconds, "blocks": "spectral,audiostats",
               "cpus": os.cpu_count()}
        for jobs in (1, 2):
            t = time.perf_counter()
            s = run(audio, tmp / f"feat{jobs}", ExtractConfig(blocks=("spectral", "audiostats"), jobs=jobs),
                    progress=False)
            dt = time.perf_counter() - t
            out[f"jobs{jobs}_seconds"] = round(dt, 1)
            out[f"jobs{jobs}_tracks_per_s"] = round(n_tracks / dt, 2)
            assert s.computed == 2 * n_tracks
        t = time.perf_counter()
        s = run(audio, tmp / "feat2", ExtractConfig(blocks=("spectral", "audiostats"), jobs=2),
                progress=False)
        out["rerun_all_cached_seconds"] = round(time.perf_counter() - t, 2)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cv_summary(report: dict) -> dict:
    cv = report["cv"]
    return {"songs": cv["n_songs"], "folds": cv["n_splits"],
            "majority": round(cv["majority_song_accuracy"], 3),
            "cnn_chunk_acc": round(cv["cnn"]["chunk"]["accuracy"], 3),
            "cnn_chunk_f1": round(cv["cnn"]["chunk"]["macro_f1"], 3),
            "cnn_song_vote_acc": round(cv["cnn"]["song_vote"]["accuracy"], 3),
            "cnn_song_vote_f1": round(cv["cnn"]["song_vote"]["macro_f1"], 3),
            "base_chunk_acc": round(cv["baseline_logreg_mfcc_chroma"]["chunk"]["accuracy"], 3),
            "base_song_acc": round(cv["baseline_logreg_mfcc_chroma"]["song_mean"]["accuracy"], 3),
            "base_song_f1": round(cv["baseline_logreg_mfcc_chroma"]["song_mean"]["macro_f1"], 3)}


def bench_cnn(per_genre: int, epochs: int, real_seeds: int = 5, *, synthetic: bool = True) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_cnn_"))
    try:
        out = _cnn_synthetic(tmp, per_genre, epochs) if synthetic else {}
        out["real_clips"] = _cnn_real(tmp, epochs, real_seeds)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cnn_synthetic(tmp: Path, per_genre: int, epochs: int) -> dict:
    from recsys.testing.audio import RHYTHM_GENRES, write_labelled_set
    from recsys.audio import cnn

    out: dict = {}
    labels = write_labelled_set(tmp / "synth", per_genre=per_genre, seconds=12.0, seed=11)
    t = time.perf_counter()
    rep = cnn.train(tmp / "synth", tmp / "m_synth", labels=labels, progress=False,
                    config=cnn.CNNConfig(folds=5, epochs=epochs, excerpt_seconds=None))
    out["synthetic_3_genres"] = {**_cv_summary(rep), "seconds": round(time.perf_counter() - t, 1)}
    print(json.dumps(out, indent=1), flush=True)
    # harder: same instruments, overlapping tempi, classes differ only in rhythmic pattern
    labels = write_labelled_set(tmp / "rhythm", per_genre=per_genre, seconds=12.0, seed=3,
                                genres=RHYTHM_GENRES)
    t = time.perf_counter()
    rep = cnn.train(tmp / "rhythm", tmp / "m_rhythm", labels=labels, progress=False,
                    config=cnn.CNNConfig(folds=5, epochs=epochs, excerpt_seconds=None))
    out["synthetic_rhythm_only"] = {**_cv_summary(rep), "seconds": round(time.perf_counter() - t, 1)}
    print(json.dumps(out, indent=1), flush=True)
    return out


def _cnn_real(tmp: Path, epochs: int, seeds: int) -> dict:
    """All labelled real audio available: 3 classes. With ../shared present its CC-BY-NC clips are
    used here for measurement only (never shipped), giving 3 songs per class."""
    from recsys.audio import cnn

    real = {"jazz": ["Kevin_MacLeod_-_Vibe_Ace.ogg", "sorohanro_-_solo-trumpet-06.ogg"],
            "classical": ["Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
                          "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg"],
            "speech": ["198-209-0000.ogg", "3436-172162-0000.ogg", "5703-47212-0000.ogg"]}
    src = {n: DATA / n for files in real.values() for n in files}
    if SHARED.exists():
        extra = {"jazz": "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.ogg",
                 "classical": "147793__setuniman__sweet-waltz-0i-22mi.ogg"}
        for g, n in extra.items():
            real[g].append(n)
            src[n] = SHARED / n
    d = tmp / "real"
    d.mkdir()
    rows = []
    for g, files in real.items():
        for n in files:
            shutil.copy(src[n], d / n)
            rows.append(f"{n},{g}")
    (d / "labels.csv").write_text("file,genre\n" + "\n".join(rows) + "\n")
    # several fold assignments (seeds): with 9 songs one split says little; report mean and sd.
    t = time.perf_counter()
    cfg = cnn.CNNConfig(folds=3, epochs=epochs, excerpt_seconds=None, chunk_seconds=3.0,
                        train_hop_seconds=1.5, val_fraction=0.0)
    table = cnn.labelled_files(d, d / "labels.csv")
    mels, bases, reasons = cnn.load_songs(d, table["file"], cfg, progress=False, hop_seconds=1.5)
    assert not any(reasons), reasons
    classes = sorted(real)
    y = table["genre"].map({g: i for i, g in enumerate(classes)}).to_numpy()
    runs = []
    for seed in range(seeds):
        cv = cnn.cross_validate(mels, bases, y, len(classes), dataclasses.replace(cfg, seed=seed),
                                progress=False)
        runs.append(_cv_summary({"cv": cv}))
        print(f"real clips, seed {seed}: {runs[-1]}", flush=True)
    keys = [k for k in runs[0] if k.startswith(("cnn_", "base_"))]
    return {"songs": int(len(y)), "folds": 3, "seeds": seeds, "classes": {g: len(f) for g, f in real.items()},
            **{k: f"{np.mean([r[k] for r in runs]):.3f} ± {np.std([r[k] for r in runs]):.3f}" for k in keys},
            "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="frontend,extract,cnn")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--tracks", type=int, default=96)
    ap.add_argument("--track-seconds", type=float, default=60.0)
    ap.add_argument("--per-genre", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--real-seeds", type=int, default=5, help="fold assignments for the real-clip study")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    only = set(args.only.split(","))
    report: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}}
    if "frontend" in only:
        report["frontend"] = bench_frontend(args.repeats)
        print(json.dumps({"frontend": report["frontend"]}, indent=2), flush=True)
    if "extract" in only:
        report["extract"] = bench_extract(args.tracks, args.track_seconds)
        print(json.dumps({"extract": report["extract"]}, indent=2), flush=True)
    if "cnn" in only:
        report["cnn"] = bench_cnn(args.per_genre, args.epochs, args.real_seeds,
                                  synthetic=not args.skip_synthetic)
        print(json.dumps({"cnn": report["cnn"]}, indent=2), flush=True)
    report["machine"]["load_avg_at_end"] = os.getloadavg()
    if args.out:
        from recsys.io import write_json

        write_json(args.out, report)


if __name__ == "__main__":
    main()
