"""De-duplication means one thing everywhere: overlapping sources give each row
once, in any order (a recording and its own Parquet export, REST backfill and the
live stream, a log folder or SQLite store given twice), while a restarted
backend's reused cycle numbers are new cycles. One writer (``Tables``) owns the
rule; loaders reach it only through public methods.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

import roma_notebook as rn
from roma_notebook.core import protocol as P
from roma_notebook.store.recording import Recorder
from roma_notebook.core.tables import TABLE_NAMES, Tables
from test_recording import BTC, decision_body, write_json

T0 = P.parse_time("2025-11-02T10:30:00Z")
SEC = 1_000_000_000
PACKAGE = Path(rn.__file__).parent

# the bundled sample, loaded once: rows per table
SAMPLE_ROWS = {"account": 1041, "positions": 8, "position_history": 2336, "cycles": 804,
               "decisions": 1966, "trades": 278, "status": 820, "connections": 4}


def load(paths, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rn.LoadWarning)
        return rn.load(paths, progress=False, **kw)


def counts(rec) -> dict[str, int]:
    return {n: len(rec.frame(n)) for n in TABLE_NAMES if len(rec.frame(n))}


def assert_same_rows(got, expected) -> None:
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(got.frame(name), expected.frame(name), obj=name)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    rec_path = rn.sample_recording()
    once = load(rec_path)
    export = once.to_parquet(tmp_path_factory.mktemp("sample") / "export")
    return rec_path, export, once


def test_the_sample_loads_with_known_counts(sample):
    _, export, once = sample
    assert counts(once) == SAMPLE_ROWS
    assert counts(load(export)) == SAMPLE_ROWS


@pytest.mark.parametrize("order", ["recording first", "export first"])
def test_a_recording_and_its_own_export_give_each_row_once(sample, order):
    rec_path, export, once = sample
    paths = [rec_path, export] if order == "recording first" else [export, rec_path]
    both = load(paths)
    assert counts(both) == SAMPLE_ROWS
    # the very rows of one load, seq numbers and open positions included
    assert_same_rows(both, once)
    dups = both.tables.stats()["duplicates"]
    for name in ("account", "position_history", "cycles", "decisions", "trades", "status", "connections"):
        assert dups[name] >= SAMPLE_ROWS[name], name  # every row of the second source was refused


@pytest.mark.parametrize("paths", ["rr", "ee", "rer", "ere"])
def test_the_same_source_given_again_adds_nothing(sample, paths):
    rec_path, export, once = sample
    both = load([rec_path if c == "r" else export for c in paths])
    assert counts(both) == SAMPLE_ROWS
    assert_same_rows(both, once)


def restart_frames(agent: str = "a") -> list[tuple[str, int, str]]:
    """A backend that ran three cycles, restarted and counted from 1 again."""
    out = []
    for run, label in enumerate(("before", "after")):
        for c in (1, 2, 3):
            ts = T0 + (run * 10 + c) * 60 * SEC
            out.append((agent, ts + SEC, P.encode(P.Decision(
                ts, c, agent, f"{label} restart: cycle {c}",
                (P.DecisionItem("open_long", "BTCUSDT", 0.01, 5, "x", 100.0, 1.0, 2.0),
                 P.DecisionItem("hold", None, float("nan"), None, None, float("nan"), float("nan"), float("nan"))),
            ))))
            out.append((agent, ts + 2 * SEC, P.encode(P.AccountUpdate(ts, 1000.0 + c + run, 900.0, 0.0, 1.0))))
    # a resend of the last cycle after a reconnect: a duplicate
    out.append((agent, T0 + 99 * 60 * SEC, out[-2][2]))
    return out


@pytest.mark.parametrize("order", ["recording first", "export first"])
def test_reused_cycle_numbers_are_new_cycles_in_every_path(tmp_path, order):
    path = tmp_path / "restart.jsonl"
    with Recorder(path) as r:
        for a, t, f in restart_frames():
            r.write(a, t, f)
    once = load(path)
    assert once.cycles["cycle"].tolist() == [1, 2, 3, 1, 2, 3]
    assert once.cycles["ai_reasoning"].str.startswith("after").tolist() == [False] * 3 + [True] * 3
    assert len(once.decisions) == 12 and len(once.account) == 6
    assert once.tables.stats().loc["cycles", "duplicates"] == 1  # the resend
    export = once.to_parquet(tmp_path / "x")
    assert load(export).cycles["cycle"].tolist() == [1, 2, 3, 1, 2, 3]
    both = load([path, export] if order == "recording first" else [export, path])
    assert both.cycles["cycle"].tolist() == [1, 2, 3, 1, 2, 3]
    assert len(both.decisions) == 12 and len(both.account) == 6
    assert_same_rows(both, once)


def test_a_cycle_without_reasoning_is_keyed_by_its_time():
    t = Tables()
    assert t.append("a", P.Decision(T0, 1, "a", None, ()), T0)
    assert t.append("a", P.Decision(T0, 1, "a", None, ()), T0 + 5) is False  # resend
    assert t.append("a", P.Decision(T0 + 60 * SEC, 1, "a", None, ()), T0 + 60 * SEC)  # after a restart
    assert t.frame("cycles")["timestamp"].tolist() == [pd.Timestamp(T0, tz="UTC"),
                                                       pd.Timestamp(T0 + 60 * SEC, tz="UTC")]


def backfill_events() -> list:
    """What fetch_backfill returns for cycles 1-3: decisions (from decision records)
    and the equity series."""
    events = []
    for c in (1, 2, 3):
        body = decision_body(c, f"2025-11-02T10:3{c}:00Z", 10_000.0 + c, [])
        evs, problems = P.decision_record_events(body)
        assert not problems
        events += [e for e in evs if e.kind == "decision"]
        events.append(P.equity_point_event({"timestamp": f"2025-11-02T10:3{c}:00Z", "cycle": c,
                                            "equity": 10_000.0 + c}))
    return events


def live_frames() -> list[tuple[int, str]]:
    """The live stream's decisions of cycles 2-5 (the same messages the records hold)."""
    out = []
    for c in (2, 3, 4, 5):
        body = decision_body(c, f"2025-11-02T10:3{c}:00Z", 10_000.0 + c, [])
        dec = next(e for e in P.decision_record_events(body)[0] if e.kind == "decision")
        recv = T0 + (10 + c) * 60 * SEC
        out.append((recv, P.encode(dec)))
        out.append((recv, P.encode(P.AccountUpdate(recv, 10_000.0 + c, 9_000.0, 0.0, 1.0))))
    return out


