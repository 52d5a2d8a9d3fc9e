"""Tests of the single-writer tables: schemas, values, dedupe, bounds, bad frames,
reader isolation and a writer/readers race."""

from __future__ import annotations

import json
import math
import sys
import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from roma_notebook.core import protocol as P
from roma_notebook.core import schema
from roma_notebook.core.tables import RAW_LIMIT, TABLE_NAMES, Tables, empty_frame

from test_protocol import (  # tests/ is on sys.path under pytest
    NASTY,
    REAL_SNAPSHOT,
    SEED_ACCOUNT,
    SEED_DECISION,
    SEED_FRAMES,
    SEED_POSITION,
    SEED_STATUS,
    SEED_TRADE,
    T_1030,
    _mutate,
)

AGENT = "deepseek-chat-v3.1"
R0 = 1_800_000_000 * 10**9  # a receive time distinct from every message time
S = "string"

def check_schema(name: str, df: pd.DataFrame) -> None:
    """Exactly schema.py's columns and dtypes, on a fresh RangeIndex."""
    assert tuple(df.columns) == schema.columns(name), (name, list(df.columns))
    for c, dtype in schema.dtypes(name).items():
        assert df[c].dtype == dtype, (name, c, df[c].dtype, dtype)
        if dtype == S:
            # pandas' default "str" also equals "string" but holds NaN, not <NA>
            assert df[c].dtype.na_value is pd.NA, (name, c, df[c].dtype)
    assert isinstance(df.index, pd.RangeIndex) and df.index.start == 0


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def doc(mtype: str, data, timestamp="2025-11-02T10:30:00Z") -> str:
    return json.dumps({"type": mtype, "timestamp": timestamp, "data": data})


def acc_frame(i: int) -> str:
    return doc("account_update", {"total_balance": 2.0 * i, "available_balance": 3.0 * i, "unrealized_pnl": 0.0})


def seeded() -> Tables:
    t = Tables()
    for i, text in enumerate(SEED_FRAMES.values()):
        t.ingest(AGENT, text, received_ns=R0 + i)
    return t


# ------------------------------------------------------------------ schemas


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_empty_schemas(name):
    check_schema(name, empty_frame(name))
    check_schema(name, Tables().frame(name))
    assert len(Tables().frame(name)) == 0


def _fill_all(t: Tables, base: int) -> None:
    for i, text in enumerate(SEED_FRAMES.values()):
        t.ingest(AGENT, text.replace("123", str(123 + base)).replace("12345678", str(base)), R0 + base + i)
    t.ingest(AGENT, REAL_SNAPSHOT, R0 + base + 10)
    t.ingest(AGENT, "{broken", R0 + base + 11)
    t.append(AGENT, P.ClosedTrade(None, "BTCUSDT", "long", 1.0, 2.0, 0.1, None, T_1030, None, 0.1, 100.0), R0)
    t.add_connection(AGENT, "connected", "ws://x", R0 + base)
    t.append(AGENT, P.insight_from_dict({"insight_id": f"ins_{base}", "category": "exit_timing", "title": "t",
                                         "confidence_score": 0.8, "recommendations": ["a", "b"],
                                         "supporting_trade_ids": ["x"], "is_active": True,
                                         "created_at": "2025-11-02T10:30:00"}), R0 + base)


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_filled_schemas_first_read_and_incremental(name):
    t = Tables()
    _fill_all(t, 0)
    check_schema(name, t.frame(name))  # first build
    _fill_all(t, 1000)
    df = t.frame(name)  # appended to the cached frame
    check_schema(name, df)
    assert len(df) > 0


# ------------------------------------------------------------------ seed values


