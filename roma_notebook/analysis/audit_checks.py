"""Figures of a source that do not add up, one row each, with the evidence.

ROMA-01's own numbers pass through the library's tables untouched; several are known to
be wrong (docs/roma01.md, "Data quality"). :func:`audit` recomputes each one from the
rows it should follow from and lists those that disagree:

========================== ==============================================================
``check``                  what is compared
========================== ==============================================================
pnl_leverage_double_count  closed trade ``pnl_usdt`` equals (close − entry) × quantity ×
                           leverage instead of (close − entry) × quantity (ROMA-01 Q2)
pnl_mismatch               ``pnl_usdt`` differs from (close − entry) × quantity by more
                           than fees (0.1 % of the traded notional per side) explain
equity_net_of_deposits     ``account.adjusted_balance`` (ROMA-01's ``equity``) differs
                           from the gross account value ``total_balance`` (Q3); one row
                           per agent, at the largest gap
account_identity           ``used_percentage`` ≠ (total − available) / total × 100, or the
                           account's ``unrealized_pnl`` ≠ the sum of its positions'
                           ``unrealized_profit`` in the same snapshot
performance_order          the backend's ``performance`` block vs the same formulas
                           (:func:`~roma_notebook.analysis.analytics.roma_performance`) over the
                           last 20 trades in time order (Q1: it describes the oldest 20)
naive_local_time           rows stamped later than they were received (or than now): a
                           zone-less local time read as UTC (Q6)
cycle_gap                  missing cycle numbers (Q13), and pauses over 3 × the agent's
                           median cycle interval
fill_side_convention       closing fills whose ``side`` is the position's side, not the
                           direction the library reads (round trips from fills are then
                           wrong)
fill_without_decision      a fill no open/close decision of its agent and symbol precedes
decision_without_fill      an open/close decision no fill follows (agents with fills only)
========================== ==============================================================

A clean session (the bundled simulator's, recorded live) gives an empty frame, apart
from checks its data cannot support.

Example:
    >>> import roma_notebook as rn
    >>> from roma_notebook.analysis.audit_checks import audit
    >>> audit({}).empty
    True
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .analytics import (
    _UTC,
    _as_tables,
    _ns,
    _roma_stats,
    _trades_for_stats,
)
from .outcomes import _outcomes

__all__ = ["audit", "AUDIT_COLUMNS", "FEE_ALLOWANCE"]

#: columns of :func:`audit`'s frame
AUDIT_COLUMNS = {
    "check": "string", "agent_id": "string", "timestamp": _UTC, "figure": "string",
    "reported": "float64", "expected": "float64", "difference": "float64", "evidence": "string",
}
#: fees a P&L may differ by: this fraction of the notional, per side (taker fees are
#: 0.02-0.05 % on the exchanges ROMA-01 trades; twice that leaves room for funding)
FEE_ALLOWANCE = 0.001
_FUTURE = pd.Timedelta("5min")  # clock skew tolerated before a time counts as "ahead"


def _row(check: str, agent: Any, ts: Any, figure: str, reported: float = math.nan,
         expected: float = math.nan, evidence: str = "") -> dict[str, Any]:
    return {"check": check, "agent_id": agent, "timestamp": ts, "figure": figure,
            "reported": reported, "expected": expected,
            "difference": reported - expected, "evidence": evidence}


def _pnl_checks(ct: pd.DataFrame) -> list[dict]:
    rows: list[dict] = []
    sign = ct["side"].str.strip().str.lower().map({"long": 1.0, "short": -1.0}).astype("float64")
    move = (ct["close_price"] - ct["entry_price"]) * ct["quantity"] * sign
    lev = ct["leverage"].astype("float64")
    fees = FEE_ALLOWANCE * (ct["entry_price"] + ct["close_price"]) * ct["quantity"] + 0.01
    pnl = ct["pnl_usdt"]
    ok = pnl.notna() & move.notna()
    off = ok & ((pnl - move).abs() > fees)
    doubled = off & (lev > 1) & ((pnl - move * lev).abs() <= fees * lev)
    for i in np.flatnonzero(off.to_numpy()):
        r = ct.iloc[i]
        when = r["close_time"] if not pd.isna(r["close_time"]) else r["timestamp"]
        what = f"{r['symbol']} {r['side']} closed trade pnl_usdt"
        if doubled.iloc[i]:
            ev = (f"pnl_usdt {pnl.iloc[i]:.4f} = ({r['close_price']:g} − {r['entry_price']:g}) × "
                  f"{r['quantity']:g} × leverage {int(lev.iloc[i])} = {move.iloc[i] * lev.iloc[i]:.4f}; "
                  f"the wallet moves by (close − entry) × quantity = {move.iloc[i]:.4f} "
                  "(leverage counted twice)")
            rows.append(_row("pnl_leverage_double_count", r["agent_id"], when, what,
                             float(pnl.iloc[i]), float(move.iloc[i]), ev))
        else:
            ev = (f"pnl_usdt {pnl.iloc[i]:.4f} vs (close − entry) × quantity = {move.iloc[i]:.4f}; "
                  f"more than fees (≤ {fees.iloc[i]:.4f}) explain")
            rows.append(_row("pnl_mismatch", r["agent_id"], when, what,
                             float(pnl.iloc[i]), float(move.iloc[i]), ev))
    return rows


def _equity_checks(acc: pd.DataFrame) -> list[dict]:
    rows = []
    a = acc[acc["adjusted_balance"].notna() & acc["total_balance"].notna()]
    gap = (a["adjusted_balance"] - a["total_balance"])
    for agent, g in gap.groupby(a["agent_id"], sort=True):
        bad = g.abs() > 0.01
        if not bad.any():
            continue
        i = g.abs().idxmax()
        r = a.loc[i]
        ev = (f"{int(bad.sum())} of {len(g)} points differ, by up to {abs(g[i]):.2f} USDT: "
              "ROMA-01's equity subtracts deposits it infers each cycle; the account value is "
              "total_balance (gross)")
        rows.append(_row("equity_net_of_deposits", agent, r["timestamp"], "adjusted_balance",
                         float(r["adjusted_balance"]), float(r["total_balance"]), ev))
    return rows


def _identity_checks(acc: pd.DataFrame, ph: pd.DataFrame) -> list[dict]:
    rows = []
    ok = acc["used_percentage"].notna() & acc["available_balance"].notna() & (acc["total_balance"] > 0)
    a = acc[ok]
    want = (a["total_balance"] - a["available_balance"]) / a["total_balance"] * 100.0
    diff = (a["used_percentage"] - want).abs()
    for agent, d in diff.groupby(a["agent_id"], sort=True):
        bad = d > 0.5  # percentage points: rounding of the inputs stays far below
        if bad.any():
            i = d.idxmax()
            rows.append(_row("account_identity", agent, a.at[i, "timestamp"], "used_percentage",
                             float(a.at[i, "used_percentage"]), float(want[i]),
                             f"{int(bad.sum())} of {len(d)} account rows: used_percentage ≠ "
                             "(total_balance − available_balance) / total_balance × 100"))
    if len(ph) and acc["unrealized_pnl"].notna().any():
        # a real backend's snapshot carries account and positions in one frame (same seq)
        s = ph.groupby(["agent_id", "seq"])["unrealized_profit"].sum(min_count=1).rename("sum_upnl")
        m = acc.join(s, on=["agent_id", "seq"], how="inner")
        m = m[m["unrealized_pnl"].notna() & m["sum_upnl"].notna()]
        d = (m["unrealized_pnl"] - m["sum_upnl"]).abs()
        for agent, dd in d.groupby(m["agent_id"], sort=True):
            bad = dd > 0.01 + 1e-6 * m.loc[dd.index, "total_balance"].abs()
            if bad.any():
                i = dd.idxmax()
                rows.append(_row("account_identity", agent, m.at[i, "timestamp"], "unrealized_pnl",
                                 float(m.at[i, "unrealized_pnl"]), float(m.at[i, "sum_upnl"]),
                                 f"{int(bad.sum())} of {len(dd)} snapshots: the account's "
                                 "unrealized_pnl ≠ the sum of its positions' unrealized_profit"))
    return rows


_PERF_FIGURES = ("total_trades", "win_rate", "total_pnl", "max_drawdown", "sharpe_ratio", "profit_factor")


def _performance_checks(perf: pd.DataFrame, trades: pd.DataFrame, lookback: int) -> list[dict]:
    rows = []
    if perf.empty or trades.empty:
        return rows
    trades = trades[trades["pnl_usdt"].notna()]
    for agent, g in perf.groupby("agent_id", sort=True):
        last = g.iloc[-1]
        t = trades[trades["agent_id"] == agent]
        when = t["close_time"].fillna(t["timestamp"])
        t = t[when <= last["timestamp"] + pd.Timedelta("1min")]  # what the backend had then
        pnl = t["pnl_usdt"].to_numpy("float64")
        if len(pnl) == 0:
            continue
        right = _roma_stats(pnl, lookback)
        oldest = _roma_stats(pnl[:lookback], None)
        for f in _PERF_FIGURES:
            rep, exp = float(last[f]), float(right[f])
            if math.isnan(rep) or (math.isinf(rep) and rep == exp):
                continue
            if abs(rep - exp) <= 0.01 + 1e-6 * abs(exp):
                continue
            old = float(oldest[f])
            why = (f"matches the oldest {min(lookback, len(pnl))} trades ({old:.4g}): the newest-first "
                   "list was cut from the wrong end" if abs(rep - old) <= 0.01 + 1e-6 * abs(old)
                   else "matches neither the newest nor the oldest trades")
            rows.append(_row("performance_order", agent, last["timestamp"], f"performance.{f}", rep, exp,
                             f"over the last {min(lookback, len(pnl))} of {len(pnl)} closed trades in "
                             f"time order {f} = {exp:.4g}; {why}"))
    return rows


def _time_checks(tables: dict[str, pd.DataFrame]) -> list[dict]:
    rows = []
    for name in ("account", "decisions", "closed_trades", "trades"):
        df = tables[name]
        if df.empty:
            continue
        ahead = df["timestamp"] - df["received_at"]
        src = df["source"].astype("string") if "source" in df.columns else pd.Series("", index=df.index)
        bad = (ahead > _FUTURE) & (src != "log").fillna(True)
        for agent, b in bad.groupby(df["agent_id"], sort=True):
            if not b.any():
                continue
            off = ahead[b[b].index]
            hours = off.median() / pd.Timedelta("1h")
            quarter = round(hours * 4) / 4
            # A zone offset is constant and a whole quarter hour; a simulated or
            # replayed clock running ahead drifts instead, and is not a finding.
            if off.max() - off.min() > _FUTURE or abs(hours - quarter) > 0.05:
                continue
            ev = (f"{len(off)} {name} rows stamped {quarter:g} h later than they were received, "
                  "constantly: a zone-less local time read as UTC")
            rows.append(_row("naive_local_time", agent, df.at[off.index[0], "timestamp"],
                             f"{name}.timestamp", hours, 0.0, ev))
    return rows


def _cycle_checks(cycles: pd.DataFrame) -> list[dict]:
    rows = []
    c = cycles[cycles["cycle"].notna()]
    for agent, g in c.groupby("agent_id", sort=True):
        g = g.drop_duplicates("cycle", keep="last").sort_values("cycle", kind="mergesort")
        n = g["cycle"].astype("int64").to_numpy()
        t = _ns(g["timestamp"])
        for i in np.flatnonzero(np.diff(n) > 1):
            rows.append(_row("cycle_gap", agent, g["timestamp"].iloc[i + 1], "cycle",
                             float(n[i + 1]), float(n[i] + 1),
                             f"cycle {n[i]} is followed by {n[i + 1]}: {n[i + 1] - n[i] - 1} missing"))
        if len(t) >= 4:
            dt = np.diff(np.sort(t))
            med = float(np.median(dt))
            for i in np.flatnonzero(dt > 3 * med):
                rows.append(_row("cycle_gap", agent, g["timestamp"].iloc[i + 1], "cycle interval",
                                 dt[i] / 1e9, med / 1e9,
                                 f"{pd.Timedelta(int(dt[i]))} between cycles {n[i]} and {n[i + 1]}; "
                                 f"median {pd.Timedelta(int(med))}"))
    return rows


def _fill_checks(out: pd.DataFrame, extra: dict[str, Any]) -> list[dict]:
    rows = []
    for agent, (n_pos, n_dir) in sorted(extra["votes"].items()):
        if n_pos > n_dir:
            rows.append(_row("fill_side_convention", agent, pd.NaT, "trades.side", float(n_pos),
                             0.0, f"{n_pos} of {n_pos + n_dir} closing fills carry the position's "
                             "side, not the trade's direction: round_trips() and the trade "
                             "statistics of metrics() misread them (decision_outcomes() does not)"))
    fills, owner = extra["fills"], extra["owner"]
    for i in np.flatnonzero(owner < 0):
        f = fills.iloc[i]
        rows.append(_row("fill_without_decision", f["agent_id"], f["timestamp"], "trades",
                         float(f["quantity"]), math.nan,
                         f"{f['side']} {f['quantity']:g} {f['symbol']} @ {f['price']:g} "
                         f"(order {f['order_id']}): no open/close decision of this agent and "
                         "symbol before it"))
    with_fills = set(fills["agent_id"])
    trading = out["direction"].notna() & out["symbol"].notna()
    miss = out[trading & ~out["filled"] & out["agent_id"].isin(with_fills)]
    for _, d in miss.iterrows():
        rows.append(_row("decision_without_fill", d["agent_id"], d["timestamp"], "decisions",
                         math.nan, math.nan,
                         f"cycle {d['cycle']}: {d['action']} {d['symbol']} and no fill after it"))
    return rows


def audit(source: Any, *, lookback: int = 20, tolerance: str | pd.Timedelta = "2min") -> pd.DataFrame:
    """Every figure of ``source`` that does not add up, with the evidence.

    See the module docstring for the checks. Works on anything with the tables: a
    stream, stream group, recording (a ROMA-01 log folder or store loaded with
    :func:`roma_notebook.load`) or a dict of DataFrames.

    Args:
        source: A stream, stream group, recording or dict of tables.
        lookback: Trades in ROMA-01's ``performance`` block (its default is 20).
        tolerance: How early a fill may precede its decision's logged time (see
            :func:`roma_notebook.decision_outcomes`).

    Returns:
        DataFrame, one row per finding: ``check``, ``agent_id``, ``timestamp``, ``figure``
        (what is wrong), ``reported`` (the source's value), ``expected`` (recomputed),
        ``difference`` and ``evidence`` (a sentence a reader can verify). Empty when the
        source is consistent.

    Example:
        >>> findings = audit(rn.load("logs/decisions"))                 # doctest: +SKIP
        >>> findings.groupby(["agent_id", "check"]).size()              # doctest: +SKIP
    """
    tables = _as_tables(source, "account", "trades", "closed_trades", "decisions", "cycles",
                        "position_history", "performance")
    rows = []
    rows += _pnl_checks(tables["closed_trades"])
    rows += _equity_checks(tables["account"])
    rows += _identity_checks(tables["account"], tables["position_history"])
    rows += _performance_checks(tables["performance"], _trades_for_stats(tables), lookback)
    rows += _time_checks(tables)
    rows += _cycle_checks(tables["cycles"])
    out, extra = _outcomes(tables, [], pd.Timedelta(tolerance), pd.Timedelta("15min"))
    rows += _fill_checks(out, extra)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in AUDIT_COLUMNS.items()})
    df = pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df.astype(AUDIT_COLUMNS).reset_index(drop=True)

