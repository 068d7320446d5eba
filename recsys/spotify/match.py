"""Match a music folder to catalogue rows by the files' tags, so their audio can give the statistics.

Tags (title, artist, album, ISRC, duration) are read with mutagen. A file matches a catalogue track by
ISRC first, then by normalised artist + title: accents folded, ``feat.`` artists moved out of the
title, version suffixes (``- Remastered 2011``, ``(Live)``, ``[Radio Edit]``) removed, scored with
rapidfuzz. Every match must pass a duration check. Untagged files fall back to an ``Artist - Title``
file name. What cannot be matched is returned with the reason.
"""
from __future__ import annotations

import logging
import math
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DependencyError, InputError, SchemaError

log = logging.getLogger(__name__)

MATCH_COLUMNS = ("track_id", "file", "method", "score", "file_title", "file_artist", "track_name",
                 "track_artist", "duration_diff_s")
UNMATCHED_COLUMNS = ("file", "reason", "file_title", "file_artist")


@dataclass(frozen=True)
class MatchConfig:
    """Thresholds of the matcher (scores are rapidfuzz's 0-100)."""

    min_title: float = 90.0  # normalised titles must be at least this similar
    min_artist: float = 85.0  # and the artists (token-set: a featured artist on one side only is fine)
    min_filename: float = 95.0  # stricter for titles and artists parsed from a file name
    duration_s: float = 8.0  # |file - catalogue| allowed ...
    duration_frac: float = 0.04  # ... or this fraction of the catalogue duration, whichever is larger
    live_penalty: float = 10.0  # a live recording on one side only
    candidates: int = 10  # fuzzy title candidates looked at per file


@dataclass
class FileTags:
    """What one audio file says about itself."""

    file: str  # relative to the audio folder (posix), as `features extract` names it
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    isrc: str | None = None
    duration_s: float | None = None
    error: str | None = None
    from_filename: bool = False


@dataclass
class MatchResult:
    """Matches (one row per matched file) and unmatched files with the reason."""

    matches: pd.DataFrame
    unmatched: pd.DataFrame
    n_files: int
    methods: dict[str, int] = field(default_factory=dict)


# ---- normalisation ---------------------------------------------------------------------------------
_VERSION_WORDS = (r"remaster(?:ed)?|live|version|edit|mono|stereo|deluxe|bonus(?: track)?|single|anniversary|"
                  r"explicit|clean|expanded|edition|recording")
_VERSION = re.compile(rf"\b(?:{_VERSION_WORDS})\b", re.I)
_FEAT = re.compile(r"\b(?:feat|ft|featuring)\b\.?\s*(.+)$", re.I)
_BRACKET = re.compile(r"\s*[\(\[]([^\)\]]*)[\)\]]")
_DASH = re.compile(r"\s+[-\u2013\u2014]\s+(.+)$")
_ARTIST_SPLIT = re.compile(r"\s*(?:,|;|/|&|\+|\bx\b|\band\b|\bwith\b|\bfeat\b\.?|\bft\b\.?|\bfeaturing\b)\s*",
                           re.I)
_LIVE = re.compile(r"\blive\b", re.I)
_DIGITS = re.compile(r"\d+")


