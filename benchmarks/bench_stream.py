"""End-to-end ingest over loopback: ``rn.connect`` against a bare websockets loop.

    python benchmarks/bench_stream.py [--n 200000] [--rounds 3] [--rate 1000] [--seconds 5]

The server (benchmarks/firehose_server.py) runs in another process. Throughput
alternates bare and library rounds so machine noise hits both alike; the ratio is
what to read. Latency is ``received_at - timestamp`` of each row at a paced rate:
both clocks are this machine's, and a row is visible right after it is stamped.
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


if __name__ == "__main__":
    main()
