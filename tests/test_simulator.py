"""Tests of the bundled simulator: market.py directly, the server over loopback,
and the CLI as a subprocess running the documented Python client example.

Every networked test uses a real ``websockets`` client on port 0 and
wait-for-condition loops; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import re
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from roma_notebook.sim import market as M
from roma_notebook.core import protocol as P
from roma_notebook.core.errors import ProtocolError
from roma_notebook.sim.simulator import MALFORMED_KINDS, Simulator

from scripted_server import wait_until
from sim_process import SimProcess

pytestmark = pytest.mark.timeout(60)

TWO = ("deepseek-chat-v3.1", "qwen3-max")
ALL = tuple(M.DEFAULT_AGENTS)
FIVE = {"account_update", "position_update", "decision", "trade_executed", "agent_status"}
ACTIONS = {"open_long", "open_short", "close_long", "close_short", "hold", "wait"}
START = "2025-11-02T00:00:00Z"


# ---------------------------------------------------------------- the documented API (tests/data)

# The five JSON examples of the documented WebSocket API, verbatim. Field names
# and JSON types of every simulator frame are checked against them.
DOC_EXAMPLES = {
    "account_update": {
        "type": "account_update",
        "timestamp": "2025-11-02T10:30:00Z",
        "data": {"total_balance": 10050.25, "available_balance": 8525.00, "unrealized_pnl": 50.25, "used_percentage": 15.0},
    },
    "position_update": {
        "type": "position_update",
        "timestamp": "2025-11-02T10:30:15Z",
        "data": [
            {
                "symbol": "BTCUSDT", "side": "long", "position_amt": 0.001, "entry_price": 68000.0,
                "mark_price": 68500.0, "unrealized_profit": 0.50, "pnl_percentage": 0.74, "leverage": 10,
            }
        ],
    },
    "decision": {
        "type": "decision",
        "timestamp": "2025-11-02T10:30:00Z",
        "data": {
            "cycle": 123,
            "agent_id": "deepseek-chat-v3.1",
            "ai_reasoning": "BTC showing strong bullish momentum with RSI(7) at 75.3...",
            "decisions": [
                {"action": "open_long", "symbol": "BTCUSDT", "quantity": 0.001, "leverage": 10,
                 "reason": "Breakout above resistance with volume confirmation"}
            ],
        },
    },
    "trade_executed": {
        "type": "trade_executed",
        "timestamp": "2025-11-02T10:30:05Z",
        "data": {"order_id": "12345678", "symbol": "BTCUSDT", "side": "long", "quantity": 0.001,
                 "price": 68450.0, "leverage": 10, "status": "filled"},
    },
    "agent_status": {
        "type": "agent_status",
        "timestamp": "2025-11-02T10:30:00Z",
        "data": {"agent_id": "deepseek-chat-v3.1", "is_running": True, "cycle_count": 124,
                 "last_decision_time": "2025-11-02T10:30:00Z"},
    },
}

# The documented Python client, verbatim (checked against tests/data).
SEED_PYTHON_CLIENT = '''import asyncio
import websockets
import json

async def connect_to_agent(agent_id: str):
    uri = f"ws://localhost:8000/ws/agents/{agent_id}"
    
    async with websockets.connect(uri) as websocket:
        print(f"✅ Connected to {agent_id}")
        
        async for message in websocket:
            data = json.loads(message)
            message_type = data.get("type")
            
            if message_type == "account_update":
                handle_account_update(data["data"])
            elif message_type == "position_update":
                handle_position_update(data["data"])
            elif message_type == "decision":
                handle_decision(data["data"])
            elif message_type == "trade_executed":
                handle_trade(data["data"])

def handle_account_update(data):
    print(f"💰 Balance: ${data['total_balance']:.2f}")

def handle_position_update(data):
    for pos in data:
        print(f"📊 {pos['symbol']} {pos['side']}: {pos['unrealized_profit']:+.2f}")

# Run
asyncio.run(connect_to_agent("deepseek-chat-v3.1"))
'''

# The reference examples themselves, copied into the repository (tests/data/README.md):
# every checkout runs this check, none skips it.
DATA = Path(__file__).resolve().parent / "data"
DOC_ORDER = ("account_update", "position_update", "decision", "trade_executed", "agent_status")


def test_embedded_doc_copies_match_the_reference_examples():
    from test_protocol import SEED_FRAMES  # tests/ is on sys.path under pytest

    text = (DATA / "websocket_api_examples.json").read_text(encoding="utf-8")
    reference = json.loads(text)
    assert [m["type"] for m in reference] == list(DOC_ORDER)
    assert reference == [DOC_EXAMPLES[k] for k in DOC_ORDER]
    # test_protocol parses the examples as text, formatting included ("8525.00")
    for k in DOC_ORDER:
        assert SEED_FRAMES[k] in text, k
    assert (DATA / "websocket_api_client.py.txt").read_text(encoding="utf-8") == SEED_PYTHON_CLIENT


def _jtype(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "str"
    if v is None:
        return "null"
    return type(v).__name__


def _same_shape(example, value, where, nullable=()):
    """Every documented key is present with the documented JSON type (ints must
    stay ints, floats may be any number)."""
    for key, ex in example.items():
        assert key in value, f"{where}: missing {key!r}"
        v = value[key]
        want = _jtype(ex)
        got = _jtype(v)
        if key in nullable and v is None:
            continue
        if want == "number":
            assert got in ("number", "int"), f"{where}.{key}: {got} instead of a number"
        else:
            assert got == want, f"{where}.{key}: {got} instead of {want}"


def check_documented_shape(frame: str) -> dict:
    """Assert a frame matches the documented example of its type; return it."""
    msg = json.loads(frame)
    assert isinstance(msg, dict)
    t = msg["type"]
    assert t in DOC_EXAMPLES, t
    assert isinstance(msg["timestamp"], str) and P.parse_time(msg["timestamp"]) is not None
    data = msg["data"]
    ex = DOC_EXAMPLES[t]["data"]
    if t == "position_update":
        assert isinstance(data, list)
        for i, p in enumerate(data):
            _same_shape(ex[0], p, f"position_update[{i}]")
    elif t == "decision":
        _same_shape({k: v for k, v in ex.items() if k != "decisions"}, data, "decision")
        assert isinstance(data["decisions"], list) and data["decisions"]
        for it in data["decisions"]:
            assert it["action"] in ACTIONS
            assert isinstance(it["reason"], str) and it["reason"]
            if it["action"] != "wait":
                _same_shape(ex["decisions"][0], it, f"decision item {it['action']}")
    elif t == "agent_status":
        # null only before the agent's first decision
        _same_shape(ex, data, "agent_status", nullable=("last_decision_time",))
    else:
        _same_shape(ex, data, t)
    return msg


# ---------------------------------------------------------------- helpers


async def _collect(url, until, timeout=15.0, send=(), **kw):
    """Receive frames until ``until(frames)`` is true; returns (frames, close code)."""
    frames: list[str] = []
    code = None
    async with websockets.connect(url, **kw) as ws:
        for m in send:
            await ws.send(m)
        try:
            async with asyncio.timeout(timeout):
                while not until(frames):
                    frames.append(await ws.recv())
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
    return frames, code


def collect(url, until, timeout=15.0, **kw):
    return asyncio.run(_collect(url, until, timeout, **kw))


def types_of(frames):
    return [json.loads(f)["type"] for f in frames]


def http_get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), json.loads(e.read())


def strip_ts(frame: str):
    msg = json.loads(frame)
    msg.pop("timestamp", None)
    if isinstance(msg.get("data"), dict):
        msg["data"].pop("last_decision_time", None)
        msg["data"].pop("runtime_minutes", None)
    return msg


@pytest.fixture
def sim_fast():
    """Two default agents at 2400x (a 3-minute cycle every 75 ms), no LLM errors."""
    with Simulator(TWO, seed=7, speed=2400, error_rate=0.0) as sim:
        yield sim


# ---------------------------------------------------------------- market.py: indicators


def test_batch_indicators_known_values():
    assert M.ema([1.0, 2.0, 3.0], 3) == [1.0, 1.5, 2.25]
    assert M.rsi(list(range(20)), 14) == 100.0
    assert M.rsi(list(range(20, 0, -1)), 14) == 0.0
    assert M.rsi([5.0] * 20, 14) == 50.0
    assert math.isnan(M.rsi([1.0, 2.0], 14))
    assert M.bollinger([1.0, 3.0], 2, 1.0) == (1.0, 2.0, 3.0)
    assert M.atr([2, 2, 2], [1, 1, 1], [1.5, 1.5, 1.5], 2) == 1.0
    line, sig, hist = M.macd([float(x) for x in range(60)])
    assert line > 0 and hist == pytest.approx(line - sig)


def test_incremental_indicators_equal_batch_functions():
    m = M.Market(seed=3, start_ns=0)
    for _ in range(400):
        m.step()
    for s in M.SYMBOLS:
        closes = m.closes(s)
        assert len(closes) < 600  # the whole history, so batch == incremental
        ind = m.indicators(s)
        assert ind.ema20 == pytest.approx(M.ema(closes, 20)[-1], rel=1e-12)
        assert ind.ema50 == pytest.approx(M.ema(closes, 50)[-1], rel=1e-12)
        line, sig, hist = M.macd(closes)
        assert ind.macd == pytest.approx(line, rel=1e-9, abs=1e-12)
        assert ind.macd_hist == pytest.approx(hist, rel=1e-9, abs=1e-12)
        assert ind.rsi14 == pytest.approx(M.rsi(closes, 14), rel=1e-9)
        assert ind.rsi7 == pytest.approx(M.rsi(closes, 7), rel=1e-9)
        lo, mid, up = M.bollinger(closes, 20)
        assert (ind.bb_lower, ind.bb_mid, ind.bb_upper) == pytest.approx((lo, mid, up), rel=1e-12)
        assert 0 < ind.rsi14 < 100 and ind.atr14 > 0
        assert ind.change_1h == pytest.approx((ind.price / closes[-20] - 1) * 100)


def test_market_prices_are_realistic_and_on_the_tick_grid():
    m = M.Market(seed=1, start_ns=0)
    for _ in range(2000):
        m.step()
    for s, spec in M.SPECS.items():
        p = m.price(s)
        assert 0.7 * spec.price < p < 1.3 * spec.price, (s, p)
        assert abs(p / spec.tick - round(p / spec.tick)) < 1e-6
    rets = [math.log(b / a) for a, b in zip(m.closes("BTCUSDT")[:-1], m.closes("BTCUSDT")[1:])]
    sd = (sum(r * r for r in rets) / len(rets)) ** 0.5
    annual = sd * math.sqrt(365 * 24 * 20)
    assert 0.25 < annual < 1.5, annual  # a crypto-like volatility


# ---------------------------------------------------------------- market.py: exchange and performance


def test_exchange_arithmetic_and_closed_trade_formulas():
    ex = M.Exchange(10_000.0, M.random.Random(1), order_prefix=1234)
    f = ex.open("BTCUSDT", "long", 0.05, 10, mark=100_000.0, time_ns=0, stop_loss=99_000.0)
    assert f.order_id == "123400000001" and f.price >= 100_000.0
    assert f.price <= 100_000.0 * (1 + 10e-4)
    pos = ex.positions["BTCUSDT"]
    assert pos.liq_price == pytest.approx(f.price * (1 - 1 / 10 + 0.005))
    fee = f.price * 0.05 * 0.0004
    assert ex.wallet == pytest.approx(10_000.0 - fee)
    ex.mark({"BTCUSDT": 101_000.0})
    acc = ex.account(0)
    u = (101_000.0 - f.price) * 0.05
    margin = 0.05 * f.price / 10
    assert acc.unrealized_pnl == pytest.approx(u)
    assert acc.total_balance == pytest.approx(ex.wallet + u)
    assert acc.available_balance == pytest.approx(acc.total_balance - margin)
    assert acc.used_percentage == pytest.approx(margin / acc.total_balance * 100, abs=1e-6)
    p = ex.position_update(0).positions[0]
    assert p.pnl_percentage == pytest.approx((101_000.0 - f.price) / f.price * 100, abs=1e-4)
    c = ex.close("BTCUSDT", mark=101_000.0, time_ns=1).closed
    assert c.close_price <= 101_000.0
    assert c.pnl_pct == pytest.approx((c.close_price - c.entry_price) / c.entry_price * 100, abs=1e-6)
    fees = (c.entry_price + c.close_price) * 0.05 * 0.0004
    assert c.pnl_usdt == pytest.approx((c.close_price - c.entry_price) * 0.05 - fees, abs=1e-6)
    assert ex.wallet == pytest.approx(10_000.0 + c.pnl_usdt, abs=1e-6)
    assert ex.account(2).used_percentage == 0.0
    # a short through its liquidation price closes at exactly that price
    ex.open("ETHUSDT", "short", 1.0, 5, mark=4000.0, time_ns=3)
    liq = ex.positions["ETHUSDT"].liq_price
    ex.mark({"ETHUSDT": liq * 1.05})
    (fill,) = ex.triggers(4)
    assert fill.reason == "liquidation" and fill.price == pytest.approx(liq, abs=0.01)
    with pytest.raises(ValueError):
        ex.open("SOLUSDT", "long", 1e6, 10, mark=200.0, time_ns=5)


def _ct(pnl, symbol="BTCUSDT"):
    return P.ClosedTrade(None, symbol, "long", 100.0, 101.0, 1.0, 10, None, None, pnl, 1.0)


def test_performance_formulas():
    perf = M.performance([_ct(10.0), _ct(-5.0), _ct(20.0), _ct(-15.0)], lookback=20)
    assert (perf.total_trades, perf.wins, perf.losses) == (4, 2, 2)
    assert perf.win_rate == 50.0
    assert perf.avg_profit == 15.0 and perf.avg_loss == 10.0
    assert perf.profit_factor == pytest.approx(30.0 / 20.0)
    pnls = [10.0, -5.0, 20.0, -15.0]
    mean = sum(pnls) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in pnls) / 4)
    assert perf.sharpe_ratio == pytest.approx(mean / sd)
    # equity 10000 -> 10010 -> 10005 -> 10025 -> 10010: worst fall 15 from 10025
    assert perf.max_drawdown == pytest.approx(15.0 / 10025.0 * 100)
    assert perf.total_pnl == 10.0 and perf.best_trade == 20.0 and perf.worst_trade == -15.0
    assert M.performance([_ct(1.0), _ct(2.0)]).profit_factor == math.inf
    assert M.performance([]).profit_factor == 0.0 and M.performance([]).total_trades == 0
    last2 = M.performance([_ct(-100.0), _ct(1.0), _ct(2.0)], lookback=2)
    assert last2.total_trades == 2 and last2.losses == 0
    assert M.performance([_ct(1.0)]).sharpe_ratio == 0.0


def test_agent_styles_and_profiles():
    styles = {M.agent_profile(a).style for a in ALL}
    assert len(styles) == 6  # one distinct style per default model
    assert M.agent_profile("my-bot") == M.agent_profile("my-bot")
    # pinned values: crc32, not the per-process salted hash(), so every process
    # and every machine gives an unknown name the same style
    assert [M.agent_profile(n).style for n in ("my-bot", "llama-4", "mistral-large")] == [
        "breakout", "momentum", "mean_reversion",
    ]
    p = M.agent_profile("my-bot")
    assert (p.name, p.model_provider) == ("my-bot", "custom")


# ---------------------------------------------------------------- market.py: long run invariants


def close_to(a, b, tol):
    # plain comparisons: pytest.approx is too slow for 100k checks
    assert abs(a - b) <= tol, (a, b, tol)


def _check_position(p: P.Position):
    d = 1 if p.side == "long" else -1
    assert p.side in ("long", "short") and p.position_amt > 0 and p.leverage >= 1
    close_to(p.unrealized_profit, (p.mark_price - p.entry_price) * p.position_amt * d, 1e-6)
    close_to(p.pnl_percentage, (p.mark_price - p.entry_price) / p.entry_price * 100 * d, 1e-4)
    liq = M.liquidation_price(p.side, p.entry_price, p.leverage)
    # reported to two decimals finer than the price tick
    close_to(p.liquidation_price, liq, M.SPECS[p.symbol].tick / 100)
    # never past liquidation when reported
    assert (p.mark_price > p.liquidation_price) if d == 1 else (p.mark_price < p.liquidation_price)


class InvariantChecker:
    """Checks documented-message arithmetic on a stream of one agent's events."""

    def __init__(self):
        self.last_positions: P.PositionUpdate | None = None
        self.order_ids: set[str] = set()
        self.cycles: list[int] = []
        self.counts: Counter = Counter()
        self.open: dict[str, str] = {}

    def feed(self, ev):
        self.counts[ev.kind] += 1
        if isinstance(ev, P.AccountUpdate):
            total, avail = ev.total_balance, ev.available_balance
            assert total > 0
            assert avail <= total + 1e-9
            margin = total - avail
            close_to(ev.used_percentage, margin / total * 100, 1e-5)
            pu = self.last_positions
            if pu is None:  # a client's very first frame precedes its first positions
                return
            assert pu.timestamp == ev.timestamp  # always sent as a pair
            close_to(ev.unrealized_pnl, sum(p.unrealized_profit for p in pu.positions), 1e-6)
            want_margin = sum(p.position_amt * p.entry_price / p.leverage for p in pu.positions)
            close_to(margin, want_margin, 1e-6)
        elif isinstance(ev, P.PositionUpdate):
            for p in ev.positions:
                _check_position(p)
            assert len({p.symbol for p in ev.positions}) == len(ev.positions)
            self.last_positions = ev
            self.open = {p.symbol: p.side for p in ev.positions}
        elif isinstance(ev, P.TradeExecuted):
            assert ev.order_id not in self.order_ids
            self.order_ids.add(ev.order_id)
            assert ev.status == "filled" and ev.quantity > 0 and ev.price > 0 and ev.side in ("long", "short")
            if ev.symbol in self.open:  # stops fire between position updates
                # a fill's side is its direction: closing a long sells ("short")
                assert self.open.pop(ev.symbol) == {"long": "short", "short": "long"}[ev.side]
            else:
                self.open[ev.symbol] = ev.side
        elif isinstance(ev, P.Decision):
            if self.cycles:
                assert ev.cycle > self.cycles[-1]
            self.cycles.append(ev.cycle)
            assert re.search(r"RSI\(\d+\) \d+\.\d|MACD|EMA\d+|Bollinger|ATR", ev.ai_reasoning)
            assert re.search(r"\d+\.\d+", ev.ai_reasoning)
            for it in ev.decisions:
                assert it.action in ACTIONS and it.reason
                if it.action.startswith("close_"):
                    assert self.open.get(it.symbol) == it.action[6:]
                if it.action.startswith("open_"):
                    assert it.symbol not in self.open
                    assert it.quantity > 0 and it.leverage and 1 <= it.leverage <= 10
                    # stop below / target above for a long, the reverse for a short
                    if it.action == "open_long":
                        assert it.stop_loss < it.take_profit
                    else:
                        assert it.stop_loss > it.take_profit
        elif isinstance(ev, P.AgentStatus):
            assert ev.is_running in (True, False) and ev.cycle_count >= 0


