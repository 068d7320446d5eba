"""Batch stage: labelled audio -> chunk log-mels (parallel, cached) -> song-grouped CV + final CNN.

Decoding and the STFT dominate on large sets and do not change between training runs, so each
song's chunk log-mels and baseline features are cached as ``.npz`` (no pickle) under
``CACHE/<key>.npz``, key = content hash + front-end settings. A killed run keeps every finished song.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from recsys.audio import cnn
from recsys.errors import InputError, RecsysError
from recsys.io import atomic_path, check_output_dir, sha256_file, sha256_json


def _frontend_key(config: cnn.CNNConfig) -> dict[str, Any]:
    return {**config.frontend(), "train_hop_seconds": config.train_hop_seconds, "v": 1}


def decode_song(path: str, config: cnn.CNNConfig,
                cache_dir: str | None) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Chunk log-mels + baseline features of one song (from the cache when present)."""
    cache = None
    try:
        if cache_dir:
            key = sha256_json({"content": sha256_file(path), "frontend": _frontend_key(config)})[:40]
            cache = Path(cache_dir) / f"{key}.npz"
            if cache.exists():
                try:
                    with np.load(cache, allow_pickle=False) as z:
                        return z["mel"], z["base"], str(z["reason"])
                except (OSError, ValueError, KeyError):
                    pass  # damaged entry: recompute
        mels, bases, reasons = cnn.load_songs(Path(path).parent, [Path(path).name], config, progress=False,
                                              hop_seconds=config.train_hop_seconds)
        mel, base, reason = mels[0], bases[0], reasons[0]
    except RecsysError as exc:
        return None, None, str(exc)
    except OSError as exc:
        return None, None, f"cannot read file ({exc})"
    if cache is not None and mel is not None:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, mel=mel, base=base, reason=np.array(reason))
    return mel, base, reason


def run(audio_dir: str | os.PathLike, out: str | os.PathLike, *, labels: str | os.PathLike | None = None,
        config: cnn.CNNConfig | None = None, jobs: int = 1, cache_dir: str | os.PathLike | None = None,
        cross_validation: bool = True, progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Decode labelled songs (``jobs`` processes, cached), cross-validate by song, save the model dir."""
    import multiprocessing as mp

    from tqdm.auto import tqdm

    config = config or cnn.CNNConfig()
    audio_dir = Path(audio_dir)
    check_output_dir(out, kind=cnn.KIND, inputs=[audio_dir, labels, cache_dir], force=force)
    table = cnn.labelled_files(audio_dir, labels)
    paths = [str(audio_dir / f) for f in table["file"]]
    cache = str(cache_dir) if cache_dir else None
    if jobs <= 1:
        results = [decode_song(p, config, cache)
                   for p in tqdm(paths, desc="decoding", unit="song", disable=not progress)]
    else:
        from pipelines.extract_features import _watch_parent

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                 initializer=_watch_parent, initargs=(os.getpid(),)) as ex:
            results = list(tqdm(ex.map(decode_song, paths, [config] * len(paths), [cache] * len(paths)),
                                total=len(paths), desc="decoding", unit="song", disable=not progress))
    mels = [r[0] for r in results]
    bases = [r[1] for r in results]
    reasons = [r[2] if r[0] is not None else (r[2] or "decode failed") for r in results]
    if all(reasons):
        raise InputError(f"{audio_dir}: no usable song (first reason: {reasons[0]})")
    return cnn.fit_and_save(table, mels, bases, reasons, out, config=config,
                            cross_validation=cross_validation, progress=progress, force=force)

