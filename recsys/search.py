"""Track search: an SQLite FTS5 table over title, artist and album (``search.sqlite`` in the index).

Accent- and case-folded (``unicode61 remove_diacritics 2``); the last query word is a prefix. Ranking:
exact titles first, then titles that start with the query, then the rest; within each tier bm25
(title weighted over artist over album) plus ``PRIOR_WEIGHT * prior`` (log plays + catalogue
popularity / 100), so a popular match beats an obscure one of similar relevance.
"""
from __future__ import annotations

import math
import re
import sqlite3
import threading
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import IndexFormatError, InputError

SEARCH_FILE = "search.sqlite"
TOKENIZE = "unicode61 remove_diacritics 2"
#: bm25 column weights: title, artist, album.
BM25_WEIGHTS = (4.0, 2.0, 1.0)
#: How much one unit of prior (about e-fold plays, or 100 popularity points) is worth against bm25.
PRIOR_WEIGHT = 1.0
#: FTS matches ranked per query, met in descending prior (the rest of a common word's matches is skipped).
CANDIDATES = 300
K1, B = 1.2, 0.75  # Okapi bm25
MAX_QUERY_TOKENS = 12
_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: object) -> list[str]:
    """Lower-cased, accent-free word tokens, split like FTS5's unicode61 tokenizer."""
    if not isinstance(text, str):
        return []
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _TOKEN.findall(folded)


def key(text: object) -> str:
    """The comparison key of a title: its tokens joined by single spaces."""
    return " ".join(tokens(text))


def priors(*, plays: np.ndarray, popularity: np.ndarray | None = None) -> np.ndarray:
    """Per-row prior: log(1 + plays) + catalogue popularity / 100 (missing popularity counts 0)."""
    p = np.log1p(np.maximum(np.asarray(plays, dtype=np.float64), 0.0))
    if popularity is not None:
        p = p + np.nan_to_num(np.asarray(popularity, dtype=np.float64), nan=0.0) / 100.0
    return p


def _text(values: Sequence, n: int) -> list[str]:
    if values is None:
        return [""] * n
    return ["" if v is None or (isinstance(v, float) and math.isnan(v)) or not isinstance(v, str) else v
            for v in values]


def _insert(conn: sqlite3.Connection, *, start: int, rids: np.ndarray, titles, artists, albums,
            prior) -> None:
    """Rows ``start..start+n-1`` of the engine stored under FTS rowids ``rids``."""
    n = len(prior)
    t, a, b = _text(titles, n), _text(artists, n), _text(albums, n)
    rids = [int(r) for r in rids]
    conn.executemany("INSERT INTO fts(rowid, title, artist, album) VALUES (?, ?, ?, ?)", zip(rids, t, a, b))
    conn.executemany("INSERT INTO track VALUES (?, ?, ?, ?, ?, ?)",
                     zip(rids, range(start, start + n), map(key, t), map(key, a), map(key, b),
                         np.asarray(prior, dtype=np.float64).tolist()))


def _statistics(conn: sqlite3.Connection) -> None:
    """(Re)write the document frequency of every term and the mean field lengths (for bm25)."""
    conn.executescript("""
        DROP TABLE IF EXISTS term; DROP TABLE IF EXISTS field;
        CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, 'fts', 'row');
        CREATE TABLE term(term TEXT PRIMARY KEY, doc INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO term SELECT term, doc FROM temp.vocab;
        DROP TABLE temp.vocab;
        CREATE TABLE field(name TEXT PRIMARY KEY, mean_tokens REAL NOT NULL);
    """)
    n = max(1, int(conn.execute("SELECT count(*) FROM track").fetchone()[0]))
    for col in ("title", "artist", "album"):
        total = 0
        for (k,) in conn.execute(f"SELECT {col}_key FROM track"):
            total += k.count(" ") + 1 if k else 0
        conn.execute("INSERT INTO field VALUES (?, ?)", (col, max(total / n, 1.0)))


