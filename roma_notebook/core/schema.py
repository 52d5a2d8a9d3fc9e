"""Every table's columns, dtypes and meanings, in one place.

This module is the one declaration of the tables :class:`~roma_notebook.core.tables.Tables`
fills: their names, their columns in order, each column's dtype and what it means
(with its unit). Everything else derives from it: the writer's buffers, empty
frames, Parquet export and import, dask reads, analytics' normalisation, the tests
and the README's table of tables (``tests/test_schema.py`` compares them).

Plain data: importing it does not import pandas; :func:`empty_frame` and
:func:`describe` do, on first use.

A column's *kind* is one letter, a dtype plus how the writer stores it:

====  =======================  =================================================
kind  dtype                    stored as
====  =======================  =================================================
f     float64                  floats, NaN when missing (never 0)
q     int64                    ints, never missing
i     Int64 (nullable)         ints, ``<NA>`` when missing
t     datetime64[ns, UTC]      ns since the epoch, ``NaT`` when missing
b     boolean (nullable)       ``<NA>`` when missing
s     string (``<NA>``)        free text, one string per row
c     string (``<NA>``)        repeated values (ids, symbols), stored as codes
o     object                   a Python list per row
====  =======================  =================================================

Units: money is USDT (the quote currency), prices are USDT per unit of the base
asset, quantities are units of the base asset. A percent (0..100) belongs in a
column whose name ends ``_pct``; the columns named by :data:`PERCENT_NOT_PCT` are
percents under other names because they keep ROMA-01's own field names.

Example:
    >>> from roma_notebook import schema
    >>> schema.columns("cycles")
    ('agent_id', 'timestamp', 'received_at', 'seq', 'cycle', 'ai_reasoning', 'n_decisions', 'source')
    >>> schema.dtypes("cycles")["n_decisions"]
    'int64'
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "UTC",
    "KIND_DTYPE",
    "TABLES",
    "ROW",
    "TABLE_NAMES",
    "TABLE_COLUMNS",
    "PERCENT_NOT_PCT",
    "columns",
    "dtypes",
    "kinds",
    "meanings",
    "empty_frame",
    "describe",
]

UTC = "datetime64[ns, UTC]"

#: kind letter -> pandas dtype
KIND_DTYPE: dict[str, str] = {
    "f": "float64",
    "q": "int64",
    "i": "Int64",
    "t": UTC,
    "b": "boolean",
    "s": "string",
    "c": "string",
    "o": "object",
}

# (column, kind, meaning); every table starts with _COMMON and ends with _SOURCE
_COMMON = (
    ("agent_id", "c", "the agent's id, as the backend names it"),
    ("timestamp", "t", "the message's own time (UTC); received_at when it has none or an unusable one"),
    ("received_at", "t", "when the client received the frame (client clock, UTC)"),
    ("seq", "q", "number of the frame in its agent's stream, in arrival order"),
)
_SOURCE = (
    ("source", "c",
     "where the row came from: live, backfill (REST), log, store (SQLite), derived (an estimated fill)"),
)
_POSITION = (
    ("symbol", "c", "instrument, e.g. BTCUSDT"),
    ("side", "c", "long or short"),
    ("position_amt", "f", "position size, units of the base asset"),
    ("entry_price", "f", "average entry price, USDT"),
    ("mark_price", "f", "exchange mark price, USDT"),
    ("unrealized_profit", "f", "unrealised P&L at the mark price, USDT"),
    ("pnl_percentage", "f", "unrealised P&L as the backend reports it, percent (NaN when it sends none)"),
    ("leverage", "i", "leverage, times"),
    ("liquidation_price", "f", "price at which the exchange liquidates the position, USDT"),
)

#: table name -> ((column, kind, meaning), ...) for the columns beyond the common ones
TABLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "account": (
        ("total_balance", "f", "account value: wallet balance plus unrealised P&L, USDT"),
        ("available_balance", "f", "balance free for new margin, USDT"),
        ("unrealized_pnl", "f", "unrealised P&L of the open positions, USDT"),
        ("used_percentage", "f", "margin in use, percent of total_balance"),
        ("adjusted_balance", "f",
         "ROMA-01's balance net of the deposits it infers, USDT (not the account value; docs/roma01.md)"),
    ),
    "positions": _POSITION,
    "position_history": _POSITION,
    "cycles": (
        ("cycle", "i", "the agent's cycle number (counts from 1 again after a backend restart)"),
        ("ai_reasoning", "s", "the model's reasoning for the cycle, text"),
        ("n_decisions", "q", "number of decision items (decisions rows) in the cycle, count"),
    ),
    "decisions": (
        ("cycle", "i", "the cycle this decision belongs to"),
        ("action", "c", "what the model decided, e.g. open_long, close_short, hold, wait"),
        ("symbol", "c", "instrument, e.g. BTCUSDT"),
        ("quantity", "f", "quantity to trade, units of the base asset"),
        ("leverage", "i", "leverage asked for, times"),
        ("reason", "s", "the model's reason for this item, text"),
        ("position_size_usd", "f", "position size asked for, USDT"),
        ("stop_loss", "f", "stop-loss price, USDT"),
        ("take_profit", "f", "take-profit price, USDT"),
        ("confidence", "f", "the model's stated confidence, fraction 0..1"),
        ("close_quantity_pct", "f", "share of the position a close closes, percent 0..100"),
    ),
    "trades": (
        ("order_id", "s", "the exchange's order id (missing for an estimated fill)"),
        ("symbol", "c", "instrument, e.g. BTCUSDT"),
        ("side", "c", "direction of the fill: long (buy) or short (sell)"),
        ("quantity", "f", "quantity filled, units of the base asset"),
        ("price", "f", "fill price, USDT"),
        ("leverage", "i", "leverage, times"),
        ("status", "c", "order status, e.g. filled (estimated for a derived fill)"),
    ),
    "closed_trades": (
        ("symbol", "c", "instrument, e.g. BTCUSDT"),
        ("side", "c", "side of the closed position: long or short"),
        ("entry_price", "f", "average entry price, USDT"),
        ("close_price", "f", "close price, USDT"),
        ("quantity", "f", "quantity closed, units of the base asset"),
        ("leverage", "i", "leverage, times"),
        ("open_time", "t", "when the position was opened (UTC)"),
        ("close_time", "t", "when the position was closed (UTC)"),
        ("pnl_usdt", "f", "realised P&L, USDT (ROMA-01's own rows count leverage twice; docs/roma01.md)"),
        ("pnl_pct", "f", "realised price move, percent, signed by side"),
    ),
    "status": (
        ("is_running", "b", "whether the agent is running"),
        ("cycle_count", "i", "cycles the agent has started (failed ones included), count"),
        ("last_decision_time", "t", "time of the agent's last decision (UTC)"),
        ("name", "c", "the agent's display name"),
        ("runtime_minutes", "f", "how long the agent has run, minutes"),
    ),
    "performance": (
        ("total_trades", "i", "closed trades the backend counted, count"),
        ("wins", "i", "winning trades, count"),
        ("losses", "i", "losing trades, count"),
        ("win_rate", "f", "wins / total_trades, percent 0..100 (as ROMA-01 reports it)"),
        ("avg_profit", "f", "mean P&L of the winning trades, USDT"),
        ("avg_loss", "f", "mean absolute P&L of the losing trades, USDT"),
        ("profit_factor", "f", "gross profit / gross loss, ratio (inf with no losses)"),
        ("sharpe_ratio", "f", "mean / standard deviation of per-trade P&L, ratio"),
        ("max_drawdown", "f", "largest drawdown of the backend's P&L curve, percent"),
        ("total_pnl", "f", "sum of the trades' P&L, USDT"),
        ("best_trade", "f", "P&L of the best trade, USDT"),
        ("worst_trade", "f", "P&L of the worst trade, USDT"),
    ),
    "errors": (
        ("kind", "c", "what went wrong, e.g. not_json, bad_field, unknown_type, server_error, file"),
        ("detail", "s", "what exactly, text"),
        ("raw", "s", "the start of the offending frame (at most RAW_LIMIT characters), text"),
        ("message_type", "c", "the frame's type, when it had a readable one"),
    ),
    "connections": (
        ("event", "c", "connected, disconnected, reconnecting or failed"),
        ("detail", "s", "the URL, close code or reason, text"),
    ),
    # ROMA-01's own trade-history analysis (current backend: SQLite store, REST)
    "insights": (
        ("insight_id", "s", "the insight's id in the backend"),
        ("category", "c", "the insight's category, e.g. exit_timing"),
        ("title", "s", "one-line title, text"),
        ("summary", "s", "summary, text"),
        ("detailed_findings", "s", "findings, text"),
        ("confidence", "f", "the backend's confidence score, fraction 0..1"),
        ("recommendations", "o", "recommendations, a list of strings"),
        ("supporting_trade_ids", "o", "ROMA-01's ids of the trades behind it, a list of strings"),
        ("is_active", "b", "whether the insight is still active"),
        ("created_at", "t", "when the backend created it (UTC)"),
        ("deprecated_at", "t", "when the backend retired it (UTC; NaT while active)"),
    ),
}

#: table name -> what one row is
ROW: dict[str, str] = {
    "account": "account update",
    "positions": "open position now",
    "position_history": "position in any position update",
    "cycles": "decision message",
    "decisions": "action in a decision message",
    "trades": "fill (`trade_executed`)",
    "closed_trades": "round trip with realised P&L",
    "status": "agent status",
    "performance": "performance snapshot",
    "errors": "frame that could not be used",
    "connections": "connection event",
    "insights": "insight of ROMA-01's trade-history analysis",
}

#: (table, column) holding a percent under a name not ending ``_pct``: ROMA-01's own
#: field names, kept because users and the backend's docs use them
PERCENT_NOT_PCT: tuple[tuple[str, str], ...] = (
    ("account", "used_percentage"),
    ("positions", "pnl_percentage"),
    ("position_history", "pnl_percentage"),
    ("performance", "win_rate"),
    ("performance", "max_drawdown"),
)

TABLE_NAMES: tuple[str, ...] = tuple(TABLES)

_FULL: dict[str, tuple[tuple[str, str, str], ...]] = {
    name: _COMMON + cols + _SOURCE for name, cols in TABLES.items()
}

#: table name -> its column names in order (common ones first, ``source`` last)
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c for c, _, _ in cols) for name, cols in _FULL.items()
}


def _spec(name: str) -> tuple[tuple[str, str, str], ...]:
    try:
        return _FULL[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}; tables are {', '.join(TABLE_NAMES)}") from None


def columns(name: str) -> tuple[str, ...]:
    """The column names of table ``name``, in order."""
    _spec(name)
    return TABLE_COLUMNS[name]


def kinds(name: str) -> tuple[tuple[str, str], ...]:
    """``((column, kind), ...)`` of table ``name``, in order (kinds: :data:`KIND_DTYPE`)."""
    return tuple((c, k) for c, k, _ in _spec(name))


def dtypes(name: str) -> dict[str, str]:
    """``{column: dtype}`` of table ``name``, in column order (dtype names pandas accepts)."""
    return {c: KIND_DTYPE[k] for c, k, _ in _spec(name)}


def meanings(name: str) -> dict[str, str]:
    """``{column: meaning}`` of table ``name``: one line each, with the unit."""
    return {c: m for c, _, m in _spec(name)}


_EMPTY: dict[str, Any] = {}


def empty_frame(name: str) -> Any:
    """A 0-row DataFrame with the columns and dtypes of table ``name``."""
    df = _EMPTY.get(name)
    if df is None:  # building one costs milliseconds; views ask often
        import pandas as pd

        df = _EMPTY[name] = pd.DataFrame({c: pd.Series([], dtype=d) for c, d in dtypes(name).items()})
    return df.copy(deep=False)


def describe(name: str | None = None) -> Any:
    """A DataFrame of table, column, dtype and meaning (every table, or only ``name``).

    Example:
        >>> describe("account").loc[4, ["column", "dtype"]].tolist()
        ['total_balance', 'float64']
    """
    import pandas as pd

    names = TABLE_NAMES if name is None else (name,)
    rows = [(n, c, KIND_DTYPE[k], m) for n in names for c, k, m in _spec(n)]
    return pd.DataFrame(rows, columns=["table", "column", "dtype", "meaning"]).astype("string")
