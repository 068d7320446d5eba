"""Spotify Web API integration through spotipy: import playlists and liked songs as catalogue
rows, label them from playlists and artist genres, and write per-genre playlists back.

Spotify's Developer Policy forbids training machine-learning models on Spotify content: use
imported rows to label and sort a user's own library, and train models on the user's own data
or public datasets only.
"""
from __future__ import annotations

__all__ = ["SpotifyConfig", "SpotifyClient", "Credentials", "Importer", "ImportConfig", "PlaylistSpec"]


def __getattr__(name: str):  # lazy: keep `import recsys.spotify` cheap
    if name in ("SpotifyConfig", "SpotifyClient", "Credentials"):
        from . import client

        return getattr(client, name)
    if name in ("Importer", "ImportConfig"):
        from . import importer

        return getattr(importer, name)
    if name == "PlaylistSpec":
        from .labels import PlaylistSpec

        return PlaylistSpec
    raise AttributeError(name)
