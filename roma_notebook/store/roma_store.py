"""Read the current ROMA-01 backend's SQLite store (``data/roma_trading.db``), read-only.

The current backend keeps its history in a SQLite database (docs/roma01.md):
``decision_logs``, ``equity_history``, ``trades``, ``analysis_insights`` and three
tables a notebook does not need. :func:`load_store` turns it into the library's
tables (``rn.load("roma_trading.db")`` calls it):

- ``decision_logs`` -> ``cycles`` and ``decisions``; the newest cycle's
  ``positions`` -> ``positions`` / ``position_history`` (they are the positions at
  the *start* of that cycle: :attr:`StoreLoad.positions_as_of` says which);
- ``equity_history`` -> ``account`` (``total_balance`` is ``gross_equity``, the
  account value; ROMA-01's ``equity``, net of deposits it infers, goes to
  ``adjusted_balance``); the decision logs' ``account_state`` would repeat it;
- ``trades`` -> ``closed_trades`` (``pnl_usdt`` as stored: ROMA-01 multiplies it
  by leverage);
- ``analysis_insights`` -> ``insights``.

Every record goes through the same readers as REST and log files
(:func:`~roma_notebook.core.protocol.decision_record_events`,
:func:`~roma_notebook.core.protocol.equity_point_event`,
:func:`~roma_notebook.core.protocol.closed_trade_from_dict`,
:func:`~roma_notebook.core.protocol.insight_from_dict`); rows are appended in time
order (the time columns, never the ids, which are not in time order).

Safe beside a running backend: the file is opened read-only (``mode=ro``) with a
busy timeout and read in short statements of a few thousand rows, so the reader
never writes and never holds a lock for long. A database being written loads
what is committed; a locked one is retried for ``timeout`` seconds, then
:class:`StoreLocked` says so. Times: the backend writes naive local times of its
host; ``tz`` names that zone (default UTC, which is right for the Docker image).

Example:
    >>> import roma_notebook as rn
    >>> rec = rn.load("backend/data/roma_trading.db", tz="Asia/Shanghai")  # doctest: +SKIP
    >>> rec.insights[["category", "title", "confidence"]]  # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from ..core import protocol as P
from ..core.errors import ProtocolError, RomaError
from ..core.times import epoch_ns, parse_local, zone
from ..core.tables import Tables

__all__ = [
    "load_store",
    "store_file",
    "StoreLoad",
    "StoreError",
    "StoreLocked",
    "STORE_NAME",
    "STORE_SUFFIXES",
    "REQUIRED_COLUMNS",
]

#: the file name the backend uses, under ``data/`` of its working directory
STORE_NAME = "roma_trading.db"
#: file names :func:`store_file` takes for a SQLite store
STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_MAGIC = b"SQLite format 3\x00"
_NS = 1_000_000_000
# Rows per statement: each statement holds SQLite's shared lock only while it
# runs (a few ms), so a backend committing meanwhile waits at most that long.
_PAGE = 5_000

#: what the loader reads, per table (``analysis_insights`` may be absent)
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "decision_logs": ("id", "agent_id", "cycle_number", "timestamp", "chain_of_thought", "decisions", "positions"),
    "equity_history": ("id", "agent_id", "timestamp", "cycle", "equity", "adjusted_equity", "gross_equity",
                       "unrealized_pnl"),
    "trades": ("id", "agent_id", "symbol", "side", "entry_price", "close_price", "quantity", "leverage",
               "open_time", "close_time", "pnl_pct", "pnl_usdt"),
    "analysis_insights": ("insight_id", "agent_id", "category", "title", "summary", "detailed_findings",
                          "recommendations", "confidence_score", "created_at", "deprecated_at", "is_active",
                          "supporting_trade_ids"),
}
_OPTIONAL = ("analysis_insights",)
# the column each table is ordered and filtered by
_TIME = {"decision_logs": "timestamp", "equity_history": "timestamp", "trades": "close_time",
         "analysis_insights": "created_at"}


class StoreError(RomaError, ValueError):
    """The file is not a usable ROMA-01 store (not SQLite, corrupt, another schema)."""


class StoreLocked(RomaError, TimeoutError):
    """The store stayed locked by a writer for longer than the busy timeout."""


def store_file(path: Path) -> Path | None:
    """The SQLite store ``path`` designates, or None.

    A ``.db``/``.sqlite`` file, any file starting with SQLite's header, or a folder
    holding ``data/roma_trading.db`` (the backend's working directory) or
    ``roma_trading.db`` (its ``data`` folder).
    """
    if path.is_dir():
        for cand in (path / "data" / STORE_NAME, path / STORE_NAME):
            if cand.is_file():
                return cand
        return None
    if path.name.lower().endswith(STORE_SUFFIXES):
        return path
    try:
        with open(path, "rb") as f:
            return path if f.read(16) == _MAGIC else None
    except OSError:
        return None


@dataclass
class StoreLoad:
    """What :func:`load_store` read.

    Attributes:
        path: the database file.
        positions_as_of: per agent, ``(cycle, time ns UTC)`` of the decision log
            whose positions fill ``positions``: the positions held at the start of
            that cycle (before its orders); the time is when the cycle was logged.
        rows: rows read per store table.
    """

    path: Path
    positions_as_of: dict[str, tuple[int | None, int]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- time


class _Clock:
    """Naive local DATETIME text of the backend host -> int ns UTC.

    The zone offset is looked up once per local hour (the text's first 13
    characters); an hour containing an offset change (DST) is converted row by
    row. Ambiguous local times (the repeated hour when clocks go back) take the
    first occurrence.
    """

    def __init__(self, tz: tzinfo):
        self.tz = tz
        self._hours: dict[str, int | None] = {}

    def __call__(self, text: Any) -> int | None:
        if type(text) is not str:
            return None
        if len(text) >= 19 and text[13] == ":" and text[16] == ":" and text[10] in " T":
            base = self._hours.get(text[:13], 0)
            if base == 0:
                base = self._hour(text[:13])
            if base is not None:
                try:
                    mm, ss = int(text[14:16]), int(text[17:19])
                    if len(text) == 19:
                        frac = 0
                    elif text[19] == "." and 20 < len(text) <= 29 and text[20:].isdigit():
                        frac = int(text[20:].ljust(9, "0"))
                    else:
                        frac = -1
                except ValueError:
                    frac = -1
                if frac >= 0 and mm < 60 and ss < 60:
                    return base + (mm * 60 + ss) * _NS + frac
        return self._slow(text)

    def _hour(self, prefix: str) -> int | None:
        try:
            start = datetime.fromisoformat(prefix.replace("T", " ") + ":00:00").replace(tzinfo=self.tz)
        except ValueError:
            self._hours[prefix] = None
            return None
        end = start.replace(minute=59, second=59, microsecond=999999)
        base = None if start.utcoffset() != end.utcoffset() else epoch_ns(start)
        if len(self._hours) > 100_000:  # ~11 years of hours; keep memory bounded
            self._hours.clear()
        self._hours[prefix] = base
        return base

    def _slow(self, text: str) -> int | None:
        return parse_local(text, self.tz)


def _bound(value: Any, tz: tzinfo, name: str) -> str | None:
    """``since``/``until`` as the backend's local DATETIME text, for SQL comparison."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a time (datetime, pandas Timestamp, ISO text), got {value!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"{name} must be a time, got NaT")
    if ts.tzinfo is None:  # the library's rule: zone-less times are UTC
        ts = ts.tz_localize("UTC")
    local = ts.tz_convert(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond:06d}"


# ---------------------------------------------------------------- the connection


class _Store:
    def __init__(self, path: Path, timeout: float):
        self.path = path
        self.timeout = timeout
        # read-only: the reader can neither write nor create the file; a busy
        # handler waits up to `timeout` for a writer's lock to go
        uri = path.resolve().as_uri() + "?mode=ro"
        try:
            self.con = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open as a SQLite database ({exc})") from None

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self.con.execute(sql, tuple(params)).fetchall()
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreLocked(
                    f"{self.path}: the database stayed locked for {self.timeout:g} s (a writer holds it: "
                    "the backend is committing, or a wedged backend keeps it locked, see docs/roma01.md); "
                    "try again, pass a longer timeout=, or copy the file while the backend is stopped"
                ) from None
            if "readonly" in text or "read-only" in text:
                raise StoreError(
                    f"{self.path}: cannot be read without writing ({text}): a crashed writer left a hot "
                    "journal; start the backend once (it rolls the journal back) or read a copy made "
                    "together with its -journal file"
                ) from None
            raise StoreError(f"{self.path}: {text}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable SQLite database ({exc})") from None

    def close(self) -> None:
        self.con.close()

    # -- schema

    def check_schema(self) -> dict[str, set[str]]:
        """Tables -> columns present; StoreError naming what is missing."""
        tables = [r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
        cols = {t: {r[1] for r in self.query(f'PRAGMA table_info("{t}")')} for t in tables
                if t in REQUIRED_COLUMNS}
        needed = [t for t in REQUIRED_COLUMNS if t not in _OPTIONAL]
        missing = [t for t in needed if t not in cols]
        if len(missing) == len(needed):
            have = ", ".join(sorted(tables)) or "none"
            raise StoreError(
                f"{self.path} is a SQLite database but not a ROMA-01 store: it has no "
                f"{', '.join(missing)} table (its tables: {have})"
            )
        problems = [f"table {t} is missing" for t in missing]
        for t, have_cols in cols.items():
            lack = [c for c in REQUIRED_COLUMNS[t] if c not in have_cols]
            if lack:
                problems.append(f"table {t} lacks column{'s' if len(lack) > 1 else ''} {', '.join(lack)}")
        if problems:
            raise StoreError(f"{self.path} is not a ROMA-01 store of a version this library reads: "
                             + "; ".join(problems))
        return cols

    def has_time_index(self, table: str) -> bool:
        for row in self.query(f'PRAGMA index_list("{table}")'):
            first = self.query(f'PRAGMA index_info("{row[1]}")')
            if first and min(first)[2] == _TIME[table]:
                return True
        return False


# ---------------------------------------------------------------- rows


class _Scan:
    """Rows of one table in (time, id) order, a page per statement."""

    def __init__(self, store: _Store, table: str, columns: str, agents: list[str] | None,
                 since: str | None, until: str | None, key: str = "id"):
        self.store = store
        t = _TIME[table]
        where, params = [], []
        indexed = store.has_time_index(table)
        if agents is not None:
            # the unary + keeps SQLite off the agent index: the time index gives the
            # order, so each page is a range scan instead of a sort of every row
            where.append(f"{'+' if indexed else ''}agent_id IN ({', '.join('?' * len(agents))})")
            params += agents
        if since is not None:
            where.append(f"{t} >= ?")
            params.append(since)
        if until is not None:
            where.append(f"{t} < ?")
            params.append(until)
        self.where = " AND ".join(where) or "1"
        self.params = params
        self.table, self.time, self.key, self.columns = table, t, key, columns
        # without an index on the time column every page would sort the table: one statement
        self.page = _PAGE if indexed else None

    def count(self) -> int:
        return self.store.query(f"SELECT count(*) FROM {self.table} WHERE {self.where}", self.params)[0][0]

    def __iter__(self) -> Iterator[tuple]:
        base = f"SELECT {self.columns} FROM {self.table} WHERE {self.where}"
        order = f" ORDER BY {self.time}, {self.key}"
        if self.page is None:
            yield from self.store.query(base + order, self.params)
            return
        last: tuple | None = None
        while True:
            if last is None:
                rows = self.store.query(f"{base}{order} LIMIT {self.page}", self.params)
            else:
                rows = self.store.query(
                    f"{base} AND ({self.time}, {self.key}) > (?, ?){order} LIMIT {self.page}",
                    [*self.params, *last],
                )
            yield from rows
            if len(rows) < self.page:
                return
            last = (rows[-1][1], rows[-1][0])  # every scan selects key, time first


def load_store(
    path: Any,
    tables: Tables,
    *,
    tz: Any = "UTC",
    agents: Iterable[str] | str | None = None,
    since: Any = None,
    until: Any = None,
    timeout: float = 5.0,
    progress: Callable[[int], None] | None = None,
) -> StoreLoad:
    """Append a ROMA-01 SQLite store's history to ``tables`` (``source="store"``).

    Args:
        path: the ``.db`` file (see :func:`store_file` for folders).
        tables: the tables to append to (through ``Tables.append`` only).
        tz: the zone of the backend host, whose naive local times the store holds
            (an IANA name such as ``"Asia/Shanghai"``, or a tzinfo); default UTC.
        agents: only these agent ids (filtered in SQL).
        since, until: only rows with ``since <= time < until`` (filtered in SQL
            on the time columns: cycle log time, equity point time, trade close
            time, insight creation time); zone-less values are UTC.
        timeout: seconds to wait for a writer's lock before :class:`StoreLocked`.
        progress: called with a number of bytes as the load advances.

    Returns:
        A :class:`StoreLoad` (which moment ``positions`` describes, rows read).

    Raises:
        StoreError: not a SQLite file, corrupt, or another schema (the message
            names the file and what is missing).
        StoreLocked: locked for longer than ``timeout``.
        ValueError: an unknown ``tz`` or an unusable ``since``/``until``.

    Example:
        >>> from roma_notebook.core.tables import Tables
        >>> t = Tables()
        >>> info = load_store("roma_trading.db", t, tz="Europe/Berlin")  # doctest: +SKIP
        >>> t.frame("cycles").groupby("agent_id").size()  # doctest: +SKIP
    """
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {str(p)!r}")
    zone_ = zone(tz)
    if isinstance(agents, str):
        agents = [agents]
    agent_list = None if agents is None else [str(a) for a in agents]
    lo, hi = _bound(since, zone_, "since"), _bound(until, zone_, "until")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
    store = _Store(p, float(timeout))
    try:
        return _load(store, tables, _Clock(zone_), agent_list, lo, hi, progress)
    finally:
        store.close()


def _load(store: _Store, tables: Tables, clock: _Clock, agents: list[str] | None, lo: str | None,
          hi: str | None, progress: Callable[[int], None] | None) -> StoreLoad:
    cols = store.check_schema()
    out = StoreLoad(store.path)
    path = store.path
    scans = {
        "decision_logs": _Scan(store, "decision_logs", "", agents, lo, hi),
        "equity_history": _Scan(store, "equity_history",
                                "id, timestamp, agent_id, equity, adjusted_equity, gross_equity, unrealized_pnl",
                                agents, lo, hi),
        "trades": _Scan(store, "trades",
                        "id, close_time, agent_id, symbol, side, entry_price, close_price, quantity, leverage, "
                        "open_time, pnl_pct, pnl_usdt", agents, lo, hi),
    }
    if "analysis_insights" in cols:
        scans["analysis_insights"] = _Scan(
            store, "analysis_insights",
            "insight_id, created_at, agent_id, category, title, summary, detailed_findings, recommendations, "
            "confidence_score, deprecated_at, is_active, supporting_trade_ids", agents, lo, hi, key="insight_id")
    # The newest decision log of each agent gives the open positions (those at the
    # start of that cycle); the others' positions are not even fetched.
    d = scans["decision_logs"]
    newest: dict[int, str] = {}
    for (agent,) in store.query(f"SELECT DISTINCT agent_id FROM decision_logs WHERE {d.where}", d.params):
        r = store.query(
            f"SELECT id FROM decision_logs WHERE {d.where} AND agent_id = ? "
            "ORDER BY timestamp DESC, id DESC LIMIT 1", [*d.params, agent])
        if r:
            newest[r[0][0]] = agent
    ids = ", ".join(str(int(i)) for i in newest) or "NULL"
    d.columns = ("id, timestamp, agent_id, cycle_number, chain_of_thought, decisions, "
                 f"CASE WHEN id IN ({ids}) THEN coalesce(positions, '[]') END")
    counts = {name: s.count() for name, s in scans.items()}
    total = sum(counts.values()) or 1
    size = _file_size(path)
    readers = {
        "decision_logs": _decision_rows, "equity_history": _equity_rows, "trades": _trade_rows,
        "analysis_insights": _insight_rows,
    }
    streams = [readers[name](iter(scan), clock, path, out, name) for name, scan in scans.items()]
    append, next_seq, add_error = tables.append, tables.next_seq, tables.add_error
    done = 0
    step = max(1, total // 100)
    for ns, agent, payload in heapq.merge(*streams, key=_first):
        seq = next_seq(agent)
        if type(payload) is tuple:
            for ev in payload:
                append(agent, ev, ns, seq, "store")
        else:
            kind, detail, raw = payload
            add_error(agent, kind, detail, raw, ns, seq=seq, source="store")
        done += 1
        if progress is not None and done % step == 0:
            progress(size * step // total)
    out.rows = {name: out.rows.get(name, 0) for name in scans}
    return out


def _first(item: tuple) -> int:
    return item[0]


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # pragma: no cover
        return 0


def _count(out: StoreLoad, name: str) -> None:
    out.rows[name] = out.rows.get(name, 0) + 1


def _bad_time(path: Path, table: str, key: Any, column: str, value: Any) -> str:
    return f"{path}: {table} row {key}: {column} {str(value)[:40]!r} is not a time; row skipped"


# Each reader yields (time ns, agent, payload): payload is a tuple of events, or
# a list [kind, detail, raw] for an errors row. A row without a usable time comes
# after the rows before it (its neighbour's time), so the merge stays ordered.


def _decision_rows(rows: Iterator[tuple], clock: _Clock, path: Path, out: StoreLoad, name: str) -> Iterator[tuple]:
    loads = json.loads
    records = P.decision_record_events
    last = 0
    for rid, ts_text, agent, cycle, cot, dec_text, pos_text in rows:
        _count(out, name)
        ns = clock(ts_text)
        where = f"{path}: decision_logs row {rid} ({agent}, cycle {cycle})"
        if ns is None:
            yield last, agent, ["bad_field", _bad_time(path, name, rid, "timestamp", ts_text), None]
            continue
        last = ns
        try:
            items = loads(dec_text) if dec_text is not None else []  # NULL: the model returned [] (Q7)
        except (ValueError, TypeError, RecursionError) as exc:
            yield ns, agent, ["not_json", f"{where}: decisions is not JSON ({exc})", dec_text]
            items = None
        if items is not None:
            rec = {"cycle_number": cycle, "chain_of_thought": cot, "decisions": items}
            events, problems = records(rec, default_ts=ns)
            if problems:
                yield ns, agent, ["bad_field", f"{where}: " + "; ".join(problems), dec_text]
            if events:
                yield ns, agent, events
        if pos_text is not None:  # the agent's newest cycle: its open positions
            try:
                pos = loads(pos_text)
            except (ValueError, TypeError, RecursionError) as exc:
                yield ns, agent, ["not_json", f"{where}: positions is not JSON ({exc})", pos_text]
                continue
            events, problems = records({"positions": pos}, default_ts=ns)
            events = tuple(e for e in events if e.kind == "position_update")
            if problems:
                yield ns, agent, ["bad_field", f"{where}: " + "; ".join(problems), pos_text]
            if events:
                out.positions_as_of[agent] = (cycle, ns)
                yield ns, agent, events


def _equity_rows(rows: Iterator[tuple], clock: _Clock, path: Path, out: StoreLoad, name: str) -> Iterator[tuple]:
    read = P.equity_point_event
    last = 0
    for rid, ts_text, agent, equity, adjusted, gross, upnl in rows:
        _count(out, name)
        ns = clock(ts_text)
        if ns is None:
            yield last, agent, ["bad_field", _bad_time(path, name, rid, "timestamp", ts_text), None]
            continue
        last = ns
        rec = {"equity": equity, "adjusted_equity": adjusted, "gross_equity": gross, "unrealized_pnl": upnl}
        try:
            yield ns, agent, (read(rec, f"{path}: equity_history row {rid}"),)
        except ProtocolError as exc:
            yield ns, agent, [exc.kind, exc.detail, json.dumps(rec)]


def _trade_rows(rows: Iterator[tuple], clock: _Clock, path: Path, out: StoreLoad, name: str) -> Iterator[tuple]:
    read = P.closed_trade_from_dict
    fmt = P.format_time
    last = 0
    for rid, close_text, agent, symbol, side, entry, close, qty, lev, open_text, pnl_pct, pnl_usdt in rows:
        _count(out, name)
        ns = clock(close_text)
        if ns is None:
            yield last, agent, ["bad_field", _bad_time(path, name, rid, "close_time", close_text), None]
            continue
        last = ns
        rec = {"symbol": symbol, "side": side, "entry_price": entry, "close_price": close, "quantity": qty,
               "leverage": lev, "open_time": fmt(clock(open_text)), "close_time": fmt(ns),
               "pnl_pct": pnl_pct, "pnl_usdt": pnl_usdt}
        try:
            yield ns, agent, (read(rec, f"{path}: trades row {rid}"),)
        except ProtocolError as exc:
            yield ns, agent, [exc.kind, exc.detail, json.dumps(rec, default=str)]


def _insight_rows(rows: Iterator[tuple], clock: _Clock, path: Path, out: StoreLoad, name: str) -> Iterator[tuple]:
    read = P.insight_from_dict
    fmt = P.format_time
    last = 0
    for (iid, created, agent, category, title, summary, findings, recs, conf, deprecated, active,
         trade_ids) in rows:
        _count(out, name)
        ns = clock(created)
        where = f"{path}: analysis_insights row {iid!r}"
        if ns is None:
            yield last, agent, ["bad_field", _bad_time(path, name, iid, "created_at", created), None]
            continue
        last = ns
        rec: dict[str, Any] = {
            "insight_id": iid, "agent_id": agent, "category": category, "title": title, "summary": summary,
            "detailed_findings": findings, "confidence_score": conf, "created_at": fmt(ns),
            "deprecated_at": fmt(clock(deprecated)), "is_active": active,
        }
        bad = None
        for key, text in (("recommendations", recs), ("supporting_trade_ids", trade_ids)):
            try:
                rec[key] = json.loads(text) if text is not None else None
            except (ValueError, TypeError, RecursionError) as exc:
                bad = ["not_json", f"{where}: {key} is not JSON ({exc})", text]
                break
        if bad is not None:
            yield ns, agent, bad
            continue
        try:
            yield ns, agent, (read(rec, where),)
        except ProtocolError as exc:
            yield ns, agent, [exc.kind, exc.detail, json.dumps(rec, default=str)[:2000]]
