"""Live streams: ``connect()`` returns at once and DataFrames fill in the background.

Every stream runs as one task on the shared background loop (:mod:`.loop`), so a
cell that blocks never stops ingest. The task reads frames, records them when
asked, hands them to the stream's :class:`~roma_notebook.core.tables.Tables` (the only
writer) and reconnects with exponential backoff and full jitter. Fatal closes
(unknown agent, rejected token) stop it and are raised from the next
:meth:`AgentStream.wait_for`.

Example:
    >>> import roma_notebook as rn
    >>> sim = rn.Simulator(seed=7, speed=600).start()          # doctest: +SKIP
    >>> stream = rn.connect("deepseek-chat-v3.1", url=sim.url)  # doctest: +SKIP
    >>> stream.wait_for("decision", count=2, timeout=30)        # doctest: +SKIP
    >>> stream.decisions[["cycle", "action", "symbol"]]         # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import queue
import random
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable

import pandas as pd

from . import loop as bgloop
from ..core import protocol as P
from ..core.errors import AgentNotFound, AuthenticationError, ConnectionFailed, RomaError
from ..source_api import SourceAPI
from ..core.tables import Tables
from ..core.urls import RedactingLogger, redact, redact_text, split_agent_url, ws_url

__all__ = ["AgentStream", "StreamGroup", "connect", "STATES", "EVENT_KINDS"]

STATES = ("connecting", "live", "reconnecting", "closed", "failed")

#: kinds accepted by ``on()`` and ``wait_for()``
EVENT_KINDS = (
    "account_update",
    "position_update",
    "decision",
    "trade_executed",
    "agent_status",
    "performance",
    "closed_trade",
)
# table-name spellings people reach for first
_KIND_ALIASES = {
    "account": "account_update",
    "positions": "position_update",
    "position": "position_update",
    "decisions": "decision",
    "trade": "trade_executed",
    "trades": "trade_executed",
    "fill": "trade_executed",
    "status": "agent_status",
}

_CALLBACK_QUEUE = 10_000  # callbacks behind by more than this are dropped (and counted)
_STABLE_AFTER = 10.0  # seconds a connection must last for the backoff to reset
_NOMINAL_CADENCE = 5.0  # seconds between a real ROMA-01 backend's frames


def _kind(kind: str | None) -> str | None:
    if kind is None:
        return None
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a string or None, got {type(kind).__name__}")
    k = _KIND_ALIASES.get(kind, kind)
    if k not in EVENT_KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(EVENT_KINDS)} (or None for any)")
    return k


class _CallbackRunner:
    """Runs user callbacks on their own thread so ingest never waits on them."""

    def __init__(self, stream: "AgentStream"):
        self._stream = stream
        self._q: queue.Queue = queue.Queue(_CALLBACK_QUEUE)
        self._thread = threading.Thread(
            target=self._run, name=f"roma-callbacks-{stream.agent_id}", daemon=True
        )
        self._thread.start()

    def put(self, fn: Callable, event: Any) -> bool:
        try:
            self._q.put_nowait((fn, event))
            return True
        except queue.Full:
            return False

    def stop(self) -> None:
        try:
            self._q.put_nowait(None)
        except queue.Full:
            pass

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            fn, event = item
            try:
                fn(event)
            except BaseException as exc:  # a user's bug must never reach the kernel
                name = getattr(fn, "__qualname__", repr(fn))
                self._stream._report_from_thread(
                    "callback", f"callback {name} raised {type(exc).__name__}: {exc}", None
                )


class AgentStream(SourceAPI):
    """One agent's live stream. Create it with :func:`connect`.

    Attributes:
        agent_id: the agent this stream follows.
        url: the WebSocket URL, with any token redacted.
        tables: the :class:`~roma_notebook.core.tables.Tables` this stream fills.
    """

    def __init__(
        self,
        agent_id: str,
        url: str = "ws://localhost:8000",
        *,
        token: str | None = None,
        record_to: Any = None,
        max_rows: int | None = None,
        backfill: bool = False,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        heartbeat: float | None = 30.0,
        stall_timeout: float | None = None,
        max_size: int | None = 16 * 2**20,
        ssl: Any = None,
        open_timeout: float = 10.0,
        close_timeout: float | None = None,
        reconnect_base: float = 0.25,
        reconnect_cap: float = 30.0,
        connect_retries: int = 5,
        _start: bool = True,
    ):
        if not isinstance(agent_id, str) or not agent_id:
            raise TypeError(f"agent_id must be a non-empty string, got {agent_id!r}")
        if token is not None and not isinstance(token, str):
            raise TypeError("token must be a string or None")
        for name, v in (("reconnect_base", reconnect_base), ("reconnect_cap", reconnect_cap)):
            if not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        self.agent_id = agent_id
        self._token = token
        self._url = ws_url(url, agent_id, token)
        self.url = redact(ws_url(url, agent_id, None))
        self._base = url
        self.tables = Tables(max_rows=max_rows)
        self._backfill = bool(backfill)
        if close_timeout is None:
            # A peer that stopped answering pings will not finish a closing
            # handshake either: waiting websockets' default 10 s for it would
            # stretch stall detection far past ping_interval + ping_timeout.
            close_timeout = min(1.0, ping_timeout) if ping_timeout else 1.0
        self._ws_kwargs: dict[str, Any] = dict(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_size=max_size,
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            # websockets logs the request line (with ?token=) at DEBUG; under our logger
            # (NullHandler) its warnings never land in a notebook cell
            logger=RedactingLogger(logging.getLogger("roma_notebook.websockets"), token),
        )
        if ssl is not None:
            self._ws_kwargs["ssl"] = ssl
        self._heartbeat = heartbeat
        if stall_timeout is not None and (not isinstance(stall_timeout, (int, float)) or stall_timeout <= 0):
            raise ValueError(f"stall_timeout must be a positive number or None, got {stall_timeout!r}")
        self._stall_timeout = stall_timeout
        #: the generation the server speaks, from its first frames (None until known)
        self.dialect: str | None = None
        self._stalled: str | None = None
        self._reconnect_base = float(reconnect_base)
        self._reconnect_cap = float(reconnect_cap)
        self._connect_retries = int(connect_retries)

        self._state = "connecting"
        self._fatal: RomaError | None = None
        self.last_error: str | None = None
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._ws: Any = None
        self._wake: asyncio.Event | None = None
        self._recorder: Any = None
        self._owns_recorder = True
        self._closers: list[Callable[[], None]] = []

        # counters (written by the loop thread only)
        self._messages = 0
        self._kind_counts: dict[str | None, int] = {}
        self._reconnects = 0
        self._last_message_ns: int | None = None
        self._rate_buckets: deque = deque(maxlen=12)  # (second, count)

        self._cond = threading.Condition()
        # (kind, count) of each waiting wait_for: ingest wakes a waiter only when
        # its count is reached, not per frame (per-frame wakeups fight for the GIL)
        self._targets: list[tuple[str | None, int]] = []
        self._callbacks: dict[str | None, list[Callable]] = {}
        self._runner: _CallbackRunner | None = None
        self._callback_drops = 0

        if record_to is not None:
            self.record(record_to)
        if _start:
            self._start()

    # ------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        loop = bgloop.background_loop()
        fut = asyncio.run_coroutine_threadsafe(self._create_task(), loop)
        fut.result(5)

    async def _create_task(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self._recorder is not None:
            asyncio.get_running_loop().create_task(self._flush_recorder_periodically())

    @property
    def state(self) -> str:
        """``connecting``, ``live``, ``reconnecting``, ``closed`` or ``failed``."""
        return self._state

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection, stop the task, callbacks, recording and views. Idempotent."""
        if self._stopping and self._state in ("closed", "failed"):
            return
        self._stopping = True
        task = self._task
        if task is not None and not bgloop.in_loop_thread():
            try:
                bgloop.run_sync(self._shutdown(), timeout=timeout)
            except Exception:  # a stuck close must not hang the user's cell
                pass
        elif task is not None:
            task.cancel()
        if self._state != "failed":
            self._state = "closed"
        if self._runner is not None:
            self._runner.stop()
        if self._recorder is not None and self._owns_recorder:
            try:
                self._recorder.close()
            except Exception:
                pass
        _run_closers(self._closers)
        with self._cond:
            self._cond.notify_all()

    async def _shutdown(self) -> None:
        if self._wake is not None:
            self._wake.set()
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(1000, "client stopped"), 2.0)
            except Exception:
                pass
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except BaseException:
                pass

    def __enter__(self) -> "AgentStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _add_closer(self, fn: Callable[[], None]) -> None:
        """Register ``fn`` to run when the stream stops (views use this)."""
        self._closers.append(fn)

    # ------------------------------------------------------------ the connection task

    async def _run(self) -> None:
        attempt = 0
        ever_connected = False
        first_connect = True
        try:
            while not self._stopping:
                started = time.monotonic()
                reason = ""
                try:
                    await self._connect_once(first_connect)
                    reason = "server closed the connection"
                except _Fatal as f:
                    self._fail(f.error)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # every other failure is a retry
                    reason = self._describe(exc)
                if self._ws_opened:
                    ever_connected = True
                    first_connect = False
                    self._ws_opened = False
                if self._stopping:
                    break
                self._connection("disconnected", reason)
                if time.monotonic() - started >= _STABLE_AFTER:
                    attempt = 0
                if not ever_connected and attempt >= self._connect_retries:
                    self._fail(
                        ConnectionFailed(
                            f"could not connect to {self.url} after {attempt + 1} attempts: "
                            f"{reason}. Is the ROMA-01 backend (or `roma-notebook sim`) "
                            "running, and are the host and port right?"
                        )
                    )
                    return
                delay = random.uniform(0, min(self._reconnect_cap, self._reconnect_base * 2**attempt))
                attempt += 1
                self._reconnects += 1
                self._state = "reconnecting"
                self.last_error = reason
                self._connection("reconnecting", f"attempt {attempt} in {delay:.2f}s")
                wake = self._wake
                assert wake is not None  # made by start() before this task runs
                try:
                    await asyncio.wait_for(wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # a bug here must show, not vanish
            self._fail(ConnectionFailed(f"stream task crashed: {type(exc).__name__}: {exc}"))
        finally:
            if self._state not in ("failed",):
                self._state = "closed"
            with self._cond:
                self._cond.notify_all()

    _ws_opened = False

    async def _connect_once(self, first: bool) -> None:
        from websockets.asyncio.client import connect as ws_connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        try:
            ws = await ws_connect(self._url, **self._ws_kwargs)
        except InvalidStatus as exc:
            code = exc.response.status_code
            body = _body_detail(exc.response.body)
            if code in (401, 403):
                raise _Fatal(
                    AuthenticationError(
                        f"{self.url}: server refused the connection (HTTP {code}) {body}; "
                        "check the token (connect(..., token=...))".replace("  ", " ")
                    )
                ) from None
            if code == 404:
                raise _Fatal(
                    AgentNotFound(
                        f"{self.url}: HTTP 404 {body}; check the agent id "
                        "(rn.agents(url) lists them) and the URL path"
                    )
                ) from None
            raise
        self._ws = ws
        self._ws_opened = True
        self._state = "live"
        self.last_error = None
        self._connection("connected", self.url)
        tasks = []
        self.dialect = None  # a restarted server may be another version
        self._stalled = None
        try:
            if first and self._backfill:
                await self._do_backfill()
            loop = asyncio.get_running_loop()
            if self._heartbeat:
                tasks.append(loop.create_task(self._ping_loop(ws)))
            tasks.append(loop.create_task(self._watchdog(ws)))
            await self._read(ws)
            if self._stalled:
                raise _Stalled(self._stalled)
        except ConnectionClosed as exc:
            if self._stalled:
                raise _Stalled(self._stalled) from None
            rcvd = exc.rcvd
            if rcvd is not None and rcvd.code == 1008:
                reason = redact_text(rcvd.reason, self._token) or "policy violation"
                raise _Fatal(
                    AgentNotFound(
                        f"{reason} (close 1008 from {self.url}); check the agent id "
                        "(rn.agents(url) lists them)"
                    )
                ) from None
            raise
        finally:
            for t in tasks:
                t.cancel()
            self._ws = None
            try:
                await asyncio.wait_for(ws.close(), 1.0)
            except Exception:
                pass

    async def _read(self, ws: Any) -> None:
        # The hot path. One await per burst, not per frame: after recv() returns a
        # frame, every whole frame the connection has already read is taken too
        # (_take_queued) and the lot is handled at once. Nothing ever waits for
        # more frames to arrive: a lone frame is handled as soon as it is there.
        from websockets.exceptions import ConnectionClosedOK

        recv = ws.recv
        queued = _frame_queue(ws)
        time_ns = time.time_ns
        handle = self._handle
        while True:
            try:
                first = await recv()
            except ConnectionClosedOK:  # a normal close ends the read, as `async for` does
                return
            # Frames taken together are stamped with the time they were taken off
            # the connection (each was received by then), plus 1 ns per place in
            # the burst: receive times stay unique and ordered (docs/ARCHITECTURE.md).
            now = time_ns()
            if queued is not None and queued[1]:
                frames = [first]
                _take_queued(queued, frames)
                handle(frames, now)
                if queued[1]:
                    # more is queued: recv() would return it without yielding, so let
                    # the loop serve other streams, pings and the watchdog first
                    await asyncio.sleep(0)
            else:
                handle((first,), now)

    def _handle(self, frames: Any, now: int) -> None:
        # Everything per frame is O(1); counters and waiters are updated once per burst.
        agent = self.agent_id
        if self.dialect is None:
            for frame in frames:
                self.dialect = P.dialect_of(frame)
                if self.dialect is not None:
                    break
        counts = self._kind_counts
        rec = self._recorder
        callbacks = self._callbacks
        if rec is None and not callbacks:
            # nobody wants the events themselves: the tables count them
            self.tables.ingest_many(agent, frames, now, counts=counts)
        else:
            results = self.tables.ingest_many(agent, frames, now) or []
            if rec is not None:
                for i, (frame, events) in enumerate(zip(frames, results)):
                    if events and isinstance(events[0], P.ServerError):
                        # the server's text may quote signed URLs: record it redacted
                        frame = P.encode_error(None, events[0].message)
                    rec.write(agent, now + i, frame)  # the receive time its rows have
            with_events = 0
            for events in results:
                if events:
                    with_events += 1
                    for ev in events:
                        k = ev.kind
                        counts[k] = counts.get(k, 0) + 1
                    if callbacks:
                        self._dispatch(events)
            if with_events:
                counts[None] = counts.get(None, 0) + with_events
        n = len(frames)
        self._messages += n
        self._last_message_ns = now
        buckets = self._rate_buckets
        sec = now // 1_000_000_000
        if buckets and buckets[-1][0] == sec:
            buckets[-1][1] += n
        else:
            buckets.append([sec, n])
        targets = self._targets
        if targets:
            for want, target in targets:
                if counts.get(want, 0) >= target:
                    with self._cond:
                        self._cond.notify_all()
                    break

    async def _ping_loop(self, ws: Any) -> None:
        # The documented JSON heartbeat, beside websockets' own protocol pings, only
        # to a server whose frames show it speaks the documented API. The real
        # backends never read their socket: under uvicorn one data frame from us
        # makes them stop reading, pongs go unanswered, and they close 1011 within
        # ~40 s (docs/roma01.md). Toward them protocol pings alone keep the line.
        ping = json.dumps({"type": "ping"})
        every = self._heartbeat
        assert every is not None  # the loop runs only with a heartbeat
        while True:
            await asyncio.sleep(every)
            if self.dialect == "documented":
                await ws.send(ping)

    async def _watchdog(self, ws: Any) -> None:
        # A real backend sends a frame every ~5 s (plus its exchange round trips);
        # silence for 3 x that cadence is a stall even while pings are answered.
        # The cadence is the longest recent gap between frames, at least the
        # backend's nominal 5 s. Documented servers may be quiet for minutes: for
        # them only an explicit stall_timeout applies (pings detect dead peers).
        gaps: deque = deque(maxlen=8)
        seen = None  # frames of this connection only
        while True:
            await asyncio.sleep(0.5)
            last = self._last_message_ns
            if last is None or (seen is None and self.dialect is None):
                continue
            if seen is not None and last != seen:
                gaps.append((last - seen) / 1e9)
            seen = last
            limit = self._stall_timeout
            if limit is None:
                if self.dialect not in ("roma-backend", "roma-current"):
                    continue
                limit = 3 * max(_NOMINAL_CADENCE, max(gaps, default=0.0))
            quiet = (time.time_ns() - last) / 1e9
            if quiet > limit:
                self._stalled = f"stalled: no frame for {quiet:.0f} s (limit {limit:.0f} s)"
                await ws.close(1000, "stalled")
                return

    async def _flush_recorder_periodically(self) -> None:
        # A quiet stream must still reach the disk: a killed kernel loses at most ~1 s.
        while not self._stopping:
            await asyncio.sleep(1.0)
            rec = self._recorder
            if rec is not None:
                try:
                    rec.flush()
                except Exception as exc:
                    self._report("recording", f"flush failed: {exc}", None)

    async def _do_backfill(self) -> None:
        from .backfill import fetch_backfill

        try:
            events, problems = await asyncio.to_thread(
                fetch_backfill, self._base, self.agent_id, self._token
            )
        except Exception as exc:  # backfill is a bonus; its failure never fails the stream
            self._report("backfill", redact_text(str(exc), self._token), None)
            return
        now = time.time_ns()
        for detail in problems:
            self._report("backfill", redact_text(detail, self._token), None)
        for ev in events:
            self.tables.append(self.agent_id, ev, now, source="backfill")

    def _fail(self, error: RomaError) -> None:
        self._fatal = error
        self.last_error = str(error)
        self._state = "failed"
        self._connection("failed", str(error))
        with self._cond:
            self._cond.notify_all()

    def _connection(self, event: str, detail: str) -> None:
        # a connections row, also in the recording so a loaded session shows the gaps
        now = time.time_ns()
        self.tables.add_connection(self.agent_id, event, detail, now)
        rec = self._recorder
        if rec is not None:
            try:
                rec.write_connection(self.agent_id, now, event, detail)
            except Exception as exc:
                self.tables.add_error(self.agent_id, "recording", f"write failed: {exc}", None)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, _Stalled):
            return str(exc)
        if isinstance(exc, socket.gaierror):
            text = f"DNS lookup failed ({exc}): check the host name"
        elif isinstance(exc, ConnectionRefusedError):
            text = "connection refused"
        elif isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            text = "timed out"
        else:
            text = f"{type(exc).__name__}: {exc}"
        return redact_text(text, self._token)

    def _report(self, kind: str, detail: str, raw: Any) -> None:
        """An errors row, written on the loop thread (the tables' only writer)."""
        self.tables.add_error(self.agent_id, kind, detail, raw)

    def _report_from_thread(self, kind: str, detail: str, raw: Any) -> None:
        try:
            bgloop.call_soon(self._report, kind, detail, raw)
        except RuntimeError:  # loop gone at interpreter exit
            pass

    # ------------------------------------------------------------ callbacks and waiting

    def on(self, kind: str | None, fn: Callable[[Any], Any] | None = None) -> Any:
        """Call ``fn(event)`` for every event of ``kind`` (None: every event).

        Callbacks run on a thread of their own, never on the ingest path: a slow or
        failing callback does not slow ingest; its exception becomes an ``errors``
        row. Usable as a decorator.

        Example:
            >>> stream.on("trade_executed", print)                   # doctest: +SKIP
            >>> @stream.on("decision")                               # doctest: +SKIP
            ... def show(ev): print(ev.cycle, [d.action for d in ev.decisions])
        """
        k = _kind(kind)
        if fn is None:
            return lambda f: self.on(kind, f)
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if self._runner is None:
            self._runner = _CallbackRunner(self)
        # copy-on-write so the loop thread iterates a stable list
        new = dict(self._callbacks)
        new[k] = new.get(k, []) + [fn]
        self._callbacks = new
        return fn

    def _dispatch(self, events: Iterable[Any]) -> None:
        cbs = self._callbacks
        runner = self._runner
        assert runner is not None  # made when the first callback was registered
        for ev in events:
            for fn in cbs.get(ev.kind, []) + cbs.get(None, []):
                if not runner.put(fn, ev):
                    self._callback_drops += 1
                    if self._callback_drops == 1 or self._callback_drops % 1000 == 0:
                        self._report(
                            "callback",
                            f"callbacks are {_CALLBACK_QUEUE} events behind; "
                            f"{self._callback_drops} dropped so far",
                            None,
                        )

    def count(self, kind: str | None = None) -> int:
        """Messages of ``kind`` received since the stream was created."""
        return self._kind_counts.get(_kind(kind), 0)

    def wait_for(
        self, kind: str | None = None, count: int = 1, timeout: float | None = 60.0, *, new: bool = False
    ) -> "AgentStream":
        """Block until ``count`` messages of ``kind`` have arrived.

        Counts are totals since the stream was created, so a call never races the
        frames that arrived just before it; ``new=True`` counts from now instead.

        Args:
            kind: message type (``decision``, ``trade_executed``, ...; table names
                such as ``account`` work too) or None for any message.
            count: how many.
            timeout: seconds; None waits forever.
            new: count only messages arriving after this call.

        Returns:
            The stream, for chaining.

        Raises:
            TimeoutError: not enough messages in time (the text says how many came).
            AgentNotFound, AuthenticationError, ConnectionFailed: the stream failed.
        """
        k = _kind(kind)
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative int, got {count!r}")
        target = count + (self._kind_counts.get(k, 0) if new else 0)
        deadline = None if timeout is None else time.monotonic() + timeout
        entry = (k, target)
        with self._cond:
            self._targets = self._targets + [entry]
            try:
                while True:
                    if self._fatal is not None:
                        raise type(self._fatal)(str(self._fatal))
                    have = self._kind_counts.get(k, 0)
                    if have >= target:
                        return self
                    if self._stopping or self._state == "closed":
                        raise ConnectionFailed(
                            f"stream of {self.agent_id!r} is stopped ({have} of {target} "
                            f"{kind or 'messages'} received)"
                        )
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(
                            f"waited {timeout}s for {target} {kind or 'messages'} from "
                            f"{self.agent_id!r}, got {have} (state {self._state}"
                            + (f", last error: {self.last_error}" if self.last_error else "")
                            + ")"
                        )
                    self._cond.wait(0.5 if left is None else min(left, 0.5))
            finally:
                targets = list(self._targets)
                targets.remove(entry)
                self._targets = targets

    # ------------------------------------------------------------ data

    def _frame(self, name: str) -> pd.DataFrame:
        return self.tables.frame(name)

    def _live_stats(self) -> dict[str, Any]:
        """This stream's traffic as a dict (one ``stats()`` row); cheap enough for a
        view to poll: no DataFrame is built."""
        now_s = time.time_ns() // 1_000_000_000
        recent = [(s, n) for s, n in list(self._rate_buckets) if now_s - 10 <= s < now_s]
        rate = sum(n for _, n in recent) / 10.0 if recent else 0.0
        totals = self.tables.totals()
        last = self._last_message_ns
        out: dict[str, Any] = {
            "agent_id": self.agent_id,
            "state": self._state,
            "messages": self._messages,
            "rate": rate,
            "last_message_at": pd.Timestamp(last, unit="ns", tz="UTC") if last else None,
            "reconnects": self._reconnects,
            "errors": totals["errors"],
            "server_errors": totals["server_errors"],
            "drops": totals["dropped"],
            "duplicates": totals["duplicates"],
            "callback_drops": self._callback_drops,
        }
        return out

    def _stats_rows(self) -> list[dict[str, Any]]:
        return [self._live_stats()]

    def record(self, path: Any) -> Any:
        """Start recording every received frame to ``path`` (JSON Lines, gzip if .gz).

        ``path`` may also be an open :class:`~roma_notebook.store.recording.Recorder`, which
        the stream then shares and does not close (a group records into one file).
        Returns the Recorder.
        """
        from ..store.recording import Recorder

        if isinstance(path, Recorder):
            rec, owns = path, False
        else:
            rec, owns = Recorder(path, url=self.url, agent_ids=[self.agent_id]), True
        old, self._recorder = self._recorder, rec
        if old is not None and self._owns_recorder:
            old.close()
        self._owns_recorder = owns
        if self._task is not None and old is None:
            bgloop.submit(self._start_flusher())
        return rec

    async def _start_flusher(self) -> None:
        asyncio.get_running_loop().create_task(self._flush_recorder_periodically())

    def dashboard(self, **kw: Any) -> Any:
        """A live ipywidgets/plotly dashboard of this stream."""
        from ..views.dashboard import Dashboard

        return Dashboard(self, **kw)

    @property
    def agent_ids(self) -> list[str]:
        return [self.agent_id]

    def _counts_text(self) -> str:
        c = self.tables.counts()
        return ", ".join(f"{n}={c[n]}" for n in ("account", "positions", "decisions", "trades", "errors"))

    def __repr__(self) -> str:
        return (
            f"AgentStream({self.agent_id!r}, url={self.url!r}, state={self._state!r}, "
            f"rows: {self._counts_text()})"
        )

    def _repr_html_(self) -> str:
        c = self.tables.counts()
        rows = "".join(
            f"<tr><td>{html.escape(n)}</td><td>{c[n]}</td></tr>"
            for n in ("account", "positions", "cycles", "decisions", "trades", "errors")
        )
        err = (
            f"<div style='color:#b00'>last error: {html.escape(self.last_error)}</div>"
            if self.last_error
            else ""
        )
        return (
            f"<div><b>AgentStream</b> {html.escape(self.agent_id)} · "
            f"<code>{html.escape(self.url)}</code> · state <b>{html.escape(self._state)}</b>"
            f"{err}<table><tr><th>table</th><th>rows</th></tr>{rows}</table></div>"
        )


