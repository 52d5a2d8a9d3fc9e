"""Analytics a quant would otherwise write by hand: metrics, equity, round trips, decisions.

Every function takes ``x``: anything with the table properties (``AgentStream``,
``StreamGroup``, ``Recording``: ``x.account``, ``x.trades``, ``x.closed_trades``,
``x.decisions`` ...) or a ``dict`` mapping table names to DataFrames. Results are per
``agent_id`` and every time is tz-aware UTC. Empty or missing tables give empty frames or
NaN values, never an exception.

:func:`metrics`, :func:`equity`, :func:`drawdown`, :func:`round_trips` and
:func:`roma_performance` also take a dask export (``rn.load(export, engine="dask")``) or a
dict of dask DataFrames: they then run per agent, in parallel, on dask's scheduler, with
the same code (see :mod:`roma_notebook.store.dask_tables`).

Conventions used throughout (also stated in each docstring):

* Trade P&L is ``pnl_usdt`` of ``closed_trades``. For an agent that has no closed trades,
  round trips are rebuilt from its fills (:func:`round_trips`).
* A win is a trade with P&L > 0, a loss one with P&L < 0; a trade at exactly 0 counts in
  ``n_trades`` but is neither (as in ROMA-01's backend).
* A percent only in a column ending ``_pct``; ``win_rate``, ``share`` and ``hold_rate``
  are fractions in [0, 1]. (The exception is ROMA-01's own performance block, the
  ``performance`` table and :func:`roma_performance`, which keep the backend's names and
  units: ``win_rate`` and ``max_drawdown`` in percent.)

Example:
    >>> import roma_notebook as rn
    >>> from roma_notebook.analysis.analytics import metrics, report
    >>> rec = rn.load("session.jsonl.gz")                      # doctest: +SKIP
    >>> metrics(rec)[["return_pct", "sharpe", "win_rate"]]      # doctest: +SKIP
    >>> report(rec)                                            # doctest: +SKIP
"""
from __future__ import annotations

import html
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..store.dask_tables import per_agent_on_dask
from ..views.formatting import cell_text
from .roma_formulas import performance_stats
from ..core.schema import UTC as _UTC
from ..core.schema import dtypes

__all__ = [
    "metrics",
    "leaderboard",
    "LEADERBOARD_COLUMNS",
    "roma_performance",
    "equity",
    "drawdown",
    "round_trips",
    "action_mix",
    "hold_rate",
    "decision_fills",
    "pnl_by",
    "report",
    "Report",
]

# --------------------------------------------------------------------------- tables

# Each table's columns and dtypes: schema.py. _norm brings any frame to them.
_TABLE_NAMES = ("account", "trades", "closed_trades", "decisions", "cycles", "positions", "performance")


def _raw(x: Any, name: str) -> pd.DataFrame | None:
    """Fetch one table from ``x`` (mapping or object with table properties), or None."""
    if isinstance(x, Mapping):
        df = x.get(name)
    else:
        # getattr, not hasattr-then-get: a stream property builds a copy each time.
        df = getattr(x, name, None)
    if df is None:
        return None
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"table {name!r} is a {type(df).__name__}, expected a pandas DataFrame")
    return df


def _check_source(x: Any) -> None:
    if isinstance(x, pd.DataFrame):
        raise TypeError(
            "pass a stream, a recording or a dict of tables (e.g. {'account': df}), "
            "not a single DataFrame"
        )
    if isinstance(x, Mapping):
        return
    if not any(hasattr(type(x), n) or hasattr(x, n) for n in _TABLE_NAMES):
        raise TypeError(
            f"expected a stream, stream group, recording or dict of DataFrames, "
            f"got {type(x).__name__}"
        )


