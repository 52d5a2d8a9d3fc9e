"""Chart data for the live views: account history, fills and decision markers.

Pure pandas/numpy, no widgets. :class:`AccountSeries` follows one ``Tables``'
account table and keeps its time and value columns as numpy arrays; it re-reads
the table only when the table's version changed. :func:`window_slice` cuts the
visible time window and :func:`chart_xy` decimates it for the browser, so a
refresh with a million rows of history ships at most ``max_points`` per trace.

Times go to plotly as float epoch milliseconds on a ``type="date"`` axis: numeric
numpy arrays travel as binary comm buffers, whereas datetimes would be turned into
lists of strings (ten times the bytes and a slow Python loop).

Example:
    >>> from roma_notebook.core.tables import Tables
    >>> from roma_notebook import protocol as P
    >>> t = Tables()
    >>> for i in range(5):
    ...     _ = t.append("a", P.AccountUpdate(i * 10**9, 100.0 + i, 90.0, float(i), 1.0), i * 10**9)
    >>> s = AccountSeries(t)
    >>> s.update()
    True
    >>> x, y = chart_xy(s.x, s.balance, 0, 2000)
    >>> y.tolist()
    [100.0, 101.0, 102.0, 103.0, 104.0]
"""

from __future__ import annotations

import html
import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd

from .decimate import MinMaxCache, minmax_indices
from .formatting import action_tone
from .views_html import cycle_html, feed_html, group_items

__all__ = [
    "AccountSeries",
    "WINDOWS",
    "parse_window",
    "window_slice",
    "chart_xy",
    "place_markers",
    "RowFollower",
    "FillLog",
    "CycleLog",
    "ns_to_ms",
]

#: the time-window choices of the dashboards: key -> nanoseconds (None = all)
WINDOWS: dict[str, int | None] = {
    "1h": 3600 * 10**9,
    "6h": 6 * 3600 * 10**9,
    "24h": 24 * 3600 * 10**9,
    "all": None,
}


def parse_window(window: Any) -> tuple[str, int | None]:
    """Normalise a window argument to ``(key, nanoseconds or None)``.

    Accepts None / ``"all"``, the keys of :data:`WINDOWS`, or anything
    ``pd.Timedelta`` understands (``"30min"``, a ``timedelta``).

    Example:
        >>> parse_window("6h")
        ('6h', 21600000000000)
        >>> parse_window(None)
        ('all', None)
    """
    if window is None:
        return "all", None
    if isinstance(window, str) and window in WINDOWS:
        return window, WINDOWS[window]
    try:
        td = pd.Timedelta(window)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"window must be None, one of {', '.join(WINDOWS)}, or a duration like '30min'; "
            f"got {window!r}"
        ) from exc
    if td is pd.NaT or td.value <= 0:
        raise ValueError(f"window must be a positive duration, got {window!r}")
    return str(window) if isinstance(window, str) else str(td), int(td.value)


def ns_to_ms(x_ns: np.ndarray) -> np.ndarray:
    """Epoch nanoseconds (int64) to float epoch milliseconds for a plotly date axis."""
    return np.asarray(x_ns, dtype=np.int64) / 1e6