def test_seed_values_land_in_tables():
    t = seeded()
    a = t.frame("account")
    assert len(a) == 1
    row = a.iloc[0]
    assert row["agent_id"] == AGENT and row["seq"] == 0
    assert row["timestamp"] == ts("2025-11-02T10:30:00Z")
    assert row["received_at"] == pd.Timestamp(R0, tz="UTC")
    assert (row["total_balance"], row["available_balance"], row["unrealized_pnl"], row["used_percentage"]) == (
        10050.25,
        8525.0,
        50.25,
        15.0,
    )

    for name in ("positions", "position_history"):
        p = t.frame(name)
        assert len(p) == 1, name
        r = p.iloc[0]
        assert (r["symbol"], r["side"], r["position_amt"], r["entry_price"], r["mark_price"]) == (
            "BTCUSDT",
            "long",
            0.001,
            68000.0,
            68500.0,
        )
        assert (r["unrealized_profit"], r["pnl_percentage"], r["leverage"]) == (0.5, 0.74, 10)
        assert math.isnan(r["liquidation_price"])
        assert r["timestamp"] == ts("2025-11-02T10:30:15Z") and r["seq"] == 1

    c = t.frame("cycles")
    assert c[["cycle", "n_decisions", "seq"]].values.tolist() == [[123, 1, 2]]
    assert c["ai_reasoning"].iloc[0] == "BTC showing strong bullish momentum with RSI(7) at 75.3..."

    d = t.frame("decisions")
    assert len(d) == 1
    r = d.iloc[0]
    assert (r["cycle"], r["action"], r["symbol"], r["quantity"], r["leverage"]) == (
        123,
        "open_long",
        "BTCUSDT",
        0.001,
        10,
    )
    assert r["reason"] == "Breakout above resistance with volume confirmation"
    assert d[["position_size_usd", "stop_loss", "take_profit"]].isna().all().all()

    tr = t.frame("trades")
    assert tr.drop(columns=["agent_id", "timestamp", "received_at", "seq", "source"]).iloc[0].tolist() == [
        "12345678",
        "BTCUSDT",
        "long",
        0.001,
        68450.0,
        10,
        "filled",
    ]
    assert tr["timestamp"].iloc[0] == ts("2025-11-02T10:30:05Z")

    s = t.frame("status")
    r = s.iloc[0]
    assert (r["is_running"], r["cycle_count"], r["last_decision_time"]) == (
        True,
        124,
        ts("2025-11-02T10:30:00Z"),
    )
    assert len(t.frame("errors")) == 0
    assert t.agents() == [AGENT]


def test_snapshot_dialect_fills_tables_with_receive_time():
    t = Tables()
    t.ingest(AGENT, REAL_SNAPSHOT, received_ns=R0)
    for name in ("account", "positions", "position_history", "performance", "status"):
        df = t.frame(name)
        assert len(df) == 1, name
        assert (df["timestamp"] == df["received_at"]).all(), name
        assert df["received_at"].iloc[0] == pd.Timestamp(R0, tz="UTC")
        assert df["seq"].iloc[0] == 0
    a = t.frame("account").iloc[0]
    assert (a["total_balance"], a["available_balance"], a["unrealized_pnl"]) == (10100.5, 9000.0, 100.5)
    assert pd.isna(a["used_percentage"])
    p = t.frame("positions").iloc[0]
    assert (p["symbol"], p["side"], p["position_amt"], p["leverage"], p["liquidation_price"]) == (
        "ETHUSDT",
        "short",
        -0.5,
        5,
        4100.0,
    )
    assert math.isnan(p["pnl_percentage"])
    perf = t.frame("performance").iloc[0]
    assert perf["profit_factor"] == math.inf
    assert (perf["total_trades"], perf["wins"], perf["losses"], perf["total_pnl"]) == (10, 10, 0, 125.0)
    st_ = t.frame("status").iloc[0]
    assert (st_["is_running"], st_["cycle_count"], st_["name"], st_["runtime_minutes"]) == (
        True,
        42,
        "DeepSeek V3.1",
        126.5,
    )
    assert pd.isna(st_["last_decision_time"])
    for name in ("cycles", "decisions", "trades", "errors"):
        assert len(t.frame(name)) == 0


def test_unusable_timestamps_fall_back_to_received_at():
    t = Tables()
    for i, stamp in enumerate(["garbage", None, 12.5, "9999-12-31T00:00:00Z", "1500-01-01T00:00:00Z"]):
        t.ingest(AGENT, json.dumps({"type": "account_update", "timestamp": stamp, "data": {}}), R0 + i)
    a = t.frame("account")
    assert len(a) == 5 and (a["timestamp"] == a["received_at"]).all()
    assert a[["total_balance", "available_balance", "unrealized_pnl", "used_percentage"]].isna().all().all()
    assert len(t.frame("errors")) == 0


def test_out_of_range_values_from_direct_appends_do_not_corrupt():
    t = Tables()
    t.append(AGENT, P.AccountUpdate(10**20, 1.0, 1.0, 1.0, 1.0), R0)  # timestamp beyond int64
    t.append(AGENT, P.AgentStatus(None, AGENT, True, 10**30, -(10**20)), R0)
    assert t.frame("account")["timestamp"].iloc[0] == pd.Timestamp(R0, tz="UTC")
    s = t.frame("status").iloc[0]
    assert pd.isna(s["cycle_count"]) and pd.isna(s["last_decision_time"])