def test_long_run_invariants_on_every_event():
    """500 cycles of all six agents, driving market.py directly."""
    w = M.World(ALL, seed=5, start_time=START, error_rate=0.02)
    checkers = {a: InvariantChecker() for a in ALL}
    for a, ev in w.start_events():
        checkers[a].feed(ev)
    fills_checked = liquidations = 0
    while w.agents["gpt-5"].cycle < 500:
        liq_before = {a: {s: p.liq_price for s, p in ag.exchange.positions.items()} for a, ag in w.agents.items()}
        events = w.step(emit_marks=(w.ticks + 1) % 3 == 0)
        prices = w.market.prices()  # the marks these fills were made at
        open_now = {a: set(b) for a, b in liq_before.items()}
        for a, ev in events:
            checkers[a].feed(ev)
            if not isinstance(ev, P.TradeExecuted):
                continue
            s = ev.symbol
            spec = M.SPECS[s]
            closing = s in open_now[a]
            (open_now[a].discard if closing else open_now[a].add)(s)
            if closing and abs(ev.price - liq_before[a][s]) <= spec.tick:
                liquidations += 1  # a liquidation fills at the liquidation price
                continue
            # buys (a fill's side is its direction) pay mark + slippage; sells get below it
            mark = prices[s]
            if ev.side == "long":
                assert mark <= ev.price <= mark * 1.002 + spec.tick, (ev, mark)
            else:
                assert mark * 0.998 - spec.tick <= ev.price <= mark, (ev, mark)
            fills_checked += 1
        # the wallet identity: initial + realised P&L - open fees of open positions
        for a, ag in w.agents.items():
            ex = ag.exchange
            want = ex.initial_balance + sum(t.pnl_usdt for t in ag.closed_trades) - sum(
                p.open_fee for p in ex.positions.values()
            )
            close_to(ex.wallet, want, 1e-5)
    assert fills_checked > 300
    for a, ag in w.agents.items():
        c = checkers[a]
        assert c.counts["decision"] >= 480  # a few simulated LLM errors
        assert c.counts["agent_status"] >= 500
        assert len(c.order_ids) == c.counts["trade_executed"] > 10
        assert ag.closed_trades, a
        for t in ag.closed_trades:
            d = 1 if t.side == "long" else -1
            assert t.pnl_pct == pytest.approx((t.close_price - t.entry_price) / t.entry_price * 100 * d, abs=1e-5)
            fees = (t.entry_price + t.close_price) * t.quantity * 0.0004
            assert t.pnl_usdt == pytest.approx((t.close_price - t.entry_price) * t.quantity * d - fees, abs=1e-5)
            assert t.open_time < t.close_time
        perf = ag.performance(20)
        assert perf.total_trades == min(20, len(ag.closed_trades))
        assert len(ag.rest_decisions(5)) == 5 and ag.rest_decisions(5)[0]["cycle_number"] == ag.decision_log[-1]["cycle_number"]
    # six styles make six different equity paths
    assert len({round(ag.exchange.total_balance, 2) for ag in w.agents.values()}) == 6