class AccountSeries:
    """The account history of one ``Tables`` as numpy arrays, grown by incremental reads.

    Each :meth:`update` takes only the rows appended since the last one
    (:meth:`Tables.read_since <roma_notebook.core.tables.Tables.read_since>`) and
    appends them to arrays that grow by doubling, so a refresh costs the new
    rows whatever the length of the history.

    Attributes:
        x: int64 epoch nanoseconds of each row (the row's ``timestamp``).
        balance, pnl: float64 ``total_balance`` and ``unrealized_pnl``.
        offset: absolute row number of ``x[0]`` (rows dropped by ``max_rows`` before
            it), so decimation buckets stay put as old rows fall off.
        monotonic: whether ``x`` never decreases (then windows cut by bisection).
        version: the table version the arrays reflect.
        generation: changes when rows were replaced rather than appended, which
            tells decimation caches to start over.

    The arrays are views that stay valid after later updates (new rows go past
    their end or into fresh arrays), so a caller may hold them across updates.
    """

    def __init__(self, tables: Any):
        self.tables = tables
        self.version = -1
        self.offset = 0
        self.monotonic = True
        self.generation = 0
        self._cursor: Any = None
        self._clear()

    def _clear(self) -> None:
        self._xb = np.empty(0, np.int64)
        self._bb = np.empty(0)
        self._pb = np.empty(0)
        self._lo = self._hi = 0  # the rows are buffer[_lo:_hi]
        self._last_drop = -1  # absolute row number of the newest row earlier than its predecessor

    @property
    def x(self) -> np.ndarray:
        return self._xb[self._lo : self._hi]

    @property
    def balance(self) -> np.ndarray:
        return self._bb[self._lo : self._hi]

    @property
    def pnl(self) -> np.ndarray:
        return self._pb[self._lo : self._hi]

    def __len__(self) -> int:
        return self._hi - self._lo

    def update(self) -> bool:
        """Take in the rows appended since the last update. Returns True when the arrays changed."""
        v = self.tables.table_version("account")
        if v == self.version:
            return False
        # version first: rows landing while we read show up at the next update
        rows, cur = self.tables.read_since("account", self._cursor)
        self._cursor = cur
        self.version = v
        changed = bool(len(rows))
        if cur.reset:
            self._clear()
            self.offset = cur.first
            self.generation += 1
            changed = True
        if cur.first > self.offset:  # max_rows dropped old rows: drop ours too
            self._lo = min(self._lo + cur.first - self.offset, self._hi)
            self.offset = cur.first
            changed = True
        if len(rows):
            self._append(
                rows["timestamp"].array.asi8,  # zero-copy int64 view; to_numpy() boxes objects
                rows["total_balance"].to_numpy(dtype=np.float64, na_value=np.nan),
                rows["unrealized_pnl"].to_numpy(dtype=np.float64, na_value=np.nan),
            )
        self.monotonic = self._last_drop <= self.offset
        return changed

    def _append(self, x: np.ndarray, bal: np.ndarray, pnl: np.ndarray) -> None:
        k, n = len(x), len(self)
        # where the new rows (and their join with the old ones) step back in time
        prev = self._xb[self._hi - 1 : self._hi]
        steps = np.diff(np.concatenate([prev, x]))
        back = np.flatnonzero(steps < 0)
        if len(back):
            self._last_drop = self.offset + n - len(prev) + int(back[-1]) + 1
        if self._hi + k > len(self._xb):
            # grow (or compact) into fresh arrays: views handed out before keep their rows
            cap = max(2 * (n + k), 1024)
            for name in ("_xb", "_bb", "_pb"):
                old = getattr(self, name)
                new = np.empty(cap, dtype=old.dtype)
                new[:n] = old[self._lo : self._hi]
                setattr(self, name, new)
            self._lo, self._hi = 0, n
        end = self._hi + k
        self._xb[self._hi : end] = x
        self._bb[self._hi : end] = bal
        self._pb[self._hi : end] = pnl
        self._hi = end

    def value_at(self, t_ns: np.ndarray, which: str = "balance") -> np.ndarray:
        """Values of the series at times ``t_ns`` (step: last row at or before each)."""
        y = self.balance if which == "balance" else self.pnl
        t_ns = np.asarray(t_ns, dtype=np.int64)
        if not len(self.x):
            return np.full(len(t_ns), np.nan)
        if self.monotonic:
            i = np.searchsorted(self.x, t_ns, side="right") - 1
        else:  # rare: clocks went backwards; nearest-by-sorted lookup
            order = np.argsort(self.x, kind="stable")
            i = order[np.clip(np.searchsorted(self.x[order], t_ns, side="right") - 1, 0, None)]
        return np.where(i >= 0, y[np.clip(i, 0, None)], y[0])

    @property
    def last_ns(self) -> int | None:
        """The latest timestamp (the window's right edge), or None when empty."""
        if not len(self.x):
            return None
        return int(self.x[-1]) if self.monotonic else int(self.x.max())


def window_slice(x: np.ndarray, monotonic: bool, end_ns: int | None, window_ns: int | None):
    """Rows of ``x`` within ``window_ns`` before ``end_ns``: a slice or a boolean mask.

    The window's right edge is the data's own latest time, not the wall clock: a
    recording or a fast simulator runs on its own clock.
    """
    if window_ns is None or end_ns is None or not len(x):
        return slice(0, len(x))
    start = end_ns - window_ns
    if monotonic:
        return slice(int(np.searchsorted(x, start, side="left")), len(x))
    return x >= start


