"""Past one machine: Parquet exports as dask DataFrames, analytics per agent on dask.

``rn.load(export, engine="dask")`` gives a :class:`DaskRecording`: the same table
properties as a :class:`~roma_notebook.store.loading.Recording`, each a lazy dask
DataFrame over the export's hive-partitioned files (nothing is read until
something is computed). The analytics decorated with :func:`per_agent_on_dask`
(``rn.metrics``, ``rn.equity``, ``rn.drawdown``, ``rn.round_trips``,
``rn.roma_performance``) accept it, or a dict of dask DataFrames: they build one
task per agent that reads only that agent's rows and runs the very same pandas
code on them, and compute all the tasks at once on dask's scheduler (threads by
default; a ``dask.distributed`` client's cluster when one is active). The
results equal the pandas ones on the same data: every metric is per agent.

dask is optional (``pip install "roma_notebook[dask]"``); nothing here imports it
until a dask source is used.

Example:
    >>> import roma_notebook as rn
    >>> rec = rn.load("export/", engine="dask")          # doctest: +SKIP
    >>> rec.account.groupby("agent_id").total_balance.max().compute()   # doctest: +SKIP
    >>> rn.metrics(rec)            # one dask task per agent   # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote

import pandas as pd

from ..core.schema import TABLE_COLUMNS, TABLE_NAMES, empty_frame
from ..core.tables import TableProperties

__all__ = ["DaskRecording", "load_dask", "per_agent_on_dask", "is_dask_source"]

_NULL_PART = "__HIVE_DEFAULT_PARTITION__"  # the partition of rows without an agent id


def _dd():
    try:
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - the test extra installs dask
        raise ImportError(
            'engine="dask" needs dask: pip install "roma_notebook[dask]" (or "dask[dataframe]")'
        ) from exc
    return dd


def _is_dask_frame(obj: Any) -> bool:
    # no dask import: a pandas-only user never pays for it
    return hasattr(obj, "__dask_graph__") and type(obj).__module__.split(".")[0] == "dask"


def is_dask_source(x: Any) -> bool:
    """Whether ``x`` is a :class:`DaskRecording` or a dict holding dask DataFrames.

    Example:
        >>> is_dask_source({"account": empty_frame("account")})
        False
    """
    if isinstance(x, DaskRecording):
        return True
    return isinstance(x, Mapping) and any(_is_dask_frame(v) for v in x.values())


class DaskRecording(TableProperties):
    """A Parquet export whose tables are lazy dask DataFrames.

    Attributes:
        path: the export folder.
        manifest: its ``_manifest.json`` (agents, files per table).

    Example:
        >>> rec = load_dask("export/")                       # doctest: +SKIP
        >>> rec.account.npartitions                          # doctest: +SKIP
    """

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest

    @property
    def agent_ids(self) -> list[str]:
        """Agents named in the export's manifest."""
        agents = self.manifest.get("agents")
        return [a for a in agents if isinstance(a, str)] if isinstance(agents, list) else []

    def _files(self, name: str) -> list[str]:
        meta = (self.manifest.get("tables") or {}).get(name) or {}
        files = meta.get("files") if isinstance(meta, dict) else None
        return [f["path"] for f in files or () if isinstance(f, dict) and f.get("rows")]

    def frame(self, name: str) -> Any:
        """Table ``name`` as a dask DataFrame (the table's columns and dtypes).

        Raises:
            ValueError: unknown table name.
        """
        return self._read(name, self._files(name))

    _frame = frame

    def agent_frame(self, name: str, agent: str | None) -> Any:
        """The rows of one agent (None: rows without one): only that agent's files are read."""
        # a partition folder holds one agent; the manifest names its files
        return self._read(name, self._agent_files(name, agent))

    def _agent_files(self, name: str, agent: str | None) -> list[str]:
        part = f"agent={_NULL_PART}" if agent is None else f"agent={quote(str(agent), safe='')}"
        return [f for f in self._files(name) if _agent_part(f) == part]

    def _agent_parts(self, name: str, agent: str | None) -> list:
        """One agent's rows of a table as delayed pandas reads, one per file.

        Cheaper than a ``read_parquet`` per agent and table (each reads schemas
        and plans a graph: ~30 ms, more than a small agent's whole computation).
        """
        import dask

        return [dask.delayed(_read_part, pure=True)(str(self.path), rel, name)
                for rel in self._agent_files(name, agent)]

    def _agents_with_rows(self, names: tuple[str, ...]) -> list[str | None]:
        seen: set[str | None] = set()
        for name in names:
            for f in self._files(name):
                part = _agent_part(f)
                if part is not None:
                    v = part.split("=", 1)[1]
                    seen.add(None if v == _NULL_PART else unquote(v))
        return sorted(seen, key=lambda a: "" if a is None else a)

    def _read(self, name: str, files: list[str]) -> Any:
        if name not in TABLE_COLUMNS:
            raise ValueError(f"unknown table {name!r}; tables are {', '.join(TABLE_NAMES)}")
        dd = _dd()
        if not files:  # no rows: keep the schema, read nothing
            return dd.from_pandas(empty_frame(name), npartitions=1)
        paths = [str(self.path / f) for f in files]
        # columns=: the table's own, not the partition keys (agent, date) readers add
        return dd.read_parquet(paths, columns=list(TABLE_COLUMNS[name]))

    def __repr__(self) -> str:
        return f"DaskRecording({str(self.path)!r}, agents={self.agent_ids!r})"


def _read_part(root: str, rel: str, name: str) -> pd.DataFrame:
    """One part file of an export, with the table's exact dtypes (as ``rn.load`` reads it)."""
    import pyarrow.parquet as pq

    from .parquet import _conform

    cols = list(TABLE_COLUMNS[name])
    df = pq.ParquetFile(Path(root) / rel).read(columns=cols).to_pandas()
    problems: list[str] = []
    out = _conform(df, empty_frame(name), name, Path(root), problems)
    if problems:
        raise ValueError("; ".join(problems))
    return out


def _agent_part(rel: str) -> str | None:
    parts = rel.split("/")
    return parts[1] if len(parts) > 2 and parts[1].startswith("agent=") else None


def load_dask(path: Any) -> DaskRecording:
    """Open a Parquet export (written by ``to_parquet`` / ``roma-notebook export``) lazily.

    Args:
        path: the export folder (it holds ``_manifest.json``).

    Raises:
        ValueError: ``path`` is not a Parquet export, or one of a newer version.
        ImportError: dask is not installed.

    Example:
        >>> rec = load_dask("export/")        # same as rn.load("export/", engine="dask")  # doctest: +SKIP
        >>> rec.trades.compute()              # doctest: +SKIP
    """
    from .parquet import MANIFEST, PARQUET_VERSION, is_export

    if isinstance(path, (list, tuple)) or not isinstance(path, (str, os.PathLike)):
        raise ValueError(f'engine="dask" reads one Parquet export folder, got {path!r}')
    root = Path(os.fspath(path))
    if not is_export(root):
        raise ValueError(
            f'engine="dask" reads Parquet exports (a folder with {MANIFEST}, written by '
            f"to_parquet or `roma-notebook export`); {str(root)!r} is not one. Load it with "
            "rn.load(...) and export it first: rec.to_parquet('export/')"
        )
    manifest = json.loads((root / MANIFEST).read_text())
    version = manifest.get("version", PARQUET_VERSION)
    if not isinstance(version, int) or version > PARQUET_VERSION:
        raise ValueError(f"{root} is a version {version!r} export; upgrade roma_notebook")
    _dd()
    return DaskRecording(root, manifest)


def _agent_tables(x: Any, names: tuple[str, ...]) -> tuple[list[Any], Callable[[str, Any], Any]]:
    """The agents of a dask source and a function giving one agent's rows of a table."""
    if isinstance(x, DaskRecording):
        return x._agents_with_rows(names), x._agent_parts
    import dask

    frames = {n: x.get(n) for n in names}
    frames = {n: df for n, df in frames.items() if df is not None}
    for n, df in frames.items():
        if not (_is_dask_frame(df) or isinstance(df, pd.DataFrame)):
            raise TypeError(f"table {n!r} is a {type(df).__name__}, expected a dask or pandas DataFrame")
    uniques = dask.compute(*[df["agent_id"].dropna().unique() for df in frames.values()])
    nulls = dask.compute(*[df["agent_id"].isna().any() for df in frames.values()])
    agents: list[Any] = sorted({str(a) for u in uniques for a in u})
    if any(nulls):
        agents.insert(0, None)

    def rows(name: str, agent: Any) -> list:
        df = frames.get(name)
        if df is None:
            return []
        df = df[df["agent_id"].isna()] if agent is None else df[df["agent_id"] == agent]
        return _partitions(df)

    return agents, rows


def _run(fn: Callable[..., pd.DataFrame], tables: dict[str, list], args: tuple, kw: dict) -> pd.DataFrame:
    # runs on a dask worker: dask has already computed the agent's partitions
    joined = {n: pd.concat(parts, ignore_index=True) for n, parts in tables.items() if parts}
    return fn(joined, *args, **kw)


def _partitions(df: Any) -> list:
    """A dask DataFrame's partitions as delayed objects (a task can take those as arguments)."""
    if isinstance(df, pd.DataFrame):
        return [df]
    return list(df.to_delayed())


def per_agent_on_dask(*tables: str) -> Callable:
    """Decorator: on a dask source, run the pandas function once per agent on dask.

    The decorated function is the one formula; on a :class:`DaskRecording` or a
    dict of dask DataFrames, the wrapper makes one ``dask.delayed`` task per
    agent, each given that agent's rows of ``tables`` as pandas DataFrames,
    computes them together (in parallel on dask's scheduler) and joins the
    per-agent results in agent order. Anything else goes straight to the
    function. Only functions whose results are per agent may use it.

    Args:
        tables: the tables the function reads.

    Example:
        >>> @per_agent_on_dask("account")
        ... def last_balance(x):
        ...     return x["account"].groupby("agent_id")[["total_balance"]].last()
        >>> last_balance({"account": empty_frame("account")}).columns.tolist()
        ['total_balance']
    """

    def deco(fn: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        @functools.wraps(fn)
        def wrapper(x: Any, *args: Any, **kw: Any) -> pd.DataFrame:
            if not is_dask_source(x):
                return fn(x, *args, **kw)
            import dask

            agents, rows = _agent_tables(x, tables)
            if not agents:
                return fn({n: empty_frame(n) for n in tables}, *args, **kw)
            tasks = [
                dask.delayed(_run, pure=True)(
                    fn, {n: rows(n, a) for n in tables}, args, kw,
                    dask_key_name=f"rn-{fn.__name__}-{'' if a is None else a}",
                )
                for a in agents
            ]
            results = [r for r in dask.compute(*tasks) if len(r)]
            if not results:
                return fn({n: empty_frame(n) for n in tables}, *args, **kw)
            if results[0].index.name == "agent_id":  # one row per agent
                return pd.concat(results)
            return pd.concat(results, ignore_index=True)

        wrapper.per_agent_tables = tables  # type: ignore[attr-defined]
        return wrapper

    return deco
