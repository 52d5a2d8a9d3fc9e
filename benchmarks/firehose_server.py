"""A minimal frame server for the transport benchmarks, run as its own process.

    python benchmarks/firehose_server.py burst N      # N frames per connection, as fast as possible
    python benchmarks/firehose_server.py paced RATE S # RATE frames/s for S seconds, stamped at send

Prints ``PORT <n>`` on stdout once it listens on 127.0.0.1 (port 0). Frames are
documented ``account_update`` messages of ~250 bytes built with the library's own
encoder; paced frames carry the send time (µs) as their ``timestamp``.
"""

from __future__ import annotations

import asyncio
import sys
import time

from websockets.asyncio.server import serve

from roma_notebook.core import protocol as P


def frame(i: int, ts_ns: int | None) -> str:
    return P.encode(P.AccountUpdate(ts_ns, 10_000.0 + i * 0.01, 8_500.0 + i * 0.02, 50.25, 15.0 + (i % 7)))


async def main() -> None:
    mode = sys.argv[1]
    if mode == "burst":
        n = int(sys.argv[2])
        base = time.time_ns()
        frames = [frame(i, base + i * 1000).encode() for i in range(n)]

        async def handler(ws):
            # Batch frames into one write per 256: the server must out-run the
            # client, or the benchmark measures the server. send_context is
            # websockets' own write path (what ws.send uses per frame).
            for start in range(0, n, 256):
                async with ws.send_context():
                    for f in frames[start : start + 256]:
                        ws.protocol.send_text(f)
            await ws.close()

    else:
        rate, seconds = float(sys.argv[2]), float(sys.argv[3])

        async def handler(ws):
            loop = asyncio.get_running_loop()
            start = loop.time()
            i = 0
            total = int(rate * seconds)
            while i < total:
                due = start + i / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await ws.send(frame(i, time.time_ns()))
                i += 1
            await ws.close()

    async with serve(handler, "127.0.0.1", 0, compression=None, max_queue=None) as srv:
        print("PORT", srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
