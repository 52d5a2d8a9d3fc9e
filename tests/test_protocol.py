"""Tests of the sans-I/O codec: documented messages, the real-backend snapshot,
bad input, encode/parse round trips and fuzzing."""

from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roma_notebook.core import protocol as P
from roma_notebook.core.errors import ProtocolError, RomaError

# ------------------------------------------------------------------ seed examples
# The JSON examples of the WebSocket API reference, verbatim (tests/data holds them;
# test_simulator checks these copies against it).

SEED_ACCOUNT = """{
  "type": "account_update",
  "timestamp": "2025-11-02T10:30:00Z",
  "data": {
    "total_balance": 10050.25,
    "available_balance": 8525.00,
    "unrealized_pnl": 50.25,
    "used_percentage": 15.0
  }
}"""

SEED_POSITION = """{
  "type": "position_update",
  "timestamp": "2025-11-02T10:30:15Z",
  "data": [
    {
      "symbol": "BTCUSDT",
      "side": "long",
      "position_amt": 0.001,
      "entry_price": 68000.0,
      "mark_price": 68500.0,
      "unrealized_profit": 0.50,
      "pnl_percentage": 0.74,
      "leverage": 10
    }
  ]
}"""

SEED_DECISION = """{
  "type": "decision",
  "timestamp": "2025-11-02T10:30:00Z",
  "data": {
    "cycle": 123,
    "agent_id": "deepseek-chat-v3.1",
    "ai_reasoning": "BTC showing strong bullish momentum with RSI(7) at 75.3...",
    "decisions": [
      {
        "action": "open_long",
        "symbol": "BTCUSDT",
        "quantity": 0.001,
        "leverage": 10,
        "reason": "Breakout above resistance with volume confirmation"
      }
    ]
  }
}"""

SEED_TRADE = """{
  "type": "trade_executed",
  "timestamp": "2025-11-02T10:30:05Z",
  "data": {
    "order_id": "12345678",
    "symbol": "BTCUSDT",
    "side": "long",
    "quantity": 0.001,
    "price": 68450.0,
    "leverage": 10,
    "status": "filled"
  }
}"""

SEED_STATUS = """{
  "type": "agent_status",
  "timestamp": "2025-11-02T10:30:00Z",
  "data": {
    "agent_id": "deepseek-chat-v3.1",
    "is_running": true,
    "cycle_count": 124,
    "last_decision_time": "2025-11-02T10:30:00Z"
  }
}"""

SEED_FRAMES = {
    "account_update": SEED_ACCOUNT,
    "position_update": SEED_POSITION,
    "decision": SEED_DECISION,
    "trade_executed": SEED_TRADE,
    "agent_status": SEED_STATUS,
}

# What the real ROMA-01 backend sends every 5 s (dialect 2): no "type", loop-time
# timestamp, its own account keys, positions without pnl_percentage, bare Infinity.
REAL_SNAPSHOT = """{"timestamp": 12345.6,
 "account": {"total_wallet_balance": 10100.5, "available_balance": 9000.0,
             "total_unrealized_profit": 100.5, "initial_balance": 10000.0},
 "positions": [{"symbol": "ETHUSDT", "side": "SHORT", "position_amt": -0.5,
                "entry_price": 3500.0, "mark_price": 3450.0, "unrealized_profit": 25.0,
                "leverage": 5, "liquidation_price": 4100.0, "margin_type": "cross"}],
 "performance": {"total_trades": 10, "wins": 10, "losses": 0, "win_rate": 100.0,
                 "avg_profit": 12.5, "avg_loss": 0.0, "profit_factor": Infinity,
                 "sharpe_ratio": 1.2, "max_drawdown": 3.4, "total_pnl": 125.0,
                 "best_trade": 30.0, "worst_trade": 2.0},
 "status": {"agent_id": "deepseek-chat-v3.1", "name": "DeepSeek V3.1", "is_running": true,
            "cycle_count": 42, "runtime_minutes": 126.5, "dex_type": "aster"}}"""

T_1030 = 1762079400 * 10**9  # 2025-11-02T10:30:00Z in ns


