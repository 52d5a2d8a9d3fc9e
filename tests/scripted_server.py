"""A real websockets server on 127.0.0.1 port 0 whose behaviour a test scripts.

Used where the simulator cannot misbehave in the needed way (hostile frames,
stalls, odd close codes). It runs its own loop on a thread and stops cleanly.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable

from websockets.asyncio.server import ServerConnection, serve

__all__ = ["ScriptedServer", "wait_until", "closed_port", "wait_stream_done"]


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it is truthy; fail the test with ``what`` after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def closed_port() -> int:
    """A loopback port nothing listens on: bound by this test, then released.

    Safer than assuming a well-known port (9, "discard") is closed: whatever the
    machine runs, the kernel just handed this one out and nobody has it now.
    """
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_stream_done(stream: Any, timeout: float = 10.0) -> None:
    """Wait until the stream's connection task has ended (after a fatal error or
    stop). From then on it cannot retry, so "no further attempt" is checked by a
    condition rather than by sleeping and hoping a wrong retry would have shown."""
    wait_until(lambda: stream._task is not None and stream._task.done(), timeout, "the stream task to end")


class ScriptedServer:
    """Serve ``handler(ws)`` for every connection; ``port=0`` picks a free port.

    Attributes:
        connections: number of WebSocket connections accepted so far.
        paths: request paths (with query) seen, in order.
    """

    def __init__(
        self,
        handler: Callable[[ServerConnection], Awaitable[None]],
        port: int = 0,
        **serve_kw: Any,
    ):
        self._handler = handler
        self._port = port
        self._serve_kw = serve_kw
        self.connections = 0
        self.paths: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _wrapped(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.paths.append(ws.request.path)
        await self._handler(ws)

    def start(self) -> "ScriptedServer":
        ready = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                async with serve(self._wrapped, "127.0.0.1", self._port, **self._serve_kw) as srv:
                    self.port = srv.sockets[0].getsockname()[1]
                    ready.set()
                    await self._stop.wait()
            except BaseException as exc:  # surface bind errors to the test
                errors.append(exc)
                ready.set()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(main())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="scripted-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
            self._thread.join(10)

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