def chart_xy(
    x_ns: np.ndarray,
    y: np.ndarray,
    offset: int,
    max_points: int,
    sel: Any = None,
    cache: MinMaxCache | None = None,
    generation: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decimated ``(x in epoch ms, y)`` of the selected rows, at most ``max_points``.

    Args:
        x_ns: int64 epoch nanoseconds.
        y: float values.
        offset: absolute row number of row 0 (keeps decimation buckets aligned).
        max_points: point budget per trace.
        sel: a slice or boolean mask from :func:`window_slice` (None: all rows).
        cache: a :class:`~roma_notebook.views.decimate.MinMaxCache` kept per series, so
            a refresh only scans the rows that arrived since the last one.
        generation: the series' :attr:`AccountSeries.generation` (cache validity).
    """
    if sel is None:
        sel = slice(0, len(x_ns))
    if isinstance(sel, slice):
        start = sel.start or 0
        ys = y[sel]
        if cache is not None:
            idx = cache.indices(ys, max_points, offset + start, generation)
        else:
            idx = minmax_indices(ys, max_points, offset + start)
        return ns_to_ms(x_ns[start + idx]), np.ascontiguousarray(ys[idx], dtype=np.float64)
    # a mask (clocks went backwards): rare, so no cache
    xs, ys = x_ns[sel], y[sel]
    if not len(xs):
        return np.empty(0), np.empty(0)
    idx = minmax_indices(ys, max_points, 0)
    return ns_to_ms(xs[idx]), np.ascontiguousarray(ys[idx], dtype=np.float64)


def _ts_ns(df: pd.DataFrame, col: str = "timestamp") -> np.ndarray:
    return df[col].array.asi8 if len(df) else np.empty(0, np.int64)


class RowFollower:
    """Hands out only the rows of a growing table that were not handed out before.

    Tables only append, so the new rows are those after the last one seen. The
    follower remembers that row's identity (``agent_id``, ``seq``) and checks it
    is still where it was; when ``max_rows`` dropped old rows it finds it again,
    and when it is gone altogether it starts over (``reset`` is then True).

    Example:
        >>> f = RowFollower()
        >>> df = pd.DataFrame({"agent_id": ["a", "a"], "seq": [0, 1]})
        >>> len(f.new_rows(df)[0]), len(f.new_rows(df)[0])
        (2, 0)
    """

    def __init__(self) -> None:
        self.n = 0
        self._last: tuple | None = None

    def new_rows(self, df: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
        """``(rows not seen yet, reset)``; ``reset`` means "forget what you built"."""
        n = len(df)
        start, reset = 0, self._last is not None
        if self._last is not None and 0 < self.n <= n and self._key(df, self.n - 1) == self._last:
            start, reset = self.n, False
        elif self._last is not None and n:
            seq = df["seq"].to_numpy()
            for h in np.flatnonzero(seq == self._last[1])[::-1]:
                if self._key(df, int(h)) == self._last:
                    start, reset = int(h) + 1, False
                    break
        self.n = n
        self._last = self._key(df, n - 1) if n else None
        return df.iloc[start:], reset

    @staticmethod
    def _key(df: pd.DataFrame, i: int) -> tuple:
        return (df["agent_id"].iat[i], int(df["seq"].iat[i]))


class FillLog:
    """Fills seen so far (the newest ``keep``), each rendered once.

    Buys and sells are drawn as two traces (up and down triangles), so shapes and
    colours are per trace: per-point symbol strings cost plotly ~30 ms per
    thousand to validate on every update.
    """

    def __init__(self, keep: int = 5000) -> None:
        self.keep = keep
        self._follow = RowFollower()
        self.x_ns: list[int] = []
        self.buy: list[bool] = []
        self.symbol: list[Any] = []
        self.text: list[str] = []
        self.version = 0  # bumps when the entries change

    def update(self, trades: pd.DataFrame) -> None:
        """Take in the rows of ``trades`` not seen before."""
        new, reset = self._follow.new_rows(trades)
        if reset:
            self.x_ns, self.buy, self.symbol, self.text = [], [], [], []
            self.version += 1
        if not len(new):
            return
        t = _ts_ns(new).tolist()
        cols = new[["side", "symbol", "quantity", "price", "leverage"]].to_dict("records")
        for ts, row in zip(t, cols):
            side = "" if _na(row["side"]) else str(row["side"]).upper()
            lev = row["leverage"]
            lev_s = "" if _na(lev) else f" {int(lev)}x"
            self.x_ns.append(ts)
            self.buy.append(side in ("BUY", "LONG"))
            self.symbol.append(row["symbol"])
            self.text.append(
                f"{html.escape(side)} {html.escape(str(row['symbol']))} "
                f"{_g(row['quantity'])} @ {_g(row['price'])}{lev_s}"
            )
        if len(self.x_ns) > self.keep:
            cut = len(self.x_ns) - self.keep
            for lst in (self.x_ns, self.buy, self.symbol, self.text):
                del lst[:cut]
        self.version += 1

    def markers(self, symbol: str | None, limit: int) -> tuple[dict, dict]:
        """``(buys, sells)`` marker data (``x_ns``, hover ``text``) of the newest
        ``limit`` fills, on ``symbol`` only when given."""
        idx = [i for i in range(len(self.x_ns)) if symbol is None or self.symbol[i] == symbol]
        idx = idx[-limit:]
        out = []
        for want in (True, False):
            sel = [i for i in idx if self.buy[i] is want]
            out.append({
                "x_ns": np.asarray([self.x_ns[i] for i in sel], dtype=np.int64),
                "text": [self.text[i] for i in sel],
            })
        return out[0], out[1]


def place_markers(base: dict[str, Any], series: AccountSeries, start_ns: int | None) -> dict:
    """Markers (``x_ns`` plus per-marker lists or arrays) inside the window, on the
    balance line: adds ``x`` (epoch ms) and ``y`` (the balance at each marker's
    time), so the markers sit on the line they explain."""
    x = base["x_ns"]
    out = dict(base)
    if start_ns is not None and len(x):
        keep = x >= start_ns
        if not keep.all():
            idx = np.flatnonzero(keep)
            for k, v in base.items():
                out[k] = v[keep] if isinstance(v, np.ndarray) else [v[i] for i in idx]
            x = out["x_ns"]
    out["x"] = ns_to_ms(x)
    out["y"] = series.value_at(x)
    return out


def _na(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _g(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "?"
    return "?" if math.isnan(f) else f"{f:,.6g}"


def _hover_reasoning(text: Any, lines: int = 4, width: int = 80) -> str:
    if _na(text) or not str(text).strip():
        return ""
    wrapped: list[str] = []
    for para in str(text).splitlines():
        wrapped += textwrap.wrap(para, width) or [""]
        if len(wrapped) > lines:
            break
    more = "…" if len(wrapped) > lines else ""
    return "<br>".join(html.escape(s) for s in wrapped[:lines]) + more


class CycleLog:
    """Decision cycles seen so far (the newest ``keep``), each rendered once.

    A cycle never changes once it arrived (the tables drop duplicates by
    ``(agent_id, cycle)``), so its hover text and its feed entry are built once
    and cached per symbol filter; a refresh only renders the cycles that are new.
    Items arrive with their cycle, but the two tables are read one after the
    other, so items whose cycle row is not visible yet wait in ``_pending``.

    Example:
        >>> log = CycleLog()
        >>> log.update(pd.DataFrame({"agent_id": ["a"], "seq": [0], "cycle": [1],
        ...     "timestamp": pd.to_datetime([0], utc=True), "ai_reasoning": ["why"]}),
        ...     pd.DataFrame({"agent_id": ["a"], "seq": [0], "cycle": [1],
        ...     "action": ["open_long"], "symbol": ["BTCUSDT"]}))
        >>> log.markers(None, 10)["tone"].tolist()
        [1.0]
    """

    def __init__(self, keep: int = 5000) -> None:
        self.keep = keep
        self._fc = RowFollower()
        self._fd = RowFollower()
        self._pending: dict[tuple, list[dict]] = {}
        self.entries: list[dict] = []  # oldest first
        self.version = 0

    def update(self, cycles: pd.DataFrame, decisions: pd.DataFrame) -> None:
        """Take in the cycles and items not seen before."""
        new_d, reset_d = self._fd.new_rows(decisions)
        new_c, reset_c = self._fc.new_rows(cycles)
        if reset_c or reset_d:  # rows were dropped under us: start over
            self._fc, self._fd = RowFollower(), RowFollower()
            self._pending, self.entries = {}, []
            new_d, _ = self._fd.new_rows(decisions)
            new_c, _ = self._fc.new_rows(cycles)
            self.version += 1
        for key, its in group_items(new_d).items():
            self._pending.setdefault(key, []).extend(its)
        if not len(new_c):
            return
        t = _ts_ns(new_c).tolist()
        cols = [c for c in ("agent_id", "cycle", "timestamp", "ai_reasoning") if c in new_c.columns]
        for ts, rec in zip(t, new_c[cols].to_dict("records")):
            cyc = None if _na(rec.get("cycle")) else int(rec["cycle"])
            items = self._pending.pop((rec.get("agent_id"), cyc), [])
            self.entries.append({"x_ns": ts, "rec": rec, "cycle": cyc, "items": items,
                                 "symbols": {i.get("symbol") for i in items}, "cache": {}})
        if len(self.entries) > self.keep:
            del self.entries[: len(self.entries) - self.keep]
        if len(self._pending) > 4 * self.keep:  # items whose cycle never came
            self._pending.clear()
        self.version += 1

    def _select(self, symbol: str | None, limit: int) -> list[dict]:
        """The newest ``limit`` entries with an item on ``symbol`` (all when None), newest first."""
        out = []
        for e in reversed(self.entries):
            if symbol is None or symbol in e["symbols"]:
                out.append(e)
                if len(out) >= limit:
                    break
        return out

    @staticmethod
    def _items(e: dict, symbol: str | None) -> list[dict]:
        if symbol is None:
            return e["items"]
        return [i for i in e["items"] if i.get("symbol") == symbol]

    def markers(self, symbol: str | None, limit: int) -> dict[str, Any]:
        """Marker data of the newest ``limit`` cycles: ``x_ns``, ``tone``, hover ``text``.

        The hover shows the cycle, its actions and the first lines of the
        reasoning. ``tone`` tells the leading action: +1 opens long, -1 opens
        short, 0 anything else (hold, wait, close); the chart maps it through a
        colour scale, because numeric colours validate ~100x faster than strings.
        """
        sel = self._select(symbol, limit)[::-1]
        texts, tones = [], []
        for e in sel:
            hit = e["cache"].get(("hover", symbol))
            if hit is None:
                hit = e["cache"][("hover", symbol)] = _hover_entry(e, self._items(e, symbol))
            texts.append(hit[0])
            tones.append(hit[1])
        return {
            "x_ns": np.asarray([e["x_ns"] for e in sel], dtype=np.int64),
            "tone": np.asarray(tones, dtype=np.float64),
            "text": texts,
        }

    def feed_html(self, symbol: str | None, limit: int) -> str:
        """The decisions feed, newest first ."""
        parts = []
        for e in self._select(symbol, limit):
            hit = e["cache"].get(("feed", symbol))
            if hit is None:
                hit = e["cache"][("feed", symbol)] = cycle_html(
                    e["rec"], e["cycle"], self._items(e, symbol)
                )
            parts.append(hit)
        return feed_html(parts, symbol, bool(self.entries))


def _hover_entry(e: dict, its: list[dict]) -> tuple[str, float]:
    acts = "<br>".join(
        html.escape(" ".join(str(v) for v in (str(i.get("action") or "?").upper(),
                                               i.get("symbol")) if not _na(v)))
        for i in its[:6]
    ) or "no action"
    reasoning = _hover_reasoning(e["rec"].get("ai_reasoning"))
    label = "cycle" if e["cycle"] is None else f"cycle {e['cycle']}"
    text = f"<b>{label}</b><br>{acts}" + (f"<br><i>{reasoning}</i>" if reasoning else "")
    return text, float(action_tone(its[0].get("action"))) if its else 0.0

