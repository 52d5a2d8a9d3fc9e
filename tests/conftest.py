"""Session-wide checks: whatever the tests started, they must also stop.

A test that forgets ``stream.stop()`` or ``sim.stop()`` passes on its own and
leaves a connection, a thread or a child process behind that can slow or break
later tests (and hides the same bug in the fixtures users copy). At the end of
the session this fixture fails the run, naming what was left:

- an :class:`~roma_notebook.live.stream.AgentStream` whose connection task still runs
  (found with ``gc``: a running task holds its stream, so none escapes);
- a :class:`~roma_notebook.sim.simulator.Simulator` still running;
- a task still pending on the library's background loop (streams, views);
- a thread started during the session still alive (the library's one background
  loop thread and its executor's workers excepted: they stay by design, idle);
- a child process still running (simulator CLIs, JupyterLab, Chromium).

Set ``ROMA_LEAK_CHECK=0`` to skip it (e.g. when running a single test under a
debugger that keeps its own threads).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import threading
import weakref
import time

import pytest

# The shared loop is started once and kept, idle, by design; so are the idle
# workers of its default executor (asyncio_N: DNS lookups run there).
_KEPT_THREADS = ("roma-notebook-loop", "asyncio_")


def _children() -> list[str]:
    """Running (not zombie) child processes of this process, as 'pid cmdline'."""
    me = str(os.getpid())
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            # the command name may hold spaces and parentheses: split after the last ')'
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if ppid != me or state == "Z":
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # gone meanwhile
        out.append(f"{pid} {cmd[:200]}")
    return out


def _pending_loop_tasks() -> list[str]:
    from roma_notebook.live import loop as bgloop

    loop = bgloop._loop
    if loop is None or loop.is_closed() or bgloop._thread is None or not bgloop._thread.is_alive():
        return []

    async def pending() -> list[str]:
        me = asyncio.current_task()
        return [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me and not t.done()]

    return bgloop.run_sync(pending(), timeout=10)


_PROXIES = (weakref.ProxyType, weakref.CallableProxyType)


def leftovers(threads_before: set[threading.Thread]) -> list[str]:
    """Everything still running that the session started."""
    from roma_notebook.sim.simulator import Simulator
    from roma_notebook.live.stream import AgentStream

    found: list[str] = []
    gc.collect()
    for obj in gc.get_objects():
        if type(obj) in _PROXIES:
            continue  # a weakref.proxy: isinstance() on a dead one raises ReferenceError
        if isinstance(obj, AgentStream):
            task = obj._task
            if (task is not None and not task.done()) or obj.state in ("connecting", "live", "reconnecting"):
                found.append(f"stream not stopped: {obj!r}")
        elif isinstance(obj, Simulator) and obj.is_running:
            found.append(f"simulator not stopped: {obj!r}")
    found += [f"task pending on the background loop: {t}" for t in _pending_loop_tasks()]
    found += [
        f"thread still alive: {t.name} (daemon={t.daemon})"
        for t in threading.enumerate()
        if t not in threads_before and not t.name.startswith(_KEPT_THREADS) and t.is_alive()
    ]
    found += [f"child process still running: {c}" for c in _children()]
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running():
    if os.environ.get("ROMA_LEAK_CHECK") == "0":
        yield
        return
    threads_before = set(threading.enumerate())
    yield
    # What a test stopped may take a moment to wind down (a thread's last join, a
    # child reaped): wait for the condition, up to a bound, then name the rest.
    deadline = time.monotonic() + 15
    while (left := leftovers(threads_before)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, "the tests left these running:\n  " + "\n  ".join(left)


@pytest.fixture
def chromium() -> str:
    """The chromium executable for the real-browser tests. Missing, it fails the
    test: a skip would let a run go green without its real-browser checks.
    ``ROMA_SKIP_BROWSER=1`` skips them on purpose (a local run on a machine
    without chromium); CI never sets it."""
    if os.environ.get("ROMA_SKIP_BROWSER") == "1":
        pytest.skip("ROMA_SKIP_BROWSER=1: the real-browser test is skipped on request")
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed (apt-get install chromium); "
                    "set ROMA_SKIP_BROWSER=1 to skip this test on purpose")
    return path
