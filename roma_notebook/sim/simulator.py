"""A seeded ROMA-01 server for notebooks, tests and benchmarks.

:class:`Simulator` runs :class:`roma_notebook.sim.market.World` on its own daemon
thread and asyncio loop and serves it with the ``websockets`` library only:
``process_request`` answers the REST GETs of ROMA-01 (``/api/agents``,
``/api/agents/{id}/account``, ...) and lets ``/ws/agents/{id}`` upgrade. Every
frame is serialised by :mod:`roma_notebook.core.protocol`, so the server and the
client agree by construction.

This module is the server (connections, tokens, byte budgets, dialect
encoding, broken and error frames, recording of sent frames); what it serves
comes from one :class:`~roma_notebook.sim.sim_sources.FrameSource`: the seeded
market (:class:`~roma_notebook.sim.sim_sources.MarketSource`) or a recording
(:class:`~roma_notebook.sim.sim_sources.ReplaySource`).

What a ``/ws/agents/{id}`` client receives (``dialect="documented"``):

1. at once: the agent's current ``account_update``, ``position_update`` and
   ``agent_status``;
2. then, as simulated time passes: one ``decision`` per cycle (default every 3
   simulated minutes), a ``trade_executed`` per fill, ``position_update`` +
   ``account_update`` after fills and on mark-price moves (every tick of
   ``tick_seconds`` = 5 simulated s, thinned out so there are at most about 4
   per real second), and ``agent_status`` when the agent starts, completes or
   fails a cycle, and stops.

``dialect="roma-backend"`` instead sends what the v1.1 FastAPI backend sends:
one snapshot (``protocol.encode_snapshot``) on connect and every
``snapshot_interval`` real seconds, timestamped with ``loop.time()``.
``dialect="roma-current"`` sends what today's backend sends: the same snapshot
typed ``update``, each followed by a ``keepalive`` (status); with
``error_every=N`` every Nth iteration sends an ``error`` frame (an exchange
outage quoting a signed URL, as the real one does) instead of the update.

REST in ``dialect="roma-current"`` is today's backend's (docs/roma01.md):
``/api/agents/{id}/insights`` and ``/api/insights/global`` in the
``{"status": "success", "data": {"insights": [...]}}`` envelope,
``/api/agents/{id}/analytics``, ``/account`` as of the start of the last cycle
(with gross/adjusted/net_deposits keys), ``equity-history?limit=N`` giving the
OLDEST N points, ``trades`` newest first with P&L x leverage, and ``null`` for
empty decision/position lists. The other dialects answer 404 on the new paths.
``store=PATH`` keeps PATH as that backend's SQLite store (see
:mod:`roma_notebook.sim.store_writer`), written every ``store_interval`` s and at stop.

In both real-backend dialects the server, like the real handler under uvicorn,
never reads application messages: the first data frame a client sends makes it
stop reading that connection for good, so protocol pings go unanswered and its
own keep-alive ping (every 20 s) closes the connection with 1011 "keepalive
ping timeout" about 20-40 s later (see docs/roma01.md).

Values are deterministic: the world advances in fixed simulated ticks and its
random numbers come from seeded generators, so the same ``seed``, ``agents``,
``cycle_minutes`` and ``speed`` give the same frames (timestamps aside; also
those with a fixed ``start_time``) whoever connects and however loaded the
host is. Only *when* a frame goes out depends on the wall clock.

Test knobs: ``drop_every`` (close every client with 1012 every N real
seconds), ``malformed_every`` (after every N frames, one broken frame,
rotating through :data:`MALFORMED_KINDS`), ``firehose`` (N ``account_update``
frames as fast as possible on connect), :meth:`Simulator.sent_frames`,
:meth:`Simulator.disconnect_all`, :meth:`Simulator.set_running`.

Replay: ``Simulator(replay="session.jsonl.gz", speed=10)`` serves a recording
(see :mod:`roma_notebook.sim.replay`) instead of the simulated market. The agents
are the recording's; their frames go out verbatim (bad frames included) on one
shared timeline that starts when the simulator starts (or at :meth:`Simulator.play`
with ``paused=True``), spaced by the recorded receive-time gaps divided by
``speed`` and capped at ``max_gap`` real seconds. A client connecting later
first gets the latest account, positions and status frames played so far.
``loop=True`` starts over after a 1 s pause at the end; otherwise the server
stays up, idle. Tokens, connection caps, pings, ``drop_every``,
:meth:`Simulator.sent_frames` work as live. REST: ``/``, ``/health``,
``/api/agents`` (``is_running`` while the agent has frames left,
``cycle_count`` = valid decisions played), ``/api/agents/{id}``, ``/account``
and ``/positions`` (from the latest frames played; 404 before the first);
``/performance``, ``/decisions``, ``/equity-history``, ``/trades`` and
``/api/market/prices`` answer 404 ``{"detail": "not available in replay"}``.

Example:
    >>> import json, urllib.request
    >>> with Simulator(["gpt-5"], seed=1, speed=600) as sim:
    ...     body = urllib.request.urlopen(sim.http_url + "/api/agents").read()
    >>> json.loads(body)[0]["id"]
    'gpt-5'
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import hmac
import http
import inspect
import json
import logging
import math
import threading
import time
from collections import defaultdict, deque
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import DATA_OPCODES, CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

from ..core import protocol
from .market import World
from .replay import Replay, read_replay
from .sim_sources import FrameSource, Item, MarketSource, ReplaySource, replay_agents
from ..core.times import to_ns, zone
from ..core.urls import RedactingLogger, redact

__all__ = ["Simulator", "DIALECTS", "MALFORMED_KINDS"]

log = logging.getLogger("roma_notebook.simulator")

DIALECTS = protocol.DIALECTS

#: What ``malformed_every`` sends, in rotation; the names are the
#: :class:`~roma_notebook.core.errors.ProtocolError` kinds a client should report.
MALFORMED_KINDS = ("not_json", "bad_field", "unknown_type", "not_object")

# Frames sent back to back before yielding to the loop, so one fast client
# cannot starve the world or the other clients.
_SEND_BATCH = 256
_DEFAULT_AGENTS = ("deepseek-chat-v3.1", "qwen3-max")

# What one client may send. A ROMA-01 client sends a ping now and then; a
# client sending far more (a ping flood, garbage) would make the loop parse and
# answer it at the expense of everyone else, so it is cut off (close 1008).
_CLIENT_BYTES_PER_S = 16 * 1024
_CLIENT_BURST = 64 * 1024
# Bytes waiting to go to a client that does not read (websockets answers pings
# by itself, past the send loop's flow control): beyond this it is cut off.
_MAX_UNREAD = 2**20

T = TypeVar("T")


class _GuardedConnection(ServerConnection):
    """A server connection that cuts off a client sending more than its share.

    A token bucket (``_CLIENT_BURST`` bytes, refilled at ``_CLIENT_BYTES_PER_S``)
    is charged before websockets parses anything, so a flood costs the loop one
    comparison per read once the bucket is empty, not a parse and a pong per frame.
    """

    def __init__(
        self,
        *args: Any,
        on_cut: Callable[["_GuardedConnection", str], None] | None = None,
        on_data: Callable[["_GuardedConnection"], None] | None = None,
        **kw: Any,
    ):
        super().__init__(*args, **kw)
        # real-backend dialects: stop reading at the first data frame (see below)
        self._on_data = on_data
        self._allowance = float(_CLIENT_BURST)
        self._allowance_at = self.loop.time()
        self._cut = False
        self._on_cut = on_cut

    def data_received(self, data: bytes) -> None:
        if self._cut:
            return  # discard: the connection is being torn down
        now = self.loop.time()
        self._allowance = min(
            float(_CLIENT_BURST), self._allowance + (now - self._allowance_at) * _CLIENT_BYTES_PER_S
        )
        self._allowance_at = now
        self._allowance -= len(data)
        if self._allowance < 0:
            self._cut_off("sent too much data")
            return
        super().data_received(data)
        if self.transport.get_write_buffer_size() > _MAX_UNREAD:
            self._cut_off("does not read")

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        if self._on_data is not None and getattr(event, "opcode", None) in DATA_OPCODES:
            # The real handler never reads; under uvicorn the first data frame a
            # client sends stops reading for good: its pongs and close frame are
            # never seen and the keep-alive ping closes it 1011.
            self.transport.pause_reading()
            on_data, self._on_data = self._on_data, None
            on_data(self)

    def _cut_off(self, why: str) -> None:
        self._cut = True
        transport = self.transport
        transport.pause_reading()
        if self._on_cut is not None:
            self._on_cut(self, why)
        if self.protocol.state is State.OPEN and transport.get_write_buffer_size() < _MAX_UNREAD:
            # Say why (close 1008), but do not wait long for a client that
            # may not read its side of the closing handshake.
            self.protocol.fail(CloseCode.POLICY_VIOLATION, "Too much data from client")
            self.send_data()
            self.loop.call_later(1.0, transport.abort)
        else:
            transport.abort()


class _Client:
    """One WebSocket client: a bounded outbox drained by its own sender task."""

    __slots__ = (
        "ws", "agent_id", "peer", "outbox", "wake", "dead", "sent", "opened",
        "firehosing", "progress_at", "grace",
    )

    def __init__(self, ws: ServerConnection, agent_id: str, peer: str):
        self.ws = ws
        self.agent_id = agent_id
        self.peer = peer
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.dead = False
        self.sent = 0
        self.opened = time.monotonic()
        self.firehosing = False
        self.progress_at = self.opened
        # frames queued during the firehose, not counted against max_backlog
        self.grace = 0


class Simulator:
    """A ROMA-01 backend simulator on a background thread.

    Args:
        agents: agent ids; the six default model names get their own styles,
            other names a style by stable hash. A single string is one agent.
            Default: ``deepseek-chat-v3.1`` and ``qwen3-max``; with ``replay``,
            every agent of the recording (a list serves only those).
        seed: seeds the market and the agents.
        speed: simulated seconds per real second (60 = a 3-minute cycle every
            3 s); with ``replay``, recording seconds per real second.
        host: interface to bind; ``127.0.0.1`` by default. Binding elsewhere
            without a ``token`` exposes the simulator to the network.
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        token: if set, WebSocket handshakes and REST calls (except ``/`` and
            ``/health``) need ``?token=...`` or ``Authorization: Bearer ...``;
            otherwise HTTP 401.
        dialect: ``"documented"`` (typed messages), ``"roma-backend"``
            (the v1.1 backend's untyped 5-second snapshots) or ``"roma-current"``
            (today's ``update``/``keepalive``/``error`` frames).
        cycle_minutes: simulated minutes between decision cycles.
        drop_every: close every client connection with code 1012 every this
            many real seconds.
        malformed_every: after every this many frames to an agent's clients,
            send one broken frame (see :data:`MALFORMED_KINDS`).
        firehose: on connect, send this many ``account_update`` frames (a
            snapshot each with ``roma-backend``) as fast as possible, then go
            on normally. For benchmarks.
        max_connections_per_ip: further WebSocket handshakes from the same
            address get HTTP 429. Independently, a client sending more than
            ~16 KiB/s (64 KiB bursts), such as a ping flood or garbage, or not
            reading what it asked for, is closed with 1008 so that it cannot
            slow the other clients down.
        snapshot_interval: real seconds between snapshots (``roma-backend``,
            ``roma-current``).
        error_every: ``roma-current`` only: every this many iterations, an
            ``error`` frame instead of the ``update``.
        clock: ``"simulated"`` stamps frames with simulated time (starting at
            ``start_time``, default now, running ``speed`` times faster than the
            wall clock); ``"wall"`` stamps them with the wall clock when sent.
            REST bodies (decision logs, equity history, trades) always use
            simulated time, written zone-less like ROMA-01's logs.
        start_time: simulated start (datetime, ISO text, epoch seconds or ns);
            default: now, to the second.
        tick_seconds: simulated seconds per market tick.
        mark_interval: simulated seconds between mark-price updates (default
            one tick), raised automatically to keep at most ~4 per real second.
        initial_balance: each agent's starting wallet in USDT.
        volatility_scale: multiplies market volatility (2 = a livelier demo).
        error_rate: per-cycle probability of a simulated LLM failure.
        history: frames kept per agent for :meth:`sent_frames`.
        max_backlog: frames queued for one client before it is dropped as
            hopelessly behind (close code 1013).
        stall_timeout: during its firehose a client may queue more than
            ``max_backlog`` frames while the firehose moves; a firehose stalled
            this many real seconds gets the client dropped.
        compression: ``None`` (default, fastest) or ``"deflate"``.
        replay: a recording (path of a ``.jsonl``/``.jsonl.gz`` file, or a
            :class:`~roma_notebook.sim.replay.Replay`) to serve instead of the
            simulated market (see the module docs). The market-only arguments
            (``seed``, ``dialect``, ``cycle_minutes``, ``malformed_every``,
            ``firehose``, ``snapshot_interval``, ``clock``, ``start_time``,
            ``tick_seconds``, ``mark_interval``, ``initial_balance``,
            ``volatility_scale``, ``error_rate``) must then keep their defaults.
        loop: replay only: start over at the end instead of going idle.
        max_gap: replay only: the longest real pause between two frames, in
            seconds, so long idle stretches of a recording do not stall a demo.
        paused: replay only: do not start the timeline until :meth:`play`
            (lets clients connect first and receive every frame).
        store: path of a SQLite file to keep as the current ROMA-01 backend's
            store (``data/roma_trading.db``, see :mod:`roma_notebook.sim.store_writer`):
            created with the backend's schema, then what happened is written every
            ``store_interval`` real seconds (one short transaction) and once more
            at :meth:`stop`. ``rn.load(path)`` reads it, also while it runs.
        store_tz: the simulated backend host's zone for the store's naive local
            times (default UTC).
        store_interval: real seconds between two writes to ``store``.

    Example:
        >>> sim = Simulator(["deepseek-chat-v3.1"], seed=7, speed=600).start()
        >>> sim.url.startswith("ws://127.0.0.1:")
        True
        >>> sim.stop()
        >>> import roma_notebook as rn
        >>> with Simulator(replay=rn.sample_recording(), speed=1000) as sim:
        ...     sim.agents[:2]
        ('deepseek-chat-v3.1', 'qwen3-max')
    """

    def __init__(
        self,
        agents: Iterable[str] | str | None = None,
        *,
        seed: int = 0,
        speed: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        dialect: str = "documented",
        cycle_minutes: float = 3.0,
        drop_every: float | None = None,
        malformed_every: int | None = None,
        firehose: int | None = None,
        max_connections_per_ip: int = 64,
        snapshot_interval: float = 5.0,
        error_every: int | None = None,
        clock: str = "simulated",
        start_time: Any = None,
        tick_seconds: float = 5.0,
        mark_interval: float | None = None,
        initial_balance: float = 10_000.0,
        volatility_scale: float = 1.0,
        error_rate: float = 0.02,
        history: int = 10_000,
        max_backlog: int = 10_000,
        stall_timeout: float = 5.0,
        compression: str | None = None,
        replay: Any = None,
        loop: bool = False,
        max_gap: float = 5.0,
        paused: bool = False,
        store: Any = None,
        store_tz: Any = "UTC",
        store_interval: float = 1.0,
    ):
        if isinstance(agents, str):
            agents = (agents,)
        #: the :class:`~roma_notebook.sim.replay.Replay` served, or None (simulated market)
        self.replay: Replay | None = None
        if replay is not None:
            _check_replay_args(locals())
            self.replay = replay if isinstance(replay, Replay) else read_replay(replay)
            agents = replay_agents(self.replay, agents)
        elif loop or paused or max_gap != 5.0:
            raise ValueError("loop, max_gap and paused apply only to a replay (replay=...)")
        elif agents is None:
            agents = _DEFAULT_AGENTS
        self.agents: tuple[str, ...] = tuple(agents)
        if not self.agents:
            raise ValueError("agents must name at least one agent")
        for a in self.agents:
            if not isinstance(a, str) or not a or "/" in a:
                raise ValueError(f"agent ids must be non-empty strings without '/', got {a!r}")
        if len(set(self.agents)) != len(self.agents):
            raise ValueError("agent ids must be unique")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.speed = _positive(speed, "speed")
        if not isinstance(host, str) or not host:
            raise TypeError("host must be a non-empty string")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("token must be a non-empty string or None")
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
        if clock not in ("simulated", "wall"):
            raise ValueError(f"clock must be 'simulated' or 'wall', got {clock!r}")
        if compression not in (None, "deflate"):
            raise ValueError("compression must be None or 'deflate'")
        self.seed = seed
        self.host = host
        self._port_arg = port
        self._token = token
        self.dialect = dialect
        self.cycle_minutes = _positive(cycle_minutes, "cycle_minutes")
        self.drop_every = None if drop_every is None else _positive(drop_every, "drop_every")
        self.malformed_every = None if malformed_every is None else _positive_int(malformed_every, "malformed_every")
        self.firehose = None if firehose is None else _positive_int(firehose, "firehose")
        self.max_connections_per_ip = _positive_int(max_connections_per_ip, "max_connections_per_ip")
        self.snapshot_interval = _positive(snapshot_interval, "snapshot_interval")
        self.error_every = None if error_every is None else _positive_int(error_every, "error_every")
        if self.error_every is not None and dialect != "roma-current":
            raise ValueError("error_every applies to dialect='roma-current' only (the others have no error frame)")
        self.clock = clock
        self._start_time = start_time
        if start_time is not None:
            to_ns(start_time)  # validate now, not on the thread
        self.tick_seconds = _positive(tick_seconds, "tick_seconds")
        self.mark_interval = self.tick_seconds if mark_interval is None else _positive(mark_interval, "mark_interval")
        self.initial_balance = _positive(initial_balance, "initial_balance")
        self.volatility_scale = _positive(volatility_scale, "volatility_scale")
        if not 0.0 <= error_rate < 1.0:
            raise ValueError("error_rate must be in [0, 1)")
        self.error_rate = float(error_rate)
        self.history = _positive_int(history, "history")
        self.max_backlog = _positive_int(max_backlog, "max_backlog")
        self.stall_timeout = _positive(stall_timeout, "stall_timeout")
        self.compression = compression

        self._state = "new"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop_event: asyncio.Event | None = None
        self._port: int | None = None
        self._lock = threading.Lock()
        self._sent: dict[str, deque[str]] = {a: deque(maxlen=self.history) for a in self.agents}
        self._sent_count: dict[str, int] = {a: 0 for a in self.agents}
        self._normal_count: dict[str, int] = {a: 0 for a in self.agents}
        self._malformed_seq: dict[str, int] = {a: 0 for a in self.agents}
        self._clients: dict[str, set[_Client]] = {a: set() for a in self.agents}
        self._ip_conns: dict[str, set[ServerConnection]] = defaultdict(set)
        self._wall_last_decision: dict[str, int] = {}
        self._bg: set[asyncio.Task] = set()  # strong refs: the loop keeps only weak ones
        self._counters = {
            "connections": 0,
            "rejected": 0,
            "frames_sent": 0,
            "firehose_frames": 0,
            "malformed_frames": 0,
            "slow_clients_dropped": 0,
            "flooding_clients_dropped": 0,
            "ticks": 0,
            "time_slips": 0,
            "deaf_connections": 0,
            "error_frames": 0,
        }
        #: replay only: start over at the end
        self.loop = bool(loop)
        self.max_gap = _positive(max_gap, "max_gap")
        self._play_event: asyncio.Event | None = None
        #: the SQLite store kept up to date, or None
        self.store = None if store is None else str(store)
        store_zone = zone(store_tz)
        self.store_interval = _positive(store_interval, "store_interval")
        # What is served: the only place that tells a replay from the market.
        self._source: FrameSource
        if self.replay is not None:
            self._source = ReplaySource(
                self.replay, self.agents, speed=self.speed, max_gap=self.max_gap, loop=self.loop,
                paused=paused, batch=_SEND_BATCH,
            )
        else:
            self._source = MarketSource(
                self.agents, seed=seed, speed=self.speed, dialect=dialect, start_time=start_time,
                cycle_minutes=self.cycle_minutes, tick_seconds=self.tick_seconds,
                mark_interval=self.mark_interval, initial_balance=self.initial_balance,
                volatility_scale=self.volatility_scale, error_rate=self.error_rate, history=self.history,
                store=self.store, store_tz=store_zone, store_interval=self.store_interval,
            )

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> "Simulator":
        """Start serving on a background daemon thread; return once the port
        accepts connections.

        Raises:
            OSError: the address could not be bound.
            RuntimeError: the simulator was stopped already, or did not start
                within ``timeout`` seconds.
        """
        if self._state == "running":
            return self
        if self._state == "stopped":
            raise RuntimeError("this Simulator was stopped; create a new one")
        self._thread = threading.Thread(target=self._thread_main, name="roma-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"simulator did not start within {timeout} s")
        if self._startup_error is not None:
            self._thread.join(5)
            self._state = "stopped"
            raise self._startup_error
        self._state = "running"
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Tell clients the agents stopped, close connections (1001), stop the
        thread. Idempotent."""
        if self._state == "stopped":
            return
        self._state = "stopped"
        loop, ev, th = self._loop, self._stop_event, self._thread
        if loop is not None and ev is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # loop closed meanwhile
                pass
        if th is not None and th is not threading.current_thread():
            th.join(timeout)

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        url = f"ws://{self._url_host()}:{self._port}" if self._port is not None else None
        tok = ", token=***" if self._token else ""
        head, tail = self._source.repr_parts()
        return f"Simulator({head}{tok}, url={url!r}, state={self._state!r}{tail})"

    # ------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the simulator is not started; call .start()")
        return self._port

    def _url_host(self) -> str:
        h = self.host
        if h in ("0.0.0.0", ""):
            return "127.0.0.1"
        if h == "::":
            return "[::1]"
        if ":" in h and not h.startswith("["):
            return f"[{h}]"
        return h

    @property
    def url(self) -> str:
        """WebSocket base URL, e.g. ``ws://127.0.0.1:54321`` (no token)."""
        return f"ws://{self._url_host()}:{self.port}"

    @property
    def http_url(self) -> str:
        """REST base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._url_host()}:{self.port}"

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop` while the thread lives."""
        return self._state == "running" and self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------ test helpers

    def sent_frames(self, agent_id: str, last: int | None = None) -> list[str]:
        """Frames sent (or, with no client connected, that would have been
        sent) to every client of ``agent_id``, oldest first.

        Documented dialect: the broadcast stream a client receives after its
        first three frames, malformed frames included. ``roma-backend`` and
        ``roma-current``: every snapshot (``update``, ``keepalive``, ``error``)
        sent to any client. Per-connection frames (the first three,
        firehose, pongs) are not recorded. At most ``history`` are kept.
        Replay: every recorded frame played so far (not the catch-up frames a
        newly connected client gets first).

        Example:
            >>> with Simulator(["gpt-5"], speed=600) as sim:
            ...     kinds = [json.loads(f)["type"] for f in sim.sent_frames("gpt-5")[:1]]
            >>> kinds
            ['agent_status']
        """
        self._check_agent(agent_id)
        with self._lock:
            frames = list(self._sent[agent_id])
        return frames[-last:] if last else frames

    def sent_count(self, agent_id: str) -> int:
        """Total frames recorded for ``agent_id`` (not capped by ``history``)."""
        self._check_agent(agent_id)
        with self._lock:
            return self._sent_count[agent_id]

    def client_count(self, agent_id: str | None = None) -> int:
        """WebSocket clients connected now (to one agent or to all)."""
        if agent_id is not None:
            self._check_agent(agent_id)
            return len(self._clients[agent_id])
        return sum(len(s) for s in list(self._clients.values()))

    def wait_for_clients(self, n: int, agent_id: str | None = None, timeout: float = 10.0) -> None:
        """Block until at least ``n`` clients are connected.

        Raises:
            TimeoutError: not reached within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while self.client_count(agent_id) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.client_count(agent_id)} of {n} clients after {timeout} s")
            time.sleep(0.005)

    def stats(self) -> dict[str, Any]:
        """Counters: connections, rejected handshakes, frames sent, firehose and
        malformed frames, slow and flooding clients dropped, world ticks, time slips, and
        clients connected now."""

        def snapshot() -> dict[str, Any]:
            d = dict(self._counters)
            d.update(self._source.counters)
            live = [c for s in self._clients.values() for c in s]
            d["frames_sent"] += sum(c.sent for c in live)
            d["clients"] = len(live)
            return d

        if not self.is_running:
            return snapshot()

        async def run() -> dict[str, Any]:  # on the loop: the sets change there
            return snapshot()

        return self._call(run(), 10.0)

    def query(self, fn: Callable[[World], T], timeout: float = 10.0) -> T:
        """Run ``fn(world)`` on the simulator thread and return its result; the
        safe way to peek at :class:`~roma_notebook.sim.market.World` state.

        Example:
            >>> with Simulator(["gpt-5"]) as sim:
            ...     sim.query(lambda w: w.agents["gpt-5"].exchange.initial_balance)
            10000.0
        """
        job = self._source.query(fn)  # raises at once where it does not apply

        async def run() -> T:
            return job()

        return self._call(run(), timeout)

    def disconnect_all(self, code: int = 1012, reason: str = "Service restart", agent_id: str | None = None) -> int:
        """Close every client connection (of one agent, or all) now; returns how
        many were closed. Clients may reconnect."""
        if agent_id is not None:
            self._check_agent(agent_id)
        return self._call(self._close_clients(code, reason, agent_id), 15.0)

    def set_running(self, agent_id: str, running: bool) -> None:
        """Stop or restart an agent's decision cycles (an ``agent_status`` goes
        out; positions keep being marked and stops still trigger)."""
        self._check_agent(agent_id)
        job = self._source.set_running(agent_id, running)  # raises at once where it does not apply

        async def run() -> None:
            self._dispatch(job())

        self._call(run(), 10.0)

    def play(self) -> None:
        """Start the replay timeline of a ``paused=True`` replay (no-op otherwise).

        Example:
            >>> import roma_notebook as rn
            >>> with Simulator(replay=rn.sample_recording(), speed=1e6, paused=True) as sim:
            ...     before = sim.replay_state
            ...     sim.play()
            >>> before
            'paused'
        """
        # Flag first, event second: _main sets the event itself if it reads the
        # flag after this, and otherwise this finds the event already there.
        self._source.play()  # raises where there is nothing to play
        loop, ev = self._loop, self._play_event
        if loop is not None and ev is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # loop closed meanwhile
                pass

    @property
    def replay_state(self) -> str | None:
        """``"paused"``, ``"playing"`` or ``"ended"`` (replay without ``loop``,
        after the last frame); None when not a replay."""
        return self._source.state

    def _call(self, coro: Any, timeout: float) -> Any:
        if not self.is_running or self._loop is None:
            coro.close()
            raise RuntimeError("the simulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _check_agent(self, agent_id: str) -> None:
        if agent_id not in self._sent:
            raise KeyError(f"unknown agent {agent_id!r}; agents are {list(self.agents)}")

    # ------------------------------------------------------------ thread and loop

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start() or logged
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                log.exception("simulator loop failed")
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._ready.set()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._source.prepare()
        # "localhost" with port 0 would bind ::1 and 127.0.0.1 to two different
        # free ports; one address keeps .port meaningful.
        bind = "127.0.0.1" if self.host == "localhost" and self._port_arg == 0 else self.host
        server = await serve(
            self._handler,
            bind,
            self._port_arg,
            process_request=self._process_request,
            max_size=4096,  # bigger client frames are closed with 1009
            write_limit=2**17,
            close_timeout=2,
            compression=self.compression,
            # websockets logs request lines and headers at DEBUG: no tokens there
            logger=RedactingLogger(logging.getLogger("roma_notebook.simulator.websockets"), self._token),
            create_connection=functools.partial(
                _GuardedConnection,
                on_cut=self._on_cut,
                on_data=None if self.dialect == "documented" else self._on_data,
            ),
        )
        self._port = server.sockets[0].getsockname()[1]
        self._source.start(self._dispatch)
        # Assigned before reading the flag: see play().
        self._play_event = asyncio.Event()
        if not self._source.paused:
            self._play_event.set()
        tasks = [loop.create_task(self._drive())]
        if self.drop_every:
            tasks.append(loop.create_task(self._drop_loop()))
        tasks += [loop.create_task(c) for c in self._source.background()]
        log.info("simulator listening on %s (agents: %s)", f"ws://{self._url_host()}:{self._port}", ", ".join(self.agents))
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._source.close()
            await self._shutdown(server)

    async def _shutdown(self, server: Any) -> None:
        # Say goodbye like the real platform: agents stop, then connections close.
        if self.dialect == "documented":
            self._dispatch(self._source.farewell())
        deadline = asyncio.get_running_loop().time() + 1.0
        while any(c.outbox for s in self._clients.values() for c in s):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        server.close(code=1001, reason="Simulator stopped")
        try:
            await asyncio.wait_for(server.wait_closed(), 5.0)
        except asyncio.TimeoutError:  # pragma: no cover - stuck sockets are aborted by close_timeout
            log.warning("some connections did not close in time")

    async def _drive(self) -> None:
        """The one task that advances the source and broadcasts what is due."""
        loop = asyncio.get_running_loop()
        assert self._play_event is not None
        await self._play_event.wait()
        source = self._source
        t0 = loop.time()
        while True:
            due = source.advance(loop.time() - t0, self._dispatch)
            if due is None:
                return
            await asyncio.sleep(max(0.0, t0 + due - loop.time()))

    async def _drop_loop(self) -> None:
        assert self.drop_every is not None
        while True:
            await asyncio.sleep(self.drop_every)
            n = await self._close_clients(1012, "Service restart", None)
            if n:
                log.info("drop_every: closed %d connection(s) with 1012", n)

    async def _close_clients(self, code: int, reason: str, agent_id: str | None) -> int:
        clients = [c for a, s in self._clients.items() if agent_id in (None, a) for c in s]
        if clients:
            await asyncio.gather(*(c.ws.close(code, reason) for c in clients), return_exceptions=True)
        return len(clients)

    # ------------------------------------------------------------ frames

    def _stamp(self, ev: Any) -> Any:
        if self.clock != "wall":
            return ev
        now = time.time_ns()
        if ev.kind == "decision":
            self._wall_last_decision[ev.agent_id] = now
        if ev.kind == "agent_status":
            return dataclasses.replace(
                ev, timestamp=now, last_decision_time=self._wall_last_decision.get(ev.agent_id)
            )
        return dataclasses.replace(ev, timestamp=now)

    def _encode(self, item: Item) -> str | bytes:
        """A source's item as sent: frames verbatim, events in the documented dialect."""
        if isinstance(item, (str, bytes)):
            return item
        return protocol.encode(self._stamp(item))

    def _dispatch(self, items: Iterable[tuple[str, Item]]) -> None:
        """Broadcast what a source emits. The real-backend dialects build snapshots per
        connection from the live state instead, so events go nowhere there."""
        documented = self.dialect == "documented"
        for agent_id, item in items:
            if documented or isinstance(item, (str, bytes)):
                self._broadcast(agent_id, self._encode(item))

    def _record(self, agent_id: str, text: str) -> None:
        with self._lock:
            self._sent[agent_id].append(text)
            self._sent_count[agent_id] += 1

    def _broadcast(self, agent_id: str, text: str) -> None:
        self._record(agent_id, text)
        for c in self._clients[agent_id]:
            self._push(c, text)
        if self.malformed_every:
            self._normal_count[agent_id] += 1
            if self._normal_count[agent_id] % self.malformed_every == 0:
                bad = self._malformed(agent_id)
                self._record(agent_id, bad)
                for c in self._clients[agent_id]:
                    self._push(c, bad)

    def _push(self, c: _Client, text: str) -> None:
        if c.dead:
            return
        if len(c.outbox) - c.grace >= self.max_backlog and not (
            c.firehosing and time.monotonic() - c.progress_at < self.stall_timeout
        ):
            # Hopelessly behind: drop it rather than buffer without bound or
            # slow everyone else down. 1013 invites a later reconnect.
            c.dead = True
            c.outbox.clear()
            self._counters["slow_clients_dropped"] += 1
            log.warning("dropping slow client %s (agent %s): %d frames behind", c.peer, c.agent_id, self.max_backlog)
            self._spawn(c.ws.close(1013, "Client too slow"))
            return
        c.outbox.append(text)
        c.wake.set()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    def _malformed(self, agent_id: str) -> str:
        """Next broken frame for ``agent_id``, rotating through MALFORMED_KINDS."""
        k = self._malformed_seq[agent_id]
        self._malformed_seq[agent_id] = k + 1
        self._counters["malformed_frames"] += 1
        src = self._source
        good = protocol.encode(self._stamp(src.account(agent_id, src.now_ns())))
        kind = MALFORMED_KINDS[k % len(MALFORMED_KINDS)]
        if kind == "not_json":
            return good[: len(good) // 2]  # a frame cut in half
        obj = json.loads(good)
        if kind == "bad_field":
            obj["data"]["total_balance"] = "n/a"
            return json.dumps(obj)
        if kind == "unknown_type":
            obj["type"] = "funding_rate_update"
            return json.dumps(obj)
        return json.dumps([obj])  # not_object: a JSON array

    def _snapshot(self, agent_id: str) -> str:
        account, positions, performance, status = self._source.snapshot_parts(agent_id)
        return protocol.encode_snapshot(
            asyncio.get_running_loop().time(), account, positions, performance, status,
            typed=self.dialect == "roma-current",
        )

    def _keepalive(self, agent_id: str) -> str:
        return protocol.encode_keepalive(asyncio.get_running_loop().time(), self._source.status(agent_id, None))

    def _error_frame(self, agent_id: str, k: int) -> str:
        # What the real backend sends on an exchange outage: the exception text,
        # quoting the signed request URL with the wallet and signer addresses.
        self._counters["error_frames"] += 1
        wallet = "0x" + hashlib.sha256(agent_id.encode()).hexdigest()[:40]
        stamp = 1_796_192_787_755 + k
        message = (
            "Server error '503 Service Unavailable' for url "
            f"'https://fapi.asterdex.com/fapi/v3/balance?recvWindow=50000&timestamp={stamp}"
            f"&user={wallet}&signer=0xe5e5{wallet[6:]}&signature=0x6c5c{wallet[6:]}{wallet[2:]}'\n"
            "For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/503"
        )
        return protocol.encode_error(asyncio.get_running_loop().time(), message)

    # ------------------------------------------------------------ connections

    async def _handler(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path).path if ws.request is not None else ""
        agent_id = unquote(path[len("/ws/agents/") :])
        peer = _peer(ws)
        if agent_id not in self._clients:
            log.info("ws %s -> %s: agent not found, closing 1008", peer, agent_id)
            await ws.close(1008, f"Agent not found: {agent_id}")
            return
        self._counters["connections"] += 1
        c = _Client(ws, agent_id, peer)
        # Register and take the current state in one synchronous step, so no
        # broadcast frame can slip in between (or be missed).
        initial = [self._encode(i) for i in self._source.initial_frames(agent_id)] if self.dialect == "documented" else []
        self._clients[agent_id].add(c)
        log.info(
            "ws %s -> %s connected (%d client(s) of this agent)", peer, agent_id, len(self._clients[agent_id])
        )
        loop = asyncio.get_running_loop()
        sender = loop.create_task(self._send_loop(c, initial))
        producer = loop.create_task(self._snapshot_loop(c)) if self.dialect != "documented" else None
        try:
            if self.dialect == "documented":
                async for message in ws:
                    self._on_client_message(c, message)
            else:
                await ws.wait_closed()  # never read: see _GuardedConnection.process_event
        except ConnectionClosed:
            pass
        finally:
            self._clients[agent_id].discard(c)
            c.dead = True
            for t in (sender, producer):
                if t is not None:
                    t.cancel()
            await asyncio.gather(sender, *([producer] if producer else []), return_exceptions=True)
            self._counters["frames_sent"] += c.sent
            log.debug(
                "ws %s -> %s closed (code %s, %d frames, %.1f s)",
                peer, agent_id, ws.close_code, c.sent, time.monotonic() - c.opened,
            )

    def _on_data(self, connection: ServerConnection) -> None:
        self._counters["deaf_connections"] += 1
        log.info("ws %s sent a data frame: no longer reading it (as the real backend)", _peer(connection))

    def _on_cut(self, connection: ServerConnection, why: str) -> None:
        self._counters["flooding_clients_dropped"] += 1
        log.warning("dropping client %s: it %s (close 1008)", _peer(connection), why)

    def _on_client_message(self, c: _Client, message: str | bytes) -> None:
        # Only {"type": "ping"} means anything; everything else is ignored.
        if not isinstance(message, str) or '"ping"' not in message:
            return
        try:
            obj = json.loads(message)
        except ValueError:
            return
        if isinstance(obj, dict) and obj.get("type") == "ping":
            # a source without a simulated clock (a replay): pongs carry the wall clock
            ts = self._source.now_ns() if self.clock != "wall" else None
            if ts is None:
                ts = time.time_ns()
            # through the backlog check: pings from a client that never reads
            # must not queue pongs without bound
            self._push(c, json.dumps({"type": "pong", "timestamp": protocol.format_time(ts)}))

    async def _send_loop(self, c: _Client, initial: list[str]) -> None:
        ws = c.ws
        try:
            for f in initial:
                await ws.send(f)
                c.sent += 1
            if self.firehose:
                c.firehosing = True
                await self._firehose(c)
                c.firehosing = False
                c.grace = len(c.outbox)
            n = 0
            while True:
                out = c.outbox
                while out:
                    await ws.send(out.popleft())
                    c.sent += 1
                    if c.grace:
                        c.grace -= 1
                    n += 1
                    if n % _SEND_BATCH == 0:
                        await asyncio.sleep(0)
                c.wake.clear()
                await c.wake.wait()
        except ConnectionClosed:
            pass

    async def _firehose(self, c: _Client) -> None:
        assert self.firehose
        ws = c.ws
        left = self.firehose
        src = self._source
        while left > 0:
            # Encode once per batch: the point is to measure the pipe, and the
            # protocol's encoder costs more than a send. Values are the real
            # current account; timestamps advance per batch.
            if self.dialect == "documented":
                frame = protocol.encode(self._stamp(src.account(c.agent_id, src.now_ns())))
            else:
                frame = self._snapshot(c.agent_id)
            batch = min(1024, left)
            for i in range(batch):
                await ws.send(frame)
                if not i & 63:
                    c.progress_at = time.monotonic()
            left -= batch
            c.sent += batch
            self._counters["firehose_frames"] += batch
            await asyncio.sleep(0)

    async def _snapshot_loop(self, c: _Client) -> None:
        # The real handlers: a snapshot now and then every snapshot_interval
        # seconds (after the firehose, if any); today's adds a keepalive after each
        # update or error.
        k = 0
        current = self.dialect == "roma-current"
        while not c.dead:
            if self.firehose and k == 0:
                while c.sent < self.firehose:
                    await asyncio.sleep(0.01)
            k += 1
            if current and self.error_every and k % self.error_every == 0:
                text = self._error_frame(c.agent_id, k)
            else:
                text = self._snapshot(c.agent_id)
            self._record(c.agent_id, text)
            self._push(c, text)
            if current:
                alive = self._keepalive(c.agent_id)
                self._record(c.agent_id, alive)
                self._push(c, alive)
            if self.malformed_every and k % self.malformed_every == 0:
                bad = self._malformed(c.agent_id)
                self._record(c.agent_id, bad)
                self._push(c, bad)
            await asyncio.sleep(self.snapshot_interval)

    # ------------------------------------------------------------ HTTP

    def _authorized(self, request: Request, query: dict[str, list[str]]) -> bool:
        if self._token is None:
            return True
        given = (query.get("token") or [""])[-1]
        if not given:
            auth = request.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), self._token.encode())

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        path = parts.path
        query = parse_qs(parts.query)
        if path.startswith("/ws/agents/") and len(path) > len("/ws/agents/"):
            if not self._authorized(request, query):
                self._counters["rejected"] += 1
                log.info("ws %s %s refused: bad or missing token (401)", _peer(connection), path)
                return _json(connection, 401, {"detail": "Invalid or missing token"})
            ip = _ip(connection)
            live = self._ip_conns[ip]
            if len(live) >= self.max_connections_per_ip:
                self._counters["rejected"] += 1
                log.info("ws %s refused: %d connections from this address (429)", _peer(connection), len(live))
                return _json(connection, 429, {"detail": "Too many connections from this address"})
            live.add(connection)

            async def forget() -> None:
                await connection.wait_closed()
                live.discard(connection)
                if not live:
                    self._ip_conns.pop(ip, None)

            self._spawn(forget())
            return None  # let websockets perform (or refuse) the upgrade
        try:
            return self._rest(connection, request, path, query)
        except Exception:  # a bug must answer 500, not kill the handshake task
            log.exception("REST %s failed", redact(request.path))
            return _json(connection, 500, {"detail": "Internal Server Error"})

    def _rest(self, connection: ServerConnection, request: Request, path: str, query: dict[str, list[str]]) -> Response:
        if path == "/":
            return _json(connection, 200, {"name": "ROMA-01 Trading API", "version": "1.1.0", "status": "running"})
        if path == "/health":
            return _json(connection, 200, {"status": "healthy"})
        if not self._authorized(request, query):
            return _json(connection, 401, {"detail": "Invalid or missing token"})
        return _json(connection, *self._source.rest(path, query))