def test_world_determinism_and_agent_independence():
    def run(agents, seed, cycles=40):
        w = M.World(agents, seed=seed, start_time=START)
        out = [(a, P.encode(ev)) for a, ev in w.start_events()]
        while w.agents[agents[-1]].cycle < cycles:
            out.extend((a, P.encode(ev)) for a, ev in w.step(emit_marks=(w.ticks + 1) % 3 == 0))
        return out

    a = run(TWO, 11)
    b = run(TWO, 11)
    assert a == b
    assert any('"trade_executed"' in f for _, f in a)
    c = run(TWO, 12)
    assert [f for _, f in a] != [f for _, f in c]
    # qwen's stream does not depend on whether deepseek runs next to it
    alone = [f for ag, f in run(("qwen3-max",), 11) if ag == "qwen3-max"]
    together = [f for ag, f in a if ag == "qwen3-max"]
    assert alone == together


def test_world_rejects_bad_arguments():
    with pytest.raises(ValueError):
        M.World([])
    with pytest.raises(ValueError):
        M.World(["a", "a"])
    with pytest.raises(ValueError):
        M.World(["a/b"])
    with pytest.raises(ValueError):
        M.World(["a"], cycle_minutes=0)


# ---------------------------------------------------------------- the server: messages


def test_first_frames_then_all_five_types_with_documented_shapes(sim_fast):
    url = f"{sim_fast.url}/ws/agents/deepseek-chat-v3.1"
    frames, code = collect(url, lambda fs: FIVE <= set(types_of(fs)) and len(fs) > 40, timeout=20)
    assert code is None
    assert types_of(frames[:3]) == ["account_update", "position_update", "agent_status"]
    for f in frames:
        msg = check_documented_shape(f)
        assert P.parse(f)  # and the client's codec reads it
        if msg["type"] == "decision":
            assert msg["data"]["agent_id"] == "deepseek-chat-v3.1"
    # what arrived after the first three frames is exactly what the simulator broadcast
    sent = sim_fast.sent_frames("deepseek-chat-v3.1")
    rest = frames[3:]
    i = sent.index(rest[0])
    assert sent[i : i + len(rest)] == rest