def _to_utc(s: pd.Series) -> pd.Series:
    """Any time-like column as datetime64[ns, UTC]; zone-less times are taken as UTC."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        s = s.dt.tz_localize("UTC")
    else:
        s = pd.to_datetime(s, utc=True, errors="coerce")
    return s.astype(_UTC)


def _coerce(s: pd.Series, dtype: str, column: str = "") -> pd.Series:
    if s.dtype == dtype and not (isinstance(s.dtype, pd.StringDtype) and s.dtype.na_value is not pd.NA):
        return s  # already the table's own dtype (pandas' "str" equals "string" but holds NaN)
    if dtype == _UTC:
        return _to_utc(s)
    if dtype == "string":
        return s.astype("string")
    if dtype == "float64":
        return pd.to_numeric(s, errors="coerce").astype("float64")
    if dtype == "int64":
        v = pd.to_numeric(s, errors="coerce")
        if v.isna().any():
            if column != "seq":  # a count the frame lacks stays missing
                return _coerce(v, "Int64")
            # seq orders rows; a hole sorts last rather than failing the whole call.
            v = v.fillna(np.iinfo(np.int64).max)
        return v.astype("int64")
    if dtype == "Int64":
        v = pd.to_numeric(s, errors="coerce")
        try:
            return v.astype("Int64")
        except (TypeError, ValueError):  # fractional values: keep them as floats
            return v.astype("float64")
    try:
        return s.astype(dtype)
    except (TypeError, ValueError):  # flags and lists analytics never reads: odd values pass
        return s


def _ns(s: pd.Series) -> np.ndarray:
    """UTC times as int64 nanoseconds since the epoch (NaT becomes int64 min)."""
    return s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view("int64")


def _empty(schema: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in schema.items()})


def _norm(df: pd.DataFrame | None, name: str) -> pd.DataFrame:
    """A copy of table ``name`` with its columns (schema.py) present, typed and sorted;
    extra columns pass through."""
    schema = dtypes(name)
    if df is None:
        return _empty(schema)
    out = df.copy(deep=False)  # we only ever assign whole columns, never write in place
    for col, dtype in schema.items():
        if col in out.columns:
            out[col] = _coerce(out[col], dtype, col)
        elif col == "seq":
            out[col] = np.arange(len(out), dtype="int64")
        else:
            if dtype == "int64":  # a count the frame lacks stays missing, not 0
                dtype = "Int64"
            out[col] = pd.Series(pd.NA if dtype in ("string", "Int64", "boolean") else np.nan,
                                 index=out.index).astype(dtype)
    # Rows without an agent id are grouped under "" instead of vanishing from groupbys.
    out["agent_id"] = out["agent_id"].fillna("")
    out = out.sort_values(["agent_id", "timestamp", "seq"], kind="mergesort", na_position="last")
    return out.reset_index(drop=True)


def _as_tables(x: Any, *names: str) -> dict[str, pd.DataFrame]:
    """Turn ``x`` into ``{name: normalised DataFrame}`` for the tables asked for."""
    _check_source(x)
    return {n: _norm(_raw(x, n), n) for n in names}


# --------------------------------------------------------------------------- fills

# A fill's ``side`` is its direction: "long" buys, "short" sells (buy/sell accepted too).
_DIRECTION = {"long": 1, "buy": 1, "bid": 1, "short": -1, "sell": -1, "ask": -1}
# Statuses that mean "nothing was filled"; anything else (filled, partially_filled,
# missing ...) is taken as a fill.
_NOT_FILLED = {"new", "pending", "open", "canceled", "cancelled", "rejected", "expired", "failed", "error"}


def _valid_fills(trades: pd.DataFrame) -> pd.DataFrame:
    side = trades["side"].str.strip().str.lower()
    direction = side.map(_DIRECTION).astype("float64")
    status = trades["status"].str.strip().str.lower()
    ok = (
        direction.notna()
        & ~status.isin(_NOT_FILLED).fillna(False).astype(bool)
        & trades["symbol"].notna()
        & trades["timestamp"].notna()
        & np.isfinite(trades["quantity"])
        & (trades["quantity"] > 0)
        & np.isfinite(trades["price"])
        & (trades["price"] > 0)
    )
    out = trades.loc[ok].copy()
    out["rn_dir"] = direction[ok].astype("int64")
    out["rn_sym"] = out["symbol"].str.strip().str.upper()
    return out


def _round_trips(trades: pd.DataFrame) -> pd.DataFrame:
    fills = _valid_fills(trades)
    rows: list[dict[str, Any]] = []
    for (agent, _), g in fills.groupby(["agent_id", "rn_sym"], sort=True):
        # lot = [remaining qty, price, open time, leverage, original qty]
        lots: deque[list[Any]] = deque()
        pos = 0  # +1 long, -1 short, 0 flat
        for f in g.itertuples(index=False):
            d, q, px = int(f.rn_dir), float(f.quantity), float(f.price)
            lev = f.leverage
            if pos == 0 or d == pos:
                lots.append([q, px, f.timestamp, lev, q])
                pos = d
                continue
            # Opposite side: reduce the position FIFO; one closed row per closing fill,
            # entry price weighted by the quantity taken from each lot.
            q_left, taken, cost = q, 0.0, 0.0
            open_time, open_lev = None, pd.NA
            while q_left > 1e-9 * q and lots:
                lot = lots[0]
                m = min(q_left, lot[0])
                if open_time is None:
                    open_time, open_lev = lot[2], lot[3]
                taken += m
                cost += m * lot[1]
                lot[0] -= m
                q_left -= m
                if lot[0] <= 1e-9 * lot[4]:
                    lots.popleft()
            entry = cost / taken
            rows.append({
                "agent_id": agent,
                "timestamp": f.timestamp,
                "received_at": f.received_at,
                "seq": f.seq,
                "symbol": f.symbol,
                "side": "long" if pos == 1 else "short",
                "entry_price": entry,
                "close_price": px,
                "quantity": taken,
                "leverage": open_lev if not pd.isna(open_lev) else lev,
                "open_time": open_time,
                "close_time": f.timestamp,
                "pnl_usdt": (px - entry) * taken * pos,
                "pnl_pct": (px / entry - 1.0) * 100.0 * pos,
                "source": f.source,
                "close_order_id": f.order_id,
            })
            if not lots:
                pos = 0
            if q_left > 1e-9 * q:  # flip: the rest of the fill opens the other side
                lots.append([q_left, px, f.timestamp, lev, q_left])
                pos = d
    schema = {**dtypes("closed_trades"), "close_order_id": "string"}
    if not rows:
        return _empty(schema)
    out = pd.DataFrame(rows)
    for col, dtype in schema.items():
        out[col] = _coerce(out[col], dtype, col)
    out = out.sort_values(["agent_id", "close_time", "seq"], kind="mergesort")
    return out.reset_index(drop=True)[list(schema)]


def _trades_for_stats(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """closed_trades, plus round trips from fills for agents without closed trades."""
    closed = tables["closed_trades"]
    have = set(closed["agent_id"].unique())
    rt = _round_trips(tables["trades"])
    rt = rt[~rt["agent_id"].isin(have)]
    parts = [p for p in (closed, rt) if len(p)]
    if not parts:
        return closed.iloc[:0]
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    # Close order, as ROMA-01 appends to trade_history.json when a position closes.
    order = out["close_time"].fillna(out["timestamp"])
    out = out.assign(_order=order).sort_values(["agent_id", "_order", "seq"], kind="mergesort")
    return out.drop(columns="_order").reset_index(drop=True)


# --------------------------------------------------------------------------- equity

_EQUITY_COLS = {
    "timestamp": _UTC,
    "agent_id": "string",
    "equity": "float64",
    "peak": "float64",
    "drawdown": "float64",
    "drawdown_pct": "float64",
}


def _equity(acc: pd.DataFrame) -> pd.DataFrame:
    acc = acc[acc["timestamp"].notna() & np.isfinite(acc["total_balance"])]
    if acc.empty:
        return _empty(_EQUITY_COLS)
    eq = acc["total_balance"]
    peak = eq.groupby(acc["agent_id"], sort=False).cummax()
    dd = peak - eq
    dd_pct = (dd / peak * 100.0).where(peak > 0)
    out = pd.DataFrame({
        "timestamp": acc["timestamp"],
        "agent_id": acc["agent_id"],
        "equity": eq,
        "peak": peak,
        "drawdown": dd,
        "drawdown_pct": dd_pct,
    })
    return out.reset_index(drop=True).astype(_EQUITY_COLS)


@per_agent_on_dask("account")
def equity(x: Any) -> pd.DataFrame:
    """Account-value curve per agent with running peak and drawdown.

    The account value is ``account.total_balance`` (the real backend's
    ``total_wallet_balance`` already includes unrealised P&L). Rows are ordered by
    timestamp then ``seq`` within each agent.

    Args:
        x: A stream, stream group, recording or dict of tables.

    Returns:
        DataFrame with columns ``timestamp``, ``agent_id``, ``equity``, ``peak`` (running
        maximum), ``drawdown`` (``peak - equity``, >= 0) and ``drawdown_pct``
        (``drawdown / peak * 100``; NaN where the peak is not positive).

    Example:
        >>> eq = equity(rec)                                     # doctest: +SKIP
        >>> eq.groupby("agent_id").drawdown.max()               # doctest: +SKIP
    """
    return _equity(_as_tables(x, "account")["account"])


@per_agent_on_dask("account")
def drawdown(x: Any) -> pd.DataFrame:
    """Drawdown series per agent: :func:`equity` without the equity columns.

    Args:
        x: A stream, stream group, recording or dict of tables.

    Returns:
        DataFrame with ``timestamp``, ``agent_id``, ``drawdown`` (absolute, >= 0) and
        ``drawdown_pct`` (percent of the running peak).

    Example:
        >>> drawdown(rec).groupby("agent_id").drawdown_pct.max()  # doctest: +SKIP
    """
    return equity(x)[["timestamp", "agent_id", "drawdown", "drawdown_pct"]]


def _sampling_period(times: pd.Series, period: pd.Timedelta) -> pd.Timedelta:
    """The period the curve is really sampled at: ``period``, or coarser if updates are.

    When the median gap between account updates is longer than ``period`` (say a log
    folder with one equity point every 3 hours), sampling hourly would repeat held values
    and count flat "returns" that were never observed, inflating the number of periods
    behind a ratio. The period is then the smallest whole multiple of ``period`` that
    covers the median gap.
    """
    t = _ns(times)
    if len(t) < 3:
        return period
    gap = float(np.median(np.diff(t)))
    if gap <= period.value:
        return period
    return period * int(math.ceil(gap / period.value))


def _period_label(per: pd.Timedelta) -> str:
    """``2h``, ``15min``, ``1D``: the compact pandas alias of a duration."""
    try:
        return pd.tseries.frequencies.to_offset(per).freqstr
    except (ValueError, TypeError):
        return str(per)


def _period_grid(times: pd.Series, values: np.ndarray, period: pd.Timedelta,
                 start: int | None = None, end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The curve sampled every ``period``: grid times (ns) and values (NaN where unknown).

    Sampling instants are ``t0, t0 + P, ..., t0 + K*P`` with ``t0 = start`` (default the
    first observation) and ``K = ceil((end - t0) / P)`` (``end`` default the last
    observation); the value at an instant is the last observation at or before it (the
    account value holds between updates), NaN before the first observation and after
    the cell holding the last one (a curve that stopped is not flat).
    """
    t = _ns(times)
    p = period.value
    if len(t) == 0:
        return np.empty(0, dtype="int64"), np.empty(0)
    t0 = int(t[0]) if start is None else int(start)
    t1 = int(t[-1]) if end is None else int(end)
    if t1 <= t0:
        return np.array([t0], dtype="int64"), values[-1:].astype("float64")
    k = int(math.ceil((t1 - t0) / p))
    grid = t0 + np.arange(k + 1, dtype="int64") * p
    idx = np.searchsorted(t, grid, side="right") - 1
    v = values[np.maximum(idx, 0)].astype("float64")
    v[(idx < 0) | (grid - p >= t[-1])] = np.nan
    return grid, v


