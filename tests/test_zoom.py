"""Zoom shows detail, without a browser: relayout messages in, figure updates out.

The page's zoom, pan and double-click reach the kernel as the comm message
plotly 7's FigureWidget sends (a ``_js2py_relayout`` state update); here that
message is handed to the widget's own comm handler, exactly as ipykernel would.
The dashboards run their real scheduler; sources are real ``Tables`` fed through
``protocol.encode`` + ``Tables.ingest`` (see test_dashboard.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from roma_notebook.views.dashboard import Dashboard, GroupDashboard
from roma_notebook.views.zoom import XZoom, zoom_slice

from scripted_server import wait_until
from test_dashboard import SEC, T0, LocalSource, figure_updates, recording_comms  # noqa: F401

N = 20_000  # account rows of history, one a second
MAX = 200  # points per trace: the overview keeps ~1 % of the rows


def relayout(fig, data: dict) -> None:
    """What the page sends on a zoom/pan/double-click, through the widget's comm handler."""
    fig._handle_msg({"buffers": [], "content": {"data": {
        "method": "update", "buffer_paths": [],
        "state": {"_js2py_relayout": {"relayout_data": data, "source_view_id": "page-view"}},
    }}})


def wait_drawn(d, n_updates: int, want, what: str) -> None:
    """Wait for a figure update drawn for the zoom ``want`` (``(lo, hi)`` ns, or None for
    the overview): a refresh already running when the relayout came still draws the
    range it started with, and counting updates alone would accept it."""
    wait_until(lambda: d.figure_update_count > n_updates and d.drawn_zoom == want, 5, what)


def iso(ns: int) -> str:
    # plotly.js reports date ranges as zone-less strings of the axis (UTC here)
    return pd.Timestamp(ns).strftime("%Y-%m-%d %H:%M:%S.%f")


def rows_in(src: LocalSource, lo: int, hi: int) -> pd.DataFrame:
    acc = src.tables.frame("account")
    t = acc["timestamp"].array.asi8
    return acc[(t >= lo) & (t <= hi)]


