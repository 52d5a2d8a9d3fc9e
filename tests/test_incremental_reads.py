"""Incremental reads: ``Tables.read_since`` and the account series built on it.

Real ``Tables`` fed through ``protocol.encode`` + ``Tables.ingest`` (or ``append``);
every check compares what a reader gathered piece by piece with ``Tables.frame``,
the whole-table read everyone else uses.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd
import pytest

from roma_notebook.core import protocol as P
from roma_notebook.core import tables as T

from roma_notebook.store.parquet import read_export, to_parquet
from roma_notebook.core.tables import Cursor, Tables
from roma_notebook.views.views_series import AccountSeries

SEC = 10**9
T0 = 1_760_000_000 * SEC


def account(t: Tables, i: int, agent: str = "a", ts: int | None = None) -> None:
    ts = T0 + i * SEC if ts is None else ts
    t.append(agent, P.AccountUpdate(ts, 10_000.0 + i, 9_000.0, float(i % 7), 5.0), ts)


def gather(t: Tables, name: str, cursor: Cursor | None, kept: pd.DataFrame | None):
    """One read, applied to the reader's own copy as a view would apply it."""
    rows, cur = t.read_since(name, cursor)
    if kept is None or cur.reset:
        kept = rows.iloc[:0]
    kept = kept[kept.index >= cur.first]  # what max_rows dropped from the table
    return pd.concat([kept, rows]) if len(rows) else kept, cur


def test_read_since_gives_only_new_rows_and_adds_up_to_frame():
    t = Tables()
    rows, cur = t.read_since("account")
    assert len(rows) == 0 and list(rows.columns) == list(T.TABLE_COLUMNS["account"])
    account(t, 0)
    account(t, 1)
    rows, cur = t.read_since("account", cur)
    assert rows["total_balance"].tolist() == [10_000.0, 10_001.0]
    assert list(rows.index) == [0, 1] and cur.position == 2 and cur.missed == 0
    rows, cur = t.read_since("account", cur)  # nothing new
    assert len(rows) == 0 and cur.position == 2
    # frame() in between (joins the parts) changes nothing for the reader
    for i in range(2, 5):
        account(t, i)
    t.frame("account")
    account(t, 5)
    rows, cur = t.read_since("account", cur)
    assert rows["total_balance"].tolist() == [10_002.0, 10_003.0, 10_004.0, 10_005.0]
    assert list(rows.index) == [2, 3, 4, 5]
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), t.frame("account").iloc[2:].reset_index(drop=True))


def test_many_readers_many_small_reads_match_frame():
    t = Tables()
    cursors = [None, None, None]
    kept: list = [None, None, None]
    rng = np.random.default_rng(3)
    i = 0
    for step in range(400):  # hundreds of small reads: parts pile up and get joined
        for _ in range(int(rng.integers(0, 40))):
            account(t, i)
            i += 1
        r = int(rng.integers(0, 3))
        kept[r], cursors[r] = gather(t, "account", cursors[r], kept[r])
        if step % 97 == 0:
            t.frame("account")
    full = t.frame("account")
    for r in range(3):
        kept[r], cursors[r] = gather(t, "account", cursors[r], kept[r])
        pd.testing.assert_frame_equal(kept[r].reset_index(drop=True), full)
    # the tail of the history is kept in few parts, whatever the number of reads
    assert len(t._t["account"].parts) <= T._MAX_SMALL + 1 + i // T._MERGE_CAP


def test_reader_that_fell_behind_learns_rows_were_dropped():
    t = Tables(max_rows=50)
    for i in range(30):
        account(t, i)
    kept, cur = gather(t, "account", None, None)
    assert cur.position == 30 and cur.missed == 0
    for i in range(30, 100):  # 70 more: the table keeps the newest 50 (rows 50..99)
        account(t, i)
    kept, cur = gather(t, "account", cur, kept)
    assert cur.missed == 20  # rows 30..49 were dropped before this reader saw them
    assert cur.first == 50 and cur.position == 100
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), t.frame("account"))
    # the writer trims unread rows on its own beyond 2 * max_rows: counted all the same
    for i in range(100, 260):
        account(t, i)
    kept, cur = gather(t, "account", cur, kept)
    assert cur.missed == 110 and cur.first == 210 and cur.position == 260
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), t.frame("account"))
    assert t.stats().loc["account", "dropped"] == 210


def test_rows_replaced_wholesale_reset_readers(tmp_path):
    src = Tables()
    for i in range(10):
        account(src, i, agent="b")
    frames, manifest, _ = read_export(to_parquet(src, tmp_path / "export"))
    t = Tables()
    for i in range(5):
        account(t, i)
    kept, cur = gather(t, "account", None, None)
    t.extend_frames(frames, agents=manifest["agents"], counters=manifest["tables"])  # what load() does with an export
    kept, cur = gather(t, "account", cur, kept)
    assert cur.reset
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), t.frame("account"))
    assert len(kept) == 15


