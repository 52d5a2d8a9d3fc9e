"""The quant API every source shares: a live stream, a group of them, a recording.

``AgentStream``, ``StreamGroup`` and ``Recording`` all serve the same tables (see
:class:`~roma_notebook.core.tables.TableProperties`) and, through :class:`SourceAPI`, the
same methods with the same result types: ``metrics()``, ``leaderboard()`` (a ranked
projection of the metrics), ``stats()`` (a DataFrame, one row per agent), ``report()``,
``dashboard()`` and ``to_parquet()``. A source only says how to describe its agents'
traffic (``_stats_rows``) and which dashboard shows it. Units follow one rule: a
percent only in a column whose name ends in ``_pct``.

Example:
    >>> import roma_notebook as rn
    >>> rec = rn.load(rn.sample_path())                       # doctest: +SKIP
    >>> rec.leaderboard()[["rank", "return_pct", "sharpe"]]   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .core.tables import TableProperties

__all__ = ["SourceAPI", "STATS_COLUMNS", "stats_frame"]

_UTC = "datetime64[ns, UTC]"

#: ``stats()`` columns and dtypes, the same for every source (index: ``agent_id``).
#: ``rate`` is messages per second over the last ~10 s (NaN for a recording);
#: ``drops``/``duplicates`` are rows dropped by ``max_rows``/refused as repeats (NA
#: where a recording of several agents cannot tell whose they were).
STATS_COLUMNS: dict[str, str] = {
    "state": "string",
    "messages": "int64",
    "rate": "float64",
    "last_message_at": _UTC,
    "reconnects": "int64",
    "errors": "int64",
    "server_errors": "int64",
    "drops": "Int64",
    "duplicates": "Int64",
    "callback_drops": "int64",
}

def stats_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of per-agent statistics as the one ``stats()`` DataFrame (see STATS_COLUMNS)."""
    index = pd.Index([r["agent_id"] for r in rows], dtype="string", name="agent_id")
    cols = {}
    for col, dtype in STATS_COLUMNS.items():
        values = [r.get(col) for r in rows]
        if dtype == _UTC:
            cols[col] = pd.to_datetime(pd.Series(values, index=index, dtype="object"), utc=True).astype(_UTC)
        else:
            cols[col] = pd.Series([pd.NA if v is None else v for v in values], index=index,
                                  dtype=dtype if dtype != "int64" else "Int64").astype(dtype)
    return pd.DataFrame(cols, index=index)


class SourceAPI(TableProperties):
    """Methods shared by every source of tables (see the module docstring)."""

    def _stats_rows(self) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def stats(self) -> pd.DataFrame:
        """Traffic per agent: one row per agent, the columns of :data:`STATS_COLUMNS`.

        ``state``, ``messages`` (frames received), ``rate`` (msg/s over the last ~10 s),
        ``last_message_at``, ``reconnects``, ``errors`` (``errors`` rows),
        ``server_errors`` (the server's own error frames), ``drops``, ``duplicates`` and
        ``callback_drops``. Per-table figures (rows, bytes, drops) are
        ``source.tables.stats()``.

        Example:
            >>> stream.stats().loc["deepseek-chat-v3.1", "messages"]   # doctest: +SKIP
        """
        return stats_frame(self._stats_rows())

    def metrics(self, **kw: Any) -> pd.DataFrame:
        """Performance metrics, one row per agent (:func:`roma_notebook.analysis.analytics.metrics`)."""
        from .analysis.analytics import metrics  # lazy: analytics is not needed to stream

        return metrics(self, **kw)

    def leaderboard(self, *, by: str = "return_pct", **kw: Any) -> pd.DataFrame:
        """Agents ranked by ``by`` (:func:`roma_notebook.analysis.analytics.leaderboard`)."""
        from .analysis.analytics import leaderboard

        return leaderboard(self, by=by, **kw)

    def report(self, **kw: Any) -> Any:
        """Metrics, charts, skill and audit in one output (:func:`roma_notebook.analysis.analytics.report`)."""
        from .analysis.analytics import report

        return report(self, **kw)

    def to_parquet(self, directory: Any, **kw: Any) -> Any:
        """Export every table as hive-partitioned Parquet (:func:`roma_notebook.store.parquet.to_parquet`)."""
        from .store.parquet import to_parquet

        return to_parquet(self, directory, **kw)

    def dashboard(self, **kw: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError
