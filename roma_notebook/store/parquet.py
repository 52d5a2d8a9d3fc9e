"""Export tables as hive-partitioned Parquet, and read such an export back.

Layout written by :func:`to_parquet`::

    out/
      _manifest.json                      format, version, agents, url, files per table
      account/
        agent=deepseek-chat-v3.1/
          date=2025-11-02/part-0.parquet
          date=2025-11-03/part-0.parquet
        agent=qwen3-max/date=2025-11-02/part-0.parquet
      positions/...  position_history/...  cycles/...  decisions/...  trades/...
      closed_trades/...  status/...  performance/...  errors/...  connections/...
      _order/account.parquet              original row order (see below)

Every file holds *all* the table's columns (roma_notebook/schema.py), ``agent_id``
included, with the table's own types: ``timestamp[ns, tz=UTC]`` times, ``int64`` (nullable where
the table's column is ``Int64``), ``bool`` (nullable), strings, ``float64`` with
NaN. So ``pandas.read_parquet(out / "account")``, ``pyarrow.dataset.dataset(out /
"account", partitioning="hive")`` and DuckDB's ``read_parquet('out/account/**/*.parquet',
hive_partitioning=true)`` all give back the same columns, dtypes and values
without help; they add two partition columns, ``agent`` and ``date`` (pandas
makes them categorical, DuckDB reads ``date`` as DATE), which you can ignore or
filter on to read less.

Why ``agent=`` and not ``agent_id=``: readers derive a column from each
directory key, and pandas (through pyarrow) refuses a dataset whose files also
hold a column of that name (``Unable to merge: Field agent_id has incompatible
types: large_string vs dictionary``), while without the real column pandas would
return ``agent_id`` as a categorical at the end of the frame.

An empty table is one zero-row ``<table>/part-0.parquet`` that carries the schema.
Partitions are written in (agent, date) order; ``_order/<table>.parquet`` keeps
the original interleaving (the original row index of each written row) so
:func:`roma_notebook.load` restores rows exactly. It lives outside the table
folders, so ``**/*.parquet`` globs of a table never see it.

Re-exporting into an existing export replaces it (written to a temporary sibling,
then swapped in); a non-empty folder that is not an export is never touched.

Example:
    >>> import tempfile, roma_notebook.core.tables as T
    >>> t = T.Tables()
    >>> _ = t.ingest("a", '{"type":"account_update","timestamp":"2025-11-02T10:30:00Z",'
    ...   '"data":{"total_balance":10050.25,"available_balance":8525.0}}', 1762079400000000000)
    >>> out = to_parquet(t, tempfile.mkdtemp() + "/export")
    >>> import pandas as pd
    >>> pd.read_parquet(out / "account")["total_balance"].tolist()
    [10050.25]
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.schema import TABLE_NAMES, empty_frame
from ..core.tables import Tables

__all__ = [
    "to_parquet",
    "read_export",
    "is_export",
    "PARQUET_FORMAT",
    "PARQUET_VERSION",
    "MANIFEST",
]

#: value of the manifest's ``format`` key
PARQUET_FORMAT = "roma-notebook-parquet"
#: the newest export version this library writes and reads
PARQUET_VERSION = 1
#: name of the manifest file at the top of an export
MANIFEST = "_manifest.json"

_NULL_PART = "__HIVE_DEFAULT_PARTITION__"  # Hive's (and pyarrow's) name for a null key
_NS_PER_DAY = 86_400 * 1_000_000_000
_NAT = np.iinfo(np.int64).min


def is_export(directory: Any) -> bool:
    """True when ``directory`` holds a roma_notebook Parquet export (has a manifest)."""
    return (Path(directory) / MANIFEST).is_file()


# ---------------------------------------------------------------- writing


def _source_frames(source: Any) -> tuple[dict[str, pd.DataFrame], list[str], dict[str, dict[str, int]]]:
    """Frames, agent ids (first-seen order) and per-table counters of any source."""
    tables = source if isinstance(source, Tables) else getattr(source, "tables", None)
    if isinstance(tables, Tables):
        frames = {n: tables.frame(n) for n in TABLE_NAMES}
        agents = list(tables.agents())
        st = tables.stats()
        counters = {
            n: {"dropped": int(st.loc[n, "dropped"]), "duplicates": int(st.loc[n, "duplicates"])}
            for n in TABLE_NAMES
        }
    else:
        missing = [n for n in TABLE_NAMES if not hasattr(source, n)]
        if missing:
            raise TypeError(
                "to_parquet needs a Tables or an object with the table properties "
                f"({', '.join(TABLE_NAMES)}); {type(source).__name__} lacks {', '.join(missing)}"
            )
        frames = {}
        for n in TABLE_NAMES:
            df = getattr(source, n)
            if not isinstance(df, pd.DataFrame):
                raise TypeError(f"{type(source).__name__}.{n} is a {type(df).__name__}, not a DataFrame")
            frames[n] = df
        agents = [str(a) for a in (getattr(source, "agent_ids", None) or [])]
        counters = {}
        # a StreamGroup: its streams' own tables know what was dropped or de-duplicated
        streams = getattr(source, "streams", None)
        if isinstance(streams, dict) and all(isinstance(getattr(s, "tables", None), Tables) for s in streams.values()):
            for s in streams.values():
                st = s.tables.stats()
                for n in TABLE_NAMES:
                    c = counters.setdefault(n, {"dropped": 0, "duplicates": 0})
                    c["dropped"] += int(st.loc[n, "dropped"])
                    c["duplicates"] += int(st.loc[n, "duplicates"])
    # agents seen only in rows (e.g. a group whose agent_ids is partial) still count
    seen = set(agents)
    for df in frames.values():
        if "agent_id" in df.columns and len(df):
            for a in df["agent_id"].dropna().unique():
                if a not in seen:
                    seen.add(a)
                    agents.append(str(a))
    return frames, agents, counters


def _arrow(df: pd.DataFrame, name: str) -> pa.Table:
    # The table's own dtypes decide the Parquet types; a frame from elsewhere with
    # drifted dtypes (object strings, float ints) is brought back to them first.
    expected = empty_frame(name)
    if list(df.columns[: len(expected.columns)]) == list(expected.columns):
        fixed = {}
        for c in expected.columns:
            if df[c].dtype != expected[c].dtype:
                fixed[c] = df[c].astype(expected[c].dtype)
        if fixed:
            df = df.assign(**fixed)
    return pa.Table.from_pandas(df, preserve_index=False)


def _partition_keys(df: pd.DataFrame, by_date: bool) -> tuple[np.ndarray, list[str]]:
    """One int key per row and the relative directory of each key, in sorted key order."""
    n = len(df)
    acodes, agents = pd.factorize(df["agent_id"], sort=True, use_na_sentinel=True)
    acodes = np.where(acodes < 0, len(agents), acodes).astype(np.int64)
    agent_dirs = [f"agent={quote(str(a), safe='')}" for a in agents] + [f"agent={_NULL_PART}"]
    if not by_date:
        return acodes, agent_dirs
    ts = df["timestamp"]
    if isinstance(ts.dtype, pd.DatetimeTZDtype) or ts.dtype.kind == "M":
        ns = pd.DatetimeIndex(ts).as_unit("ns").asi8
    else:  # pragma: no cover - tables always have datetimes here
        ns = np.full(n, _NAT, dtype=np.int64)
    nat = ns == _NAT
    days = np.where(nat, np.iinfo(np.int64).max, ns // _NS_PER_DAY)
    dcodes, day_values = pd.factorize(days, sort=True)
    date_dirs = [
        f"date={_NULL_PART}" if d == np.iinfo(np.int64).max
        else "date=" + str(np.datetime64(int(d), "D"))
        for d in day_values
    ]
    nd = len(date_dirs)
    keys = acodes * nd + dcodes
    dirs = [f"{a}/{d}" for a in agent_dirs for d in date_dirs]
    return keys, dirs


def to_parquet(source: Any, directory: Any, *, partition_by_date: bool = True) -> Path:
    """Write every table as a hive-partitioned Parquet dataset under ``directory``.

    Args:
        source: a :class:`~roma_notebook.core.tables.Tables`, or anything with the table
            properties (``AgentStream``, ``StreamGroup``, ``Recording``).
        directory: output folder; created, or replaced when it already holds an
            export. A non-empty folder that is not an export raises ValueError.
        partition_by_date: add a ``date=YYYY-MM-DD`` level (UTC date of
            ``timestamp``) below ``agent=<id>``.

    Returns:
        The output folder as a :class:`pathlib.Path`.

    Raises:
        TypeError: ``source`` has no tables.
        ValueError: ``directory`` is a file, or a folder with other content.

    Example:
        >>> import tempfile, roma_notebook.core.tables as T
        >>> out = to_parquet(T.Tables(), tempfile.mkdtemp() + "/empty")
        >>> sorted(p.name for p in out.iterdir() if not p.name.startswith("_"))[:3]   # _* is bookkeeping
        ['account', 'closed_trades', 'connections']
    """
    frames, agents, counters = _source_frames(source)
    target = Path(os.fspath(directory))
    if target.exists():
        if not target.is_dir():
            raise ValueError(f"{target} exists and is not a folder")
        if any(target.iterdir()) and not is_export(target):
            raise ValueError(
                f"{target} is not empty and is not a roma_notebook Parquet export; "
                "refusing to replace it (choose a new or empty folder)"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        manifest_tables: dict[str, Any] = {}
        for name in TABLE_NAMES:
            manifest_tables[name] = _write_table(frames[name], name, tmp, partition_by_date)
            manifest_tables[name].update(counters.get(name, {}))
        manifest = {
            "format": PARQUET_FORMAT,
            "version": PARQUET_VERSION,
            "library_version": _library_version(),
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "partitioning": ["agent", "date"] if partition_by_date else ["agent"],
            "agents": agents,
            "url": _source_url(source),
            "tables": manifest_tables,
        }
        # The manifest goes last: a crash mid-export leaves no folder that looks complete.
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap_in(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    trash = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
    os.replace(target, trash)
    try:
        os.replace(tmp, target)
    except BaseException:  # pragma: no cover - put the old export back
        os.replace(trash, target)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def _write_table(df: pd.DataFrame, name: str, root: Path, by_date: bool) -> dict[str, Any]:
    (root / name).mkdir()
    table = _arrow(df.reset_index(drop=True), name)
    n = table.num_rows
    if n == 0:
        rel = f"{name}/part-0.parquet"
        pq.write_table(table, root / rel, compression="zstd")
        return {"rows": 0, "files": [{"path": rel, "rows": 0}], "order": None}
    keys, dirs = _partition_keys(df, by_date)
    perm = np.argsort(keys, kind="stable")
    identity = bool((perm == np.arange(n)).all())
    if not identity:
        table = table.take(pa.array(perm))
    sorted_keys = keys[perm]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_keys)) + 1))
    ends = np.concatenate((starts[1:], [n]))
    files = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        rel = f"{name}/{dirs[int(sorted_keys[s])]}/part-0.parquet"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(s, e - s), root / rel, compression="zstd")
        files.append({"path": rel, "rows": e - s})
    order = None
    if not identity:
        (root / "_order").mkdir(exist_ok=True)
        order = f"_order/{name}.parquet"
        pq.write_table(pa.table({"row": pa.array(perm.astype(np.int64))}), root / order, compression="zstd")
    return {"rows": n, "files": files, "order": order}


def _source_url(source: Any) -> str | None:
    # the server a stream or recording came from, never with its token
    url = getattr(source, "url", None)
    if not isinstance(url, str):
        return None
    from .recording import safe_url

    return safe_url(url)


def _library_version() -> str:
    try:
        from .. import __version__
        return str(__version__)
    except Exception:  # pragma: no cover
        return "unknown"


# ---------------------------------------------------------------- reading


def read_export(directory: Any, progress: Any = None) -> tuple[dict[str, pd.DataFrame], dict[str, Any], list[str]]:
    """Read an export back into DataFrames equal to the exported ones.

    Corrupt or missing part files are skipped and reported, never raised: the
    other files still load.

    Args:
        directory: the export folder.
        progress: optional callable taking a number of bytes read, for progress bars.

    Returns:
        ``(frames, manifest, problems)``: a DataFrame per table with the table's
        dtypes and original row order, the manifest (``{}`` when it is missing or
        unreadable, in which case part files are found by globbing), and one
        text per problem naming the file.

    Raises:
        ValueError: the export was written by a newer, incompatible version.
    """
    root = Path(os.fspath(directory))
    problems: list[str] = []
    manifest: dict[str, Any] = {}
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        manifest = {}
    except (ValueError, OSError) as exc:
        problems.append(f"{root / MANIFEST}: unreadable manifest ({exc}); part files found by globbing")
        manifest = {}
    version = manifest.get("version", PARQUET_VERSION)
    if manifest and (not isinstance(version, int) or version > PARQUET_VERSION):
        raise ValueError(
            f"{root} is a version {version!r} export; this roma_notebook reads version "
            f"{PARQUET_VERSION} or older: upgrade roma_notebook"
        )
    tables_meta = manifest.get("tables") if isinstance(manifest.get("tables"), dict) else None
    frames: dict[str, pd.DataFrame] = {}
    for name in TABLE_NAMES:
        meta = tables_meta.get(name) if tables_meta is not None else None
        frames[name] = _read_table(root, name, meta, problems, progress)
    return frames, manifest, problems


def _read_table(root: Path, name: str, meta: Any, problems: list[str], progress: Any) -> pd.DataFrame:
    if isinstance(meta, dict) and isinstance(meta.get("files"), list):
        entries = [(str(f.get("path")), f.get("rows")) for f in meta["files"] if isinstance(f, dict)]
        order_rel = meta.get("order")
        from_manifest = True
    else:
        entries = [(p.relative_to(root).as_posix(), None) for p in sorted((root / name).glob("**/*.parquet"))]
        order_rel = None
        from_manifest = False
    parts: list[pa.Table] = []
    kept: list[tuple[int, int]] = []  # (offset, rows) of each file read, in written order
    offset = 0
    all_ok = True
    for rel, rows in entries:
        path = root / rel
        try:
            t = pq.ParquetFile(path).read()
            if rows is not None and t.num_rows != rows:
                raise ValueError(f"{t.num_rows} rows, the manifest says {rows}")
        except Exception as exc:  # corrupt, truncated, missing: skip this file only
            problems.append(f"{path}: unreadable Parquet file ({type(exc).__name__}: {exc})")
            all_ok = False
            offset += rows if isinstance(rows, int) else 0
            continue
        if progress is not None:
            try:
                progress(path.stat().st_size)
            except OSError:  # pragma: no cover
                pass
        parts.append(t)
        kept.append((offset, t.num_rows))
        offset += t.num_rows
    expected = empty_frame(name)
    if not parts:
        return expected
    try:
        table = pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        problems.append(f"{root / name}: part files disagree on the schema ({exc})")
        return expected
    df = table.to_pandas()
    df = _conform(df, expected, name, root, problems)
    n = len(df)
    if from_manifest and order_rel:
        try:
            perm = pq.ParquetFile(root / order_rel).read().column("row").to_numpy()
            if all_ok:
                if len(perm) != n:
                    raise ValueError(f"{len(perm)} rows for {n} table rows")
                inv = np.empty(n, dtype=np.int64)
                inv[perm] = np.arange(n)
            else:
                # some parts are missing: order the rows that are left by their original index
                sub = np.concatenate([perm[o : o + r] for o, r in kept])
                inv = np.argsort(sub, kind="stable")
            df = df.take(inv).reset_index(drop=True)
        except Exception as exc:
            problems.append(f"{root / order_rel}: unusable row order ({exc}); rows sorted by time")
            df = _time_order(df)
    elif not from_manifest:
        df = _time_order(df)
    return df


def _time_order(df: pd.DataFrame) -> pd.DataFrame:
    # Without the stored order, arrival order is the best guess.
    return df.sort_values(["received_at", "seq"], kind="stable").reset_index(drop=True)


def _conform(df: pd.DataFrame, expected: pd.DataFrame, name: str, root: Path, problems: list[str]) -> pd.DataFrame:
    """The table's columns in order with its exact dtypes (extra columns dropped)."""
    out = {}
    n = len(df)
    for c in expected.columns:
        want = expected[c].dtype
        if c not in df.columns:
            problems.append(f"{root / name}: column {c!r} missing; filled with missing values")
            out[c] = pd.Series([pd.NA] * n if want != "float64" else [np.nan] * n).astype(want)
            continue
        col = df[c]
        if want == object:
            # Arrow gives list columns back as numpy arrays: the tables hold lists
            col = pd.Series([v.tolist() if isinstance(v, np.ndarray) else v for v in col], dtype=object)
        if col.dtype != want:
            try:
                col = col.astype(want)
            except (TypeError, ValueError) as exc:
                problems.append(f"{root / name}: column {c!r} is {col.dtype}, not {want} ({exc})")
                col = pd.Series([pd.NA] * n).astype(want)
        out[c] = col.reset_index(drop=True)
    return pd.DataFrame(out)
