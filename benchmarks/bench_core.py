"""In-process core benchmark: ``protocol.parse`` + ``Tables`` against the usual
alternatives, and DataFrame access and memory at 1M rows.

    python benchmarks/bench_core.py [--n 200000] [--rounds 3] [--concat-n 2000] [--rows 1000000]

Everything is measured in the same run on the same recorded-like frames (~250 bytes,
mostly ``account_update`` and ``position_update``, some decisions, fills and status
messages), so the ratios are what to read: these machines are noisy. No sockets
here; ``bench_stream.py`` measures ingest over loopback.

Compared loops, each from frame text to DataFrames of the same tables:

- ours: ``Tables.ingest`` per frame (parse, validate, columnar append), then one
  ``frame()`` per table at the end;
- concat: ``json.loads`` then ``pd.concat`` of a one-row DataFrame per message;
- lists: ``json.loads``, append fields to per-column lists, one DataFrame per table
  at the end (no validation, no dedupe, no thread safety);
- bare: ``json.loads`` alone, the floor of any Python client.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pandas as pd  # noqa: E402

from roma_notebook.core import protocol as P  # noqa: E402
from roma_notebook.core.tables import Tables  # noqa: E402

AGENT = "deepseek-chat-v3.1"
CLOCK = time.process_time  # rates: CPU seconds of this single-threaded process
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "DOGEUSDT", "XRPUSDT")
BASE_NS = P.parse_time("2025-11-02T10:30:00Z")


# ------------------------------------------------------------------ recorded-like frames


def make_frames(n: int, seed: int = 7) -> list[str]:
    """A realistic message mix: 46% account, 46% positions, 4% decisions, 2% fills, 2% status."""
    rng = random.Random(seed)
    balance, cycle, order = 10_000.0, 100, 5_000_000
    frames = []
    for i in range(n):
        stamp = P.format_time(BASE_NS + i * 50_000_000)  # 20 msg/s of market time
        r = rng.random()
        if r < 0.46:
            balance += rng.gauss(0, 5)
            upnl = rng.gauss(0, 40)
            data = {
                "total_balance": round(balance + upnl, 2),
                "available_balance": round(balance * 0.85, 2),
                "unrealized_pnl": round(upnl, 2),
                "used_percentage": round(rng.uniform(5, 40), 1),
            }
            msg = {"type": "account_update", "timestamp": stamp, "data": data}
        elif r < 0.92:
            sym = rng.choice(SYMBOLS)
            entry = rng.uniform(0.1, 70_000)
            mark = entry * (1 + rng.gauss(0, 0.01))
            amt = round(rng.uniform(0.001, 2), 3)
            data = [
                {
                    "symbol": sym,
                    "side": rng.choice(("long", "short")),
                    "position_amt": amt,
                    "entry_price": round(entry, 2),
                    "mark_price": round(mark, 2),
                    "unrealized_profit": round((mark - entry) * amt, 2),
                    "pnl_percentage": round((mark / entry - 1) * 100, 2),
                    "leverage": rng.choice((3, 5, 10)),
                }
            ]
            msg = {"type": "position_update", "timestamp": stamp, "data": data}
        elif r < 0.96:
            cycle += 1
            items = [
                {
                    "action": rng.choice(("open_long", "open_short", "close_long", "hold")),
                    "symbol": rng.choice(SYMBOLS),
                    "quantity": round(rng.uniform(0.001, 1), 3),
                    "leverage": rng.choice((3, 5, 10)),
                    "reason": "Breakout above resistance with volume confirmation",
                }
                for _ in range(rng.choice((1, 1, 2)))
            ]
            data = {
                "cycle": cycle,
                "agent_id": AGENT,
                "ai_reasoning": "BTC showing strong bullish momentum with RSI(7) at 75.3...",
                "decisions": items,
            }
            msg = {"type": "decision", "timestamp": stamp, "data": data}
        elif r < 0.98:
            order += 1
            data = {
                "order_id": str(order),
                "symbol": rng.choice(SYMBOLS),
                "side": rng.choice(("long", "short")),
                "quantity": round(rng.uniform(0.001, 1), 3),
                "price": round(rng.uniform(0.1, 70_000), 2),
                "leverage": 10,
                "status": "filled",
            }
            msg = {"type": "trade_executed", "timestamp": stamp, "data": data}
        else:
            data = {
                "agent_id": AGENT,
                "is_running": True,
                "cycle_count": cycle,
                "last_decision_time": stamp,
            }
            msg = {"type": "agent_status", "timestamp": stamp, "data": data}
        frames.append(json.dumps(msg))
    return frames


TABLES_USED = ("account", "positions", "position_history", "cycles", "decisions", "trades", "status")


# ------------------------------------------------------------------ the four loops


def run_ours(frames: list[str]) -> float:
    t = Tables()
    ingest = t.ingest
    gc.collect()
    t0 = CLOCK()
    for f in frames:
        ingest(AGENT, f)
    for name in TABLES_USED:
        t.frame(name)
    dt = CLOCK() - t0
    assert t.counts()["errors"] == 0
    return len(frames) / dt


def _rows(msg: dict, received: pd.Timestamp) -> list[tuple[str, dict]]:
    """Flatten one message into (table, row) pairs, as a hand-written client would."""
    kind, data = msg["type"], msg["data"]
    head = {"agent_id": AGENT, "timestamp": pd.Timestamp(msg["timestamp"]), "received_at": received}
    if kind == "account_update":
        return [("account", {**head, **data})]
    if kind == "position_update":
        return [("position_history", {**head, **p}) for p in data]
    if kind == "decision":
        rows = [("cycles", {**head, "cycle": data["cycle"], "ai_reasoning": data["ai_reasoning"],
                            "n_decisions": len(data["decisions"])})]
        rows += [("decisions", {**head, "cycle": data["cycle"], **it}) for it in data["decisions"]]
        return rows
    if kind == "trade_executed":
        return [("trades", {**head, **data})]
    return [("status", {**head, **{k: v for k, v in data.items() if k != "agent_id"}})]


def run_concat(frames: list[str]) -> float:
    tables: dict[str, pd.DataFrame] = {}
    gc.collect()
    t0 = CLOCK()
    for f in frames:
        msg = json.loads(f)
        now = pd.Timestamp.now(tz="UTC")
        for name, row in _rows(msg, now):
            one = pd.DataFrame([row])
            old = tables.get(name)
            tables[name] = one if old is None else pd.concat([old, one], ignore_index=True)
    return len(frames) / (CLOCK() - t0)


def run_lists(frames: list[str]) -> float:
    gc.collect()
    t0 = CLOCK()
    cols: dict[str, dict[str, list]] = {}
    loads = json.loads
    for f in frames:
        msg = loads(f)
        kind, data, stamp = msg["type"], msg["data"], msg["timestamp"]
        now = time.time_ns()
        if kind == "account_update":
            c = cols.setdefault("account", {k: [] for k in ("timestamp", "received_at", *data)})
            c["timestamp"].append(stamp)
            c["received_at"].append(now)
            for k, v in data.items():
                c[k].append(v)
        elif kind == "position_update":
            for p in data:
                c = cols.setdefault("position_history", {k: [] for k in ("timestamp", "received_at", *p)})
                c["timestamp"].append(stamp)
                c["received_at"].append(now)
                for k, v in p.items():
                    c[k].append(v)
        elif kind == "decision":
            c = cols.setdefault("cycles", {k: [] for k in ("timestamp", "received_at", "cycle", "ai_reasoning", "n_decisions")})
            c["timestamp"].append(stamp)
            c["received_at"].append(now)
            c["cycle"].append(data["cycle"])
            c["ai_reasoning"].append(data["ai_reasoning"])
            c["n_decisions"].append(len(data["decisions"]))
            for it in data["decisions"]:
                c = cols.setdefault("decisions", {k: [] for k in ("timestamp", "received_at", "cycle", *it)})
                c["timestamp"].append(stamp)
                c["received_at"].append(now)
                c["cycle"].append(data["cycle"])
                for k, v in it.items():
                    c[k].append(v)
        else:
            name = "trades" if kind == "trade_executed" else "status"
            c = cols.setdefault(name, {k: [] for k in ("timestamp", "received_at", *data)})
            c["timestamp"].append(stamp)
            c["received_at"].append(now)
            for k, v in data.items():
                c[k].append(v)
    for c in cols.values():
        df = pd.DataFrame(c)
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
        df["received_at"] = pd.to_datetime(df["received_at"], utc=True)
        df["agent_id"] = AGENT
    return len(frames) / (CLOCK() - t0)


def run_bare(frames: list[str]) -> float:
    loads = json.loads
    gc.collect()
    t0 = CLOCK()
    for f in frames:
        loads(f)
    return len(frames) / (CLOCK() - t0)


# ------------------------------------------------------------------ access and memory


def fill_account(rows: int) -> Tables:
    t = Tables()
    append = t.append
    base = time.time_ns()
    for i in range(rows):
        b = 10_000.0 + (i % 1000) * 0.25
        append(AGENT, P.AccountUpdate(BASE_NS + i * 1_000_000, b, b * 0.85, b - 10_000.0, 15.0), base + i, i)
    return t


def _rss() -> int:
    """Resident set size in bytes (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def access(rows: int) -> tuple[float, float, float, float]:
    fill_account(1000).frame("account")  # imports and first-call costs out of the way
    gc.collect()
    rss0 = _rss()
    t = fill_account(rows)
    gc.collect()
    t0 = time.perf_counter()
    df = t.frame("account")
    first = time.perf_counter() - t0
    assert len(df) == rows
    del df
    gc.collect()
    rss_per_row = (_rss() - rss0) / rows
    repeats = []
    for _ in range(200):
        t0 = time.perf_counter()
        t.frame("account")
        repeats.append(time.perf_counter() - t0)
    repeat = statistics.median(repeats)
    tb = t._t["account"]  # cache + pending, as Tables.stats() counts them, but deep
    deep = int(tb.cache.memory_usage(deep=True, index=True).sum())
    return first, repeat, deep / rows, rss_per_row


# ------------------------------------------------------------------ report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="frames per ingest round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the fast loops (best is kept)")
    ap.add_argument("--concat-n", type=int, default=2_000, help="frames for the pd.concat loop")
    ap.add_argument("--rows", type=int, default=1_000_000, help="account rows for the access test")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    # first, while the heap is fresh, so the RSS cross-check sees only these rows
    first, repeat, deep_per_row, rss_per_row = access(args.rows)
    frames = make_frames(args.n)
    size = statistics.mean(len(f.encode()) for f in frames[:10_000])
    print(f"{len(frames):,} frames, mean {size:.0f} bytes; python {sys.version.split()[0]}, pandas {pd.__version__}")

    ours, lists, bare, concat = [], [], [], []
    for _ in range(args.rounds):  # interleaved, so noise hits every loop alike
        ours.append(run_ours(frames))
        lists.append(run_lists(frames))
        bare.append(run_bare(frames))
        concat.append(run_concat(frames[: args.concat_n]))
    o, li, b, c = max(ours), max(lists), max(bare), max(concat)

    def ok(good: bool) -> str:
        return "yes" if good else "**NO**"

    print()
    print("| measure | result | target | met |")
    print("|---|---:|---|---|")
    print(f"| ingest, protocol + tables (msg/s) | {o:,.0f} | | |")
    print(f"| per-message `pd.concat` (msg/s, n={args.concat_n:,}) | {c:,.0f} | | |")
    print(f"| lists, then one DataFrame (msg/s) | {li:,.0f} | | |")
    print(f"| bare `json.loads` (msg/s) | {b:,.0f} | | |")
    print(f"| ours / concat | {o / c:,.0f}x | > 100x | {ok(o / c > 100)} |")
    print(f"| ours / lists | {o / li:.2f}x | (reference) | |")
    print(f"| ours / bare json.loads | {o / b:.2f}x | (floor) | |")
    print(f"| {args.rows:,} account rows, first access (s) | {first:.3f} | < 0.25 s | {ok(first < 0.25)} |")
    print(f"| repeat access, no new data (ms) | {repeat * 1e3:.3f} | < 1 ms | {ok(repeat < 1e-3)} |")
    print(f"| bytes per stored account row | {deep_per_row:.0f} | < 120 | {ok(deep_per_row < 120)} |")
    print()
    print(
        "Rates: CPU time of this process (`time.process_time`, so other load on the machine "
        f"skews them less), best of {args.rounds} interleaved rounds per loop. Access times: "
        "wall clock. Bytes per row: `memory_usage(deep=True)` of the materialised account "
        "DataFrame (pending buffers are empty after access; the numeric columns are views of "
        "the buffers they were appended to); cross-check, resident-set growth over fill + "
        f"first access: {rss_per_row:.0f} bytes/row. Total {time.perf_counter() - t_start:.1f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
