"""rn.compare cost: six agents x one month of hourly points, against plain baselines.

Run: ``python benchmarks/bench_compare.py [--agents 6] [--days 30] [--n-boot 2000] [--repeat 5]``

What it measures, in one run (the machines are shared and noisy, so ratios matter):

- ``compare(metric="sharpe")``: the block bootstrap (2,000 resamples) of every agent and
  every pair's paired difference, from the account table to the result;
- baseline 1: ``metrics()`` of the same tables (no pairs; its intervals use 1,000
  resamples per agent);
- baseline 2: a plain numpy annualised Sharpe of each agent's hourly returns (the
  number a leaderboard shows, with no interval).

The target is under 2 s for compare(). Prints a markdown table (median of ``--repeat``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import roma_notebook as rn  # noqa: E402


def tables(n_agents: int, days: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = days * 24 + 1
    t = pd.Timestamp("2025-11-01T00:00:00Z") + pd.to_timedelta(np.arange(n), unit="h")
    parts = []
    for i in range(n_agents):
        r = rng.normal(0.0001 * i, 0.004, n - 1)
        v = 10_000.0 * np.cumprod(np.concatenate([[1.0], 1.0 + r]))
        parts.append(pd.DataFrame({"agent_id": f"agent-{i}", "timestamp": t, "received_at": t,
                                   "seq": np.arange(n), "total_balance": v}))
    return {"account": pd.concat(parts, ignore_index=True)}


def timed(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=6)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    tb = tables(a.agents, a.days)
    acc = tb["account"]

    def plain() -> None:
        for _, g in acc.groupby("agent_id"):
            v = g["total_balance"].to_numpy()
            r = v[1:] / v[:-1] - 1.0
            r.mean() / r.std(ddof=1) * np.sqrt(8760)

    rn.compare(tb, n_boot=50)  # warm imports
    t_cmp = timed(lambda: rn.compare(tb, "sharpe", n_boot=a.n_boot), a.repeat)
    t_met = timed(lambda: rn.metrics(tb), a.repeat)
    t_np = timed(plain, a.repeat)
    pairs = a.agents * (a.agents - 1) // 2
    print(f"{a.agents} agents x {a.days} days hourly ({a.days * 24} returns each), "
          f"{a.n_boot} resamples, {pairs} pairs\n")
    print("| what | median time | vs compare |")
    print("|---|---|---|")
    print(f"| rn.compare(metric='sharpe') | **{t_cmp:.3f} s** | 1.0 |")
    print(f"| rn.metrics() (intervals, no pairs) | {t_met:.3f} s | {t_met / t_cmp:.2f} |")
    print(f"| plain numpy Sharpe, no interval | {t_np * 1000:.2f} ms | {t_np / t_cmp:.4f} |")
    print(f"\ntarget: compare under 2 s -> {'met' if t_cmp < 2.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