def _grid_returns(v: np.ndarray) -> np.ndarray:
    """Simple returns between consecutive grid values; NaN where either is unknown."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = v[1:] / v[:-1] - 1.0
    r[~np.isfinite(r) | ~(v[:-1] > 0)] = np.nan
    return r


def _period_returns(times: pd.Series, values: np.ndarray, period: pd.Timedelta) -> np.ndarray:
    """Simple returns of the equity curve sampled every ``period`` from its first point.

    See :func:`_period_grid`: irregular update times neither create nor hide returns.
    """
    if len(times) < 2:
        return np.empty(0)
    r = _grid_returns(_period_grid(times, values, period)[1])
    return r[np.isfinite(r)]


def _sharpe_sortino_rows(r: np.ndarray, ppy: float) -> tuple[np.ndarray, np.ndarray]:
    """Annualised Sharpe and Sortino of each row of ``r`` (NaN entries are skipped).

    The one place these formulas live: :func:`metrics` applies it to one series, the
    bootstrap of :mod:`roma_notebook.analysis.skill` to thousands of resampled rows at once.
    ``sharpe = mean / std(ddof=1) * sqrt(ppy)``; ``sortino = mean / sqrt(mean(min(r,
    0)**2)) * sqrt(ppy)`` (downside deviation with a 0 target over all periods). NaN with
    fewer than 2 returns or zero volatility; Sortino is inf with no losing period and a
    positive mean.
    """
    r = np.atleast_2d(np.asarray(r, dtype="float64"))
    ok = np.isfinite(r)
    n = ok.sum(axis=1)
    x = np.where(ok, r, 0.0)
    scale = math.sqrt(ppy)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = x.sum(axis=1) / n
        dev = np.where(ok, r - mean[:, None], 0.0)
        sd = np.sqrt((dev * dev).sum(axis=1) / (n - 1))
        sharpe = np.where((n >= 2) & (sd > 0), mean / sd * scale, np.nan)
        down = np.sqrt((np.minimum(x, 0.0) ** 2).sum(axis=1) / n)
        sortino = np.where(down > 0, mean / down * scale, np.where(mean > 0, np.inf, np.nan))
    sortino = np.where(n >= 2, sortino, np.nan)
    return sharpe, sortino


# --------------------------------------------------------------------------- trade stats

def _trade_stats(pnl: np.ndarray) -> dict[str, Any]:
    n = len(pnl)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gp, gl = float(wins.sum()), float(-losses.sum())
    if n == 0:
        pf = math.nan
    elif gl > 0:
        pf = gp / gl
    else:
        pf = math.inf if gp > 0 else math.nan
    streak = 0
    if n:
        last = np.sign(pnl[-1])
        if last != 0:
            for v in pnl[::-1]:
                if np.sign(v) != last:
                    break
                streak += 1
            streak *= int(last)
    return {
        "n_trades": n,
        "realized_pnl": float(pnl.sum()) if n else math.nan,
        "win_rate": len(wins) / n if n else math.nan,
        "profit_factor": pf,
        "avg_win": float(wins.mean()) if len(wins) else math.nan,
        "avg_loss": float(losses.mean()) if len(losses) else math.nan,
        "largest_win": float(wins.max()) if len(wins) else math.nan,
        "largest_loss": float(losses.min()) if len(losses) else math.nan,
        "current_streak": streak,
    }


def _roma_stats(pnl: np.ndarray, lookback: int | None) -> dict[str, Any]:
    """ROMA-01 ``PerformanceAnalyzer.calculate_metrics`` over P&L in close order."""
    return performance_stats(pnl, lookback)


_ROMA_DTYPES = {
    "total_trades": "int64", "wins": "int64", "losses": "int64", "win_rate": "float64",
    "avg_profit": "float64", "avg_loss": "float64", "profit_factor": "float64",
    "sharpe_ratio": "float64", "max_drawdown": "float64", "total_pnl": "float64",
    "best_trade": "float64", "worst_trade": "float64",
}


def _roma_col(key: str) -> str:
    """The ``metrics`` column of one ROMA-01 figure: ``roma_`` + its name, ``_pct`` for percents."""
    return f"roma_{key}_pct" if key in ("win_rate", "max_drawdown") else f"roma_{key}"


def _check_lookback(lookback: int | None) -> None:
    if lookback is not None and (not isinstance(lookback, (int, np.integer)) or lookback < 1):
        raise ValueError(f"lookback must be a positive integer or None, got {lookback!r}")


def _agent_index(values: list[str]) -> pd.Index:
    return pd.Index(sorted(set(values)), dtype="string", name="agent_id")


@per_agent_on_dask("trades", "closed_trades")
def roma_performance(x: Any, *, lookback: int | None = 20) -> pd.DataFrame:
    """ROMA-01's ``/performance`` numbers, recomputed from closed trades.

    Reproduces ROMA-01's ``PerformanceAnalyzer.calculate_metrics`` (backend
    ``core/performance.py``) over the last ``lookback`` closed trades in close order:

    * ``total_trades``, ``wins`` (P&L > 0), ``losses`` (P&L < 0);
    * ``win_rate = wins / total_trades * 100`` (percent);
    * ``avg_profit`` = mean of winning P&L, ``avg_loss`` = mean of ``|losing P&L|``
      (positive), 0 when there are none;
    * ``profit_factor = sum(profits) / sum(|losses|)``, ``inf`` when there is no loss;
    * ``sharpe_ratio = mean(pnl) / std(pnl)`` per trade, population std (ddof 0), no
      risk-free rate, not annualised; 0 with fewer than 2 trades or zero std;
    * ``max_drawdown``: percent, on the curve ``10000 + cumulative P&L`` (the backend
      starts it at a fixed 10,000 whatever the real balance);
    * ``total_pnl = sum(profits) - sum(|losses|)``; ``best_trade``/``worst_trade``: P&L of
      the best/worst trade (the backend sends ``{symbol, pnl}``; here the P&L, NaN if none).

    With no trades the backend returns zeros (profit factor 0), and so does this. Trades
    with missing P&L are skipped.

    Args:
        x: A stream, stream group, recording or dict of tables.
        lookback: Number of most recent closed trades; None for all.

    Returns:
        DataFrame indexed by ``agent_id`` with the columns of the ``performance`` table.

    Example:
        >>> roma_performance(rec, lookback=20).sharpe_ratio     # doctest: +SKIP
    """
    _check_lookback(lookback)
    tables = _as_tables(x, "trades", "closed_trades")
    trades = _trades_for_stats(tables)
    trades = trades[trades["pnl_usdt"].notna()]
    idx = _agent_index(list(trades["agent_id"]))
    groups = dict(tuple(trades.groupby("agent_id", sort=False))) if len(trades) else {}
    rows = [_roma_stats(groups[a]["pnl_usdt"].to_numpy(), lookback) for a in idx]
    return pd.DataFrame(rows, index=idx, columns=list(_ROMA_DTYPES)).astype(_ROMA_DTYPES)


_METRIC_DTYPES = {
    "start": _UTC, "end": _UTC, "start_balance": "float64", "end_balance": "float64",
    "return_pct": "float64", "total_pnl": "float64", "max_drawdown": "float64",
    "max_drawdown_pct": "float64", "period": "string", "sharpe": "float64",
    "sortino": "float64", "n_periods": "int64", "sharpe_low": "float64",
    "sharpe_high": "float64", "sortino_low": "float64", "sortino_high": "float64",
    "n_trades": "int64", "realized_pnl": "float64",
    "win_rate": "float64", "profit_factor": "float64", "avg_win": "float64",
    "avg_loss": "float64", "largest_win": "float64", "largest_loss": "float64",
    "current_streak": "int64",
    **{_roma_col(k): v for k, v in _ROMA_DTYPES.items()},
    "note": "string",
}


@per_agent_on_dask("account", "trades", "closed_trades", "decisions")
def metrics(
    x: Any,
    *,
    periods_per_year: float | None = None,
    period: str | pd.Timedelta = "1h",
    lookback: int | None = 20,
    min_periods: int | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Performance metrics, one row per agent.

    Account-curve columns (from ``account.total_balance``, see :func:`equity`):
    ``start``/``end`` (first/last account time), ``start_balance``/``end_balance``,
    ``return_pct = (end/start - 1) * 100``, ``total_pnl = end - start`` (realised and
    unrealised), ``max_drawdown`` (largest ``peak - equity``, positive) and
    ``max_drawdown_pct`` (largest drawdown in percent of its peak; the two maxima may
    come from different troughs).

    ``sharpe``/``sortino``: the equity curve is sampled every ``period`` (hourly by
    default) from its first point, taking the last value at or before each instant; when
    the agent's median gap between updates is longer, the period is coarsened to the
    smallest multiple of ``period`` covering it, so held values are not counted as
    observed flat returns (the ``period`` column names the period used). On the simple
    returns ``r`` of those samples,
    ``sharpe = mean(r) / std(r, ddof=1) * sqrt(periods_per_year)`` and
    ``sortino = mean(r) / sqrt(mean(min(r, 0)**2)) * sqrt(periods_per_year)``, risk-free
    rate 0. ``periods_per_year`` defaults to 365 days / the period used (8760 = 24*365
    for hourly; crypto trades all year). ``n_periods`` is the number of returns behind
    the ratios, and ``sharpe_low``/``sharpe_high``, ``sortino_low``/``sortino_high`` their
    ``level`` interval from a circular block bootstrap (see
    :func:`roma_notebook.analysis.skill.ratio_intervals`; deterministic for ``seed``). With
    fewer than ``min_periods`` returns (default
    :data:`roma_notebook.analysis.skill.MIN_PERIODS` = 30: ten hours of hourly returns say
    next to nothing about a year) the ratios and their intervals are NaN and ``note``
    says why; NaN with zero volatility; ``sortino`` is inf when no period lost money
    and the mean is positive.

    Trade columns, from ``closed_trades`` (or, for an agent with no closed trades, from
    :func:`round_trips` of its fills), ordered by close time: ``n_trades``,
    ``realized_pnl`` (sum of P&L), ``win_rate`` (fraction of trades with P&L > 0),
    ``profit_factor`` (gross profit / gross loss; inf with wins and no losses, NaN with no
    trades), ``avg_win``, ``avg_loss`` (negative), ``largest_win``, ``largest_loss``
    (negative), ``current_streak`` (+n: last n trades won, -n: lost, 0: none or last at
    break-even). Missing values are NaN.

    ``roma_*`` columns: ROMA-01's own ``/performance`` numbers over the last ``lookback``
    trades, computed exactly as its backend does (see :func:`roma_performance`).

    Args:
        x: A stream, stream group, recording or dict of tables.
        periods_per_year: Annualisation factor; default from ``period``.
        period: Sampling period of the equity curve for Sharpe/Sortino.
        lookback: Trades used for the ``roma_*`` columns (ROMA-01 default 20); None = all.
        min_periods: Fewest returns behind a ratio (default
            :data:`~roma_notebook.analysis.skill.MIN_PERIODS`).
        n_boot: Bootstrap resamples for the ratio intervals.
        level: Confidence level of the intervals.
        seed: Seed of the bootstrap.

    Returns:
        DataFrame indexed by ``agent_id`` (sorted); empty with all columns if there is no
        data. ``note`` is empty when every figure could be computed.

    Example:
        >>> m = metrics(rec)                                          # doctest: +SKIP
        >>> m[["return_pct", "max_drawdown_pct", "sharpe", "roma_win_rate_pct"]]  # doctest: +SKIP
    """
    _check_lookback(lookback)
    per = pd.Timedelta(period)
    if pd.isna(per) or per <= pd.Timedelta(0):
        raise ValueError(f"period must be a positive duration, got {period!r}")
    if periods_per_year is not None and not float(periods_per_year) > 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year!r}")
    from .skill import MIN_PERIODS, ratio_intervals  # lazy: skill imports this module

    min_periods = MIN_PERIODS if min_periods is None else int(min_periods)
    period_label = period if isinstance(period, str) else _period_label(per)

    tables = _as_tables(x, "account", "trades", "closed_trades", "decisions")
    eq = _equity(tables["account"])
    trades = _trades_for_stats(tables)
    trades = trades[trades["pnl_usdt"].notna()]

    # unique() per table first: iterating every row of a million-row table costs seconds
    idx = _agent_index([a for t in tables.values() for a in t["agent_id"].unique()])
    eq_g = dict(tuple(eq.groupby("agent_id", sort=False))) if len(eq) else {}
    tr_g = dict(tuple(trades.groupby("agent_id", sort=False))) if len(trades) else {}

    rows = []
    for agent in idx:
        row: dict[str, Any] = {"period": period_label}
        e = eq_g.get(agent)
        if e is not None and len(e):
            v = e["equity"].to_numpy(dtype="float64")
            s0, s1 = v[0], v[-1]
            used = _sampling_period(e["timestamp"], per)
            if used != per:
                row["period"] = _period_label(used)
            # periods_per_year is per `period`; a coarser grid has proportionally fewer
            ppy = (float(periods_per_year) * (per / used) if periods_per_year is not None
                   else pd.Timedelta(days=365) / used)
            r = _period_returns(e["timestamp"], v, used)
            ratios = ratio_intervals(r, ppy, n_boot=n_boot, seed=seed, level=level,
                                     min_periods=min_periods)
            row.update(ratios)
            row.update(
                start=e["timestamp"].iloc[0], end=e["timestamp"].iloc[-1],
                start_balance=s0, end_balance=s1,
                return_pct=(s1 / s0 - 1.0) * 100.0 if s0 > 0 else math.nan,
                total_pnl=s1 - s0,
                max_drawdown=float(e["drawdown"].max()),
                max_drawdown_pct=float(e["drawdown_pct"].max()),
            )
        else:
            row.update(start=pd.NaT, end=pd.NaT, n_periods=0, note="no account data")
        t = tr_g.get(agent)
        pnl = t["pnl_usdt"].to_numpy(dtype="float64") if t is not None else np.empty(0)
        row.update(_trade_stats(pnl))
        row.update({_roma_col(k): v for k, v in _roma_stats(pnl, lookback).items()})
        rows.append(row)
    out = pd.DataFrame(rows, index=idx, columns=list(_METRIC_DTYPES))
    for col, dtype in _METRIC_DTYPES.items():
        out[col] = _coerce(out[col], dtype) if dtype == _UTC else out[col].astype(dtype)
    return out


