"""Dashboard render cost: Python time and bytes per refresh with 1M rows, first render.

Run: ``python benchmarks/bench_dashboard.py [--rows 1000000] [--refreshes 40]``

What it measures, and how:

- *Python time per refresh*: a :class:`~roma_notebook.dashboard.Dashboard` over a
  ``Tables`` holding ``--rows`` account rows; before each refresh 250 new rows
  arrive (1,000 msg/s at the default 4 fps), then ``refresh()`` is timed. The part
  spent inside ``Tables.frame`` (materialising the DataFrame, owned by
  ``tables.py``) is reported separately from the view's own work.
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

from roma_notebook import protocol as P  # noqa: E402
from roma_notebook.dashboard import Dashboard  # noqa: E402
from roma_notebook.tables import Tables  # noqa: E402

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

    # time Tables.frame separately: it belongs to tables.py, not to the view
    frame_cost: list[float] = []
    real_frame = src.tables.frame

    def timed_frame(name: str):
        t0 = time.perf_counter()
        try:
            return real_frame(name)
        finally:
            frame_cost.append(time.perf_counter() - t0)

    src.tables.frame = timed_frame  # type: ignore[method-assign]

    total_ms, view_ms, sent_bytes = [], [], []
    n = args.rows
    for _ in range(args.refreshes):
        for _ in range(args.batch):
            ts = T0 + n * SEC
            src.tables.append(src.agent_id, P.AccountUpdate(ts, 10_000.0 + (n % 13), 9_000.0,
                                                            1.0, 10.0), ts)
            n += 1
        frame_cost.clear()
        SENT.clear()
        t = time.perf_counter()
        warm.refresh()
        dt = time.perf_counter() - t
        total_ms.append(dt * 1e3)
        view_ms.append((dt - sum(frame_cost)) * 1e3)
        sent_bytes.append(sum(SENT))
    points = max(len(tr.x) for tr in warm.figure.data)
    assert warm.refresh_errors == 0, warm.last_refresh_error
    warm.close()

    def med(v):
        return statistics.median(v)

    def p95(v):
        return sorted(v)[int(0.95 * (len(v) - 1))]

    print(f"## Dashboard benchmark ({args.rows:,} account rows, {args.batch} new rows per refresh)\n")
    print("| measure | median | p95 | target |")
    print("|---|---|---|---|")
    print(f"| refresh, Python total (ms) | {med(total_ms):.1f} | {p95(total_ms):.1f} | < 20 |")
    print(f"| refresh, view work excl. `Tables.frame` (ms) | {med(view_ms):.1f} | {p95(view_ms):.1f} | |")
    print(f"| refresh, inside `Tables.frame` (ms) | {med(total_ms) - med(view_ms):.1f} | | |")
    print(f"| bytes sent per refresh | {med(sent_bytes):,.0f} | {p95(sent_bytes):,.0f} | |")
    print(f"| max points per trace | {points:,} | | <= ~2,000 |")
    print(f"| first render, cold process (s) | {cold_s:.2f} | | |")
    print(f"| first render, warm (s) | {warm_s:.2f} | | < 3 |")
    print(f"\n(filling {args.rows:,} rows took {fill_s:.1f} s; not part of any measure)")


if __name__ == "__main__":
    main()
