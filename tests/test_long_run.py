"""Long runs: a simulated day and more with ``max_rows`` keeps memory flat, and 20
agents read by two threads and two dashboards for half a minute stay consistent.

The simulator runs as a child process (the CLI), so the memory measured here is
the client's alone and the two processes get a core each.
"""

from __future__ import annotations

import gc
import random
import threading
import time
import tracemalloc
import traceback

import pandas as pd
import pytest

import roma_notebook as rn
from roma_notebook.core.tables import TABLE_COLUMNS, TABLE_NAMES

from fault_report import record
from scripted_server import wait_until
from sim_process import SimProcess

START = "2026-01-01T00:00:00Z"
T0 = pd.Timestamp(START)


def stop_server_first(sim: SimProcess, g) -> tuple[int, int]:
    """Stop the simulator, let every stream read what it sent up to its close, and
    return (frames the server sent, frames it sent that the client never received),
    both counted: the server per connection, the client per stream."""
    before = {s.agent_id: s.connections["event"].tolist().count("disconnected") for s in g}
    assert sim.stop() == 0, sim.stderr[-2000:]
    wait_until(lambda: all(s.connections["event"].tolist().count("disconnected") > before[s.agent_id] for s in g),
               15, "every stream to see the server close")
    sent = sim.frames_sent()
    assert set(sent) == {s.agent_id for s in g}, sent
    return sum(sent.values()), sum(sent[s.agent_id] - s.stats().iloc[0]["messages"] for s in g)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.slow
def test_a_simulated_day_and_more_with_max_rows_keeps_memory_flat():
    agents = [f"agent-{i}" for i in range(4)]
    max_rows = 50
    # 20000 simulated seconds per real second: a day in ~4.3 s
    sim = SimProcess(["--agents", ",".join(agents), "--seed", "5", "--speed", "20000", "--start-time", START,
                      "--log-level", "DEBUG"])  # DEBUG: the server logs what it sent per connection
    tracemalloc.start()
    g = rn.connect(agents, url=sim.url, max_rows=max_rows)

    def sim_hours() -> float:
        # the newest message time every agent has reached
        out = []
        for a in agents:
            ts = g[a].account["timestamp"]
            out.append((ts.max() - T0).total_seconds() / 3600 if len(ts) else 0.0)
        return min(out)

    def settle() -> tuple[int, int]:
        """(traced bytes, rows ever appended) with no pending rows: every table read,
        so each holds at most max_rows (pending buffers may hold twice that)."""
        for s in g:
            for name in TABLE_NAMES:
                s.tables.frame(name)
        gc.collect()
        return tracemalloc.get_traced_memory()[0], sum(sum(s.tables.counts().values()) for s in g)

    try:
        # warm up: every table that fills at all is at max_rows and dropping
        wait_until(lambda: sim_hours() >= 8, 60, "8 simulated hours")
        h0, rss0 = sim_hours(), rss_bytes()
        mem0, rows0 = settle()
        while sim_hours() < 32:  # a simulated day more, read like a notebook would
            for name in ("account", "cycles", "decisions", "trades", "position_history"):
                df = getattr(g, name)
                assert len(df) <= len(agents) * max_rows
            time.sleep(0.1)
        h1, rss1 = sim_hours(), rss_bytes()
        mem1, rows1 = settle()
        assert all(st == "live" for st in g.state.values())
        frames, lost = stop_server_first(sim, g)
    finally:
        tracemalloc.stop()
        g.stop()
        sim.stop()
    rows = rows1 - rows0
    growth = mem1 - mem0
    # Measured here without max_rows, the process grows by ~130 bytes per row
    # appended (~2 MB a simulated day). With max_rows it grows by ~40: the
    # de-duplication keys of cycles and fills, which are capped only at 10,000 per
    # stream (a reconnect must still recognise recent ones).
    assert rows > 10_000, rows
    assert growth < 80 * rows, (growth, rows, growth / rows)
    assert rss1 - rss0 < 50 * 2**20, (rss0, rss1)
    drops = unaccounted = 0
    for s in g:
        for name in TABLE_NAMES:
            assert len(s.tables.frame(name)) <= max_rows, name
        st = s.stats().loc[s.agent_id]
        t = s.tables.stats()
        assert st["drops"] > 0 and st["drops"] == int(t["dropped"].sum())
        counts = s.tables.counts()
        for name in TABLE_NAMES:
            if name == "positions":
                continue
            assert t.loc[name, "rows"] <= max_rows
            # every row ever appended is either kept or counted as dropped
            unaccounted += abs(counts[name] - t.loc[name, "rows"] - t.loc[name, "dropped"])
        drops += st["drops"]
    assert unaccounted == 0 and lost == 0, (unaccounted, lost)
    record("long run with max_rows", f"{len(agents)} agents, {h1:.0f} simulated h at 20000×, "
           f"max_rows={max_rows}: {growth / 1e6:.2f} MB traced growth over {h1 - h0:.0f} h "
           f"({growth / rows:.0f} B per row appended)",
           frames, f"{lost} (rows: {unaccounted} unaccounted, {drops} oldest dropped by max_rows, counted)")


