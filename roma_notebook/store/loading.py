"""Load recordings, Parquet exports and ROMA-01 log folders as a :class:`Recording`.

:func:`load` accepts:

- a recording written by :class:`~roma_notebook.store.recording.Recorder` (``.jsonl``,
  ``.jsonl.gz``): its raw frames are replayed through the same
  :meth:`Tables.ingest <roma_notebook.core.tables.Tables.ingest>` a live stream uses
  (``source="live"``, as they were received), so the DataFrames equal the live
  ones, bad frames included. A torn last line (a crash mid-write) or a truncated gzip tail gives
  at most one ``errors`` row, never an exception;
- a Parquet export folder written by :func:`roma_notebook.store.parquet.to_parquet`
  (rows, dtypes and row order come back exactly);
- a real ROMA-01 ``logs/decisions`` folder: one agent's folder
  (``decision_YYYYMMDD_HHMMSS_cycle{N}.json``, ``trade_history.json``,
  ``equity_history.json``) or the parent folder holding several agents' folders
  (``source="log"``);
- the current ROMA-01 backend's SQLite store (``data/roma_trading.db``, any
  ``.db``/``.sqlite`` file, or the backend folder holding it), read-only, every
  agent (``source="store"``; see :mod:`roma_notebook.store.roma_store` and the ``tz``,
  ``agents``, ``since``, ``until`` arguments);
- a folder of recordings, a glob pattern, or a list of any of these (merged into
  one set of tables; a row two inputs share is kept once, see
  :meth:`Tables.extend_frames <roma_notebook.core.tables.Tables.extend_frames>`).

A corrupt or truncated file becomes one ``errors`` row (kind ``file``, detail
naming the file); the rest still loads.

How log files map to tables (times without a zone are taken as UTC):

- a decision file is one "frame": a ``cycles`` row and a ``decisions`` row per
  item (``chain_of_thought`` is the reasoning; ``position_size_usd``,
  ``stop_loss``, ``take_profit``, ``reasoning`` are read), an ``account`` row from
  ``account_state`` (``total_wallet_balance`` is ``total_balance``,
  ``total_unrealized_profit`` is ``unrealized_pnl``), ``position_history`` rows
  from ``positions``; the latest decision file gives the open ``positions``. The
  cycle number comes from the file name when the body lacks it;
- ``trade_history.json``: one ``closed_trades`` row per trade;
- ``equity_history.json``: one ``account`` row per point (``equity`` is
  ``total_balance``, ``unrealized_pnl`` when present), except for cycles that a
  decision file already gave an account row, so the balance series has one point
  per cycle;
- log files have no receive time: ``received_at`` is the record's own time.
  Within an agent, records are appended in time order.

Example:
    >>> rec = load("session.jsonl.gz")            # doctest: +SKIP
    >>> rec.account.groupby("agent_id")["total_balance"].last()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import gc
import glob as _glob
import html
import json
import operator
import os
import re
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import Annotated, Any, Iterable, Iterator

import pandas as pd

from ..core import protocol as P
from ..core.errors import ProtocolError
from .recording import RECORDING_FORMAT
from .recording_reader import (
    _NS_MAX, _NS_MIN, NotARecording, RecordingLines, binary_frame, last_line, read_header, read_line,
    text_lines,
)
from ..core.schema import TABLE_NAMES
from ..source_api import SourceAPI
from ..core.tables import Tables

__all__ = ["load", "Recording", "ACCEPTED_FORMATS", "LoadWarning"]


class LoadWarning(UserWarning):
    """:func:`load` kept going past unusable lines or files; they are rows of ``errors``."""

#: what :func:`load` reads, for error messages and docs
ACCEPTED_FORMATS = (
    "a recording (.jsonl or .jsonl.gz written by roma_notebook), "
    "a Parquet export folder (with _manifest.json, written by to_parquet), "
    "a ROMA-01 logs/decisions folder (one agent's folder with decision_*.json, "
    "trade_history.json, equity_history.json, or the parent of several), "
    "a folder of recordings, a ROMA-01 SQLite store (roma_trading.db, .db/.sqlite, or the backend "
    "folder holding data/roma_trading.db), or a list of any of these"
)

_DECISION_NAME = re.compile(r"^decision_(\d{8})_(\d{6})(?:_cycle(-?\d+))?.*\.json$")
_LOG_FILES = ("trade_history.json", "equity_history.json")
_RECORDING_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


# ---------------------------------------------------------------- Recording


class Recording(SourceAPI):
    """Tables loaded from files, with the same table properties as a live stream.

    Attributes:
        tables: the :class:`~roma_notebook.core.tables.Tables` holding the rows.
        paths: the files and folders it was loaded from.
        url: server URL of the (first) recording header, without any token; None
            for exports and logs.
        positions_as_of: which moment ``positions`` describes when it comes from
            ROMA-01 decision logs (a log folder or a SQLite store): a DataFrame
            indexed by agent_id with ``cycle``, ``logged_at`` and ``source``. The
            positions are those held at the *start* of that cycle, before its
            orders; ``logged_at`` is when the cycle was logged (its end). None
            for recordings and exports, whose ``positions`` are the latest
            position update received.

    Example:
        >>> rec = load("session.jsonl.gz")   # doctest: +SKIP
        >>> rec.decisions.query("action != 'hold'")   # doctest: +SKIP
        >>> rec.to_parquet("out/")   # doctest: +SKIP
    """

    positions_as_of: pd.DataFrame | None = None

    def __init__(
        self,
        tables: Tables,
        paths: Iterable[Any] = (),
        *,
        url: str | None = None,
        agent_ids: Iterable[str] = (),
    ):
        self.tables = tables
        self.paths = [str(p) for p in paths]
        self.url = url
        self._declared = [a for a in agent_ids]

    # -- the table properties (core/schema.py) come from TableProperties

    def frame(self, name: str) -> pd.DataFrame:
        """The DataFrame of table ``name`` (one of ``roma_notebook.core.schema.TABLE_NAMES``)."""
        return self.tables.frame(name)

    _frame = frame

    # -- the rest

    @property
    def agent_ids(self) -> list[str]:
        """Agents with rows (first-seen order), then agents only named in headers."""
        seen = [a for a in self.tables.agents() if isinstance(a, str)]
        return seen + [a for a in self._declared if a not in seen]

    def _stats_rows(self) -> list[dict[str, Any]]:
        """What the files say of each agent's traffic (no rate: nothing is live)."""
        agents = self.agent_ids
        frames = self.tables.frames_seen()
        last: dict[str, pd.Timestamp] = {}
        for name in TABLE_NAMES:
            df = self.tables.frame(name)
            if len(df) and name != "positions":
                for a, t in df.groupby("agent_id", observed=True, sort=False)["received_at"].max().items():
                    if t is not pd.NaT and (a not in last or t > last[a]):
                        last[a] = t
        err = self.tables.frame("errors")
        n_err = err["agent_id"].value_counts() if len(err) else pd.Series(dtype="int64")
        srv = err[err["kind"] == "server_error"]["agent_id"].value_counts() if len(err) else n_err
        conn = self.tables.frame("connections")
        ups = (conn[conn["event"] == "connected"]["agent_id"].value_counts()
               if len(conn) else pd.Series(dtype="int64"))
        # drops and duplicates are counted per table: whose they were is known only
        # when the tables hold one agent
        totals = self.tables.totals() if len(agents) == 1 else {}
        return [
            {
                "agent_id": a,
                "state": "recorded",
                "messages": frames.get(a, 0),
                "rate": float("nan"),
                "last_message_at": last.get(a),
                "reconnects": max(int(ups.get(a, 0)) - 1, 0),
                "errors": int(n_err.get(a, 0)),
                "server_errors": int(srv.get(a, 0)),
                "drops": totals.get("dropped", pd.NA),
                "duplicates": totals.get("duplicates", pd.NA),
                "callback_drops": 0,
            }
            for a in agents
        ]

    def dashboard(self, **kw: Any) -> Any:
        """The live dashboards' look, static: one agent's :class:`~roma_notebook.views.dashboard.Dashboard`,
        or for several agents the comparison view with a drill-down per agent."""
        agents = self.agent_ids
        if len(agents) <= 1:
            from ..views.dashboard import Dashboard

            return Dashboard(self, **kw)
        from ..views.dashboard import GroupDashboard

        return GroupDashboard(_RecordedGroup(self), **kw)

    def agent(self, agent_id: str) -> "Recording":
        """One agent's rows as a Recording of their own (for per-agent views and exports).

        Example:
            >>> rec.agent("qwen3-max").metrics()   # doctest: +SKIP
        """
        if agent_id not in self.agent_ids:
            raise KeyError(f"no agent {agent_id!r} in this recording; it has {', '.join(self.agent_ids) or 'none'}")
        frames = {}
        for name in TABLE_NAMES:
            df = self.tables.frame(name)
            frames[name] = df[(df["agent_id"] == agent_id).fillna(False).to_numpy(bool)].reset_index(drop=True)
        tables = Tables(max_rows=self.tables.max_rows)
        tables.extend_frames(frames, agents=[agent_id])
        out = Recording(tables, self.paths, url=self.url, agent_ids=[agent_id])
        if self.positions_as_of is not None and agent_id in self.positions_as_of.index:
            out.positions_as_of = self.positions_as_of.loc[[agent_id]]
        return out

    def _source_text(self) -> str:
        if not self.paths:
            return "(no files)"
        if len(self.paths) == 1:
            return self.paths[0]
        return f"{self.paths[0]} and {len(self.paths) - 1} more"

    def __repr__(self) -> str:
        c = self.tables.counts()
        rows = ", ".join(f"{n}={c[n]}" for n in ("account", "positions", "cycles", "decisions", "trades",
                                                 "closed_trades", "errors"))
        return f"Recording({self._source_text()!r}, agents={self.agent_ids!r}, rows: {rows})"

    def _repr_html_(self) -> str:
        c = self.tables.counts()
        rows = "".join(
            f"<tr><td>{html.escape(n)}</td><td style='text-align:right'>{c[n]:,}</td></tr>"
            for n in TABLE_NAMES
            if c[n] or n in ("account", "decisions", "errors")
        )
        agents = ", ".join(html.escape(a) for a in self.agent_ids) or "none"
        return (
            f"<div><b>Recording</b> <code>{html.escape(self._source_text())}</code><br>"
            f"agents: {agents}<table><tr><th>table</th><th>rows</th></tr>{rows}</table></div>"
        )


