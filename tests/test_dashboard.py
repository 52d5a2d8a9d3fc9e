"""Live dashboard without a browser: widget state and the comm messages it sends.

The source is a small stand-in with a real :class:`Tables` fed through
``protocol.encode`` + ``Tables.ingest`` (real frames, real parsing); one test at
the end runs against the real simulator and stream. Widget comms are replaced by
a recording implementation (the hook ipykernel itself uses), so every message a
browser would receive is inspected.
"""

from __future__ import annotations

import math
import threading
import time

import comm
import numpy as np
import pandas as pd
import pytest
from comm.base_comm import BaseComm

from roma_notebook.core import protocol as P
from roma_notebook.views.dashboard import Dashboard, GroupDashboard
from roma_notebook.core.tables import Tables

from scripted_server import wait_until

AGENT = "deepseek-chat-v3.1"
T0 = 1_760_000_000 * 10**9
SEC = 10**9
NAN = math.nan

# --------------------------------------------------------------------- comm capture

SENT: list[tuple[str, dict, int]] = []  # (comm_id, data, buffer bytes)


class RecordingComm(BaseComm):
    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        nbytes = sum(memoryview(b).nbytes for b in buffers or ())
        SENT.append((self.comm_id, data or {}, nbytes))


@pytest.fixture(autouse=True)
def recording_comms(monkeypatch):
    SENT.clear()
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(*a, **k))
    yield SENT


def figure_updates(fig, since: int = 0) -> list[dict]:
    """The figure's ``_py2js_update`` messages (one per ``batch_update``) from SENT[since:]."""
    cid = fig.comm.comm_id if fig.comm is not None else None
    out = []
    for c, data, _ in SENT[since:]:
        state = data.get("state") or {}
        if c == cid and state.get("_py2js_update"):
            out.append(state["_py2js_update"])
    return out


# --------------------------------------------------------------------- a source


class LocalSource:
    """What a dashboard reads from an ``AgentStream``, over a real ``Tables``."""

    def __init__(self, agent_id: str = AGENT):
        self.agent_id = agent_id
        self.tables = Tables()
        self.state = "live"
        self.last_error: str | None = None
        self.messages = 0
        self._closers: list = []
        self._t = 0  # seconds since T0 of the next account row

    def stats(self) -> dict:
        return {
            "messages": self.messages,
            "rate": 12.5,
            "last_message_at": pd.Timestamp.now(tz="UTC"),
            "reconnects": 0,
            "errors": self.tables.counts()["errors"],
            "drops": 0,
        }

    def _add_closer(self, fn) -> None:
        self._closers.append(fn)

    def stop(self) -> None:
        for fn in self._closers:
            fn()
        self.state = "closed"

    def send(self, event) -> None:
        self.tables.ingest(self.agent_id, P.encode(event))
        self.messages += 1

    def accounts(self, n: int, step_s: int = 1) -> None:
        for _ in range(n):
            t = self._t
            self.send(P.AccountUpdate(T0 + t * SEC, 10_000 + 25 * math.sin(t / 50), 9_000.0,
                                      5 * math.cos(t / 30), 12.0))
            self._t += step_s

    def position(self, *rows: tuple) -> None:
        self.send(P.PositionUpdate(T0 + self._t * SEC, tuple(
            P.Position(sym, side, amt, entry, mark, pnl, pct, lev, NAN)
            for sym, side, amt, entry, mark, pnl, pct, lev in rows
        )))

    def decision(self, cycle: int, reasoning: str, *items: tuple) -> None:
        self.send(P.Decision(T0 + self._t * SEC, cycle, self.agent_id, reasoning, tuple(
            P.DecisionItem(action, sym, qty, lev, reason, NAN, NAN, NAN)
            for action, sym, qty, lev, reason in items
        )))

    def trade(self, order_id: str, sym: str, side: str, qty: float, price: float) -> None:
        self.send(P.TradeExecuted(T0 + self._t * SEC, order_id, sym, side, qty, price, 10, "FILLED"))


