"""One API on every source: a live stream, a group and a recording answer the same
calls with the same types (issue: one quant API)."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

import roma_notebook as rn
from roma_notebook.analysis.analytics import LEADERBOARD_COLUMNS, Report
from roma_notebook.store.samples import sample_recording
from roma_notebook.sim.simulator import Simulator
from roma_notebook.source_api import STATS_COLUMNS

AGENTS = ("deepseek-chat-v3.1", "qwen3-max")
API = ("account", "positions", "decisions", "trades", "metrics", "leaderboard", "stats",
       "report", "dashboard", "to_parquet")


@pytest.fixture(scope="module")
def sample():
    return rn.load(sample_recording(), progress=False)


def _check_stats(st: pd.DataFrame, agents) -> None:
    assert list(st.index) == list(agents) and st.index.name == "agent_id"
    assert list(st.columns) == list(STATS_COLUMNS)
    assert {c: str(t) for c, t in st.dtypes.items()} == STATS_COLUMNS


def _check_leaderboard(lb: pd.DataFrame, m: pd.DataFrame) -> None:
    assert list(lb.columns) == ["rank", *LEADERBOARD_COLUMNS]
    assert lb["rank"].tolist() == list(range(1, len(m) + 1)) and lb["rank"].dtype == "int64"
    assert sorted(lb.index) == sorted(m.index)
    ret = lb["return_pct"].dropna()
    assert ret.is_monotonic_decreasing
    # a projection: the very figures of metrics(), re-ordered
    pd.testing.assert_frame_equal(lb.drop(columns="rank"), m.loc[lb.index, list(LEADERBOARD_COLUMNS)])


def test_every_source_has_the_same_api(sample, tmp_path):
    with Simulator(AGENTS, seed=3, speed=600) as sim:
        with rn.connect(list(AGENTS), url=sim.url) as group:
            group.wait_for("decision", count=2, timeout=60)
            stream = group[AGENTS[0]]
            for src in (stream, group, sample):
                missing = [n for n in API if not hasattr(src, n)]
                assert not missing, (type(src).__name__, missing)
            _check_stats(stream.stats(), [AGENTS[0]])
            _check_stats(group.stats(), AGENTS)
            g = group.stats()
            assert (g["state"] == "live").all() and (g["messages"] > 0).all()
            assert (g["rate"] >= 0).all()
            group.stop()  # the rows stop moving: a leaderboard and metrics see the same data
            assert (group.stats()["state"] == "closed").all()
            lb = group.leaderboard(n_boot=50)
            _check_leaderboard(lb, group.metrics(n_boot=50))
            assert isinstance(stream.report(), Report)
            out = stream.to_parquet(tmp_path / "one")
            assert rn.load(out, progress=False).agent_ids == [AGENTS[0]]


def test_recording_stats_count_what_the_file_holds(sample):
    st = sample.stats()
    _check_stats(st, sample.agent_ids)
    frames: dict[str, int] = {}
    with gzip.open(sample_recording(), "rt") as fh:
        for line in fh:  # the sample is a version-1 recording: {"t", "agent", "frame"}
            rec = json.loads(line) if line.strip() else {}
            if "frame" in rec:
                frames[rec["agent"]] = frames.get(rec["agent"], 0) + 1
    assert st["messages"].to_dict() == frames
    assert (st["state"] == "recorded").all() and st["rate"].isna().all()
    last = sample.account.groupby("agent_id", observed=True)["received_at"].max()
    assert (st.loc[last.index, "last_message_at"] >= last).all()
    # four agents share the tables: whose drops and duplicates they were is unknown
    assert st["drops"].isna().all() and st["duplicates"].isna().all()
    one = sample.agent(sample.agent_ids[0]).stats()
    assert one["drops"].notna().all()


def test_recording_leaderboard_and_units(sample):
    m = sample.metrics(n_boot=100)
    lb = sample.leaderboard(n_boot=100)
    _check_leaderboard(lb, m)
    by_dd = sample.leaderboard(by="max_drawdown_pct", n_boot=100)
    assert by_dd["max_drawdown_pct"].is_monotonic_increasing  # smaller is better
    with pytest.raises(ValueError, match="not a metrics column"):
        sample.leaderboard(by="sharpness")
    # a percent only in a column ending _pct: fractions stay in [0, 1]
    traded = m[m["n_trades"] > 0]
    assert len(traded)
    assert traded["win_rate"].between(0, 1).all()
    assert np.allclose(traded["roma_win_rate_pct"] / 100, traded["roma_wins"] / traded["roma_total_trades"])
    assert not {"roma_win_rate", "roma_max_drawdown"} & set(m.columns)


def test_recording_dashboard_has_the_live_look(sample):
    from roma_notebook.views.dashboard import Dashboard, GroupDashboard

    d = sample.dashboard()
    try:
        assert isinstance(d, GroupDashboard)
        traces = {t.name: t for t in d.figure.data}
        assert set(traces) == set(sample.agent_ids)
        acc = sample.account
        for a, t in traces.items():
            n = int((acc["agent_id"] == a).sum())
            assert 0 < len(t.x) <= min(n, d.max_points) + 2
            assert t.y[-1] == pytest.approx(acc[acc["agent_id"] == a]["total_balance"].iloc[-1])
        child = d.agent_view(sample.agent_ids[1])
        assert isinstance(child, Dashboard)
        assert len(child.tables.frame("account")) == int((acc["agent_id"] == sample.agent_ids[1]).sum())
        assert "recorded" in d.leaderboard.value
    finally:
        d.close()
    one = sample.agent(sample.agent_ids[0])
    d1 = one.dashboard()
    try:
        assert isinstance(d1, Dashboard) and d1.figure.data[0].y[-1] == pytest.approx(
            one.account["total_balance"].iloc[-1])
    finally:
        d1.close()


def test_recording_agent_splits_every_table(sample):
    a = sample.agent_ids[2]
    one = sample.agent(a)
    for name in ("account", "cycles", "decisions", "trades", "positions", "performance"):
        whole = sample.tables.frame(name)
        mine = whole[whole["agent_id"] == a].reset_index(drop=True)
        got = one.tables.frame(name).reset_index(drop=True)
        assert len(got) == len(mine), name
        if name != "positions":
            pd.testing.assert_frame_equal(got.drop(columns="seq"), mine.drop(columns="seq"), check_dtype=True)
    with pytest.raises(KeyError, match="no agent 'nobody'"):
        sample.agent("nobody")