def test_networked_invariants_and_cadence():
    with Simulator(("gpt-5",), seed=3, speed=3000, error_rate=0.0, start_time=START) as sim:
        url = f"{sim.url}/ws/agents/gpt-5"
        frames, _ = collect(url, lambda fs: types_of(fs).count("decision") >= 30, timeout=30)
    chk = InvariantChecker()
    decisions = []
    for f in frames:
        (ev,) = P.parse(f)
        chk.feed(ev)
        if ev.kind == "decision":
            decisions.append(ev)
    assert chk.counts["trade_executed"] > 0
    # a cycle every 3 simulated minutes, consecutive numbers without LLM errors
    cycles = [d.cycle for d in decisions]
    assert cycles == list(range(cycles[0], cycles[0] + len(cycles)))
    gaps = {b.timestamp - a.timestamp for a, b in zip(decisions, decisions[1:])}
    assert gaps == {180 * 10**9}
    # each decision is followed by position, account and status updates
    ts = types_of(frames)
    for i, t in enumerate(ts):
        if t == "decision":
            tail = [x for x in ts[i + 1 : i + 12] if x != "trade_executed"][:3]
            if len(tail) == 3:
                assert tail == ["position_update", "account_update", "agent_status"]


def test_rest_endpoints_shapes(sim_fast):
    base = sim_fast.http_url
    wait_until(
        lambda: sim_fast.query(lambda w: len(w.agents["qwen3-max"].closed_trades) >= 1 and w.agents["qwen3-max"].cycle > 20),
        20, "a closed trade and 20 cycles",
    )
    st, ctype, body = http_get(base + "/")
    assert st == 200 and ctype == "application/json"
    assert body == {"name": "ROMA-01 Trading API", "version": "1.1.0", "status": "running"}
    assert http_get(base + "/health")[2] == {"status": "healthy"}

    st, _, agents = http_get(base + "/api/agents")
    assert [a["id"] for a in agents] == list(TWO)
    for a in agents:
        assert {"id", "name", "is_running", "cycle_count", "runtime_minutes"} <= a.keys()
        assert isinstance(a["cycle_count"], int) and a["is_running"] is True

    a = "qwen3-max"
    st, _, info = http_get(f"{base}/api/agents/{a}")
    assert st == 200 and info["agent_id"] == a and info["name"] == "Qwen3 Max"
    assert {"is_running", "cycle_count", "runtime_minutes"} <= info.keys()

    st, _, acc = http_get(f"{base}/api/agents/{a}/account")
    for k in ("total_wallet_balance", "available_balance", "total_unrealized_profit", "total_balance",
              "unrealized_pnl", "total_positions_value", "used_percentage"):
        assert isinstance(acc[k], float), k
    assert acc["total_wallet_balance"] == pytest.approx(acc["wallet_balance"] + acc["total_unrealized_profit"])

    st, _, positions = http_get(f"{base}/api/agents/{a}/positions")
    assert isinstance(positions, list)
    for p in positions:
        assert {"symbol", "side", "position_amt", "entry_price", "mark_price", "unrealized_profit",
                "leverage", "liquidation_price"} <= p.keys()

    st, _, perf = http_get(f"{base}/api/agents/{a}/performance?lookback=20")
    for k in ("total_trades", "wins", "losses"):
        assert isinstance(perf[k], int)
    for k in ("win_rate", "avg_profit", "avg_loss", "profit_factor", "sharpe_ratio", "max_drawdown", "total_pnl"):
        assert isinstance(perf[k], float), k
    assert perf["total_trades"] >= 1
    assert http_get(f"{base}/api/agents/{a}/performance?lookback=1")[2]["total_trades"] == 1

    st, _, decs = http_get(f"{base}/api/agents/{a}/decisions?limit=3")
    assert len(decs) == 3
    assert [d["cycle_number"] for d in decs] == sorted((d["cycle_number"] for d in decs), reverse=True)
    for d in decs:
        assert {"timestamp", "cycle_number", "chain_of_thought", "decisions", "account_state", "positions"} <= d.keys()
        assert P.parse_time(d["timestamp"]) is not None
        assert {"gross_total_balance", "adjusted_total_balance", "net_deposits", "external_cash_flow",
                "total_wallet_balance"} <= d["account_state"].keys()
        for it in d["decisions"]:
            assert it["action"] in ACTIONS and isinstance(it["reasoning"], str)
    assert len(http_get(f"{base}/api/agents/{a}/decisions")[2]) == 20  # the default limit

    st, _, eq = http_get(f"{base}/api/agents/{a}/equity-history?limit=4")
    assert len(eq) == 4
    for e in eq:
        assert {"timestamp", "cycle", "equity", "pnl"} <= e.keys()
    assert [e["cycle"] for e in eq] == sorted(e["cycle"] for e in eq)

    st, _, trades = http_get(f"{base}/api/agents/{a}/trades?limit=50")
    assert 1 <= len(trades) <= 50
    for t in trades:
        assert {"symbol", "side", "entry_price", "close_price", "quantity", "leverage", "open_time",
                "close_time", "pnl_pct", "pnl_usdt"} <= t.keys()
        assert t["side"] in ("long", "short")
        P.closed_trade_from_dict(t)

    st, _, prices = http_get(base + "/api/market/prices")
    assert [p["fullSymbol"] for p in prices] == list(M.SYMBOLS)
    assert all(isinstance(p["price"], float) and p["price"] > 0 for p in prices)
    st, _, two = http_get(base + "/api/market/prices?symbols=BTCUSDT,ETHUSDT")
    assert [(p["symbol"], p["fullSymbol"]) for p in two] == [("BTC", "BTCUSDT"), ("ETH", "ETHUSDT")]

    assert http_get(base + "/api/agents/nobody") == (404, "application/json", {"detail": "Agent not found: nobody"})
    assert http_get(base + "/api/agents/nobody/account")[0] == 404
    assert http_get(base + "/no/such/path")[0] == 404
    assert http_get(f"{base}/api/agents/{a}/decisions?limit=abc")[0] == 422


