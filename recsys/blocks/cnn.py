"""Block ``cnn``: a trained chunk CNN's pooled softmax per file (``cnn__p_<genre>``) and its vote."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..audio.cnn import CNNModel, song_vote
from ..errors import InputError
from .base import BlockSpec, SkipFile


class CNNBlock:
    """Feature block ``cnn``: ``cnn__p_<genre>`` (mean chunk softmax), ``cnn__vote`` (mode),
    ``cnn__n_chunks``."""

    name = "cnn"

    def __init__(self, model: str | Path | None = None, batch_size: int | str = 64) -> None:
        if model is None:
            raise InputError("block cnn needs a trained model: "
                             "--set cnn.model=PATH (from `recsys cnn train`)")
        self.model = str(model)
        self.batch_size = int(batch_size)
        self._loaded: CNNModel | None = None

    @property
    def loaded(self) -> CNNModel:
        """The model, loaded once on first use."""
        if self._loaded is None:
            self._loaded = CNNModel.load(self.model)
        return self._loaded

    def settings(self) -> dict[str, Any]:
        """The model's checksum and front-end (cache key)."""
        return {"model_sha256": self.loaded.sha256, "frontend": self.loaded.frontend}

    def extract(self, y: np.ndarray, sr: int, *, path: Path) -> dict[str, Any]:
        """Mean chunk softmax and the chunk vote of one excerpt."""
        m = self.loaded
        if y.size and float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) < 1e-3:
            raise SkipFile("silent (RMS below -60 dBFS): no genre evidence")
        probs = m.chunk_probs(y, sr, batch_size=self.batch_size)
        if len(probs) == 0:
            raise SkipFile(f"shorter than one {m.frontend['chunk_seconds']:g}-s chunk ({len(y) / sr:.1f} s)")
        mean, vote = song_vote(probs)
        out: dict[str, Any] = {f"cnn__p_{c}": float(v) for c, v in zip(m.classes, mean)}
        out["cnn__vote"] = m.classes[vote]
        out["cnn__n_chunks"] = int(len(probs))
        return out

    def finalize(self, table: pd.DataFrame) -> pd.DataFrame:
        """No corpus-level step."""
        return table


SPEC = BlockSpec(name="cnn", source="audio", version=1, order=30,
                 columns="cnn__p_<genre> (mean chunk softmax), cnn__vote, cnn__n_chunks",
                 help="pooled chunk-CNN genre probabilities (needs --set cnn.model=DIR)",
                 extractor=lambda: CNNBlock)