def populated(n: int = 100) -> LocalSource:
    src = LocalSource()
    src.accounts(n)
    src.position(("BTCUSDT", "LONG", 0.5, 60_000.0, 61_000.0, 500.0, 16.7, 10),
                 ("ETHUSDT", "SHORT", 2.0, 3_000.0, 3_100.0, -200.0, -33.3, 5))
    src.decision(1, "BTC broke $60,000 resistance.\nVolume confirms. <script>x</script>",
                 ("open_long", "BTCUSDT", 0.5, 10, "breakout"))
    src.trade("o-1", "BTCUSDT", "BUY", 0.5, 60_000.0)
    src.accounts(5)
    src.decision(2, "ETH looks weak.", ("open_short", "ETHUSDT", 2.0, 5, "lower highs"))
    src.trade("o-2", "ETHUSDT", "SELL", 2.0, 3_000.0)
    src.accounts(5)
    return src


@pytest.fixture
def dash():
    made: list = []

    def make(src, **kw):
        d = Dashboard(src, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


# --------------------------------------------------------------------- structure


def test_widget_tree_is_built(dash):
    import ipywidgets as W
    import plotly.graph_objects as go

    d = dash(populated())
    status, controls, fig, bottom = d.widget.children
    assert isinstance(d.widget, W.VBox)
    assert isinstance(status, W.HTML) and status is d.status
    assert [type(c) for c in controls.children] == [W.ToggleButton, W.Dropdown, W.Dropdown]
    assert isinstance(fig, go.FigureWidget) and fig is d.figure
    assert isinstance(bottom, W.HBox)
    (pos_box, feed_box) = bottom.children
    assert d.positions in pos_box.children and d.feed in feed_box.children
    assert [t.name for t in fig.data] == list(Dashboard.TRACES)
    assert all(t.type == "scatter" for t in fig.data)  # SVG: <= 2,000 points needs no WebGL
    assert fig.layout.xaxis.type == "date"
    # the first frame is drawn at construction, so a display shows data at once
    assert len(fig.data[0].x) == len(d.tables.frame("account"))
    assert [o[1] for o in d.window_dropdown.options] == ["1h", "6h", "24h", "all"]
    assert {"BTCUSDT", "ETHUSDT"} <= {o[1] for o in d.symbol_dropdown.options}


def test_markers_sit_on_the_balance_line_with_hover_text(dash):
    d = dash(populated())
    _, buys, sells, decisions, pnl = d.figure.data
    assert len(buys.x) == 1 and len(sells.x) == 1 and len(decisions.x) == 2
    assert "BUY BTCUSDT 0.5" in buys.hovertext[0]
    hover = decisions.hovertext[0]
    assert "cycle 1" in hover and "OPEN_LONG BTCUSDT" in hover
    assert "BTC broke $60,000 resistance." in hover and "&lt;script&gt;" in hover
    bal = d.tables.frame("account").set_index("timestamp")["total_balance"]
    fill_time = pd.Timestamp(buys.x[0], unit="ms", tz="UTC")
    assert buys.y[0] == pytest.approx(bal[:fill_time].iloc[-1])
    assert list(decisions.marker.color) == [1.0, -1.0]  # long green, short red
    assert len(pnl.y) == len(d.figure.data[0].y)


def test_bad_arguments():
    src = populated(3)
    with pytest.raises(ValueError, match="fps"):
        Dashboard(src, fps=0)
    with pytest.raises(ValueError, match="max_points"):
        Dashboard(src, max_points=5)
    with pytest.raises(ValueError, match="window"):
        Dashboard(src, window="a fortnight or so")
    with pytest.raises(TypeError, match="tables"):
        Dashboard(object())
    with pytest.raises(TypeError, match="streams"):
        GroupDashboard(src)


# --------------------------------------------------------------------- liveness


def test_new_rows_reach_the_figure_within_two_refresh_periods(dash):
    src = populated()
    d = dash(src, fps=4)
    fig = d.figure
    n0 = len(fig.data[0].x)
    mark = len(SENT)
    updates0 = d.figure_update_count
    src.accounts(50)
    # two periods, plus a little for a loaded machine's scheduling jitter
    wait_until(lambda: len(fig.data[0].x) == n0 + 50, 2 / d.fps + 0.2, "50 new points")
    # one batch_update per refresh: one update message per figure update, both
    # line traces in it, numbers as binary buffers
    with d._lock:  # held by every refresh: messages and counters are consistent here
        msgs = figure_updates(fig, mark)
        assert len(msgs) == d.figure_update_count - updates0 >= 1
    assert {0, 4} <= set(msgs[-1]["style_traces"])
    # the axis type rides along: plotly.js would re-guess "linear" for epoch ms
    assert msgs[-1]["layout_data"]["xaxis.type"] == "date"
    # no placeholders: the page's model would store them as values
    for m in msgs:
        for key, vals in m["style_data"].items():
            assert "_undefined_" not in (vals if isinstance(vals, list) else [vals]), key


def test_refresh_rate_is_capped_at_1000_messages_per_second(dash):
    src = populated()
    d = dash(src, fps=4, max_points=10_000)  # no decimation: every row must show up
    r0 = d.refresh_count
    n_before = len(src.tables.frame("account"))
    stop = threading.Event()

    def firehose():
        # 1,000 msg/s in bursts of 10 every 10 ms, for 2 s
        t_next = time.monotonic()
        for _ in range(200):
            src.accounts(10)
            t_next += 0.01
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        stop.set()

    feeder = threading.Thread(target=firehose)
    started = time.monotonic()
    feeder.start()
    feeder.join(30)
    assert stop.is_set()
    wait_until(lambda: len(d.figure.data[0].x) == n_before + 2000, 2.0, "all 2,000 rows drawn")
    times = [t for t in d.refresh_times if t >= started]
    worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert worst <= d.fps, f"{worst} refreshes in one second at fps={d.fps}"
    assert d.refresh_count - r0 >= 4, "the view kept refreshing during the burst"
    assert d.refresh_errors == 0


def test_a_million_rows_are_decimated_keeping_min_and_max(dash):
    src = LocalSource()
    app = src.tables.append
    n = 1_000_000
    spikes = {333_333: 10_100.0, 777_777: 9_900.0}  # one-row extremes deep in history
    for i in range(n):
        t = T0 + i * SEC
        app(AGENT, P.AccountUpdate(t, spikes.get(i, 10_000 + math.sin(i / 1000)), 9_000.0,
                                   math.cos(i / 777), 10.0), t)
    d = dash(src, fps=4, max_points=2000)
    bal = src.tables.frame("account")["total_balance"].to_numpy()
    fig = d.figure
    for tr in (fig.data[0], fig.data[4]):
        assert 1000 <= len(tr.x) <= 2000
    assert max(fig.data[0].y) == bal.max() == 10_100.0
    assert min(fig.data[0].y) == bal.min() == 9_900.0

    # a spike arriving live is drawn, and the update stays small
    SENT.clear()
    for k, v in ((0, 10_500.0), (1, 9_500.0)):
        t = T0 + (n + k) * SEC
        app(AGENT, P.AccountUpdate(t, v, 9_000.0, 0.0, 10.0), t)
    wait_until(lambda: max(fig.data[0].y) == 10_500.0 and min(fig.data[0].y) == 9_500.0,
               3.0, "the spike")
    assert len(fig.data[0].x) <= 2000
    sent = sum(len(str(data)) + nbytes for _, data, nbytes in SENT)
    assert sent < 400_000, f"{sent} bytes for one refresh"


def test_pause_stops_updates_and_resume_restarts(dash):
    src = populated()
    d = dash(src, fps=8)
    fig = d.figure
    d.pause()
    assert d.paused and d.pause_button.description == "Resume"
    assert "paused" in d.status.value
    n0, r0 = len(fig.data[0].x), d.refresh_count
    src.accounts(30)
    ticks = d._scheduler.ticks
    wait_until(lambda: d._scheduler.ticks >= ticks + 4, 3.0, "four scheduler ticks")
    assert len(fig.data[0].x) == n0 and d.refresh_count == r0
    d.resume()
    assert not d.paused and d.pause_button.description == "Pause"
    wait_until(lambda: len(fig.data[0].x) == n0 + 30, 2 / d.fps + 0.3, "catch-up after resume")
    assert "paused" not in d.status.value


def test_pause_waits_for_a_refresh_already_running(dash):
    # The user presses Pause while a refresh is drawing: once pause() returns, nothing
    # more may be drawn (the refresh already running finishes first, none starts after).
    src = populated()
    d = dash(src, fps=20)
    inside, release = threading.Event(), threading.Event()
    real = d._refresh_now

    def slow() -> None:
        inside.set()
        release.wait(5)
        real()

    d._refresh_now = slow
    src.accounts(5)
    assert inside.wait(5), "the scheduler never started a refresh"
    paused = threading.Thread(target=d.pause)
    paused.start()
    paused.join(0.3)
    assert paused.is_alive(), "pause() returned while a refresh was still drawing"
    release.set()
    paused.join(5)
    assert not paused.is_alive() and d.paused
    r0, n0 = d.refresh_count, len(d.figure.data[0].x)
    src.accounts(10)
    ticks = d._scheduler.ticks
    wait_until(lambda: d._scheduler.ticks >= ticks + 4, 3.0, "four scheduler ticks")
    assert d.refresh_count == r0 and len(d.figure.data[0].x) == n0


def test_a_failed_source_shows_its_error(dash):
    src = populated()
    d = dash(src, fps=8)
    src.last_error = "AgentNotFound: no agent 'nope' (server closed with 1008)"
    src.state = "failed"
    wait_until(lambda: "failed" in d.status.value and "1008" in d.status.value, 2.0,
               "the error in the status strip")
    assert "AgentNotFound" in d.snapshot()
    src.state, src.last_error = "reconnecting", "ConnectionRefusedError: [Errno 111]"
    wait_until(lambda: "Errno 111" in d.status.value, 2.0, "the reconnect error")


def test_a_server_error_frame_shows_in_the_status_strip_and_the_stream_stays_live(dash):
    src = populated()
    d = dash(src, fps=8)
    src.tables.ingest(AGENT, '{"type": "error", "timestamp": 12.5, "message": "Server error for url '
                             "'https://x.io/v3/balance?user=0xc3c3c3c3c3c3c3c3&signature=0x6c5c6c5c6c5c'\"}")
    wait_until(lambda: "server error: Server error for url" in d.status.value, 2.0,
               "the server's error in the status strip")
    assert "balance?***" in d.status.value and "0xc3c3" not in d.status.value
    assert "● live" in d.status.value.replace("&nbsp;", " ")


def test_refresh_errors_are_caught_counted_and_shown(dash):
    src = populated()
    d = dash(src, fps=8)
    real = d._series.update

    def broken():
        raise RuntimeError("disk on fire")

    d._series.update = broken
    src.accounts(3)
    wait_until(lambda: d.refresh_errors >= 1, 2.0, "a caught refresh error")
    assert "disk on fire" in d.status.value and "view errors" in d.status.value
    assert d._scheduler.running and d._scheduler.errors == 0
    d._series.update = real
    n = len(src.tables.frame("account"))
    src.accounts(2)
    wait_until(lambda: len(d.figure.data[0].x) == n + 2, 2.0, "recovery")


def test_close_stops_refreshes_and_closes_widgets(dash):
    src = populated()
    d = dash(src, fps=8)
    src.accounts(1)
    wait_until(lambda: d.refresh_count >= 2, 2.0, "a live refresh")
    widgets = [d.widget, d.figure, d.status, d.positions, d.feed, d.pause_button]
    d.close()
    assert d.closed and not d._scheduler.running
    assert all(w.comm is None for w in widgets)
    r = d.refresh_count
    src.accounts(10)
    d.refresh()  # a no-op once closed
    assert d.refresh_count == r
    d.close()  # idempotent
    assert "roma-positions" in d.snapshot()  # still renders statically


def test_stopping_the_source_closes_its_dashboards(dash):
    src = populated()
    d1, d2 = dash(src), dash(src)
    src.stop()
    assert d1.closed and d2.closed


def test_snapshot_has_status_chart_positions_and_decisions(dash):
    d = dash(populated())
    html = d.snapshot()
    assert "<svg" in html and "polyline" in html
    assert 'class="roma-positions"' in html and "BTCUSDT" in html and "ETHUSDT" in html
    assert "+500.00" in html and "−" not in html.split("roma-positions")[0][-10:]
    assert "<details" in html and "BTC broke $60,000 resistance." in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "live" in html and "tex2jax_ignore" in html
    assert "plotly" in d.snapshot(plotly=True)


def test_repr_mimebundle_has_widget_view_and_html_fallback(dash):
    d = dash(populated())
    bundle = d._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == d.widget.model_id
    assert "roma-positions" in bundle["text/html"]
    assert "Dashboard" in bundle["text/plain"]
    d.close()
    bundle = d._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    assert "roma-feed" in bundle["text/html"]


def test_symbol_filter_and_time_window(dash):
    src = populated()
    src.accounts(3 * 3600, step_s=1)  # three more hours
    d = dash(src, fps=8, window="1h")
    x = np.asarray(d.figure.data[0].x)
    assert x.max() - x.min() <= 3600 * 1000
    d.window_dropdown.value = "all"
    wait_until(lambda: np.ptp(np.asarray(d.figure.data[0].x)) > 3 * 3600 * 1000, 2.0, "all")

    d.symbol_dropdown.value = "ETHUSDT"
    wait_until(lambda: "BTCUSDT" not in d.positions.value, 2.0, "positions filtered")
    assert "ETHUSDT" in d.positions.value
    assert "ETH looks weak" in d.feed.value and "BTC broke" not in d.feed.value
    wait_until(lambda: len(d.figure.data[3].x) == 1, 2.0, "decision markers filtered")
    assert len(d.figure.data[1].x) == 0 and len(d.figure.data[2].x) == 1
    # new symbols appear in the filter; the user's pick survives the update
    src.position(("SOLUSDT", "LONG", 10.0, 150.0, 151.0, 10.0, 6.7, 10))
    wait_until(lambda: "SOLUSDT" in [o[1] for o in d.symbol_dropdown.options], 3.0,
               "a new symbol in the filter")
    assert d.symbol_dropdown.value == "ETHUSDT"


def test_empty_source_renders_placeholders(dash):
    d = dash(LocalSource())
    assert "no open positions" in d.positions.value
    assert "no decisions yet" in d.feed.value
    assert len(d.figure.data[0].x) == 0
    assert "no data" in d.snapshot()


def test_max_rows_source_keeps_following(dash):
    src = LocalSource()
    src.tables = Tables(max_rows=500)
    src.accounts(2000)
    for c in range(30):
        src.decision(c, f"cycle {c}", ("hold", "BTCUSDT", NAN, None, "wait"))
    d = dash(src, fps=8, max_points=200)
    assert len(d.figure.data[0].x) <= 200
    src.accounts(700)
    for c in range(30, 600):
        src.decision(c, f"cycle {c}", ("hold", "BTCUSDT", NAN, None, "wait"))
    wait_until(lambda: "#599" in d.feed.value, 3.0, "the newest cycle after rows were dropped")
    assert d.refresh_errors == 0


# --------------------------------------------------------------------- groups


class LocalGroup:
    def __init__(self, *ids: str):
        self.streams = {a: LocalSource(a) for a in ids}
        self.agent_ids = list(ids)
        self._closers: list = []

    def leaderboard(self) -> pd.DataFrame:
        rows = []
        for a, s in self.streams.items():
            bal = s.tables.frame("account")["total_balance"]
            rows.append({"agent_id": a, "balance": bal.iloc[-1] if len(bal) else NAN,
                         "return_pct": (bal.iloc[-1] / bal.iloc[0] - 1) * 100 if len(bal) else NAN})
        return pd.DataFrame(rows).set_index("agent_id")

    def _add_closer(self, fn) -> None:
        self._closers.append(fn)

    def stop(self) -> None:
        for fn in self._closers:
            fn()


def test_group_dashboard_compares_agents_and_opens_one_lazily():
    import ipywidgets as W

    g = LocalGroup("deepseek-chat-v3.1", "qwen3-max")
    for i, s in enumerate(g.streams.values()):
        s.accounts(40 + 10 * i)
    gd = GroupDashboard(g, fps=8)
    try:
        assert isinstance(gd.widget, W.VBox)
        assert [t.name for t in gd.figure.data] == g.agent_ids
        assert [len(t.x) for t in gd.figure.data] == [40, 50]
        assert "qwen3-max" in gd.leaderboard.value and "return_pct" in gd.leaderboard.value
        assert "2 agents" in gd.status.value

        g.streams["qwen3-max"].accounts(5)
        wait_until(lambda: len(gd.figure.data[1].x) == 55, 2 / gd.fps + 0.3, "group update")

        assert gd.detail.children == ()
        gd.agent_dropdown.value = "qwen3-max"
        child = gd.agent_view("qwen3-max")
        assert gd.detail.children == (child.widget,)
        assert child._scheduler is None, "the shown agent rides on the group's scheduler"
        g.streams["qwen3-max"].accounts(5)
        wait_until(lambda: len(child.figure.data[0].x) == 60, 2.0, "child refresh")
        gd.agent_dropdown.value = "deepseek-chat-v3.1"
        gd.agent_dropdown.value = "qwen3-max"
        assert gd.agent_view("qwen3-max") is child, "reused, not rebuilt"
        with pytest.raises(ValueError, match="unknown agent"):
            gd.agent_view("nobody")
        html = gd.snapshot()
        assert "polyline" in html and "roma-leaderboard" in html
    finally:
        g.stop()
    assert gd.closed and child.closed


# --------------------------------------------------------------------- the real thing


def test_dashboard_of_a_real_stream_from_the_simulator():
    from roma_notebook.sim.simulator import Simulator
    from roma_notebook.live.stream import connect

    with Simulator(("deepseek-chat-v3.1",), seed=11, speed=600) as sim:
        sim.start()
        stream = connect("deepseek-chat-v3.1", url=sim.url)
        try:
            stream.wait_for("decision", count=2, timeout=30)
            d = stream.dashboard(fps=8)
            fig = d.figure
            n0 = len(fig.data[0].x)
            wait_until(lambda: len(fig.data[0].x) > n0, 5.0, "live points from the simulator")
            wait_until(lambda: "roma-cycle" in d.feed.value, 5.0, "decisions in the feed")
            wait_until(lambda: "live" in d.status.value and "msg/s" in d.status.value, 5.0,
                       "a live status")
            assert d.refresh_errors == 0, d.last_refresh_error
        finally:
            stream.stop()
        assert d.closed, "stopping the stream closes its dashboard"


def test_group_dashboard_of_real_streams():
    from roma_notebook.sim.simulator import Simulator
    from roma_notebook.live.stream import connect

    agents = ["deepseek-chat-v3.1", "qwen3-max"]
    with Simulator(agents, seed=5, speed=600) as sim:
        sim.start()
        group = connect(agents, url=sim.url)
        try:
            group.wait_for("account_update", count=2, timeout=30)
            gd = group.dashboard(fps=8)
            wait_until(lambda: all(len(t.x) >= 3 for t in gd.figure.data), 5.0, "both agents")
            wait_until(lambda: "qwen3-max" in gd.leaderboard.value, 5.0, "the leaderboard")
            # the strip sums the agents' rates from group.stats()
            wait_until(lambda: "msg/s" in gd.status.value and gd._status()["rate"] > 0, 5.0,
                       "the group's message rate")
            assert gd._status()["errors"] == int(group.stats()["errors"].sum())
            gd.agent_dropdown.value = "qwen3-max"
            child = gd.agent_view("qwen3-max")
            n = len(child.figure.data[0].x)
            wait_until(lambda: len(child.figure.data[0].x) > n, 5.0, "the agent view moves")
            assert gd.refresh_errors == 0 and child.refresh_errors == 0, (
                gd.last_refresh_error or child.last_refresh_error)
        finally:
            group.stop()
        assert gd.closed and child.closed