def test_profit_factor_infinity_over_rest():
    # An agent whose only trades won: profit_factor is Infinity in JSON, as in ROMA-01.
    with Simulator(("gpt-5",), speed=1.0) as sim:
        def fake(w):
            ag = w.agents["gpt-5"]
            ag.closed_trades.append(_ct(12.5))
            return True

        sim.query(fake)
        raw = urllib.request.urlopen(sim.http_url + "/api/agents/gpt-5/performance").read().decode()
    assert '"profit_factor": Infinity' in raw
    assert json.loads(raw)["profit_factor"] == math.inf


def test_unknown_agent_closes_1008(sim_fast):
    frames, code = collect(f"{sim_fast.url}/ws/agents/nobody", lambda fs: False, timeout=5)
    assert frames == [] and code == 1008
    # the reason names the agent, as the real backend's ValueError text does
    async def reason():
        async with websockets.connect(f"{sim_fast.url}/ws/agents/nobody") as ws:
            with pytest.raises(ConnectionClosed) as exc:
                await ws.recv()
            return exc.value.rcvd.reason
    assert asyncio.run(reason()) == "Agent not found: nobody"


def test_token_required_when_set():
    with Simulator(("gpt-5",), speed=60, token="s3cret") as sim:
        assert "s3cret" not in repr(sim) and "token=***" in repr(sim)
        url = f"{sim.url}/ws/agents/gpt-5"
        for bad in (url, url + "?token=wrong"):
            with pytest.raises(InvalidStatus) as exc:
                collect(bad, lambda fs: True, timeout=5)
            assert exc.value.response.status_code == 401
        frames, _ = collect(url + "?token=s3cret", lambda fs: len(fs) >= 3, timeout=5)
        assert types_of(frames) == ["account_update", "position_update", "agent_status"]
        assert http_get(sim.http_url + "/api/agents")[0] == 401
        assert http_get(sim.http_url + "/api/agents?token=s3cret")[0] == 200
        assert http_get(sim.http_url + "/api/agents", {"Authorization": "Bearer s3cret"})[0] == 200
        assert http_get(sim.http_url + "/health")[0] == 200


