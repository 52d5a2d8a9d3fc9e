"""Faults a stream left running overnight meets: a server killed and restarted, a
network stall, frames broken at the WebSocket level, fatal conditions, a full
server, a stuck callback and a killed recording process.

Servers are real: the simulator CLI as a child process (killed with SIGKILL), the
in-process :class:`~roma_notebook.sim.simulator.Simulator`, or a scripted websockets
server on port 0. Each test records what it injected and what was lost in
``test-output/faults.md`` (see ``fault_report``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pandas as pd
import pytest

import roma_notebook as rn
from roma_notebook.core import protocol as P
from roma_notebook.sim.market import World
from roma_notebook.sim.simulator import Simulator

from fault_report import record
from scripted_server import ScriptedServer, closed_port, wait_stream_done, wait_until
from sim_process import SimProcess

REPO = Path(__file__).resolve().parent.parent
AGENTS = ("deepseek-chat-v3.1", "qwen3-max")
START = "2026-01-01T00:00:00Z"


def good(i: int) -> str:
    return P.encode(P.AccountUpdate(None, 1000.0 + i, 900.0, float(i), 10.0))


def lost_rows(sent: list[float], stream) -> int:
    """Good frames a scripted server sent (by total_balance) with no row in the
    stream's account table: the "rows lost" of the fault report, counted."""
    return len(set(sent) - set(stream.account["total_balance"].tolist()))


