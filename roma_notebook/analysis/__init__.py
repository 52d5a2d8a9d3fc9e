"""Pure functions of the tables: metrics, leaderboards, skill or luck, decision outcomes, the audit, ROMA-01's own formulas.

See docs/ARCHITECTURE.md for the layers and the path of a frame."""

__all__: list[str] = []
