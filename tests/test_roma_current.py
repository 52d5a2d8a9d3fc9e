"""Today's ROMA-01 backend: its typed frames, its never-read socket, decision
items as its prompt asks for them, and fills estimated from position snapshots.

Frames below are the shapes the current backend sends (docs/roma01.md); the live
tests run the simulator in each of the three dialects over loopback.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import time

import pytest
from websockets.asyncio.client import connect as ws_connect

import roma_notebook as rn
from roma_notebook.core import protocol as P
from roma_notebook.core.tables import Tables
from scripted_server import ScriptedServer, wait_until

AGENT = "deepseek-chat-v3.1"
R0 = 1_796_000_000 * 10**9

UPDATE = (
    '{"type":"update","timestamp":2179.339,"account":{"total_wallet_balance":5042.6089170000005,'
    '"available_balance":4448.31569367,"total_unrealized_profit":18.3018},"positions":[{"symbol":'
    '"ETHUSDT","side":"short","position_amt":0.517,"entry_price":3483.91,"mark_price":3448.51,'
    '"unrealized_profit":18.3018,"leverage":3,"liquidation_price":4631.28}],"performance":'
    '{"total_trades":3,"wins":3,"losses":0,"win_rate":100.0,"avg_profit":12.0,"avg_loss":0.0,'
    '"profit_factor":Infinity,"sharpe_ratio":1.2,"max_drawdown":0.0,"total_pnl":36.0,'
    '"best_trade":{"symbol":"ETHUSDT","pnl":20.0},"worst_trade":{"symbol":"BTCUSDT","pnl":4.0}},'
    '"status":{"agent_id":"deepseek-chat-v3.1","name":"DeepSeek","is_running":true,"cycle_count":19,'
    '"runtime_minutes":57,"dex_type":"binance","account_id":null,"model_id":"deepseek-chat",'
    '"model_provider":"deepseek"}}'
)
KEEPALIVE = (
    '{"type":"keepalive","timestamp":2179.341,"status":{"agent_id":"deepseek-chat-v3.1",'
    '"name":"DeepSeek","is_running":true,"cycle_count":19,"runtime_minutes":57,"dex_type":"binance",'
    '"account_id":null,"model_id":"deepseek-chat","model_provider":"deepseek"}}'
)
WALLET = "0xc3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"
SIGNATURE = "0x6c5c" + "ab" * 60
ERROR = json.dumps(
    {
        "type": "error",
        "timestamp": 2184.344,
        "message": "Server error '503 Service Unavailable' for url "
        f"'https://fapi.asterdex.com/fapi/v3/balance?recvWindow=50000&timestamp=1796192787755&user={WALLET}"
        f"&signer=0xe5e5e5e5e5e5e5e5e5e5&signature={SIGNATURE}&nonce=1796192787755312'\n"
        "For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/503",
    }
)


# ------------------------------------------------------------------ protocol


def test_update_is_the_snapshot_and_keepalive_a_status():
    acc, pos, perf, st = P.parse(UPDATE)
    assert (acc.total_balance, acc.unrealized_pnl, acc.timestamp) == (5042.6089170000005, 18.3018, None)
    assert pos.snapshot and pos.positions[0].symbol == "ETHUSDT" and pos.positions[0].leverage == 3
    assert perf.profit_factor == math.inf and perf.best_trade == 20.0
    assert (st.agent_id, st.cycle_count, st.runtime_minutes) == (AGENT, 19, 57.0)
    (ka,) = P.parse(KEEPALIVE)
    assert isinstance(ka, P.AgentStatus) and ka.cycle_count == 19 and ka.timestamp is None
    assert P.parse('{"type":"keepalive","timestamp":1.5}') == ()  # liveness only
    assert [P.dialect_of(f) for f in (UPDATE, KEEPALIVE, ERROR)] == ["roma-current"] * 3


def test_error_frame_is_a_redacted_server_error():
    (ev,) = P.parse(ERROR)
    assert isinstance(ev, P.ServerError)
    assert "503 Service Unavailable" in ev.message and "fapi/v3/balance?***" in ev.message
    for secret in (WALLET, SIGNATURE, "0xe5e5e5e5e5e5e5e5e5e5", "recvWindow", "nonce="):
        assert secret not in ev.message
    # the unrelated help link keeps its path
    assert "https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/503" in ev.message
    with pytest.raises(TypeError):
        P.encode(ev)  # no documented message carries it


def test_decision_items_keep_confidence_and_partial_closes():
    rec = {
        "cycle_number": 7,
        "decisions": [
            {"action": "close_short", "symbol": "BTCUSDT", "confidence": 0.7,
             "reasoning": "Partial take profit", "close_quantity_pct": 0.5},
            {"action": "close_long", "symbol": "ETHUSDT", "confidence": 85, "close_quantity_pct": 25},
            {"action": "close_long", "symbol": "SOLUSDT", "close_quantity": 1.25},
            {"action": "hold", "symbol": "BNBUSDT"},
        ],
    }
    (dec,), problems = P.decision_record_events(rec)
    assert problems == []
    a, b, c, d = dec.decisions
    assert (a.confidence, a.close_quantity_pct, a.reason) == (0.7, 50.0, "Partial take profit")
    assert (b.confidence, b.close_quantity_pct) == (0.85, 25.0)  # one unit per column
    assert c.quantity == 1.25 and math.isnan(c.close_quantity_pct)
    assert math.isnan(d.confidence) and math.isnan(d.close_quantity_pct)
    t = Tables()
    t.append(AGENT, dec, R0)
    df = t.frame("decisions")
    assert str(df["confidence"].dtype) == "float64" and str(df["close_quantity_pct"].dtype) == "float64"
    assert df["confidence"].tolist()[:2] == [0.7, 0.85]
    assert df["close_quantity_pct"].tolist()[:2] == [50.0, 25.0]


def test_equity_points_and_account_state_are_gross_with_the_net_kept_aside():
    # the current backend's equity is net of deposits it infers; gross_equity is the account value
    pt = {"timestamp": "2026-12-02T06:25:43.173588", "cycle": 3, "equity": 10034.35,
          "adjusted_equity": 10034.35, "gross_equity": 9878.15, "unrealized_pnl": 0.0, "pnl": 0.0,
          "net_deposits": -156.2, "external_cash_flow": -84.17}
    ev = P.equity_point_event(pt)
    assert (ev.total_balance, ev.adjusted_balance) == (9878.15, 10034.35)
    old = P.equity_point_event({"timestamp": "2025-11-02T10:00:00", "equity": 10010.0, "pnl": 10.0})
    assert old.total_balance == 10010.0 and math.isnan(old.adjusted_balance)
    rec = {"timestamp": "2026-12-02T06:25:43", "cycle_number": 3, "decisions": [],
           "account_state": {"total_wallet_balance": 9878.15, "available_balance": 9878.15,
                             "total_unrealized_profit": 0.0, "gross_total_balance": 9878.15,
                             "adjusted_total_balance": 10034.35, "net_deposits": -156.2}}
    evs, _ = P.decision_record_events(rec)
    (acc,) = [e for e in evs if e.kind == "account_update"]
    assert (acc.total_balance, acc.adjusted_balance) == (9878.15, 10034.35)


# ------------------------------------------------------------------ tables


def test_server_errors_are_rows_and_counted():
    t = Tables()
    for i, frame in enumerate((UPDATE, KEEPALIVE, ERROR, KEEPALIVE, UPDATE, KEEPALIVE)):
        t.ingest(AGENT, frame, R0 + i * 10**9)
    err = t.frame("errors")
    assert err["kind"].tolist() == ["server_error"]
    assert "fapi/v3/balance?***" in err["detail"].iloc[0] and WALLET not in err["raw"].iloc[0]
    assert t.totals()["server_errors"] == 1 and t.totals()["errors"] == 1
    assert len(t.frame("account")) == 2 and len(t.frame("status")) == 5
    assert len(t.frame("performance")) == 2


def _snap(*positions, ts: float = 1.0) -> str:
    return json.dumps({"type": "update", "timestamp": ts,
                       "account": {"total_wallet_balance": 1000.0, "available_balance": 900.0,
                                   "total_unrealized_profit": 0.0},
                       "positions": [{"symbol": s, "side": side, "position_amt": q, "entry_price": 100.0,
                                      "mark_price": m, "unrealized_profit": 0.0, "leverage": 3,
                                      "liquidation_price": 50.0} for s, side, q, m in positions]})


def test_fills_are_derived_from_position_changes():
    t = Tables()
    frames = [
        _snap(),                                            # flat: nothing to compare yet
        _snap(("BTCUSDT", "long", 0.2, 100.0)),            # opened: buy 0.2 at 100
        _snap(("BTCUSDT", "long", 0.2, 101.0)),            # mark moved: no fill
        _snap(("BTCUSDT", "long", 0.05, 104.0)),           # partial close: sell 0.15 at 104
        _snap(("BTCUSDT", "short", 0.1, 103.0)),           # flip: sell 0.05 (close) + sell 0.1 (open)
        _snap(),                                            # closed: buy 0.1 at the last mark, 103
    ]
    for i, f in enumerate(frames):
        t.ingest(AGENT, f, R0 + i * 10**9)
    tr = t.frame("trades")
    got = list(zip(tr["side"], tr["quantity"].round(10), tr["price"], tr["source"], tr["status"]))
    assert got == [
        ("long", 0.2, 100.0, "derived", "estimated"),
        ("short", 0.15, 104.0, "derived", "estimated"),
        ("short", 0.05, 103.0, "derived", "estimated"),
        ("short", 0.1, 103.0, "derived", "estimated"),
        ("long", 0.1, 103.0, "derived", "estimated"),
    ]
    assert tr["order_id"].isna().all() and tr["leverage"].tolist() == [3] * 5
    rt = rn.round_trips({"trades": tr})
    # long 0.2 @100 closed 0.15 @104 and 0.05 @103; short 0.1 @103 closed @103
    assert rt["pnl_usdt"].round(9).tolist() == [0.6, 0.15, 0.0]


def test_no_fills_are_derived_for_an_agent_that_reports_its_own():
    t = Tables()
    t.ingest(AGENT, _snap(), R0)
    t.ingest(AGENT, '{"type":"trade_executed","timestamp":"2025-11-02T10:30:05Z","data":{"order_id":"1",'
                    '"symbol":"BTCUSDT","side":"long","quantity":0.2,"price":100.0,"leverage":3,'
                    '"status":"filled"}}', R0 + 1)
    t.ingest(AGENT, _snap(("BTCUSDT", "long", 0.2, 100.0)), R0 + 2)
    assert t.frame("trades")["source"].tolist() == ["live"]


# ------------------------------------------------------------------ live, every dialect


@pytest.mark.parametrize("dialect", ["documented", "roma-backend", "roma-current"])
def test_every_dialect_fills_the_tables(dialect, tmp_path):
    kw = {"snapshot_interval": 0.1} if dialect != "documented" else {}
    if dialect == "roma-current":
        kw["error_every"] = 4
    with rn.Simulator([AGENT], seed=3, speed=600, dialect=dialect, **kw) as sim:
        path = tmp_path / "rec.jsonl.gz"
        with rn.connect(AGENT, url=sim.url, record_to=path) as s:
            s.wait_for("account", count=8, timeout=30)
            if dialect == "documented":
                s.wait_for("decision", count=2, timeout=30)
            else:
                s.wait_for("performance", count=8, timeout=30)
            assert s.dialect == dialect
            stats = s.stats().loc[AGENT]
            assert s.state == "live" and stats["reconnects"] == 0
            err = s.errors
            if dialect == "roma-current":
                assert set(err["kind"]) == {"server_error"} and len(err) == stats["server_errors"] >= 1
                assert err["detail"].str.contains(r"balance\?\*\*\*").all()
                assert not err["detail"].str.contains("signature=").any()
            else:
                assert err.empty and stats["server_errors"] == 0
            if dialect != "documented":
                assert len(s.performance) >= 8 and len(s.status) >= 8
                assert (s.account["timestamp"] == s.account["received_at"]).all()
        text = gzip.open(path, "rt").read()
        assert "signature=" not in text and "0xc3" not in text.lower()
    loaded = rn.load(path)
    assert len(loaded.account) == len(s.account) and len(loaded.errors) == len(s.errors)


def _balance(frame: str) -> float | None:
    obj = json.loads(frame)
    if obj.get("type") == "account_update":
        return obj["data"]["total_balance"]
    return obj["account"]["total_wallet_balance"] if "account" in obj else None


def _hold_one(dialect: str):
    sim = rn.Simulator([AGENT], seed=1, speed=60, dialect=dialect).start()
    return sim, rn.connect(AGENT, url=sim.url)


@pytest.mark.slow
def test_default_settings_hold_90_s_in_every_dialect():
    """The library's defaults against servers that behave like the real ones:
    the real backends never read their socket, so one JSON heartbeat from us
    and they stop answering pings (closed 1011 within ~40 s)."""
    pairs = {d: _hold_one(d) for d in ("documented", "roma-backend", "roma-current")}
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 90:
            for d, (sim, s) in pairs.items():
                assert s.stats().iloc[0]["reconnects"] == 0, (d, s.connections)
            time.sleep(1.0)
        for d, (sim, s) in pairs.items():
            assert s.state == "live", d
            assert s.connections["event"].tolist() == ["connected"], d
            assert sim.stats()["deaf_connections"] == 0, d
            assert len(s.account) >= 15, d  # a real backend's 5-s cadence: ~18 in 90 s
            assert s.errors.empty, d
            # no row lost: what arrived is, in order, what the server sent
            # (but for the one frame that may still be on its way)
            got = s.account["total_balance"].tolist()
            sent = [_balance(f) for f in sim.sent_frames(AGENT) if _balance(f) is not None]
            start = 0
            if d == "documented":
                # the first comes with the connection; the broadcast began before it
                got = got[1:]
                start = next(i for i in range(len(sent)) if sent[i : i + len(got)] == got)
            assert got == sent[start : start + len(got)], d
            assert len(sent) - start - len(got) <= 1, (d, len(sent), start, len(got))
    finally:
        for sim, s in pairs.values():
            s.stop()
            sim.stop()


@pytest.mark.parametrize("dialect", ["roma-backend", "roma-current"])
def test_real_dialect_simulator_stops_reading_after_a_data_frame(dialect):
    """As the real backend under uvicorn: pings are answered until the client
    sends one data frame, never after."""

    async def probe(sim) -> tuple[float, bool]:
        # close_timeout: a server that stopped reading never answers our close
        async with ws_connect(f"{sim.url}/ws/agents/{AGENT}", ping_interval=None, close_timeout=0.5) as ws:
            t0 = time.monotonic()
            await asyncio.wait_for(await ws.ping(), 5)
            first = time.monotonic() - t0
            await ws.send('{"type": "ping"}')
            # a ping in the same TCP read as the data frame would still be answered
            while sim.stats()["deaf_connections"] < 1:
                await asyncio.sleep(0.01)
            await ws.recv()  # the server still sends
            pong = await ws.ping()
            try:
                await asyncio.wait_for(pong, 2.0)
                answered = True
            except asyncio.TimeoutError:
                answered = False
            return first, answered

    with rn.Simulator([AGENT], seed=1, dialect=dialect, snapshot_interval=0.2) as sim:
        first, answered = asyncio.run(probe(sim))
        assert first < 2.0 and not answered
        assert sim.stats()["deaf_connections"] == 1


def test_documented_simulator_answers_json_pings():
    async def probe(url: str) -> str:
        async with ws_connect(f"{url}/ws/agents/{AGENT}") as ws:
            await ws.send('{"type": "ping"}')
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg.get("type") == "pong":
                    return "pong"

    with rn.Simulator([AGENT], seed=1) as sim:
        assert asyncio.run(probe(sim.url)) == "pong"


@pytest.mark.slow
def test_a_silent_real_backend_is_a_stall():
    """Frames every 0.2 s, then silence while pings are still answered: after
    3 x the nominal 5-s cadence the stream reconnects and says why."""
    connections = []

    async def handler(ws):
        connections.append(ws)
        if len(connections) == 1:
            for _ in range(5):
                await ws.send(UPDATE)
                await ws.send(KEEPALIVE)
                await asyncio.sleep(0.2)
        else:
            await ws.send(UPDATE)
        await ws.wait_closed()

    with ScriptedServer(handler) as srv:
        with rn.connect(AGENT, url=srv.url) as s:
            wait_until(lambda: srv.connections >= 2, 40, "a reconnect after the stall")
            t_detected = time.monotonic()
            con = s.connections
            dis = con[con["event"] == "disconnected"]
            assert len(dis) == 1 and dis["detail"].iloc[0].startswith("stalled: no frame for 1")
            s.wait_for("account", count=6, timeout=10)
            assert s.state == "live"
    assert t_detected  # reached only after the reconnect


def test_backfill_joins_live_rows_without_a_seam():
    """Backfilled account rows are the gross account value, as live rows are;
    ROMA-01's deposit-adjusted equity sits in adjusted_balance, never mixed in."""
    a = "qwen3-max"
    with rn.Simulator([a], seed=4, speed=1200, dialect="roma-current", snapshot_interval=0.2,
                      volatility_scale=3.0) as sim:
        # enough cycles for closed trades, so the backend's inferred deposits drift
        wait_until(lambda: sim.query(lambda w: w.agents[a].net_deposits != 0 and w.agents[a].cycle >= 12),
                   60, "cycles with phantom deposits")
        with rn.connect(a, url=sim.url, backfill=True) as s:
            wait_until(lambda: (s.account["source"] == "live").sum() >= 1, 30, "a live account row")
            acc = s.account
    back = acc[acc["source"] == "backfill"]
    live = acc[acc["source"] == "live"]
    assert len(back) >= 12 and live["adjusted_balance"].isna().all()
    # the net figure differs from the account value: the test can tell them apart
    gap = (back["adjusted_balance"] - back["total_balance"]).abs()
    assert gap.iloc[-1] > 0
    # the seam is no bigger than the account's largest move between two cycles
    moves = back["total_balance"].diff().abs().max()
    seam = abs(live["total_balance"].iloc[0] - back["total_balance"].iloc[-1])
    assert seam <= max(moves, 1e-9) + 1e-6, (seam, moves, gap.iloc[-1])
    # ...while mixing in the net figure would have opened a seam bigger than that
    assert gap.iloc[-1] > moves + seam, (gap.iloc[-1], moves, seam)


