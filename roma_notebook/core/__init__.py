"""Frames to rows: the protocol's three dialects (sans-I/O), times, the table schema and the single writer of the tables.

See docs/ARCHITECTURE.md for the layers and the path of a frame."""

__all__: list[str] = []
