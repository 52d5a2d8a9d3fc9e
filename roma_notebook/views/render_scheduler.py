"""A frame-rate-capped render loop for live views, run on the shared background loop.

Live views must keep moving while a notebook cell blocks, so they cannot run on
the kernel's own event loop (it freezes while a cell runs, then bursts). They run
as one asyncio task on :func:`roma_notebook.live.loop.background_loop` instead, and
widget updates sent from that thread reach the browser (measured in JupyterLab 4 /
ipykernel 7; tests/test_dashboard_browser.py checks it in a real browser).

The scheduler only decides *when*: it calls ``tick()`` at most ``fps`` times a
second. The view decides *whether* anything changed (it compares table versions)
and must never raise; the scheduler still catches and counts anything that
escapes so that one bad frame cannot stop the view for good.

Rendering competes with ingest for the GIL. When ticks get expensive (a huge
history, a slow browser link) the scheduler stretches the period so rendering
takes at most ``max_share`` of wall time instead of starving the stream.

Example:
    >>> import threading
    >>> hits = threading.Event()
    >>> s = RenderScheduler(hits.set, fps=20).start()
    >>> hits.wait(5)
    True
    >>> s.stop()
    >>> s.running
    False
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable

from ..live.loop import background_loop, in_loop_thread

__all__ = ["RenderScheduler"]


class RenderScheduler:
    """Calls ``tick()`` on the background loop, at most ``fps`` times a second.

    Args:
        tick: the work of one frame; cheap when nothing changed.
        fps: upper bound on ticks per second (> 0).
        max_share: fraction of wall time ticks may use before the period stretches.

    Attributes:
        ticks: ticks run so far.
        tick_started: ``time.monotonic()`` at the start of the current or last tick;
            tick starts are at least one period apart.
        errors: exceptions that escaped ``tick`` (the view should catch its own).
        last_cost: seconds the last tick took.
    """

    def __init__(self, tick: Callable[[], object], fps: float = 4, max_share: float = 0.25):
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 60:
            raise ValueError(f"fps must be a number in (0, 60], got {fps!r}")
        self._tick = tick
        self.period = 1.0 / float(fps)
        self.max_share = max_share
        self.ticks = 0
        self.errors = 0
        self.last_cost = 0.0
        self.tick_started = 0.0  # loop time (time.monotonic) of the current/last tick
        self._task: asyncio.Task | None = None
        self._done = threading.Event()
        self._stopping = False

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the task has finished."""
        return self._task is not None and not self._done.is_set()

    def start(self) -> "RenderScheduler":
        """Start the task on the background loop (idempotent). Returns self."""
        if self._task is not None or self._stopping:
            return self
        loop = background_loop()
        created = threading.Event()

        def create() -> None:
            self._task = loop.create_task(self._run(), name="roma-notebook-render")
            created.set()

        if in_loop_thread():
            create()
        else:
            loop.call_soon_threadsafe(create)
            created.wait(5)
        return self

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.period
        try:
            while not self._stopping:
                # asyncio may wake a timer up to a clock tick early; the cap is strict
                while (delay := next_at - loop.time()) > 0:
                    await asyncio.sleep(delay)
                if self._stopping:
                    break
                started = loop.time()
                self.tick_started = started
                t0 = time.perf_counter()
                try:
                    self._tick()
                except Exception:  # noqa: BLE001 - a view must not die of one bad frame
                    self.errors += 1
                cost = time.perf_counter() - t0
                self.last_cost = cost
                self.ticks += 1
                # Tick starts are at least one period apart (never a catch-up burst
                # after a stall, so any one-second window holds at most fps ticks),
                # and further apart when ticks are costly (see module docstring).
                next_at = started + max(self.period, cost / self.max_share)
        finally:
            self._done.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop ticking (idempotent). Waits for a running tick to end unless called
        from the loop thread itself (where waiting would deadlock)."""
        self._stopping = True
        task = self._task
        if task is None:
            self._done.set()
            return
        if in_loop_thread():
            task.cancel()
            return
        try:
            background_loop().call_soon_threadsafe(task.cancel)
        except RuntimeError:  # loop closed at interpreter exit
            return
        self._done.wait(timeout)