def test_ping_pong_and_other_input_ignored(sim_fast):
    async def go():
        async with websockets.connect(f"{sim_fast.url}/ws/agents/qwen3-max") as ws:
            for junk in ("hello", "[1, 2]", '{"type": "subscribe"}', b"\x00\x01"):
                await ws.send(junk)
            await ws.send(json.dumps({"type": "ping"}))
            async with asyncio.timeout(10):
                while True:
                    msg = json.loads(await ws.recv())
                    if msg["type"] == "pong":
                        break
            # still alive and streaming afterwards
            async with asyncio.timeout(10):
                nxt = json.loads(await ws.recv())
            return msg, nxt
    pong, nxt = asyncio.run(go())
    assert P.parse_time(pong["timestamp"]) is not None
    assert P.parse(json.dumps(pong)) == ()
    assert nxt["type"] in FIVE


def test_oversized_client_frame_closes_1009(sim_fast):
    async def go():
        async with websockets.connect(f"{sim_fast.url}/ws/agents/qwen3-max") as ws:
            await ws.send("x" * 4096)  # at the limit: fine
            await ws.send(json.dumps({"type": "ping"}))
            async with asyncio.timeout(10):
                while json.loads(await ws.recv())["type"] != "pong":
                    pass
            await ws.send("x" * 5000)
            with pytest.raises(ConnectionClosed) as exc:
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            return exc.value.rcvd.code
    assert asyncio.run(go()) == 1009


def test_same_seed_same_frames_over_the_network():
    kw = dict(seed=21, speed=3000, start_time=START, error_rate=0.02)
    with Simulator(TWO, **kw) as s1, Simulator(TWO, **kw) as s2:
        for s in (s1, s2):
            wait_until(lambda s=s: s.sent_count("deepseek-chat-v3.1") >= 200, 30, "200 frames")
        f1 = s1.sent_frames("deepseek-chat-v3.1")[:200]
        f2 = s2.sent_frames("deepseek-chat-v3.1")[:200]
        assert f1 == f2  # with a fixed start_time even the timestamps agree
        assert {"decision", "trade_executed"} <= set(types_of(f1))
        # clients see those values too: decisions by cycle are equal
        got = []
        for s in (s1, s2):
            frames, _ = collect(f"{s.url}/ws/agents/deepseek-chat-v3.1",
                                lambda fs: types_of(fs).count("decision") >= 3, timeout=15)
            got.append({json.loads(f)["data"]["cycle"]: f for f in frames if '"type": "decision"' in f})
        sent1 = {json.loads(f)["data"]["cycle"]: f for f in s1.sent_frames("deepseek-chat-v3.1") if '"decision"' in f}
        sent2 = {json.loads(f)["data"]["cycle"]: f for f in s2.sent_frames("deepseek-chat-v3.1") if '"decision"' in f}
        for cyc, f in got[0].items():
            assert sent2.get(cyc, f) == f
        for cyc, f in got[1].items():
            assert sent1.get(cyc, f) == f
    # a different speed thins mark updates differently but decides the same
    with Simulator(TWO, **{**kw, "speed": 6000}) as s3:
        wait_until(lambda: s3.sent_count("deepseek-chat-v3.1") >= 100, 30, "100 frames")
        d3 = [strip_ts(f) for f in s3.sent_frames("deepseek-chat-v3.1") if '"type": "decision"' in f]
    d1 = [strip_ts(f) for f in f1 if '"type": "decision"' in f]
    n = min(len(d1), len(d3))
    assert n >= 1 and d1[:n] == d3[:n]


def test_wall_clock_mode_keeps_values():
    kw = dict(seed=4, speed=1200, error_rate=0.0, start_time=START)
    with Simulator(("gpt-5",), **kw) as a, Simulator(("gpt-5",), clock="wall", **kw) as b:
        for s in (a, b):
            wait_until(lambda s=s: s.sent_count("gpt-5") >= 60, 20, "60 frames")
        fa, fb = a.sent_frames("gpt-5")[:60], b.sent_frames("gpt-5")[:60]
    assert [strip_ts(x) for x in fa] == [strip_ts(x) for x in fb]
    now = time.time_ns()
    tb = P.parse_time(json.loads(fb[-1])["timestamp"])
    assert abs(now - tb) < 60 * 10**9  # wall clock, not 2025
    assert json.loads(fa[0])["timestamp"].startswith("2025-11-02")


# ---------------------------------------------------------------- the server: dialect and knobs


