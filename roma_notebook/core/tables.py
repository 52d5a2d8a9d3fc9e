"""The single writer of accumulated state: events in, pandas DataFrames out.

:class:`Tables` appends events into compact columnar buffers (``array.array`` for
numbers and times, code arrays for repeated ids, lists only for free text) and
turns them into DataFrames on access. A DataFrame is built incrementally: only the
rows that arrived since the last access are converted, then appended to a cached
frame; a repeat access with no new rows returns the cached frame at once.

A reader that wants only what is new calls :meth:`Tables.read_since` with the
:class:`Cursor` of its last read: it gets the rows appended since, built from the
pending buffers and never from the whole table, so a live view's cost follows the
message rate, not the history's length.

Threads: one writer (the stream's ingest, or a loader) and any number of readers.
The writer holds a short lock per event (so a reader never sees half a message);
a reader holds it only to swap the pending rows out (O(1)), and builds the
DataFrame outside it, so ingest never waits on a slow reader. Readers get shallow
copies: pandas 3 copy-on-write makes them independent of the cache at no cost.

Example:
    >>> t = Tables()
    >>> _ = t.ingest("a", '{"type":"account_update","timestamp":"2025-11-02T10:30:00Z",'
    ...   '"data":{"total_balance":10050.25,"available_balance":8525.0,'
    ...   '"unrealized_pnl":50.25,"used_percentage":15.0}}')
    >>> t.frame("account")["total_balance"].tolist()
    [10050.25]
"""

from __future__ import annotations

import itertools
from operator import attrgetter, lt as _lt
import threading
import time
from array import array
import dataclasses
from dataclasses import dataclass
from types import MethodType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from . import protocol as P
from .errors import ProtocolError
from .schema import TABLE_COLUMNS, TABLE_NAMES, empty_frame, kinds

__all__ = [
    "Tables",
    "TableProperties",
    "Cursor",
    "TABLE_COLUMNS",
    "TABLE_NAMES",
    "empty_frame",
    "RAW_LIMIT",
]

#: how much of a bad frame the errors table keeps
RAW_LIMIT = 2000

_NA_INT = -(2**63)  # sentinel for missing ints and times (numpy's NaT bit pattern)
_INT64_END = 2**63  # first int an int64 column cannot hold
_NAN = float("nan")

# Columns, kinds and dtypes of every table: roma_notebook/schema.py (the one
# declaration); the kind letter says how a column is buffered here.
_SPECS: dict[str, tuple[tuple[str, str], ...]] = {name: kinds(name) for name in TABLE_NAMES}

# which table a bad frame's "type" belongs to, for per-table error counts
_TYPE_TABLE = {
    "account_update": "account",
    "position_update": "position_history",
    "decision": "decisions",
    "trade_executed": "trades",
    "agent_status": "status",
    "performance": "performance",
}


class _Buffer:
    """Pending rows of one table, column by column."""

    __slots__ = ("cols", "appends", "n", "trimmed")

    def __init__(self, kinds: tuple[str, ...]):
        self.cols: list[Any] = []
        for k in kinds:
            if k in "fqit":
                self.cols.append(array("d" if k == "f" else "q"))
            elif k == "b":
                self.cols.append(array("b"))
            elif k == "c":
                self.cols.append(array("i"))
            else:
                self.cols.append([])
        self.appends = [c.append for c in self.cols]
        self.n = 0
        self.trimmed = 0  # oldest rows the writer dropped from this buffer (max_rows)


_PUT_SOURCE = """
def put(tb, row):
    buf = tb.buf
    a = buf.appends
    try:
{calls}
    except BaseException:
        # roll the partial row back: columns of unequal length would break
        # every later read of this table
        n = buf.n
        for c in buf.cols:
            del c[n:]
        raise
    buf.n += 1
    tb.total += 1
    tb.version += 1
    if tb.max_rows is not None and buf.n > 2 * tb.max_rows:
        tb.trim_pending()
"""
_puts: dict[int, Any] = {}


def _put_function(width: int) -> Any:
    """``put(table, row)`` for rows of ``width`` columns, its appends unrolled.

    Appending a row is the tables' hot path; a loop over (append, value) pairs
    costs ~0.35 us more per account row than straight-line calls, so the calls are
    generated once per table width (as dataclasses generates ``__init__``). A row of
    the wrong width raises IndexError (and is rolled back) or leaves extra values
    unused; the callers below build rows of exactly the table's columns.
    """
    fn = _puts.get(width)
    if fn is None:
        calls = "\n".join(f"        a[{i}](row[{i}])" for i in range(width))
        namespace: dict[str, Any] = {}
        exec(_PUT_SOURCE.format(calls=calls), namespace)
        fn = _puts[width] = namespace["put"]
    return fn


class _Table:
    """One table: pending buffer + cached DataFrame + counters."""

    def __init__(self, name: str, max_rows: int | None):
        self.name = name
        spec = _SPECS[name]
        self.columns = tuple(c for c, _ in spec)
        self.kinds = tuple(k for _, k in spec)
        self.code_cols = [i for i, k in enumerate(self.kinds) if k == "c"]
        # one dictionary of codes per coded column; ids repeat, text does not
        self.codes: list[dict[str, int]] = [dict() for _ in self.kinds]
        self.cats: list[list[str]] = [[] for _ in self.kinds]
        self.buf = _Buffer(self.kinds)
        #: put(row): append one full row; the caller holds ``Tables._lock``
        self.put = MethodType(_put_function(len(self.kinds)), self)
        # Converted rows, oldest first: frame() joins them into one, read_since()
        # only slices the tail. Rows [end - retained, end) in absolute numbering
        # (rows ever converted in this epoch, dropped ones included).
        self.parts: list[pd.DataFrame] = []
        self.retained = 0
        self.end = 0
        self.epoch = 0  # bumped when the rows are replaced, not appended
        self.max_rows = max_rows
        self.total = 0  # rows ever appended
        self.dropped = 0  # rows dropped by max_rows
        self.duplicates = 0  # rows refused as duplicates
        self.version = 0

    def code(self, col: int, value: str | None) -> int:
        if value is None:
            return -1
        d = self.codes[col]
        c = d.get(value)
        if c is None:
            c = d[value] = len(self.cats[col])
            self.cats[col].append(value)
        return c

    def trim_pending(self) -> None:
        # Bound memory when nobody reads: keep at most max_rows pending rows.
        if self.max_rows is None:
            return
        buf = self.buf
        excess = buf.n - self.max_rows
        for c in buf.cols:
            del c[:excess]
        buf.n -= excess
        buf.trimmed += excess
        self.dropped += excess

    @property
    def cache(self) -> pd.DataFrame:
        """All converted rows as one DataFrame (joins the parts; caller holds the build lock)."""
        if len(self.parts) > 1:
            self.parts = [pd.concat(self.parts, ignore_index=True)]
        return self.parts[0] if self.parts else empty_frame(self.name)

    @cache.setter
    def cache(self, df: pd.DataFrame) -> None:
        # Rows replaced wholesale (a loader injecting a Parquet export): readers
        # cannot tell which rows are new, so a new epoch tells them to start over.
        self.parts = [df] if len(df) else []
        self.retained = self.end = len(df)
        self.epoch += 1


def _to_array(kind: str, col: Any, cats: list[str]) -> Any:
    if kind == "f":
        return np.frombuffer(col, dtype=np.float64) if len(col) else np.empty(0)
    if kind == "q":
        return np.frombuffer(col, dtype=np.int64) if len(col) else np.empty(0, np.int64)
    if kind == "i":
        v = np.frombuffer(col, dtype=np.int64) if len(col) else np.empty(0, np.int64)
        mask = v == _NA_INT
        return pd.arrays.IntegerArray(np.where(mask, 0, v), mask)
    if kind == "t":
        v = np.frombuffer(col, dtype=np.int64) if len(col) else np.empty(0, np.int64)
        return pd.DatetimeIndex(v.view("M8[ns]")).tz_localize("UTC").array
    if kind == "b":
        v = np.frombuffer(col, dtype=np.int8) if len(col) else np.empty(0, np.int8)
        return pd.arrays.BooleanArray(v == 1, v < 0)
    if kind == "c":
        codes = np.frombuffer(col, dtype=np.int32) if len(col) else np.empty(0, np.int32)
        mask = codes < 0
        # large_string is what pandas' "string" dtype holds: cast once, not twice
        try:
            dictionary = pa.array(cats, type=pa.large_string())
        except UnicodeEncodeError:
            dictionary = pa.array(_utf8_safe(cats), type=pa.large_string())
        idx = pa.array(codes, mask=mask if mask.any() else None, type=pa.int32())
        arr = pa.DictionaryArray.from_arrays(idx, dictionary).cast(pa.large_string())
        return pd.array(arr, dtype="string")
    if kind == "o":
        out = np.empty(len(col), dtype=object)
        for i, v in enumerate(col):  # element by element: lists must stay lists, not a 2-D array
            out[i] = v
        return out
    try:
        return pd.array(col, dtype="string")
    except UnicodeEncodeError:
        return pd.array(_utf8_safe(col), dtype="string")


