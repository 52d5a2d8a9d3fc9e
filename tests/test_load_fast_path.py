"""The recording loader's fast path (typed decoding, block appends through
``Tables.extend_account``/``extend_positions``/``extend_status``) gives exactly the
tables of the exact per-frame path (``Tables.ingest`` of every frame), whatever the
mix: bare NaN/Infinity the real backends send, snapshots with derived fills,
escaped keys, receive times out of order, bad frames."""

from __future__ import annotations

import random
import warnings

import pandas as pd
import pytest

import roma_notebook as rn
from roma_notebook.store import loading
from roma_notebook.core import protocol as P
from roma_notebook.store.recording import Recorder
from roma_notebook.core.tables import TABLE_NAMES, Tables

T0 = P.parse_time("2025-11-02T10:30:00Z")
MS = 1_000_000
AGENTS = ("deepseek-chat-v3.1", "qwen3-max", "gpt-5")


def frames_mix(n: int, seed: int) -> list[tuple[str, int, str | bytes]]:
    rng = random.Random(seed)
    out = []
    recv = T0
    cycle = {a: 0 for a in AGENTS}
    for i in range(n):
        a = rng.choice(AGENTS)
        recv += rng.randint(1, 5) * MS
        r = recv
        if rng.random() < 0.03:
            r = recv - rng.randint(0, 50) * MS  # a receive time out of order
        ts = T0 + i * 1000 * MS
        k = rng.random()
        bal = 10_000.0 + rng.random() * 100
        if k < 0.40:
            f: str | bytes = P.encode(P.AccountUpdate(ts if rng.random() < 0.9 else None, bal, bal * 0.8,
                                                      rng.random(), 15.0))
        elif k < 0.62:
            n_pos = rng.choice((0, 1, 2, 2))
            f = P.encode(P.PositionUpdate(ts, tuple(
                P.Position(sym, rng.choice(("long", "short")), rng.choice((0.0, 0.01, 0.5)), 68_000.0,
                           68_100.0 + j, 1.5, 0.2, rng.choice((5, 10)), 61_000.0)
                for j, sym in enumerate(("BTCUSDT", "ETHUSDT")[:n_pos])
            )))
            if rng.random() < 0.1:
                f = f.replace('"side": "long"', '"side": "LONG"')  # the typed path lowers it too
        elif k < 0.74:
            f = P.encode(P.AgentStatus(ts, a, rng.random() < 0.8, rng.randint(0, 99),
                                       ts if rng.random() < 0.9 else None))
        elif k < 0.78:
            cycle[a] += 1
            f = P.encode(P.Decision(ts, cycle[a], a, f"reasoning {cycle[a]}", (
                P.DecisionItem("open_long", "BTCUSDT", 0.01, 10, "x", 800.0, 66_000.0, 72_000.0),)))
        elif k < 0.80:
            f = P.encode(P.TradeExecuted(ts, f"o{i % 50}", "BTCUSDT", "long", 0.01, 68_000.0, 10, "filled"))
        elif k < 0.86:
            # the real backend's snapshot, positions derive fills
            f = P.encode_snapshot(
                12.5 + i,
                P.AccountUpdate(None, bal, bal, 0.0, 0.0),
                P.PositionUpdate(None, tuple(
                    P.Position("BTCUSDT", "long", rng.choice((0.01, 0.02, 0.0)), 68_000.0, 68_500.0, 1.0,
                               0.1, 10, 0.0) for _ in range(rng.choice((0, 1)))), True),
                P.Performance(None, i, 1, 1, 0.5, 1.0, -1.0, 1.0, 0.1, 0.2, 3.0),
                P.AgentStatus(None, a, True, i, None),
            )
        elif k < 0.90:
            # bare NaN / Infinity: msgspec rejects them, the exact path reads them
            f = ('{"type": "account_update", "timestamp": "2025-11-02T10:30:00Z", "data": '
                 '{"total_balance": NaN, "available_balance": Infinity, "unrealized_pnl": -Infinity, '
                 '"used_percentage": 1.0}}')
            if rng.random() < 0.5:
                f = f.replace('"type": "account_update"', '"type": "position_update"').replace(
                    '"data": {', '"data": [{"symbol": "BTCUSDT", "side": "long", "position_amt": NaN, "x": ').replace(
                    "}}", "}]}")
        elif k < 0.93:
            # escaped keys and types: not the typed shape, the general path
            f = '{"type": "\\u0061ccount_update", "timestamp": "2025-11-02T10:30:01Z", "data": ' \
                '{"total_balance": 5.0, "available_balance": 4.0, "unrealized_pnl": 0.0, "used_percentage": 1.0}}'
        elif k < 0.95:
            f = P.encode(P.AccountUpdate(ts, bal, bal, 0.0, 1.0)).replace("account_update", "position_update")
        elif k < 0.97:
            f = b"\x00\x01binary"
        elif k < 0.98:
            f = "not json {"
        else:
            f = '{"type": "agent_status", "timestamp": "bad time", "data": {"agent_id": "x", ' \
                '"is_running": true, "cycle_count": 3, "last_decision_time": "2025-13-45"}}'
        out.append((a, r, f))
    return out


def record(path, frames):
    with Recorder(path, url="ws://localhost:8000") as rec:
        for a, t, f in frames:
            rec.write(a, t, f)


