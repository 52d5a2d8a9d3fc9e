"""Analytics on a Parquet export: pandas (``rn.load``) vs dask (``engine="dask"``), one run.

Run: ``python benchmarks/bench_dask.py [--agents 8] [--rows 200000] [--fills 2000]``

Writes an export of ``--agents`` agents with ``--rows`` account rows and
``--fills`` fills each, then times, on the same export and in the same process:

- *pandas*: ``rn.load(export)`` then the function (everything in memory);
- *dask*: ``rn.load(export, engine="dask")`` then the function: one task per agent
  on dask's default (threaded) scheduler, each reading only its agent's files.

Both results must be equal. The figures are wall-clock seconds (median of
``--repeat``) and their ratio; on a small machine dask pays its scheduling, its
win is memory (an agent at a time) and spreading agents over a cluster.

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

import roma_notebook as rn  # noqa: E402
from roma_notebook.core import protocol as P  # noqa: E402
from roma_notebook.core.tables import Tables  # noqa: E402

T0 = 1_750_000_000 * 10**9
SEC = 10**9


def make_export(root: Path, agents: int, rows: int, fills: int) -> Path:
    t = Tables()
    for a in range(agents):
        agent = f"agent-{a}"
        app = t.append
        for i in range(rows):
            ts = T0 + i * 10 * SEC
            app(agent, P.AccountUpdate(ts, 10_000 + 80 * math.sin(i / (900 + 50 * a)) + (i % 31) * 0.2,
                                       9_000.0, 3 * math.cos(i / 77), 12.0), ts)
        for k in range(fills):
            ts = T0 + k * (rows // max(fills, 1)) * 10 * SEC
            side = "long" if k % 2 == 0 else "short"
            app(agent, P.TradeExecuted(ts, f"{agent}-o{k}", ("BTCUSDT", "ETHUSDT")[k % 4 // 2], side,
                                       0.1, 60_000.0 + 40 * math.sin(k / 7 + a), 10, "FILLED"), ts)
    return rn.Recording(t).to_parquet(root / "export")


def timed(fn, repeat: int) -> tuple[float, pd.DataFrame]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--rows", type=int, default=200_000, help="account rows per agent")
    ap.add_argument("--fills", type=int, default=2_000, help="fills per agent")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        export = make_export(Path(tmp), args.agents, args.rows, args.fills)
        make_s = time.perf_counter() - t
        print(f"## Analytics on a Parquet export: pandas vs dask ({args.agents} agents x "
              f"{args.rows:,} account rows + {args.fills:,} fills)\n")
        print("| function | pandas: load + compute (s) | dask: per agent on dask (s) | dask / pandas |")
        print("|---|---|---|---|")
        for fn in (rn.metrics, rn.equity, rn.round_trips):
            p_s, p_out = timed(lambda: fn(rn.load(export, progress=False)), args.repeat)
            d_s, d_out = timed(lambda: fn(rn.load(export, engine="dask")), args.repeat)
            pd.testing.assert_frame_equal(d_out, p_out)  # same numbers, or no figure
            print(f"| `rn.{fn.__name__}` | {p_s:.2f} | {d_s:.2f} | {d_s / p_s:.2f} |")
        print(f"\n(writing the export took {make_s:.1f} s; not part of any measure)")


if __name__ == "__main__":
    main()
