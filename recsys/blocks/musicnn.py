"""Block ``musicnn``: a pretrained music tagger's (musicnn, MSD weights) tags and embedding per file.

Per 3-s patch: 50 sigmoid tag probabilities and the 200-d penultimate embedding; per file both are
pooled by mean and max (probabilities stored as logits). ``musicnn__top_tags`` (text) names the 3 most
probable tags for reasons.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .base import BlockSpec, SkipFile

MIN_SECONDS = 1.0  # shorter excerpts are skipped; 1-3 s ones are repeat-padded to one patch (as in training)
TOP_K = 3
_LOGIT = "musicnn__logit_"


def tag_slug(tag: str) -> str:
    """Column-safe tag name: ``"female vocalists"`` -> ``female_vocalists``, ``"Hip-Hop"`` -> ``hip_hop``."""
    return re.sub(r"[^0-9a-z]+", "_", tag.lower()).strip("_")


def logit(p: np.ndarray) -> np.ndarray:
    """Pooled sigmoid probabilities back on the classifier's linear scale (clipped to 1e-4 .. 1-1e-4).

    The block stores logits, not probabilities: standardising probabilities near 0 (most tags on
    most tracks) would blow rare-tag noise up to full weight in the embedding.
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def tag_probabilities(row: pd.Series | dict) -> dict[str, float]:
    """Readable tag -> mean-patch probability of one track's musicnn row (``musicnn__logit_rock`` -> rock)."""
    out = {}
    for c in row.keys():
        if str(c).startswith(_LOGIT) and row[c] is not None and not pd.isna(row[c]):
            out[str(c)[len(_LOGIT):].replace("_", " ")] = float(1 / (1 + np.exp(-float(row[c]))))
    return out


def top_tags(row: pd.Series | dict, k: int = TOP_K) -> list[str]:
    """The ``k`` most probable tags of one track's musicnn row."""
    probs = tag_probabilities(row)
    return sorted(probs, key=lambda t: -probs[t])[:k]


def track_tags(features_dir: str | Path, track_ids: pd.Series, k: int = TOP_K) -> pd.Series:
    """Each track's ``k`` most probable tags as text (``"jazz, electronic, chillout"``; <NA> without the
    block), from ``musicnn.parquet`` (several files of one track: mean logits)."""
    from .align import read_feature_block

    table = read_feature_block(features_dir, "musicnn")
    cols = [c for c in table.columns if c.startswith(_LOGIT)]
    good = table[table["ok"] & table["track_id"].notna()]
    means = good.groupby("track_id", sort=False)[cols].mean()
    text = {tid: ", ".join(top_tags(row, k)) for tid, row in means.iterrows()}
    return pd.Series([text.get(str(t)) for t in track_ids], index=track_ids.index, dtype="string")


class MusicnnBlock:
    """Feature block ``musicnn``: ``musicnn__logit_<tag>`` / ``musicnn__maxlogit_<tag>`` (logit of the
    mean/max patch tag probability), ``musicnn__emb_mean_<i>`` / ``emb_max_<i>`` (penultimate layer),
    ``musicnn__top_tags``."""

    name = "musicnn"

    def __init__(self, model: str = "MSD_musicnn", weights: str | None = None,
                 batch_size: int | str = 16) -> None:
        from ..audio.musicnn import checkpoint_prefix, read_labels

        self.model = str(model)
        self.weights = None if weights is None else str(weights)
        self.batch_size = int(batch_size)
        self.labels = read_labels(self.model)
        self._prefix = checkpoint_prefix(self.model) if self.weights is None else self.weights
        self._tagger = None

    @property
    def tagger(self):
        """The torch tagger, loaded once on first use (in each worker process)."""
        if self._tagger is None:
            from ..audio.musicnn import Tagger

            self._tagger = Tagger.load(self.model, weights=self.weights)
        return self._tagger

    def settings(self) -> dict[str, Any]:
        """Model name and weight files' size/mtime (cache key; no weight load in the main process)."""
        paths = [Path(self.weights)] if self.weights else [Path(f"{self._prefix}{s}")
                                                           for s in (".index", ".data-00000-of-00001")]
        return {"model": self.model, "weights": [[p.name, p.stat().st_size] for p in paths],
                "patch_hop": "none", "pool": "mean+max"}

    def extract(self, y: np.ndarray, sr: int, *, path: Path) -> dict[str, Any]:
        """Pooled tags and embedding of one excerpt."""
        from ..audio.musicnn import PATCH_FRAMES, log_mel, patches

        if len(y) < MIN_SECONDS * sr:
            raise SkipFile(f"too short for musicnn ({len(y) / sr:.2f} s < {MIN_SECONDS:g} s)")
        if float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) < 1e-3:
            raise SkipFile("silent (RMS below -60 dBFS): no tag evidence")
        mel = log_mel(y, sr)
        if len(mel) < PATCH_FRAMES:  # repeat-pad a 1-3 s clip to one patch
            mel = np.tile(mel, (int(np.ceil(PATCH_FRAMES / len(mel))), 1))[:PATCH_FRAMES]
        out = self.tagger.forward_patches(patches(mel), batch_size=self.batch_size)
        slugs = [tag_slug(t) for t in self.labels]
        feats: dict[str, Any] = {}
        for prefix, v in (("logit", out.probs.mean(0)), ("maxlogit", out.probs.max(0))):
            feats.update({f"musicnn__{prefix}_{s}": float(x) for s, x in zip(slugs, logit(v))})
        for prefix, v in (("emb_mean", out.embedding.mean(0)), ("emb_max", out.embedding.max(0))):
            feats.update({f"musicnn__{prefix}_{i:03d}": float(x) for i, x in enumerate(v)})
        order = np.argsort(-out.probs.mean(0))[:TOP_K]
        feats["musicnn__top_tags"] = ", ".join(self.labels[i] for i in order)
        return feats

    def finalize(self, table: pd.DataFrame) -> pd.DataFrame:
        """No corpus-level step."""
        return table


# weight 2: in "similar by sound" the tagger, the one block that knows what music is, counts twice
SPEC = BlockSpec(name="musicnn", source="audio", version=1, order=25, default=True, weight=2.0,
                 columns="musicnn__logit_<tag>/musicnn__maxlogit_<tag> (50 MSD tags, mean/max over 3-s "
                         "patches, as logits), "
                         "musicnn__emb_mean_<i>/emb_max_<i> (200-d penultimate), musicnn__top_tags",
                 help="pretrained musicnn tagger (MSD weights from the musicnn wheel): tags + embedding",
                 extractor=lambda: MusicnnBlock)