class _RecordedGroup:
    """A recording of several agents as a group of one-agent recordings, for the
    comparison dashboard (which shows one trace and one drill-down view per agent)."""

    def __init__(self, rec: Recording):
        self.recording = rec
        self.streams = {a: rec.agent(a) for a in rec.agent_ids}


# ---------------------------------------------------------------- progress


class _Progress:
    """A progress bar that appears only for loads taking over a second.

    ``enabled``: None shows a bar once a second has passed, True from the start,
    False never. The bar is tqdm.auto when installed (a widget in Jupyter, text
    elsewhere), else an ipywidgets IntProgress inside a kernel, else nothing.
    """

    def __init__(self, total: int, desc: str, enabled: bool | None):
        self.total = max(int(total), 1)
        self.desc = desc
        self.enabled = enabled
        self.done = 0
        self.start = time.monotonic()
        self.bar: Any = None
        self.kind: str | None = None
        self._last_shown = 0
        self._last_check = self.start
        if enabled:
            self._open()

    def update(self, n: int) -> None:
        self.done += n
        if self.enabled is False:
            return
        if self.bar is None:
            now = time.monotonic()
            if self.kind is None and now - self.start >= 1.0:
                self._open()
            return
        self._show()

    def _open(self) -> None:
        self.kind = "none"
        try:
            from tqdm.auto import tqdm  # optional: not a dependency

            self.bar = tqdm(total=self.total, initial=self.done, desc=self.desc, unit="B",
                            unit_scale=True, unit_divisor=1024, leave=False)
            self.kind = "tqdm"
            return
        except Exception:
            pass
        if _in_kernel():
            try:
                import ipywidgets as w
                from IPython.display import display

                self.bar = w.IntProgress(value=0, min=0, max=1000, description=self.desc[:20])
                display(self.bar)
                self.kind = "widget"
                self._show()
            except Exception:
                self.bar = None

    def _show(self) -> None:
        if self.kind == "tqdm":
            self.bar.update(self.done - self._last_shown)
            self._last_shown = self.done
        elif self.kind == "widget":
            self.bar.value = min(1000, int(1000 * self.done / self.total))

    def close(self) -> None:
        if self.bar is None:
            return
        try:
            if self.kind == "tqdm":
                self.bar.close()
            elif self.kind == "widget":
                self.bar.close()
        except Exception:  # pragma: no cover - a bar must never fail a load
            pass
        self.bar = None