#: the :func:`metrics` columns a :func:`leaderboard` shows, after its ``rank``
LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "return_pct", "total_pnl", "end_balance", "max_drawdown_pct", "sharpe", "sharpe_low",
    "sharpe_high", "n_periods", "n_trades", "win_rate", "profit_factor", "note",
)
# where a smaller value ranks first
_LOWER_IS_BETTER = {"max_drawdown", "max_drawdown_pct", "largest_loss"}


def leaderboard(x: Any, *, by: str = "return_pct", ascending: bool | None = None,
                **kw: Any) -> pd.DataFrame:
    """Agents ranked by one metric: a projection of :func:`metrics`, one row per agent.

    Columns: ``rank`` (1 = best), then :data:`LEADERBOARD_COLUMNS` (return and
    drawdown in percent, ``win_rate`` a fraction, Sharpe with its interval and the
    returns behind it). Agents whose ``by`` is NaN rank last.

    Args:
        x: A stream, stream group, recording, dict of tables or dask export.
        by: The :func:`metrics` column to rank by.
        ascending: Rank small values first; default True only for drawdowns and the
            largest loss, where smaller is better.
        **kw: Passed to :func:`metrics` (``period``, ``n_boot``, ``seed`` ...).

    Example:
        >>> leaderboard(rec, by="sharpe")[["rank", "sharpe", "sharpe_low"]]   # doctest: +SKIP
    """
    m = metrics(x, **kw)
    if by not in m.columns:
        raise ValueError(f"cannot rank by {by!r}: not a metrics column; one of {', '.join(m.columns)}")
    asc = (by in _LOWER_IS_BETTER) if ascending is None else bool(ascending)
    out = m.sort_values(by, ascending=asc, na_position="last", kind="stable")
    out = out[list(LEADERBOARD_COLUMNS)].copy()
    out.insert(0, "rank", np.arange(1, len(out) + 1, dtype="int64"))
    return out


