"""Analytics on dask equal analytics on pandas, computed per agent on dask's scheduler.

One Parquet export (the bundled 4-agent session, plus closed trades for one agent
so both trade paths run) is read twice: by ``rn.load(export)`` into pandas and by
``rn.load(export, engine="dask")`` lazily; every result must be equal.
"""

from __future__ import annotations

import threading

import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe", reason="dask is not installed (pip install -e '.[test]')")
import dask  # noqa: E402
from dask.callbacks import Callback  # noqa: E402

import roma_notebook as rn  # noqa: E402
from roma_notebook.core import protocol as P  # noqa: E402
from roma_notebook.analysis.analytics import roma_performance  # noqa: E402
from roma_notebook.store.dask_tables import DaskRecording, is_dask_source  # noqa: E402
from roma_notebook.core.tables import TABLE_COLUMNS  # noqa: E402

FUNCTIONS = [rn.metrics, rn.equity, rn.drawdown, rn.round_trips, roma_performance]


@pytest.fixture(scope="module", autouse=True)
def _dask_pool_stopped():
    """dask's threaded scheduler keeps one process-wide pool of workers after a
    compute; stop it once this module is done, so the session's leak check
    still sees every thread the tests started (none may outlive them)."""
    yield
    import dask.threaded

    pool, dask.threaded.default_pool = dask.threaded.default_pool, None
    if pool is not None:
        pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    rec = rn.load(rn.sample_recording())
    # closed trades for one agent: metrics then take them instead of rebuilt round trips
    agent = rec.agent_ids[1]
    t0 = int(rec.account["timestamp"].iloc[0].value)
    for i in range(6):
        ts = t0 + (i + 1) * 600 * 10**9
        rec.tables.append(agent, P.ClosedTrade(ts, "BTCUSDT", "long", 60_000.0, 60_000.0 + (i - 2) * 150,
                                               0.1, 10, ts - 300 * 10**9, ts, (i - 2) * 15.0,
                                               (i - 2) * 0.25), ts)
    return rec.to_parquet(tmp_path_factory.mktemp("dask") / "export")


class TaskLog(Callback):
    """The keys of the tasks dask's scheduler ran."""

    def __init__(self):
        super().__init__()
        self.keys: list = []
        self._lock = threading.Lock()

    def _posttask(self, key, result, dsk, state, worker_id):
        with self._lock:
            self.keys.append(key)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_dask_export_gives_the_pandas_results(export, fn):
    pandas_rec, dask_rec = rn.load(export), rn.load(export, engine="dask")
    assert isinstance(dask_rec, DaskRecording) and is_dask_source(dask_rec)
    want = fn(pandas_rec)
    assert len(want)  # the comparison is about something
    with TaskLog() as log, dask.config.set(scheduler="threads"):
        got = fn(dask_rec)
    pd.testing.assert_frame_equal(got, want)
    # one task per agent, run by dask's scheduler
    per_agent = [k for k in log.keys if isinstance(k, str) and k.startswith(f"rn-{fn.__name__}-")]
    assert sorted(per_agent) == sorted(f"rn-{fn.__name__}-{a}" for a in pandas_rec.agent_ids)


def test_a_dict_of_dask_frames_works_too(export):
    tables = {n: dd.read_parquet(str(export / n)) for n in ("account", "trades", "closed_trades", "decisions")}
    assert is_dask_source(tables)
    pd.testing.assert_frame_equal(rn.metrics(tables, lookback=5), rn.metrics(rn.load(export), lookback=5))
    pd.testing.assert_frame_equal(rn.round_trips(tables), rn.round_trips(rn.load(export)))


def test_dask_tables_are_the_tables(export):
    pandas_rec, dask_rec = rn.load(export), rn.load(export, engine="dask")
    for name in ("account", "trades", "decisions", "closed_trades", "status"):
        got = getattr(dask_rec, name)
        assert list(got.columns) == list(TABLE_COLUMNS[name])
        want = pandas_rec.frame(name)
        df = got.compute().sort_values(["agent_id", "received_at", "seq"], kind="stable")
        want = want.sort_values(["agent_id", "received_at", "seq"], kind="stable")
        pd.testing.assert_frame_equal(df.reset_index(drop=True), want.reset_index(drop=True))
    # one agent's rows come from its own files only
    a = pandas_rec.agent_ids[0]
    one = dask_rec.agent_frame("account", a)
    assert one.npartitions == sum(
        1 for f in dask_rec.manifest["tables"]["account"]["files"] if f"agent={a}/" in f["path"]
    )
    assert set(one["agent_id"].compute()) == {a}


def test_bad_engine_and_non_exports(tmp_path, export):
    with pytest.raises(ValueError, match='engine must be "pandas" or "dask"'):
        rn.load(export, engine="spark")
    with pytest.raises(ValueError, match="Parquet exports"):
        rn.load(rn.sample_recording(), engine="dask")
    with pytest.raises(ValueError, match="max_rows"):
        rn.load(export, engine="dask", max_rows=10)