def test_huge_ints_are_missing_in_every_table():
    t = Tables()
    big = 10**30
    t.ingest(AGENT, doc("position_update", [{"symbol": "BTCUSDT", "side": "long", "position_amt": 1, "leverage": big}]))
    t.ingest(AGENT, doc("decision", {"cycle": big, "decisions": [{"action": "hold", "leverage": -big}]}))
    t.ingest(AGENT, doc("trade_executed", {"order_id": "1", "leverage": 2**63}))
    t.ingest(AGENT, doc("agent_status", {"cycle_count": big}))
    assert pd.isna(t.frame("positions")["leverage"].iloc[0])
    assert pd.isna(t.frame("position_history")["leverage"].iloc[0])
    assert pd.isna(t.frame("cycles")["cycle"].iloc[0])
    assert pd.isna(t.frame("decisions")["leverage"].iloc[0])
    assert pd.isna(t.frame("trades")["leverage"].iloc[0])
    assert pd.isna(t.frame("status")["cycle_count"].iloc[0])
    assert len(t.frame("errors")) == 0


# ------------------------------------------------------------------ positions


def pos(symbol, side="long", amt=1.0, **kw):
    return {"symbol": symbol, "side": side, "position_amt": amt, "entry_price": 100.0, **kw}


def test_positions_is_latest_open_set_and_history_keeps_rows():
    t = Tables()
    t.ingest(AGENT, doc("position_update", [pos("BTCUSDT"), pos("ETHUSDT", "short", -2.0)]), R0)
    assert sorted(t.frame("positions")["symbol"]) == ["BTCUSDT", "ETHUSDT"]
    t.ingest(AGENT, doc("position_update", [pos("SOLUSDT", leverage=3)], "2025-11-02T10:31:00Z"), R0 + 1)
    p = t.frame("positions")
    assert p["symbol"].tolist() == ["SOLUSDT"] and p["leverage"].tolist() == [3]
    assert p["seq"].tolist() == [1] and p["timestamp"].iloc[0] == ts("2025-11-02T10:31:00Z")
    # other agents keep their own open set
    t.ingest("qwen3-max", doc("position_update", [pos("BNBUSDT")]), R0 + 2)
    assert sorted(zip(t.frame("positions")["agent_id"], t.frame("positions")["symbol"])) == [
        (AGENT, "SOLUSDT"),
        ("qwen3-max", "BNBUSDT"),
    ]
    # an empty update means flat
    t.ingest(AGENT, doc("position_update", []), R0 + 3)
    p = t.frame("positions")
    assert p["agent_id"].tolist() == ["qwen3-max"]
    t.ingest("qwen3-max", doc("position_update", []), R0 + 4)
    p = t.frame("positions")
    assert len(p) == 0
    check_schema("positions", p)
    h = t.frame("position_history")
    assert h["symbol"].tolist() == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
    assert h["seq"].tolist() == [0, 0, 1, 0]
    assert t.counts()["positions"] == 0 and t.counts()["position_history"] == 4


def test_zero_amount_positions_are_not_open():
    t = Tables()
    t.ingest(AGENT, doc("position_update", [pos("BTCUSDT", amt=0.0), pos("ETHUSDT")]))
    assert t.frame("positions")["symbol"].tolist() == ["ETHUSDT"]
    assert len(t.frame("position_history")) == 2


# ------------------------------------------------------------------ dedupe


def test_decision_dedupe_by_agent_and_cycle():
    t = Tables()
    frame = doc(
        "decision",
        {"cycle": 5, "decisions": [{"action": "open_long", "symbol": "BTCUSDT"}, {"action": "hold"}]},
    )
    assert t.ingest(AGENT, frame)
    t.ingest(AGENT, frame)  # a reconnect replays the last cycle
    t.ingest(AGENT, frame.replace('"cycle": 5', '"cycle": 6'))
    t.ingest("qwen3-max", frame)  # same cycle number, other agent: kept
    c = t.frame("cycles")
    assert list(zip(c["agent_id"], c["cycle"])) == [(AGENT, 5), (AGENT, 6), ("qwen3-max", 5)]
    assert len(t.frame("decisions")) == 6
    stats = t.stats()
    assert stats.loc["cycles", "duplicates"] == 1
    assert stats.loc["decisions", "duplicates"] == 2
    assert stats.loc["cycles", "rows"] == 3 and stats.loc["decisions", "rows"] == 6
    # decisions without a cycle number cannot be keyed: all kept
    t.ingest(AGENT, doc("decision", {"decisions": [{"action": "wait"}]}))
    t.ingest(AGENT, doc("decision", {"decisions": [{"action": "wait"}]}))
    assert len(t.frame("cycles")) == 5