def _in_kernel() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and getattr(ip, "kernel", None) is not None
    except Exception:  # pragma: no cover
        return False


# ---------------------------------------------------------------- classification


def _expand(path_or_paths: Any) -> list[Path]:
    if isinstance(path_or_paths, (str, os.PathLike)):
        items = [path_or_paths]
    elif isinstance(path_or_paths, Iterable) and not isinstance(path_or_paths, (bytes, dict)):
        items = list(path_or_paths)
        if not items:
            raise ValueError("load() needs at least one path; got an empty list")
    else:
        raise TypeError(
            f"load() takes a path or a list of paths, got {type(path_or_paths).__name__}"
        )
    out: list[Path] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"paths must be str or os.PathLike, got {type(item).__name__}")
        p = Path(os.fspath(item)).expanduser()
        if p.exists():
            out.append(p)
            continue
        text = str(p)
        if any(ch in text for ch in "*?["):
            matches = sorted(_glob.glob(text, recursive=True))
            if matches:
                out.extend(Path(m) for m in matches)
                continue
            raise FileNotFoundError(f"no file matches {text!r}")
        raise FileNotFoundError(f"no such file or folder: {text!r} (load() reads {ACCEPTED_FORMATS})")
    return out


def _is_decision_file(p: Path) -> bool:
    return p.name.startswith("decision_") and p.name.endswith(".json")


def _has_log_files(d: Path) -> bool:
    try:
        return any((d / f).is_file() for f in _LOG_FILES) or any(
            _is_decision_file(c) for c in d.iterdir() if c.is_file()
        )
    except OSError:
        return False


