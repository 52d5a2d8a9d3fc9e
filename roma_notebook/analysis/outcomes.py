"""What each decision led to: its fills, the round trip's P&L, the market move after it.

:func:`decision_outcomes` gives one row per decision item; :func:`calibration` groups
them by the model's stated ``confidence`` to ask whether confident decisions are better.

Conventions:

* **Fills.** A fill belongs to the latest trading decision of the same agent and symbol
  whose action implies the fill's direction (``open_long``/``close_short`` buy,
  ``open_short``/``close_long`` sell) at or before the fill: an as-of join, so a fill
  is never claimed by a decision made after it, nor by an earlier decision when a later
  one asked for the same trade. ``tolerance`` lets a fill precede the decision's logged
  time a little, because ROMA-01 stamps a decision log when the cycle is written, after
  its orders (see docs/roma01.md, Q4). Fills estimated from position snapshots
  (``trades.source == "derived"``) are used too, and said so in ``fill_source``.
* **P&L.** The round trip the decision opened (``open_*``: the one whose ``open_time``
  is the first fill's time) or closed (``close_*``: whose ``close_time`` is), from
  ``closed_trades`` or, for agents without them, from :func:`~roma_notebook.analysis.analytics.
  round_trips` of the fills. Without a fill the decision's own time is matched, within
  ``tolerance``. ``pnl_usdt`` is the source's figure (ROMA-01 logs count leverage twice
  in it: :func:`roma_notebook.audit` says when). A round trip shows on both its
  opening and its closing decision: to total P&L, sum the ``close_*`` rows only.
* **Market moves.** Prices are every mark (``position_history.mark_price``, all agents:
  the market is shared), fill price and round-trip entry/close price of the symbol. The
  move over horizon ``h`` is ``price(t + h) / price(t) - 1`` in percent, each price the
  last one seen at or before its instant and at most ``staleness`` old (the end price
  also after ``t``); NaN where no such price exists. ``edge_h`` is the move signed by
  what the action bet on (+ for open_long/close_short, − for open_short/close_long);
  ``hold``/``wait`` rows get the move they sat out and no edge.

Example:
    >>> import roma_notebook as rn
    >>> rec = rn.load(rn.sample_recording(), progress=False)
    >>> out = rn.decision_outcomes(rec)
    >>> {"filled", "pnl_usdt", "holding_time", "move_1h", "edge_1h"} <= set(out.columns)
    True
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from .analytics import (
    _ACTION_DIRECTION,
    _UTC,
    _actions,
    _as_tables,
    _ns,
    _trades_for_stats,
    _valid_fills,
)

__all__ = ["decision_outcomes", "calibration", "CONFIDENCE_BINS"]

_NAT = np.iinfo(np.int64).min
#: default confidence bins of :func:`calibration` (fractions; right edge included)
CONFIDENCE_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Which side of a round trip an action opens or closes.
_ACTION_SIDE = {"open_long": "long", "open_short": "short", "close_long": "long", "close_short": "short"}


def _duration(v: Any, what: str) -> pd.Timedelta:
    d = pd.Timedelta(v)
    if pd.isna(d) or d < pd.Timedelta(0):
        raise ValueError(f"{what} must be a non-negative duration, got {v!r}")
    return d


def _label(h: Any) -> str:
    return h if isinstance(h, str) else pd.tseries.frequencies.to_offset(pd.Timedelta(h)).freqstr


def _to_time(ns: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(ns, dtype="int64").view("datetime64[ns]")).dt.tz_localize("UTC").astype(_UTC)


_POSITION_SIGN = {"open_long": 1, "close_long": 1, "open_short": -1, "close_short": -1}


def _fill_side_votes(dec: pd.DataFrame, fills: pd.DataFrame, tol: pd.Timedelta) -> dict[str, tuple[int, int]]:
    """Per agent: closing fills whose ``side`` is the position's side vs the trade direction.

    The library reads a fill's ``side`` as its direction (a close of a long sells), but a
    source may report the side of the position instead (the bundled simulator does, for
    closes). Each fill is paired with the latest trading decision of its agent and symbol
    (as-of, ``tol`` early allowed); when that is a close, its side votes.
    """
    if dec.empty or fills.empty:
        return {}
    left = pd.DataFrame({"t": _ns(fills["timestamp"]), "agent": fills["agent_id"].astype(object).to_numpy(),
                         "sym": fills["rn_sym"].astype(object).to_numpy(),
                         "fdir": fills["rn_dir"].to_numpy("int64")}).sort_values("t", kind="mergesort")
    right = pd.DataFrame({"t": dec["_t"].to_numpy("int64") - tol.value,
                          "agent": dec["agent_id"].astype(object).to_numpy(),
                          "sym": dec["_sym"].astype(object).to_numpy(),
                          "act": dec["_action"].to_numpy()}).sort_values("t", kind="mergesort")
    m = pd.merge_asof(left, right, on="t", by=["agent", "sym"], direction="backward")
    m = m[m["act"].isin(["close_long", "close_short"])]
    pos = m["fdir"] == m["act"].map(_POSITION_SIGN)
    out = {}
    for a, g in pos.groupby(m["agent"], sort=True):
        out[str(a)] = (int(g.sum()), int((~g).sum()))
    return out


def _assign_fills(dec: pd.DataFrame, fills: pd.DataFrame, tol: pd.Timedelta) -> tuple[pd.DataFrame, np.ndarray]:
    """Per decision row (by position): first fill, count, quantity, VWAP, source; and the
    decision row each fill went to (-1: none)."""
    n = len(dec)
    out = {
        "order_id": pd.array([pd.NA] * n, dtype="string"),
        "fill_time": np.full(n, _NAT, dtype="int64"),
        "fill_price": np.full(n, np.nan),
        "fill_quantity": np.full(n, np.nan),
        "n_fills": np.zeros(n, dtype="int64"),
        "fill_source": pd.array([pd.NA] * n, dtype="string"),
    }
    owner = np.full(len(fills), -1, dtype="int64")
    if n == 0 or fills.empty:
        return pd.DataFrame(out), owner
    left = pd.DataFrame({
        "t": _ns(fills["timestamp"]),
        "agent": fills["agent_id"].astype(object).to_numpy(),
        "sym": fills["rn_sym"].astype(object).to_numpy(),
        "dir": fills["rn_dir"].to_numpy("int64"),
        "fi": np.arange(len(fills)),
    }).sort_values("t", kind="mergesort")
    right = pd.DataFrame({
        # a decision "starts" `tol` before its logged time (orders precede the log)
        "t": dec["_t"].to_numpy("int64") - tol.value,
        "agent": dec["agent_id"].astype(object).to_numpy(),
        "sym": dec["_sym"].astype(object).to_numpy(),
        "dir": dec["_dir"].to_numpy("int64"),
        "di": np.arange(n),
    })
    right = right[right["t"] > _NAT + tol.value].sort_values(["t", "di"], kind="mergesort")
    # latest decision at or before each fill; ties keep the last (the later item)
    m = pd.merge_asof(left, right, on="t", by=["agent", "sym", "dir"], direction="backward")
    m = m[m["di"].notna()]
    if m.empty:
        return pd.DataFrame(out), owner
    m = m.assign(di=m["di"].astype("int64"))
    owner[m["fi"].to_numpy()] = m["di"].to_numpy()
    f_t = _ns(fills["timestamp"])
    qty = fills["quantity"].to_numpy("float64")
    px = fills["price"].to_numpy("float64")
    oid = fills["order_id"].astype("string").to_numpy()
    src = (fills["source"].astype("string").to_numpy() if "source" in fills.columns
           else np.array([pd.NA] * len(fills), dtype=object))
    for di, g in m.groupby("di", sort=False):
        fi = g["fi"].to_numpy()
        first = fi[np.argmin(f_t[fi])]
        q = qty[fi]
        out["order_id"][di] = oid[first]
        out["fill_time"][di] = f_t[first]
        out["fill_quantity"][di] = q.sum()
        out["fill_price"][di] = float((q * px[fi]).sum() / q.sum())
        out["n_fills"][di] = len(fi)
        out["fill_source"][di] = src[first]
    return pd.DataFrame(out), owner


def _round_trip_match(dec: pd.DataFrame, ref: np.ndarray, rt: pd.DataFrame, tol: pd.Timedelta) -> pd.DataFrame:
    """P&L, open/close time of the round trip each trading decision opened or closed."""
    n = len(dec)
    res = pd.DataFrame({"pnl_usdt": np.full(n, np.nan), "pnl_pct": np.full(n, np.nan),
                        "open_time": np.full(n, _NAT, dtype="int64"),
                        "close_time": np.full(n, _NAT, dtype="int64")})
    if n == 0 or rt.empty:
        return res
    rt = rt[rt["pnl_usdt"].notna() & rt["symbol"].notna() & rt["side"].notna()]
    rt = rt.assign(agent=rt["agent_id"].astype(object),
                   sym=rt["symbol"].str.strip().str.upper().astype(object),
                   side=rt["side"].str.strip().str.lower().astype(object),
                   ot=_ns(rt["open_time"]), ct=_ns(rt["close_time"].fillna(rt["timestamp"])),
                   w=rt["quantity"].fillna(0.0) * rt["entry_price"].fillna(0.0))
    actions = dec["_action"].to_numpy()
    side = pd.Series(actions).map(_ACTION_SIDE).astype(object).to_numpy()
    is_open = np.char.startswith(actions.astype(str), "open_")
    for opening, key in ((True, "ot"), (False, "ct")):
        sel = np.flatnonzero((is_open == opening) & (ref != _NAT))
        pool = rt[rt[key] != _NAT]
        if not len(sel) or pool.empty:
            continue
        # partial closes of one opening are several rows: one trip per (agent, sym, side, time)
        g = pool.assign(wp=pool["pnl_pct"] * pool["w"]).groupby(
            ["agent", "sym", "side", key], sort=False)
        agg = pd.DataFrame({"pnl_usdt": g["pnl_usdt"].sum(), "wp": g["wp"].sum(),
                            "w": g["w"].sum(), "first_open": g["ot"].min(),
                            "last_close": g["ct"].max()}).reset_index()
        agg = agg.rename(columns={key: "t"})
        agg = agg.sort_values("t", kind="mergesort")
        left = pd.DataFrame({"t": ref[sel], "agent": dec["agent_id"].astype(object).to_numpy()[sel],
                             "sym": dec["_sym"].astype(object).to_numpy()[sel], "side": side[sel],
                             "row": sel}).sort_values("t", kind="mergesort")
        m = pd.merge_asof(left, agg, on="t", by=["agent", "sym", "side"], direction="nearest",
                          tolerance=int(tol.value))
        m = m[m["pnl_usdt"].notna()]
        rows = m["row"].to_numpy()
        res.loc[rows, "pnl_usdt"] = m["pnl_usdt"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            res.loc[rows, "pnl_pct"] = (m["wp"] / m["w"]).to_numpy()
        res.loc[rows, "open_time"] = m["first_open"].to_numpy("int64")
        res.loc[rows, "close_time"] = m["last_close"].to_numpy("int64")
    return res


def _price_book(tables: dict[str, pd.DataFrame]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """symbol -> (sorted times ns, prices) from marks, fills and round-trip prices."""
    parts = []
    ph = tables["position_history"]
    parts.append((ph["symbol"], ph["timestamp"], ph["mark_price"]))
    tr = tables["trades"]
    parts.append((tr["symbol"], tr["timestamp"], tr["price"]))
    ct = tables["closed_trades"]
    parts.append((ct["symbol"], ct["open_time"], ct["entry_price"]))
    parts.append((ct["symbol"], ct["close_time"], ct["close_price"]))
    frames = [pd.DataFrame({"sym": s.str.strip().str.upper().astype(object), "t": _ns(t),
                            "p": p.to_numpy("float64")}) for s, t, p in parts if len(s)]
    if not frames:
        return {}
    df = pd.concat(frames, ignore_index=True)
    df = df[df["sym"].notna() & (df["t"] != _NAT) & np.isfinite(df["p"]) & (df["p"] > 0)]
    df = df.sort_values(["sym", "t"], kind="mergesort")
    return {s: (g["t"].to_numpy("int64"), g["p"].to_numpy("float64")) for s, g in df.groupby("sym", sort=False)}


def _price_at(book: dict, syms: np.ndarray, t: np.ndarray, stale: int, after: np.ndarray | None) -> np.ndarray:
    """Last price at or before ``t`` per row, at most ``stale`` ns old (and > ``after``)."""
    out = np.full(len(t), np.nan)
    for s in pd.unique(syms):
        if s not in book:
            continue
        times, prices = book[s]
        rows = np.flatnonzero((syms == s) & (t != _NAT))
        j = np.searchsorted(times, t[rows], side="right") - 1
        ok = j >= 0
        jj = np.maximum(j, 0)
        ok &= times[jj] >= t[rows] - stale
        if after is not None:
            ok &= times[jj] > after[rows]
        out[rows[ok]] = prices[jj[ok]]
    return out


def decision_outcomes(
    source: Any,
    horizons: Iterable[str | pd.Timedelta] = ("15min", "1h", "4h"),
    *,
    tolerance: str | pd.Timedelta = "2min",
    staleness: str | pd.Timedelta = "15min",
) -> pd.DataFrame:
    """One row per decision item: what it led to and what the market did next.

    See the module docstring for how fills, round trips and moves are matched.

    Args:
        source: A stream, stream group, recording or dict of tables.
        horizons: Durations after the decision for the market move (pandas strings or
            Timedeltas); each gives ``move_<h>`` and ``edge_<h>``.
        tolerance: How long before its logged time a decision's fill may come, and the
            largest gap when matching a round trip's open/close time.
        staleness: Oldest a price may be to count as the price at an instant.

    Returns:
        The decision rows (all their columns, in time order) plus ``direction`` (+1 buy,
        −1 sell, NaN for hold/wait), ``filled`` (bool), ``n_fills``, ``order_id`` (first
        fill), ``fill_time``, ``fill_latency`` (timedelta; may be slightly negative,
        see ``tolerance``), ``fill_price`` (quantity-weighted), ``fill_quantity``,
        ``fill_source``, ``pnl_usdt`` and ``pnl_pct`` of the round trip opened or closed,
        ``open_time``, ``close_time``, ``holding_time``, then ``price`` (at the decision)
        and, per horizon, ``move_<h>`` (percent) and ``edge_<h>`` (percent, signed).

    Example:
        >>> out = decision_outcomes(rec, horizons=("1h",))               # doctest: +SKIP
        >>> out.groupby("action")[["pnl_usdt", "edge_1h"]].mean()       # doctest: +SKIP
    """
    tol = _duration(tolerance, "tolerance")
    stale = _duration(staleness, "staleness")
    hs = [(_label(h), _duration(h, "horizon")) for h in horizons]
    if len({lab for lab, _ in hs}) != len(hs):
        raise ValueError(f"horizons must be distinct, got {list(horizons)!r}")
    tables = _as_tables(source, "decisions", "trades", "closed_trades", "position_history")
    return _outcomes(tables, hs, tol, stale)[0]


def _outcomes(tables: dict[str, pd.DataFrame], hs: list, tol: pd.Timedelta, stale: pd.Timedelta
              ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`decision_outcomes` on normalised tables, plus what the audit needs:
    ``fills`` (valid fills), ``owner`` (decision row of each fill, -1 none), ``votes``."""
    dec = tables["decisions"].reset_index(drop=True)
    act = _actions(dec)
    dec = dec.assign(_action=act.astype(object).to_numpy(),
                     _sym=dec["symbol"].str.strip().str.upper(),
                     _t=_ns(dec["timestamp"]))
    direction = act.map(_ACTION_DIRECTION).astype("float64").to_numpy()
    trading = np.isfinite(direction) & dec["_sym"].notna().to_numpy() & (dec["_t"].to_numpy() != _NAT)

    fills = _valid_fills(tables["trades"])
    tdec = dec[trading].assign(_dir=direction[trading].astype("int64"))
    # Agents whose closing fills carry the position's side are matched on that side.
    votes = _fill_side_votes(tdec, fills, tol)
    by_position = {a for a, (n_pos, n_dir) in votes.items() if n_pos > n_dir}
    if by_position:
        pos_sign = tdec["_action"].map(_POSITION_SIGN).astype("int64")
        tdec = tdec.assign(_dir=tdec["_dir"].where(~tdec["agent_id"].isin(by_position), pos_sign))
    got, owner = _assign_fills(tdec, fills, tol)
    rows = np.flatnonzero(trading)
    trades = tables["trades"]
    if by_position:
        # Round trips need directions: a close's fill sells a long and buys back a short.
        acts = tdec["_action"].to_numpy()
        fix = np.flatnonzero((owner >= 0) & fills["agent_id"].isin(by_position).to_numpy())
        fix = fix[np.char.startswith(acts[owner[fix]].astype(str), "close_")]
        side = trades["side"].astype(object).to_numpy().copy()
        loc = trades.index.get_indexer(fills.index[fix])
        side[loc] = np.where(acts[owner[fix]] == "close_long", "short", "long")
        trades = trades.assign(side=pd.array(side, dtype="string"))
    n = len(dec)
    fill_time = np.full(n, _NAT, dtype="int64")
    fill_time[rows] = got["fill_time"].to_numpy()
    ref = np.where(fill_time != _NAT, fill_time, dec["_t"].to_numpy("int64"))[rows]
    rt_all = _trades_for_stats({"trades": trades, "closed_trades": tables["closed_trades"]})
    rt = _round_trip_match(tdec.reset_index(drop=True), ref, rt_all, tol)

    out = dec.drop(columns=["_action", "_sym", "_t"])
    out["direction"] = direction
    out["filled"] = fill_time != _NAT
    n_fills = np.zeros(n, dtype="int64")
    n_fills[rows] = got["n_fills"].to_numpy()
    out["n_fills"] = n_fills
    for col, dtype in (("order_id", "string"), ("fill_source", "string")):
        s = pd.Series(pd.NA, index=out.index, dtype=dtype)
        s.iloc[rows] = got[col].to_numpy()
        out[col] = s
    ft = _to_time(fill_time)
    out["fill_time"] = ft.to_numpy()
    out["fill_latency"] = (ft - out["timestamp"].reset_index(drop=True)).to_numpy()
    for col in ("fill_price", "fill_quantity", "pnl_usdt", "pnl_pct"):
        v = np.full(n, np.nan)
        v[rows] = (got if col.startswith("fill") else rt)[col].to_numpy()
        out[col] = v
    for col in ("open_time", "close_time"):
        v = np.full(n, _NAT, dtype="int64")
        v[rows] = rt[col].to_numpy("int64")
        out[col] = _to_time(v).to_numpy()
    out["holding_time"] = (out["close_time"] - out["open_time"]).astype("timedelta64[ns]")

    book = _price_book(tables)
    syms = dec["_sym"].fillna("").astype(object).to_numpy()
    t = dec["_t"].to_numpy("int64")
    p0 = _price_at(book, syms, t, stale.value, None)
    out["price"] = p0
    for lab, h in hs:
        p1 = _price_at(book, syms, np.where(t != _NAT, t + h.value, _NAT), stale.value, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            move = (p1 / p0 - 1.0) * 100.0
        out[f"move_{lab}"] = move
        out[f"edge_{lab}"] = move * direction
    owner_rows = np.where(owner >= 0, rows[np.maximum(owner, 0)] if len(rows) else -1, -1)
    return out, {"fills": fills, "owner": owner_rows, "votes": votes}


def calibration(
    source: Any,
    *,
    bins: Iterable[float] = CONFIDENCE_BINS,
    horizon: str | pd.Timedelta = "1h",
    by_agent: bool = True,
    **kw: Any,
) -> pd.DataFrame:
    """Outcomes of trading decisions by their stated ``confidence``: are confident calls better?

    Decisions are those of :func:`decision_outcomes` with an open/close action; hold and
    wait are left out (they bet on nothing). Confidence is a fraction 0..1 (the table
    reads ``75`` as 0.75); decisions without one form the bin ``"not stated"``.

    Args:
        source: A stream, stream group, recording or dict of tables.
        bins: Bin edges of confidence (fractions, increasing); right edges included.
        horizon: Horizon of the market move scored (one of ``decision_outcomes``').
        by_agent: One group per agent and bin (True) or per bin over all agents.
        **kw: Passed to :func:`decision_outcomes` (``tolerance``, ``staleness``).

    Returns:
        DataFrame with ``agent_id`` (when ``by_agent``), ``confidence_bin``,
        ``n_decisions``, ``mean_confidence``, ``filled_rate``, ``n_trades`` (with a round
        trip P&L), ``win_rate`` (fraction of those with P&L > 0), ``avg_pnl_usdt``,
        ``n_scored`` (with an edge), ``hit_rate`` (fraction of edges > 0) and
        ``avg_edge_pct`` over ``horizon``.

    Example:
        >>> calibration(rec, horizon="1h")                 # doctest: +SKIP
    """
    edges = np.asarray(list(bins), dtype="float64")
    if len(edges) < 2 or not (np.diff(edges) > 0).all():
        raise ValueError(f"bins must be at least two increasing edges, got {list(bins)!r}")
    lab = _label(horizon)
    out = decision_outcomes(source, horizons=(horizon,), **kw)
    out = out[out["direction"].notna()]
    conf = out["confidence"].astype("float64")
    cat = pd.cut(conf, edges, include_lowest=True)
    names = cat.astype("string").fillna("not stated")
    # keep the bins in numeric order, "not stated" last
    order = [str(c) for c in cat.cat.categories] + ["not stated"]
    edge = out[f"edge_{lab}"]
    df = pd.DataFrame({
        "agent_id": out["agent_id"].astype("string"),
        "confidence_bin": pd.Categorical(names, categories=order, ordered=True),
        "confidence": conf, "filled": out["filled"].astype("float64"),
        "pnl": out["pnl_usdt"], "win": (out["pnl_usdt"] > 0).where(out["pnl_usdt"].notna()),
        "edge": edge, "hit": (edge > 0).where(edge.notna()),
    })
    keys = ["agent_id", "confidence_bin"] if by_agent else ["confidence_bin"]
    g = df.groupby(keys, observed=True, sort=True)
    res = pd.DataFrame({
        "n_decisions": g.size(),
        "mean_confidence": g["confidence"].mean(),
        "filled_rate": g["filled"].mean(),
        "n_trades": g["pnl"].count(),
        "win_rate": g["win"].mean(),
        "avg_pnl_usdt": g["pnl"].mean(),
        "n_scored": g["edge"].count(),
        "hit_rate": g["hit"].mean(),
        "avg_edge_pct": g["edge"].mean(),
    }).reset_index()
    res["confidence_bin"] = res["confidence_bin"].astype("string")
    dtypes = {"n_decisions": "int64", "n_trades": "int64", "n_scored": "int64"}
    res = res.astype(dtypes)
    for c in ("mean_confidence", "filled_rate", "win_rate", "avg_pnl_usdt", "hit_rate", "avg_edge_pct"):
        res[c] = res[c].astype("float64")
    return res