@pytest.mark.parametrize("order", ["backfill first", "live first"])
def test_backfill_overlapping_live_gives_each_cycle_once(order):
    t = Tables()
    now = T0 + 5 * 60 * SEC

    def backfill():
        for ev in backfill_events():  # as Stream._do_backfill appends them
            t.append("a", ev, now, source="backfill")

    def live():
        for recv, frame in live_frames():
            t.ingest("a", frame, recv)

    if order == "backfill first":
        backfill()
        live()
    else:
        live()
        backfill()
    cyc = t.frame("cycles")
    assert sorted(cyc["cycle"].tolist()) == [1, 2, 3, 4, 5]
    first = "backfill" if order == "backfill first" else "live"
    assert cyc.set_index("cycle").loc[2, "source"] == first  # the first copy is kept
    assert len(t.frame("decisions")) == 5 * 2
    assert t.stats().loc["cycles", "duplicates"] == 2 and t.stats().loc["decisions", "duplicates"] == 4
    # equity points and account updates are different observations: all kept
    assert len(t.frame("account")) == 3 + 4


def write_logs(root: Path) -> Path:
    a = root / "decisions" / "deepseek-chat-v3.1"
    write_json(a / "decision_20251102_103000_cycle1.json", decision_body(1, "2025-11-02T10:30:00", 10_000.0, []))
    write_json(a / "decision_20251102_103300_cycle2.json", decision_body(2, "2025-11-02T10:33:00", 10_050.0, [BTC]))
    write_json(a / "trade_history.json", [
        {"symbol": "BTCUSDT", "side": "long", "entry_price": 67_000.0, "close_price": 68_000.0,
         "quantity": 0.01, "leverage": 5, "open_time": "2025-11-02T09:00:00", "close_time": "2025-11-02T10:00:00",
         "pnl_pct": 7.46, "pnl_usdt": 10.0},
        {"symbol": "ETHUSDT", "side": "short", "entry_price": 2_500.0, "close_price": 2_520.0,
         "quantity": 0.2, "leverage": 3, "open_time": "2025-11-02T09:00:00", "close_time": "2025-11-02T10:00:00",
         "pnl_pct": -2.4, "pnl_usdt": -4.0},
    ])
    write_json(a / "equity_history.json", [
        {"timestamp": "2025-11-02T10:27:00", "cycle": 0, "equity": 9_990.0},
        {"timestamp": "2025-11-02T10:36:00", "cycle": 3, "equity": 10_080.0},
    ])
    b = root / "decisions" / "qwen3-max"
    write_json(b / "decision_20251102_110000_cycle7.json", decision_body(7, "2025-11-02T11:00:00", 5_000.0, [BTC]))
    return root / "decisions"


