"""Rows to pixels: dashboards, their refresh scheduler, series, HTML parts, formatting, zoom and decimation.

See docs/ARCHITECTURE.md for the layers and the path of a frame."""

__all__: list[str] = []