def test_roma_backend_dialect_snapshots():
    with Simulator(("qwen3-max",), seed=2, speed=600, dialect="roma-backend", snapshot_interval=0.05) as sim:
        frames, _ = collect(f"{sim.url}/ws/agents/qwen3-max", lambda fs: len(fs) >= 4, timeout=10)
        assert sim.sent_count("qwen3-max") >= 4
        frames2, code = collect(f"{sim.url}/ws/agents/nobody", lambda fs: False, timeout=5)
        assert code == 1008
    for f in frames:
        msg = json.loads(f)
        assert set(msg) == {"timestamp", "account", "positions", "performance", "status"}
        assert isinstance(msg["timestamp"], float)  # loop time, not ISO
        assert {"total_wallet_balance", "available_balance", "total_unrealized_profit"} <= msg["account"].keys()
        for p in msg["positions"]:
            assert "pnl_percentage" not in p and "liquidation_price" in p
        assert {"agent_id", "name", "is_running", "cycle_count", "runtime_minutes"} <= msg["status"].keys()
        assert {"total_trades", "win_rate", "profit_factor", "sharpe_ratio"} <= msg["performance"].keys()
        kinds = [e.kind for e in P.parse(f)]
        assert kinds == ["account_update", "position_update", "performance", "agent_status"]
    ts = [json.loads(f)["timestamp"] for f in frames]
    assert ts == sorted(ts) and ts[-1] - ts[0] >= 0.1


def test_drop_every_closes_with_1012_and_clients_can_reconnect():
    with Simulator(("gpt-5",), speed=600, drop_every=0.3) as sim:
        url = f"{sim.url}/ws/agents/gpt-5"
        t0 = time.monotonic()
        frames, code = collect(url, lambda fs: False, timeout=10)
        assert code == 1012 and time.monotonic() - t0 < 5
        assert types_of(frames[:3]) == ["account_update", "position_update", "agent_status"]
        frames, code = collect(url, lambda fs: False, timeout=10)
        assert code == 1012 and len(frames) >= 3
    # the same on demand
    with Simulator(("gpt-5",), speed=600) as sim:
        async def go():
            async with websockets.connect(f"{sim.url}/ws/agents/gpt-5") as ws:
                await asyncio.to_thread(sim.wait_for_clients, 1)
                assert await asyncio.to_thread(sim.disconnect_all) == 1
                with pytest.raises(ConnectionClosed) as exc:
                    async with asyncio.timeout(10):
                        while True:
                            await ws.recv()
                return exc.value.rcvd.code, exc.value.rcvd.reason
        assert asyncio.run(go()) == (1012, "Service restart")
        wait_until(lambda: sim.client_count() == 0, 5, "the client to go")


def test_malformed_every_rotates_broken_frames():
    with Simulator(("deepseek-chat-v3.1",), seed=1, speed=1200, malformed_every=4) as sim:
        url = f"{sim.url}/ws/agents/deepseek-chat-v3.1"
        frames, _ = collect(url, lambda fs: len(fs) >= 3 + 5 * 10, timeout=20)
        assert sim.stats()["malformed_frames"] >= 10
    kinds, good = [], 0
    for f in frames[3:]:
        try:
            P.parse(f)
            good += 1
        except ProtocolError as e:
            kinds.append(e.kind)
    assert len(kinds) >= 9 and good >= 36
    # in rotation: the sequence is a window of the repeating kinds
    start = MALFORMED_KINDS.index(kinds[0])
    assert kinds == [MALFORMED_KINDS[(start + i) % 4] for i in range(len(kinds))]


def test_firehose_sends_n_account_updates_first():
    n = 5000
    with Simulator(("gpt-5",), speed=60, firehose=n) as sim:
        frames, _ = collect(f"{sim.url}/ws/agents/gpt-5", lambda fs: len(fs) >= 3 + n + 1, timeout=20)
        assert sim.stats()["firehose_frames"] == n
    assert types_of(frames[:3]) == ["account_update", "position_update", "agent_status"]
    fh = frames[3 : 3 + n]
    assert all(f.startswith('{"type": "account_update"') for f in fh)
    (ev,) = P.parse(fh[-1])
    assert ev.total_balance > 0


def test_max_connections_per_ip_429():
    with Simulator(("gpt-5",), speed=60, max_connections_per_ip=2) as sim:
        url = f"{sim.url}/ws/agents/gpt-5"

        async def go():
            a = await websockets.connect(url)
            b = await websockets.connect(url)
            with pytest.raises(InvalidStatus) as exc:
                await websockets.connect(url)
            await a.close()
            # a slot frees up once a connection has closed
            async with asyncio.timeout(5):
                while True:
                    try:
                        c = await websockets.connect(url)
                        break
                    except InvalidStatus:
                        await asyncio.sleep(0.01)
            await b.close()
            await c.close()
            return exc.value.response.status_code

        assert asyncio.run(go()) == 429
        assert sim.stats()["rejected"] >= 1