def test_fill_dedupe_by_order_id():
    t = Tables()
    t.ingest(AGENT, SEED_TRADE)
    t.ingest(AGENT, SEED_TRADE)
    t.ingest(AGENT, SEED_TRADE.replace("12345678", "87654321"))
    t.ingest(AGENT, doc("trade_executed", {"order_id": 12345678}))  # same id as a number
    t.ingest(AGENT, doc("trade_executed", {"symbol": "ETHUSDT"}))  # no id: kept
    t.ingest(AGENT, doc("trade_executed", {"symbol": "ETHUSDT"}))
    tr = t.frame("trades")
    assert tr["order_id"].tolist()[:2] == ["12345678", "87654321"] and tr["order_id"].isna().tolist() == [False, False, True, True]
    assert t.stats().loc["trades", "duplicates"] == 2


# ------------------------------------------------------------------ max_rows


@pytest.mark.parametrize("read_every", [1, 7, None])
def test_max_rows_drops_oldest_and_counts(read_every):
    t = Tables(max_rows=100)
    n = 1000
    for i in range(n):
        t.ingest(AGENT, acc_frame(i), R0 + i)
        if read_every and i % read_every == 0:
            assert len(t.frame("account")) <= 100
    a = t.frame("account")
    assert len(a) == 100
    assert a["seq"].tolist() == list(range(n - 100, n))
    assert a["total_balance"].tolist() == [2.0 * i for i in range(n - 100, n)]
    assert isinstance(a.index, pd.RangeIndex) and a.index[0] == 0
    stats = t.stats()
    assert stats.loc["account", "rows"] == 100
    assert stats.loc["account", "dropped"] == n - 100
    assert t.counts()["account"] == n


def test_max_rows_bounds_pending_rows_without_reads():
    t = Tables(max_rows=50)
    for i in range(10_000):
        t.append(AGENT, P.AccountUpdate(None, float(i), 0.0, 0.0, 0.0), R0 + i)
    assert t.stats().loc["account", "rows"] <= 100  # pending is trimmed as it grows
    assert t.frame("account")["total_balance"].tolist() == [float(i) for i in range(9950, 10_000)]
    assert t.stats().loc["account", "dropped"] == 9950


@pytest.mark.parametrize("bad_value", [0, -1, 1.5, True, "10"])
def test_max_rows_validation(bad_value):
    with pytest.raises(ValueError):
        Tables(max_rows=bad_value)


# ------------------------------------------------------------------ bad frames


def test_bad_frames_become_error_rows_and_stream_continues():
    t = Tables()
    huge = '{"type": "account_update", "data": {"total_balance": "' + "x" * 5000 + '"}}'
    bads = [
        ("{nope", "not_json"),
        ("[1]", "not_object"),
        ('{"type": "margin_call", "data": {}}', "unknown_type"),
        ('{"type": "account_update"}', "bad_field"),
        ('{"type": "account_update", "data": {"total_balance": NaN}}', "bad_field"),
        (huge, "bad_field"),
        (b"\x00\x01binary", "binary"),
        ("", "empty"),
        ("[" * 50_000, "not_json"),
    ]
    seq = 0
    for frame, _ in bads:
        t.ingest(AGENT, frame, R0 + seq)
        seq += 1
        t.ingest(AGENT, acc_frame(seq), R0 + seq)  # the next good frame is used
        seq += 1
    e = t.frame("errors")
    assert e["kind"].tolist() == [k for _, k in bads]
    assert e["seq"].tolist() == list(range(0, 2 * len(bads), 2))
    assert (e["timestamp"] == e["received_at"]).all()
    assert e["agent_id"].eq(AGENT).all()
    assert e["detail"].str.len().gt(0).all()
    assert "data.total_balance" in e["detail"].iloc[4] and "data.total_balance" in e["detail"].iloc[5]
    assert e["raw"].iloc[0] == "{nope"
    assert e["raw"].iloc[5] == huge[:RAW_LIMIT] and len(e["raw"].iloc[8]) == RAW_LIMIT
    assert "binary" in e["raw"].iloc[6] or "\\x00" in e["raw"].iloc[6]
    assert e["message_type"].iloc[3] == "account_update"
    a = t.frame("account")
    assert a["seq"].tolist() == list(range(1, 2 * len(bads), 2))
    assert t.stats().loc["account", "errors"] == 3  # bad frames typed account_update
    check_schema("errors", e)