# --------------------------------------------------------------------------- round trips

@per_agent_on_dask("trades")
def round_trips(x: Any) -> pd.DataFrame:
    """Closed round trips rebuilt from fills (the ``trades`` table).

    Fills are replayed per agent and symbol in time order (then ``seq``). A fill's
    ``side`` is its direction (``long`` = buy, ``short`` = sell; ``buy``/``sell`` are
    accepted too): a fill on the same side as the open position (or when flat) adds a lot;
    a fill on the opposite side reduces the position, matching lots first-in first-out.
    Each reducing fill gives one row: ``quantity`` is the quantity closed, ``entry_price``
    the quantity-weighted price of the lots it consumed, ``open_time`` the open time of the
    oldest of them, ``leverage`` that lot's leverage. If the fill is larger than the
    position, the rest opens a new position on the other side (a flip).

    ``pnl_usdt = (close - entry) * quantity`` for longs and the negative for shorts;
    ``pnl_pct`` is the price move in percent, signed the same way and not leveraged (as in
    ROMA-01's trade log). Fees and funding are not in the fills and are not included.
    Note that ROMA-01's own ``trade_history.json`` multiplies ``pnl_usdt`` by leverage
    again; fills-based P&L here does not. Fills with a status meaning nothing filled
    (new, canceled, rejected, expired ...), an unknown side, or missing/non-positive
    quantity or price are skipped. Positions still open at the end give no row.

    Args:
        x: A stream, stream group, recording or dict of tables.

    Returns:
        DataFrame with the ``closed_trades`` columns (``timestamp`` = ``close_time``, plus
        ``received_at``/``seq`` of the closing fill) and ``close_order_id``.

    Example:
        >>> rt = round_trips(stream)                           # doctest: +SKIP
        >>> rt.groupby("symbol").pnl_usdt.sum()               # doctest: +SKIP
    """
    return _round_trips(_as_tables(x, "trades")["trades"])