# ---------------------------------------------------------------- helpers


# Arguments that shape the simulated market. A replay serves the recorded
# frames as they are, so any of them away from its default is a mistake.
_MARKET_ONLY = (
    "seed", "dialect", "cycle_minutes", "malformed_every", "firehose", "snapshot_interval", "error_every", "clock",
    "start_time", "tick_seconds", "mark_interval", "initial_balance", "volatility_scale", "error_rate",
    "store",
)


def _check_replay_args(given: dict[str, Any]) -> None:
    params = inspect.signature(Simulator.__init__).parameters
    bad = [f"{n}={given[n]!r}" for n in _MARKET_ONLY if given[n] is not params[n].default
           and given[n] != params[n].default]
    if bad:
        raise ValueError(
            f"replay serves the recorded frames as they are; {', '.join(bad)} only "
            f"make{'s' if len(bad) == 1 else ''} sense for the simulated market (drop "
            f"{'it' if len(bad) == 1 else 'them'} or drop replay=)"
        )


def _positive(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(x).__name__}")
    if not (x > 0 and math.isfinite(x)):
        raise ValueError(f"{name} must be a finite number > 0, got {x!r}")
    return float(x)


def _positive_int(x: Any, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    if x < 1:
        raise ValueError(f"{name} must be >= 1, got {x!r}")
    return x


def _json(connection: ServerConnection, status: int, body: Any) -> Response:
    # json.dumps writes inf as Infinity, as the real backend's profit_factor does.
    resp = connection.respond(http.HTTPStatus(status), json.dumps(body))
    # websockets' Headers is a multi-dict: assignment would add a second value.
    del resp.headers["Content-Type"]
    resp.headers["Content-Type"] = "application/json"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


def _ip(connection: ServerConnection) -> str:
    addr = connection.remote_address
    return str(addr[0]) if addr else "?"


def _peer(connection: ServerConnection) -> str:
    addr = connection.remote_address
    return f"{addr[0]}:{addr[1]}" if addr else "?"
