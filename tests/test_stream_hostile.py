"""A server sending hostile frames: each becomes one errors row, good frames around
them are kept, and the stream never dies (real websockets server on port 0)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest

import roma_notebook as rn
from roma_notebook.core import protocol as P

from scripted_server import ScriptedServer, closed_port, wait_stream_done, wait_until

BIG = 10 * 2**20

HOSTILE = [
    ("not JSON", "not_json"),
    ("[1, 2, 3]", "not_object"),
    ('{"type": "account_update", "data": {"total_balance": "abc"}}', "bad_field"),
    ('{"type": "account_update", "data": {"total_balance": NaN}}', "bad_field"),
    ('{"type": "account_update", "data": {"total_balance": Infinity}}', "bad_field"),
    ('{"type": "decision", "data": {"cycle": "seven"}}', "bad_field"),
    ('{"type": "position_update", "data": {"symbol": "BTCUSDT"}}', "bad_field"),
    ('{"type": "no_such_type", "data": {}}', "unknown_type"),
    ('{"type": "trade_executed"}', "bad_field"),
    ("[" * 100_000 + "]" * 100_000, "not_json"),
    ("x" * BIG, "not_json"),
    (b"\x00\x01binary\xff", "binary"),
    ("", "empty"),
]


def good(i: int) -> str:
    return P.encode(P.AccountUpdate(None, 1000.0 + i, 900.0, float(i), 10.0))


def test_each_hostile_frame_is_one_error_row_and_good_frames_survive():
    async def handler(ws):
        await ws.send(good(0))
        for i, (frame, _) in enumerate(HOSTILE, start=1):
            await ws.send(frame)
            await ws.send(good(i))
        await ws.send('{"type": "pong"}')  # a pong is not an error
        await ws.wait_closed()

    with ScriptedServer(handler) as srv:
        s = rn.connect("a1", url=srv.url, max_size=16 * 2**20)
        try:
            s.wait_for("account_update", count=len(HOSTILE) + 1, timeout=30)
            wait_until(lambda: len(s.errors) == len(HOSTILE), 10, "errors rows")
            acc = s.account
            assert acc["total_balance"].tolist() == [1000.0 + i for i in range(len(HOSTILE) + 1)]
            assert acc["unrealized_pnl"].tolist() == [float(i) for i in range(len(HOSTILE) + 1)]
            err = s.errors
            assert err["kind"].tolist() == [k for _, k in HOSTILE]
            assert (err["raw"].str.len().fillna(0) <= 2000).all()
            # the numeric-field errors name the field
            assert "data.total_balance" in err["detail"].iloc[2]
            assert "data.cycle" in err["detail"].iloc[5]
            assert s.state == "live"
            assert srv.connections == 1  # no reconnect was needed
            # frames counted in seq order: good, bad, good, bad...
            assert acc["seq"].tolist() == [2 * i for i in range(len(HOSTILE) + 1)]
        finally:
            s.stop()


def test_frame_over_max_size_is_a_counted_reconnect_not_a_dead_stream():
    async def handler(ws):
        await ws.send(good(1))
        await ws.send("y" * 200_000)  # over the client's max_size below
        await ws.wait_closed()

    with ScriptedServer(handler) as srv:
        s = rn.connect("a1", url=srv.url, max_size=100_000, reconnect_base=0.05)
        try:
            wait_until(lambda: srv.connections >= 2, 15, "a reconnect")
            s.wait_for("account_update", count=2, timeout=15)
            conns = s.connections
            assert (conns["event"] == "disconnected").sum() >= 1
            assert conns["detail"].str.contains("1009|too big|message too big", case=False, regex=True).any()
            assert s.stats().iloc[0]["reconnects"] >= 1
            assert s.state in ("live", "reconnecting")
        finally:
            s.stop()


def test_callback_that_raises_or_blocks_does_not_stop_ingest():
    release = threading.Event()
    go = threading.Event()  # frames start once both callbacks are registered

    async def handler(ws):
        while not go.is_set():
            await asyncio.sleep(0.01)
        for i in range(300):
            await ws.send(good(i))
            await asyncio.sleep(0.001)
        await ws.wait_closed()

    seen = []

    def boom(ev):
        raise RuntimeError("user bug")

    def slow(ev):
        seen.append(ev.total_balance)
        release.wait(5)

    with ScriptedServer(handler) as srv:
        s = rn.connect("a1", url=srv.url)
        try:
            s.on("account_update", boom)
            s.on("account", slow)
            go.set()
            s.wait_for("account_update", count=300, timeout=20)
            # all rows arrived although the slow callback is still stuck on its first event
            assert len(s.account) == 300
            wait_until(lambda: (s.errors["kind"] == "callback").sum() >= 1, 10, "callback error row")
            detail = s.errors.loc[s.errors["kind"] == "callback", "detail"].iloc[0]
            assert "boom" in detail and "RuntimeError" in detail and "user bug" in detail
            release.set()
            wait_until(lambda: len(seen) == 300, 10, "slow callback to catch up")
            assert seen[:3] == [1000.0, 1001.0, 1002.0]
        finally:
            release.set()
            s.stop()


def test_callback_kind_is_validated():
    s = rn.connect("a1", url=f"ws://127.0.0.1:{closed_port()}", connect_retries=0, reconnect_base=0.01)
    try:
        with pytest.raises(ValueError, match="unknown kind"):
            s.on("acount_update", print)
        with pytest.raises(TypeError):
            s.on("decision", 42)
    finally:
        s.stop()


def test_connection_refused_at_start_fails_with_a_helpful_message():
    s = rn.connect("a1", url=f"ws://127.0.0.1:{closed_port()}", connect_retries=2, reconnect_base=0.01)
    t0 = time.monotonic()
    with pytest.raises(rn.ConnectionFailed) as info:
        s.wait_for(timeout=20)
    assert time.monotonic() - t0 < 10
    msg = str(info.value)
    assert "refused" in msg and "running" in msg and "port" in msg
    assert s.state == "failed"
    assert s.connections["event"].tolist().count("failed") == 1


def test_reconnect_delays_are_exponential_with_full_jitter():
    # Full jitter: each delay is uniform in [0, min(cap, base * 2**attempt)], so the
    # clients of a restarted server do not all come back at the same moment.
    base, cap, retries = 0.02, 0.08, 12
    s = rn.connect("a1", url=f"ws://127.0.0.1:{closed_port()}", connect_retries=retries,
                   reconnect_base=base, reconnect_cap=cap)
    with pytest.raises(rn.ConnectionFailed):
        s.wait_for(timeout=20)
    s.stop()
    details = s.connections.query("event == 'reconnecting'")["detail"].tolist()
    assert len(details) == retries, details
    delays = [float(re.fullmatch(r"attempt \d+ in (\d+\.\d+)s", d).group(1)) for d in details]
    bounds = [min(cap, base * 2**k) for k in range(retries)]
    # the detail rounds to 0.01 s
    assert all(0 <= d <= b + 0.005 for d, b in zip(delays, bounds)), (delays, bounds)
    # Without jitter every delay sits at its bound; with it each one lies below 90 % of
    # its bound with probability >= 0.75 (after rounding), so all twelve at the bound
    # happens less than once in 10**12 runs.
    assert any(d < 0.9 * b for d, b in zip(delays, bounds)), (delays, bounds)


def test_unknown_close_code_1008_is_fatal_and_not_retried():
    async def handler(ws):
        await ws.close(1008, "Agent not found: ghost")

    with ScriptedServer(handler) as srv:
        s = rn.connect("ghost", url=srv.url, reconnect_base=0.01)
        # (a 1008 arrives within milliseconds; a retried one times out here instead)
        with pytest.raises(rn.AgentNotFound, match="Agent not found: ghost"):
            s.wait_for(timeout=5)
        assert s.state == "failed"
        wait_stream_done(s)  # the task has ended: a (wrong) retry would have happened by now
        assert srv.connections == 1
        s.stop()


def test_token_is_sent_but_never_shown():
    secret = "tok-7f3a9c-SECRET"

    async def handler(ws):
        await ws.send(good(0))
        await ws.send("bad frame")
        await ws.wait_closed()

    with ScriptedServer(handler) as srv:
        s = rn.connect("a1", url=srv.url, token=secret)
        try:
            s.wait_for("account", timeout=10)
            wait_until(lambda: len(s.errors) == 1, 5, "error row")
            assert srv.paths[0] == f"/ws/agents/a1?token={secret}"
            shown = [repr(s), s._repr_html_(), s.url, s.connections.to_csv(), s.errors.to_csv()]
            for text in shown:
                assert secret not in text
        finally:
            s.stop()


def test_pong_is_not_an_error_and_json_heartbeat_is_sent():
    got = []

    async def handler(ws):
        await ws.send(good(0))
        async for msg in ws:
            got.append(msg)
            if json.loads(msg).get("type") == "ping":
                await ws.send('{"type": "pong"}')

    with ScriptedServer(handler) as srv:
        s = rn.connect("a1", url=srv.url, heartbeat=0.05)
        try:
            wait_until(lambda: len(got) >= 2, 10, "two JSON pings")
            assert all(json.loads(m) == {"type": "ping"} for m in got)
            assert len(s.errors) == 0
        finally:
            s.stop()