# --------------------------------------------------------------------------- decisions

def _actions(dec: pd.DataFrame) -> pd.Series:
    return dec["action"].str.strip().str.lower().fillna("unknown").astype("string")


def action_mix(x: Any, *, by_symbol: bool = False) -> pd.DataFrame:
    """How often each agent took each action.

    Counts decision items (one row of ``decisions`` each). Actions are lower-cased;
    missing actions count as ``"unknown"``.

    Args:
        x: A stream, stream group, recording or dict of tables.
        by_symbol: Count per agent x symbol x action instead of agent x action. Items
            without a symbol (``hold``, ``wait``) keep a missing symbol.

    Returns:
        Long DataFrame: ``agent_id``, (``symbol``,) ``action``, ``count`` and ``share``
        (fraction of the agent's, or the agent-and-symbol's, items).

    Example:
        >>> action_mix(rec).pivot(index="agent_id", columns="action", values="share")  # doctest: +SKIP
    """
    dec = _as_tables(x, "decisions")["decisions"]
    keys = ["agent_id", "symbol", "action"] if by_symbol else ["agent_id", "action"]
    df = dec.assign(action=_actions(dec))[keys]
    dtypes = {k: "string" for k in keys} | {"count": "int64", "share": "float64"}
    if df.empty:
        return _empty(dtypes)
    counts = df.groupby(keys, dropna=False, sort=True).size().rename("count").reset_index()
    total = counts.groupby(keys[:-1], dropna=False)["count"].transform("sum")
    counts["share"] = counts["count"] / total
    return counts.astype(dtypes)


def hold_rate(x: Any, *, actions: tuple[str, ...] = ("hold", "wait")) -> pd.DataFrame:
    """Share of decision items per agent that chose not to trade.

    Args:
        x: A stream, stream group, recording or dict of tables.
        actions: Actions that count as holding (compared lower-case).

    Returns:
        DataFrame indexed by ``agent_id``: ``n_decisions`` (decision items), ``n_hold``
        and ``hold_rate = n_hold / n_decisions``.

    Example:
        >>> hold_rate(rec).hold_rate                             # doctest: +SKIP
    """
    dec = _as_tables(x, "decisions")["decisions"]
    is_hold = _actions(dec).isin([a.lower() for a in actions]).astype("int64")
    g = is_hold.groupby(dec["agent_id"], sort=True)
    out = pd.DataFrame({"n_decisions": g.size(), "n_hold": g.sum()})
    out = out.astype({"n_decisions": "int64", "n_hold": "int64"})
    out["hold_rate"] = (out["n_hold"] / out["n_decisions"]).astype("float64")
    out.index = pd.Index(out.index, dtype="string", name="agent_id")
    return out


# Direction of the fill an action should produce: opening buys a long / sells a short,
# closing sells a long / buys back a short.
_ACTION_DIRECTION = {"open_long": 1, "open_short": -1, "close_long": -1, "close_short": 1}


def decision_fills(x: Any, within: str | pd.Timedelta = "5min") -> pd.DataFrame:
    """Join trading decisions to the fills they produced.

    Each decision item with an ``open_long``/``open_short``/``close_long``/``close_short``
    action and a symbol is matched to the first fill of the same agent and symbol, in the
    direction the action implies (open_long and close_short: a ``long``/buy fill;
    open_short and close_long: a ``short``/sell fill), whose time is in
    ``[decision time, decision time + within]``. Decisions are matched in time order and
    each fill is used at most once, so two quick decisions do not claim the same fill.

    Args:
        x: A stream, stream group, recording or dict of tables.
        within: Longest delay from decision to fill (anything ``pd.Timedelta`` reads).

    Returns:
        The matched decision rows (all their columns) plus ``order_id``, ``fill_price``,
        ``fill_quantity``, ``fill_time``, ``fill_latency`` (timedelta) and ``filled``
        (bool); the fill columns are missing when nothing matched.

    Example:
        >>> df = decision_fills(stream, within="2min")         # doctest: +SKIP
        >>> df.groupby("agent_id").filled.mean()               # doctest: +SKIP
    """
    window = pd.Timedelta(within)
    if pd.isna(window) or window < pd.Timedelta(0):
        raise ValueError(f"within must be a non-negative duration, got {within!r}")
    tables = _as_tables(x, "decisions", "trades")
    dec = tables["decisions"]
    want = _actions(dec).map(_ACTION_DIRECTION).astype("float64")
    sel = want.notna() & dec["symbol"].notna()
    out = dec.loc[sel].reset_index(drop=True)
    want = want[sel].astype("int64").to_numpy()
    n = len(out)

    order_id = pd.array([pd.NA] * n, dtype="string")
    price = np.full(n, np.nan)
    qty = np.full(n, np.nan)
    ftime = np.full(n, np.iinfo(np.int64).min, dtype="int64")  # NaT sentinel

    fills = _valid_fills(tables["trades"])
    pools = {
        key: (_ns(g["timestamp"]),
              g["order_id"].to_numpy(), g["price"].to_numpy(), g["quantity"].to_numpy(),
              np.zeros(len(g), dtype=bool))
        for key, g in fills.groupby(["agent_id", "rn_sym", "rn_dir"], sort=False)
    }
    if n and pools:
        t_dec = _ns(out["timestamp"])
        syms = out["symbol"].str.strip().str.upper().to_numpy()
        agents = out["agent_id"].to_numpy()
        w = window.value
        nat = np.iinfo(np.int64).min
        for i in np.argsort(t_dec, kind="stable"):
            if t_dec[i] == nat:
                continue
            pool = pools.get((agents[i], syms[i], int(want[i])))
            if pool is None:
                continue
            times, oids, pxs, qs, used = pool
            j = int(np.searchsorted(times, t_dec[i], side="left"))
            while j < len(times) and times[j] <= t_dec[i] + w:
                if not used[j]:
                    used[j] = True
                    order_id[i] = oids[j]
                    price[i], qty[i], ftime[i] = pxs[j], qs[j], times[j]
                    break
                j += 1

    fill_time = pd.Series(ftime.view("datetime64[ns]")).dt.tz_localize("UTC").astype(_UTC)
    out["order_id"] = pd.Series(order_id, dtype="string")
    out["fill_price"] = price
    out["fill_quantity"] = qty
    out["fill_time"] = fill_time
    out["fill_latency"] = (fill_time - out["timestamp"]).astype("timedelta64[ns]")
    out["filled"] = fill_time.notna().to_numpy(dtype=bool)
    return out