def fold(text: str) -> str:
    """Lower case without accents or punctuation, ``&`` as ``and``, single spaces."""
    t = unicodedata.normalize("NFKD", str(text))
    t = "".join(c for c in t if not unicodedata.combining(c)).casefold()
    t = t.replace("&", " and ").replace("ø", "o").replace("ß", "ss").replace("æ", "ae").replace("đ", "d")
    t = re.sub(r"[^\w\s]", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def split_title(title: str) -> tuple[str, list[str], bool]:
    """``"Song (feat. B) - Remastered 2011"`` -> ``("song", ["b"], live=False)``.

    Bracketed or dash-separated parts that name a version (remaster, live, edit, mono, ...) are
    dropped, ``feat.`` parts become extra artists; other brackets (``(Remix)``, ``(Acoustic)``) stay.
    """
    t = str(title).strip()
    live = False
    featured: list[str] = []
    for _ in range(3):  # "Song (feat. X) - Live" has two parts
        m = _DASH.search(t)
        if m and (_VERSION.search(m.group(1)) or _FEAT.search(m.group(1))):
            part = m.group(1)
            live |= bool(_LIVE.search(part))
            f = _FEAT.search(part)
            if f:
                featured.append(f.group(1))
            t = t[:m.start()]
            continue
        changed = False
        for b in list(_BRACKET.finditer(t)):
            part = b.group(1)
            f = _FEAT.search(part)
            if f or re.match(r"\s*with\s", part, re.I):
                featured.append(f.group(1) if f else re.sub(r"^\s*with\s+", "", part, flags=re.I))
            elif _VERSION.search(part):
                live |= bool(_LIVE.search(part))
            else:
                continue
            t = t.replace(b.group(0), " ", 1)
            changed = True
        if not changed:
            break
    f = _FEAT.search(t)  # "Song feat. B" without brackets
    if f:
        featured.append(f.group(1))
        t = t[:f.start()]
    artists = [a for x in featured for a in split_artists(x)]
    return fold(t), artists, live


def split_artists(artist: str | None) -> list[str]:
    """``"Beyoncé feat. JAY-Z, Kendrick"`` -> ``["beyonce", "jay z", "kendrick"]``."""
    if not artist:
        return []
    return [re.sub(r"^the ", "", a) for a in (fold(p) for p in _ARTIST_SPLIT.split(str(artist))) if a]


# ---- tags ------------------------------------------------------------------------------------------
def _first(tags, *keys: str) -> str | None:
    for k in keys:
        try:
            v = tags.get(k) if hasattr(tags, "get") else None
        except (KeyError, ValueError, TypeError):
            v = None
        if v is None:
            continue
        if hasattr(v, "text"):  # an ID3 frame
            v = v.text
        if isinstance(v, (list, tuple)):
            v = next((str(x) for x in v if str(x).strip()), None)
        if v is not None and str(v).strip():
            return str(v).strip()
    return None


def _from_filename(stem: str) -> tuple[str | None, str | None]:
    """``"03 - Artist - Title"`` / ``"Artist - Title"`` -> (artist, title); anything else -> (None, None)."""
    s = re.sub(r"^\s*\d{1,3}\s*[-._)]\s*", "", stem.replace("_", " "))
    parts = re.split(r"\s+[-\u2013\u2014]\s+", s, maxsplit=1)
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        return None, None
    return parts[0].strip(), parts[1].strip()


def read_tags(path: str | os.PathLike, *, root: str | os.PathLike | None = None) -> FileTags:
    """Title, artist, album, ISRC and duration of one file (mutagen); ``error`` says why there are none."""
    try:
        import mutagen
    except ImportError:
        raise DependencyError("matching a music folder needs mutagen: pip install "
                              "'recsys[spotify]'") from None
    p = Path(path)
    rel = p.relative_to(root).as_posix() if root is not None else p.name
    out = FileTags(file=rel)
    try:
        f = mutagen.File(p, easy=True)
    except Exception as exc:  # mutagen raises its own errors for truncated or foreign files
        out.error = f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
        return out
    if f is None:
        out.error = "not an audio format mutagen reads"
        return out
    length = getattr(getattr(f, "info", None), "length", None)
    out.duration_s = float(length) if length and math.isfinite(length) and length > 0 else None
    tags = f.tags
    if tags is not None:
        out.title = _first(tags, "title", "TIT2", "\xa9nam")
        out.artist = _first(tags, "artist", "TPE1", "albumartist", "TPE2", "\xa9ART")
        out.album = _first(tags, "album", "TALB", "\xa9alb")
        isrc = _first(tags, "isrc", "TSRC", "----:com.apple.iTunes:ISRC")
        out.isrc = _isrc(isrc)
    if not (out.title and out.artist):
        artist, title = _from_filename(p.stem)
        if artist and title and not out.isrc:
            out.artist, out.title, out.from_filename = out.artist or artist, out.title or title, True
    return out


def _isrc(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = re.sub(r"[^0-9A-Za-z]", "", str(value)).upper()
    return s if len(s) == 12 else None


# ---- matching --------------------------------------------------------------------------------------
class Matcher:
    """Index of a catalogue's tracks for matching files: ISRC, exact and fuzzy normalised titles."""

    def __init__(self, catalog: pd.DataFrame, config: MatchConfig | None = None) -> None:
        missing = [c for c in ("track_id", "track_name", "track_artist") if c not in catalog.columns]
        if missing:
            raise SchemaError(f"catalogue: missing column(s) {', '.join(missing)} (need track_id, "
                              "track_name, track_artist to match files by their tags)")
        self.config = config or MatchConfig()
        cat = catalog.drop_duplicates("track_id").reset_index(drop=True)
        self.ids = cat["track_id"].astype(str).tolist()
        self.names = cat["track_name"].astype("string").fillna("").tolist()
        self.artists_raw = cat["track_artist"].astype("string").fillna("").tolist()
        dur = (pd.to_numeric(cat["duration_ms"], errors="coerce") / 1000.0 if "duration_ms" in cat.columns
               else pd.Series(float("nan"), index=cat.index))
        self.durations = dur.tolist()
        self.titles: list[str] = []
        self.artists: list[list[str]] = []
        self.live: list[bool] = []
        for name, artist in zip(self.names, self.artists_raw):
            t, feat, live = split_title(name)
            self.titles.append(t)
            self.artists.append(split_artists(artist) + feat)
            self.live.append(live)
        self.by_title: dict[str, list[int]] = {}
        for i, t in enumerate(self.titles):
            if t:
                self.by_title.setdefault(t, []).append(i)
        self.by_isrc: dict[str, list[int]] = {}
        col = next((c for c in ("track_isrc", "isrc") if c in cat.columns), None)
        if col is not None:
            for i, v in enumerate(cat[col].tolist()):
                code = _isrc(v)
                if code:
                    self.by_isrc.setdefault(code, []).append(i)

    def _duration_ok(self, i: int, seconds: float | None) -> tuple[bool, float | None]:
        d = self.durations[i]
        if seconds is None or d is None or not math.isfinite(d):
            return True, None
        diff = seconds - d
        return abs(diff) <= max(self.config.duration_s, self.config.duration_frac * d), diff

    def _score(self, i: int, title: str, artists: list[str], live: bool) -> tuple[float, float, float]:
        from rapidfuzz import fuzz

        ts = float(fuzz.ratio(title, self.titles[i]))
        if _DIGITS.findall(title) != _DIGITS.findall(self.titles[i]):
            ts = min(ts, 50.0)  # "Song 2" is not "Song 21": numbers in titles are significant
        other = self.artists[i]
        # one side's main artist must be among the other's artists (a shared featured artist is not enough),
        # or all the artists agree as a bag of words ("Earth, Wind & Fire" = "Earth Wind and Fire")
        main = max([fuzz.ratio(artists[0], y) for y in other] + [fuzz.ratio(x, other[0]) for x in artists],
                   default=0.0) if other else 0.0
        ars = float(max(main, fuzz.token_sort_ratio(" ".join(artists), " ".join(other))))
        total = 0.6 * ts + 0.4 * ars - (self.config.live_penalty if live != self.live[i] else 0.0)
        return total, ts, ars

    def match(self, tags: FileTags) -> tuple[dict | None, str | None]:
        """The best catalogue row for one file (a match dict) or ``(None, reason)``."""
        from rapidfuzz import fuzz, process

        c = self.config
        if tags.error:
            return None, tags.error
        isrc_note = None
        if tags.isrc and tags.isrc in self.by_isrc:
            rows = self.by_isrc[tags.isrc]
            ok = [(i, self._duration_ok(i, tags.duration_s)) for i in rows]
            good = [(i, d) for i, (fine, d) in ok if fine]
            if good:
                i, diff = min(good, key=lambda x: abs(x[1] or 0.0))
                return self._row(i, tags, "isrc", 100.0, diff), None
            isrc_note = f"ISRC {tags.isrc} is {self.ids[rows[0]]} but the duration differs " \
                        f"({_mmss(tags.duration_s)} vs {_mmss(self.durations[rows[0]])})"
        if not tags.title or not tags.artist:
            return None, isrc_note or ("no title/artist tags and the file name is not 'Artist - Title'"
                                       if not tags.isrc else f"ISRC {tags.isrc} not in the catalogue and "
                                       "no title/artist tags")
        title, feat, live = split_title(tags.title)
        artists = split_artists(tags.artist) + feat
        if not title or not artists:
            return None, "title or artist is empty after normalisation"
        cand = set(self.by_title.get(title, []))
        for _, _, i in process.extract(title, self.titles, scorer=fuzz.ratio, limit=c.candidates,
                                       score_cutoff=c.min_title - 10):
            cand.add(int(i))
        if not cand:
            return None, isrc_note or f"no catalogue title like {tags.title!r}"
        min_t = c.min_filename if tags.from_filename else c.min_title
        min_a = c.min_filename if tags.from_filename else c.min_artist
        passed: list[tuple[tuple, int, float, float | None]] = []
        why = None
        for i in cand:
            total, ts, ars = self._score(i, title, artists, live)
            if ts < min_t:
                why = why or f"closest title {self.names[i]!r} ({ts:.0f} < {min_t:.0f})"
                continue
            if ars < min_a:
                why = f"title {self.names[i]!r} found but by {self.artists_raw[i]!r}, not {tags.artist!r}"
                continue
            fine, diff = self._duration_ok(i, tags.duration_s)
            if not fine:
                why = (f"{self.names[i]!r} by {self.artists_raw[i]!r} found but the duration differs "
                       f"({_mmss(tags.duration_s)} vs {_mmss(self.durations[i])})")
                continue
            passed.append(((round(total, 1), -abs(diff or 0.0)), i, total, diff))
        if not passed:
            return None, isrc_note or why or "no match"
        passed.sort(key=lambda x: x[0], reverse=True)
        _, i, total, diff = passed[0]
        rivals = [j for _, j, t, _ in passed[1:] if t >= total - 1.0 and sorted(self.artists[j])
                  != sorted(self.artists[i])]
        if rivals:  # equally good songs by different artists: better no match than a wrong one
            return None, (f"ambiguous: {self.names[i]!r} by {self.artists_raw[i]!r} or by "
                          f"{self.artists_raw[rivals[0]]!r}")
        if total < min(min_t, min_a):
            return None, f"best candidate {self.names[i]!r} scores {total:.0f}"
        return self._row(i, tags, "filename" if tags.from_filename else "tags", round(total, 1), diff), None

    def _row(self, i: int, tags: FileTags, method: str, score: float, diff: float | None) -> dict:
        return {"track_id": self.ids[i], "file": tags.file, "method": method, "score": score,
                "file_title": tags.title, "file_artist": tags.artist, "track_name": self.names[i],
                "track_artist": self.artists_raw[i],
                "duration_diff_s": None if diff is None else round(float(diff), 2)}


def _mmss(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def audio_files(audio_dir: str | os.PathLike) -> list[Path]:
    """Audio files under ``audio_dir`` (recursive, by extension, hidden files skipped), sorted."""
    from ..audio.load import AUDIO_SUFFIXES

    root = Path(audio_dir)
    if not root.is_dir():
        raise InputError(f"{root}: audio directory not found")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                  and not p.name.startswith("."))


def match_folder(catalog: pd.DataFrame, audio_dir: str | os.PathLike, *,
                 config: MatchConfig | None = None, progress: bool = False) -> MatchResult:
    """Match every audio file under ``audio_dir`` to ``catalog`` (one row per track)."""
    from tqdm.auto import tqdm

    files = audio_files(audio_dir)
    if not files:
        raise InputError(f"{audio_dir}: no audio files found")
    matcher = Matcher(catalog, config)
    found, missed = [], []
    for p in tqdm(files, desc="matching", unit="file", disable=not progress):
        tags = read_tags(p, root=audio_dir)
        row, reason = matcher.match(tags)
        if row is None:
            missed.append({"file": tags.file, "reason": reason, "file_title": tags.title,
                           "file_artist": tags.artist})
        else:
            found.append(row)
    matches = pd.DataFrame(found, columns=list(MATCH_COLUMNS))
    unmatched = pd.DataFrame(missed, columns=list(UNMATCHED_COLUMNS))
    methods = matches["method"].value_counts().to_dict() if len(matches) else {}
    return MatchResult(matches, unmatched, len(files), {str(k): int(v) for k, v in methods.items()})