_SCHEMA = f"""
    CREATE VIRTUAL TABLE fts USING fts5(title, artist, album, tokenize='{TOKENIZE}', prefix='1 2 3',
                                        detail=column);
    CREATE TABLE track(rid INTEGER PRIMARY KEY, row INTEGER NOT NULL, title_key TEXT NOT NULL,
                       artist_key TEXT NOT NULL, album_key TEXT NOT NULL, prior REAL NOT NULL);
"""


def build(*, titles: Sequence, artists: Sequence | None, albums: Sequence | None,
          prior: np.ndarray) -> "SearchIndex":
    """A new in-memory search index over rows 0..n-1 (``prior`` from :func:`priors`).

    FTS rowids follow descending prior, so a scan of a common word's matches meets popular tracks first.
    """
    prior = np.asarray(prior, dtype=np.float64)
    n = len(prior)
    rids = np.empty(n, dtype=np.int64)
    rids[np.argsort(-prior, kind="stable")] = np.arange(n)
    conn = sqlite3.connect(":memory:")
    conn.executescript(_SCHEMA)
    with conn:
        _insert(conn, start=0, rids=rids, titles=titles, artists=artists, albums=albums, prior=prior)
        conn.execute("CREATE INDEX track_title ON track(title_key, prior DESC)")
        conn.execute("INSERT INTO fts(fts) VALUES ('optimize')")
        _statistics(conn)
    data = conn.serialize()
    conn.close()
    return SearchIndex(data)


def _bm25(field: str, needles: list[str], idf: list[float], mean: float) -> float:
    """Okapi bm25 of one field's key; ``needles`` are " tok " (whole word) or " tok" (the prefix)."""
    if not field:
        return 0.0
    padded = " " + field.replace(" ", "  ") + " "  # every token between its own two spaces
    norm = K1 * (1.0 - B + B * (field.count(" ") + 1) / mean)
    score = 0.0
    for needle, w in zip(needles, idf):
        tf = padded.count(needle)
        if tf:
            score += w * tf * (K1 + 1.0) / (tf + norm)
    return score


