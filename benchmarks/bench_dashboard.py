"""Dashboard render cost: Python time and bytes per refresh with 1M rows, first render.

Run: ``python benchmarks/bench_dashboard.py [--rows 1000000] [--refreshes 40]``

What it measures, and how:

- *Python time per refresh*: a :class:`~roma_notebook.views.dashboard.Dashboard` over a
  ``Tables`` holding ``--rows`` account rows; before each refresh 250 new rows
  arrive (1,000 msg/s at the default 4 fps), then ``refresh()`` is timed. The part
  spent reading tables (``Tables.frame`` / ``Tables.read_since``, owned by
  ``tables.py``) is reported separately from the view's own work.
- *before/after, in one run*: the same refresh on a second, identically filled
  ``Tables`` whose dashboard re-reads the whole account table on every refresh
  (what :class:`~roma_notebook.views.views_series.AccountSeries` did before incremental
  reads: ``Tables.frame`` joins the history with the new rows each time). The two
  dashboards take turns, refresh by refresh, so machine noise hits both alike.
- *bytes per refresh*: every comm message the widgets send is captured by a
  recording ``comm`` implementation (the same hook ipykernel uses); its JSON plus
  binary buffers is what would cross the websocket to the browser.
- *first render*: constructing a Dashboard (FigureWidget + widgets + first
  refresh), cold (first in the process: plotly loads its ~5 MB widget bundle) and
  warm (second construction: what a user pays for a new view on a warm kernel).

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import comm  # noqa: E402
from comm.base_comm import BaseComm  # noqa: E402

SENT: list[int] = []


class _RecordingComm(BaseComm):
    """Counts the bytes each widget message would put on the wire."""

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        size = len(json.dumps(data, default=str))
        for b in buffers or ():
            size += memoryview(b).nbytes
        SENT.append(size)


comm.create_comm = lambda *a, **k: _RecordingComm(*a, **k)

from roma_notebook.core import protocol as P  # noqa: E402
from roma_notebook.views.dashboard import Dashboard  # noqa: E402
from roma_notebook.core.tables import Tables  # noqa: E402
from roma_notebook.views.views_series import AccountSeries  # noqa: E402

T0 = 1_750_000_000 * 10**9
SEC = 10**9


class _Source:
    """A stand-in stream: real Tables, fed with real events."""

    def __init__(self, agent_id: str = "bench"):
        self.agent_id = agent_id
        self.tables = Tables()
        self.state = "live"
        self.last_error = None

    def stats(self) -> dict:
        return {"messages": 0, "rate": 1000.0, "last_message_at": None, "errors": 0}


def _fill(src: _Source, rows: int) -> None:
    import math

    app = src.tables.append
    for i in range(rows):
        t = T0 + i * SEC
        app(src.agent_id, P.AccountUpdate(t, 10_000 + 50 * math.sin(i / 5000) + (i % 97) * 0.01,
                                          9_000.0, 5 * math.cos(i / 700), 10.0), t)
    pos = P.Position("BTCUSDT", "LONG", 0.5, 60_000.0, 61_000.0, 500.0, 8.3, 10, 50_000.0)
    src.tables.append(src.agent_id, P.PositionUpdate(T0 + rows * SEC, (pos,)), T0 + rows * SEC)
    for c in range(200):
        t = T0 + c * (rows // 200) * SEC
        item = P.DecisionItem("open_long", "BTCUSDT", 0.1, 10, "trend", math.nan, math.nan, math.nan)
        src.tables.append(src.agent_id, P.Decision(t, c, src.agent_id, "reasoning " * 30, (item,)), t)
        src.tables.append(src.agent_id, P.TradeExecuted(t, f"o{c}", "BTCUSDT", "BUY", 0.1,
                                                        60_000.0, 10, "FILLED"), t)


class _FullReadSeries(AccountSeries):
    """The account series as it was before incremental reads: the whole table per change."""

    def update(self) -> bool:
        v = self.tables.table_version("account")
        if v == self.version:
            return False
        df = self.tables.frame("account")
        total = self.tables.counts().get("account", len(df))
        x = df["timestamp"].array.asi8
        prev_n, prev_mono, prev_offset = len(self), self.monotonic, self.offset
        offset = max(0, int(total) - len(df))
        if len(x) >= prev_n and offset == prev_offset and prev_n:
            mono = prev_mono and bool(np.all(np.diff(x[prev_n - 1 :]) >= 0))
        else:
            mono = bool(np.all(np.diff(x) >= 0)) if len(x) > 1 else True
        if len(x) + offset < prev_n + prev_offset or offset < prev_offset:
            self.generation += 1
        self._xb = x
        self._bb = df["total_balance"].to_numpy(dtype=np.float64, na_value=np.nan)
        self._pb = df["unrealized_pnl"].to_numpy(dtype=np.float64, na_value=np.nan)
        self._lo, self._hi = 0, len(x)
        self.offset, self.monotonic, self.version = offset, mono, v
        return True


def _timed_reads(tables: Tables, sink: list[float]) -> None:
    """Record the time spent in the table reads (they belong to tables.py, not the view)."""
    for name in ("frame", "read_since"):
        real = getattr(tables, name)

        def timed(*a, _real=real, **k):
            t0 = time.perf_counter()
            try:
                return _real(*a, **k)
            finally:
                sink.append(time.perf_counter() - t0)

        setattr(tables, name, timed)


def _more_rows(src: _Source, n: int, batch: int) -> int:
    for _ in range(batch):
        ts = T0 + n * SEC
        src.tables.append(src.agent_id, P.AccountUpdate(ts, 10_000.0 + (n % 13), 9_000.0,
                                                        1.0, 10.0), ts)
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--refreshes", type=int, default=40)
    ap.add_argument("--batch", type=int, default=250, help="new account rows per refresh")
    args = ap.parse_args()

    src = _Source()
    t = time.perf_counter()
    _fill(src, args.rows)
    fill_s = time.perf_counter() - t

    t = time.perf_counter()
    cold = Dashboard(src, _managed=True)  # no scheduler: refreshes are driven here
    cold_s = time.perf_counter() - t
    t = time.perf_counter()
    warm = Dashboard(src, _managed=True)
    warm_s = time.perf_counter() - t
    cold.close()

    # the baseline: an identical history behind a dashboard that re-reads it whole
    old_src = _Source()
    _fill(old_src, args.rows)
    old = Dashboard(old_src, _managed=True)
    old._series = _FullReadSeries(old_src.tables)
    old.refresh()

    runs = {"incremental": (src, warm), "full re-read": (old_src, old)}
    reads: dict[str, list[float]] = {k: [] for k in runs}
    for k, (s, _) in runs.items():
        _timed_reads(s.tables, reads[k])
    total_ms: dict[str, list[float]] = {k: [] for k in runs}
    view_ms: dict[str, list[float]] = {k: [] for k in runs}
    sent_bytes: list[int] = []
    n = args.rows
    for i in range(args.refreshes):
        n_next = 0
        order = list(runs) if i % 2 == 0 else list(runs)[::-1]
        for k in order:
            s, d = runs[k]
            n_next = _more_rows(s, n, args.batch)
            reads[k].clear()
            SENT.clear()
            t = time.perf_counter()
            d.refresh()
            dt = time.perf_counter() - t
            total_ms[k].append(dt * 1e3)
            view_ms[k].append((dt - sum(reads[k])) * 1e3)
            if k == "incremental":
                sent_bytes.append(sum(SENT))
        n = n_next
    points = max(len(tr.x) for tr in warm.figure.data)
    # both dashboards drew the same thing
    for a, b in zip(warm.figure.data, old.figure.data):
        assert np.array_equal(np.asarray(a.x), np.asarray(b.x)), a.name

    # zoom into the last 15 % of the history, as the page's relayout does
    xs = warm._series.x
    lo, hi = int(xs[0] + 0.85 * (xs[-1] - xs[0])), int(xs[-1])
    rows_in = int(((xs >= lo) & (xs <= hi)).sum())

    def in_range(trace) -> int:
        x = np.asarray(trace.x) * 1e6
        return int(((x >= lo) & (x <= hi)).sum())

    over_pts = in_range(warm.figure.data[0])
    iso = [str(np.datetime64(v, "ns")) for v in (lo, hi)]
    warm.figure.plotly_relayout({"xaxis.range[0]": iso[0], "xaxis.range[1]": iso[1]})
    t = time.perf_counter()
    warm.refresh()
    zoom_first_ms = (time.perf_counter() - t) * 1e3
    zoom_pts = in_range(warm.figure.data[0])
    zoom_ms = []
    for _ in range(max(args.refreshes // 2, 1)):
        n = _more_rows(src, n, args.batch)
        t = time.perf_counter()
        warm.refresh()
        zoom_ms.append((time.perf_counter() - t) * 1e3)
    zoom_max = max(len(tr.x) for tr in warm.figure.data)
    for _, d in runs.values():
        assert d.refresh_errors == 0, d.last_refresh_error
    warm.close()
    old.close()

    def med(v):
        return statistics.median(v)

    def p95(v):
        return sorted(v)[int(0.95 * (len(v) - 1))]

    new_t, old_t = total_ms["incremental"], total_ms["full re-read"]
    print(f"## Dashboard benchmark ({args.rows:,} account rows, {args.batch} new rows per refresh)\n")
    print("| measure | median | p95 | target |")
    print("|---|---|---|---|")
    print(f"| refresh, Python total (ms) | {med(new_t):.1f} | {p95(new_t):.1f} | <= 5 |")
    print(f"| refresh, view work excl. table reads (ms) | {med(view_ms['incremental']):.1f} | "
          f"{p95(view_ms['incremental']):.1f} | |")
    print(f"| refresh, inside table reads (ms) | {med(new_t) - med(view_ms['incremental']):.1f} | | |")
    print(f"| same refresh re-reading the whole table (before; ms) | {med(old_t):.1f} | {p95(old_t):.1f} | |")
    print(f"| of which `Tables.frame` (before; ms) | {med(old_t) - med(view_ms['full re-read']):.1f} | | |")
    print(f"| speed-up, median before / after | {med(old_t) / med(new_t):.1f}x | | |")
    print(f"| bytes sent per refresh | {med(sent_bytes):,.0f} | {p95(sent_bytes):,.0f} | |")
    print(f"| zoom to the last 15 %: points in range, overview -> zoomed (rows there) | "
          f"{over_pts:,} -> {zoom_pts:,} ({rows_in:,} rows) | | <= max_points |")
    print(f"| zoom: the refresh that re-decimates the range (ms) | {zoom_first_ms:.1f} | | |")
    print(f"| refresh while zoomed, live rows arriving (ms) | {med(zoom_ms):.1f} | {p95(zoom_ms):.1f} | |")
    print(f"| max points per trace while zoomed | {zoom_max:,} | | |")
    print(f"| max points per trace | {points:,} | | <= ~2,000 |")
    print(f"| first render, cold process (s) | {cold_s:.2f} | | |")
    print(f"| first render, warm (s) | {warm_s:.2f} | | < 3 |")
    print(f"\n(filling {args.rows:,} rows took {fill_s:.1f} s; not part of any measure)")


if __name__ == "__main__":
    main()