def _utf8_safe(values: Any) -> list:
    # JSON may carry lone surrogates ("\ud800"), which no UTF-8 string column can
    # hold: shown escaped, so one odd frame cannot make a whole table unreadable
    return [
        v.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(v, str) else v
        for v in values
    ]


def _ns(ts: int | None, fallback: int) -> int:
    # the message's own time, or the receive time when it is absent or not storable
    if ts is None or not _NA_INT < ts < _INT64_END:
        return fallback
    return ts


def _i(v: int | None) -> int:
    # ints beyond int64 cannot be stored; they are as good as missing
    if v is None or not _NA_INT < v < _INT64_END:
        return _NA_INT
    return v


def _t(v: int | None) -> int:
    if v is None or not _NA_INT < v < _INT64_END:
        return _NA_INT
    return v


def _lev(v: int | None) -> int | None:
    # like _i for the positions frame, which is built from Python values
    return None if v is None or not _NA_INT < v < _INT64_END else v


def _b(v: bool | None) -> int:
    return -1 if v is None else int(v)


class _KeySet:
    """An insertion-ordered set (each key may carry a value) that forgets its oldest
    keys beyond ``limit``."""

    __slots__ = ("_d", "_limit")

    def __init__(self, limit: int | None):
        self._d: dict = {}
        self._limit = limit

    def __contains__(self, key: Any) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Any, default: Any = None) -> Any:
        return self._d.get(key, default)

    def add(self, key: Any, value: Any = None) -> None:
        d = self._d
        d[key] = value
        if self._limit is not None and len(d) > self._limit:
            # drop a tenth at once so the cost is amortised
            for k in list(itertools.islice(d, len(d) - self._limit + self._limit // 10)):
                del d[k]

    def update(self, keys: Iterable[Any]) -> None:
        if self._limit is None:
            self._d.update(dict.fromkeys(keys))
            return
        for k in keys:
            self.add(k)


# ---- row identity: what makes two rows the same row (one rule for every path)
#
# Two sources overlap (a recording and its own Parquet export, REST backfill and the
# live stream, a log folder given twice): each row must be kept once, in any order.
# - a cycle (and the decisions of its message) is (agent, cycle, reasoning), or
#   (agent, cycle, time) when it has no reasoning: a resend is a duplicate, while a
#   restarted backend's reused cycle number with new content is a new cycle;
# - a fill with an order id is (agent, order id);
# - any other row is an observation: (agent, received_at) plus the columns below.
#   A live stream never repeats a receive time, so live rows are never refused; a
#   source replayed from a file keeps its receive times, so its rows are recognised.
# Observations arrive in receive order almost always, so their keys are only
# collected once a row arrives at or before the newest receive time of its agent
# (see _Seen): a single recording or stream pays one comparison per row.
_IDENTITY: dict[str, tuple[str, ...]] = {
    "account": ("timestamp",),
    "position_history": ("timestamp",),  # one key per position update, not per row
    "status": ("timestamp",),
    "performance": ("timestamp",),
    "closed_trades": ("timestamp", "symbol", "side", "open_time"),
    "insights": ("timestamp", "insight_id"),
    "trades": ("timestamp", "symbol", "side"),  # fills without an order id
    "errors": ("kind", "detail"),
    "connections": ("event", "detail"),
}


# the observation table an event's rows go to (decisions are keyed by cycle)
_EVENT_TABLE = {
    "account_update": "account",
    "position_update": "position_history",
    "agent_status": "status",
    "performance": "performance",
    "closed_trade": "closed_trades",
    "insight": "insights",
    "trade_executed": "trades",
}


class _Seen:
    """Keys of the observation rows of one table, collected from the first row out of order."""

    __slots__ = ("newest", "keys")

    def __init__(self) -> None:
        self.newest: dict[Any, int] = {}  # agent -> newest received_at
        self.keys: _KeySet | None = None  # None while every row came in receive order

    def in_order(self, agent: Any, received_ns: int) -> bool:
        return received_ns > self.newest.get(agent, _NA_INT)

    def saw(self, agent: Any, received_ns: int) -> None:
        if received_ns > self.newest.get(agent, _NA_INT):
            self.newest[agent] = received_ns


# a Position's fields in order, read from any object that has them (extend_positions)
_POSITION_FIELDS = tuple(map(attrgetter, (f.name for f in dataclasses.fields(P.Position))))


def _position(p: Any) -> P.Position:
    """A Position from an object with its attributes, the side lower-cased (as parse() does)."""
    if type(p) is P.Position and p.side.islower():
        return p
    values = [get(p) for get in _POSITION_FIELDS]
    values[1] = values[1].lower()
    return P.Position(*values)


def _newest_after(newest: dict, agent_ids: list, received_ns: list) -> dict | None:
    """The newest receive time per agent after these rows, or None when a row does
    not come after the newest of its agent (so its identity may repeat)."""
    r = received_ns
    if r and r[0] > max(newest.values(), default=_NA_INT) and all(map(_lt, r, itertools.islice(r, 1, None))):
        out = dict(newest)  # the common case, checked in C: one clock, rising
        out.update(zip(agent_ids, r))
        return out
    out = dict(newest)
    get = out.get
    for a, x in zip(agent_ids, r):
        if x <= get(a, _NA_INT):
            return None
        out[a] = x
    return out


def _fingerprint(reasoning: str | None, ts: int) -> int:
    # (a hash, so remembered keys do not keep the reasoning text alive)
    return hash(reasoning) if reasoning is not None else ts


def _column_values(df: pd.DataFrame, col: str) -> list:
    """A column as Python values in the form the writer stores: ints for times and
    Int64 (missing = the NA sentinel), str or None for text."""
    s = df[col]
    if isinstance(s.dtype, pd.DatetimeTZDtype) or str(s.dtype).startswith("datetime64"):
        return pd.DatetimeIndex(s).as_unit("ns").asi8.tolist()
    if str(s.dtype) == "Int64":
        return s.to_numpy(dtype="int64", na_value=_NA_INT).tolist()
    return s.to_numpy(dtype=object, na_value=None).tolist()


def _observation_keys(name: str, df: pd.DataFrame) -> list[tuple]:
    cols = [_column_values(df, "agent_id"), _column_values(df, "received_at")]
    cols += [_column_values(df, c) for c in _IDENTITY[name]]
    return list(zip(*cols))


# Each read converts the pending rows into a part. When more than _MAX_SMALL parts
# below _MERGE_CAP rows pile up, they are joined into one, so thousands of small
# reads leave few parts for frame() to join, no read copies more than about
# _MERGE_CAP rows, and most reads copy nothing (a join per read would cost ~0.4 ms).
_MERGE_CAP = 1 << 16
_MAX_SMALL = 32


@dataclass(frozen=True)
class Cursor:
    """Where a reader of one table stands; returned by :meth:`Tables.read_since`.

    Positions count rows ever appended to the table (dropped ones included), so
    they do not move when ``max_rows`` drops old rows.

    Attributes:
        table: the table it reads.
        position: absolute number of the next row to read.
        first: absolute number of the oldest row the table still held at this read;
            a reader keeping its own copy drops its rows before it.
        missed: rows dropped by ``max_rows`` before this reader saw them (at this
            read). The rows returned are still the next ones the table holds.
        reset: the table's rows were replaced (e.g. a Parquet export was merged in),
            so the rows returned are all of them: forget what was read before.
        epoch: the table's epoch the positions count in (None before a first read).

    Example:
        >>> t = Tables()
        >>> rows, cur = t.read_since("account")
        >>> len(rows), cur.position, cur.missed
        (0, 0, 0)
    """

    table: str
    position: int = 0
    first: int = 0
    missed: int = 0
    reset: bool = False
    epoch: int | None = None


class Tables:
    """Accumulated rows of one or many agents, served as DataFrames.

    Args:
        max_rows: bound per table; older rows are dropped (and counted) beyond it.
            None keeps everything.

    Example:
        >>> t = Tables(max_rows=1000)
        >>> t.frame("positions").columns[:4].tolist()
        ['agent_id', 'timestamp', 'received_at', 'seq']
    """

    def __init__(self, max_rows: int | None = None):
        if max_rows is not None:
            if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
                raise ValueError(f"max_rows must be a positive int or None, got {max_rows!r}")
        self.max_rows = max_rows
        # Guards pending buffers and code dictionaries. The writer holds it once per
        # event (all rows of a message land together, so readers never see half a
        # decision); readers hold it only to swap buffers out.
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()  # serialises readers building frames
        self._t = {name: _Table(name, max_rows) for name in TABLE_NAMES}
        self._seq: dict[str, int] = {}
        # de-duplication keys (see _IDENTITY); with max_rows they are bounded too
        # (oldest forgotten first: a reconnect only ever repeats recent rows)
        limit = None if max_rows is None else max(4 * max_rows, 1_000)
        self._key_limit = limit
        self._seen_cycles = _KeySet(limit)  # (agent, cycle, fingerprint)
        self._seen_orders = _KeySet(limit)  # (agent, order id)
        self._seen = {name: _Seen() for name in _IDENTITY}
        # latest open position set per agent: {agent: (received, ts, seq, source, positions)}
        self._open: dict[str, tuple[int, int, int, str, tuple[P.Position, ...]]] = {}
        self._open_version = 0
        # agents that sent real fills: no estimated fills are derived for them
        self._reported_fills: set[str] = set()
        self._last_snapshot: dict[str, tuple[P.Position, ...]] = {}  # per agent
        self._open_cache: tuple[int, pd.DataFrame] | None = None
        self.version = 0  # bumped on every change; views poll it
        self.server_errors = 0  # the server's own "error" frames (also errors rows)

    # ------------------------------------------------------------ writing

    def next_seq(self, agent_id: str) -> int:
        """Allocate the next frame sequence number of ``agent_id``."""
        s = self._seq.get(agent_id, -1) + 1
        self._seq[agent_id] = s
        return s

    def ingest(
        self,
        agent_id: str,
        frame: Any,
        received_ns: int | None = None,
        source: str = "live",
    ) -> tuple[P.Event, ...]:
        """Parse one frame and append its rows; a bad frame becomes an ``errors`` row.

        Returns:
            The events the frame carried (after de-duplication they may still be
            returned: callbacks see what arrived). Empty for bad frames and pongs.
        """
        if received_ns is None:
            received_ns = time.time_ns()
        seq = self.next_seq(agent_id)
        try:
            events = P.parse(frame)
        except ProtocolError as exc:
            self.add_error(agent_id, exc.kind, exc.detail, frame, received_ns, seq=seq, source=source)
            return ()
        append = self.append
        for ev in events:
            append(agent_id, ev, received_ns, seq, source)
        return events

    def ingest_many(
        self,
        agent_id: str,
        frames: Any,
        received_ns: int,
        source: str = "live",
        counts: dict[str | None, int] | None = None,
    ) -> list[tuple[P.Event, ...]] | None:
        """:meth:`ingest` of several frames of one agent, taken together at ``received_ns``.

        The same rows, errors and sequence numbers as :meth:`ingest` of frame ``i``
        at ``received_ns + i``, in turn: one nanosecond per place keeps receive
        times unique and in receive order, as a live stream's are (row identity,
        see ``_IDENTITY``). Account updates, what streams send most, are appended
        a run of consecutive frames at a time (:meth:`extend_account`).

        Args:
            counts: when given, the frames' events are counted into it instead of
                returned (``counts[kind] += 1`` per event, ``counts[None] += 1`` per
                frame with events, once every row is in), and account updates never
                become event objects (:func:`~roma_notebook.core.protocol.parse_account`):
                a live stream with no callback and no recording needs no more.

        Returns:
            The events of each frame, in order (empty for bad frames and pongs);
            None when ``counts`` is given.
        """
        parse = P.parse
        parse_account = P.parse_account if counts is not None else None
        account = P.AccountUpdate
        out: list[tuple[P.Event, ...]] = []
        kinds: dict[str | None, int] = {}  # events counted, when counting
        n_account = 0  # account updates that took parse_account, when counting
        # row values of the account updates of frames run_at, run_at + 1, ... of the burst
        run: list[tuple] = []
        run_at = 0
        extend = self._extend_account_run
        first_seq = seq = self._seq.get(agent_id, -1) + 1
        try:
            for i, frame in enumerate(frames):
                seq = first_seq + i
                if parse_account is not None:
                    values = parse_account(frame)
                    if values is not None:
                        if not run:
                            run_at = i
                        run.append(values)
                        n_account += 1
                        continue
                try:
                    events = parse(frame)
                except ProtocolError as exc:
                    events = ()
                    extend(agent_id, run, first_seq + run_at, received_ns + run_at, source)
                    self._seq[agent_id] = seq
                    self.add_error(agent_id, exc.kind, exc.detail, frame, received_ns + i, seq=seq, source=source)
                else:
                    e = events[0] if len(events) == 1 else None
                    # (an adjusted balance, only ever from the general path, needs append())
                    if type(e) is account and e.adjusted_balance != e.adjusted_balance:
                        if not run:
                            run_at = i
                        run.append((e.timestamp, e.total_balance, e.available_balance, e.unrealized_pnl,
                                    e.used_percentage))
                    else:
                        extend(agent_id, run, first_seq + run_at, received_ns + run_at, source)
                        self._seq[agent_id] = seq
                        for ev in events:
                            self.append(agent_id, ev, received_ns + i, seq, source)
                if counts is None:
                    out.append(events)
                elif events:
                    kinds[None] = kinds.get(None, 0) + 1
                    for ev in events:
                        kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
        finally:
            # frames whose rows are in (or, on an exception, were taken) keep their numbers
            if frames:
                self._seq[agent_id] = seq
            extend(agent_id, run, first_seq + run_at, received_ns + run_at, source)
        if counts is None:
            return out
        if n_account:
            kinds["account_update"] = kinds.get("account_update", 0) + n_account
            kinds[None] = kinds.get(None, 0) + n_account
        for k, n in kinds.items():
            counts[k] = counts.get(k, 0) + n
        return None

    def _extend_account_run(
        self, agent_id: str, run: list, first_seq: int, first_received: int, source: str
    ) -> None:
        # The account rows of ``run``: (timestamp, total, available, unrealized,
        # used) of frames first_seq, first_seq + 1, ..., received first_received,
        # first_received + 1, ... Empties ``run``.
        k = len(run)
        if not k:
            return
        ts, total, available, upnl, used = (list(c) for c in zip(*run))
        run.clear()
        self.extend_account(
            [agent_id] * k, ts, list(range(first_received, first_received + k)),
            list(range(first_seq, first_seq + k)), total, available, upnl, used, source,
        )

    def append(
        self,
        agent_id: str,
        event: P.Event | P.Insight,
        received_ns: int,
        seq: int | None = None,
        source: str = "live",
    ) -> bool:
        """Append one event's rows. Returns False when it was a duplicate."""
        if seq is None:
            seq = self.next_seq(agent_id)
        ts = _ns(event.timestamp, received_ns)
        kind = event.kind
        e: Any = event
        if kind == "server_error":
            # the server said an iteration failed: an errors row, the stream goes on
            self.server_errors += 1
            self.add_error(agent_id, "server_error", e.message, e.message, received_ns, seq, source)
            return True
        name = _EVENT_TABLE.get(kind)
        if name is not None:
            seen = self._seen[name]
            if seen.keys is None and not seen.in_order(agent_id, received_ns):
                self._collect_keys(name)  # outside the lock: it reads the table
        with self._lock:
            if name is not None and kind != "position_update" and not self._observed(
                name, agent_id, received_ns, event, ts
            ):
                return False
            if kind == "account_update":
                tb = self._t["account"]
                tb.put(
                    (
                        tb.code(0, agent_id),
                        ts,
                        received_ns,
                        seq,
                        e.total_balance,
                        e.available_balance,
                        e.unrealized_pnl,
                        e.used_percentage,
                        e.adjusted_balance,
                        tb.code(9, source),
                    )
                )
            elif kind == "position_update":
                if not self._positions(agent_id, e, ts, received_ns, seq, source):
                    return False
            elif kind == "decision":
                if not self._decision(agent_id, e, ts, received_ns, seq, source):
                    return False
            elif kind == "trade_executed":
                tb = self._t["trades"]
                if e.order_id is not None:
                    key = (agent_id, e.order_id)
                    if key in self._seen_orders:
                        tb.duplicates += 1
                        return False
                    self._seen_orders.add(key)
                    # (without an order id, _observed() above decided)
                self._reported_fills.add(agent_id)
                self._put_fill(
                    agent_id, ts, received_ns, seq, e.order_id, e.symbol, e.side,
                    e.quantity, e.price, e.leverage, e.status, source,
                )
            elif kind == "agent_status":
                tb = self._t["status"]
                tb.put(
                    (
                        tb.code(0, agent_id),
                        ts,
                        received_ns,
                        seq,
                        _b(e.is_running),
                        _i(e.cycle_count),
                        _t(e.last_decision_time),
                        tb.code(7, e.name),
                        e.runtime_minutes,
                        tb.code(9, source),
                    )
                )
            elif kind == "performance":
                tb = self._t["performance"]
                tb.put(
                    (
                        tb.code(0, agent_id),
                        ts,
                        received_ns,
                        seq,
                        _i(e.total_trades),
                        _i(e.wins),
                        _i(e.losses),
                        e.win_rate,
                        e.avg_profit,
                        e.avg_loss,
                        e.profit_factor,
                        e.sharpe_ratio,
                        e.max_drawdown,
                        e.total_pnl,
                        e.best_trade,
                        e.worst_trade,
                        tb.code(16, source),
                    )
                )
            elif kind == "closed_trade":
                tb = self._t["closed_trades"]
                tb.put(
                    (
                        tb.code(0, agent_id),
                        ts,
                        received_ns,
                        seq,
                        tb.code(4, e.symbol),
                        tb.code(5, e.side),
                        e.entry_price,
                        e.close_price,
                        e.quantity,
                        _i(e.leverage),
                        _t(e.open_time),
                        _t(e.close_time),
                        e.pnl_usdt,
                        e.pnl_pct,
                        tb.code(14, source),
                    )
                )
            elif kind == "insight":
                tb = self._t["insights"]
                tb.put(
                    (
                        tb.code(0, agent_id),
                        ts,
                        received_ns,
                        seq,
                        e.insight_id,
                        tb.code(5, e.category),
                        e.title,
                        e.summary,
                        e.detailed_findings,
                        e.confidence,
                        list(e.recommendations),
                        list(e.supporting_trade_ids),
                        _b(e.is_active),
                        _t(e.created_at),
                        _t(e.deprecated_at),
                        tb.code(15, source),
                    )
                )
            else:  # pragma: no cover - protocol only makes the kinds above
                raise TypeError(f"unknown event kind {kind!r}")
            self.version += 1
        return True

    def extend_account(
        self,
        agent_ids: list[str],
        timestamps: list[int | None],
        received_ns: list[int],
        seqs: list[int],
        total_balance: list[float],
        available_balance: list[float],
        unrealized_pnl: list[float],
        used_percentage: list[float],
        source: str = "live",
    ) -> None:
        """Append many ``account`` rows at once, column by column.

        The same rows as :meth:`append` of one :class:`~roma_notebook.core.protocol.AccountUpdate`
        per index (``adjusted_balance`` NaN), at a fraction of the cost: a loader
        collects a block's account updates and hands them over in one call.
        Sequence numbers come from :meth:`next_seq`, as for any frame. All lists
        have the same length. With ``max_rows``, pending rows are trimmed once per
        call rather than once per row (the table keeps the same newest rows).

        Raises:
            ValueError: the lists differ in length.
            OverflowError: a time or seq does not fit int64 (nothing is appended).
        """
        k = len(agent_ids)
        if not (
            len(timestamps) == len(received_ns) == len(seqs) == len(total_balance)
            == len(available_balance) == len(unrealized_pnl) == len(used_percentage) == k
        ):
            raise ValueError("extend_account: the column lists differ in length")
        if not k:
            return
        tb = self._t["account"]
        stamps = [t if t is not None and _NA_INT < t < _INT64_END else r  # _ns(), inline
                  for t, r in zip(timestamps, received_ns)]
        # de-duplication as append() does it row by row (_IDENTITY)
        seen = self._seen["account"]
        newest: dict[str, int] | None = None
        if seen.keys is None:
            newest = _newest_after(seen.newest, agent_ids, received_ns)
            if newest is None:
                self._collect_keys("account")
        with self._lock:
            fresh: dict = {}  # identities of the rows kept, recorded once they are in
            if newest is None:
                keys = seen.keys
                assert keys is not None
                keep = []
                for i, key in enumerate(zip(agent_ids, received_ns, stamps)):
                    if key not in keys and key not in fresh:
                        fresh[key] = None
                        keep.append(i)
                dups = k - len(keep)
                if dups:
                    tb.duplicates += dups
                    pick = lambda col: [col[i] for i in keep]  # noqa: E731
                    agent_ids, stamps, received_ns, seqs = map(pick, (agent_ids, stamps, received_ns, seqs))
                    total_balance, available_balance, unrealized_pnl, used_percentage = map(
                        pick, (total_balance, available_balance, unrealized_pnl, used_percentage)
                    )
                    k = len(keep)
                    if not k:
                        return
            code = tb.code
            codes = {a: code(0, a) for a in dict.fromkeys(agent_ids)}
            agents = [codes[a] for a in agent_ids]
            # every column converted before any is extended: a bad value leaves
            # the table as it was, never with columns of unequal length
            buf = tb.buf
            values: tuple[list[Any], ...] = (
                agents,
                stamps,
                received_ns,
                seqs,
                total_balance,
                available_balance,
                unrealized_pnl,
                used_percentage,
                [_NAN] * k,
                [code(9, source)] * k,
            )
            new = [array(col.typecode, v) for col, v in zip(buf.cols, values)]
            if newest is not None:
                seen.newest = newest
            else:
                assert seen.keys is not None
                seen.keys.update(fresh)
                for a, r, _ in fresh:
                    seen.saw(a, r)
            for col, vals in zip(buf.cols, new):
                col.extend(vals)
            buf.n += k
            tb.total += k
            tb.version += k
            if tb.max_rows is not None and buf.n > 2 * tb.max_rows:
                tb.trim_pending()
            self.version += k

    def _in_order(self, name: str, agent_ids: list, received_ns: list) -> dict | None:
        """The newest receive time per agent after these rows when each comes after its
        agent's newest (no identity can repeat), else None. Caller holds no lock."""
        seen = self._seen[name]
        if seen.keys is not None or self.max_rows is not None:
            return None
        return _newest_after(seen.newest, agent_ids, received_ns)

    def extend_positions(
        self,
        agent_ids: list[str],
        timestamps: list[int | None],
        received_ns: list[int],
        seqs: list[int],
        positions: list[Sequence[Any]],
        source: str = "live",
    ) -> None:
        """Append many ``position_update`` messages at once.

        The same rows and open positions as :meth:`append` of one
        :class:`~roma_notebook.core.protocol.PositionUpdate` (``snapshot=False``) per
        index, whose positions are ``positions[i]``: objects with the attributes of a
        :class:`~roma_notebook.core.protocol.Position` (a ``Position``, or the typed
        decoder's items: read column by column, no tuple per position is made), the
        side lower-cased as :func:`~roma_notebook.core.protocol.parse` gives it.
        Rows that arrive out of receive order, or with ``max_rows``, take
        :meth:`append` one update at a time (the same result).

        Raises:
            ValueError: the lists differ in length.
        """
        k = len(agent_ids)
        if not (len(timestamps) == len(received_ns) == len(seqs) == len(positions) == k):
            raise ValueError("extend_positions: the column lists differ in length")
        newest = self._in_order("position_history", agent_ids, received_ns)
        if newest is None:
            Upd = P.PositionUpdate
            for a, t, r, s, ps in zip(agent_ids, timestamps, received_ns, seqs, positions):
                self.append(a, Upd(t, tuple([_position(p) for p in ps])), r, s, source)
            return
        stamps = [t if t is not None and _NA_INT < t < _INT64_END else r  # _ns(), inline
                  for t, r in zip(timestamps, received_ns)]
        tb = self._t["position_history"]
        with self._lock:
            code = tb.code
            codes: dict[str, int] = {}
            last: dict[str, int] = {}  # agent -> index of its newest update here
            heads: list[tuple] = []  # (agent code, time, received, seq) per row
            flat: list[tuple] = []  # the positions, row by row
            for i, (a, ps) in enumerate(zip(agent_ids, positions)):
                last[a] = i
                if not ps:
                    continue
                ca = codes.get(a)
                if ca is None:
                    ca = codes[a] = code(0, a)
                head = (ca, stamps[i], received_ns[i], seqs[i])
                if len(ps) == 1:
                    heads.append(head)
                else:
                    heads.extend([head] * len(ps))
                flat.extend(ps)
            n = len(flat)
            if n:
                c_sym, c_side, c_amt, c_entry, c_mark, c_upnl, c_pct, c_lev, c_liq = (
                    list(map(get, flat)) for get in _POSITION_FIELDS
                )
                sym_codes = {v: code(4, v) for v in dict.fromkeys(c_sym)}
                side_codes = {v: code(5, v.lower()) for v in dict.fromkeys(c_side)}
                cols = [
                    *map(list, zip(*heads)),
                    [sym_codes[v] for v in c_sym],
                    [side_codes[v] for v in c_side],
                    c_amt, c_entry, c_mark, c_upnl, c_pct,
                    [v if v is not None and _NA_INT < v < _INT64_END else _NA_INT for v in c_lev],
                    c_liq,
                    [code(13, source)] * n,
                ]
            else:
                cols = [[] for _ in tb.kinds]
            buf = tb.buf
            new = [array(col.typecode, v) for col, v in zip(buf.cols, cols)]
            for col, values in zip(buf.cols, new):
                col.extend(values)
            buf.n += n
            tb.total += n
            tb.version += n
            self._seen["position_history"].newest = newest
            for a, i in last.items():
                # in receive order, so each agent's newest update here is its open set
                # (unless a merged export's open set was received later: _positions' rule)
                current = self._open.get(a)
                if current is not None and received_ns[i] < current[0] and stamps[i] <= current[1]:
                    continue
                self._open[a] = (received_ns[i], stamps[i], seqs[i], source,
                                 tuple([_position(p) for p in positions[i] if p.position_amt != 0.0]))
            self._open_version += 1
            self.version += k

    def extend_status(
        self,
        agent_ids: list[str],
        timestamps: list[int | None],
        received_ns: list[int],
        seqs: list[int],
        is_running: list[bool | None],
        cycle_count: list[int | None],
        last_decision_time: list[int | None],
        source: str = "live",
    ) -> None:
        """Append many documented ``agent_status`` messages at once.

        The same rows as :meth:`append` of one
        :class:`~roma_notebook.core.protocol.AgentStatus` per index (no ``name``,
        ``runtime_minutes`` NaN, as the documented message gives them). Rows out of
        receive order, or with ``max_rows``, take :meth:`append` one at a time.

        Raises:
            ValueError: the lists differ in length.
        """
        k = len(agent_ids)
        if not (len(timestamps) == len(received_ns) == len(seqs) == len(is_running)
                == len(cycle_count) == len(last_decision_time) == k):
            raise ValueError("extend_status: the column lists differ in length")
        newest = self._in_order("status", agent_ids, received_ns)
        if newest is None:
            St = P.AgentStatus
            for a, t, r, s, run, cc, last in zip(agent_ids, timestamps, received_ns, seqs, is_running,
                                                 cycle_count, last_decision_time):
                self.append(a, St(t, a, run, cc, last), r, s, source)
            return
        tb = self._t["status"]
        with self._lock:
            code = tb.code
            codes = {a: code(0, a) for a in dict.fromkeys(agent_ids)}
            agents = [codes[a] for a in agent_ids]
            values: tuple[list[Any], ...] = (
                agents,
                [t if t is not None and _NA_INT < t < _INT64_END else r  # _ns(), _b(), _i(), _t() inline
                 for t, r in zip(timestamps, received_ns)],
                received_ns,
                seqs,
                [-1 if v is None else int(v) for v in is_running],
                [v if v is not None and _NA_INT < v < _INT64_END else _NA_INT for v in cycle_count],
                [v if v is not None and _NA_INT < v < _INT64_END else _NA_INT for v in last_decision_time],
                [-1] * k,
                [_NAN] * k,
                [code(9, source)] * k,
            )
            buf = tb.buf
            new = [array(col.typecode, v) for col, v in zip(buf.cols, values)]
            for col, vals in zip(buf.cols, new):
                col.extend(vals)
            buf.n += k
            tb.total += k
            tb.version += k
            self._seen["status"].newest = newest
            self.version += k

    def extend_frames(
        self,
        frames: Mapping[str, pd.DataFrame],
        *,
        agents: Iterable[str] = (),
        counters: Mapping[str, Any] | None = None,
    ) -> dict[str, int]:
        """Append whole tables at once: a Parquet export's DataFrames, say.

        The bulk counterpart of :meth:`append`, with the same rules: rows already
        held are refused as duplicates (the identities of ``_IDENTITY`` in
        tables.py: a cycle by agent, cycle and content; a fill by order id; any
        other row by agent, receive time and time), each agent's ``seq``
        continues its numbering here, and ``positions`` (open positions) replaces
        an agent's open set unless this writer already holds a newer one.

        Args:
            frames: table name -> DataFrame with exactly that table's columns and
                dtypes (as :func:`empty_frame` gives them); tables left out add nothing.
            agents: agent ids to register first, in this order (then any others
                found in the rows).
            counters: table name -> {"dropped": n, "duplicates": n} counted by the
                writer that made the rows; added to this writer's counts.

        Returns:
            Rows refused as duplicates, per table.

        Raises:
            ValueError: an unknown table, or a DataFrame with other columns.

        Readers of a table that received rows start over (``Cursor.reset``).
        """
        for name, df in frames.items():
            if name not in self._t:
                raise ValueError(f"unknown table {name!r}; tables are {', '.join(TABLE_NAMES)}")
            if tuple(df.columns) != TABLE_COLUMNS[name]:
                raise ValueError(
                    f"extend_frames: table {name!r} needs the columns {list(TABLE_COLUMNS[name])}, "
                    f"got {list(df.columns)}"
                )
        counters = counters or {}
        frames = {n: df.reset_index(drop=True) for n, df in frames.items() if len(df)}
        # agents in first-seen order: as given, then any others found in rows
        order = list(agents)
        for df in frames.values():
            for a in df["agent_id"].dropna().unique():
                if a not in order:
                    order.append(a)
        # an agent this writer already numbered continues its seq numbering
        offsets = {a: self._seq[a] + 1 for a in order if a in self._seq}
        if offsets:
            frames = {n: _shift_seq(df, offsets) for n, df in frames.items()}
        refused = {n: 0 for n in TABLE_NAMES}
        cyc, dec = frames.get("cycles"), frames.get("decisions")
        if cyc is not None:
            keep, keys = self._fresh_cycles(cyc)
            refused["cycles"] = int((~keep).sum())
            if refused["cycles"]:
                # the decisions of a refused cycle came in the same message (same agent, seq)
                gone = set(zip(cyc["agent_id"][~keep], cyc["seq"][~keep]))
                frames["cycles"] = cyc[keep].reset_index(drop=True)
                if dec is not None:
                    dkeep = np.fromiter(
                        (k not in gone for k in zip(dec["agent_id"], dec["seq"])), bool, len(dec)
                    )
                    refused["decisions"] = int((~dkeep).sum())
                    frames["decisions"] = dec[dkeep].reset_index(drop=True)
            self._seen_cycles.update(k for k, ok in zip(keys, keep) if ok and k is not None)
        for name in _IDENTITY:
            df = frames.get(name)
            if df is None:
                continue
            keep = np.ones(len(df), bool)
            if name == "trades":
                ids = _column_values(df, "order_id")
                has_id = np.fromiter((o is not None for o in ids), bool, len(ids))
                okeys = list(zip(_column_values(df, "agent_id"), ids))
                seen_o = self._seen_orders
                keep &= np.fromiter(
                    (not h or k not in seen_o for h, k in zip(has_id, okeys)), bool, len(df)
                )
                seen_o.update(k for k, h, ok in zip(okeys, has_id, keep) if h and ok)
                obs = ~has_id
                if obs.any():
                    keep[obs] = self._fresh_observations(name, df[obs])
            else:
                keep = self._fresh_observations(name, df)
            refused[name] = int((~keep).sum())
            if refused[name]:
                frames[name] = df[keep].reset_index(drop=True)
        for name in TABLE_NAMES:
            got = counters.get(name)
            meta: Mapping[str, Any] = got if isinstance(got, Mapping) else {}
            df = frames.get(name)
            if name == "positions" or (df is None and not meta and not refused[name]):
                continue
            tb = self._t[name]
            current = self.frame(name)  # moves pending rows into the parts first
            with self._build_lock:
                if df is None or not len(df):
                    merged = current
                else:
                    merged = pd.concat([current, df], ignore_index=True) if len(current) else df
                dropped = 0
                if self.max_rows is not None and len(merged) > self.max_rows:
                    dropped = len(merged) - self.max_rows
                    merged = merged.iloc[dropped:].reset_index(drop=True)
                with self._lock:
                    tb.dropped += dropped + int(meta.get("dropped") or 0)
                    tb.duplicates += int(meta.get("duplicates") or 0) + refused[name]
                    if df is not None and len(df):
                        tb.total += len(df)
                        tb.version += 1
                        self.version += 1
                if df is not None and len(df):
                    tb.cache = merged
        # per-agent seq counters, registered in first-seen order
        top: dict[str, int] = {}
        for name, df in frames.items():
            # (open positions repeat a position update's seq: they count only through it)
            if len(df) and name != "positions":
                for a, s in df.groupby("agent_id", observed=True, sort=False)["seq"].max().items():
                    top[a] = max(top.get(a, -1), int(s))
        with self._lock:
            for a in order:
                self._seq[a] = max(self._seq.get(a, -1), top.get(a, -1))
        if "positions" in frames:
            self._restore_open(frames["positions"])
        return {n: c for n, c in refused.items() if c}

    def _fresh_cycles(self, cyc: pd.DataFrame) -> tuple[np.ndarray, list]:
        """Which cycle rows are new (the rule of :meth:`_decision`), and their keys."""
        cycles = _column_values(cyc, "cycle")
        stamps = _column_values(cyc, "timestamp")
        keys = [
            None if c == _NA_INT else (a, c, _fingerprint(r, t))
            for a, c, r, t in zip(_column_values(cyc, "agent_id"), cycles,
                                  _column_values(cyc, "ai_reasoning"), stamps)
        ]
        seen = self._seen_cycles
        keep = np.fromiter((k is None or k not in seen for k in keys), bool, len(keys))
        return keep, keys

    def _fresh_observations(self, name: str, df: pd.DataFrame) -> np.ndarray:
        """Which observation rows of table ``name`` are new; records the new ones.

        Rows are checked against the rows held before, not against each other: a
        whole table comes from one writer, which refused its duplicates already.
        """
        seen = self._seen[name]
        recv = pd.DatetimeIndex(df["received_at"]).as_unit("ns").asi8
        # per agent (missing agent included): the oldest and newest receive time here
        codes, uniques = pd.factorize(df["agent_id"], use_na_sentinel=False)
        span = pd.DataFrame({"a": codes, "r": recv}).groupby("a")["r"].agg(["min", "max"])
        agents = [None if a is pd.NA or a is None or a != a else a for a in uniques]
        first = dict(zip((agents[i] for i in span.index), span["min"].tolist()))
        last = dict(zip((agents[i] for i in span.index), span["max"].tolist()))

        def saw_all() -> None:
            with self._lock:
                for a, r in last.items():
                    seen.saw(a, r)

        if seen.keys is None:
            # all after the newest row of their agent: nothing to compare with
            if all(r > seen.newest.get(a, _NA_INT) for a, r in first.items()):
                saw_all()
                return np.ones(len(df), bool)
            self._collect_keys(name)
        keys = seen.keys
        assert keys is not None
        rows = _observation_keys(name, df)
        keep = np.fromiter((k not in keys for k in rows), bool, len(rows))
        with self._lock:
            keys.update(k for k, ok in zip(rows, keep) if ok)
        saw_all()
        return keep

    def _restore_open(self, positions: pd.DataFrame) -> None:
        """Open positions from a ``positions`` table: an agent's rows replace its open
        set when they were received after it (the rule of :meth:`_positions`)."""
        ts = _column_values(positions, "timestamp")
        recv = _column_values(positions, "received_at")
        rows = positions.astype(object).where(positions.notna(), None).to_dict("records")
        by_agent: dict[str, list] = {}
        heads: dict[str, tuple] = {}
        nan = _NAN
        for i, r in enumerate(rows):
            a = r["agent_id"]
            if a is None:
                continue
            heads.setdefault(a, (recv[i], ts[i], int(r["seq"]), r["source"] or "parquet"))
            by_agent.setdefault(a, []).append(
                P.Position(
                    r["symbol"], r["side"],
                    nan if r["position_amt"] is None else float(r["position_amt"]),
                    nan if r["entry_price"] is None else float(r["entry_price"]),
                    nan if r["mark_price"] is None else float(r["mark_price"]),
                    nan if r["unrealized_profit"] is None else float(r["unrealized_profit"]),
                    nan if r["pnl_percentage"] is None else float(r["pnl_percentage"]),
                    None if r["leverage"] is None else int(r["leverage"]),
                    nan if r["liquidation_price"] is None else float(r["liquidation_price"]),
                )
            )
        with self._lock:
            for a, plist in by_agent.items():
                recv_ns, ts_ns, seq, source = heads[a]
                current = self._open.get(a)
                if current is not None and recv_ns <= current[0] and ts_ns <= current[1]:
                    continue  # (received at the same moment: the set held is that update)
                self._open[a] = (recv_ns, ts_ns, seq, source, tuple(plist))
            self._open_version += 1
            self.version += 1

    def _observed(self, name: str, agent_id: str, received_ns: int, e: Any, ts: int) -> bool:
        """Record one observation row's identity; False when it was seen before.

        Caller holds self._lock (and ran :meth:`_collect_keys` when the row came out
        of receive order). Position updates are checked in :meth:`_positions`.
        """
        seen = self._seen[name]
        if seen.keys is not None:
            if name in ("account", "status", "performance"):
                key: Any = (agent_id, received_ns, ts)
            elif name == "closed_trades":
                key = (agent_id, received_ns, ts, e.symbol, e.side, _t(e.open_time))
            elif name == "insights":
                key = (agent_id, received_ns, ts, e.insight_id)
            elif name == "trades":  # only fills without an order id are observations
                key = None if e.order_id is not None else (agent_id, received_ns, ts, e.symbol, e.side)
            else:  # pragma: no cover - _EVENT_TABLE names only the tables above
                raise AssertionError(name)
            if not self._admit(seen, self._t[name], key):
                return False
        seen.saw(agent_id, received_ns)
        return True

    @staticmethod
    def _admit(seen: _Seen, tb: _Table, key: Any) -> bool:
        # caller holds self._lock
        keys = seen.keys
        if keys is None or key is None:
            return True
        if key in keys:
            tb.duplicates += 1
            return False
        keys.add(key)
        return True

    def _collect_keys(self, name: str) -> None:
        """Start keeping the identities of table ``name``'s rows, from the rows it holds.

        Called by the writer, holding no lock, when a row arrives at or before the
        newest receive time of its agent (another source overlapping this one).
        """
        df = self.frame(name)
        if name == "trades":
            df = df[df["order_id"].isna()]
        keys = _KeySet(self._key_limit)
        keys.update(_observation_keys(name, df))
        with self._lock:
            self._seen[name].keys = keys

    def _positions(self, agent_id, event, ts, received_ns, seq, source) -> bool:
        # caller holds self._lock; False when the update was seen before
        tb = self._t["position_history"]
        seen = self._seen["position_history"]
        if event.positions and seen.keys is not None:
            key = (agent_id, received_ns, ts)  # the update's rows come and go together
            if key in seen.keys:
                tb.duplicates += len(event.positions)
                return False
            seen.keys.add(key)
        seen.saw(agent_id, received_ns)
        if event.positions:
            agent = tb.code(0, agent_id)
            src = tb.code(13, source)
            for p in event.positions:
                tb.put(
                    (
                        agent,
                        ts,
                        received_ns,
                        seq,
                        tb.code(4, p.symbol),
                        tb.code(5, p.side),
                        p.position_amt,
                        p.entry_price,
                        p.mark_price,
                        p.unrealized_profit,
                        p.pnl_percentage,
                        _i(p.leverage),
                        p.liquidation_price,
                        src,
                    )
                )
        # The newest update is the open set: one received before it and no newer by
        # its own time (a merged source replaying older updates) only adds history
        # rows. (Either time rising is enough: a receive clock stepped back does not
        # freeze the open set while the server's times go on.)
        current = self._open.get(agent_id)
        if current is not None and received_ns < current[0] and ts <= current[1]:
            return True
        # an empty update means the agent is flat: its open set empties
        open_now = tuple(p for p in event.positions if p.position_amt != 0.0)
        self._open[agent_id] = (received_ns, ts, seq, source, open_now)
        self._open_version += 1
        if event.snapshot:
            before = self._last_snapshot.get(agent_id)
            self._last_snapshot[agent_id] = open_now
            if before is not None and agent_id not in self._reported_fills:
                self._derive_fills(agent_id, before, open_now, ts, received_ns, seq)
        return True

    def _derive_fills(self, agent_id, before, after, ts, received_ns, seq) -> None:
        """Estimated fills from two position snapshots, for servers that send none.

        The real backends never send ``trade_executed``; a position that grew,
        shrank, appeared, vanished or flipped between two updates is a fill of the
        difference at the symbol's newest mark (the older snapshot's for a symbol
        no longer held).
        Rows have ``source == "derived"``, no order id and status ``estimated``.
        An agent that ever sent a real fill gets none. Caller holds self._lock.
        """
        old = {(p.symbol, p.side): p for p in before}
        new = {(p.symbol, p.side): p for p in after}
        marks = {p.symbol: p.mark_price for p in before}
        marks.update((p.symbol, p.mark_price) for p in after)  # the newest mark of each symbol
        for key in sorted(old.keys() | new.keys()):
            a, b = old.get(key), new.get(key)
            qa = a.position_amt if a is not None else 0.0
            qb = b.position_amt if b is not None else 0.0
            change = abs(qb) - abs(qa)
            if change == 0.0 or change != change:
                continue
            ref = b if b is not None else a
            assert ref is not None  # the key came from before or after
            # a fill's side is its direction: growing a long buys, shrinking it sells
            grows = change > 0
            direction = key[1] if grows else ("short" if key[1] == "long" else "long")
            seen = self._seen["trades"]
            if seen.keys is not None:
                seen.keys.add((agent_id, received_ns, ts, key[0], direction))
            seen.saw(agent_id, received_ns)
            self._put_fill(
                agent_id, ts, received_ns, seq, None, key[0], direction, abs(change),
                marks[key[0]], ref.leverage, "estimated", "derived",
            )

    def _put_fill(self, agent_id, ts, received_ns, seq, order_id, symbol, side, qty, price, lev, status, source):
        # caller holds self._lock
        tb = self._t["trades"]
        tb.put(
            (
                tb.code(0, agent_id),
                ts,
                received_ns,
                seq,
                order_id,
                tb.code(5, symbol),
                tb.code(6, side),
                qty,
                price,
                _i(lev),
                tb.code(10, status),
                tb.code(11, source),
            )
        )

    def _decision(self, agent_id, event, ts, received_ns, seq, source) -> bool:
        # caller holds self._lock
        cycle = _i(event.cycle)
        if cycle != _NA_INT:
            # A repeat is the same cycle with the same content (a resend after a
            # reconnect, REST backfill overlapping live, a merged export). The same
            # number with other reasoning is a new decision: a restarted backend
            # counts cycles from 1 again. (The rule of _IDENTITY.)
            key = (agent_id, cycle, _fingerprint(event.ai_reasoning, ts))
            if key in self._seen_cycles:
                self._t["cycles"].duplicates += 1
                self._t["decisions"].duplicates += len(event.decisions)
                return False
            self._seen_cycles.add(key)
        tc = self._t["cycles"]
        tc.put(
            (
                tc.code(0, agent_id),
                ts,
                received_ns,
                seq,
                cycle,
                event.ai_reasoning,
                len(event.decisions),
                tc.code(7, source),
            )
        )
        if event.decisions:
            tb = self._t["decisions"]
            agent = tb.code(0, agent_id)
            src = tb.code(15, source)
            for it in event.decisions:
                tb.put(
                    (
                        agent,
                        ts,
                        received_ns,
                        seq,
                        cycle,
                        tb.code(5, it.action),
                        tb.code(6, it.symbol),
                        it.quantity,
                        _i(it.leverage),
                        it.reason,
                        it.position_size_usd,
                        it.stop_loss,
                        it.take_profit,
                        it.confidence,
                        it.close_quantity_pct,
                        src,
                    )
                )
        return True

    def add_error(
        self,
        agent_id: str | None,
        kind: str,
        detail: str,
        raw: Any = None,
        received_ns: int | None = None,
        seq: int | None = None,
        source: str = "live",
    ) -> None:
        """Append one ``errors`` row (raw text cut at :data:`RAW_LIMIT` characters)."""
        if received_ns is None:
            received_ns = time.time_ns()
        if seq is None:
            seq = self._seq.get(agent_id, -1) if agent_id is not None else -1
        raw_text, mtype = _raw_text(raw)
        tb = self._t["errors"]
        detail = str(detail)[:RAW_LIMIT]
        seen = self._seen["errors"]
        if seen.keys is None and not seen.in_order(agent_id, received_ns):
            self._collect_keys("errors")
        with self._lock:
            if not self._admit(seen, tb, (agent_id, received_ns, kind, detail)):
                return
            seen.saw(agent_id, received_ns)
            tb.put(
                (
                    tb.code(0, agent_id),
                    received_ns,
                    received_ns,
                    seq,
                    tb.code(4, kind),
                    detail,
                    raw_text,
                    tb.code(7, mtype),
                    tb.code(8, source),
                )
            )
            self.version += 1

    def add_connection(
        self, agent_id: str, event: str, detail: str = "", received_ns: int | None = None
    ) -> None:
        """Append one ``connections`` row (connected, disconnected, reconnecting, failed)."""
        if received_ns is None:
            received_ns = time.time_ns()
        tb = self._t["connections"]
        seen = self._seen["connections"]
        if seen.keys is None and not seen.in_order(agent_id, received_ns):
            self._collect_keys("connections")
        with self._lock:
            if not self._admit(seen, tb, (agent_id, received_ns, event, detail)):
                return
            seen.saw(agent_id, received_ns)
            tb.put(
                (
                    tb.code(0, agent_id),
                    received_ns,
                    received_ns,
                    self._seq.get(agent_id, -1),
                    tb.code(4, event),
                    detail,
                    tb.code(6, "live"),
                )
            )
            self.version += 1

    # ------------------------------------------------------------ reading

    def frame(self, name: str) -> pd.DataFrame:
        """The DataFrame of table ``name`` (a copy the caller may change freely).

        Raises:
            ValueError: unknown table name.
        """
        if name == "positions":
            return self._positions_frame()
        tb = self._table(name)
        with self._build_lock:
            self._flush(tb)
            return tb.cache.copy(deep=False)

    def read_since(self, name: str, cursor: Cursor | None = None) -> tuple[pd.DataFrame, Cursor]:
        """The rows of table ``name`` appended since ``cursor``, and the cursor to pass next.

        The cost follows the number of new rows, not the table's length: the rows
        come from the pending buffers and the tail of what was converted before,
        never from a join of the whole table. ``frame()`` and other readers are
        not affected; each reader keeps its own cursor.

        Args:
            name: a table name other than ``positions`` (which is a snapshot, not
                an append-only table: read it with :meth:`frame`).
            cursor: the cursor of the previous read; None reads from the oldest row.

        Returns:
            ``(rows, cursor)``: the new rows (a DataFrame with the table's columns,
            indexed by absolute row number) and where the next read starts. When
            ``cursor.missed`` is positive, rows were dropped by ``max_rows`` before
            they were read; when ``cursor.reset`` is True, the rows returned are
            the whole table and replace what was read before.

        Raises:
            ValueError: unknown table, ``positions``, or a cursor of another table.

        Example:
            >>> from roma_notebook import protocol as P
            >>> t = Tables()
            >>> _ = t.append("a", P.AccountUpdate(0, 100.0, 90.0, 0.0, 1.0), 0)
            >>> rows, cur = t.read_since("account")
            >>> _ = t.append("a", P.AccountUpdate(1, 101.0, 90.0, 0.0, 1.0), 1)
            >>> rows, cur = t.read_since("account", cur)
            >>> rows["total_balance"].tolist(), cur.position
            ([101.0], 2)
        """
        if name == "positions":
            raise ValueError("positions is a snapshot of open positions, not an append-only "
                             "table: read it with frame('positions')")
        tb = self._table(name)
        if cursor is not None and (not isinstance(cursor, Cursor) or cursor.table != name):
            raise ValueError(f"cursor must be a Cursor of table {name!r}, got {cursor!r}")
        with self._build_lock:
            self._flush(tb)
            first = tb.end - tb.retained
            reset = cursor is not None and cursor.epoch is not None and cursor.epoch != tb.epoch
            pos = 0 if cursor is None or reset else cursor.position
            missed = max(0, first - pos) if not reset else 0
            start = max(pos, first)
            pieces = []
            # walk back from the newest part: a reader that keeps up needs only the last
            at = tb.end
            for part in reversed(tb.parts):
                if at <= start:
                    break
                at -= len(part)
                pieces.append(part if at >= start else part.iloc[start - at :])
            if not pieces:
                rows = empty_frame(name)
            elif len(pieces) == 1:
                rows = pieces[0].copy(deep=False)
            else:
                rows = pd.concat(pieces[::-1], ignore_index=True)
            rows.index = pd.RangeIndex(start, start + len(rows))
            return rows, Cursor(name, tb.end, first, missed, reset, tb.epoch)

    def _table(self, name: str) -> _Table:
        tb = self._t.get(name)
        if tb is None:
            raise ValueError(f"unknown table {name!r}; tables are {', '.join(TABLE_NAMES)}")
        return tb

    def _flush(self, tb: _Table) -> None:
        """Convert the pending rows of ``tb`` into a part. Caller holds ``_build_lock``."""
        if tb.buf.n or tb.buf.trimmed:
            with self._lock:  # O(1): swap the buffer out, convert it outside the lock
                buf, tb.buf = tb.buf, _Buffer(tb.kinds)
                cats = [list(c) for c in tb.cats]
            # copy=False: the arrays are fresh (or views of a buffer nobody
            # appends to any more); copying would also stack the float columns
            # into one block, half the cost of a first access
            chunk = pd.DataFrame(
                {
                    c: _to_array(k, col, cats[j])
                    for j, (c, k, col) in enumerate(zip(tb.columns, tb.kinds, buf.cols))
                },
                copy=False,
            )
            if buf.trimmed:
                # the writer dropped the oldest rows of this buffer; all converted
                # rows are older still, so they are beyond max_rows too
                with self._lock:
                    tb.dropped += tb.retained
                tb.parts, tb.retained = [], 0
                tb.end += buf.trimmed
            if buf.n:
                parts = tb.parts
                parts.append(chunk)
                small = 0
                while small < len(parts) and len(parts[-1 - small]) < _MERGE_CAP:
                    small += 1
                if small > _MAX_SMALL:
                    parts[-small:] = [pd.concat(parts[-small:], ignore_index=True)]
                tb.retained += buf.n
                tb.end += buf.n
        if tb.max_rows is not None and tb.retained > tb.max_rows:
            excess = tb.retained - tb.max_rows
            with self._lock:  # the writer's trim_pending counts drops too
                tb.dropped += excess
            tb.retained -= excess
            parts = tb.parts
            while excess:
                if len(parts[0]) <= excess:
                    excess -= len(parts.pop(0))
                else:
                    parts[0] = parts[0].iloc[excess:].reset_index(drop=True)
                    excess = 0

    def _positions_frame(self) -> pd.DataFrame:
        with self._build_lock:
            with self._lock:
                version = self._open_version
                if self._open_cache is not None and self._open_cache[0] == version:
                    return self._open_cache[1].copy(deep=False)
                snapshot = list(self._open.items())
            cols: dict[str, list] = {c: [] for c in TABLE_COLUMNS["positions"]}
            for agent, (recv, ts, seq, source, positions) in snapshot:
                for p in positions:
                    row = (agent, ts, recv, seq, p.symbol, p.side, p.position_amt, p.entry_price,
                           p.mark_price, p.unrealized_profit, p.pnl_percentage, _lev(p.leverage),
                           p.liquidation_price, source)
                    for c, v in zip(cols, row):
                        cols[c].append(v)
            df = empty_frame("positions")
            if cols["agent_id"]:
                df = pd.DataFrame(
                    {c: pd.Series(v, dtype=df[c].dtype) for c, v in cols.items()}
                )
            self._open_cache = (version, df)
            return df.copy(deep=False)

    def counts(self) -> dict[str, int]:
        """Rows ever appended per table (cheap; for views and wait conditions)."""
        out = {name: tb.total for name, tb in self._t.items()}
        with self._lock:  # the writer adds agents to _open: iterate a snapshot
            open_sets = list(self._open.values())
        out["positions"] = sum(len(v[4]) for v in open_sets)
        return out

    def table_version(self, name: str) -> int:
        """A counter that changes whenever table ``name`` changes."""
        if name == "positions":
            return self._open_version
        return self._t[name].version

    def stats(self) -> pd.DataFrame:
        """Rows, bytes, drops, duplicates and errors per table.

        ``bytes`` is the memory of the cached DataFrame plus the pending buffers.
        ``errors`` counts bad frames whose ``type`` names a message of that table.
        """
        err = self.frame("errors")
        by_table: dict[str, int] = {}
        if len(err):
            mt = err["message_type"].dropna()
            for t, n in mt.map(_TYPE_TABLE).value_counts().items():
                by_table[t] = int(n)
        rows = []
        for name in TABLE_NAMES:
            if name == "positions":
                df = self._positions_frame()
                rows.append((name, len(df), int(df.memory_usage(deep=False).sum()), 0, 0, 0))
                continue
            tb = self._t[name]
            with self._build_lock:  # a snapshot of the parts, not joining them
                parts = list(tb.parts)
            pending = sum(
                c.itemsize * len(c) if isinstance(c, array) else 8 * len(c) for c in tb.buf.cols
            )
            cached = sum(int(p.memory_usage(deep=False).sum()) for p in parts)
            rows.append(
                (name, sum(len(p) for p in parts) + tb.buf.n, cached + pending, tb.dropped,
                 tb.duplicates, by_table.get(name, 0))
            )
        out = pd.DataFrame(rows, columns=["table", "rows", "bytes", "dropped", "duplicates", "errors"])
        return out.set_index("table")

    def totals(self) -> dict[str, int]:
        """Cheap totals over all tables: rows dropped by ``max_rows``, duplicates
        refused, and ``errors`` rows (no DataFrame is built)."""
        with self._lock:
            return {
                "dropped": sum(tb.dropped for tb in self._t.values()),
                "duplicates": sum(tb.duplicates for tb in self._t.values()),
                "errors": self._t["errors"].total,
                "server_errors": self.server_errors,
            }

    def agents(self) -> list[str]:
        """Agent ids seen so far, in first-seen order."""
        return list(self._seq)

    def frames_seen(self) -> dict[str, int]:
        """Frames numbered so far per agent (every frame takes a ``seq``, rows or not)."""
        return {a: s + 1 for a, s in list(self._seq.items())}


def _shift_seq(df: pd.DataFrame, offsets: dict[str, int]) -> pd.DataFrame:
    if not len(df):
        return df
    add = df["agent_id"].map(offsets).fillna(0).astype("int64").to_numpy()
    seq = df["seq"].to_numpy()
    return df.assign(seq=np.where(seq >= 0, seq + add, seq))


def _raw_text(raw: Any) -> tuple[str | None, str | None]:
    """Cut raw frame text for the errors table and pick its message type if cheap."""
    if raw is None:
        return None, None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        b = bytes(raw[:RAW_LIMIT])
        return b.decode("utf-8", "backslashreplace")[:RAW_LIMIT], None
    text = raw if isinstance(raw, str) else repr(raw)
    mtype = None
    head = text[:200]
    for t in _TYPE_TABLE:
        if f'"type": "{t}"' in head or f'"type":"{t}"' in head:
            mtype = t
            break
    return text[:RAW_LIMIT], mtype


class TableProperties:
    """The tables of core/schema.py as DataFrame properties; subclasses define ``_frame``."""

    def _frame(self, name: str) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def account(self) -> pd.DataFrame:
        """Account updates: total/available balance, unrealised P&L, margin use."""
        return self._frame("account")

    @property
    def positions(self) -> pd.DataFrame:
        """Open positions now, one row per (agent, symbol, side)."""
        return self._frame("positions")

    @property
    def position_history(self) -> pd.DataFrame:
        """Every position row of every position update."""
        return self._frame("position_history")

    @property
    def cycles(self) -> pd.DataFrame:
        """One row per decision message: cycle, reasoning, number of actions."""
        return self._frame("cycles")

    @property
    def decisions(self) -> pd.DataFrame:
        """One row per action of a decision message."""
        return self._frame("decisions")

    @property
    def trades(self) -> pd.DataFrame:
        """Fills (``trade_executed``), de-duplicated by order id."""
        return self._frame("trades")

    @property
    def closed_trades(self) -> pd.DataFrame:
        """Round trips with realised P&L (REST backfill and log files)."""
        return self._frame("closed_trades")

    @property
    def status(self) -> pd.DataFrame:
        """Agent status messages."""
        return self._frame("status")

    @property
    def performance(self) -> pd.DataFrame:
        """Performance snapshots of the real backend."""
        return self._frame("performance")

    @property
    def errors(self) -> pd.DataFrame:
        """Frames that could not be used, and failing callbacks."""
        return self._frame("errors")

    @property
    def connections(self) -> pd.DataFrame:
        """Connects, disconnects, retries and failures."""
        return self._frame("connections")

    @property
    def insights(self) -> pd.DataFrame:
        """ROMA-01's own trade-history insights (SQLite store, ``rn.insights``)."""
        return self._frame("insights")