def test_round_trips_from_the_simulators_fills_are_its_closed_trades():
    """A fill's side is its direction: the simulator's closing fills sell a long
    and buy back a short, so round trips rebuilt from fills are its trades."""
    a = "deepseek-chat-v3.1"
    with rn.Simulator([a], seed=5, speed=1200, volatility_scale=2.0, error_rate=0.0) as sim:
        with rn.connect(a, url=sim.url) as s:
            wait_until(lambda: len(rn.round_trips(s)) >= 4, 60, "four round trips")
            rt = rn.round_trips(s)
            truth = sim.query(lambda w: list(w.agents[a].closed_trades))
    by_close = {t.close_time: t for t in truth}
    assert len(rt) >= 4
    for row in rt.itertuples():
        t = by_close[row.close_time.value]
        assert (row.symbol, row.side) == (t.symbol, t.side)
        assert row.quantity == pytest.approx(t.quantity) and row.close_price == pytest.approx(t.close_price)
        assert row.entry_price == pytest.approx(t.entry_price)
        # fills carry no fees: the gross P&L of the trade
        gross = (t.close_price - t.entry_price) * t.quantity * (1 if t.side == "long" else -1)
        assert row.pnl_usdt == pytest.approx(gross, abs=1e-6)


@pytest.mark.parametrize("dialect", ["roma-backend", "roma-current"])
def test_no_application_message_reaches_a_real_backend(dialect):
    """With a heartbeat due every 0.2 s, a real backend still never receives a
    data frame (it would stop reading the connection)."""
    with rn.Simulator([AGENT], seed=1, dialect=dialect, snapshot_interval=0.1) as sim:
        with rn.connect(AGENT, url=sim.url, heartbeat=0.2) as s:
            s.wait_for("account", count=12, timeout=30)  # >= 1 s: five heartbeats were due
            assert s.dialect == dialect
        assert sim.stats()["deaf_connections"] == 0
