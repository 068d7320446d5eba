"""Seeded synthetic material for tests and benchmarks: audio with known properties, catalogues, fake Spotify.

Nothing here is used at run time; it lives in the package so tests and scripts import it like any
other module instead of editing ``sys.path``.
"""
