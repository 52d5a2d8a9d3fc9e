"""A server that speaks what the real backends speak: the simulator's server, its sources (seeded market, replay) and the SQLite store writer.

See docs/ARCHITECTURE.md for the layers and the path of a frame."""

__all__: list[str] = []
