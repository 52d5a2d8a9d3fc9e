"""End-to-end ingest over loopback: ``rn.connect`` against a bare websockets loop.

    python benchmarks/bench_stream.py [--n 200000] [--rounds 3] [--rate 1000] [--seconds 5] [--stages]

The server (benchmarks/firehose_server.py) runs in another process. Throughput
alternates bare and library rounds so machine noise hits both alike; the ratio is
what to read. Latency is ``received_at - timestamp`` of each row at a paced rate:
both clocks are this machine's, and a row is visible right after it is stamped.
``--stages`` adds one timed pass of each client saying where the time per frame goes
(timers around each stage: slower than the rounds, read the split, not the total).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "firehose_server.py"), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().split()
    if not line or line[0] != "PORT":
        proc.kill()
        raise RuntimeError("firehose server did not start")
    return proc, f"ws://127.0.0.1:{line[1]}"


async def bare(url: str, n: int) -> float:
    from websockets.asyncio.client import connect

    t0 = time.perf_counter()
    got = 0
    async with connect(url + "/ws/agents/bench", compression=None, max_size=2**24) as ws:
        async for msg in ws:
            json.loads(msg)
            got += 1
    assert got == n, got
    return n / (time.perf_counter() - t0)


def ours(url: str, n: int) -> float:
    import roma_notebook as rn

    t0 = time.perf_counter()
    s = rn.connect("bench", url=url, heartbeat=None)
    s.wait_for("account_update", count=n, timeout=120)
    rate = n / (time.perf_counter() - t0)
    assert len(s.account) == n
    s.stop()
    return rate


async def bare_stages(url: str, n: int) -> dict[str, float]:
    from websockets.asyncio.client import connect

    pc = time.perf_counter
    loads = 0.0
    t0 = pc()
    async with connect(url + "/ws/agents/bench", compression=None, max_size=2**24) as ws:
        async for msg in ws:
            t = pc()
            json.loads(msg)
            loads += pc() - t
    total = pc() - t0
    return {"json.loads": loads, "websockets (reading, framing, recv)": total - loads, "total": total}


def ours_stages(url: str, n: int) -> dict[str, float]:
    """rn.connect with timers around its stages (AgentStream._read's helpers)."""
    import roma_notebook as rn
    from roma_notebook.live import stream
    from roma_notebook.core.tables import Tables

    pc = time.perf_counter
    spent = {"taking queued frames": 0.0, "Tables.ingest_many (parse + append)": 0.0, "handling a burst": 0.0}
    take, ingest_many, handle = stream._take_queued, Tables.ingest_many, stream.AgentStream._handle

    def timed(fn, key):
        def wrapper(*a, **kw):
            t = pc()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] += pc() - t

        return wrapper

    stream._take_queued = timed(take, "taking queued frames")
    Tables.ingest_many = timed(ingest_many, "Tables.ingest_many (parse + append)")
    stream.AgentStream._handle = timed(handle, "handling a burst")
    try:
        t0 = pc()
        s = rn.connect("bench", url=url, heartbeat=None)
        s.wait_for("account_update", count=n, timeout=120)
        total = pc() - t0
        s.stop()
    finally:
        stream._take_queued, Tables.ingest_many, stream.AgentStream._handle = take, ingest_many, handle
    burst = spent.pop("handling a burst")
    spent["counters, waiters"] = burst - spent["Tables.ingest_many (parse + append)"]
    spent["websockets (reading, framing, recv), connect"] = total - burst - spent["taking queued frames"]
    spent["total"] = total
    return spent


def stages(n: int) -> None:
    proc, url = start_server("burst", str(n))
    try:
        b = asyncio.run(bare_stages(url, n))
        o = ours_stages(url, n)
    finally:
        proc.kill()
    print(f"\n## Where a frame's time goes (one timed pass each, {n:,} frames)\n")
    print("| client | stage | µs per frame |")
    print("|---|---|---|")
    for name, spent in (("bare", b), ("rn.connect", o)):
        for stage, sec in spent.items():
            print(f"| {name} | {stage} | {sec / n * 1e6:.2f} |")


def throughput(n: int, rounds: int) -> tuple[list[float], list[float]]:
    proc, url = start_server("burst", str(n))
    try:
        b, o = [], []
        for _ in range(rounds):
            b.append(asyncio.run(bare(url, n)))
            o.append(ours(url, n))
        return b, o
    finally:
        proc.kill()


def latency(rate: float, seconds: float) -> np.ndarray:
    import roma_notebook as rn

    proc, url = start_server("paced", str(rate), str(seconds))
    try:
        s = rn.connect("bench", url=url, heartbeat=None)
        n = int(rate * seconds)
        s.wait_for("account_update", count=n, timeout=seconds * 3 + 30)
        acc = s.account
        s.stop()
        lat = (acc["received_at"] - acc["timestamp"]).dt.total_seconds().to_numpy() * 1000
        return lat
    finally:
        proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--stages", action="store_true", help="also time each stage of both clients")
    a = ap.parse_args()
    b, o = throughput(a.n, a.rounds)
    lat = latency(a.rate, a.seconds)
    ratio = statistics.median(o) / statistics.median(b)
    print(f"\n## Transport ({a.n:,} frames x {a.rounds} rounds, server in another process)\n")
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| bare websockets recv + json.loads | {statistics.median(b):,.0f} msg/s | baseline |")
    print(f"| rn.connect into tables | {statistics.median(o):,.0f} msg/s | |")
    print(f"| ratio ours / bare | {ratio:.2f} | >= 1.0 |")
    print(f"| send->row latency p50 at {a.rate:.0f} msg/s | {np.percentile(lat, 50):.2f} ms | |")
    print(f"| send->row latency p99 at {a.rate:.0f} msg/s | {np.percentile(lat, 99):.2f} ms | < 10 ms |")
    if a.stages:
        stages(a.n)


if __name__ == "__main__":
    main()