def pnl_by(x: Any, by: str = "symbol") -> pd.DataFrame:
    """Realised P&L per agent, grouped by symbol, action or another trade column.

    Trades are ``closed_trades`` (or :func:`round_trips` for agents without them).
    ``by="action"`` groups by the action that opened the trade: ``open_long`` for long
    trades, ``open_short`` for short ones.

    Args:
        x: A stream, stream group, recording or dict of tables.
        by: ``"symbol"``, ``"action"``, ``"side"`` or any other closed-trade column.

    Returns:
        DataFrame with ``agent_id``, ``by``'s column, ``n_trades``, ``wins``, ``losses``,
        ``win_rate`` (fraction), ``total_pnl``, ``avg_pnl``, sorted by agent then key.

    Example:
        >>> pnl_by(rec, by="symbol").sort_values("total_pnl")   # doctest: +SKIP
    """
    tables = _as_tables(x, "trades", "closed_trades")
    trades = _trades_for_stats(tables)
    trades = trades[trades["pnl_usdt"].notna()]
    if by == "action":
        key = ("open_" + trades["side"].str.strip().str.lower()).astype("string")
    elif by in trades.columns and by not in ("agent_id", "pnl_usdt"):
        key = trades[by]
    else:
        raise ValueError(f"by must be 'symbol', 'action', 'side' or a closed-trade column, got {by!r}")
    dtypes = {"agent_id": "string", by: key.dtype, "n_trades": "int64", "wins": "int64",
              "losses": "int64", "win_rate": "float64", "total_pnl": "float64",
              "avg_pnl": "float64"}
    if trades.empty:
        return _empty(dtypes)
    df = pd.DataFrame({"agent_id": trades["agent_id"], by: key, "pnl": trades["pnl_usdt"]})
    g = df.groupby(["agent_id", by], dropna=False, sort=True)["pnl"]
    out = pd.DataFrame({
        "n_trades": g.size(),
        "wins": g.agg(lambda s: int((s > 0).sum())),
        "losses": g.agg(lambda s: int((s < 0).sum())),
        "total_pnl": g.sum(),
        "avg_pnl": g.mean(),
    }).reset_index()
    out["win_rate"] = out["wins"] / out["n_trades"]
    return out[list(dtypes)].astype(dtypes)


# --------------------------------------------------------------------------- report

def _html_table(df: pd.DataFrame, *, index: bool = True) -> str:
    if df.empty:
        return "<p><em>no data</em></p>"
    shown = df.map(cell_text)
    if index:
        shown.index = [cell_text(i) for i in shown.index]
        shown.index.name = df.index.name
    return shown.to_html(index=index, escape=True, border=0, classes="dataframe roma-table")


def _decimate(n: int, max_points: int, keep: int | None = None) -> np.ndarray:
    """Indices of at most ~max_points evenly spread points, keeping ends and ``keep``."""
    if n <= max_points:
        return np.arange(n)
    idx = np.linspace(0, n - 1, max_points).astype("int64")
    if keep is not None:
        idx = np.append(idx, keep)
    return np.unique(idx)


def _figures(eq: pd.DataFrame, max_points: int) -> dict[str, Any]:
    import plotly.graph_objects as go  # lazy: plotly import is slow and not always needed

    fe = go.Figure(layout={"title": "Account value", "template": "plotly_white", "height": 360,
                           "xaxis_title": "time (UTC)", "yaxis_title": "USDT"})
    fd = go.Figure(layout={"title": "Drawdown", "template": "plotly_white", "height": 300,
                           "xaxis_title": "time (UTC)", "yaxis_title": "% below peak"})
    for agent, g in eq.groupby("agent_id", sort=True):
        # Keep the deepest trough: decimation must not hide the max drawdown.
        keep = int(np.nanargmax(g["drawdown_pct"].to_numpy())) if g["drawdown_pct"].notna().any() else None
        g = g.iloc[_decimate(len(g), max_points, keep)]
        fe.add_trace(go.Scatter(x=g["timestamp"], y=g["equity"], mode="lines", name=str(agent)))
        fd.add_trace(go.Scatter(x=g["timestamp"], y=-g["drawdown_pct"], mode="lines",
                                fill="tozeroy", name=str(agent)))
    if eq.empty:
        for f in (fe, fd):
            f.add_annotation(text="no account data", showarrow=False, x=0.5, y=0.5,
                             xref="paper", yref="paper")
    return {"equity": fe, "drawdown": fd}