def test_a_read_copies_only_new_rows(monkeypatch):
    """A read after a few new rows on a long history must not join the history."""
    t = Tables()
    for i in range(200_000):
        account(t, i)
    t.frame("account")  # one consolidated part of 200k rows, as after a first full read
    _, cur = t.read_since("account")
    joined: list[int] = []
    real_concat = pd.concat

    def counting_concat(objs, *a, **k):
        objs = list(objs)
        joined.append(sum(len(o) for o in objs))
        return real_concat(objs, *a, **k)

    monkeypatch.setattr(T.pd, "concat", counting_concat)
    n = 200_000
    for _ in range(100):
        for _ in range(250):
            account(t, n)
            n += 1
        rows, cur = t.read_since("account", cur)
        assert len(rows) == 250
    # amortised: small parts are joined now and then, never the history
    assert max(joined, default=0) < T._MERGE_CAP
    assert sum(joined) < 100 * 250 * 2


def test_read_since_refuses_what_it_cannot_do():
    t = Tables()
    with pytest.raises(ValueError, match="snapshot"):
        t.read_since("positions")
    with pytest.raises(ValueError, match="unknown table"):
        t.read_since("nope")
    _, cur = t.read_since("account")
    with pytest.raises(ValueError, match="Cursor of table 'trades'"):
        t.read_since("trades", cur)


def test_reads_and_frames_race_a_writer():
    t = Tables(max_rows=5_000)
    stop = threading.Event()

    def write():
        i = 0
        while not stop.is_set():
            account(t, i)
            i += 1

    w = threading.Thread(target=write)
    w.start()
    try:
        kept, cur = None, None
        for k in range(300):
            kept, cur = gather(t, "account", cur, kept)
            if k % 50 == 0:
                t.frame("account")
            # what the reader holds is always consecutive rows, oldest to newest
            v = kept["total_balance"].to_numpy()
            assert np.all(np.diff(v) == 1.0)
    finally:
        stop.set()
        w.join()
    kept, cur = gather(t, "account", cur, kept)
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), t.frame("account"))


# ------------------------------------------------------------------ AccountSeries


def expected_arrays(t: Tables):
    df = t.frame("account")
    dropped = int(t.stats().loc["account", "dropped"])
    return (df["timestamp"].array.asi8, df["total_balance"].to_numpy(), df["unrealized_pnl"].to_numpy(),
            dropped)


@pytest.mark.parametrize("max_rows", [None, 300])
def test_account_series_follows_the_table(max_rows):
    t = Tables(max_rows=max_rows)
    s = AccountSeries(t)
    rng = np.random.default_rng(7)
    i = 0
    held = []
    for _ in range(120):
        for _ in range(int(rng.integers(0, 60))):
            account(t, i)
            i += 1
        s.update()
        held.append((s.x, s.balance.copy()))  # views handed out before stay valid
        x, bal, pnl, dropped = expected_arrays(t)
        assert np.array_equal(s.x, x) and np.array_equal(s.balance, bal)
        assert np.array_equal(s.pnl, pnl)
        assert s.offset == dropped and s.monotonic and s.generation == 0
    for x, bal in held[-5:]:
        assert len(x) == len(bal)
    assert s.update() is False  # nothing new


def test_account_series_tracks_time_going_backwards_until_dropped():
    t = Tables(max_rows=100)
    s = AccountSeries(t)
    for i in range(50):
        account(t, i)
    account(t, 50, ts=T0 + 1)  # a clock that stepped back (T0 itself would repeat row 0: a duplicate)
    s.update()
    assert not s.monotonic
    for i in range(51, 120):
        account(t, i)
    s.update()
    assert not s.monotonic  # row 50 is still held
    for i in range(120, 160):
        account(t, i)
    s.update()
    assert s.monotonic and s.offset == 60  # row 50 was dropped: bisection is safe again


def test_account_series_starts_over_when_rows_are_replaced(tmp_path):
    src = Tables()
    for i in range(10):
        account(src, i, agent="b")
    frames, manifest, _ = read_export(to_parquet(src, tmp_path / "export"))
    t = Tables()
    for i in range(5):
        account(t, 100 + i)
    s = AccountSeries(t)
    s.update()
    t.extend_frames(frames, agents=manifest["agents"], counters=manifest["tables"])
    assert s.update()
    x, bal, _, _ = expected_arrays(t)
    assert np.array_equal(s.balance, bal) and s.generation == 1
    assert not s.monotonic  # agent a's later rows come first, then b's
    assert math.isclose(s.value_at(np.array([T0 + 3 * SEC]))[0], 10_003.0)