def direct(frames) -> Tables:
    t = Tables()
    for a, ns, f in frames:
        t.ingest(a, f, ns, "live")
    return t


def load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rn.LoadWarning)
        return rn.load(path, progress=False)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_the_fast_path_equals_the_exact_per_frame_path(tmp_path, seed, suffix, monkeypatch):
    frames = frames_mix(6_000, seed)
    path = tmp_path / f"mix{suffix}"
    record(path, frames)
    fast = load(path)
    exact = direct(frames)
    # the fast path was taken: most frames are typed account/position/status updates
    assert len(fast.account) > 1_500 and len(fast.position_history) > 1_000 and len(fast.status) > 500
    assert (fast.trades["source"] == "derived").any()  # snapshots derived fills
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(fast.frame(name), exact.frame(name), obj=name)
    assert fast.tables.stats().equals(exact.stats())
    # and the loader's own per-line path (no msgspec line decoder) agrees too
    monkeypatch.setattr(loading, "_line_decode", None)
    slow = load(path)
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(slow.frame(name), exact.frame(name), obj=name)


def test_bulk_methods_equal_append_one_by_one():
    """extend_positions / extend_status against append(), in order and out of it."""
    pos = [[P.Position(*p) for p in ps] for ps in [
        [("BTCUSDT", "long", 0.01, 1.0, 2.0, 3.0, 4.0, 5, 6.0)],
        [],
        [("BTCUSDT", "long", 0.0, 1.0, 2.0, 3.0, 4.0, None, 6.0), ("ETHUSDT", "short", 0.5, 1.0, 2.0, 3.0, 4.0, 2**70, 6.0)],
        [("SOLUSDT", "long", 1.0, 1.0, 2.0, 3.0, 4.0, 3, 6.0), ("BTCUSDT", "long", 0.0, 1.0, 2.0, 3.0, 4.0, 3, 6.0)],
    ]]
    for recv in ([10, 20, 30, 40], [10, 30, 20, 40], [10, 10, 10, 10]):
        agents = ["a", "b", "a", "a"]
        ts = [1_000, None, 3_000, 4_000]
        bulk, one = Tables(), Tables()
        seqs = [bulk.next_seq(a) for a in agents]
        bulk.extend_positions(agents, ts, recv, seqs, pos)
        bulk.extend_status(agents, ts, recv, seqs, [True, None, False, True], [1, None, 2**70, 4],
                           [None, 5, 2**70, 7])
        for a, t, r, ps, run, cc, last in zip(agents, ts, recv, pos, [True, None, False, True],
                                              [1, None, 2**70, 4], [None, 5, 2**70, 7]):
            s = one.next_seq(a)
            one.append(a, P.PositionUpdate(t, tuple(ps)), r, s)
            one.append(a, P.AgentStatus(t, a, run, cc, last), r, s)
        for name in TABLE_NAMES:
            pd.testing.assert_frame_equal(bulk.frame(name), one.frame(name), obj=f"{name} {recv}")
        assert sorted(bulk.frame("positions")["symbol"]) == ["SOLUSDT"]  # a flat position is not open
    with pytest.raises(ValueError, match="differ in length"):
        Tables().extend_positions(["a"], [], [1], [0], [[]])


def _reader_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "roma-gunzip" and t.is_alive()]


def test_the_background_reader_ends_with_the_load(tmp_path):
    """.jsonl.gz is decompressed in a thread; none outlives load(), whether it
    returns or raises with most of the file unread (the thread then sits on a
    full queue unless the loader stops it)."""
    import gzip

    path = tmp_path / "ok.jsonl.gz"
    record(path, frames_mix(2_000, 4))
    assert len(load(path).account) > 500
    assert _reader_threads() == []
    # a newer recording version: load raises at its header, megabytes still unread
    rng = random.Random(5)
    newer = tmp_path / "newer.jsonl.gz"
    with gzip.open(newer, "wb", compresslevel=1) as f:
        f.write(b'{"format": "roma-notebook-recording", "version": 99}\n')
        for i in range(2_000):
            f.write(b'{"t": %d, "agent": "a", "frame": "%s"}\n' % (i, rng.randbytes(1_000).hex().encode()))
    assert newer.stat().st_size > 4 * (1 << 18)  # more chunks than the reader may hold ahead
    with pytest.raises(ValueError, match="version 99 recording"):
        rn.load(newer, progress=False)
    assert _reader_threads() == []


@pytest.mark.parametrize("background", [False, True])
def test_recording_lines_split_any_chunking_like_a_plain_split(tmp_path, monkeypatch, background):
    """Lines come out whole wherever the chunks end: mid-line, mid UTF-8 sequence,
    just after a newline; the unfinished last line is the tail."""
    from roma_notebook.store import recording_reader as R

    rng = random.Random(6)
    words = ["a", "é", "€", "𝄞", "\\u00e9", " ", "{}", "x" * 40]
    text = "\n".join("".join(rng.choice(words) for _ in range(rng.randint(0, 12))) for _ in range(400))
    data = (text + "\ntorn €").encode()
    path = tmp_path / "lines.jsonl"
    path.write_bytes(data)
    for chunk in (1, 2, 3, 7, 64, 1 << 18):
        monkeypatch.setattr(R, "_CHUNK", chunk)
        reader = R.RecordingLines(path, background=background)
        got = [line for block in reader for line in block]
        assert got == text.split("\n"), chunk
        assert reader.tail == "torn €".encode()
