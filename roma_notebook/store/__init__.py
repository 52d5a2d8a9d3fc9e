"""Rows from and to files: recordings, loading (recordings, Parquet exports, ROMA-01 log folders and SQLite stores), Parquet, dask, the bundled sample.

See docs/ARCHITECTURE.md for the layers and the path of a frame."""

__all__: list[str] = []
