"""Secrets and a simulator that is safe on a laptop.

- the token never shows: reprs, HTML reprs, log records of every logger at DEBUG
  (websockets included), exception texts, ``errors``/``connections`` rows,
  recordings, exports, the simulator's repr and its logs;
- the simulator binds 127.0.0.1 unless told otherwise;
- one client flooding it with pings and garbage does not slow the others, and a
  client that never reads its pongs cannot make them pile up.
"""

from __future__ import annotations

import gzip
import logging
import socket
import statistics
import struct
import threading
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

import roma_notebook as rn
from roma_notebook.sim.simulator import Simulator

from fault_report import record
from scripted_server import wait_until
from sim_process import SimProcess

AGENTS = ("deepseek-chat-v3.1", "qwen3-max")
# URL-special characters on purpose: the token travels percent-encoded
SECRET = "rn-SECRET-7f3a9c/+=&x"
# whatever the encoding (raw, %-quoted, form-quoted), this part survives
MARK = "SECRET-7f3a9c"


def leaks(text: str) -> bool:
    return any(f in text for f in (MARK, SECRET, quote(SECRET, safe=""), quote_plus(SECRET)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def all_logs():
    """Every log record of every logger, DEBUG and up, formatted with tracebacks."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    # every logger of ours and of websockets, including child loggers other code
    # (the CLI, run in-process by other tests) may have raised to WARNING
    names = {"", "roma_notebook", "websockets", "asyncio", "roma_notebook.simulator.websockets",
             "roma_notebook.websockets"}
    names |= {n for n in logging.Logger.manager.loggerDict if n.startswith(("roma_notebook", "websockets"))}
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        for n, lv in levels.items():
            logging.getLogger(n).setLevel(lv)


def test_token_never_appears_in_reprs_logs_errors_tables_recordings_or_exports(tmp_path, all_logs):
    shown: dict[str, str] = {}  # where -> text
    rec_gz, rec_plain = tmp_path / "group.jsonl.gz", tmp_path / "one.jsonl"
    with Simulator(AGENTS, seed=3, speed=600, token=SECRET, malformed_every=5) as sim:
        shown["Simulator repr"] = repr(sim)
        g = rn.connect(list(AGENTS), url=sim.url, token=SECRET, record_to=rec_gz, backfill=True)
        s = rn.connect(AGENTS[0], url=f"{sim.url}/ws/agents/{AGENTS[0]}", token=SECRET, record_to=rec_plain)
        try:
            g.wait_for("decision", count=2, timeout=30)
            s.wait_for("decision", count=1, timeout=30)
            wait_until(lambda: len(g.errors) >= 2 and len(s.errors) >= 1, 15, "errors rows from malformed frames")
            # a gap: disconnected/reconnecting/connected rows, also in the recordings
            sim.disconnect_all()
            wait_until(lambda: all(st.connections["event"].tolist().count("connected") >= 2 for st in (s, *g)),
                       15, "reconnected")
            assert sim.stats()["connections"] >= 6  # the token was accepted: it is really in use
            for name, obj in (("group", g), ("stream", s), *((a, g[a]) for a in AGENTS)):
                shown[f"{name} repr"] = repr(obj)
                shown[f"{name} _repr_html_"] = obj._repr_html_()
                shown[f"{name} stats"] = str(obj.stats())
            for name in ("errors", "connections"):
                shown[f"group {name} rows"] = getattr(g, name).to_csv()
                shown[f"stream {name} rows"] = getattr(s, name).to_csv()
            shown["stream url"] = s.url
            shown["agents()"] = rn.agents(sim.http_url, token=SECRET).to_csv()
            export = g.to_parquet(tmp_path / "export")
            # failures, each with the token in hand
            failures = {
                "AuthenticationError": rn.connect(AGENTS[0], url=sim.url, token=SECRET + "-wrong",
                                                  reconnect_base=0.01),
                "ConnectionFailed (refused)": rn.connect(AGENTS[0], url=f"ws://127.0.0.1:{free_port()}",
                                                         token=SECRET, connect_retries=1, reconnect_base=0.01),
                "ConnectionFailed (DNS)": rn.connect(AGENTS[0], url="ws://no-such-host.invalid:8000",
                                                     token=SECRET, connect_retries=1, reconnect_base=0.01),
            }
            for name, bad in failures.items():
                with pytest.raises(rn.ConnectionFailed) as info:
                    bad.wait_for(timeout=20)
                shown[name] = f"{info.value!s} {info.value!r} {bad.last_error} {bad!r} {bad._repr_html_()}"
                shown[f"{name} connections rows"] = bad.connections.to_csv()
                bad.stop()
            with pytest.raises(rn.AuthenticationError) as info:
                rn.agents(sim.http_url, token=SECRET + "-wrong")
            shown["REST AuthenticationError"] = f"{info.value!s} {info.value!r}"
        finally:
            g.stop()
            s.stop()
    # recordings: every byte, decompressed
    shown["group recording"] = gzip.decompress(rec_gz.read_bytes()).decode()
    shown["stream recording"] = rec_plain.read_text()
    assert shown["group recording"].count('"connection": "connected"') >= 4
    loaded = rn.load(rec_gz, progress=False)
    shown["loaded recording"] = f"{loaded!r} {loaded.url} {loaded.connections.to_csv()} {loaded.errors.to_csv()}"
    shown["export files"] = "".join(p.read_bytes().decode("latin-1") for p in Path(export).rglob("*") if p.is_file())
    fmt = logging.Formatter("%(name)s %(message)s")
    for i, r in enumerate(all_logs):
        shown[f"log {r.name} #{i}"] = fmt.format(r) + repr(r.args)

    leaked = [where for where, text in shown.items() if leaks(text)]
    assert not leaked, {w: shown[w][:300] for w in leaked}
    # the capture really saw websockets' DEBUG request lines, with the token redacted
    lines = [fmt.format(r) for r in all_logs]
    assert any(r.name == "roma_notebook.websockets" and r.levelno == logging.DEBUG for r in all_logs)
    assert any("GET /ws/agents/" in m and "token=***" in m for m in lines)
    assert any(m.startswith("roma_notebook.simulator.websockets") and "token=***" in m for m in lines)


def test_cli_simulator_logs_at_debug_never_show_the_token():
    sim = SimProcess(["--agents", AGENTS[0], "--speed", "600", "--token", SECRET, "--log-level", "DEBUG"])
    try:
        s = rn.connect(AGENTS[0], url=sim.url, token=SECRET)
        s.wait_for("account_update", timeout=15)
        s.stop()
        bad = rn.connect(AGENTS[0], url=sim.url, token="wrong-" + SECRET, reconnect_base=0.01)
        with pytest.raises(rn.AuthenticationError):
            bad.wait_for(timeout=15)
        bad.stop()
        rn.agents(sim.url, token=SECRET)  # REST: ?token= and Authorization: Bearer
        wait_until(lambda: "refused: bad or missing token" in sim.stderr, 10, "the 401 log line")
    finally:
        rc = sim.stop()
    out = "".join(sim.out) + sim.stderr
    assert rc == 0
    assert "connected" in sim.stderr and "DEBUG" in sim.stderr
    assert not leaks(out), [line for line in out.splitlines() if leaks(line)]


# ---------------------------------------------------------------- binding


def listening_addresses(port: int) -> set[str]:
    """Local addresses in LISTEN state on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:
                if len(addr) == 8:
                    found.add(socket.inet_ntoa(struct.pack("<I", int(addr, 16))))
                else:
                    found.add(addr)
    return found


def test_binds_loopback_by_default_and_warns_only_when_exposed_without_token():
    with Simulator(AGENTS[:1]) as sim:
        assert listening_addresses(sim.port) == {"127.0.0.1"}
    cli = SimProcess(["--agents", AGENTS[0]])
    try:
        assert listening_addresses(cli.port) == {"127.0.0.1"}
    finally:
        assert cli.stop() == 0
    assert "without --token" not in cli.stderr
    # exposed but with a token: no warning; (without one: see test_simulator)
    exposed = SimProcess(["--agents", AGENTS[0], "--host", "0.0.0.0", "--token", SECRET])
    try:
        assert listening_addresses(exposed.port) == {"0.0.0.0"}
    finally:
        assert exposed.stop() == 0
    assert "without --token" not in exposed.stderr and not leaks("".join(exposed.out) + exposed.stderr)


# ---------------------------------------------------------------- one hostile client


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (what a browser or websockets would send)."""
    mask = b"\x5a\x17\xc3\x08"
    n = len(payload)
    head = bytes([0x80 | opcode])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def raw_client(port: int, path: str) -> socket.socket:
    """A hand-made WebSocket handshake on a socket with a tiny receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(1)
        if not b:
            raise ConnectionError("closed during the handshake")
        buf += b
    if not buf.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(buf.split(b"\r\n")[0].decode())
    return sock


class Flooder:
    """Pings, JSON pings, garbage text and binary frames, as fast as the socket
    takes them, never reading; reconnects whenever it is thrown out. (All frames
    are valid WebSocket frames: a broken or oversized one would only get it closed
    at once, see test_simulator, and end the flood.)"""

    CHUNK = b"".join(
        [client_frame(0x9, b"p" * 8), client_frame(0x1, b'{"type": "ping"}'),
         client_frame(0x1, b"garbage \x00 not json" * 4), client_frame(0x2, b"\x00\xff" * 32)] * 500
    )
    FRAMES_PER_CHUNK = 2000

    def __init__(self, port: int, path: str):
        self.port, self.path = port, path
        self.frames = 0
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Flooder":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sock = raw_client(self.port, self.path)
            except OSError:
                time.sleep(0.01)
                continue
            self.connections += 1
            sock.settimeout(0.5)
            try:
                while not self._stop.is_set():
                    try:
                        sock.sendall(self.CHUNK)
                        self.frames += self.FRAMES_PER_CHUNK
                    except socket.timeout:
                        pass  # the server stopped reading us: keep pushing
            except OSError:
                pass  # thrown out: come back
            finally:
                sock.close()


@pytest.mark.slow
def test_ping_flood_and_garbage_from_one_client_do_not_slow_the_others():
    n = 20_000
    # every connection first gets n account updates as fast as the server can send
    sim = SimProcess(["--agents", "hostile-target,measured", "--speed", "60", "--firehose", str(n)])
    try:
        received = [0]  # frames the measured clients received, counted by them

        def rate() -> float:
            s = rn.connect("measured", url=sim.url)
            try:
                t0 = time.perf_counter()
                s.wait_for("account_update", count=n, timeout=60)
                return n / (time.perf_counter() - t0)
            finally:
                s.stop()
                received[0] += s.stats().iloc[0]["messages"]

        rate()  # warm-up: imports, first frames
        rss0 = sim.rss_kb()
        base, flooded = [], []
        frames = conns = 0
        for _ in range(3):  # interleaved: machine noise hits both sides alike
            base.append(rate())
            with Flooder(sim.port, "/ws/agents/hostile-target") as fl:
                wait_until(lambda: fl.frames >= 3 * Flooder.FRAMES_PER_CHUNK, 10, "the flood under way")
                flooded.append(rate())
                frames += fl.frames
                conns += fl.connections
        rss1 = sim.rss_kb()
        ratio = statistics.median(flooded) / statistics.median(base)
        assert ratio >= 0.5, (base, flooded)
        # the flood does not make the simulator hoard memory (pongs, frames)
        assert rss1 - rss0 < 100_000, (rss0, rss1)
        wait_until(lambda: "dropping client" in sim.stderr, 10, "the flooder thrown out")
        # and it still serves everyone normally afterwards
        s = rn.connect("hostile-target", url=sim.url)
        s.wait_for("account_update", count=n, timeout=60)
        s.stop()
    finally:
        assert sim.stop() == 0
    assert "sent too much data (close 1008)" in sim.stderr
    # Each measured client stops itself while the firehose may still be sending, so the
    # server's count and the client's differ by frames in flight: loss is not measured.
    record("ping flood + garbage (other client)",
           f"{conns} flooding connections; other client at {ratio:.2f}× its unflooded rate",
           f"{frames} flood frames sent by the flooders; {received[0]} received by the measured clients",
           "not measured")


def test_pings_from_a_client_that_never_reads_do_not_pile_up_pongs():
    # A slow pinger (under the flood limit) that never reads: its pongs back up,
    # and past max_backlog the client is dropped instead of queueing forever.
    # speed 0.01: no broadcast frame for minutes, so only the pongs can fill the queue
    with Simulator(("gpt-5",), speed=0.01, max_backlog=50) as sim:
        sock = raw_client(sim.port, "/ws/agents/gpt-5")
        try:
            ping = client_frame(0x1, b'{"type": "ping"}')
            t0 = time.monotonic()
            while sim.stats()["slow_clients_dropped"] == 0:
                assert time.monotonic() - t0 < 30, "pongs queue up without bound"
                try:
                    sock.sendall(ping * 100)  # ~2.2 kB per 0.2 s: well under the limit
                except OSError:
                    break  # dropped (the stats call may lag the close)
                time.sleep(0.2)
            wait_until(lambda: sim.stats()["slow_clients_dropped"] == 1, 10, "the slow pinger dropped")
            assert sim.stats()["flooding_clients_dropped"] == 0
            wait_until(lambda: sim.client_count() == 0, 10, "the slow pinger gone")
        finally:
            sock.close()