def test_bad_frames_return_no_events():
    t = Tables()
    assert t.ingest(AGENT, "{nope") == ()
    assert t.ingest(AGENT, '{"type": "pong"}') == ()
    assert len(t.ingest(AGENT, REAL_SNAPSHOT)) == 4
    assert len(t.frame("errors")) == 1


def _tables_ok(t: Tables) -> dict[str, pd.DataFrame]:
    frames = {n: t.frame(n) for n in TABLE_NAMES}
    for n, df in frames.items():
        check_schema(n, df)
    t.stats()
    return frames


GOOD = [SEED_ACCOUNT, SEED_POSITION, SEED_DECISION, SEED_TRADE, SEED_STATUS, REAL_SNAPSHOT]
BAD = ["{nope", "[]", '{"type":"x"}', '{"type":"decision","data":[]}', b"\x00", "", '{"type":"account_update","data":{"total_balance":Infinity}}']


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10_000)), max_size=60), st.sampled_from([None, 5, 1000]), st.integers(1, 20))
def test_random_interleaving_of_good_and_bad_frames(plan, max_rows, read_every):
    t = Tables(max_rows=max_rows)
    want = dict.fromkeys(["account", "position_history", "cycles", "decisions", "trades", "status", "performance", "errors"], 0)
    cycle = 0
    for i, (good, pick) in enumerate(plan):
        if good:
            frame = GOOD[pick % len(GOOD)]
            if frame is SEED_DECISION:
                cycle += 1  # unique cycles, so nothing is a duplicate
                frame = frame.replace('"cycle": 123', f'"cycle": {cycle}')
            if frame is SEED_TRADE:
                frame = frame.replace("12345678", f"id{i}")
            for ev in P.parse(frame):
                table = {"account_update": "account", "position_update": "position_history",
                         "decision": "cycles", "trade_executed": "trades", "agent_status": "status",
                         "performance": "performance"}[ev.kind]
                want[table] += 1 if table != "position_history" else len(ev.positions)
                if table == "cycles":
                    want["decisions"] += len(ev.decisions)
        else:
            frame = BAD[pick % len(BAD)]
            want["errors"] += 1
        t.ingest(AGENT, frame, R0 + i)
        if i % read_every == 0:
            _tables_ok(t)
    frames = _tables_ok(t)
    for name, n in want.items():
        expect = n if max_rows is None else min(n, max_rows)
        assert len(frames[name]) == expect, name
        assert t.counts()[name] == n
        assert frames[name]["seq"].is_monotonic_increasing
        assert frames[name]["agent_id"].eq(AGENT).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(GOOD[:5] + [REAL_SNAPSHOT]), min_size=1, max_size=4), st.data())
def test_fuzzed_frames_never_break_tables(frames, data):
    t = Tables()
    n_bad = 0
    for i, frame in enumerate(frames):
        text = json.dumps(_mutate(json.loads(frame), data))
        try:
            n_events = len(P.parse(text))
        except P.ProtocolError:
            n_events = 0
            n_bad += 1
        assert len(t.ingest(AGENT, text, R0 + i)) == n_events
        assert t.counts()["errors"] == n_bad
    assert len(_tables_ok(t)["errors"]) == n_bad


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(NASTY), min_size=1, max_size=8))
def test_nasty_values_in_every_field_never_break_tables(values):
    t = Tables()
    for i, v in enumerate(values):
        for mtype, text in SEED_FRAMES.items():
            obj = json.loads(text)
            data = obj["data"][0] if mtype == "position_update" else obj["data"]
            key = sorted(data)[i % len(data)]
            data[key] = v
            t.ingest(AGENT, json.dumps(obj), R0 + i)
    _tables_ok(t)


# ------------------------------------------------------------------ reader isolation


@pytest.mark.parametrize("name", ["account", "positions", "decisions", "status"])
def test_reader_changes_do_not_leak(name):
    t = seeded()
    before = t.frame(name)
    df = t.frame(name)
    df.iloc[0, 4] = None
    df.loc[0, "seq"] = 999
    df["extra"] = 1
    del df["agent_id"]
    pd.testing.assert_frame_equal(t.frame(name), before)
    # and after more rows went through the incremental (concat) path
    t2 = seeded()
    first = t2.frame(name)
    original = first.copy()
    first.loc[0, "seq"] = 999
    first.iloc[0, 5] = None
    for i, text in enumerate(SEED_FRAMES.values()):
        t2.ingest(AGENT, text.replace("123", "124").replace("12345678", "1"), R0 + 10 + i)
    again = t2.frame(name)
    assert 999 not in again["seq"].tolist()
    if name != "positions":  # positions is replaced by the newest open set
        assert len(again) == 2 * len(original)
        pd.testing.assert_frame_equal(again.iloc[: len(original)], original)