class SearchIndex:
    """Read-only queries over a search database (a file, or serialized bytes); one connection per thread."""

    def __init__(self, source: Path | bytes) -> None:
        self.source = source
        self._local = threading.local()
        self.n = int(self._conn().execute("SELECT count(*) FROM track").fetchone()[0])

    @classmethod
    def open(cls, path: str | Path) -> "SearchIndex":
        """Open ``path`` read-only; a missing or unreadable file is an IndexFormatError."""
        path = Path(path)
        if not path.exists():
            raise IndexFormatError(f"{path}: missing from index directory")
        try:
            return cls(path)
        except sqlite3.Error as exc:
            raise IndexFormatError(f"{path}: not a search database ({exc})") from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if isinstance(self.source, bytes):
                conn = sqlite3.connect(":memory:", check_same_thread=False)
                conn.deserialize(self.source)
            else:
                conn = sqlite3.connect(f"file:{self.source}?mode=ro", uri=True, check_same_thread=False)
                conn.execute("PRAGMA mmap_size = 1073741824")  # read pages through the page cache
            conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
        return conn

    def serialize(self) -> bytes:
        """The whole database as bytes (what :meth:`save` writes)."""
        if isinstance(self.source, bytes):
            return self.source
        return Path(self.source).read_bytes()

    def save(self, path: str | Path) -> None:
        """Write the database to ``path`` atomically."""
        from .io import write_bytes

        write_bytes(path, self.serialize())

    def extended(self, *, titles: Sequence, artists: Sequence | None, albums: Sequence | None,
                 prior: np.ndarray) -> "SearchIndex":
        """A new in-memory index with rows n.. appended (``Engine.add_tracks``)."""
        conn = sqlite3.connect(":memory:")
        conn.deserialize(self.serialize())
        top = int(conn.execute("SELECT coalesce(max(rid), -1) FROM track").fetchone()[0])
        with conn:  # new rows go after every existing one: they are found, popular rows are met first
            _insert(conn, start=self.n, rids=np.arange(top + 1, top + 1 + len(prior)), titles=titles,
                    artists=artists, albums=albums, prior=prior)
            _statistics(conn)
        data = conn.serialize()
        conn.close()
        return SearchIndex(data)

    def _idf(self, conn: sqlite3.Connection, toks: list[str]) -> list[float]:
        out = []
        for i, t in enumerate(toks):
            if i == len(toks) - 1:  # a prefix: the most frequent term it covers (a lower bound on the idf)
                got = conn.execute("SELECT max(doc) FROM term WHERE term >= ? AND term < ?",
                                   (t, t + "\U0010ffff")).fetchone()
            else:
                got = conn.execute("SELECT doc FROM term WHERE term = ?", (t,)).fetchone()
            df = float(got[0]) if got and got[0] is not None else 0.0
            out.append(math.log(1.0 + (self.n - df + 0.5) / (df + 0.5)))
        return out

    def search(self, query: str, k: int = 20) -> list[int]:
        """Rows matching ``query`` (every word; the last one as a prefix), best first, at most ``k``.

        Up to ``CANDIDATES`` matches are ranked, met in descending prior; with more matches than
        that (a common word) the less popular ones are not considered, except for exact titles.
        """
        if not isinstance(query, str):
            raise InputError(f"search query must be a string, got {type(query).__name__}")
        toks = tokens(query)[:MAX_QUERY_TOKENS]
        if not toks:
            return []
        qkey = " ".join(toks)
        match = " ".join([*(f'"{t}"' for t in toks[:-1]), f'"{toks[-1]}"*'])
        conn = self._conn()
        found = conn.execute(
            "SELECT t.row, t.title_key, t.artist_key, t.album_key, t.prior FROM (SELECT rowid AS rid "
            "FROM fts WHERE fts MATCH ? LIMIT ?) AS m JOIN track AS t ON t.rid = m.rid",
            (match, max(CANDIDATES, k))).fetchall()
        exact = conn.execute("SELECT row, prior FROM track WHERE title_key = ? ORDER BY prior DESC LIMIT ?",
                             (qkey, k)).fetchall()
        scored: dict[int, tuple] = {row: (0, -prior, row) for row, prior in exact}
        if found:
            idf = self._idf(conn, toks)
            mean = self._means(conn)
            w = BM25_WEIGHTS
            needles = [f" {t} " for t in toks[:-1]] + [f" {toks[-1]}"]
            for row, title, artist, album, prior in found:
                if row in scored:
                    continue
                if title == qkey:  # an exact title beyond the k the lookup returned
                    scored[row] = (0, -prior, row)
                    continue
                bm = (w[0] * _bm25(title, needles, idf, mean[0]) + w[1] * _bm25(artist, needles, idf, mean[1])
                      + w[2] * _bm25(album, needles, idf, mean[2]))
                scored[row] = (1 if title.startswith(qkey) else 2, -(bm + PRIOR_WEIGHT * prior), row)
        return [row for row, _ in sorted(scored.items(), key=lambda kv: kv[1])[:k]]

    def _means(self, conn: sqlite3.Connection) -> tuple[float, float, float]:
        m = getattr(self._local, "means", None)
        if m is None:
            got = dict(conn.execute("SELECT name, mean_tokens FROM field").fetchall())
            m = self._local.means = (got["title"], got["artist"], got["album"])
        return m


def for_tracks(tracks, plays: np.ndarray) -> SearchIndex:
    """The search index of an engine's track table (rows in table order) and per-row plays."""
    return build(**_columns(tracks, plays))


def extend_for_tracks(index: SearchIndex, tracks, plays: np.ndarray) -> SearchIndex:
    """``index`` with the rows of ``tracks`` (appended to the engine's table) added."""
    return index.extended(**_columns(tracks, plays))


def _columns(tracks, plays: np.ndarray) -> dict:
    def col(name):
        return tracks[name].astype(object).tolist() if name in tracks.columns else None

    pop = (tracks["track_popularity"].to_numpy(dtype=np.float64)
           if "track_popularity" in tracks.columns else None)
    return {"titles": col("track_name") or [""] * len(tracks), "artists": col("track_artist"),
            "albums": col("track_album_name"), "prior": priors(plays=plays, popularity=pop)}
