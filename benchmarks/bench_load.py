"""Benchmark: write and load N recorded frames (JSONL.gz, plain JSONL, Parquet).

Measures, for a realistic mix of frames from six agents (account and position
updates most often, decisions, fills and status less, ~1% bad frames):

- ingest (no file): ``Tables.ingest`` of the frames in memory, the floor a
  recording load cannot beat (it replays every frame through it);
- write: ``Recorder.write`` for every frame, then ``close`` (gzip level 3);
- load JSONL.gz / JSONL: ``roma_notebook.load`` replaying every frame through
  ``Tables.ingest`` and materialising every table;
- export: ``to_parquet`` of the loaded recording;
- load Parquet: ``roma_notebook.load`` of the export, every table materialised;
- memory: a second load of the JSONL.gz under ``tracemalloc`` (not timed: tracing
  slows Python several times), its peak of traced allocations against the deep size
  of the final DataFrames (target: peak below 2x the DataFrames).

Usage::

    python benchmarks/bench_load.py            # 1,000,000 frames (~1.5 minutes)
    python benchmarks/bench_load.py --n 100000

Prints one line per step: wall and CPU seconds, frames/s (or rows/s), file size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import roma_notebook.core.protocol as P  # noqa: E402
from roma_notebook.store.loading import load  # noqa: E402
from roma_notebook.store.parquet import to_parquet  # noqa: E402
from roma_notebook.store.recording import Recorder  # noqa: E402
from roma_notebook.core.tables import TABLE_NAMES, Tables  # noqa: E402

__all__ = ["make_frames", "main"]

AGENTS = ("deepseek-chat-v3.1", "qwen3-max", "claude-sonnet-4.5", "grok-4", "gemini-2.5-pro", "gpt-5")
T0 = P.parse_time("2025-11-02T10:30:00Z")


def make_frames(n: int) -> list[tuple[str, int, str | bytes]]:
    """``n`` (agent, receive ns, frame) triples; a few distinct texts reused cheaply."""
    templates: list[list[str | bytes]] = []
    for k in range(50):
        t = T0 + k * 1_000_000_000
        bal = 10_000.0 + 3.25 * k
        templates.append([
            P.encode(P.AccountUpdate(t, bal, bal * 0.85, 12.5 + k, 14.0)),
            P.encode(P.AccountUpdate(t + 1, bal + 1.0, bal * 0.85, 13.0 + k, 14.0)),
            P.encode(P.PositionUpdate(t, (
                P.Position("BTCUSDT", "long", 0.015, 68_000.0, 68_100.0 + k, 1.5, 0.2, 10, 61_000.0),
                P.Position("ETHUSDT", "short", 0.5, 2_450.0, 2_440.0 - k, 5.0, 0.4, 5, 2_900.0),
            ))),
            P.encode(P.AgentStatus(t, "x", True, k, t)),
            P.encode(P.AccountUpdate(t + 2, bal + 2.0, bal * 0.85, 14.0 + k, 14.0)),
            P.encode(P.PositionUpdate(t, ())),
            P.encode(P.AccountUpdate(t + 3, bal + 3.0, bal * 0.85, 15.0 + k, 14.0)),
        ])
    out = []
    cycle = {a: 0 for a in AGENTS}
    for i in range(n):
        agent = AGENTS[i % len(AGENTS)]
        recv = T0 + i * 1_000_000  # 1,000 frames/s
        r = i % 100
        if r == 0:
            cycle[agent] += 1
            frame: str | bytes = P.encode(P.Decision(recv, cycle[agent], agent, "BTC breaks out; ETH lags.", (
                P.DecisionItem("open_long", "BTCUSDT", 0.01, 10, "momentum", 800.0, 66_000.0, 72_000.0),
                P.DecisionItem("hold", None, float("nan"), None, None, float("nan"), float("nan"), float("nan")),
            )))
        elif r == 1:
            frame = P.encode(P.TradeExecuted(recv, f"{agent}-{i}", "BTCUSDT", "long", 0.01, 68_450.0, 10, "filled"))
        elif r == 2:
            frame = "not json {" if i % 200 == 2 else b"\x00\x01binary"
        else:
            tpl = templates[(i // 7) % len(templates)]
            frame = tpl[i % len(tpl)]
        out.append((agent, recv, frame))
    return out


def _stdlib_floor(path: Path) -> int:
    """gunzip + json.loads of every line and of its text frame; nothing kept."""
    import gzip
    import json

    opener = gzip.open if path.suffix == ".gz" else open
    n = 0
    loads = json.loads
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            rec = loads(line)
            frame = rec.get("frame")
            if type(frame) is str and not rec.get("binary"):
                try:
                    loads(frame)
                except ValueError:
                    pass
            elif "msg" in rec:  # version 2 lines carry the frame as JSON already
                pass
            n += 1
    return n


def _rows(rec) -> int:
    return sum(len(rec.frame(n)) for n in TABLE_NAMES)


def _peak_vs_final(path: Path) -> tuple[int, int]:
    """Traced peak bytes of loading ``path`` and the deep size of its final DataFrames.

    Only allocations made during the load count (tracing starts just before it),
    so the frames list and earlier results held by the caller stay out of it.
    """
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        loaded = load(path, progress=False)
        frames = [loaded.frame(n) for n in TABLE_NAMES]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    final = sum(int(df.memory_usage(index=True, deep=True).sum()) for df in frames)
    return peak, final


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="frames (default: %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)
    n = args.n
    tmp = Path(tempfile.mkdtemp(prefix="bench_load_"))
    try:
        t = time.perf_counter()
        frames = make_frames(n)
        print(f"{n:,} frames generated in {time.perf_counter() - t:.1f} s (not counted)")

        results = []
        # Baseline in the same run (machines are noisy): what a live stream's
        # Tables.ingest costs for these frames, with no file involved.
        t, c = time.perf_counter(), time.process_time()
        base = Tables()
        ingest = base.ingest
        for a, ns, f in frames:
            ingest(a, f, ns, "recording")
        for name in TABLE_NAMES:
            base.frame(name)
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        results.append(("ingest (no file)", dt, cpu, n / dt, "frames/s", 0))
        del base, ingest

        floor_rate: dict[str, float] = {}
        for suffix in (".jsonl.gz", ".jsonl"):
            path = tmp / f"session{suffix}"
            t, c = time.perf_counter(), time.process_time()
            with Recorder(path, url="ws://localhost:8000", agent_ids=AGENTS) as rec:
                write = rec.write
                for a, ns, f in frames:
                    write(a, ns, f)
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            size = os.path.getsize(path)
            results.append((f"write {suffix}", dt, cpu, n / dt, "frames/s", size))

            # The floor a hand-written loader reaches with the stdlib: decompress,
            # split lines, json.loads each line and its inner text frame, keep nothing.
            t, c = time.perf_counter(), time.process_time()
            _stdlib_floor(path)
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            floor_rate[suffix] = n / dt
            results.append((f"floor {suffix}", dt, cpu, n / dt, "frames/s", size))

            t, c = time.perf_counter(), time.process_time()
            loaded = load(path, progress=False)
            rows = _rows(loaded)
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            results.append((f"load {suffix}", dt, cpu, n / dt, "frames/s", size))
            print(f"  {suffix}: {rows:,} rows, {len(loaded.errors):,} errors rows; "
                  f"load = {n / dt / floor_rate[suffix]:.2f}x the stdlib floor")

        t, c = time.perf_counter(), time.process_time()
        out = to_parquet(loaded, tmp / "export")
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        results.append(("export parquet", dt, cpu, rows / dt, "rows/s", size))

        t, c = time.perf_counter(), time.process_time()
        back = load(out, progress=False)
        rows_back = _rows(back)
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        results.append(("load parquet", dt, cpu, rows_back / dt, "rows/s", size))
        assert rows_back == rows, (rows_back, rows)

        peak, final = _peak_vs_final(tmp / "session.jsonl.gz")
        print(f"  memory: load .jsonl.gz peaks at {peak / 1e6:,.1f} MB traced for "
              f"{final / 1e6:,.1f} MB of final DataFrames = {peak / final:.2f}x (target < 2x)")

        # CPU seconds too: on a shared machine wall time includes other people's work
        print(f"{'step':<18}{'wall s':>8}{'cpu s':>8}{'rate (wall)':>16}          {'size':>8}")
        for name, dt, cpu, rate, unit, size in results:
            print(f"{name:<18}{dt:>8.2f}{cpu:>8.2f}{rate:>16,.0f} {unit:<8}{size / 1e6:>8.1f} MB")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
