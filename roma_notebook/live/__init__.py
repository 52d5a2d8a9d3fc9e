"""Rows from a live backend: the background loop, the streams (connect, reconnect, stall watch), REST and backfill.

See docs/ARCHITECTURE.md for the layers and the path of a frame."""

__all__: list[str] = []
