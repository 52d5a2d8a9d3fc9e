"""Benchmark: rn.load of a ROMA-01 SQLite store vs pandas ``read_sql`` of the same query.

Builds a store with the current backend's schema (``roma_notebook.sim.store_writer.SCHEMA``)
holding N ``decision_logs`` rows of six agents (a cycle every 3 minutes each,
~300-character reasoning, one to three decision items as the backend stores
them, positions on one row in four, NULL otherwise, a few ids out of time
order), then measures in the same run:

- ``read_sql``: ``pandas.read_sql`` of ``SELECT id, timestamp, agent_id,
  cycle_number, chain_of_thought, decisions, positions FROM decision_logs ORDER
  BY timestamp, id`` on a plain ``sqlite3`` connection: the rows as raw text
  columns, nothing parsed;
- ``read_sql + json``: the same, plus ``json.loads`` of every ``decisions`` cell
  (what any use of the decisions needs at least);
- ``rn.load``: the library's load (read-only, paged statements, local-time
  conversion, every record through the protocol readers, ``cycles`` and
  ``decisions`` tables built).

Usage::

    python benchmarks/bench_store.py             # 1,000,000 rows (~1.5 minutes, ~0.5 GB of temp disk)
    python benchmarks/bench_store.py --n 100000

Prints one line per step (wall seconds, rows/s) and the ratio rn.load / read_sql.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from roma_notebook.store.loading import load  # noqa: E402
from roma_notebook.sim.store_writer import SCHEMA, local_text, zone  # noqa: E402

__all__ = ["make_store", "main", "QUERY"]

AGENTS = ("deepseek-chat-v3.1", "qwen3-max", "claude-sonnet-4.5", "grok-4", "gemini-2.5-pro", "gpt-5")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "DOGEUSDT", "XRPUSDT")
T0 = 1_764_633_600 * 10**9  # 2025-12-02T00:00:00Z
QUERY = ("SELECT id, timestamp, agent_id, cycle_number, chain_of_thought, decisions, positions "
         "FROM decision_logs ORDER BY timestamp, id")


def _decisions(k: int) -> str | None:
    items = []
    for j in range(1 + k % 3):
        sym = SYMBOLS[(k + j) % len(SYMBOLS)]
        if j == 0 and k % 5 == 0:
            items.append({"action": "open_long", "symbol": sym, "confidence": 0.72, "leverage": 5,
                          "position_size_usd": 1500.0 + k % 100, "stop_loss": 61_000.0, "take_profit": 72_000.0,
                          "reasoning": "RSI rebound from oversold with rising volume; trend filter agrees."})
        else:
            items.append({"action": "hold", "symbol": sym, "confidence": 0.6,
                          "reasoning": "Thesis intact, no change to stops."})
    return json.dumps(items)


_POS = json.dumps([{"symbol": "BTCUSDT", "side": "long", "position_amt": 0.015, "entry_price": 68_000.0,
                    "mark_price": 68_120.5, "unrealized_profit": 1.8, "leverage": 5, "liquidation_price": 54_500.0}])
_COT = ("Market scan: BTC holds above the 20-EMA with RSI 54, ETH lags with MACD flat, SOL breaks the "
        "range high on volume. Account equity steady, margin use 24%. Keeping the BTC long; no new entry "
        "clears the bar this cycle, waiting for confirmation on SOL before sizing in. ") * 1


def make_store(path: Path, n: int, tz: str = "UTC") -> None:
    """A store at ``path`` with ``n`` decision_logs rows (ids a little out of time order)."""
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    z = zone(tz)
    acc = json.dumps({"total_wallet_balance": 10_050.25, "available_balance": 8_525.0,
                      "total_unrealized_profit": 50.25, "gross_total_balance": 10_050.25,
                      "adjusted_total_balance": 10_001.0, "net_deposits": 49.25, "external_cash_flow": 0.0})
    decisions = [_decisions(k) for k in range(30)]
    stamps: dict[int, str] = {}

    def rows():
        for i in range(n):
            # out-of-order writes: every 50th row is inserted one step late
            k = i + 1 if i % 50 == 0 and i + 1 < n else (i - 1 if i % 50 == 1 else i)
            agent = AGENTS[k % len(AGENTS)]
            cycle = k // len(AGENTS) + 1
            t = T0 + cycle * 180 * 10**9 + (k % len(AGENTS)) * 1_000_000
            text = stamps.get(t)
            if text is None:
                text = local_text(t, z)
                if len(stamps) > 10_000:
                    stamps.clear()
                stamps[t] = text
            yield (agent, cycle, text, _COT, decisions[k % 30], acc, _POS if k % 4 == 0 else None)

    with con:
        con.executemany(
            "INSERT INTO decision_logs (agent_id, cycle_number, timestamp, chain_of_thought, decisions, "
            "account_state, positions) VALUES (?, ?, ?, ?, ?, ?, ?)", rows())
    con.close()


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="decision_logs rows (default 1,000,000)")
    ap.add_argument("--tz", default="Asia/Shanghai", help="the store's local zone (default Asia/Shanghai)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        db = tmp / "roma_trading.db"
        t_make, _ = _timed(lambda: make_store(db, args.n, args.tz))
        size = db.stat().st_size
        print(f"store: {args.n:,} decision_logs rows, {size / 1e6:.0f} MB, written in {t_make:.1f} s")

        def read_sql():
            con = sqlite3.connect(db)
            try:
                return pd.read_sql(QUERY, con)
            finally:
                con.close()

        def read_sql_json():
            df = read_sql()
            loads = json.loads
            df["decisions"] = [loads(x) if x is not None else [] for x in df["decisions"]]
            return df

        def rn_load():
            rec = load(db, tz=args.tz, progress=False)
            rec.cycles, rec.decisions  # materialise the tables
            return rec

        # alternate, best of two each: the machines are shared and noisy
        res: dict[str, list[float]] = {"read_sql": [], "read_sql + json": [], "rn.load": []}
        for _ in range(2):
            for name, fn in (("read_sql", read_sql), ("read_sql + json", read_sql_json), ("rn.load", rn_load)):
                t, out = _timed(fn)
                res[name].append(t)
                if name == "rn.load":
                    assert len(out.cycles) == args.n, (len(out.cycles), args.n)
                    n_dec = len(out.decisions)
                del out
        best = {k: min(v) for k, v in res.items()}
        for name, t in best.items():
            print(f"{name:16s} {t:7.2f} s  {args.n / t:>10,.0f} rows/s")
        print(f"rn.load built {args.n:,} cycles rows and {n_dec:,} decisions rows")
        print(f"ratio rn.load / read_sql (rows/s): {best['read_sql'] / best['rn.load']:.2f}; "
              f"rn.load / (read_sql + json): {best['read_sql + json'] / best['rn.load']:.2f}")
        return best
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