def plotted_in(trace, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.rint(np.asarray(trace.x) * 1e6)
    keep = (x >= lo) & (x <= hi)
    return x[keep], np.asarray(trace.y)[keep]


@pytest.fixture
def zoomable():
    made: list = []

    def make(**kw):
        src = LocalSource()
        src.accounts(N)
        d = Dashboard(src, fps=20, max_points=MAX, **kw)
        made.append(d)
        return src, d

    yield make
    for d in made:
        d.close()


def last_share(share: float, room: float = 0.0) -> tuple[int, int]:
    """The last ``share`` of the history's time span, plus ``room`` of it past the end."""
    first, last = T0, T0 + (N - 1) * SEC
    span = last - first
    ms = 10**6  # plotly.js reports ranges to the millisecond at best
    return int(last - share * span) // ms * ms, int(last + room * span) // ms * ms


def test_zoom_re_decimates_the_visible_range_from_the_full_history(zoomable):
    src, d = zoomable()
    fig = d.figure
    lo, hi = last_share(0.15)
    overview_x, _ = plotted_in(fig.data[0], lo, hi)
    want = rows_in(src, lo, hi)
    assert len(want) > MAX > len(overview_x)  # the overview shows a few of the rows there
    n_updates = d.figure_update_count
    relayout(fig, {"xaxis.range[0]": iso(lo), "xaxis.range[1]": iso(hi)})
    # the scheduler's next frame re-decimates, with no new data arriving
    wait_drawn(d, n_updates, (lo, hi), "a refresh after the zoom")
    assert d.x_range == (pd.Timestamp(lo, tz="UTC"), pd.Timestamp(hi, tz="UTC"))
    for trace, col in ((fig.data[0], "total_balance"), (fig.data[4], "unrealized_pnl")):
        assert len(trace.x) <= MAX
        x, y = plotted_in(trace, lo, hi)
        assert len(x) > 5 * len(overview_x)
        # minima and maxima of the rows in range are kept, and nothing else is made up
        assert y.min() == want[col].min() and y.max() == want[col].max()
        assert set(x.astype(np.int64)) <= set(want["timestamp"].array.asi8)
        # a neighbour on the left so the line runs to the plot's edge; the right
        # end is the newest row
        assert np.asarray(trace.x)[0] * 1e6 < lo and np.asarray(trace.x)[-1] * 1e6 == hi
    assert d.refresh_errors == 0


def test_a_small_range_shows_every_row(zoomable):
    src, d = zoomable()
    lo, hi = T0 + 5_000 * SEC, T0 + 5_120 * SEC  # 121 rows, fewer than max_points
    n_updates = d.figure_update_count
    relayout(d.figure, {"xaxis.range": [iso(lo), iso(hi)], "xaxis2.range": [iso(lo), iso(hi)]})
    wait_drawn(d, n_updates, (lo, hi), "a refresh after the zoom")
    x, y = plotted_in(d.figure.data[0], lo, hi)
    want = rows_in(src, lo, hi)
    assert np.array_equal(x.astype(np.int64), want["timestamp"].array.asi8)
    assert np.array_equal(y, want["total_balance"].to_numpy())


def test_live_rows_keep_arriving_while_zoomed_and_autorange_returns_to_the_overview(zoomable):
    src, d = zoomable()
    fig = d.figure
    lo, hi = last_share(0.15, room=0.01)  # room on the right: the live edge is in view
    n_updates = d.figure_update_count
    relayout(fig, {"xaxis.range[0]": iso(lo), "xaxis.range[1]": iso(hi)})
    wait_drawn(d, n_updates, (lo, hi), "a refresh after the zoom")
    end0 = np.asarray(fig.data[0].x)[-1]
    src.accounts(100)  # inside the range: drawn in detail at the next refresh
    last = (T0 + (N + 99) * SEC) / 1e6
    wait_until(lambda: np.asarray(fig.data[0].x)[-1] == last, 5, "the live rows in the zoom")
    assert np.asarray(fig.data[0].x)[-1] > end0 and len(fig.data[0].x) <= MAX
    assert d.x_range is not None  # the range stays where the user put it
    # rows past the range wait off-screen: the drawn data stop one row after it
    src.accounts(1_000)
    wait_until(lambda: d.tables.table_version("account") == d._series.version, 5, "rows read")
    # the figure is updated after the read, in the same frame: wait for it too
    wait_until(lambda: (np.asarray(fig.data[0].x) * 1e6 > hi).any(), 5, "the refresh after the read")
    x = np.asarray(fig.data[0].x) * 1e6
    assert x[-1] > hi and (x > hi).sum() == 1
    # double-click: back to the overview of the whole (grown) history
    n_updates = d.figure_update_count
    relayout(fig, {"xaxis.autorange": True, "xaxis2.autorange": True})
    wait_drawn(d, n_updates, None, "the overview")
    assert d.x_range is None
    acc = src.tables.frame("account")
    x = np.asarray(fig.data[0].x)
    assert x[0] * 1e6 == acc["timestamp"].array.asi8[0]
    assert x[-1] * 1e6 == acc["timestamp"].array.asi8[-1]
    assert len(x) <= MAX and np.asarray(fig.data[0].y).max() == acc["total_balance"].max()
    assert d.refresh_errors == 0


def test_other_relayouts_do_not_zoom(zoomable):
    src, d = zoomable()
    for data in ({"yaxis.range[0]": 1.0, "yaxis.range[1]": 2.0},  # a y-only zoom
                 {"dragmode": "pan"},
                 {"xaxis.range[0]": "not a time", "xaxis.range[1]": "neither"}):
        relayout(d.figure, data)
        assert d.x_range is None
    assert d.refresh_errors == 0


def test_a_new_window_leaves_the_zoom_and_tells_the_page(zoomable, recording_comms):
    src, d = zoomable()
    lo, hi = last_share(0.5)
    # zoom, double-click, zoom again: the kernel's copy of the layout has seen
    # autorange=True once, and must not think the page still autoranges
    for data, want in (({"xaxis.range[0]": iso(lo), "xaxis.range[1]": iso(hi)}, (lo, hi)),
                       ({"xaxis.autorange": True, "xaxis2.autorange": True}, None),
                       ({"xaxis.range[0]": iso(lo), "xaxis.range[1]": iso(hi)}, (lo, hi))):
        n_updates = d.figure_update_count
        relayout(d.figure, data)
        wait_drawn(d, n_updates, want, "a refresh after the relayout")
    assert d.x_range is not None
    mark = len(recording_comms)
    n_updates = d.figure_update_count
    d.window_dropdown.value = "1h"

    def one_hour_drawn() -> bool:  # a refresh already running draws the old window
        x = np.asarray(d.figure.data[0].x) * 1e6
        return d.drawn_zoom is None and x[-1] - x[0] == pytest.approx(3600 * SEC, abs=SEC)

    wait_until(lambda: d.figure_update_count > n_updates and one_hour_drawn(), 5,
               "a refresh after the window change")
    assert d.x_range is None
    with d._lock:
        msgs = figure_updates(d.figure, mark)
    assert msgs and msgs[-1]["layout_data"]["xaxis.autorange"] is True
    x = np.asarray(d.figure.data[0].x) * 1e6
    assert x[-1] - x[0] == pytest.approx(3600 * SEC, abs=SEC)


def test_group_dashboard_zooms_too():
    srcs = {}
    for name in ("a", "b"):
        s = LocalSource(name)
        s.accounts(N)
        srcs[name] = s

    class Group:
        streams = srcs

    g = GroupDashboard(Group(), fps=20, max_points=MAX)
    try:
        lo, hi = last_share(0.15)
        before = [len(plotted_in(t, lo, hi)[0]) for t in g.figure.data]
        n_updates = g.figure_update_count
        relayout(g.figure, {"xaxis.range[0]": iso(lo), "xaxis.range[1]": iso(hi)})
        wait_drawn(g, n_updates, (lo, hi), "a refresh after the zoom")
        for t, n0 in zip(g.figure.data, before):
            assert 5 * n0 < len(plotted_in(t, lo, hi)[0]) and len(t.x) <= MAX
        assert g.refresh_errors == 0
    finally:
        g.close()


def test_xzoom_reads_what_plotly_sends():
    z = XZoom(("xaxis", "xaxis2"))
    assert z.relayout({"xaxis2.range[0]": 1_000.0, "xaxis2.range[1]": 3_000.0})  # epoch ms
    assert z.range_ns == (1_000_000_000, 3_000_000_000)
    assert z.relayout({"xaxis.range[1]": "1970-01-01 00:00:05"})  # one end moved (a pan of one side)
    assert z.range_ns == (1_000_000_000, 5_000_000_000)
    assert not z.relayout({"xaxis.range[1]": "1970-01-01T00:00:05+00:00"})  # same range: no change
    v = z.version
    assert z.relayout({"xaxis.autorange": True}) and z.range_ns is None and z.version == v + 1
    assert not z.relayout({"xaxis.autorange": True})
    assert not z.relayout({"xaxis.range[0]": 5.0})  # half a range from the overview: not a zoom
    assert zoom_slice(np.array([5, 1, 9]), False, 2, 9).tolist() == [True, False, True]
    assert zoom_slice(np.array([], dtype=np.int64), True, 2, 9) == slice(0, 0)