class Report:
    """A one-call, static-friendly notebook report.

    Attributes:
        title: Heading of the report.
        tables: ``metrics`` (with Sharpe/Sortino intervals and ``n_periods``),
            ``action_mix`` (long form), ``hold_rate``, ``pnl_by_symbol``, ``skill``
            (Sharpe per agent with its interval), ``skill_pairs`` (every pair's difference
            and verdict, see :func:`roma_notebook.compare`) and ``audit`` (figures of the
            source that do not add up, see :func:`roma_notebook.audit`) DataFrames.
        figures: ``equity`` and ``drawdown`` as ``plotly.graph_objects.Figure`` (not
            widgets), so they render under nbconvert and can be shown one by one.
        comparison: The :class:`~roma_notebook.analysis.skill.Comparison` behind ``skill``
            (``report.comparison.figure`` is its forest plot), or None.
        include_plotlyjs: How ``_repr_html_`` embeds plotly.js (see :func:`report`).

    Example:
        >>> r = report(rec)                       # doctest: +SKIP
        >>> r                                     # notebook: tables and charts  # doctest: +SKIP
        >>> r.to_html("report.html")              # standalone page  # doctest: +SKIP
    """

    def __init__(self, tables: dict[str, pd.DataFrame], figures: dict[str, Any], *,
                 title: str = "ROMA-01 agents report", include_plotlyjs: bool | str = False,
                 comparison: Any = None):
        self.comparison = comparison
        self.tables = tables
        self.figures = figures
        self.title = title
        self.include_plotlyjs = include_plotlyjs

    @property
    def metrics(self) -> pd.DataFrame:
        """The metrics table (one row per agent)."""
        return self.tables["metrics"]

    def _top(self) -> str:
        return (f'<div class="roma-report"><h3>{html.escape(self.title)}</h3>\n'
                f"<h4>Metrics</h4>\n{_html_table(self.tables['metrics'].T)}\n</div>")

    def _charts(self, include_plotlyjs: bool | str) -> str:
        parts = ['<div class="roma-report">']
        for i, (name, fig) in enumerate(self.figures.items()):
            # plotly.js goes in once, with the first chart, if at all.
            js = include_plotlyjs if i == 0 else False
            parts.append(f"<h4>{html.escape(name.capitalize())}</h4>\n"
                         + fig.to_html(include_plotlyjs=js, full_html=False))
        if include_plotlyjs is False:
            parts.append(
                "<p><em>Charts need plotly.js on the page, which this output does not embed "
                "(notebooks must work offline). If they are blank, run "
                "<code>report.show()</code> or display <code>report.figures['equity']</code>; "
                "<code>report(x, include_plotlyjs='cdn')</code> or <code>True</code> "
                "(inline, ~4 MB) embeds it.</em></p>")
        parts.append("</div>")
        return "\n".join(parts)

    def _bottom(self) -> str:
        t = self.tables
        mix = t["action_mix"]
        mix_wide = (mix.pivot(index="agent_id", columns="action", values="count")
                    .fillna(0).astype("int64") if len(mix) else mix)
        skill = []
        if "skill" in t:
            skill = [
                "<h4>Skill or luck: Sharpe with 95 % intervals</h4>", _html_table(t["skill"]),
                "<h4>Pairs (paired block bootstrap)</h4>", _html_table(t["skill_pairs"], index=False),
                "<h4>Audit: figures that do not add up</h4>",
                _html_table(t["audit"], index=False) if len(t["audit"])
                else "<p><em>nothing found</em></p>",
            ]
        return "\n".join([
            '<div class="roma-report">',
            *skill,
            "<h4>Action mix (decision items)</h4>", _html_table(mix_wide),
            "<h4>Hold rate</h4>", _html_table(t["hold_rate"]),
            "<h4>Realised P&amp;L by symbol</h4>", _html_table(t["pnl_by_symbol"], index=False),
            "</div>",
        ])

    def _body(self, include_plotlyjs: bool | str) -> str:
        return "\n".join([self._top(), self._charts(include_plotlyjs), self._bottom()])

    def _repr_html_(self) -> str:
        return self._body(self.include_plotlyjs)

    def to_html(self, path: str | None = None, *, include_plotlyjs: bool | str = "cdn") -> str:
        """A standalone HTML page of the report; written to ``path`` when given.

        Args:
            path: File to write, or None to only return the text.
            include_plotlyjs: ``"cdn"`` (needs network when opened), ``True`` (inline,
                ~4 MB, fully offline) or ``False``.

        Returns:
            The HTML document.
        """
        doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
               f"<title>{html.escape(self.title)}</title></head><body>"
               f"{self._body(include_plotlyjs)}</body></html>")
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(doc)
        return doc

    def show(self) -> None:
        """Display tables as HTML and the figures through plotly's own renderer.

        This is also how a report displays itself in a notebook: each chart is its
        own output carrying plotly's MIME bundle, which JupyterLab and VS Code render
        with the plotly.js they ship (no network), and whose HTML form nbconvert
        keeps. In plain Python it prints the text form.
        """
        try:
            from IPython.display import HTML, display
        except ImportError:
            print(repr(self))
            return
        display(HTML(self._top()))
        for name, fig in self.figures.items():
            display(HTML(f'<div class="roma-report"><h4>{html.escape(name.capitalize())}</h4></div>'))
            display(fig)
        display(HTML(self._bottom()))

    def _ipython_display_(self) -> None:
        # A single HTML output cannot carry plotly.js offline (a fresh JupyterLab
        # showed blank charts): display the parts, each chart with its own bundle.
        self.show()

    def __repr__(self) -> str:
        m = self.metrics
        head = f"{self.title}: {len(m)} agent(s)"
        if m.empty:
            return head + " (no data)"
        cols = ["end_balance", "return_pct", "max_drawdown_pct", "sharpe", "sharpe_low",
                "sharpe_high", "n_periods", "n_trades", "win_rate"]
        return head + "\n" + m[cols].to_string()


def report(
    x: Any,
    *,
    period: str | pd.Timedelta = "1h",
    lookback: int | None = 20,
    include_plotlyjs: bool | str = False,
    max_points: int = 2000,
    title: str = "ROMA-01 agents report",
) -> Report:
    """Everything at once: metrics, equity and drawdown charts, decision and P&L tables,
    Sharpe intervals and pairwise verdicts (:func:`roma_notebook.compare`) and the audit
    of the source's figures (:func:`roma_notebook.audit`).

    The result displays as static HTML (``_repr_html_``), so it survives nbconvert and
    saved notebooks; charts are plain plotly ``Figure`` objects in ``.figures`` and tables
    DataFrames in ``.tables``. By default plotly.js is not embedded (offline notebooks
    cannot fetch it and inlining costs ~4 MB per output): charts then render only where
    plotly.js is already on the page, and ``report.show()`` displays them through plotly's
    renderer instead.

    Args:
        x: A stream, stream group, recording or dict of tables.
        period: Sampling period for Sharpe/Sortino (see :func:`metrics`).
        lookback: Trades used for the ``roma_*`` columns.
        include_plotlyjs: Passed to ``Figure.to_html`` for the first chart: False,
            ``"cdn"`` or True (inline).
        max_points: Most points per chart trace (longer curves are thinned, keeping the
            deepest drawdown).
        title: Heading of the report.

    Returns:
        A :class:`Report`.

    Example:
        >>> r = report(rec)                    # doctest: +SKIP
        >>> r.tables["metrics"].sharpe         # doctest: +SKIP
    """
    from .audit_checks import audit  # lazy: these modules build on this one
    from .skill import compare

    tables = _as_tables(x, "account", "trades", "closed_trades", "decisions", "cycles",
                        "position_history", "performance")
    comp = compare(tables, "sharpe", period=period)
    out = {
        "metrics": metrics(tables, period=period, lookback=lookback),
        "action_mix": action_mix(tables),
        "hold_rate": hold_rate(tables),
        "pnl_by_symbol": pnl_by(tables, by="symbol"),
        "skill": comp.agents,
        "skill_pairs": comp.pairs,
        "audit": audit(tables, lookback=lookback or 20),
    }
    figs = _figures(_equity(tables["account"]), max_points)
    return Report(out, figs, title=title, include_plotlyjs=include_plotlyjs, comparison=comp)
