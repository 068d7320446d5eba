"""Thirteen parent genres and the mapping from free-form genre strings to them.

Spotify's genre strings number in the thousands ("southern hip hop", "neo soul", ...). An
editable CSV maps known strings exactly; ordered keyword rules cover the rest; what neither
maps is reported, never silently guessed.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..errors import SchemaError

PARENT_GENRES: tuple[str, ...] = (
    "pop", "rock", "hip-hop", "r&b-soul", "electronic", "latin", "country",
    "folk-acoustic", "jazz", "blues", "classical", "metal", "reggae",
)

# Ordered: the first rule whose pattern matches wins, so specific families come before broad ones
# ("death metal" is metal before "death" could mean anything; "latin hip hop" is latin by table).
KEYWORD_RULES: tuple[tuple[str, str], ...] = (
    (r"metal|metalcore|deathcore|grindcore|djent|thrash|doom", "metal"),
    (r"reggae|dancehall|ska\b|dub\b|roots", "reggae"),
    (r"latin|reggaeton|salsa|bachata|cumbia|merengue|tropical|banda|corrido|mariachi|sertanejo|"
     r"bossa|samba|forro|urbano|tango|flamenco|ranchera|vallenato|mexican", "latin"),
    (r"hip ?hop|hip-hop|rap\b|trap|drill|grime|boom bap|crunk|g funk|horrorcore", "hip-hop"),
    (r"r&b|rnb|soul|funk|motown|new jack|quiet storm|gospel|doo-wop", "r&b-soul"),
    (r"country|bluegrass|honky|americana|outlaw|nashville", "country"),
    (r"blues", "blues"),
    (r"jazz|bebop|swing|big band|bop\b|dixieland", "jazz"),
    (r"classical|orchestra|baroque|opera|romantic era|symphon|chamber|choral|early music|"
     r"minimalism|contemporary classical|soundtrack|score", "classical"),
    (r"folk|acoustic|singer-songwriter|celtic|traditional", "folk-acoustic"),
    (r"edm|house|techno|trance|dubstep|electro|electronic|dance|drum and bass|dnb|"
     r"big room|garage|breakbeat|hardstyle|ambient|idm|synthwave|downtempo|chill|lo-fi|lofi|"
     r"future bass|bass music|jungle", "electronic"),
    (r"rock|punk|grunge|emo|shoegaze|post-hardcore|hardcore|psych|indie|alternative|new wave|"
     r"permanent wave|britpop|garage rock", "rock"),
    (r"pop|boy band|girl group|idol|teen", "pop"),
)

_DEFAULT_MAP = "genre_map.csv"


def _norm(s: object) -> str:
    return re.sub(r"\s+", " ", str(s).strip().lower())


@dataclass
class Taxonomy:
    """Maps genre strings to the 13 parents: exact table first, then keyword rules."""

    table: dict[str, str] = field(default_factory=dict)
    rules: tuple[tuple[str, str], ...] = KEYWORD_RULES
    parents: tuple[str, ...] = PARENT_GENRES

    def __post_init__(self) -> None:
        self._compiled = [(re.compile(p), parent) for p, parent in self.rules]

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "Taxonomy":
        """Load the editable mapping CSV (``genre,parent``); ``None`` means the bundled one."""
        if path is None:
            text = resources.files("recsys.genres").joinpath("data", _DEFAULT_MAP).read_text("utf-8")
            where = f"bundled {_DEFAULT_MAP}"
        else:
            p = Path(path)
            if not p.exists():
                raise SchemaError(f"{p}: genre map not found")
            try:
                text, where = p.read_text("utf-8"), str(p)
            except UnicodeDecodeError:
                raise SchemaError(f"{p}: genre map is not a UTF-8 text file "
                                  "(expected 'genre,parent' lines)") from None
            except OSError as exc:
                raise SchemaError(f"{p}: cannot read genre map ({exc.strerror or exc})") from None
        table: dict[str, str] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#") or line.lower() == "genre,parent":
                continue
            genre, sep, parent = line.rpartition(",")
            parent = _norm(parent)
            if not sep or not genre.strip():
                raise SchemaError(f"{where}:{lineno}: expected 'genre,parent', got {line!r}")
            if parent not in PARENT_GENRES:
                raise SchemaError(f"{where}:{lineno}: unknown parent genre {parent!r} "
                                  f"(choose from {', '.join(PARENT_GENRES)})")
            table[_norm(genre)] = parent
        return cls(table=table)

    def lookup(self, genre: object) -> tuple[str | None, str]:
        """Return ``(parent or None, source)`` where source is table, keyword, parent or unmapped."""
        if genre is None or (isinstance(genre, float) and pd.isna(genre)):
            return None, "missing"
        g = _norm(genre)
        if not g:
            return None, "missing"
        if g in self.parents:
            return g, "parent"
        if g in self.table:
            return self.table[g], "table"
        for pattern, parent in self._compiled:
            if pattern.search(g):
                return parent, "keyword"
        return None, "unmapped"

    def parent_of(self, genre: object) -> str | None:
        """Parent genre of ``genre``, or None when it maps to none of the parents."""
        return self.lookup(genre)[0]

    def report(self, genres: Iterable[object]) -> pd.DataFrame:
        """One row per distinct string: its parent, how it was mapped, and how often it occurs."""
        counts = Counter(_norm(g) for g in genres
                         if g is not None and not (isinstance(g, float) and pd.isna(g)))
        rows = [(g, *self.lookup(g), n) for g, n in counts.items()]
        df = pd.DataFrame(rows, columns=["genre", "parent", "source", "count"])
        return df.sort_values(["source", "count"], ascending=[True, False], ignore_index=True)


def parent_for_row(taxonomy: Taxonomy, genre: object, subgenre: object = None) -> str | None:
    """Parent for a (genre, subgenre) pair: the genre decides; the subgenre fills in when it cannot."""
    return taxonomy.parent_of(genre) or taxonomy.parent_of(subgenre)


def primary_label(labels: Iterable[str | None]) -> str | None:
    """Most frequent non-missing parent; ties go to the first seen (stable, deterministic)."""
    seen = [x for x in labels if x]
    if not seen:
        return None
    counts = Counter(seen)
    best = max(counts.values())
    return next(x for x in seen if counts[x] == best)