def _sniff_recording(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
        if head[:2] == b"\x1f\x8b":
            head = zlib.decompressobj(31).decompress(head, 4096)
    except (OSError, zlib.error):
        return False
    return RECORDING_FORMAT.encode() in head.split(b"\n", 1)[0]


def _check_recording(p: Path) -> None:
    """Raise ValueError when ``p`` cannot be a recording at all (wrong bytes, not a header).

    Damage after a good start (a torn tail, a cut gzip) still loads, as errors rows.
    """
    try:
        with open(p, "rb") as f:
            raw = f.read(4096)
    except OSError:
        return  # the loader reports it
    if not raw:
        return  # an empty recording: one errors row
    is_gz = raw[:2] == b"\x1f\x8b"
    if p.name.endswith(".gz") and not is_gz:
        raise ValueError(f"{str(p)!r} is not gzip data, though its name ends in .gz: not a recording")
    head = raw
    if is_gz:
        # small steps: damage further on must not hide a good start (it loads as errors rows)
        d, head = zlib.decompressobj(31), b""
        for i in range(0, len(raw), 256):
            try:
                head += d.decompress(raw[i : i + 256])
            except zlib.error as exc:
                if not head:
                    raise ValueError(f"{str(p)!r} is not a valid gzip file ({exc}): not a recording") from None
                break
            if d.eof:
                break
    body = head.lstrip()
    first, nl, _ = body.partition(b"\n")
    first = first.strip()
    if not first:
        return
    try:
        rec = json.loads(first)
        ok = type(rec) is dict and ("format" in rec or "frame" in rec)
    except ValueError:
        # cut off by this read (a long frame) or by a crash before its newline:
        # judge by its start, the loader reports the damage as an errors row
        ok = not nl and first.startswith(b'{"')
    if not ok:
        raise ValueError(
            f"{str(p)!r} is not a roma_notebook recording: its first line is not a recording "
            f"header or frame; load() reads {ACCEPTED_FORMATS}"
        )


def _classify(p: Path) -> list[tuple[str, Path, str | None]]:
    """(kind, path, agent) items to load for one path; ValueError when unrecognised."""
    from .roma_store import store_file

    store = store_file(p)  # a .db file, or a backend folder holding data/roma_trading.db
    if store is not None:
        return [("store", store, None)]
    if p.is_dir():
        from .parquet import is_export

        if is_export(p):
            return [("parquet", p, None)]
        if _has_log_files(p):
            return [("log_agent", p, p.name)]
        subdirs = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
        agents = [c for c in subdirs if _has_log_files(c)]
        if agents:
            return [("log_agent", c, c.name) for c in agents]
        if (p / "decisions").is_dir():  # the logs/ folder above logs/decisions
            return _classify(p / "decisions")
        recs = sorted(
            c for c in p.iterdir() if c.is_file() and c.name.endswith(_RECORDING_SUFFIXES)
        )
        if recs:
            return [("recording", c, None) for c in recs]
        if (p / "account").is_dir() and any((p / "account").glob("**/*.parquet")):
            return [("parquet", p, None)]  # an export whose manifest was lost
        raise ValueError(f"{str(p)!r} is a folder load() does not recognise; it reads {ACCEPTED_FORMATS}")
    name = p.name
    if name.endswith(_RECORDING_SUFFIXES):
        _check_recording(p)
        return [("recording", p, None)]
    if name == "_manifest.json":
        return [("parquet", p.parent, None)]
    if _is_decision_file(p) or name in _LOG_FILES:
        return [("log_file", p, p.parent.name)]
    if _sniff_recording(p):
        return [("recording", p, None)]
    raise ValueError(f"{str(p)!r} is not a file load() recognises; it reads {ACCEPTED_FORMATS}")


def _size(p: Path) -> int:
    try:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.stat().st_size
    except OSError:
        return 0


# ---------------------------------------------------------------- load


def load(
    path_or_paths: Any,
    *,
    max_rows: int | None = None,
    progress: bool | None = None,
    tz: Any = "UTC",
    agents: Any = None,
    since: Any = None,
    until: Any = None,
    timeout: float = 5.0,
    engine: str = "pandas",
) -> Recording:
    """Load recordings, Parquet exports and ROMA-01 log folders into one :class:`Recording`.

    Args:
        path_or_paths: a path (``str`` or ``os.PathLike``), a glob pattern, or a
            list of them; see the module docs for the formats. Several paths are
            merged into one set of tables.
        max_rows: keep at most this many rows per table (the newest), like
            ``connect(max_rows=...)``; None keeps everything.
        progress: None shows a progress bar when the load takes over a second
            (tqdm if installed, else an ipywidgets bar inside Jupyter), True
            always, False never.
        tz: SQLite stores only: the zone of the backend host, whose naive local
            times the store holds (IANA name, e.g. ``"Asia/Shanghai"``); default
            UTC (right for the backend's Docker image).
        agents, since, until: SQLite stores only: load only these agent ids and
            rows with ``since <= time < until`` (filtered in SQL; zone-less
            values are UTC).
        timeout: SQLite stores only: seconds to wait for a writer's lock before
            :class:`~roma_notebook.store.roma_store.StoreLocked`.
        engine: ``"pandas"`` (default) reads everything into memory; ``"dask"`` opens
            one Parquet export lazily as a
            :class:`~roma_notebook.store.dask_tables.DaskRecording` whose tables are dask
            DataFrames (for data bigger than memory; needs dask).

    Returns:
        A :class:`Recording` with the table properties of a live stream (a
        ``DaskRecording`` with ``engine="dask"``).

    Raises:
        FileNotFoundError: a path does not exist (or a pattern matches nothing).
        ValueError: a path is not in a format ``load`` reads (the message lists
            them), or a recording/export was written by a newer version;
            :class:`~roma_notebook.store.roma_store.StoreError` (a ValueError) for a
            SQLite file that is corrupt or of another schema.
        TypeError: ``path_or_paths`` is not a path or a list of paths.

    Example:
        >>> rec = load(["day1.jsonl.gz", "day2.jsonl.gz"])   # doctest: +SKIP
        >>> rec.stats()   # doctest: +SKIP
    """
    if engine == "dask":
        from .dask_tables import load_dask

        if max_rows is not None:
            raise ValueError('max_rows does not apply to engine="dask" (nothing is held in memory)')
        return load_dask(path_or_paths)  # type: ignore[return-value]
    if engine != "pandas":
        raise ValueError(f'engine must be "pandas" or "dask", got {engine!r}')
    paths = _expand(path_or_paths)
    plan: list[tuple[str, Path, str | None]] = []
    for p in paths:
        plan.extend(_classify(p))
    tables = Tables(max_rows=max_rows)
    total = sum(_size(p) for _, p, _ in plan)
    desc = paths[0].name if len(paths) == 1 else f"{len(paths)} inputs"
    prog = _Progress(total, f"loading {desc}", progress)
    ctx = _Context(tables, prog)
    # Single log files of one agent load together, so equity points can be matched
    # against the decision files' cycles and everything is appended in time order.
    single: dict[Path, list[Path]] = {}
    for kind, p, _ in plan:
        if kind == "log_file":
            single.setdefault(p.parent, []).append(p)
    try:
        for kind, p, agent in plan:
            if kind == "recording":
                _load_recording(ctx, p)
            elif kind == "parquet":
                _load_parquet(ctx, p)
            elif kind == "store":
                _load_store(ctx, p, tz=tz, agents=agents, since=since, until=until, timeout=timeout)
            elif kind == "log_agent":
                _load_log_agent(ctx, agent or p.name, _log_files_of(p))
            elif p.parent in single:  # log_file: the first of its folder loads them all
                files = sorted(set(single.pop(p.parent)), key=lambda c: c.name)
                _load_log_agent(ctx, agent or p.parent.name, files)
    finally:
        prog.close()
    rec = Recording(tables, paths, url=ctx.url, agent_ids=ctx.declared)
    rec.positions_as_of = _positions_moments(ctx.positions_as_of)
    problems = rec.tables.counts().get("errors", 0)
    if problems:
        # one line on screen, so damage is not noticed only from a count in a repr
        first = str(tables.frame("errors")["detail"].iloc[0])[:200]
        warnings.warn(
            f"loading {rec._source_text()}: {problems} unusable line(s) or frame(s), kept as rows of "
            f".errors (first: {first})", LoadWarning, stacklevel=2,
        )
    return rec


class _Context:
    def __init__(self, tables: Tables, progress: _Progress):
        self.tables = tables
        self.progress = progress
        self.url: str | None = None
        self.declared: list[str] = []
        # agent -> (cycle, time ns, source) of the decision log whose positions are loaded
        self.positions_as_of: dict[str, tuple[int | None, int, str]] = {}


def _load_store(ctx: _Context, path: Path, **kw: Any) -> None:
    from .roma_store import load_store

    info = load_store(path, ctx.tables, progress=ctx.progress.update, **kw)
    for agent, (cycle, ns) in info.positions_as_of.items():
        ctx.positions_as_of[agent] = (cycle, ns, "store")


def _positions_moments(moments: dict[str, tuple[int | None, int, str]]) -> pd.DataFrame | None:
    """``Recording.positions_as_of``: one row per agent whose positions come from a decision log."""
    if not moments:
        return None
    agents = list(moments)
    return pd.DataFrame(
        {
            "cycle": pd.array([moments[a][0] for a in agents], dtype="Int64"),
            "logged_at": pd.to_datetime([moments[a][1] for a in agents], unit="ns", utc=True),
            "source": pd.array([moments[a][2] for a in agents], dtype="string"),
        },
        index=pd.Index(agents, name="agent_id", dtype="string"),
    )


# ---------------------------------------------------------------- recordings


try:
    import msgspec as _msgspec

    # a receive time the tables can store (int64 ns); others take the careful path
    _LineTime = Annotated[int, _msgspec.Meta(ge=_NS_MIN, le=_NS_MAX)]

    class _FrameLine(_msgspec.Struct, forbid_unknown_fields=True):
        """A text frame line exactly as ``Recorder`` writes it: nothing else fits."""

        t: _LineTime
        agent: str
        frame: str

    # ~3x cheaper than the stdlib scanner on a line (its frame is one long escaped
    # string). Strict: a line it rejects (header, binary or connection line, extra
    # or missing keys, a float or bool 't', a lone surrogate, damage) takes the
    # stdlib path below, which decides as it always did.
    _line_decode: Any = _msgspec.json.Decoder(_FrameLine).decode
    _LineError: Any = _msgspec.DecodeError

    class _BlockLine(_msgspec.Struct, forbid_unknown_fields=True):
        """A frame line of a block decoded in one call; binary ones go line by line."""

        t: _LineTime
        agent: str
        frame: str
        binary: bool = False

    # A block's lines as one JSON array: one call instead of one per line. Any line
    # that does not fit (a header, a connection event, damage) fails the block, whose
    # lines then take the line-by-line path.
    _block_decode: Any = _msgspec.json.Decoder(list[_BlockLine]).decode
except ImportError:  # pragma: no cover - msgspec is a dependency; stay correct without it
    _line_decode = _block_decode = None
    _LineError = ValueError



# an account update's data fields, in extend_account's order
_ACCOUNT_FIELDS = tuple(map(operator.attrgetter, (
    "total_balance", "available_balance", "unrealized_pnl", "used_percentage")))
# bytes of lines decoded per call (a slice of a ~4 MB decompressed block, cut at a newline)
_PART_BYTES = 512 * 1024
_AGENT_IN_LINE = re.compile(r'"agent"\s*:\s*"((?:[^"\\]|\\.)*)"')
_T_IN_LINE = re.compile(r'"t"\s*:\s*(\d+)')
# a "status" key whose value is an object (JSON whitespace around the colon)
_STATUS_OBJECT = re.compile(r'"status"[ \t\n\r]*:[ \t\n\r]*\{')


def _load_recording(ctx: _Context, path: Path) -> None:
    tables = ctx.tables
    ingest = tables.ingest
    add_error = tables.add_error
    # The C scanner itself: one call per line instead of loads -> decode -> raw_decode.
    scan = json.JSONDecoder().scan_once
    line_decode = _line_decode
    # Documented account, position and status updates, the commonest frames, skip
    # ingest(): decoded by protocol's typed decoder (the events parse() gives) and
    # appended a block at a time through Tables' bulk methods. Only without
    # max_rows, whose trimming is defined row by row.
    tu = P.TYPED_UPDATES
    typed = tu.decode if tu is not None else None
    AccountMsg = tu.account if tu is not None else None
    PositionMsg = tu.positions if tu is not None else None
    typed_errors = (*tu.errors, RecursionError, UnicodeEncodeError) if tu is not None else ()
    bulk = line_decode is not None and typed is not None and tables.max_rows is None
    next_seq = tables.next_seq
    # frames of one second share a stamp: a local cache saves the call (parse_time
    # caches the same way)
    stamps: dict[str, int | None] = {}
    stamp_of = stamps.get
    _MISS = stamps  # (a sentinel no stamp can equal)

    def parse_time(text: str) -> int | None:
        ns = P.parse_time(text)
        if len(stamps) > 4096:
            stamps.clear()
        stamps[text] = ns
        return ns
    # (agent, time, received, seq, data) per collected message, in frame order
    accs: list[tuple] = []
    poss: list[tuple] = []
    stats: list[tuple] = []
    collect = {AccountMsg: accs.append, PositionMsg: poss.append, (tu.status if tu is not None else None): stats.append}

    def flush_accounts() -> None:
        if accs:
            agents, stamps_, recv, seqs, data = map(list, zip(*accs))
            accs.clear()
            # the data Structs' fields as columns, read in C
            total, available, unrealized, used = (list(map(get, data)) for get in _ACCOUNT_FIELDS)
            tables.extend_account(agents, stamps_, recv, seqs, total, available, unrealized, used, source=src)

    def flush_positions() -> None:
        if poss:
            agents, stamps_, recv, seqs, data = map(list, zip(*poss))
            poss.clear()
            # the typed decoder's position items carry a Position's attributes
            tables.extend_positions(agents, stamps_, recv, seqs, data, source=src)

    def flush_status() -> None:
        if stats:
            agents, stamps_, recv, seqs, data = map(list, zip(*stats))
            stats.clear()
            last = []
            for d in data:
                ns = stamp_of(d.last_decision_time, _MISS)
                last.append(parse_time(d.last_decision_time) if ns is _MISS else ns)
            tables.extend_status(
                agents, stamps_, recv, seqs,
                [d.is_running for d in data], [d.cycle_count for d in data], last, source=src,
            )

    def flush_all() -> None:
        flush_accounts()
        flush_positions()
        flush_status()
    # decompressed in a background thread, which overlaps parsing here on a second core
    reader = RecordingLines(path, ctx.progress.update, background=True)
    # recorded frames were received live: the same source, so loaded == live exactly
    src = "live"
    lineno = 0
    seen_line = False  # has any line been used yet (the first must be a header or frame)
    last_agent: str | None = None
    last_t: int | None = None

    def bad(line: str, why: str) -> None:
        # A line we cannot use: one errors row naming file and line.
        agent, t = _guess_agent_time(line, last_agent, last_t, path)
        seq = tables.next_seq(agent) if agent is not None else None
        add_error(agent, "file", f"{path}: line {lineno}: {why}", line, t, seq=seq, source=src)

    def handle(line: str) -> None:
        # The slow, careful path: headers, binary frames, connection events, damage.
        nonlocal seen_line, last_agent, last_t
        try:
            got = read_line(line, first=not seen_line)
        except NotARecording:
            raise ValueError(
                f"{str(path)!r} is not a roma_notebook recording (its first line is not a "
                f"recording header); load() reads {ACCEPTED_FORMATS}"
            ) from None
        kind = got[0]
        if kind == "bad":
            seen_line = seen_line or got[2]
            bad(line, got[1])
            return
        seen_line = True
        if kind == "frame":
            _, t, agent, frame = got
            last_agent, last_t = agent, t
            ingest(agent, frame, t, src)
        elif kind == "header":
            read_header(ctx, got[1], path)
        else:  # connection
            _, t, agent, event, detail = got
            tables.add_connection(agent, event, detail, t)

    block_decode = _block_decode if line_decode is not None else None

    def parts() -> Iterator[bytes]:
        # a decompressed block holds ~4 MB of lines: decoded a slice at a time, the
        # slice's JSON array and decoded lines stay small next to the tables built
        for raw in reader.raw_blocks():
            n, start = len(raw), 0
            while True:
                end = raw.find(b"\n", start + _PART_BYTES) if start + _PART_BYTES < n else -1
                if end < 0:
                    end = n
                yield raw[start:end]
                if end >= n:
                    break
                start = end + 1

    # The cyclic collector would scan the block's decoded lines and collected
    # messages over and over (~0.8 us a frame) though nothing here makes a cycle:
    # paused while lines are read (process-wide; a concurrent load that found it
    # paused leaves it to the one that paused it).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for part in parts():
            base = lineno
            decoded = None
            lines: list[str] | None = None
            if block_decode is not None:
                # the slice's lines as one JSON array, decoded from the bytes in one
                # call: no str per line is made unless a line needs the careful path
                # (", " is one byte longer than the newline it replaces: the length
                # difference counts the lines, a pass cheaper than bytes.count)
                array_text = b"[" + part.replace(b"\n", b", ") + b"]"
                try:
                    decoded = block_decode(array_text)
                except (_LineError, RecursionError, UnicodeError):
                    decoded = None
                if decoded is not None and len(decoded) != len(array_text) - len(part) - 1:
                    decoded = None  # a line held two values: line by line decides
                del array_text
            if decoded is None:
                lines = text_lines(part)
            for i, item in enumerate(decoded if decoded is not None else lines):  # type: ignore[arg-type]
                if line_decode is not None:
                    if decoded is not None:
                        fl = item
                        if fl.binary:
                            # A binary frame only ever makes an errors row, so the
                            # collected rows need not go first (flushing here would
                            # cut the blocks short). Read as read_line() reads it
                            # (msgspec, like json, keeps a repeated key's last value).
                            data, why = binary_frame(fl.frame)
                            if data is not None:
                                seen_line = True
                                last_agent, last_t = fl.agent, fl.t
                                ingest(last_agent, data, last_t, src)
                            else:  # the careful path writes the errors row, with the line
                                lineno = base + i + 1
                                if lines is None:
                                    lines = text_lines(part)
                                handle(lines[i])
                            continue
                    else:
                        try:
                            fl = line_decode(item)
                        except _LineError:
                            fl = None
                    # the same as the scanner path below for this line (only JSON
                    # whitespace around the object may differ, which handle() ignores)
                    if fl is not None:  # (its time in range: _LineTime)
                        seen_line = True
                        last_agent, last_t = fl.agent, fl.t
                        frame = fl.frame
                        if bulk:
                            # (what the typed decoder accepts, parse() reads the same way)
                            try:
                                msg = typed(frame)
                            except typed_errors:
                                msg = None
                            if msg is not None:
                                ns = stamp_of(msg.timestamp, _MISS)
                                if ns is _MISS:
                                    ns = parse_time(msg.timestamp)
                                collect[type(msg)]((last_agent, ns, last_t, next_seq(last_agent), msg.data))
                                continue
                        # Rows of one table stay in frame order: any frame that may
                        # carry an account, positions or a status (a snapshot, an
                        # escaped key) waits for the collected ones. Without a \u
                        # escape the text must name it.
                        if accs or poss or stats:
                            escaped = "\\u" in frame
                            if accs and (escaped or "account" in frame):
                                flush_accounts()
                            # (a decision's "position_size_usd" carries none)
                            if poss and (escaped or '"positions"' in frame or "position_update" in frame):
                                flush_positions()
                            # a status comes from an agent_status message or a
                            # "status" object (a snapshot, a keepalive), not from a
                            # fill's "status": "filled"
                            if stats and (escaped or "agent_status" in frame or _STATUS_OBJECT.search(frame)):
                                flush_status()
                        ingest(last_agent, frame, last_t, src)
                        continue
                    flush_all()
                line = item  # (a decoded line never gets here: its time is in range)
                # Fast path: a text frame line exactly as Recorder writes it.
                try:
                    rec, end = scan(line, 0)
                    frame = rec["frame"]
                    t = rec["t"]
                    agent = rec["agent"]
                except (StopIteration, ValueError, KeyError, TypeError, IndexError):
                    rec = None
                if (
                    rec is None
                    or end != len(line)
                    or len(rec) != 3
                    or type(t) is not int
                    or type(agent) is not str
                    or not _NS_MIN <= t <= _NS_MAX
                ):
                    lineno = base + i + 1
                    if line.strip():
                        handle(line)
                    continue
                seen_line = True
                last_agent, last_t = agent, t
                ingest(agent, frame, t, src)
            lineno = base + (len(decoded) if decoded is not None else len(lines))  # type: ignore[arg-type]
            flush_all()
    finally:
        reader.close()  # the background reader's thread ends with the load, even on error
        if gc_was_on:
            gc.enable()
    problems = []
    carry = reader.tail
    tail, complete = last_line(carry)
    if tail.strip():
        lineno += 1
        if complete:  # a last line without its newline is still a whole line
            handle(tail)
            tail = ""
        else:
            problems.append(f"torn last line ({len(carry)} bytes)")
    if reader.problem and (problems or lineno == 0 or "corrupt" in reader.problem):
        problems.append(reader.problem)
    if lineno == 0 and not problems:
        problems.append("empty file (no header, no frames)")
    # A gzip without its trailer that ends on a line boundary lost nothing we can
    # see: the recorder flushes whole lines. Only usable-data problems make a row.
    if problems:
        agent, t = _guess_agent_time(tail, last_agent, last_t, path)
        seq = tables.next_seq(agent) if agent is not None and tail.strip() else None
        add_error(agent, "file", f"{path}: " + "; ".join(problems), tail or None, t, seq=seq, source=src)


def _guess_agent_time(line: str, agent: str | None, t: int | None, path: Path) -> tuple[str | None, int]:
    """Agent and time for an errors row: from the damaged line if readable, else the last good one."""
    m = _AGENT_IN_LINE.search(line)
    if m:
        try:
            agent = json.loads('"' + m.group(1) + '"')
        except ValueError:
            pass
    m = _T_IN_LINE.search(line)
    if m and len(m.group(1)) <= 19 and int(m.group(1)) < 2**63:  # storable as int64 ns
        t = int(m.group(1))
    if t is None:
        t = _mtime_ns(path)
    return agent, t


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # pragma: no cover
        return time.time_ns()


# ---------------------------------------------------------------- Parquet exports


def _load_parquet(ctx: _Context, root: Path) -> None:
    from .parquet import read_export

    frames, manifest, problems = read_export(root, progress=ctx.progress.update)
    if ctx.url is None and isinstance(manifest.get("url"), str):
        from .recording import safe_url

        ctx.url = safe_url(manifest["url"])
    agents = manifest.get("agents") if isinstance(manifest.get("agents"), list) else []
    counters = manifest.get("tables") if isinstance(manifest.get("tables"), dict) else {}
    ctx.tables.extend_frames(frames, agents=[a for a in agents if isinstance(a, str)], counters=counters)
    now = _mtime_ns(root)
    for detail in problems:
        ctx.tables.add_error(None, "file", detail, None, now, source="parquet")


# ---------------------------------------------------------------- ROMA-01 logs


def _log_files_of(folder: Path) -> list[Path]:
    files = [c for c in folder.iterdir() if c.is_file() and (_is_decision_file(c) or c.name in _LOG_FILES)]
    return sorted(files, key=lambda c: c.name)


def _name_time_cycle(name: str) -> tuple[int | None, int | None]:
    m = _DECISION_NAME.match(name)
    if not m:
        return None, None
    d, t, c = m.groups()
    ts = P.parse_time(f"{d[:4]}-{d[4:6]}-{d[6:]}T{t[:2]}:{t[2:4]}:{t[4:]}")
    return ts, (int(c) if c is not None else None)


def _read_text(path: Path, ctx: _Context) -> str:
    data = path.read_bytes()
    ctx.progress.update(len(data))
    # a crash mid-write can cut a UTF-8 sequence: replace it, the JSON parse decides
    return data.decode("utf-8", "replace")


def _salvage_list(text: str) -> tuple[list, str | None]:
    """The items of a JSON array, as many as parse before any damage, and the damage."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        dec = json.JSONDecoder()
        items: list = []
        i = len(text) - len(text.lstrip())
        if not text[i:i + 1] == "[":
            return [], f"not JSON ({exc})"
        i += 1
        n = len(text)
        while True:
            while i < n and text[i] in " \t\r\n":
                i += 1
            if i >= n or text[i] == "]":
                break
            try:
                obj, i = dec.raw_decode(text, i)
            except ValueError:
                break
            items.append(obj)
            while i < n and text[i] in " \t\r\n":
                i += 1
            if i < n and text[i] == ",":
                i += 1
        return items, f"truncated or corrupt JSON ({exc}); {len(items)} complete items read"
    if not isinstance(value, list):
        return [], f"expected a JSON list, got {type(value).__name__}"
    return value, None


def _load_log_agent(ctx: _Context, agent: str, files: list[Path]) -> None:
    """Read one agent's log files and append their rows in time order."""
    # unit: (time ns, tie-break, payload); payload ("events", [events]) or ("error", detail, raw)
    units: list[tuple[int, int, tuple]] = []
    account_cycles: set[int] = set()
    account_times: set[int] = set()
    equity_file = None
    for path in files:
        if path.name == "equity_history.json":
            equity_file = path  # after the decision files: it skips cycles they covered
            continue
        if path.name == "trade_history.json":
            _read_trades(ctx, path, units)
        else:
            _read_decision(ctx, path, units, account_cycles, account_times)
    if equity_file is not None:
        _read_equity(ctx, equity_file, units, account_cycles, account_times)
    units.sort(key=lambda u: u[0])  # stable: equal times keep file order
    tables = ctx.tables
    for ns, _, payload in units:
        seq = tables.next_seq(agent)
        if payload[0] == "events":
            for ev in payload[1]:
                tables.append(agent, ev, ns, seq, "log")
                if ev.kind == "position_update":  # the newest decision file's positions win
                    cycle = next((e.cycle for e in payload[1] if e.kind == "decision"), None)
                    ctx.positions_as_of[agent] = (cycle, ns, "log")
        else:
            tables.add_error(agent, "file", payload[1], payload[2], ns, seq=seq, source="log")


def _read_decision(ctx: _Context, path: Path, units: list, account_cycles: set, account_times: set) -> None:
    name_ts, name_cycle = _name_time_cycle(path.name)
    tie = len(units)
    try:
        text = _read_text(path, ctx)
    except OSError as exc:
        units.append((name_ts or _mtime_ns(path), tie, ("error", f"{path}: unreadable ({exc})", None)))
        return
    fallback = name_ts if name_ts is not None else _mtime_ns(path)
    if not text.strip():
        units.append((fallback, tie, ("error", f"{path}: empty file", None)))
        return
    try:
        body = json.loads(text)
    except ValueError as exc:
        units.append((fallback, tie, ("error", f"{path}: truncated or corrupt JSON ({exc})", text)))
        return
    if not isinstance(body, dict):
        units.append((fallback, tie, ("error", f"{path}: expected a JSON object, got {type(body).__name__}", text)))
        return
    events, problems = P.decision_record_events(body, cycle_hint=name_cycle, default_ts=fallback)
    ts = P.parse_time(body.get("timestamp"))
    if ts is None:
        ts = fallback
    cycle = next((e.cycle for e in events if e.kind == "decision"), name_cycle)
    if any(e.kind == "account_update" for e in events):
        # remembered so equity_history.json does not repeat this cycle's balance
        if cycle is not None:
            account_cycles.add(cycle)
        account_times.add(ts)
    events = list(events)
    if events:
        units.append((ts, tie, ("events", events)))
    if problems:
        units.append((ts, tie, ("error", f"{path}: " + "; ".join(problems), text)))


def _read_list_file(ctx: _Context, path: Path, units: list) -> tuple[str, list, list[str]] | None:
    """Text, items and problems of a JSON-list log file, or None (an errors unit added)."""
    try:
        text = _read_text(path, ctx)
    except OSError as exc:
        units.append((_mtime_ns(path), len(units), ("error", f"{path}: unreadable ({exc})", None)))
        return None
    items, damage = _salvage_list(text) if text.strip() else ([], "empty file")
    return text, items, [damage] if damage else []


def _list_problems(units: list, path: Path, problems: list[str], last: int | None, tie: int, text: str) -> None:
    """One errors unit summarising a list file's bad items (the first five named)."""
    if problems:
        at = last if last is not None else _mtime_ns(path)
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        units.append((at, tie, ("error", f"{path}: " + "; ".join(problems[:5]) + more, text)))


def _read_trades(ctx: _Context, path: Path, units: list) -> None:
    tie = len(units)
    got = _read_list_file(ctx, path, units)
    if got is None:
        return
    text, items, problems = got
    last = None
    for i, d in enumerate(items):
        try:
            ev = P.closed_trade_from_dict(d, f"trade_history[{i}]")
        except ProtocolError as exc:
            problems.append(exc.detail)
            continue
        ns = ev.close_time if ev.close_time is not None else ev.open_time
        if ns is None:
            ns = last if last is not None else _mtime_ns(path)
        last = ns
        units.append((ns, tie + i, ("events", [ev])))
    _list_problems(units, path, problems, last, tie + len(items), text)


def _read_equity(ctx: _Context, path: Path, units: list, account_cycles: set, account_times: set) -> None:
    tie = len(units)
    got = _read_list_file(ctx, path, units)
    if got is None:
        return
    text, items, problems = got
    last = None
    for i, d in enumerate(items):
        where = f"equity_history[{i}]"
        if not isinstance(d, dict):
            problems.append(f"{where} must be an object, got {type(d).__name__}")
            continue
        ts = P.parse_time(d.get("timestamp"))
        cycle = d.get("cycle")
        if (type(cycle) is int and cycle in account_cycles) or (ts is not None and ts in account_times):
            continue  # a decision file already gave this cycle's account row
        try:
            ev = P.equity_point_event(d, where)
        except ProtocolError as exc:
            problems.append(exc.detail)
            continue
        if ts is None:
            ts = last if last is not None else _mtime_ns(path)
        last = ts
        units.append((ts, tie + i, ("events", [dataclasses.replace(ev, timestamp=ts)])))
    _list_problems(units, path, problems, last, tie + len(items), text)