def _raw_ws_client_that_never_reads(port: int, path: str) -> socket.socket:
    """A handshake by hand on a socket with a tiny receive buffer, then silence:
    the server's writes to it back up quickly."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(
        (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(1)
    assert buf.startswith(b"HTTP/1.1 101"), buf
    return s


def test_slow_client_is_dropped_without_blocking_others():
    # The firehose (6 MB) overflows every socket buffer on the way to the client
    # that never reads; broadcast frames then pile up in its outbox until it is
    # dropped, while the reading client keeps receiving everything.
    n = 40_000
    with Simulator(TWO, seed=3, speed=1200, firehose=n, max_backlog=30, stall_timeout=3.0, error_rate=0.0) as sim:
        slow = _raw_ws_client_that_never_reads(sim.port, "/ws/agents/deepseek-chat-v3.1")
        try:
            url = f"{sim.url}/ws/agents/deepseek-chat-v3.1"

            async def fast():
                count = decisions = 0
                async with websockets.connect(url) as ws:
                    async with asyncio.timeout(30):
                        while decisions < 5 or not sim.stats()["slow_clients_dropped"]:
                            f = await ws.recv()
                            count += 1
                            decisions += count > 3 + n and '"type": "decision"' in f
                return count, decisions

            count, decisions = asyncio.run(fast())
            assert sim.stats()["slow_clients_dropped"] == 1
            assert count > n and decisions >= 5
        finally:
            slow.close()


def test_set_running_and_stop_send_agent_status():
    with Simulator(("gpt-5",), speed=600, error_rate=0.0) as sim:
        url = f"{sim.url}/ws/agents/gpt-5"

        async def go():
            async with websockets.connect(url) as ws:
                msgs = []
                async def until(pred):
                    async with asyncio.timeout(10):
                        while True:
                            m = json.loads(await ws.recv())
                            msgs.append(m)
                            if pred(m):
                                return m
                await until(lambda m: m["type"] == "decision")
                await asyncio.to_thread(sim.set_running, "gpt-5", False)
                off = await until(lambda m: m["type"] == "agent_status" and m["data"]["is_running"] is False)
                n = len(msgs)
                await asyncio.sleep(0.5)  # 300 simulated seconds: cycles would have run
                await asyncio.to_thread(sim.set_running, "gpt-5", True)
                await until(lambda m: m["type"] == "agent_status" and m["data"]["is_running"] is True)
                assert not [m for m in msgs[n:] if m["type"] == "decision"]
                await until(lambda m: m["type"] == "decision")
                await asyncio.to_thread(sim.stop)
                with pytest.raises(ConnectionClosed) as exc:
                    await until(lambda m: False)
                return off, msgs, exc.value.rcvd.code

        off, msgs, code = asyncio.run(go())
        assert off["data"]["cycle_count"] >= 1
        assert msgs[-1]["type"] == "agent_status" and msgs[-1]["data"]["is_running"] is False
        assert code == 1001


def test_lifecycle_repr_and_argument_checks():
    sim = Simulator(("gpt-5",))
    assert "state='new'" in repr(sim)
    with pytest.raises(RuntimeError):
        sim.url
    sim.start()
    assert sim.start() is sim and sim.is_running
    port = sim.port
    assert sim.url == f"ws://127.0.0.1:{port}" and sim.http_url == f"http://127.0.0.1:{port}"
    sim.stop()
    sim.stop()
    assert not sim.is_running and "state='stopped'" in repr(sim)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with pytest.raises(RuntimeError):
        sim.start()
    with pytest.raises(KeyError):
        Simulator(("gpt-5",)).sent_frames("nobody")
    for kwargs in (dict(speed=0), dict(speed=math.inf), dict(dialect="x"), dict(port=70000), dict(token=""),
                   dict(malformed_every=0), dict(firehose=-1), dict(clock="utc"), dict(max_connections_per_ip=0)):
        with pytest.raises(ValueError):
            Simulator(("gpt-5",), **kwargs)
    with pytest.raises(ValueError):
        Simulator(())
    with pytest.raises(TypeError):
        Simulator(("gpt-5",), seed="7")
    assert Simulator("gpt-5").agents == ("gpt-5",)
    # a taken port is an OSError from start()
    with Simulator(("gpt-5",)) as a:
        with pytest.raises(OSError):
            Simulator(("gpt-5",), port=a.port).start()


# ---------------------------------------------------------------- the CLI and the documented client


def _cli(*args: str) -> SimProcess:
    """``python -m roma_notebook sim --port 0 ...`` with its output collected."""
    return SimProcess(args)


def _stop(cli: SimProcess) -> tuple[int, str, str]:
    """SIGINT (Ctrl-C); returns (exit code, stdout, stderr)."""
    rc = cli.stop()
    return rc, "".join(cli.out), cli.stderr


class _AllFiveSeen(Exception):
    pass


def test_documented_python_client_against_the_cli():
    cli = _cli("--speed", "1200", "--seed", "7", "--agents", "deepseek-chat-v3.1,qwen3-max")
    url = cli.url
    try:
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+", url)
        # The example as documented, except the URL and its last line (we run the
        # coroutine with a time bound instead of forever).
        code = SEED_PYTHON_CLIENT.replace("ws://localhost:8000", url)
        code = code.replace('asyncio.run(connect_to_agent("deepseek-chat-v3.1"))\n', "")
        ns: dict = {"__name__": "seed_example"}
        exec(compile(code, "websocket-api.md", "exec"), ns)
        # The example calls handle_decision/handle_trade without defining them;
        # supply them, and count every frame type through its json.loads.
        seen: Counter = Counter()
        handled: dict[str, list] = {"decision": [], "trade": []}
        ns["handle_decision"] = handled["decision"].append
        ns["handle_trade"] = handled["trade"].append
        real_json = ns["json"]

        class CountingJson:
            @staticmethod
            def loads(s):
                if FIVE <= set(seen) and handled["trade"]:
                    raise _AllFiveSeen
                d = real_json.loads(s)
                seen[d.get("type")] += 1
                return d

        ns["json"] = CountingJson
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            with pytest.raises(_AllFiveSeen):
                asyncio.run(asyncio.wait_for(ns["connect_to_agent"]("deepseek-chat-v3.1"), 30))
        printed = out.getvalue()
        assert FIVE <= set(seen), seen
        assert "✅ Connected to deepseek-chat-v3.1" in printed
        assert re.search(r"💰 Balance: \$\d+\.\d\d", printed)
        assert all(d["agent_id"] == "deepseek-chat-v3.1" for d in handled["decision"])
        assert all(t["status"] == "filled" for t in handled["trade"])
        if "📊" in printed:
            assert re.search(r"📊 [A-Z]+USDT (long|short): [+-]\d+\.\d\d", printed)
        # REST on the same port
        assert http_get(url.replace("ws://", "http://") + "/health")[2] == {"status": "healthy"}
    finally:
        rc, stdout, stderr = _stop(cli)
    assert rc == 0, stderr
    assert "/ws/agents/deepseek-chat-v3.1" in stdout
    # one log line per connection
    assert len(re.findall(r"ws 127\.0\.0\.1:\d+ -> deepseek-chat-v3\.1 connected", stderr)) == 1


def test_cli_warns_when_exposed_without_token():
    cli = _cli("--host", "0.0.0.0", "--speed", "60")
    rc, out, err = _stop(cli)
    assert rc == 0 and cli.url.startswith("ws://127.0.0.1:")
    assert "binding 0.0.0.0 without --token" in err


def test_cli_rejects_bad_arguments(capsys):
    from roma_notebook.cli import build_parser, main

    assert main(["sim", "--port", "0", "--speed", "0"]) == 2
    assert "speed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["sim", "--dialect", "nope"])
    assert exc.value.code == 2
    args = build_parser().parse_args(["sim", "--agents", "a,b", "--seed", "7", "--speed", "60", "--token", "T",
                                      "--dialect", "roma-backend"])
    assert (args.agents, args.seed, args.speed, args.token, args.dialect) == ("a,b", 7, 60.0, "T", "roma-backend")