# ---------------------------------------------------------------- concurrency stress


def check_snapshot(name: str, df: pd.DataFrame) -> None:
    assert tuple(df.columns) == TABLE_COLUMNS[name], name
    assert not df["agent_id"].isna().any() and str(df["seq"].dtype) == "int64"
    # rows of an agent arrive in seq order (group frames are in receive order)
    for _, seq in df.groupby("agent_id", sort=False)["seq"]:
        assert seq.is_monotonic_increasing, name


def check_cycles(cycles: pd.DataFrame, decisions: pd.DataFrame) -> int:
    """Decisions taken after cycles: every cycle seen has all its decision rows."""
    per = decisions.groupby(["agent_id", decisions["cycle"].astype("int64")]).size()
    for a, c, n in zip(cycles["agent_id"], cycles["cycle"].astype("int64"), cycles["n_decisions"]):
        assert per.get((a, c), 0) == n, (a, c, n, per.get((a, c), 0))
    return len(cycles)


@pytest.mark.slow
def test_twenty_agents_two_readers_and_dashboards_for_half_a_minute():
    agents = [f"agent-{i:02d}" for i in range(20)]
    duration = 30.0
    sim = SimProcess(["--agents", ",".join(agents), "--seed", "9", "--speed", "1200", "--log-level", "DEBUG"])
    g = rn.connect(agents, url=sim.url)
    problems: list[str] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: problems.append(
        f"thread {args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: {args.exc_value}")
    stop = threading.Event()
    reads = {"group": 0, "stream": 0}
    called = []

    def group_reader() -> None:
        last: dict[str, int] = {}
        try:
            while not stop.is_set():
                cycles = g.cycles
                decisions = g.decisions  # after cycles: a superset of their rows
                check_snapshot("cycles", cycles)
                check_snapshot("decisions", decisions)
                check_cycles(cycles, decisions)
                for name in ("account", "trades", "position_history", "status", "connections"):
                    df = getattr(g, name)
                    check_snapshot(name, df)
                    assert len(df) >= last.get(name, 0), name  # nothing vanishes
                    last[name] = len(df)
                trades = g.trades
                assert not trades.duplicated(["agent_id", "order_id"]).any()
                lb = g.leaderboard()
                assert len(lb) == len(agents)
                reads["group"] += 1
        except BaseException:
            problems.append("group reader: " + traceback.format_exc())

    def stream_reader() -> None:
        rng = random.Random(1)
        try:
            while not stop.is_set():
                s = g[rng.choice(agents)]
                cycles, decisions = s.cycles, s.decisions
                check_cycles(cycles, decisions)
                for name in ("account", "position_history", "trades"):
                    df = getattr(s, name)
                    check_snapshot(name, df)
                    assert (df["agent_id"] == s.agent_id).all()
                pos = s.positions
                assert not pos.duplicated(["symbol", "side"]).any()
                st = s.stats().loc[s.agent_id]
                assert st["state"] == "live" and st["errors"] == 0
                reads["stream"] += 1
        except BaseException:
            problems.append("stream reader: " + traceback.format_exc())

    d = gd = None
    try:
        g.wait_for("decision", count=1, timeout=60)
        g.on("decision", lambda ev: called.append(ev.cycle))
        d = g[agents[0]].dashboard(fps=8)
        gd = g.dashboard(fps=4)
        refreshes0 = (d.refresh_count, gd.refresh_count)
        threads = [threading.Thread(target=f, name=f.__name__, daemon=True) for f in (group_reader, stream_reader)]
        for t in threads:
            t.start()
        time.sleep(duration)  # the world runs: ingest, two readers, two dashboards
        stop.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert not problems, "\n".join(problems)
        assert reads["group"] >= 5 and reads["stream"] >= 20, reads
        assert d.refresh_count > refreshes0[0] and gd.refresh_count > refreshes0[1]
        assert d.refresh_errors == 0 and gd.refresh_errors == 0, (d.last_refresh_error, gd.last_refresh_error)
        assert all(st == "live" for st in g.state.values())
        stats = g.stats()
        assert (stats["errors"] == 0).all() and (stats["reconnects"] == 0).all()
        wait_until(lambda: len(called) >= len(agents), 10, "callbacks ran")
        # the final state is consistent too
        n_cycles = check_cycles(g.cycles, g.decisions)
        frames, lost = stop_server_first(sim, g)
        assert lost == 0, lost
    finally:
        threading.excepthook = old_hook
        stop.set()
        g.stop()
        sim.stop()
    assert d is not None and d.closed and gd is not None and gd.closed
    record("concurrency stress", f"20 agents, 2 reader threads ({reads['group']} + {reads['stream']} reads), "
           f"2 dashboards, {duration:.0f} s; {n_cycles} cycles complete", frames, lost)