def test_a_log_folder_given_twice_gives_each_row_once(tmp_path):
    logs = write_logs(tmp_path / "logs")
    once = load(logs)
    expected = {"account": 5, "positions": 2, "position_history": 2, "cycles": 3, "decisions": 6,
                "closed_trades": 2}
    assert counts(once) == expected
    twice = load([logs, logs])
    assert counts(twice) == expected
    assert_same_rows(twice, once)
    export = once.to_parquet(tmp_path / "x")
    for paths in ([logs, export], [export, logs]):
        assert counts(load(paths)) == expected


def test_a_sqlite_store_given_twice_gives_each_row_once(tmp_path):
    from roma_notebook.sim.market import World
    from roma_notebook.sim.store_writer import write_store

    w = World(("a1", "a2"), seed=5, start_time="2026-12-01T22:00:00Z")
    while min(ag.cycle for ag in w.agents.values()) < 30:
        w.step(emit_marks=False)
    db = write_store(tmp_path / "r.db", w)
    once = load(db)
    assert len(once.cycles) == 60 and len(once.account) == 60
    twice = load([db, db])
    assert counts(twice) == counts(once)
    assert_same_rows(twice, once)


def test_live_rows_are_never_refused_for_their_values():
    """A live stream never repeats a receive time: equal messages are two rows."""
    t = Tables()
    frame = P.encode(P.AccountUpdate(T0, 1.0, 1.0, 0.0, 1.0))
    for i in range(3):
        t.ingest("a", frame, T0 + i)
    assert len(t.frame("account")) == 3
    # the same observation again (same agent, receive time and time): one row
    t.ingest("a", frame, T0 + 1)
    assert len(t.frame("account")) == 3 and t.stats().loc["account", "duplicates"] == 1


def test_extend_frames_is_the_bulk_append_of_the_same_rules():
    src = Tables()
    for i, (recv, frame) in enumerate(live_frames()):
        src.ingest("a", frame, recv)
    frames = {n: src.frame(n) for n in TABLE_NAMES}
    t = Tables()
    assert t.extend_frames(frames, agents=["a"]) == {}
    assert t.extend_frames(frames) == {"account": 4, "cycles": 4, "decisions": 8}
    for n in TABLE_NAMES:
        pd.testing.assert_frame_equal(t.frame(n), src.frame(n), obj=n)
    with pytest.raises(ValueError, match="columns"):
        t.extend_frames({"account": frames["account"].drop(columns=["seq"])})
    with pytest.raises(ValueError, match="unknown table"):
        t.extend_frames({"nope": frames["account"]})


# Tables' private state, which only tables.py may touch
_PRIVATE = re.compile(
    r"\b(?!self\b)(\w+)\.(_t|_seq|_seen\w*|_open\w*|_lock|_build_lock|_last_snapshot|_reported_fills|"
    r"_key_limit|_collect_keys|_observed|_admit|_positions|_decision|_put_fill|_derive_fills|_flush|"
    r"_table|_restore_open|_fresh_\w+)\b"
)


def test_no_module_touches_the_private_state_of_tables():
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for m in _PRIVATE.finditer(code):
                obj = m.group(1)
                # tables.py's own objects (self, a _Table ``tb``) and other classes' own locks
                if path.name == "tables.py" and obj in ("self", "tb", "seen"):
                    continue
                if m.group(2) == "_lock" and path.name != "tables.py" and obj != "tables":
                    continue
                offenders.append(f"{path.name}:{n}: {line.strip()}")
            if path.name != "tables.py" and re.search(r"\btables\._", code):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_open_set_is_the_newest_update_by_either_clock():
    btc = P.Position("BTCUSDT", "long", 0.01, 1.0, 1.0, 0.0, 0.0, 5, 0.0)
    eth = P.Position("ETHUSDT", "short", 0.5, 1.0, 1.0, 0.0, 0.0, 5, 0.0)
    t = Tables()
    t.append("a", P.PositionUpdate(T0 + 20 * SEC, (btc,)), T0 + 100 * SEC)
    # a replayed older update (earlier by both clocks) only adds history
    t.append("a", P.PositionUpdate(T0 + 10 * SEC, (eth,)), T0 + 90 * SEC)
    assert t.frame("positions")["symbol"].tolist() == ["BTCUSDT"]
    # the receive clock stepped back, the server's time went on: the newest set
    t.append("a", P.PositionUpdate(T0 + 30 * SEC, ()), T0 + 95 * SEC)
    assert len(t.frame("positions")) == 0
    assert len(t.frame("position_history")) == 2
