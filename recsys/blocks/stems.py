"""Block ``stems``: accompaniment features after vocal separation (Demucs or the classical separator)."""
from __future__ import annotations

from .base import BlockSpec


def _extractor() -> type:
    from ..audio.separation import StemsBlock

    return StemsBlock


SPEC = BlockSpec(name="stems", source="audio", version=1, order=40,
                 columns="stems__* (accompaniment envelope, centroid, ZCR, flux summaries; vocal energy share)",
                 help="accompaniment features after separation (--set stems.backend=demucs|classical)",
                 extractor=_extractor,
                 options={"backend": "demucs or classical", "model": "Demucs name or local path"})