@pytest.fixture
def background_errors():
    """Exceptions that escaped to any thread, or that asyncio logged (e.g. a task
    exception never retrieved) on the library's loop: a test asserts it stays empty."""
    seen: list[str] = []
    old_hook = threading.excepthook

    def hook(args):
        seen.append(f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: {args.exc_value}")

    class Catch(logging.Handler):
        def emit(self, record):
            # the library's loop logs what asyncio would print (at DEBUG, quietly)
            if record.levelno >= logging.ERROR or record.name == "roma_notebook.loop":
                seen.append(f"{record.name}: {record.getMessage()}")

    handler = Catch(level=logging.DEBUG)
    loop_log = logging.getLogger("roma_notebook.loop")
    loop_level = loop_log.level
    loop_log.setLevel(logging.DEBUG)
    for name in ("asyncio", "roma_notebook.loop"):
        logging.getLogger(name).addHandler(handler)
    threading.excepthook = hook
    try:
        yield seen
    finally:
        threading.excepthook = old_hook
        for name in ("asyncio", "roma_notebook.loop"):
            logging.getLogger(name).removeHandler(handler)
        loop_log.setLevel(loop_level)


def events(stream) -> list[str]:
    return stream.connections["event"].tolist()


# ---------------------------------------------------------------- server killed and restarted


def max_cycle(stream) -> int:
    c = stream.cycles["cycle"]
    return int(c.max()) if len(c) else 0


def reference(max_cycles: dict[str, int], seed: int):
    """What the simulator computes, offline: {agent: {cycle: Decision}}, {agent: {order_id: TradeExecuted}}."""
    w = World(AGENTS, seed=seed, start_time=START)
    decisions: dict[str, dict[int, P.Decision]] = {a: {} for a in AGENTS}
    trades: dict[str, dict[str, P.TradeExecuted]] = {a: {} for a in AGENTS}
    while any(w.agents[a].cycle <= max_cycles[a] for a in AGENTS):
        for a, ev in w.step(emit_marks=False):
            if isinstance(ev, P.Decision):
                decisions[a][ev.cycle] = ev
            elif isinstance(ev, P.TradeExecuted):
                trades[a][ev.order_id] = ev
    return decisions, trades


@pytest.mark.slow
def test_server_sigkilled_and_restarted_three_times_recovers_without_loss_or_duplicates(background_errors):
    seed, kills = 13, 3
    # a cycle every 0.1 s; the same seed and start time make a restarted simulator
    # send the same cycles and fills again, so the client must de-duplicate them
    args = ["--agents", ",".join(AGENTS), "--seed", str(seed), "--speed", "1800", "--start-time", START]
    sim = SimProcess(args)
    port = sim.port
    g = rn.connect(list(AGENTS), url=sim.url, reconnect_base=0.05, reconnect_cap=0.25)
    gaps = []
    try:
        g.wait_for("decision", count=3, timeout=30)
        for k in range(kills):
            # decisions and fills flowing; then the process dies without a word
            target = {a: max_cycle(g[a]) + 4 for a in AGENTS}
            wait_until(lambda: all(max_cycle(g[a]) >= target[a] for a in AGENTS), 30, f"cycles before kill {k}")
            before = {a: events(g[a]).count("disconnected") for a in AGENTS}
            connected = {a: events(g[a]).count("connected") for a in AGENTS}
            sim.kill()
            t_kill = time.monotonic()
            wait_until(lambda: all(events(g[a]).count("disconnected") > before[a] for a in AGENTS), 10,
                       "every stream notices the dead server")
            wait_until(lambda: all(st == "reconnecting" for st in g.state.values()), 10, "reconnecting")
            sim = SimProcess(args, port=port)
            wait_until(lambda: all(events(g[a]).count("connected") > connected[a] for a in AGENTS), 20,
                       "every stream reconnects to the restarted server")
            gaps.append(time.monotonic() - t_kill)
        # past the restarted server's replay: new cycles again, after the last gap too
        target = {a: max_cycle(g[a]) + 4 for a in AGENTS}
        wait_until(lambda: all(max_cycle(g[a]) >= target[a] for a in AGENTS), 30, "cycles after the last restart")
        assert all(st == "live" for st in g.state.values()), g.state
    finally:
        g.stop()
        sim.stop()

    frames = sum(int(s.stats().iloc[0]["messages"]) for s in g)
    lost = 0
    cycles, decisions, trades = g.cycles, g.decisions, g.trades
    ref_dec, ref_trades = reference({a: int(cycles.loc[cycles.agent_id == a, "cycle"].max()) for a in AGENTS}, seed)
    for a in AGENTS:
        ev = events(g[a])
        # each gap is in the connection log: disconnected, reconnecting..., connected
        assert ev.count("disconnected") >= kills and ev.count("connected") == kills + 1, ev
        assert ev.count("reconnecting") >= kills and "failed" not in ev, ev
        for i, e in enumerate(ev):
            if e == "disconnected":
                assert ev[i + 1] == "reconnecting", ev
        cyc = cycles[cycles.agent_id == a]
        dec = decisions[decisions.agent_id == a]
        tr = trades[trades.agent_id == a]
        # nothing twice: the replayed cycles and fills were refused as duplicates
        assert cyc["cycle"].is_unique and tr["order_id"].is_unique
        assert g[a].stats().iloc[0]["duplicates"] > 0, "the restarted server replayed; duplicates must be counted"
        # every cycle the simulator computed between the first and the last one seen is
        # there, complete and equal to the reference (nothing lost in the gaps)
        lo, hi = int(cyc["cycle"].min()), int(cyc["cycle"].max())
        want = {c: d for c, d in ref_dec[a].items() if lo <= c <= hi}
        got = set(cyc["cycle"].astype(int))
        lost += len(set(want) - got)
        assert got == set(want), sorted(set(want) ^ got)
        per_cycle = dec.groupby(dec["cycle"].astype(int)).size()
        for c, d in want.items():
            row = cyc[cyc["cycle"] == c].iloc[0]
            assert row["n_decisions"] == len(d.decisions) == per_cycle.get(c, 0), c
            assert row["timestamp"] == pd.Timestamp(d.timestamp, unit="ns", tz="UTC")
            assert row["ai_reasoning"] == d.ai_reasoning
            rows = dec[dec["cycle"] == c]
            assert rows["action"].tolist() == [x.action for x in d.decisions]
        t_lo, t_hi = cyc["timestamp"].min().value, cyc["timestamp"].max().value
        want_tr = {o: t for o, t in ref_trades[a].items() if t_lo <= t.timestamp <= t_hi}
        got_tr = tr.set_index("order_id")
        missing = set(want_tr) - set(got_tr.index)
        lost += len(missing)
        assert not missing, sorted(missing)
        assert len(want_tr) > 0, "fills must flow during the test"
        for o, t in want_tr.items():
            assert got_tr.loc[o, "price"] == pytest.approx(t.price) and got_tr.loc[o, "side"] == t.side
    assert not background_errors, background_errors
    # a SIGKILLed server's own count dies with it: frames are the client's count, and
    # lost rows are cycles and fills of the seeded reference run missing in the tables
    record("server SIGKILL + restart", f"{kills} × SIGKILL, restart on the same port "
           f"(gaps {min(gaps):.1f}–{max(gaps):.1f} s)", f"{frames} received",
           f"{lost} (cycles + fills vs. the seeded reference)")


# ---------------------------------------------------------------- network stall


def test_network_stall_is_detected_by_keepalive_and_reconnects(background_errors):
    interval = timeout = 0.3
    stalled_ns: list[int] = []
    sent: list[float] = []  # total_balance of every good frame the server sent

    async def handler(ws):
        first = not stalled_ns
        base = 0 if first else 100
        for i in range(5):
            await ws.send(good(base + i))
            sent.append(1000.0 + base + i)
        if first:
            await asyncio.sleep(0.2)
            # the peer goes silent without closing: it neither reads (so no pong
            # comes back) nor writes
            ws.transport.pause_reading()
            stalled_ns.append(time.time_ns())
            while srv.connections < 2:
                await asyncio.sleep(0.05)
            ws.transport.resume_reading()  # only so that this handler can end
            await ws.wait_closed()
        else:
            await ws.wait_closed()

    srv = ScriptedServer(handler)
    with srv:
        s = rn.connect("a1", url=srv.url, ping_interval=interval, ping_timeout=timeout, reconnect_base=0.05)
        try:
            s.wait_for("account_update", count=10, timeout=20)
            conns = s.connections
            gone = conns[conns.event == "disconnected"].iloc[0]
            detected = (gone["received_at"].value - stalled_ns[0]) / 1e9
            assert "keepalive" in gone["detail"], gone["detail"]
            # detection within ping_interval + ping_timeout plus scheduling slack: a
            # client waiting out websockets' 10 s close timeout would fail this
            assert detected <= 4 * (interval + timeout), detected
            assert events(s)[:4] == ["connected", "disconnected", "reconnecting", "connected"]
            assert s.state == "live" and srv.connections == 2
            acc = s.account["total_balance"].tolist()
            assert acc == [1000.0 + i for i in range(5)] + [1100.0 + i for i in range(5)]
        finally:
            s.stop()
    assert not background_errors, background_errors
    record("network stall", f"server stops reading and writing; detected in {detected:.2f} s "
           f"(ping {interval}+{timeout} s)", len(sent), lost_rows(sent, s))


# ---------------------------------------------------------------- frames broken at the WebSocket level


def raw_frame(first: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """A server frame by hand: ``first`` is the FIN/RSV/opcode byte."""
    n = len(payload)
    if n < 126:
        head = bytes([first, (0x80 if mask else 0) | n])
    else:
        head = bytes([first, (0x80 if mask else 0) | 126]) + n.to_bytes(2, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


# name, frame, the close code the client must send (websockets fails the connection)
BROKEN = [
    ("close reason not UTF-8", raw_frame(0x88, b"\x03\xe8\xff\xfe"), 1007),
    ("close 1008 with reason not UTF-8", raw_frame(0x88, b"\x03\xf0\xc3\x28"), 1007),
    ("close code 999", raw_frame(0x88, b"\x03\xe7"), 1002),
    ("close code 1005 on the wire", raw_frame(0x88, b"\x03\xed"), 1002),
    ("close payload of 1 byte", raw_frame(0x88, b"\x03"), 1002),
    ("text not UTF-8", raw_frame(0x81, b'{"type": "\xff\xfe"}'), 1007),
    ("RSV2 set (no extension uses it)", raw_frame(0xA1, b"{}"), 1002),
    ("RSV3 set on a ping", raw_frame(0x99, b""), 1002),
    ("reserved opcode 0x3", raw_frame(0x83, b"{}"), 1002),
    ("masked frame from server", raw_frame(0x81, b"{}", mask=b"\x01\x02\x03\x04"), 1002),
    ("fragmented ping", raw_frame(0x09, b""), 1002),
    ("ping payload over 125", raw_frame(0x89, b"p" * 126), 1002),
    ("continuation without start", raw_frame(0x80, b"{}"), 1002),
]


def test_frames_broken_at_the_websocket_level_are_counted_reconnects(background_errors):
    sent: list[float] = []
    broken_sent = [0]

    async def handler(ws):
        k = srv.connections - 1  # this connection's number
        try:
            await ws.send(good(k))
            sent.append(1000.0 + k)
            if k < len(BROKEN):
                await asyncio.sleep(0.02)
                ws.transport.write(BROKEN[k][1])  # past websockets' own checks
                broken_sent[0] += 1
            await ws.wait_closed()
        except Exception:
            pass  # the client may have gone first

    srv = ScriptedServer(handler).start()
    try:
        s = rn.connect("a1", url=srv.url, reconnect_base=0.02, reconnect_cap=0.1)
        try:
            # the calling thread keeps using the stream meanwhile: nothing may raise here
            while s.count("account_update") < len(BROKEN) + 1:
                s.wait_for("account_update", count=s.count("account_update") + 1, timeout=30)
                repr(s), s._repr_html_(), s.account, s.stats()
            conns = s.connections
            gone = conns[conns.event == "disconnected"]["detail"].tolist()
            assert len(gone) == len(BROKEN), gone
            for (name, _, code), detail in zip(BROKEN, gone):
                assert f"sent {code}" in detail, (name, detail)
            assert s.stats().iloc[0]["reconnects"] == len(BROKEN)
            assert s.state == "live" and s.errors.empty
            acc = s.account["total_balance"].tolist()
            assert acc == [1000.0 + i for i in range(len(BROKEN) + 1)]
        finally:
            s.stop()
    finally:
        srv.stop()
    assert not background_errors, background_errors
    record("protocol-level bad frames", f"{len(BROKEN)} classes (bad close codes/reasons, bad UTF-8, "
           "RSV bits, opcodes, masking, fragmentation)", len(sent) + broken_sent[0], lost_rows(sent, s))


def test_invalid_utf8_close_reason_is_a_counted_reconnect_never_a_dead_stream(background_errors):
    sent: list[float] = []
    closes_sent = [0]

    async def handler(ws):
        n = srv.connections
        try:
            await ws.send(good(n))
            sent.append(1000.0 + n)
            if n <= 3:
                await asyncio.sleep(0.02)
                ws.transport.write(raw_frame(0x88, b"\x03\xe8\xff\xfe"))  # 1000 + "\xff\xfe"
                closes_sent[0] += 1
            await ws.wait_closed()
        except Exception:
            pass

    srv = ScriptedServer(handler).start()
    try:
        s = rn.connect("a1", url=srv.url, reconnect_base=0.02, reconnect_cap=0.1)
        try:
            s.wait_for("account_update", count=4, timeout=20)
            wait_until(lambda: s.state == "live" and srv.connections == 4, 10, "live on the 4th connection")
            st = s.stats().loc["a1"]
            assert st["reconnects"] == 3 and st["errors"] == 0
            details = s.connections.query("event == 'disconnected'")["detail"]
            assert details.str.contains("1007").all(), details.tolist()
            assert s.account["total_balance"].tolist() == [1001.0, 1002.0, 1003.0, 1004.0]
        finally:
            s.stop()
    finally:
        srv.stop()
    assert not background_errors, background_errors
    record("invalid UTF-8 close reason", f"{closes_sent[0]} close frames 1000 + b'\\xff\\xfe'",
           len(sent) + closes_sent[0], lost_rows(sent, s))


# ---------------------------------------------------------------- callbacks


def test_callback_blocked_for_seconds_overflows_its_queue_but_not_ingest(background_errors):
    n = 12_000
    go, release = threading.Event(), threading.Event()
    blocked: list[float] = []
    got: list[float] = []

    sent: list[float] = []

    async def handler(ws):
        while not go.is_set():
            await asyncio.sleep(0.01)
        for i in range(n):
            await ws.send(good(i))
            sent.append(1000.0 + i)
        await ws.wait_closed()

    def stuck(ev):
        if not blocked:
            t0 = time.monotonic()
            release.wait(30)
            blocked.append(time.monotonic() - t0)
        got.append(ev.total_balance)

    with ScriptedServer(handler) as srv:
        s = rn.connect("a1", url=srv.url)
        try:
            s.on("account_update", stuck)
            go.set()
            s.wait_for("account_update", count=n, timeout=60)
            assert len(s.account) == n  # every row, while the callback is still stuck
            wait_until(lambda: s.stats().iloc[0]["callback_drops"] > 0, 10, "counted callback drops")
            time.sleep(1.0)  # the callback stays blocked for over a second with the queue full
            release.set()
            drops = s.stats().iloc[0]["callback_drops"]
            wait_until(lambda: len(got) == n - drops, 20, "the callback to catch up")
            err = s.errors
            assert (err["kind"] == "callback").sum() >= 1
            assert err["detail"].str.contains("behind").any() and err["detail"].str.contains("dropped").any()
            assert got[:2] == [1000.0, 1001.0]  # in order, from the first event
            assert drops == n - len(got) and 0 < drops < n
            assert s.state == "live"
        finally:
            release.set()
            s.stop()
    assert blocked and blocked[0] >= 1.0
    assert not background_errors, background_errors
    record("blocking callback, queue overflow", f"callback blocked {blocked[0]:.1f} s; "
           f"{drops} callback calls dropped (counted, errors row)", len(sent), lost_rows(sent, s))


# ---------------------------------------------------------------- fatal conditions


FATAL = {
    # name: (exception, phrases the message must contain, retried?)
    "unknown agent": (rn.AgentNotFound, ["Agent not found: ghost", "check the agent id", "rn.agents"], False),
    "bad token": (rn.AuthenticationError, ["HTTP 401", "check the token"], False),
    "DNS failure": (rn.ConnectionFailed, ["no-such-host.invalid", "DNS lookup failed", "host name", "running"], True),
    "connection refused": (rn.ConnectionFailed, ["refused", "running", "port", "3 attempts"], True),
}


@pytest.mark.parametrize("case", list(FATAL))
def test_fatal_conditions_say_what_to_check_and_retry_a_bounded_number_of_times(case, background_errors):
    exc_type, phrases, retried = FATAL[case]
    retries = 2
    sim = None
    if case == "unknown agent":
        sim = Simulator(("gpt-5",), seed=1, speed=60).start()
        agent, url, token = "ghost", sim.url, None
    elif case == "bad token":
        sim = Simulator(("gpt-5",), seed=1, speed=60, token="the-right-one").start()
        agent, url, token = "gpt-5", sim.url, "a-wrong-one"
    elif case == "DNS failure":
        # .invalid never resolves (RFC 6761): no connection is made anywhere
        agent, url, token = "gpt-5", "ws://no-such-host.invalid:8000", None
    else:
        agent, url, token = "gpt-5", f"ws://127.0.0.1:{closed_port()}", None
    try:
        s = rn.connect(agent, url=url, token=token, connect_retries=retries, reconnect_base=0.01)
        t0 = time.monotonic()
        with pytest.raises(exc_type) as info:
            s.wait_for(timeout=30)
        took = time.monotonic() - t0
        msg = str(info.value)
        for phrase in phrases:
            assert phrase in msg, (phrase, msg)
        assert s.state == "failed" and s.last_error == msg
        wait_stream_done(s)  # the task has ended: a wrong retry would be in the rows by now
        ev = events(s)
        # every attempt after the first one is announced by a "reconnecting" row
        attempts = 1 + ev.count("reconnecting")
        assert ev.count("failed") == 1 and ev[-1] == "failed"
        if retried:
            # bounded: the first attempt and `retries` more, then a clear failure
            assert ev.count("disconnected") == retries + 1 and attempts == retries + 1, ev
        else:
            assert attempts == 1, ev
            if case == "bad token":
                assert sim.stats()["rejected"] == 1
        assert took < 10
        # raised again, the same way, on the next wait_for
        with pytest.raises(exc_type):
            s.wait_for(timeout=1)
        s.stop()
    finally:
        if sim is not None:
            sim.stop()
    assert not background_errors, background_errors
    if sim is not None:  # the server's own count of data frames, against the client's
        sent = sim.stats()["frames_sent"]
        frames, lost = sent, sent - s.stats().iloc[0]["messages"]
    else:
        frames, lost = "none (no server)", "not applicable"
    record(f"fatal: {case}", f"{attempts} attempt(s), {type(info.value).__name__} in {took:.2f} s", frames, lost)


# ---------------------------------------------------------------- a full server


def test_client_refused_with_429_keeps_retrying_and_gets_in_when_a_slot_frees(background_errors):
    agent = "gpt-5"
    with Simulator((agent,), seed=2, speed=600, max_connections_per_ip=2) as sim:
        a = rn.connect(agent, url=sim.url)
        b = rn.connect(agent, url=sim.url)
        a.wait_for("account_update", timeout=10)
        b.wait_for("account_update", timeout=10)
        c = rn.connect(agent, url=sim.url, connect_retries=1000, reconnect_base=0.05, reconnect_cap=0.2)
        try:
            wait_until(lambda: events(c).count("reconnecting") >= 3, 10, "refused attempts")
            details = c.connections.query("event == 'disconnected'")["detail"]
            assert details.str.contains("429").all(), details.tolist()
            assert c.state in ("reconnecting", "connecting") and c.count() == 0
            refused = sim.stats()["rejected"]
            assert refused >= 3
            a.stop()  # a slot frees up
            c.wait_for("account_update", count=2, timeout=15)
            assert c.state == "live" and "failed" not in events(c)
            b.wait_for("account_update", count=b.count("account_update") + 1, timeout=15)
        finally:
            for s in (a, b, c):
                s.stop()
    assert not background_errors, background_errors
    # the simulator counts frames over all three clients, and a stopped client leaves
    # frames in flight: what the late client lost is not measured here
    record("connection cap (HTTP 429)", f"{refused} handshakes refused, client retries until a slot frees",
           f"{c.stats().iloc[0]['messages']} received by the late client", "not measured")


# ---------------------------------------------------------------- recording killed mid-stream

_WRITER = r"""
import sys, time
import roma_notebook as rn
url, path = sys.argv[1], sys.argv[2]
g = rn.connect(["deepseek-chat-v3.1", "qwen3-max"], url=url, record_to=path)
while True:
    print(sum(s.stats().iloc[0]["messages"] for s in g), time.time_ns(), flush=True)
    time.sleep(0.05)
"""


def recorded_lines(path: Path) -> list[dict]:
    """Every complete JSON line of a (possibly unterminated) gzip recording."""
    raw = path.read_bytes()
    out = b""
    while raw:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(raw)
        except zlib.error:
            break
        raw = d.unused_data
    lines = []
    for line in out.split(b"\n"):
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass  # a torn last line
    return lines


@pytest.mark.slow
def test_recording_process_killed_mid_stream_loads_losing_at_most_the_last_second(tmp_path):
    path = tmp_path / "killed.jsonl.gz"
    with Simulator(AGENTS, seed=4, speed=3000) as sim:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, sim.url, str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            wait_until(lambda: lines and int(lines[-1].split()[0]) >= 50, 30, "the writer receiving frames")
            first = time.monotonic()
            # frames keep flowing for a while (over two flush periods), then kill -9
            wait_until(lambda: time.monotonic() - first > 2.5 and int(lines[-1].split()[0]) >= 300, 30,
                       "a few seconds of frames")
            received_before_kill = int(lines[-1].split()[0])
            kill_ns = time.time_ns()
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        reader.join(5)
        assert proc.returncode == -signal.SIGKILL
    rec = rn.load(path, progress=False)  # no exception
    # all the writer's tables, by receive time
    last = max(
        rec.frame(n)["received_at"].max() for n in ("account", "position_history", "cycles", "trades", "status")
        if len(rec.frame(n))
    )
    lost_s = (kill_ns - last.value) / 1e9
    assert 0 <= lost_s <= 2.0, lost_s
    frames = [x for x in recorded_lines(path) if "frame" in x]
    assert len(rec.account) > 0 and len(rec.cycles) > 0
    # a torn tail is at most one errors row
    assert len(rec.errors) <= 1, rec.errors.to_dict("records")
    # the loader got every complete line: its newest row is the file's newest frame
    assert last.value == max(x["t"] for x in frames)
    lost = max(0, received_before_kill - len(frames))
    record("recording writer SIGKILL", f"kill -9 of the recording process; last {lost_s:.2f} s missing",
           f"{received_before_kill} received by the writer", f"{lost} not in the file (flushed every ≤1 s)")
