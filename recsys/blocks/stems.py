"""Block ``stems``: accompaniment features after vocal separation (Demucs or the classical separator)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.separation import (BACKENDS, DEFAULT_DEMUCS_MODEL, Separator, accompaniment_features,
                                feature_columns,
                                make_separator, rms_db, separate_cached, summarise)
from ..config import options_to_config
from ..errors import InputError
from .base import BlockSpec


@dataclass
class StemsConfig:
    """Options of the ``stems`` block (``[stems]`` in TOML, ``--set stems.KEY=VALUE``)."""

    backend: str = "auto"  # auto | demucs | classical
    model: str = DEFAULT_DEMUCS_MODEL  # demucs name, or a local file / weights folder
    name: str | None = None  # bag name inside a weights folder
    device: str = "cpu"
    overlap: float = 0.25
    segment: float | None = None
    shifts: int = 0
    download: bool = False
    jobs: int = 0
    min_seconds: float = 1.0  # shorter excerpts: empty record, status too_short
    silence_db: float = -60.0  # quieter excerpts: empty record, status silent


class StemsBlock:
    """Feature block ``stems``: summaries of the accompaniment stem of each excerpt.

    Takes a :class:`StemsConfig` or its fields as keyword options (strings are converted;
    an unknown option is an :class:`~recsys.errors.InputError`).
    """

    name = "stems"

    def __init__(self, config: StemsConfig | None = None, **options: Any) -> None:
        if config is not None and options:
            raise InputError("pass either a StemsConfig or keyword options, not both")
        self.config = config or options_to_config(StemsConfig, options, where="stems")
        if self.config.backend not in BACKENDS:
            raise InputError(f"stems.backend: {self.config.backend!r} is not one of {', '.join(BACKENDS)}")
        self._sep: Separator | None = None
        _ = self.separator  # unusable weights fail here, before any file is processed

    @property
    def min_seconds(self) -> float:
        return self.config.min_seconds

    @property
    def silence_db(self) -> float:
        return self.config.silence_db

    @property
    def separator(self) -> Separator:
        if self._sep is None:
            c = self.config
            self._sep = make_separator(c.backend, model=c.model, name=c.name, device=c.device,
                                       overlap=c.overlap,
                                       segment=c.segment, shifts=c.shifts, download=c.download, jobs=c.jobs)
        return self._sep

    def settings(self) -> dict[str, Any]:
        return {"separator": self.separator.identity(), "min_seconds": self.min_seconds,
                "silence_db": self.silence_db, "features": "envelope,centroid,zcr,flux/v1"}

    def _empty(self, status: str, reason: str, **extra: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {"stems__backend": self.separator.backend, "stems__status": status,
                               "stems__reason": reason,
                               "stems__vocal_share": np.nan, "stems__vocal_db": np.nan}
        rec.update(extra)
        rec.update({c: np.nan for c in feature_columns()})
        return rec

    def extract(self, y: np.ndarray, sr: int, *, path: Path | None = None) -> dict[str, Any]:
        y = np.asarray(y, dtype=np.float32)
        seconds = len(y) / float(sr)
        if seconds < self.min_seconds:
            return self._empty("too_short", f"excerpt is {seconds:.2f} s, "
                                            f"shorter than {self.min_seconds:g} s")
        level = rms_db(y)
        if level < self.silence_db:
            return self._empty("silent", f"excerpt level {level:.1f} dBFS is below {self.silence_db:g} dBFS")
        stems = separate_cached(self.separator, y, sr)
        total = float(np.sum(np.square(stems.vocals, dtype=np.float64)) +
                      np.sum(np.square(stems.accompaniment, dtype=np.float64)))
        share = float(np.sum(np.square(stems.vocals, dtype=np.float64)) / total) if total > 0 else 0.0
        rec: dict[str, Any] = {"stems__backend": stems.backend, "stems__status": "ok", "stems__reason": "",
                               "stems__vocal_share": share, "stems__vocal_db": rms_db(stems.vocals)}
        if rms_db(stems.accompaniment) < self.silence_db:
            rec.update(self._empty("no_accompaniment", "the accompaniment stem is silent (a cappella?)",
                                   stems__vocal_share=share, stems__vocal_db=rms_db(stems.vocals)))
            rec["stems__backend"] = stems.backend
            return rec
        for fname, series in accompaniment_features(stems.accompaniment, sr).items():
            rec.update(summarise(fname, series))
        return rec

    def finalize(self, table: Any) -> Any:
        return table


SPEC = BlockSpec(name="stems", source="audio", version=1, order=40,
                 columns="stems__* (accompaniment envelope, centroid, ZCR, "
                         "flux summaries; vocal energy share)",
                 help="accompaniment features after separation (--set stems.backend=demucs|classical)",
                 extractor=lambda: StemsBlock)
