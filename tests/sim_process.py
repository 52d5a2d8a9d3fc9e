"""``python -m roma_notebook sim`` as a child process the fault tests can kill.

The first stdout line carries the URL (``--port 0`` picks a free port; a
restart passes that port again). stdout and stderr are collected by reader
threads so neither pipe can fill up and block the simulator.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from typing import Sequence

from scripted_server import wait_until

__all__ = ["SimProcess"]


class SimProcess:
    """Start the simulator CLI; ``url``/``port`` once it listens.

    Args:
        args: extra CLI arguments (``--agents``, ``--seed``, ...).
        port: TCP port (0 picks one).
    """

    def __init__(self, args: Sequence[str], port: int = 0, timeout: float = 30.0):
        self.args = list(args)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roma_notebook", "sim", "--port", str(port), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()
        try:
            wait_until(lambda: self.out[:1] or self.proc.poll() is not None, timeout, "the simulator's URL line")
        except AssertionError:
            self.kill()
            raise
        line = self.out[0] if self.out else ""
        m = re.search(r"ws://\S+", line)
        if not (m and line.startswith("ROMA-01 simulator listening on ws://")):
            self.kill()
            raise AssertionError(f"no URL line: {line!r} {''.join(self.err)}")
        self.url = m.group(0)
        self.port = int(self.url.rsplit(":", 1)[1])

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def kill(self) -> None:
        """SIGKILL: no goodbye frames, no close handshake."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for t in self._threads:
            t.join(5)

    def stop(self) -> int:
        """SIGINT (a clean stop); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self._threads:
            t.join(5)
        return self.proc.returncode

    def frames_sent(self) -> dict[str, int]:
        """Frames the simulator sent per agent, from its own per-connection count.

        Needs ``--log-level DEBUG`` among the args (the simulator logs each closed
        connection's count at DEBUG) and a stopped process: only closed connections
        are logged. Stopping the server before the client lets the client read all of
        it, so the two counts can be compared.
        """
        sent: dict[str, int] = {}
        for m in re.finditer(r"ws \S+ -> (\S+) closed \(code \S+, (\d+) frames", self.stderr):
            sent[m.group(1)] = sent.get(m.group(1), 0) + int(m.group(2))
        return sent

    def rss_kb(self) -> int:
        """Resident memory of the simulator process (kB)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0