def nan_eq(a, b) -> bool:
    """Structural equality where NaN equals NaN (dataclass == does not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, tuple):
        return len(a) == len(b) and all(nan_eq(x, y) for x, y in zip(a, b))
    if hasattr(a, "__dataclass_fields__"):
        return all(nan_eq(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


def one(frame):
    events = P.parse(frame)
    assert len(events) == 1
    return events[0]


def bad(frame, kind: str, *names: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        P.parse(frame)
    err = info.value
    assert err.kind == kind, err
    for name in names:
        assert name in err.detail, (name, err.detail)
    assert len(err.detail) < 400  # the detail never echoes a huge field
    return err


def doc(mtype: str, data, timestamp="2025-11-02T10:30:00Z") -> str:
    return json.dumps({"type": mtype, "timestamp": timestamp, "data": data})


# ------------------------------------------------------------------ documented types


def test_seed_account_update():
    ev = one(SEED_ACCOUNT)
    assert isinstance(ev, P.AccountUpdate) and ev.kind == "account_update"
    assert ev.timestamp == T_1030
    assert (ev.total_balance, ev.available_balance, ev.unrealized_pnl, ev.used_percentage) == (
        10050.25,
        8525.0,
        50.25,
        15.0,
    )


def test_seed_position_update():
    ev = one(SEED_POSITION)
    assert isinstance(ev, P.PositionUpdate)
    assert ev.timestamp == T_1030 + 15 * 10**9
    (p,) = ev.positions
    assert (p.symbol, p.side, p.position_amt, p.entry_price, p.mark_price) == (
        "BTCUSDT",
        "long",
        0.001,
        68000.0,
        68500.0,
    )
    assert (p.unrealized_profit, p.pnl_percentage, p.leverage) == (0.5, 0.74, 10)
    assert math.isnan(p.liquidation_price)  # documented dialect has none


def test_seed_decision():
    ev = one(SEED_DECISION)
    assert isinstance(ev, P.Decision)
    assert (ev.timestamp, ev.cycle, ev.agent_id) == (T_1030, 123, "deepseek-chat-v3.1")
    assert ev.ai_reasoning == "BTC showing strong bullish momentum with RSI(7) at 75.3..."
    (it,) = ev.decisions
    assert (it.action, it.symbol, it.quantity, it.leverage) == ("open_long", "BTCUSDT", 0.001, 10)
    assert it.reason == "Breakout above resistance with volume confirmation"
    assert all(math.isnan(x) for x in (it.position_size_usd, it.stop_loss, it.take_profit))


def test_seed_trade_executed():
    ev = one(SEED_TRADE)
    assert isinstance(ev, P.TradeExecuted)
    assert ev.timestamp == T_1030 + 5 * 10**9
    assert (ev.order_id, ev.symbol, ev.side, ev.quantity, ev.price, ev.leverage, ev.status) == (
        "12345678",
        "BTCUSDT",
        "long",
        0.001,
        68450.0,
        10,
        "filled",
    )


def test_seed_agent_status():
    ev = one(SEED_STATUS)
    assert isinstance(ev, P.AgentStatus)
    assert (ev.timestamp, ev.agent_id, ev.is_running, ev.cycle_count) == (
        T_1030,
        "deepseek-chat-v3.1",
        True,
        124,
    )
    assert ev.last_decision_time == T_1030
    assert ev.name is None and math.isnan(ev.runtime_minutes)


def test_pong_yields_nothing():
    assert P.parse('{"type": "pong"}') == ()
    assert P.parse('{"type": "pong", "timestamp": "2025-11-02T10:30:00Z"}') == ()


def test_message_types_constant():
    assert set(P.MESSAGE_TYPES) == set(SEED_FRAMES)


def test_bytes_are_not_text_but_bytes_are_binary():
    # a text frame handed over as str is parsed; the same bytes are a binary frame
    assert P.parse(SEED_ACCOUNT)
    for frame in (SEED_ACCOUNT.encode(), bytearray(SEED_ACCOUNT.encode()), memoryview(b"{}")):
        bad(frame, "binary", "binary")


# ------------------------------------------------------------------ real-backend snapshot


def test_real_snapshot_dialect():
    events = P.parse(REAL_SNAPSHOT)
    assert [e.kind for e in events] == ["account_update", "position_update", "performance", "agent_status"]
    assert all(e.timestamp is None for e in events)  # loop seconds are not wall time
    acc, pos, perf, status = events
    assert acc.total_balance == 10100.5
    assert acc.available_balance == 9000.0
    assert acc.unrealized_pnl == 100.5
    assert math.isnan(acc.used_percentage)
    (p,) = pos.positions
    assert (p.symbol, p.side, p.position_amt, p.leverage, p.liquidation_price) == (
        "ETHUSDT",
        "short",
        -0.5,
        5,
        4100.0,
    )
    assert math.isnan(p.pnl_percentage)
    assert perf.profit_factor == math.inf
    assert (perf.total_trades, perf.wins, perf.losses) == (10, 10, 0)
    assert (perf.win_rate, perf.sharpe_ratio, perf.max_drawdown, perf.total_pnl) == (100.0, 1.2, 3.4, 125.0)
    assert (perf.best_trade, perf.worst_trade) == (30.0, 2.0)
    assert (status.agent_id, status.name, status.is_running, status.cycle_count) == (
        "deepseek-chat-v3.1",
        "DeepSeek V3.1",
        True,
        42,
    )
    assert status.runtime_minutes == 126.5
    assert status.last_decision_time is None


def test_partial_snapshot_and_flat_positions():
    events = P.parse('{"timestamp": 1.0, "positions": []}')
    assert len(events) == 1 and events[0].positions == ()
    events = P.parse('{"timestamp": 1.0, "account": {"available_balance": 5}, "status": null}')
    assert [e.kind for e in events] == ["account_update"]


def test_snapshot_bad_parts():
    bad('{"timestamp": 1.0}', "unknown_type")
    bad('{"account": [1, 2]}', "bad_field", "account")
    bad('{"positions": {"symbol": "X"}}', "bad_field", "positions")
    bad('{"positions": [{"side": "long"}]}', "bad_field", "positions[0].symbol")
    bad('{"performance": {"win_rate": Infinity}}', "bad_field", "performance.win_rate")
    bad('{"performance": {"profit_factor": NaN}}', "bad_field", "performance.profit_factor")
    bad('{"status": {"is_running": "yes"}}', "bad_field", "status.is_running")


def test_snapshot_round_trip():
    acc = P.AccountUpdate(None, 100.0, 90.0, 10.0, math.nan)
    pos = P.PositionUpdate(
        None, (P.Position("BTCUSDT", "long", 0.1, 60000.0, 61000.0, 100.0, math.nan, 3, 40000.0),),
        snapshot=True,  # what parsing a snapshot says of its positions
    )
    perf = P.Performance(None, 3, 2, 1, 66.7, 10.0, -5.0, math.inf, 0.5, 2.0, 15.0, 12.0, -5.0)
    status = P.AgentStatus(None, "a", True, 7, None, "Agent A", 21.0)
    text = P.encode_snapshot(987.25, acc, pos, perf, status)
    obj = json.loads(text)
    assert "type" not in obj and obj["timestamp"] == 987.25
    assert "total_wallet_balance" in obj["account"] and "pnl_percentage" not in obj["positions"][0]
    assert "Infinity" in text
    got = P.parse(text)
    assert all(nan_eq(a, b) for a, b in zip(got, (acc, pos, perf, status)))


# ------------------------------------------------------------------ decision item shapes


def test_decision_items_both_shapes_and_hold():
    frame = doc(
        "decision",
        {
            "cycle": 7,
            "ai_reasoning": "mixed",
            "decisions": [
                {"action": "open_long", "symbol": "BTCUSDT", "quantity": 0.01, "leverage": 5, "reason": "r1"},
                {
                    "action": "open_short",
                    "symbol": "ETHUSDT",
                    "leverage": 3,
                    "position_size_usd": 500.0,
                    "stop_loss": 3700.5,
                    "take_profit": 3300,
                    "reasoning": "r2",
                },
                {"action": "hold", "reasoning": "nothing to do"},
                {"action": "wait"},
            ],
        },
    )
    ev = one(frame)
    a, b, c, d = ev.decisions
    assert (a.action, a.symbol, a.quantity, a.leverage, a.reason) == ("open_long", "BTCUSDT", 0.01, 5, "r1")
    assert math.isnan(a.position_size_usd)
    assert (b.symbol, b.position_size_usd, b.stop_loss, b.take_profit, b.reason) == (
        "ETHUSDT",
        500.0,
        3700.5,
        3300.0,
        "r2",
    )
    assert math.isnan(b.quantity)
    assert (c.action, c.symbol, c.leverage, c.reason) == ("hold", None, None, "nothing to do")
    assert (d.action, d.symbol, d.reason) == ("wait", None, None)
    assert math.isnan(d.quantity)


def test_decision_log_key_names():
    ev = one(doc("decision", {"cycle_number": 9, "chain_of_thought": "cot", "decisions": []}))
    assert (ev.cycle, ev.ai_reasoning, ev.decisions) == (9, "cot", ())


def test_decision_without_items():
    ev = one(doc("decision", {"cycle": 1}))
    assert ev.decisions == () and ev.agent_id is None and ev.ai_reasoning is None


# ------------------------------------------------------------------ lenient inputs


def test_numbers_as_strings_accepted():
    ev = one(doc("account_update", {"total_balance": "10050.25", "available_balance": "8525", "unrealized_pnl": " -1e2 "}))
    assert (ev.total_balance, ev.available_balance, ev.unrealized_pnl) == (10050.25, 8525.0, -100.0)
    ev = one(doc("trade_executed", {"order_id": 12345678, "quantity": "0.5", "price": "100", "leverage": "10"}))
    assert (ev.order_id, ev.quantity, ev.price, ev.leverage) == ("12345678", 0.5, 100.0, 10)
    ev = one(doc("decision", {"cycle": "123", "decisions": [{"action": "hold", "leverage": 5.0}]}))
    assert ev.cycle == 123 and ev.decisions[0].leverage == 5
    ev = one(doc("agent_status", {"cycle_count": "4", "is_running": 1, "runtime_minutes": "2.5"}))
    assert (ev.cycle_count, ev.is_running, ev.runtime_minutes) == (4, True, 2.5)


def test_unknown_extra_fields_ignored():
    obj = json.loads(SEED_TRADE)
    obj["extra"] = {"nested": [1, 2, 3]}
    obj["data"]["fee"] = 0.01
    obj["data"]["exchange"] = {"name": "aster"}
    assert nan_eq(one(json.dumps(obj)), one(SEED_TRADE))
    obj = json.loads(SEED_POSITION)
    obj["data"][0]["margin_type"] = "cross"
    assert nan_eq(one(json.dumps(obj)), one(SEED_POSITION))


def test_missing_numbers_are_nan_not_zero():
    ev = one(doc("account_update", {"total_balance": 1.0, "unrealized_pnl": None}))
    assert ev.total_balance == 1.0
    assert math.isnan(ev.available_balance) and math.isnan(ev.unrealized_pnl)


@pytest.mark.parametrize(
    "stamp, expected",
    [
        ("2025-11-02T10:30:00Z", T_1030),
        ("2025-11-02T10:30:00", T_1030),  # zone-less times are UTC
        ("2025-11-02T12:30:00+02:00", T_1030),
        ("2025-11-02T10:30:00.250Z", T_1030 + 250_000_000),
        ("not a time", None),
        (12345.6, None),
        (None, None),
        ("9999-12-31T23:59:59Z", None),  # beyond datetime64[ns]: unusable, not a crash
        ("0001-01-01T00:00:00+05:00", None),
    ],
)
def test_timestamps(stamp, expected):
    ev = one(json.dumps({"type": "account_update", "timestamp": stamp, "data": {}}))
    assert ev.timestamp == expected


def test_status_last_decision_time_out_of_range_is_missing():
    ev = one(doc("agent_status", {"last_decision_time": "2999-01-01T00:00:00Z"}))
    assert ev.last_decision_time is None


def test_format_time():
    assert P.format_time(T_1030) == "2025-11-02T10:30:00Z"
    assert P.format_time(T_1030 + 250_000_000) == "2025-11-02T10:30:00.250000Z"
    assert P.format_time(None) is None


# ------------------------------------------------------------------ bad input classes


def test_not_json():
    bad("{not json", "not_json")
    bad("   ", "not_json")
    bad(SEED_ACCOUNT + " trailing", "not_json")
    bad('{"type": "pong"} {"type": "pong"}', "not_json")


def test_not_object():
    for text in ("[1, 2]", '"account_update"', "42", "null", "true"):
        bad(text, "not_object")


def test_unknown_type():
    bad(doc("margin_call", {}), "unknown_type", "margin_call")
    bad('{"type": 5, "data": {}}', "unknown_type")
    bad('{"type": ["account_update"], "data": {}}', "unknown_type")
    bad("{}", "unknown_type")
    bad('{"hello": "world"}', "unknown_type")


@pytest.mark.parametrize("mtype", sorted(SEED_FRAMES))
def test_missing_data(mtype):
    bad(json.dumps({"type": mtype, "timestamp": "2025-11-02T10:30:00Z"}), "bad_field", "data")


@pytest.mark.parametrize(
    "mtype, data, field",
    [
        ("account_update", [1, 2], "data"),
        ("account_update", "x", "data"),
        ("account_update", {"total_balance": "abc"}, "data.total_balance"),
        ("account_update", {"total_balance": True}, "data.total_balance"),
        ("account_update", {"available_balance": [1]}, "data.available_balance"),
        ("account_update", {"used_percentage": {"v": 1}}, "data.used_percentage"),
        ("position_update", {"symbol": "BTCUSDT"}, "data"),
        ("position_update", [1], "data[0]"),
        ("position_update", [{"side": "long"}], "data[0].symbol"),
        ("position_update", [{"symbol": "BTCUSDT"}], "data[0].side"),
        ("position_update", [{"symbol": 5.5, "side": "long"}], "data[0].symbol"),
        ("position_update", [{"symbol": "B", "side": "long", "leverage": "ten"}], "data[0].leverage"),
        ("position_update", [{"symbol": "B", "side": "long", "mark_price": "x"}], "data[0].mark_price"),
        ("decision", [], "data"),
        ("decision", {"cycle": 1.5}, "data.cycle"),
        ("decision", {"cycle": "x"}, "data.cycle"),
        ("decision", {"ai_reasoning": 5.5}, "data.ai_reasoning"),
        ("decision", {"decisions": {"action": "hold"}}, "data.decisions"),
        ("decision", {"decisions": ["hold"]}, "data.decisions[0]"),
        ("decision", {"decisions": [{"symbol": "BTCUSDT"}]}, "data.decisions[0].action"),
        ("decision", {"decisions": [{"action": "hold"}, {"action": "buy", "quantity": "lots"}]}, "data.decisions[1].quantity"),
        ("trade_executed", None, "data"),
        ("trade_executed", {"order_id": [1]}, "data.order_id"),
        ("trade_executed", {"price": "cheap"}, "data.price"),
        ("trade_executed", {"leverage": 2.5}, "data.leverage"),
        ("agent_status", {"is_running": "yes"}, "data.is_running"),
        ("agent_status", {"is_running": 2}, "data.is_running"),
        ("agent_status", {"cycle_count": [1]}, "data.cycle_count"),
        ("agent_status", {"last_decision_time": 5}, "data.last_decision_time"),
        ("agent_status", {"runtime_minutes": "long"}, "data.runtime_minutes"),
    ],
)
def test_wrong_field_types(mtype, data, field):
    bad(doc(mtype, data), "bad_field", field)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", '"NaN"', '"inf"', "1e999"])
@pytest.mark.parametrize("field", ["total_balance", "available_balance", "unrealized_pnl", "used_percentage"])
def test_nan_and_infinity_in_balances(literal, field):
    text = '{"type": "account_update", "data": {"%s": %s}}' % (field, literal)
    bad(text, "bad_field", f"data.{field}")


def test_huge_numbers():
    # ints beyond float range are bad numbers, not OverflowErrors
    bad(doc("account_update", {"total_balance": 10**400}), "bad_field", "data.total_balance")
    bad(doc("trade_executed", {"price": -(10**400)}), "bad_field", "data.price")
    # ints beyond int64 are still ints to the codec (tables store them as missing)
    ev = one(doc("trade_executed", {"leverage": 10**30}))
    assert ev.leverage == 10**30
    ev = one(doc("decision", {"cycle": 10**30, "decisions": [{"action": "hold", "leverage": -(10**30)}]}))
    assert ev.cycle == 10**30


def test_ten_megabyte_strings():
    huge = "x" * 10_000_000
    # where text is expected it's fine
    ev = one(doc("decision", {"cycle": 1, "ai_reasoning": huge, "decisions": [{"action": "hold", "reason": huge}]}))
    assert len(ev.ai_reasoning) == 10_000_000 and ev.decisions[0].reason == huge
    # where a number is expected it's a bad field, with a short detail
    bad(doc("account_update", {"total_balance": huge}), "bad_field", "data.total_balance")
    bad(doc("account_update", {"total_balance": "1" * 10_000_000}), "bad_field", "data.total_balance")
    bad(doc("decision", {"cycle": "9" * 10_000_000}), "bad_field", "data.cycle")
    bad(doc("agent_status", {"is_running": huge}), "bad_field", "data.is_running")
    # a huge timestamp string is just unusable
    assert one(json.dumps({"type": "account_update", "timestamp": huge, "data": {}})).timestamp is None


def test_binary_and_empty_frames():
    bad(b'{"type": "pong"}', "binary", "bytes")
    bad(b"", "binary")
    bad("", "empty")


def test_not_text():
    for frame in (None, 42, {"type": "pong"}):
        with pytest.raises(ProtocolError) as info:
            P.parse(frame)
        assert info.value.kind == "not_text"


def test_fast_path_is_taken_and_falls_back_exactly():
    assert P._fast_loads is not None  # msgspec installed: the fast path is what runs
    # what the fast parser rejects and the stdlib reads: the same events as ever
    for frame in (REAL_SNAPSHOT, doc("trade_executed", {"leverage": 10**30}),
                  '{"type": "pong", "x": "\\ud800"}', doc("account_update", {"total_balance": 10**400})):
        check_parse(frame)
    assert P.parse(REAL_SNAPSHOT)[2].profit_factor == math.inf


def test_deeply_nested_json():
    bad("[" * 100_000 + "]" * 100_000, "not_json")
    bad('{"a":' * 100_000 + "1" + "}" * 100_000, "not_json")
    nested = '{"type": "decision", "data": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    bad(nested, "not_json")


def test_protocol_error_is_a_roma_error_and_value_error():
    with pytest.raises(RomaError):
        P.parse("nope")
    with pytest.raises(ValueError):
        P.parse("nope")


def test_parse_object_matches_parse():
    for text in SEED_FRAMES.values():
        assert nan_eq(P.parse_object(json.loads(text)), P.parse(text))


# ------------------------------------------------------------------ encode / round trip


@pytest.mark.parametrize("mtype", sorted(SEED_FRAMES))
def test_encode_seed_examples_round_trip(mtype):
    ev = one(SEED_FRAMES[mtype])
    text = P.encode(ev)
    obj = json.loads(text)
    assert obj["type"] == mtype and set(obj) == {"type", "timestamp", "data"}
    assert obj["timestamp"] == json.loads(SEED_FRAMES[mtype])["timestamp"]
    assert nan_eq(one(text), ev)


def test_encode_rejects_non_events():
    with pytest.raises(TypeError):
        P.encode("not an event")
    ct = P.ClosedTrade(None, "BTCUSDT", "long", 1.0, 2.0, 1.0, 1, None, None, 1.0, 100.0)
    with pytest.raises(TypeError):
        P.encode(ct)


# times the tables can hold (datetime64[ns]) at the wire's microsecond precision
times = st.none() | st.integers(
    min_value=P.parse_time("1678-01-01T00:00:00Z") // 1000,
    max_value=P.parse_time("2262-01-01T00:00:00Z") // 1000,
).map(lambda us: us * 1000)
nums = st.floats(allow_infinity=False)  # NaN means missing and round-trips as missing
inf_nums = st.floats()
ints = st.none() | st.integers(min_value=-(10**30), max_value=10**30)
text = st.text(max_size=30)
opt_text = st.none() | text
lower_text = text.filter(lambda s: s.lower() == s)

positions = st.builds(P.Position, text, lower_text, nums, nums, nums, nums, nums, ints, nums)
items = st.builds(P.DecisionItem, text, opt_text, nums, ints, opt_text, nums, nums, nums)
events = st.one_of(
    st.builds(P.AccountUpdate, times, nums, nums, nums, nums),
    st.builds(P.PositionUpdate, times, st.lists(positions, max_size=4).map(tuple)),
    st.builds(P.Decision, times, ints, opt_text, opt_text, st.lists(items, max_size=4).map(tuple)),
    st.builds(P.TradeExecuted, times, opt_text, opt_text, st.none() | lower_text, nums, nums, ints, opt_text),
    st.builds(P.AgentStatus, times, opt_text, st.none() | st.booleans(), ints, times, opt_text, nums),
    st.builds(P.Performance, times, ints, ints, ints, nums, nums, nums, inf_nums, nums, nums, nums, inf_nums, inf_nums),
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_encode_parse_round_trip(ev):
    text = P.encode(ev)
    assert nan_eq(one(text), ev)


@settings(max_examples=100, deadline=None)
@given(
    st.builds(P.AccountUpdate, st.none(), nums, nums, nums, st.just(math.nan)),
    st.builds(P.PositionUpdate, st.none(), st.lists(
        st.builds(P.Position, text, lower_text, nums, nums, nums, nums, st.just(math.nan), ints, nums),
        max_size=3).map(tuple), st.just(True)),
    st.builds(P.Performance, st.none(), ints, ints, ints, nums, nums, nums, inf_nums, nums, nums, nums, inf_nums, inf_nums),
    st.builds(P.AgentStatus, st.none(), opt_text, st.none() | st.booleans(), ints, st.none(), opt_text, nums),
    st.floats(min_value=0, max_value=1e9),
    st.booleans(),
)
def test_encode_snapshot_round_trip(acc, pos, perf, status, loop_time, typed):
    # typed=True is the current backend's "update" frame: the same events
    text = P.encode_snapshot(loop_time, acc, pos, perf, status, typed=typed)
    assert P.dialect_of(text) == ("roma-current" if typed else "roma-backend")
    got = P.parse(text)
    assert len(got) == 4
    assert all(nan_eq(a, b) for a, b in zip(got, (acc, pos, perf, status)))
    # the keepalive that follows carries the status again
    assert nan_eq(one(P.encode_keepalive(loop_time, status)), status)


# ------------------------------------------------------------------ fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)

NASTY = [
    math.nan,
    math.inf,
    -math.inf,
    10**30,
    -(10**30),
    10**400,
    2**63,
    -(2**63),
    "NaN",
    "1e999",
    "",
    "x" * 5000,
    "9" * 5000,
    True,
    False,
    None,
    [],
    {},
    [{}],
    "2025-11-02T10:30:00Z",
    "9999-12-31T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    1e308,
    -0.0,
    0.5,
]
# deep copies: mutations must never change NASTY itself or alias one value twice
nasty = (st.sampled_from(NASTY) | json_values).map(copy.deepcopy)

# Documented updates with every field the typed fast path reads (the seed example
# lacks liquidation_price, so only these reach it).
TYPED_ACCOUNT = P.encode(P.AccountUpdate(1762079400123000000, 10_000.25, 8_500.5, -12.5, 14.0))
TYPED_POSITION = P.encode(P.PositionUpdate(1762079400000000000, (
    P.Position("BTCUSDT", "long", 0.015, 68_000.0, 68_100.0, 1.5, 0.2, 10, 61_000.0),
    P.Position("ETHUSDT", "short", 0.5, 2_450.0, 2_440.0, 5.0, 0.4, 5, 2_900.0),
)))
TYPED_STATUS = SEED_STATUS
# a decision and a fill with every field their typed decoder reads, as encode() writes them
TYPED_DECISION = P.encode(P.Decision(1762079400000000000, 7, "a", "BTC breaks out; ETH lags.", (
    P.DecisionItem("open_long", "BTCUSDT", 0.01, 10, "momentum", 800.0, 66_000.0, 72_000.0, 0.75, 50.0),
    P.DecisionItem("hold", None, math.nan, None, None, math.nan, math.nan, math.nan),
)))
TYPED_TRADE = P.encode(P.TradeExecuted(1762079405000000000, "a-1", "BTCUSDT", "long", 0.01, 68_450.0, 10, "filled"))
VALID_FRAMES = [*SEED_FRAMES.values(), REAL_SNAPSHOT, TYPED_ACCOUNT, TYPED_POSITION, TYPED_DECISION, TYPED_TRADE]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _mutate(obj, data):
    """Apply 1-3 random mutations (drop a key, change a value's type, insert a
    nasty value, add an unknown key) somewhere in a JSON tree."""
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(_paths(obj))))
        op = data.draw(st.sampled_from(["drop", "replace", "add"]))
        if not path:
            if op == "replace":
                obj = data.draw(nasty)
            continue
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if op == "drop":
            del parent[key]
        elif op == "replace":
            parent[key] = data.draw(nasty)
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=8))] = data.draw(nasty)
        else:
            parent.insert(key, data.draw(nasty))
    return obj


def _stdlib_only(frame):
    """P.parse with its fast JSON paths (msgspec, typed) off: the results it must equal."""
    fast, P._fast_loads = P._fast_loads, None
    typed, P._fast_typed = P._fast_typed, None
    typed2, P._fast_decision_or_fill = P._fast_decision_or_fill, None
    try:
        return P.parse(frame)
    except ProtocolError as exc:
        return (exc.kind, exc.detail)
    finally:
        P._fast_loads = fast
        P._fast_typed = typed
        P._fast_decision_or_fill = typed2


def check_parse(frame):
    exact = _stdlib_only(frame)
    values = P.parse_account(frame)
    try:
        events = P.parse(frame)
    except ProtocolError as exc:
        assert exc.kind in {"not_json", "not_object", "unknown_type", "bad_field", "binary", "empty", "not_text"}
        assert isinstance(exc.detail, str)
        # the fast parser never changes a verdict or its wording
        assert exact == (exc.kind, exc.detail)
        assert values is None, values
        return None
    assert nan_eq(events, exact), (events, exact)
    if values is not None:  # parse_account: the values of parse's event, or nothing
        assert len(events) == 1 and type(events[0]) is P.AccountUpdate, events
        assert nan_eq(P.AccountUpdate(*values, P.NaN), events[0]), (values, events)
    assert isinstance(events, tuple)
    for ev in events:
        # whatever parses must encode again (the simulator relies on it)
        if not isinstance(ev, P.ClosedTrade):
            P.encode(ev)
    return events


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_FRAMES), st.data())
def test_fuzz_mutated_valid_frames(frame, data):
    obj = _mutate(json.loads(frame), data)
    check_parse(json.dumps(obj))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_fuzz_random_text(text):
    check_parse(text)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzz_random_json(value):
    check_parse(json.dumps(value))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SEED_FRAMES) + ["pong", "performance", "x"]), json_values, json_values)
def test_fuzz_random_data_of_known_types(mtype, data, stamp):
    check_parse(json.dumps({"type": mtype, "timestamp": stamp, "data": data}))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(VALID_FRAMES), st.integers(0, 400), st.binary(max_size=3))
def test_fuzz_truncated_and_spliced(frame, cut, junk):
    check_parse(frame[:cut])
    check_parse(frame[:cut] + junk.decode("latin-1") + frame[cut:])


def test_typed_fast_path_takes_the_usual_updates():
    # The fuzz below is only a proof if the typed path really runs on these frames.
    for frame in (TYPED_ACCOUNT, TYPED_POSITION, json.dumps(json.loads(TYPED_POSITION), separators=(",", ":")),
                  TYPED_STATUS):
        msg = P._fast_typed(frame)
        assert isinstance(msg, (P._AccountMsg, P._PositionMsg, P._StatusMsg))
        assert (P.parse_account(frame) is None) == (frame is not TYPED_ACCOUNT)
        assert P.parse(frame) == _stdlib_only(frame)
    for frame in (TYPED_DECISION, TYPED_TRADE, SEED_DECISION, SEED_TRADE,
                  json.dumps(json.loads(TYPED_DECISION), separators=(",", ":"))):
        msg = P._fast_decision_or_fill(frame)
        assert isinstance(msg, (P._DecisionMsg, P._TradeMsg))
        assert P.parse_account(frame) is None
        assert nan_eq(P.parse(frame), _stdlib_only(frame))


def _typed_variants():
    acc, pos = json.loads(TYPED_ACCOUNT), json.loads(TYPED_POSITION)
    out = []
    for key in acc["data"]:
        for v in NASTY + [3, -0, 2**53 + 1, 10**22 + 1, 1.5e-320]:
            out.append(doc("account_update", {**acc["data"], key: v}, acc["timestamp"]))
    for key in pos["data"][0]:
        for v in NASTY + ["LONG", "Short", 10.0, 3, -0, 2**53 + 1]:
            out.append(doc("position_update", [{**pos["data"][0], key: v}, pos["data"][1]], pos["timestamp"]))
    status = json.loads(TYPED_STATUS)
    for key in status["data"]:
        for v in NASTY + [0, 1, 2, 7.0, "2025-11-02T10:30:00.5Z"]:
            out.append(doc("agent_status", {**status["data"], key: v}, status["timestamp"]))
    out.append(doc("agent_status", {**status["data"], "name": "n", "runtime_minutes": 3}, status["timestamp"]))
    dec, fill = json.loads(TYPED_DECISION), json.loads(TYPED_TRADE)
    unit_values = [0, -0.0, 0.5, 1, 1.0, 1.5, 75, 100, 100.0, 100.5, -3, 1e-300]
    item0, item1 = dec["data"]["decisions"]
    for key in [*item0, "reasoning", "close_quantity"]:
        for v in NASTY + unit_values + ["OPEN_LONG", "Long", 3, 10.0, 2**53 + 1]:
            out.append(doc("decision", {**dec["data"], "decisions": [{**item0, key: v}, item1]}, dec["timestamp"]))
    for key in item0:  # each field left out, and only that one
        out.append(doc("decision", {**dec["data"], "decisions": [
            {k: v for k, v in item0.items() if k != key}]}, dec["timestamp"]))
    for key in [*dec["data"], "cycle_number", "chain_of_thought"]:
        for v in NASTY + [3, 7.0, "8", "why", [item1], [item1, item1, item0], [None], ["x"]]:
            out.append(doc("decision", {**dec["data"], key: v}, dec["timestamp"]))
        out.append(doc("decision", {k: v for k, v in dec["data"].items() if k != key}, dec["timestamp"]))
    out.append(doc("decision", {**dec["data"], "cycle": None, "cycle_number": 5, "ai_reasoning": None,
                                "chain_of_thought": "cot"}, dec["timestamp"]))
    out.append(doc("decision", {"decisions": [{**item0, "reason": None, "reasoning": "r",
                                                "quantity": None, "close_quantity": 0.5}]}, dec["timestamp"]))
    for key in [*fill["data"]]:
        for v in NASTY + ["LONG", "Short", "sHoRt", "", 3, 10.0, 2**53 + 1, 123456789]:
            out.append(doc("trade_executed", {**fill["data"], key: v}, fill["timestamp"]))
        out.append(doc("trade_executed", {k: v for k, v in fill["data"].items() if k != key}, fill["timestamp"]))
    for stamp in NASTY + ["2025-11-02T10:30:00.5Z", "2025-11-02 10:30:00", "garbage"]:
        out.append(doc("account_update", acc["data"], stamp))
        out.append(doc("decision", dec["data"], stamp))
        out.append(doc("trade_executed", fill["data"], stamp))
    for frame in (TYPED_DECISION, TYPED_TRADE):
        out += [
            frame.replace('"data"', '"extra": 1, "data"'),
            frame.replace('"timestamp"', '"type": "pong", "timestamp"'),
            frame.replace('"timestamp"', '"type": "account_update", "timestamp"'),
            frame.replace('"symbol": "BTCUSDT"', '"symbol": "ETHUSDT", "symbol": "BTCUSDT"'),
            frame.replace('"symbol": "BTCUSDT"', '"symbol": "BTCUSDT", "symbol": 5'),
            frame.replace('"quantity": 0.01', '"quantity": 0.02, "quantity": null'),
            frame.replace("0.01", "1e400"),
            frame.replace("0.01", "1" + "0" * 400),
            frame.replace("0.01", "NaN"),
            frame.replace("0.01", "-Infinity"),
            frame.replace("BTCUSDT", "\\ud800"),
            frame.replace("BTCUSDT", "\\u00e9\\n"),
            frame.replace('"data": {', '"data": {"data": {}, '),
            frame + " ",
            " " + frame,
            frame[:-1],
        ]
        head, _, rest = frame.partition(", ")  # the type key last
        out.append("{" + rest[:-1] + ", " + head[1:] + "}")
    out.append(doc("decision", {**dec["data"], "decisions": [{**item0, "confidence": 0.75, "close_quantity_pct": 0.5}]},
                   dec["timestamp"]))
    out += [
        TYPED_ACCOUNT.replace('"data"', '"extra": 1, "data"'),
        TYPED_ACCOUNT.replace('"total_balance"', '"adjusted_total_balance": 5.0, "total_balance"'),
        TYPED_ACCOUNT.replace('"total_balance"', '"total_balance": 1.0, "total_balance"'),
        TYPED_ACCOUNT.replace('"timestamp"', '"type": "decision", "timestamp"'),
        TYPED_ACCOUNT.replace('{"type": "account_update", ', '{').replace('}}', '}, "type": "account_update"}'),
        TYPED_ACCOUNT[:-1] + ', "data": {"total_balance": 1}}',
        TYPED_POSITION.replace('"data": [', '"data": [[], '),
        doc("position_update", [], pos["timestamp"]),
        TYPED_ACCOUNT.replace("10000.25", "1e400"),
        TYPED_ACCOUNT.replace("10000.25", "-1e400"),
        TYPED_ACCOUNT.replace("10000.25", "1" + "0" * 400),
        TYPED_POSITION.replace("68000.0", "1e309"),
        TYPED_ACCOUNT.replace("10000.25", "Infinity"),
        TYPED_POSITION.replace("68000.0", "NaN"),
        TYPED_ACCOUNT + " ",
        " " + TYPED_ACCOUNT,
        TYPED_ACCOUNT.replace("BTC", "\\ud800"),
        TYPED_POSITION.replace("BTCUSDT", "\\ud800"),
        TYPED_POSITION.replace("BTCUSDT", "\\u00e9\\n"),
    ]
    return out


@pytest.mark.parametrize("frame", _typed_variants())
def test_typed_fast_path_matches_the_stdlib_path(frame):
    # every value the typed decoder could read differently, field by field
    check_parse(frame)


def test_lone_surrogate_in_the_text_takes_the_stdlib_path():
    # A recording's "\ud800" escape decodes to a real lone surrogate; msgspec cannot
    # encode it as UTF-8 and must not raise UnicodeEncodeError out of parse.
    for frame in ('{"type": "pong", "x": "\ud800"}', TYPED_ACCOUNT.replace('"data"', '"x\udfff": 1, "data"'),
                  TYPED_POSITION.replace("BTCUSDT", "BTC\ud800"), '"\ud800"'):
        check_parse(frame)