def _run_closers(closers: list[Callable[[], None]]) -> None:
    # views and recordings registered to stop with a stream; one failing must not
    # keep the others open
    for fn in list(closers):
        try:
            fn()
        except Exception:
            pass
    closers.clear()


# A burst is at most this many frames (~2 ms of work): the loop serves other
# streams, pings and the watchdog between bursts, and a burst's rows become
# visible together.
_BURST = 1024


def _frame_queue(ws: Any) -> tuple[Any, Any, Any] | None:
    """(assembler, deque of frames, text opcode) of a websockets asyncio connection, or None.

    websockets (14 and later; checked up to 17.4) keeps the frames it has read but
    nobody has received yet in ``recv_messages.frames.queue``. Taking them from there
    costs a fraction of a recv() per frame (no coroutines, no join). Any other
    layout: None, and every frame goes through recv() as before.
    """
    try:
        from websockets.frames import Opcode
    except ImportError:  # pragma: no cover - another websockets layout
        return None
    asm = getattr(ws, "recv_messages", None)
    q = getattr(getattr(asm, "frames", None), "queue", None)
    if isinstance(q, deque) and callable(getattr(asm, "maybe_resume", None)):
        return asm, q, Opcode.TEXT
    return None


def _take_queued(queued: tuple[Any, Any, Any], frames: list) -> None:
    """Append to ``frames`` the texts of whole frames already read, up to _BURST in all.

    Only unfragmented text frames that are valid UTF-8 are taken; at anything else
    (binary, fragments, bad UTF-8) it stops and leaves that frame to recv(), which
    handles it as it always does. Then lets websockets resume reading if its queue
    went low (what recv() does per frame).
    """
    asm, q, text = queued
    popleft = q.popleft
    append = frames.append
    for _ in range(min(len(q), _BURST - len(frames))):
        f = popleft()
        if f.opcode is not text or not f.fin:
            q.appendleft(f)
            break
        try:
            append(f.data.decode())
        except UnicodeDecodeError:
            q.appendleft(f)
            break
    asm.maybe_resume()

