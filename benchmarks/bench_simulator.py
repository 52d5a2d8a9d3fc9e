"""How fast the bundled simulator's firehose pushes frames over loopback.

    python benchmarks/bench_simulator.py [--frames 200000] [--clients 50] [--per-client 10000]

The server is ``python -m roma_notebook sim --firehose N`` in its own process
(one asyncio thread, as users run it); the clients are bare ``websockets``
clients in this process doing ``recv`` only. Two numbers:

* one client: messages/s of its firehose (best of three connections);
* ``--clients`` clients at once: all firehose frames received by all clients
  divided by the wall time from the first connect to the last frame.

Both sides share this machine, so the aggregate figure is bounded by whichever
process saturates its core first; the table says which side was busier. Takes
well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import threading
import time

from websockets.asyncio.client import connect

__all__ = ["main"]

AGENT = "deepseek-chat-v3.1"
INITIAL = 3  # account_update, position_update, agent_status before the firehose


class Server:
    """The CLI simulator in a subprocess; its first stdout line has the URL."""

    def __init__(self, firehose: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roma_notebook", "sim", "--port", "0", "--agents", AGENT,
             "--firehose", str(firehose), "--max-connections-per-ip", "1000", "--log-level", "WARNING"],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.proc.stdout.readline()
        m = re.search(r"ws://\S+", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.url = m.group(0)
        # keep draining stdout so the child never blocks on a full pipe
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def cpu_seconds(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:  # not Linux
            return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def one_client(url: str, n: int) -> tuple[float, float]:
    """Receive the first frames plus ``n`` firehose frames; (seconds, t_end)."""
    async with connect(f"{url}/ws/agents/{AGENT}", compression=None, max_size=2**20) as ws:
        for _ in range(INITIAL):
            await ws.recv()
        t0 = time.perf_counter()
        for _ in range(n):
            await ws.recv()
        t1 = time.perf_counter()
    return t1 - t0, t1


async def many_clients(url: str, clients: int, n: int) -> float:
    t0 = time.perf_counter()
    ends = await asyncio.gather(*(one_client(url, n) for _ in range(clients)))
    return max(e for _, e in ends) - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200_000, help="firehose frames for the single client")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--per-client", type=int, default=10_000, help="firehose frames per client with --clients")
    args = ap.parse_args(argv)

    rows = []
    srv = Server(args.frames)
    try:
        best = 0.0
        for _ in range(3):
            c0, w0 = srv.cpu_seconds(), time.process_time()
            secs, _ = asyncio.run(one_client(srv.url, args.frames))
            rate = args.frames / secs
            if rate > best:
                best = rate
                busy = (srv.cpu_seconds() - c0) / secs, (time.process_time() - w0) / secs
        rows.append(("firehose, one client (best of 3)", 1, args.frames, args.frames / best, best, busy))
    finally:
        srv.stop()

    srv = Server(args.per_client)
    try:
        c0, w0 = srv.cpu_seconds(), time.process_time()
        secs = asyncio.run(many_clients(srv.url, args.clients, args.per_client))
        total = args.clients * args.per_client
        busy = (srv.cpu_seconds() - c0) / secs, (time.process_time() - w0) / secs
        rows.append((f"firehose, {args.clients} clients at once (aggregate)", args.clients, total, secs, total / secs, busy))
    finally:
        srv.stop()

    print("| scenario | clients | frames | seconds | messages/s | server CPU | client CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, clients, frames, secs, rate, (s_cpu, c_cpu) in rows:
        print(f"| {name} | {clients} | {frames:,} | {secs:.2f} | {rate:,.0f} | {s_cpu:.0%} | {c_cpu:.0%} |")


if __name__ == "__main__":
    main()
