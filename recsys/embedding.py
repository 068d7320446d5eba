"""Blocks -> one L2-normalised float32 embedding per track.

Each block is standardised on the tracks that have it (mean/std per column), missing cells become
the block mean (0 after standardising), and the block is scaled by ``weight / sqrt(n_columns)`` so a
wide block (64 CNN probabilities) does not drown a narrow one. A track without a block gets zeros
there; after L2 normalisation its other blocks carry the whole vector.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .blocks import Block
from .blocks.registry import default_weight
from .errors import InputError, ModelError


@dataclass
class EmbeddingConfig:
    """Which blocks make the embedding and how much each weighs."""

    blocks: tuple[str, ...] = ("tabular",)
    weights: dict[str, float] = field(default_factory=dict)  # block -> weight (default: BlockSpec.weight)
    genre_weight: float = 1.0  # extra weight on the genre-probability columns of the tabular block
    metadata: bool = True  # tabular block includes release year and popularity from the catalogue


class EmbeddingBuilder:
    """Standardise, weight, mask and concatenate blocks; learned state: ``mean_``, ``scale_``, ``layout_``."""

    def __init__(self, *, weights: dict[str, float] | None = None) -> None:
        self.weights = dict(weights or {})

    def fit(self, blocks: list[Block]) -> "EmbeddingBuilder":
        """Learn per-block column means and scales on the tracks that have each block."""
        if not blocks:
            raise InputError("no feature blocks to embed")
        self.mean_: dict[str, np.ndarray] = {}
        self.scale_: dict[str, np.ndarray] = {}
        self.layout_: list[tuple[str, int, list[str]]] = []
        for b in blocks:
            rows = b.values[b.present]
            if len(rows) == 0:
                raise InputError(f"block {b.name!r}: no track has it")
            with np.errstate(all="ignore"):
                mean = np.nanmean(rows, axis=0)
                std = np.nanstd(rows, axis=0)
            mean = np.nan_to_num(mean, nan=0.0)
            std = np.where(~np.isfinite(std) | (std < 1e-8), 1.0, std)
            w = float(self.weights.get(b.name, default_weight(b.name))) / np.sqrt(b.values.shape[1])
            col_w = np.full(b.values.shape[1], w, dtype=np.float64)
            if b.weights is not None:  # per-column weights a block asks for (tabular: genre_weight)
                col_w *= b.weights
            self.mean_[b.name] = mean.astype(np.float32)
            self.scale_[b.name] = (col_w / std).astype(np.float32)
            self.layout_.append((b.name, b.values.shape[1], list(b.columns)))
        return self

    @property
    def dim_(self) -> int:
        """Embedding width: the summed column counts of the fitted blocks."""
        return sum(d for _, d, _ in self.layout_)

    @property
    def block_slices(self) -> dict[str, slice]:
        """Block name -> its columns in the embedding, in layout order."""
        out, col = {}, 0
        for name, d, _ in self.layout_:
            out[name] = slice(col, col + int(d))
            col += int(d)
        return out

    def columns(self, name: str) -> list[str]:
        """The feature columns of one fitted block, in embedding order."""
        for n, _, cols in self.layout_:
            if n == name:
                return list(cols)
        raise ModelError(f"block {name!r} is not part of this embedding")

    def scale(self, name: str, values: np.ndarray) -> np.ndarray:
        """One block's raw values standardised and weighted as in the embedding (before L2; NaN -> 0)."""
        z = (np.asarray(values) - self.mean_[name]) * self.scale_[name]
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)

    def transform(self, blocks: list[Block]) -> np.ndarray:
        """One float32 row per track, L2-normalised (all-zero rows stay zero: no block present)."""
        by_name = {b.name: b for b in blocks}
        n = len(blocks[0].present)
        out = np.zeros((n, self.dim_), dtype=np.float32)
        col = 0
        for name, d, _ in self.layout_:
            b = by_name.get(name)
            if b is not None:
                if b.values.shape[1] != d:
                    raise ModelError(f"block {name!r} has {b.values.shape[1]} columns, embedding expects {d}")
                z = self.scale(name, b.values)
                z[~b.present] = 0.0
                out[:, col:col + d] = z
            col += d
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def fit_transform(self, blocks: list[Block]) -> np.ndarray:
        """Fit the per-block scaling on ``blocks`` and return their embedding rows."""
        return self.fit(blocks).transform(blocks)

    # -------------------------------------------------------------- persistence (JSON-able)
    def to_dict(self) -> dict:
        """Fitted parameters as plain JSON-able lists (stored in the index, no pickle)."""
        return {"weights": self.weights,
                "layout": [[n, d, c] for n, d, c in self.layout_],
                "mean": {k: v.tolist() for k, v in self.mean_.items()},
                "scale": {k: v.tolist() for k, v in self.scale_.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "EmbeddingBuilder":
        """Rebuild a fitted builder from :meth:`to_dict` output; corrupted input raises ModelError."""
        try:
            self = cls(weights=d["weights"])
            self.layout_ = [(n, int(k), list(c)) for n, k, c in d["layout"]]
            self.mean_ = {k: np.asarray(v, dtype=np.float32) for k, v in d["mean"].items()}
            self.scale_ = {k: np.asarray(v, dtype=np.float32) for k, v in d["scale"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"embedding parameters are corrupted ({exc})") from None
        return self
