"""Block ``lyrics``: Whisper transcript of the vocal stem -> TF-IDF + NMF topic mixture (gated by quality)."""
from __future__ import annotations

from .base import BlockSpec


def _extractor() -> type:
    from ..lyrics import LyricsBlock

    return LyricsBlock


SPEC = BlockSpec(name="lyrics", source="audio", version=1, order=50,
                 columns="lyrics__topic_* (NMF topic mixture), lyrics__status, lyrics__language",
                 help="topics of the transcribed vocals (--set lyrics.model=NAME_OR_PATH)", extractor=_extractor,
                 options={"backend": "faster-whisper or openai-whisper", "model": "Whisper name or local path"})