def test_numpy_views_of_a_frame_cannot_write_through():
    t = Tables()
    for i in range(3):
        t.ingest(AGENT, acc_frame(i), R0 + i)
    df = t.frame("account")
    with pytest.raises(ValueError):
        df["total_balance"].to_numpy()[0] = -1.0  # copy-on-write hands out read-only views
    df.values[0, 4] = -1.0  # a fresh 2-D copy
    assert t.frame("account")["total_balance"].tolist() == [0.0, 2.0, 4.0]


def test_repeat_access_returns_equal_frames():
    t = Tables()
    _fill_all(t, 0)
    for name in TABLE_NAMES:
        a, b = t.frame(name), t.frame(name)
        pd.testing.assert_frame_equal(a, b)
        assert a is not b
    pd.testing.assert_frame_equal(t.stats(), t.stats())


def test_unknown_table_name():
    with pytest.raises(ValueError, match="unknown table"):
        Tables().frame("acount")


def test_versions_change_with_rows():
    t = Tables()
    v, va = t.version, t.table_version("account")
    t.ingest(AGENT, SEED_ACCOUNT)
    assert t.version > v and t.table_version("account") > va
    vp = t.table_version("positions")
    t.ingest(AGENT, SEED_POSITION)
    assert t.table_version("positions") > vp


def test_stats_shape():
    t = seeded()
    s = t.stats()
    assert list(s.columns) == ["rows", "bytes", "dropped", "duplicates", "errors"]
    assert set(s.index) == set(TABLE_NAMES)
    assert s.loc["account", "rows"] == 1 and s.loc["account", "bytes"] > 0


# ------------------------------------------------------------------ writer vs readers