class _Stalled(Exception):
    """The server went quiet for longer than its cadence allows (see _watchdog)."""


class _Fatal(Exception):
    def __init__(self, error: RomaError):
        super().__init__(str(error))
        self.error = error


def _body_detail(body: bytes | bytearray | None) -> str:
    if not body:
        return ""
    try:
        return str(json.loads(body).get("detail", ""))
    except Exception:
        return body[:200].decode("utf-8", "replace").strip()


class StreamGroup(SourceAPI):
    """Several agents' streams on one loop, with tables over all of them.

    Attributes:
        streams: ``{agent_id: AgentStream}``.
    """

    def __init__(self, streams: Iterable[AgentStream]):
        self.streams: dict[str, AgentStream] = {s.agent_id: s for s in streams}
        self._cache: dict[str, tuple[tuple, pd.DataFrame]] = {}
        self._closers: list[Callable[[], None]] = []

    @property
    def agent_ids(self) -> list[str]:
        return list(self.streams)

    def __getitem__(self, agent_id: str) -> AgentStream:
        return self.streams[agent_id]

    def __iter__(self):
        return iter(self.streams.values())

    def __len__(self) -> int:
        return len(self.streams)

    @property
    def state(self) -> dict[str, str]:
        """State per agent."""
        return {a: s.state for a, s in self.streams.items()}

    def _frame(self, name: str) -> pd.DataFrame:
        key = tuple(s.tables.table_version(name) for s in self.streams.values())
        hit = self._cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1].copy(deep=False)
        frames = [s.tables.frame(name) for s in self.streams.values()]
        df = pd.concat(frames, ignore_index=True) if frames else Tables().frame(name)
        if len(frames) > 1:
            # receive order across agents: the order a recording of the group has
            df = df.sort_values("received_at", kind="stable", ignore_index=True)
        self._cache[name] = (key, df)
        return df.copy(deep=False)

    def wait_for(self, kind: str | None = None, count: int = 1, timeout: float | None = 60.0) -> "StreamGroup":
        """Wait until every agent has ``count`` messages of ``kind`` (see AgentStream.wait_for)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for s in self.streams.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            s.wait_for(kind, count, left)
        return self

    def on(self, kind: str | None, fn: Callable | None = None) -> Any:
        """Register a callback on every stream of the group."""
        if fn is None:
            return lambda f: self.on(kind, f)
        for s in self.streams.values():
            s.on(kind, fn)
        return fn

    def _stats_rows(self) -> list[dict[str, Any]]:
        return [s._live_stats() for s in self.streams.values()]

    def stop(self) -> None:
        """Stop every stream, then the group's views and its recording."""
        for s in self.streams.values():
            s.stop()
        _run_closers(self._closers)

    def _add_closer(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def __enter__(self) -> "StreamGroup":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def dashboard(self, **kw: Any) -> Any:
        """A live comparison dashboard of all agents."""
        from ..views.dashboard import GroupDashboard

        return GroupDashboard(self, **kw)

    def __repr__(self) -> str:
        states = ", ".join(f"{a}={s.state}" for a, s in self.streams.items())
        return f"StreamGroup({len(self.streams)} agents: {states})"

    def _repr_html_(self) -> str:
        return "<div><b>StreamGroup</b>" + "".join(s._repr_html_() for s in self.streams.values()) + "</div>"


def connect(
    agent_id: str | Iterable[str],
    url: str = "ws://localhost:8000",
    *,
    token: str | None = None,
    record_to: Any = None,
    max_rows: int | None = None,
    backfill: bool = False,
    **kw: Any,
) -> AgentStream | StreamGroup:
    """Follow one agent (or several) live; returns at once.

    Args:
        agent_id: an agent id, or a list of them for a :class:`StreamGroup`.
        url: server base (``ws://host:port``, ``wss://``, ``http(s)://``) or a full
            ``.../ws/agents/{id}`` URL.
        token: sent as ``?token=``; never shown in reprs, logs or errors.
        record_to: path of a recording (``.jsonl`` or ``.jsonl.gz``); a group
            records all its agents into this one file.
        max_rows: bound per table (oldest rows dropped and counted).
        backfill: fetch past decisions, equity and trades over REST first.
        **kw: ``ping_interval``, ``ping_timeout``, ``heartbeat`` (the documented
            JSON ping, sent only to servers that speak the documented API),
            ``stall_timeout`` (seconds of silence that count as a stall; default:
            3 x the cadence of a real backend, none for documented servers), ``max_size``,
            ``ssl``, ``open_timeout``, ``close_timeout`` (default: ``ping_timeout``,
            at most 1 s), ``reconnect_base``, ``reconnect_cap``,
            ``connect_retries``.

    Example:
        >>> stream = rn.connect("deepseek-chat-v3.1", url="ws://localhost:8000")  # doctest: +SKIP
        >>> stream.wait_for("decision").decisions.tail()                          # doctest: +SKIP
    """
    if isinstance(url, str):
        base, url_agent = split_agent_url(url)
    else:
        raise TypeError(f"url must be a string, got {type(url).__name__}")
    if isinstance(agent_id, str):
        if url_agent is not None and url_agent != agent_id:
            raise ValueError(f"url names agent {url_agent!r} but agent_id is {agent_id!r}")
        return AgentStream(
            agent_id, base, token=token, record_to=record_to, max_rows=max_rows, backfill=backfill, **kw
        )
    if agent_id is None:
        if url_agent is None:
            raise TypeError("agent_id is required (or give a full .../ws/agents/{id} url)")
        return AgentStream(
            url_agent, base, token=token, record_to=record_to, max_rows=max_rows, backfill=backfill, **kw
        )
    ids = list(agent_id)
    if not ids or not all(isinstance(a, str) and a for a in ids):
        raise TypeError("agent_id must be a string or a non-empty list of strings")
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate agent ids in {ids!r}")
    streams = []
    recorder = None
    try:
        if record_to is not None:
            from ..store.recording import Recorder

            # one file for the group: every line names its agent
            recorder = Recorder(record_to, url=redact(base), agent_ids=ids)
        for a in ids:
            streams.append(
                AgentStream(a, base, token=token, record_to=recorder, max_rows=max_rows, backfill=backfill, **kw)
            )
    except BaseException:
        for s in streams:
            s.stop()
        if recorder is not None:
            recorder.close()
        raise
    group = StreamGroup(streams)
    if recorder is not None:
        group._add_closer(recorder.close)
    return group
