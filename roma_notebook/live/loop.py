"""The one background asyncio loop that every stream and view shares.

A daemon thread runs it, started on first use (never at import). The kernel's own
loop is never used or patched: a cell that blocks (``time.sleep``, a long
computation) does not stop ingest or live views, and nothing here needs
``nest_asyncio``.

Example:
    >>> import asyncio
    >>> async def answer():
    ...     return 42
    >>> run_sync(answer(), timeout=5)
    42
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Awaitable, Coroutine

__all__ = ["background_loop", "submit", "run_sync", "call_soon", "in_loop_thread"]

_log = logging.getLogger("roma_notebook.loop")
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first call (thread ``roma-notebook-loop``)."""
    global _loop, _thread
    loop = _loop
    if loop is not None and _thread is not None and _thread.is_alive():
        return loop
    with _lock:
        if _loop is not None and _thread is not None and _thread.is_alive():
            return _loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.set_exception_handler(_log_quietly)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="roma-notebook-loop", daemon=True)
        thread.start()
        ready.wait()
        _loop, _thread = loop, thread
        return loop


def _log_quietly(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    # asyncio's default handler writes to stderr, which Jupyter shows in whatever
    # cell ran last; the library's logger has a NullHandler unless the user adds one.
    _log.debug("background loop: %s", context.get("message"), exc_info=context.get("exception"))


def in_loop_thread() -> bool:
    """True when called from the background loop's own thread."""
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
    """Schedule a coroutine on the background loop from any thread."""
    return asyncio.run_coroutine_threadsafe(coro, background_loop())


def run_sync(coro: Awaitable[Any], timeout: float | None = None) -> Any:
    """Run a coroutine on the background loop and wait for its result.

    Must not be called from the loop thread itself (it would deadlock).
    """
    if in_loop_thread():
        raise RuntimeError("run_sync() called from the background loop thread")
    return submit(coro).result(timeout)  # type: ignore[arg-type]


def call_soon(fn: Any, *args: Any) -> None:
    """Run ``fn(*args)`` on the background loop thread, soon."""
    background_loop().call_soon_threadsafe(fn, *args)