def test_one_writer_two_readers_no_torn_rows():
    n = 200_000
    t = Tables()
    done = threading.Event()
    failures: list[BaseException] = []
    reads = [0, 0]

    def writer():
        try:
            cycle = 0
            for i in range(n):
                if i % 10 == 9:
                    k = cycle % 4  # 0..3 items
                    items = tuple(
                        P.DecisionItem("hold", None, float(j), None, None, math.nan, math.nan, math.nan)
                        for j in range(k)
                    )
                    t.append(AGENT, P.Decision(None, cycle, AGENT, "r", items), R0 + i, seq=i)
                    cycle += 1
                else:
                    t.append(AGENT, P.AccountUpdate(None, i * 2.0, i * 3.0, i * 5.0, 1.0), R0 + i, seq=i)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            done.set()

    def check_account(a: pd.DataFrame) -> None:
        assert len({len(a[c]) for c in a.columns}) == 1
        seq = a["seq"].to_numpy()
        assert (np.diff(seq) > 0).all()
        assert (a["total_balance"].to_numpy() == seq * 2.0).all()
        assert (a["available_balance"].to_numpy() == seq * 3.0).all()
        assert (a["unrealized_pnl"].to_numpy() == seq * 5.0).all()
        assert (a["received_at"].array.asi8 == R0 + seq).all()
        assert a["agent_id"].notna().all()

    def check_decisions(d: pd.DataFrame, c: pd.DataFrame) -> None:
        # c is read after d, so it holds every cycle d has; events are atomic, so
        # every cycle present in d has all its items
        if len(d):
            upto = int(d["cycle"].max())
            per = d.groupby("cycle").size()
            want = c.set_index("cycle")["n_decisions"]
            want = want[want.index <= upto]
            got = per.reindex(want.index, fill_value=0)
            assert (got.to_numpy() == want.to_numpy()).all()
            assert (d["quantity"].to_numpy() < 3).all()
        assert c["seq"].is_monotonic_increasing
        assert (c["n_decisions"].to_numpy() == c["cycle"].to_numpy(dtype="int64") % 4).all()

    def reader(k: int):
        try:
            while not done.is_set():
                check_account(t.frame("account"))
                d = t.frame("decisions")
                check_decisions(d, t.frame("cycles"))
                reads[k] += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(k,)) for k in range(2)]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so reads land mid-event
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
    finally:
        sys.setswitchinterval(old_interval)
    assert not any(th.is_alive() for th in threads)
    if failures:
        raise failures[0]
    assert min(reads) > 0, reads
    print("reads", reads)
    a = t.frame("account")
    check_account(a)
    assert len(a) == n - n // 10
    c = t.frame("cycles")
    assert len(c) == n // 10
    check_decisions(t.frame("decisions"), c)
    assert len(t.frame("decisions")) == sum(k % 4 for k in range(n // 10))


def test_counts_while_the_writer_adds_agents():
    # counts() used to iterate the open-position dict while the writer grew it
    t = Tables()
    done = threading.Event()
    failures: list[BaseException] = []

    def reader():
        try:
            while not done.is_set():
                t.counts()
                t.agents()
        except BaseException as exc:
            failures.append(exc)

    update = P.PositionUpdate(None, (P.Position("BTCUSDT", "long", 1.0, 1.0, 1.0, 0.0, 0.0, 1, 1.0),))
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    th = threading.Thread(target=reader)
    th.start()
    try:
        for i in range(20_000):
            t.append(f"agent{i}", update, R0, 0)
            if failures:
                break
    finally:
        done.set()
        th.join(timeout=60)
        sys.setswitchinterval(old_interval)
    if failures:
        raise failures[0]
    assert t.counts()["positions"] == 20_000


def test_dedupe_keys_are_bounded_with_max_rows():
    from roma_notebook.core import protocol as P
    from roma_notebook.core.tables import Tables

    t = Tables(max_rows=1000)
    for c in range(25_000):
        t.append("a", P.Decision(None, c, "a", "r", ()), received_ns=c + 1)
    assert len(t._seen_cycles) <= 10_000
    # recent cycles are still recognised as duplicates
    assert t.append("a", P.Decision(None, 24_999, "a", "r", ()), received_ns=1) is False
    assert len(t.frame("cycles")) == 1000


def test_a_reused_cycle_number_with_new_reasoning_is_a_new_decision():
    """A restarted backend counts cycles from 1 again: those are new decisions, while
    the same cycle with the same content (a resend) is a duplicate."""
    from roma_notebook.core import protocol as P
    from roma_notebook.core.tables import Tables

    t = Tables()
    assert t.append("a", P.Decision(1, 1, "a", "before restart", ()), received_ns=1)
    assert t.append("a", P.Decision(1, 1, "a", "before restart", ()), received_ns=2) is False
    assert t.append("a", P.Decision(9, 1, "a", "after restart", ()), received_ns=3)
    cyc = t.frame("cycles")
    assert cyc["ai_reasoning"].tolist() == ["before restart", "after restart"]
    assert t.stats().loc["cycles", "duplicates"] == 1


def test_extend_account_equals_append_row_by_row():
    rows = [("a", 1_000, 5, 1.0, 2.0, 3.0, 4.0), ("b", None, 6, -0.5, 0.0, math.nan, 1e300),
            ("a", 2**63, 7, 10.0, 9.0, 8.0, 7.0)]  # 2**63: not storable, received_at used
    one, bulk = Tables(), Tables()
    for a, ts, recv, *v in rows:
        one.append(a, P.AccountUpdate(ts, *v), recv, one.next_seq(a), "recording")
    cols = list(zip(*rows))
    seqs = [bulk.next_seq(a) for a in cols[0]]
    bulk.extend_account(list(cols[0]), list(cols[1]), list(cols[2]), seqs, *map(list, cols[3:]), source="recording")
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(bulk.frame(name), one.frame(name), obj=name)
    assert bulk.version == one.version and bulk.counts() == one.counts()
    with pytest.raises(ValueError, match="differ in length"):
        bulk.extend_account(["a"], [], [1], [1], [1.0], [1.0], [1.0], [1.0])
    before = bulk.frame("account")
    with pytest.raises(OverflowError):
        bulk.extend_account(["a", "a"], [1, 2], [1, 2**64], [9, 10], [1.0] * 2, [1.0] * 2, [1.0] * 2, [1.0] * 2)
    pd.testing.assert_frame_equal(bulk.frame("account"), before)
    # and the columns stayed aligned: the next rows land whole
    bulk.extend_account(["a"], [3], [4], [11], [5.0], [6.0], [7.0], [8.0])
    one.append("a", P.AccountUpdate(3, 5.0, 6.0, 7.0, 8.0), 4, 11)
    pd.testing.assert_frame_equal(bulk.frame("account"), one.frame("account"))


def test_lone_surrogates_in_text_keep_the_tables_readable():
    # JSON allows "\ud800"; no UTF-8 string column can hold it. One such frame used to
    # make every later read of its table raise: now the text shows escaped.
    t = Tables()
    t.ingest(AGENT, '{"type":"decision","timestamp":"2025-11-02T10:30:00Z","data":{"cycle":1,'
                    '"ai_reasoning":"x\\ud800y","decisions":[{"action":"hold","symbol":"BTC\\udc00"}]}}', R0)
    t.ingest(AGENT, SEED_DECISION, R0 + 1)
    assert t.frame("cycles")["ai_reasoning"].tolist()[0] == "x\\ud800y"
    assert t.frame("decisions")["symbol"].tolist()[0] == "BTC\\udc00"
    assert len(t.frame("cycles")) == 2 and t.frame("errors").empty


# ------------------------------------------------------------------ frames received together

# Account updates in every form a stream meets: the typed fast path (fraction of a
# second in the stamp), a whole-second stamp, no stamp and one beyond datetime64
# (rows take the receive time), a real-backend snapshot holding only an account
# (general path, adjusted balance), and a pong (no events).
BURST_FRAMES = [
    P.encode(P.AccountUpdate(T_1030 + 123_456_000, 10_000.5, 9_000.25, 12.5, 30.0)),
    P.encode(P.AccountUpdate(T_1030 + 999_999_000, 10_001.5, 9_001.25, -12.5, 31.0)),
    SEED_ACCOUNT,
    '{"type":"account_update","data":{"total_balance":1,"available_balance":2,"unrealized_pnl":3,"used_percentage":4}}',
    '{"type":"account_update","timestamp":"2999-01-01T00:00:00.5Z","data":{"total_balance":1,'
    '"available_balance":2,"unrealized_pnl":3,"used_percentage":4}}',
    '{"timestamp": 99.5, "account": {"total_wallet_balance": 5.0, "available_balance": 4.0,'
    ' "total_unrealized_profit": 1.0, "adjusted_total_balance": 4.5}}',
    '{"type":"pong"}',
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, 10_000), max_size=80),
    st.lists(st.integers(1, 30), min_size=1, max_size=12),
    st.sampled_from([None, 3, 1000]),
    st.booleans(),
)
@example(picks=[0] * 40, sizes=[40], max_rows=3, read_between=False)  # one long run of account rows
def test_ingest_many_makes_what_ingest_of_each_frame_makes(picks, sizes, max_rows, read_between):
    pool = BURST_FRAMES * 3 + GOOD + BAD  # mostly account updates, as a stream is
    frames = []
    for i, p in enumerate(picks):
        frame = pool[p % len(pool)]
        if frame is SEED_DECISION:
            frame = frame.replace('"cycle": 123', f'"cycle": {i}')
        frames.append(frame)
    # one frame at a time; bursts returning events; bursts counting them
    one, many, counted = (Tables(max_rows=max_rows) for _ in range(3))
    got, want, counts = [], [], {}
    start = k = 0
    while start < len(frames):
        batch = frames[start : start + sizes[k % len(sizes)]]
        received = R0 + k * 1_000  # frame j of the burst: received + j
        want += [one.ingest(AGENT, f, received + j) for j, f in enumerate(batch)]
        got += many.ingest_many(AGENT, batch, received)
        assert counted.ingest_many(AGENT, batch, received, counts=counts) is None
        if max_rows is not None:  # memory stays bounded while nobody reads
            assert all(tb.buf.n <= 2 * max_rows for t in (many, counted) for tb in t._t.values())
        if read_between:  # a reader swapping the pending rows out between bursts
            for t in (one, many, counted):
                t.frame("account")
        start += len(batch)
        k += 1
    for t in (one, many, counted):  # sequence numbers carry on after a burst
        t.add_connection(AGENT, "disconnected", "", R0)
    assert repr(got) == repr(want)  # the events each frame carried (repr: NaN != NaN)
    want_counts = {}
    for events in want:
        for key in [ev.kind for ev in events] + ([None] if events else []):
            want_counts[key] = want_counts.get(key, 0) + 1
    assert counts == want_counts
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(many.frame(name), one.frame(name), obj=name)
        pd.testing.assert_frame_equal(counted.frame(name), one.frame(name), obj=name)
    # after the reads: with max_rows, pending rows are trimmed once per burst, not
    # per row, so "dropped" agrees once both have trimmed to max_rows
    for t in (many, counted):
        assert t.counts() == one.counts() and t.totals() == one.totals()
