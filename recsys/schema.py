"""Column names every module shares: the 12 statistics, their ranges, metadata and bookkeeping columns.

One small module the rest imports, so a column is spelled in one place.
"""
from __future__ import annotations

#: The 12 audio statistics of Spotify's audio-features endpoint, in a fixed order.
STATS: tuple[str, ...] = (
    "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
    "instrumentalness", "liveness", "valence", "tempo", "duration_ms",
)

#: Valid ranges; a value outside is a data error, not something to learn from.
STAT_RANGES: dict[str, tuple[float, float]] = {
    "danceability": (0, 1), "energy": (0, 1), "key": (-1, 11), "loudness": (-80, 10), "mode": (0, 1),
    "speechiness": (0, 1), "acousticness": (0, 1), "instrumentalness": (0, 1), "liveness": (0, 1),
    "valence": (0, 1), "tempo": (0, 400), "duration_ms": (0, 3.6e7),
}

TEXT_COLUMNS = ("track_name", "track_artist", "track_album_name", "track_album_release_date",
                "playlist_name", "playlist_genre", "playlist_subgenre", "genre")
NUMERIC_META = ("track_popularity", "release_year")
#: Columns a merged track keeps as lists (one entry per distinct value across its rows).
LABEL_LISTS = {"playlist_genre": "genres", "playlist_subgenre": "subgenres", "playlist_name": "playlists"}
#: Catalogue metadata the tabular block adds beside the statistics (era and popularity of a track).
METADATA: tuple[str, ...] = ("release_year", "track_popularity")
#: Bookkeeping columns of an audio feature Parquet; everything else numeric is a feature.
META_COLUMNS: tuple[str, ...] = ("file", "track_id", "ok", "reason")
#: Track columns an index keeps for display, metadata sources and the map.
TRACK_COLUMNS: tuple[str, ...] = ("track_id", "track_name", "track_artist", "track_album_id",
                                  "track_album_name", "track_popularity", "release_year", "parent_genre",
                                  "source")
