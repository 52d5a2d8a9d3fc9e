"""rn.load of the current ROMA-01 SQLite store, the simulator's store writer and
the current backend's newer REST endpoints (issue 11). Real sqlite files in
tmp_path and the simulator over loopback; no mocks."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

import roma_notebook as rn
from roma_notebook.live import backfill
from roma_notebook.core import protocol as P
from roma_notebook.sim.market import World
from roma_notebook.store.roma_store import StoreError, StoreLocked
from roma_notebook.sim.simulator import Simulator
from roma_notebook.sim.store_writer import write_store
from roma_notebook.core.tables import empty_frame
from scripted_server import wait_until

AGENTS = ("deepseek-chat-v3.1", "qwen3-max")
SHANGHAI = "Asia/Shanghai"


@pytest.fixture(scope="module")
def world():
    w = World(AGENTS, seed=5, start_time="2026-12-01T22:00:00Z")
    while min(ag.cycle for ag in w.agents.values()) < 150:
        w.step(emit_marks=False)
    return w


@pytest.fixture(scope="module")
def store(world, tmp_path_factory):
    """A backend folder as the simulator writes it: data/roma_trading.db, Shanghai times."""
    root = tmp_path_factory.mktemp("backend")
    write_store(root / "data" / "roma_trading.db", world, tz=SHANGHAI)
    return root


def db_of(root: Path) -> Path:
    return root / "data" / "roma_trading.db"


def sql(path: Path, query: str, params=()):
    con = sqlite3.connect(path)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def copy_db(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


# ------------------------------------------------------------------ what the writer writes


def test_writer_uses_the_backends_formats(store):
    db = db_of(store)
    tables = {r[0] for r in sql(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"decision_logs", "equity_history", "trades", "analysis_insights", "analysis_snapshots",
                      "analysis_jobs", "large_trades"}
    types = {r[1]: r[2] for r in sql(db, "PRAGMA table_info(decision_logs)")}
    assert types["timestamp"] == "DATETIME" and types["decisions"] == "TEXT"
    ts, dec = sql(db, "SELECT timestamp, decisions FROM decision_logs ORDER BY id LIMIT 1")[0]
    assert len(ts) == 26 and ts[10] == " " and ts[19] == "."   # YYYY-MM-DD HH:MM:SS.ffffff
    assert ts.startswith("2026-12-02 06:00:05")   # 22:00:05Z in Shanghai, naive
    assert '", "' in dec or '": "' in dec        # json.dumps default separators
    created = sql(db, "SELECT created_at, close_time FROM trades LIMIT 1")[0]
    assert len(created[0]) == 19   # SQLite's clock: UTC, whole seconds
    # ids out of time order for a few rows (Q8), so a reader must order by time
    rows = sql(db, "SELECT id, timestamp FROM decision_logs ORDER BY id")
    assert any(b[1] < a[1] for a, b in zip(rows, rows[1:]))
    # flat agents' positions are NULL, not "[]" (Q7)
    assert sql(db, "SELECT count(*) FROM decision_logs WHERE positions = '[]' OR decisions = '[]'")[0][0] == 0
    assert sql(db, "SELECT count(*) FROM decision_logs WHERE positions IS NULL")[0][0] > 0
    # equity net of inferred deposits (Q3) and leveraged trade P&L (Q2)
    assert sql(db, "SELECT count(*) FROM equity_history WHERE abs(equity - (gross_equity - net_deposits)) > 1e-6"
               )[0][0] == 0
    assert sql(db, "SELECT count(*) FROM equity_history WHERE net_deposits != 0")[0][0] > 0


# ------------------------------------------------------------------ rn.load of a store


def test_load_store_folder_every_agent_in_utc(store, world):
    rec = rn.load(store, tz=SHANGHAI, progress=False)
    assert rec.agent_ids == list(AGENTS)
    assert len(rec.errors) == 0
    for a, ag in world.agents.items():
        cyc = rec.cycles[rec.cycles.agent_id == a]
        want = [(r["cycle_number"], P.parse_time(r["timestamp"])) for r in ag.decision_log]
        assert list(zip(cyc.cycle.astype(int), cyc.timestamp.astype("int64"))) == want
        assert (cyc.source == "store").all()
        dec = rec.decisions[rec.decisions.agent_id == a]
        assert len(dec) == sum(len(r["decisions"]) for r in ag.decision_log)
        # the account series: equity points, gross value as total_balance, ROMA-01's net figure beside it
        acc = rec.account[rec.account.agent_id == a]
        assert acc.total_balance.tolist() == [p["gross_equity"] for p in ag.equity_history]
        assert acc.adjusted_balance.tolist() == [p["adjusted_equity"] for p in ag.equity_history]
        assert (acc.total_balance != acc.adjusted_balance).any()
        ct = rec.closed_trades[rec.closed_trades.agent_id == a]
        assert ct.close_time.astype("int64").tolist() == [t.close_time for t in ag.closed_trades]
        assert ct.pnl_usdt.tolist() == pytest.approx([t.pnl_usdt * t.leverage for t in ag.closed_trades])
    # every table in time order, whatever the ids say
    for name in ("cycles", "account", "closed_trades", "insights"):
        df = getattr(rec, name)
        for _, g in df.groupby("agent_id"):
            assert g.timestamp.is_monotonic_increasing, name


def test_tz_default_is_utc(store):
    utc = rn.load(db_of(store), progress=False)
    local = rn.load(db_of(store), tz=SHANGHAI, progress=False)
    shift = utc.cycles.timestamp - local.cycles.timestamp
    assert (shift == pd.Timedelta(hours=8)).all()


def test_tz_across_a_dst_change(tmp_path):
    # Berlin leaves summer time on 2025-10-26 03:00 -> 02:00: the hour is converted row by row
    w = World(["gpt-5"], seed=2, start_time="2025-10-26T00:00:00Z", cycle_minutes=15)
    while w.agents["gpt-5"].cycle < 12:
        w.step(emit_marks=False)
    db = write_store(tmp_path / "r.db", w, tz="Europe/Berlin")
    rec = rn.load(db, tz=ZoneInfo("Europe/Berlin"), progress=False)
    want = {r["cycle_number"]: P.parse_time(r["timestamp"]) for r in w.agents["gpt-5"].decision_log}
    got = dict(zip(rec.cycles.cycle.astype(int), rec.cycles.timestamp.astype("int64")))
    assert got.keys() == want.keys()
    hour = 3600 * 10**9
    # exact outside the repeated local hour (02:00-03:00 twice); inside it the text is
    # ambiguous and the first occurrence is taken
    for c, x in want.items():
        if x < P.parse_time("2025-10-26T01:00:00Z") or x >= P.parse_time("2025-10-26T02:00:00Z"):
            assert got[c] == x, c
        else:
            assert got[c] == x - hour, c


def test_agents_since_until_filter_in_sql(store, world):
    since = datetime(2026, 12, 2, 0, 0, tzinfo=timezone.utc)
    until = since + timedelta(hours=2)
    rec = rn.load(db_of(store), tz=SHANGHAI, agents="qwen3-max", since=since, until=until, progress=False)
    assert rec.agent_ids == ["qwen3-max"]
    for name in ("cycles", "account", "closed_trades"):
        df = getattr(rec, name)
        assert len(df) and df.timestamp.min() >= since and df.timestamp.max() < until, name
    want = [r["cycle_number"] for r in world.agents["qwen3-max"].decision_log
            if since.timestamp() * 1e9 <= P.parse_time(r["timestamp"]) < until.timestamp() * 1e9]
    assert rec.cycles.cycle.tolist() == want
    # zone-less bounds are UTC, like every time in the library
    again = rn.load(db_of(store), tz=SHANGHAI, agents=["qwen3-max"], since="2026-12-02T00:00:00",
                    until="2026-12-02 02:00", progress=False)
    assert again.cycles.cycle.tolist() == want


def test_positions_are_the_newest_cycles_and_say_which_moment(store, world):
    rec = rn.load(store, tz=SHANGHAI, progress=False)
    moment = rec.positions_as_of
    for a, ag in world.agents.items():
        newest = ag.decision_log[-1]
        assert moment.loc[a, "cycle"] == newest["cycle_number"]
        assert moment.loc[a, "logged_at"].value == P.parse_time(newest["timestamp"])
        assert moment.loc[a, "source"] == "store"
        pos = rec.positions[rec.positions.agent_id == a]
        assert sorted(pos.symbol) == sorted(p["symbol"] for p in newest["positions"])
        assert (pos.timestamp.astype("int64") == P.parse_time(newest["timestamp"])).all()
    # only the newest cycle's positions are read: one position update per agent
    assert rec.position_history.groupby("agent_id").timestamp.nunique().max() == 1


def test_null_decisions_and_positions_mean_empty(store, tmp_path):
    db = copy_db(db_of(store), tmp_path / "roma_trading.db")
    con = sqlite3.connect(db)
    with con:
        con.execute("INSERT INTO decision_logs (agent_id, cycle_number, timestamp, chain_of_thought, decisions, "
                    "account_state, positions) VALUES ('gpt-5', 1, '2026-12-03 08:00:00.000000', 'nothing', "
                    "NULL, NULL, NULL)")
    con.close()
    rec = rn.load(db, tz=SHANGHAI, progress=False)
    assert len(rec.errors) == 0
    c = rec.cycles[rec.cycles.agent_id == "gpt-5"]
    assert c.n_decisions.tolist() == [0] and c.ai_reasoning.tolist() == ["nothing"]
    assert (rec.positions.agent_id == "gpt-5").sum() == 0   # NULL positions: flat
    assert rec.positions_as_of.loc["gpt-5", "cycle"] == 1


def test_corrupt_json_cell_is_one_errors_row(store, tmp_path):
    db = copy_db(db_of(store), tmp_path / "roma_trading.db")
    con = sqlite3.connect(db)
    with con:
        rid = con.execute("SELECT id FROM decision_logs WHERE agent_id = 'qwen3-max' AND cycle_number = 7"
                          ).fetchone()[0]
        con.execute("UPDATE decision_logs SET decisions = '[{\"action\": \"hold\", ' WHERE id = ?", (rid,))
        con.execute("UPDATE analysis_insights SET recommendations = '[\"cut' WHERE insight_id = "
                    "(SELECT min(insight_id) FROM analysis_insights)")
    con.close()
    full = rn.load(db_of(store), tz=SHANGHAI, progress=False)
    rec = rn.load(db, tz=SHANGHAI, progress=False)
    err = rec.errors
    assert len(err) == 2 and set(err.kind) == {"not_json"}
    row = err[err.detail.str.contains("decision_logs")].iloc[0]
    assert str(db) in row.detail and f"row {rid}" in row.detail and "decisions" in row.detail
    assert row.agent_id == "qwen3-max" and row.raw.startswith('[{"action"')
    assert len(rec.cycles) == len(full.cycles) - 1          # the rest loads
    assert 7 not in rec.cycles[rec.cycles.agent_id == "qwen3-max"].cycle.tolist()
    assert len(rec.insights) == len(full.insights) - 1
    assert len(rec.account) == len(full.account)


def test_insights_table(store, world):
    rec = rn.load(store, tz=SHANGHAI, progress=False)
    ins = rec.insights
    n = sql(db_of(store), "SELECT count(*) FROM analysis_insights")[0][0]
    assert len(ins) == n > 4
    assert ins.dtypes.to_dict() == empty_frame("insights").dtypes.to_dict()
    assert ins.category.isin(["entry_timing", "exit_timing", "position_sizing", "risk_management",
                              "market_conditions", "leverage_usage"]).all()
    assert all(isinstance(r, list) and r and all(isinstance(x, str) for x in r) for r in ins.recommendations)
    assert all(isinstance(r, list) for r in ins.supporting_trade_ids)
    assert ins.confidence.between(0, 1).all()
    assert (ins.timestamp == ins.created_at).all()
    # older runs are deprecated when a newer one lands; the newest are active
    assert ins.is_active.any() and (~ins.is_active).any()
    assert ins[~ins.is_active].deprecated_at.notna().all() and ins[ins.is_active].deprecated_at.isna().all()
    # supporting trade ids name the agent's trades by their local open time
    a = ins.agent_id.iloc[-1]
    opens = {t.open_time for t in world.agents[a].closed_trades}
    sh = ZoneInfo(SHANGHAI)
    for tid in ins.supporting_trade_ids.iloc[-1]:
        agent, sym, text = tid.rsplit("_", 2)
        local = datetime.fromisoformat(text).replace(tzinfo=sh)
        assert agent == a and int(local.timestamp() * 1e6) * 1000 in opens


def test_a_store_exports_to_parquet_and_back(store, tmp_path):
    rec = rn.load(store, tz=SHANGHAI, progress=False)
    again = rn.load(rec.to_parquet(tmp_path / "export"), progress=False)
    for name in ("cycles", "decisions", "account", "closed_trades", "insights", "positions"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(rec, name), obj=name)


# ------------------------------------------------------------------ errors


def test_another_schema_names_the_file_and_what_is_missing(tmp_path):
    other = tmp_path / "app.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"app\.db is a SQLite database but not a ROMA-01 store") as e:
        rn.load(other)
    assert "decision_logs" in str(e.value) and "users" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, rn.RomaError)

    partial = tmp_path / "old.sqlite"
    con = sqlite3.connect(partial)
    con.execute("CREATE TABLE decision_logs (id INTEGER, agent_id TEXT, timestamp DATETIME)")
    con.execute("CREATE TABLE trades (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError) as e:
        rn.load(partial)
    msg = str(e.value)
    assert str(partial) in msg and "table equity_history is missing" in msg
    assert "decision_logs lacks columns cycle_number, chain_of_thought, decisions, positions" in msg


def test_a_file_that_is_not_sqlite(tmp_path):
    bad = tmp_path / "roma_trading.db"
    bad.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match=r"roma_trading\.db: not a usable SQLite database"):
        rn.load(bad)
    # SQLite's header, then garbage: corrupt
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    with pytest.raises(StoreError, match=r"corrupt\.db"):
        rn.load(corrupt)


def test_bad_arguments(store):
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        rn.load(db_of(store), tz="Mars/Olympus")
    with pytest.raises(ValueError, match="since must be a time"):
        rn.load(db_of(store), since="yesterday-ish")


# ------------------------------------------------------------------ a live backend's file


def test_locked_store_retries_then_says_so(store, tmp_path):
    db = copy_db(db_of(store), tmp_path / "roma_trading.db")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreLocked, match=r"roma_trading\.db: the database stayed locked for 0\.2 s"):
            rn.load(db, timeout=0.2, progress=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(rn.load(db, timeout=0.2, progress=False).cycles) > 0


def test_a_load_begun_while_locked_finishes_once_released(store, tmp_path):
    db = copy_db(db_of(store), tmp_path / "roma_trading.db")
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    result: dict = {}

    def load() -> None:
        try:
            result["rec"] = rn.load(db, timeout=30, progress=False)
        except Exception as exc:  # reported below
            result["exc"] = exc

    t = threading.Thread(target=load)
    t.start()
    t.join(0.5)
    blocked = t.is_alive()  # it waits on the lock (busy timeout), it did not fail
    holder.execute("ROLLBACK")
    holder.close()
    t.join(30)
    assert "exc" not in result, result.get("exc")
    assert blocked and len(result["rec"].cycles) > 0


def test_a_store_being_written_loads_what_is_committed(store, tmp_path):
    db = copy_db(db_of(store), tmp_path / "roma_trading.db")
    before = rn.load(db, progress=False)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")   # a writer mid-transaction, as the backend between commits
    writer.executemany(
        "INSERT INTO decision_logs (agent_id, cycle_number, timestamp, chain_of_thought, decisions) "
        "VALUES ('gpt-5', ?, '2027-01-01 00:00:00.000000', 'x', NULL)", [(i,) for i in range(50)])
    try:
        during = rn.load(db, timeout=5, progress=False)
        assert len(during.cycles) == len(before.cycles)
        assert "gpt-5" not in during.agent_ids
    finally:
        writer.execute("COMMIT")
        writer.close()
    after = rn.load(db, progress=False)
    assert len(after.cycles) == len(before.cycles) + 50


def test_the_reader_never_writes(store, tmp_path):
    db = copy_db(db_of(store), tmp_path / "roma_trading.db")
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    mtime = db.stat().st_mtime_ns
    rn.load(db, tz=SHANGHAI, progress=False)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest and db.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roma_trading.db"]   # no journal, no -wal
    db.chmod(0o444)   # a copy the user may not write: still loads
    try:
        assert len(rn.load(db, progress=False).cycles) > 0
    finally:
        db.chmod(0o644)


# ------------------------------------------------------------------ the simulator keeps a store


def test_simulator_store_is_written_while_running_and_complete_at_stop(tmp_path):
    db = tmp_path / "data" / "roma_trading.db"
    sim = Simulator(AGENTS, seed=4, speed=3000, dialect="roma-current", store=db, store_interval=0.1,
                    store_tz=SHANGHAI).start()
    try:
        # readable while the simulator writes it
        wait_until(lambda: db.exists() and len(rn.load(db, tz=SHANGHAI, progress=False).cycles) >= 20, 30,
                   "cycles in the store")
    finally:
        sim.stop()
    rec = rn.load(tmp_path, tz=SHANGHAI, progress=False)
    w = sim._source.world
    for a, ag in w.agents.items():
        assert rec.cycles[rec.cycles.agent_id == a].cycle.tolist() == [r["cycle_number"] for r in ag.decision_log]
        assert len(rec.closed_trades[rec.closed_trades.agent_id == a]) == len(ag.closed_trades)
    assert len(rec.errors) == 0


def test_cli_sim_takes_store(tmp_path):
    from roma_notebook.cli import build_parser

    args = build_parser().parse_args(["sim", "--store", str(tmp_path / "r.db"), "--store-tz", SHANGHAI])
    assert args.store == str(tmp_path / "r.db") and args.store_tz == SHANGHAI


# ------------------------------------------------------------------ newer REST


@pytest.fixture(scope="module")
def current():
    with Simulator(AGENTS, seed=6, speed=6000, dialect="roma-current") as sim:
        # enough cycles for an analysis run with insights (every 20 cycles)
        wait_until(lambda: sim.query(lambda w: min(ag.cycle for ag in w.agents.values())) >= 45, 60, "cycles")
        yield sim


def test_rest_insights_as_a_dataframe(current):
    one = rn.insights(current.http_url, "qwen3-max")
    assert len(one) and (one.agent_id == "qwen3-max").all() and (one.source == "rest").all()
    assert one.is_active.all() and (one.confidence >= 0.7).all()   # what the backend returns
    assert all(isinstance(r, list) for r in one.recommendations)
    assert one.created_at.is_monotonic_decreasing
    everyone = rn.insights(current.http_url)
    assert set(everyone.agent_id) == set(AGENTS)
    assert list(everyone.columns) == list(one.columns)
    with pytest.raises(rn.AgentNotFound):
        rn.insights(current.http_url, "nobody")


def test_rest_agent_analytics(current):
    df = rn.agent_analytics(current.http_url)
    assert list(df.index) == list(AGENTS)
    assert str(df.total_trades.dtype) == "Int64" and df.win_rate.dtype == "float64"
    n = current.query(lambda w: {a: len(ag.closed_trades) for a, ag in w.agents.items()})
    for a in AGENTS:
        assert n[a] - 2 <= df.loc[a, "total_trades"] <= n[a] + 2   # the world moves between the calls
    assert df.error.isna().all()


@pytest.mark.parametrize("dialect", ["documented", "roma-backend"])
def test_older_backends_lack_the_endpoints(dialect):
    with Simulator(["gpt-5"], seed=1, speed=600, dialect=dialect) as sim:
        with pytest.raises(rn.ConnectionFailed, match="this ROMA-01 backend version lacks insights"):
            rn.insights(sim.http_url)
        with pytest.raises(rn.ConnectionFailed, match="lacks insights"):
            rn.insights(sim.http_url, "gpt-5")
        with pytest.raises(rn.ConnectionFailed, match="lacks analytics"):
            rn.agent_analytics(sim.http_url)


def test_current_rest_bodies(current):
    import urllib.request

    def get(path):
        return json.loads(urllib.request.urlopen(current.http_url + path).read())

    a = "deepseek-chat-v3.1"
    eq = get(f"/api/agents/{a}/equity-history?limit=3")
    assert [p["cycle"] for p in eq] == sorted(p["cycle"] for p in eq) and eq[0]["cycle"] <= 2   # the OLDEST (Q5)
    trades = get(f"/api/agents/{a}/trades")
    closes = [t["close_time"] for t in trades]
    assert closes == sorted(closes, reverse=True)   # newest first
    acc = get(f"/api/agents/{a}/account")
    assert {"gross_total_balance", "adjusted_total_balance", "net_deposits", "initial_balance"} <= acc.keys()
    decs = get(f"/api/agents/{a}/decisions?limit=100000")   # cycle 1 starts flat
    assert any(d["positions"] is None for d in decs) and not any(d["positions"] == [] for d in decs)


def test_backfill_gets_the_newest_equity_points_from_a_current_backend(current, monkeypatch):
    monkeypatch.setitem(backfill.BACKFILL_LIMITS, "equity-history", 5)
    a = "qwen3-max"
    events, problems = backfill.fetch_backfill(current.http_url, a)
    assert problems == []
    acc = [e.timestamp for e in events if e.kind == "account_update"]
    newest = current.query(lambda w: [P.parse_time(p["timestamp"]) for p in w.agents[a].equity_history])
    assert len(acc) == 5
    # the newest five when fetched (the world moves on meanwhile)
    assert acc == sorted(acc) and acc[0] >= newest[-8]


# ------------------------------------------------------------------ log folders say which moment too


def test_log_folder_positions_say_which_moment(tmp_path):
    d = tmp_path / "logs" / "decisions" / "gpt-5"
    d.mkdir(parents=True)
    for cycle, ts, pos in ((1, "2025-11-02T10:30:00", [{"symbol": "BTCUSDT", "side": "long", "position_amt": 1}]),
                           (2, "2025-11-02T10:33:00", [{"symbol": "ETHUSDT", "side": "short", "position_amt": 2}])):
        body = {"timestamp": ts, "cycle_number": cycle, "chain_of_thought": "x", "decisions": [],
                "account_state": {"total_wallet_balance": 1.0, "gross_total_balance": 1.0,
                                  "adjusted_total_balance": 0.9, "net_deposits": 0.1}, "positions": pos}
        (d / f"decision_20251102_{ts[11:].replace(':', '')}_cycle{cycle}.json").write_text(json.dumps(body))
    rec = rn.load(tmp_path / "logs" / "decisions", progress=False)
    assert rec.positions.symbol.tolist() == ["ETHUSDT"]
    m = rec.positions_as_of.loc["gpt-5"]
    assert m["cycle"] == 2 and m["logged_at"] == pd.Timestamp("2025-11-02T10:33:00Z") and m["source"] == "log"
    # the gross account value as total_balance, ROMA-01's net figure beside it
    assert rec.account.total_balance.tolist() == [1.0, 1.0] and rec.account.adjusted_balance.tolist() == [0.9, 0.9]


def test_recordings_have_no_positions_moment():
    assert rn.load(rn.sample_recording(), progress=False).positions_as_of is None


def test_store_benchmark_smoke():
    # the benchmark itself is not part of the suite; this keeps it runnable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_store

    best = bench_store.main(["--n", "600", "--tz", "UTC"])
    assert set(best) == {"read_sql", "read_sql + json", "rn.load"} and all(t > 0 for t in best.values())
