"""Skill or luck (compare, intervals in metrics), decision outcomes, calibration, audit.

Expectations are computed by hand in the tests. The statistical tests use modest
resample counts so that the file stays affordable on a shared 2-core machine.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import roma_notebook as rn
from roma_notebook.analysis import analytics as A
from roma_notebook.analysis.skill import block_bootstrap_indices, default_block

T0 = pd.Timestamp("2025-11-02T00:00:00Z")


def curve(returns, agent="a", minutes=60) -> pd.DataFrame:
    """An account table whose balance follows ``returns`` from 10,000, one row per step."""
    v = 10_000.0 * np.cumprod(np.concatenate([[1.0], 1.0 + np.asarray(returns, dtype="float64")]))
    n = len(v)
    t = T0 + pd.to_timedelta(np.arange(n) * minutes, unit="min")
    return pd.DataFrame({"agent_id": agent, "timestamp": t, "received_at": t,
                         "seq": np.arange(n, dtype="int64"), "total_balance": v})


def accounts(**series) -> dict:
    return {"account": pd.concat([curve(r, a) for a, r in series.items()], ignore_index=True)}


# --------------------------------------------------------------------------- bootstrap

def test_block_indices_are_circular_runs_and_deterministic():
    idx = block_bootstrap_indices(10, 50, 4, np.random.default_rng(3))
    assert idx.shape == (50, 10) and idx.min() >= 0 and idx.max() <= 9
    # inside each block of 4 (positions 0-3, 4-7, 8-9) indices step by 1 modulo 10
    for a, b in ((0, 4), (4, 8), (8, 10)):
        assert ((np.diff(idx[:, a:b], axis=1) % 10) == 1).all()
    assert (idx == block_bootstrap_indices(10, 50, 4, np.random.default_rng(3))).all()
    assert default_block(720) == 9 and default_block(1) == 1


# --------------------------------------------------------------------------- known Sharpe

# 40 hourly returns alternating +0.3 % / -0.1 %: mean 0.001, std (ddof 1) 0.002*sqrt(40/39)
KNOWN = np.tile([0.003, -0.001], 20)
KNOWN_SHARPE = 0.001 / (0.002 * math.sqrt(40 / 39)) * math.sqrt(8760)


def test_metrics_sharpe_of_a_known_series_with_interval_and_n_periods():
    m = rn.metrics(accounts(a=KNOWN)).loc["a"]
    assert KNOWN_SHARPE == pytest.approx(46.209, abs=1e-3)  # 0.4937 an hour x 93.59
    assert m.sharpe == pytest.approx(KNOWN_SHARPE)
    assert m.n_periods == 40 and m.period == "1h" and m.note == ""
    assert m.sharpe_low <= m.sharpe <= m.sharpe_high
    # Sortino: downside deviation sqrt(20 * 0.001**2 / 40) = 0.001/sqrt(2)
    assert m.sortino == pytest.approx(0.001 / (0.001 / math.sqrt(2)) * math.sqrt(8760))
    again = rn.metrics(accounts(a=KNOWN)).loc["a"]
    assert (again.sharpe_low, again.sharpe_high) == (m.sharpe_low, m.sharpe_high)


def test_compare_estimate_of_a_known_series_is_the_hand_sharpe():
    c = rn.compare(accounts(a=KNOWN, b=-KNOWN), "sharpe", n_boot=300)
    assert c.agents.loc["a", "estimate"] == pytest.approx(KNOWN_SHARPE)
    assert c.agents.loc["a", "n_obs"] == 40
    assert list(c.agents.index) == ["a", "b"]  # best first
    assert {"estimate", "low", "high"} <= set(c.agents.columns) & set(c.pairs.columns)
    # deterministic for a seed, different for another
    c2 = rn.compare(accounts(a=KNOWN, b=-KNOWN), "sharpe", n_boot=300)
    c3 = rn.compare(accounts(a=KNOWN, b=-KNOWN), "sharpe", n_boot=300, seed=1)
    pd.testing.assert_frame_equal(c.pairs, c2.pairs)
    assert c.pairs.loc[0, "low"] != c3.pairs.loc[0, "low"]


def test_small_sample_ratio_is_nan_with_a_reason():
    m = rn.metrics(accounts(a=KNOWN[:10])).loc["a"]
    assert m.n_periods == 10
    assert math.isnan(m.sharpe) and math.isnan(m.sharpe_low) and math.isnan(m.sortino)
    assert "10 returns < 30" in m.note
    c = rn.compare(accounts(a=KNOWN[:10], b=KNOWN[:10]), n_boot=100)
    assert c.agents["low"].isna().all() and "10 returns < 30" in c.agents.loc["a", "note"]
    assert c.pairs.loc[0, "verdict"] == "not distinguishable"


def test_sparse_updates_are_sampled_at_their_own_period():
    # one point every 3 hours: sampling hourly would invent two flat returns per step
    r = np.tile([0.003, -0.001], 20)
    m = rn.metrics({"account": curve(r, minutes=180)}).loc["a"]
    assert m.period == "3h" and m.n_periods == 40
    assert m.sharpe == pytest.approx(KNOWN_SHARPE / math.sqrt(3))  # 2920 periods a year


# --------------------------------------------------------------------------- skill or luck

N_MONTH = 720  # 30 days of hourly returns


def test_same_distribution_is_not_distinguishable_in_at_least_90_percent_of_seeds():
    calls = []
    for seed in range(50):
        rng = np.random.default_rng(1000 + seed)
        a, b = rng.normal(0.0001, 0.004, (2, N_MONTH))
        c = rn.compare(accounts(a=a, b=b), "sharpe", n_boot=400, seed=seed)
        calls.append(c.pairs.loc[0, "verdict"])
    rate = np.mean([v == "not distinguishable" for v in calls])
    assert rate >= 0.90, rate


@pytest.mark.parametrize("seed", range(5))
def test_a_real_edge_over_30_days_is_told_apart(seed):
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.004, (2, N_MONTH))
    # hourly Sharpe 0.3 vs 0: the difference is ~0.3 / sqrt(2 / 720) = 5.7 standard errors
    c = rn.compare(accounts(edge=noise[0] + 0.0012, plain=noise[1]), "sharpe", n_boot=400)
    assert c.pairs.loc[0, "verdict"] == "edge beats plain at 95 %"
    assert c.pairs.loc[0, "low"] > 0


def test_differences_are_paired_on_the_same_hours():
    # b is a plus a steady 0.02 % an hour: the market noise is shared. Alone, each
    # agent's interval is wide and they overlap; paired, the difference is clear.
    rng = np.random.default_rng(11)
    a = rng.normal(0.0, 0.01, N_MONTH)
    b = a + 0.0002
    c = rn.compare(accounts(a=a, b=b), "return", n_boot=400)
    ag = c.agents
    assert ag.loc["a", "high"] > ag.loc["b", "low"]  # the separate intervals overlap
    assert c.pairs.loc[0, "verdict"] == "b beats a at 95 %"
    assert c.pairs.loc[0, "low"] > 0


def test_max_drawdown_lower_is_better_and_win_rate_uses_trades():
    c = rn.compare(accounts(a=KNOWN, b=KNOWN * 3), "max_drawdown", n_boot=200)
    # a's worst fall is one -0.1 % step; b's one -0.3 % step
    assert c.agents.loc["a", "estimate"] == pytest.approx(0.1)
    assert c.agents.loc["b", "estimate"] == pytest.approx(0.3)
    assert list(c.agents.index) == ["a", "b"]
    assert c.pairs.loc[0, "verdict"] in ("a beats b at 95 %", "not distinguishable")
    ct = pd.DataFrame({"agent_id": ["w"] * 12, "timestamp": T0 + pd.to_timedelta(range(12), "h"),
                       "symbol": "BTCUSDT", "side": "long",
                       "pnl_usdt": [1.0] * 9 + [-1.0] * 3})
    w = rn.compare({"closed_trades": ct}, "win_rate", n_boot=200)
    assert w.agents.loc["w", "estimate"] == pytest.approx(0.75)
    assert w.agents.loc["w", "n_obs"] == 12 and w.agents.loc["w", "unit"] == "trades"


def test_compare_rejects_unknown_metric_and_draws_a_forest_plot():
    with pytest.raises(ValueError, match="metric must be one of"):
        rn.compare(accounts(a=KNOWN), "alpha")
    c = rn.compare(accounts(a=KNOWN, b=KNOWN - 0.0005), n_boot=100)
    fig = c.figure
    assert len(fig.data) == 2 and list(fig.data[1].y) == ["a − b"]
    assert "Pairs" in c._repr_html_()


# --------------------------------------------------------------------------- outcomes

def ts(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["received_at"] = df["timestamp"]
    df["seq"] = np.arange(len(df), dtype="int64")
    return df


def outcome_tables() -> dict:
    dec = table([
        {"agent_id": "a", "timestamp": ts(0), "cycle": 1, "action": "open_long", "symbol": "BTCUSDT", "confidence": 0.9},
        {"agent_id": "a", "timestamp": ts(0), "cycle": 1, "action": "hold", "symbol": "ETHUSDT", "confidence": 0.5},
        {"agent_id": "a", "timestamp": ts(30), "cycle": 2, "action": "open_long", "symbol": "SOLUSDT", "confidence": 0.55},
        {"agent_id": "a", "timestamp": ts(50), "cycle": 3, "action": "open_long", "symbol": "SOLUSDT", "confidence": 0.55},
        {"agent_id": "a", "timestamp": ts(60), "cycle": 4, "action": "close_long", "symbol": "BTCUSDT", "confidence": 0.9},
    ])
    fills = table([
        {"agent_id": "a", "timestamp": ts(0) + pd.Timedelta("1s"), "order_id": "1", "symbol": "BTCUSDT",
         "side": "long", "quantity": 2.0, "price": 100.0, "status": "filled"},
        # the 30-minute decision never filled: this fill is the 50-minute one's
        {"agent_id": "a", "timestamp": ts(50) + pd.Timedelta("2s"), "order_id": "2", "symbol": "SOLUSDT",
         "side": "long", "quantity": 1.0, "price": 20.0, "status": "filled"},
        {"agent_id": "a", "timestamp": ts(60) + pd.Timedelta("1s"), "order_id": "3", "symbol": "BTCUSDT",
         "side": "short", "quantity": 2.0, "price": 110.0, "status": "filled"},
    ])
    marks = table([
        {"agent_id": "a", "timestamp": ts(m), "symbol": s, "mark_price": p}
        for m, s, p in [(0, "BTCUSDT", 100.0), (15, "BTCUSDT", 101.0), (60, "BTCUSDT", 110.0),
                        (0, "ETHUSDT", 50.0), (15, "ETHUSDT", 49.0), (60, "ETHUSDT", 55.0)]
    ])
    return {"decisions": dec, "trades": fills, "position_history": marks}


def test_decision_outcomes_join_fills_pnl_holding_and_moves():
    out = rn.decision_outcomes(outcome_tables(), horizons=("15min", "1h"))
    assert len(out) == 5
    o = out.set_index(["cycle", "symbol"])
    btc_open, btc_close = o.loc[(1, "BTCUSDT")], o.loc[(4, "BTCUSDT")]
    assert btc_open.filled and btc_open.order_id == "1" and btc_open.fill_price == 100.0
    assert btc_open.fill_latency == pd.Timedelta("1s")
    # the round trip: (110 - 100) * 2 = 20 USDT, held 60 minutes (fill to fill)
    assert btc_open.pnl_usdt == pytest.approx(20.0) and btc_close.pnl_usdt == pytest.approx(20.0)
    assert btc_open.holding_time == pd.Timedelta(minutes=60)
    # as-of, nearest after: the fill at 50 min belongs to the 50-minute decision
    assert not o.loc[(2, "SOLUSDT")].filled
    assert o.loc[(3, "SOLUSDT")].order_id == "2"
    # market moves from the marks: BTC 100 -> 101 (15 min) -> 110 (1 h)
    assert btc_open.move_15min == pytest.approx(1.0) and btc_open.move_1h == pytest.approx(10.0)
    assert btc_open.edge_1h == pytest.approx(10.0)
    # the hold sat out ETH 50 -> 49 -> 55, and bet on nothing
    hold = o.loc[(1, "ETHUSDT")]
    assert hold.move_15min == pytest.approx(-2.0) and hold.move_1h == pytest.approx(10.0)
    assert math.isnan(hold.edge_1h) and not hold.filled


def test_decision_outcomes_read_position_side_fills():
    # a source whose closing fill says "long" (the position's side) for a close_long
    t = outcome_tables()
    t["trades"].loc[2, "side"] = "long"
    o = rn.decision_outcomes(t).set_index(["cycle", "symbol"])
    assert o.loc[(4, "BTCUSDT")].order_id == "3"
    assert o.loc[(1, "BTCUSDT")].pnl_usdt == pytest.approx(20.0)


def test_calibration_groups_by_stated_confidence():
    cal = rn.calibration(outcome_tables(), bins=(0, 0.6, 1.0), by_agent=False)
    # trading decisions only: 0.9 (two BTC calls, filled, +20 each) and 0.55 (two SOL)
    assert len(cal) == 2
    hi = cal[np.isclose(cal["mean_confidence"], 0.9)].iloc[0]
    lo = cal[np.isclose(cal["mean_confidence"], 0.55)].iloc[0]
    assert hi.n_decisions == 2 and hi.filled_rate == 1.0 and hi.win_rate == 1.0
    assert hi.avg_pnl_usdt == pytest.approx(20.0)
    assert lo.n_decisions == 2 and lo.filled_rate == 0.5


# --------------------------------------------------------------------------- audit

def write_log_folder(root, trades, equity=None) -> None:
    d = root / "qwen3-max"
    d.mkdir(parents=True)
    (d / "trade_history.json").write_text(json.dumps(trades))
    if equity is not None:
        (d / "equity_history.json").write_text(json.dumps(equity))


def test_audit_flags_a_planted_leverage_double_count(tmp_path):
    # long 0.5 BTC 100,000 -> 101,000 at 5x: the wallet gains 500; ROMA-01 logs 2,500
    doubled = {"symbol": "BTCUSDT", "side": "long", "entry_price": 100000.0, "close_price": 101000.0,
               "quantity": 0.5, "leverage": 5, "open_time": "2025-11-02T10:00:00",
               "close_time": "2025-11-02T11:00:00", "pnl_pct": 1.0, "pnl_usdt": 2500.0}
    honest = {"symbol": "ETHUSDT", "side": "short", "entry_price": 4000.0, "close_price": 3900.0,
              "quantity": 1.0, "leverage": 3, "open_time": "2025-11-02T10:30:00",
              "close_time": "2025-11-02T11:30:00", "pnl_pct": 2.5, "pnl_usdt": 100.0}
    equity = [{"timestamp": "2025-11-02T11:00:00", "cycle": 1, "equity": 10400.0,
               "adjusted_equity": 10400.0, "gross_equity": 10500.0}]
    write_log_folder(tmp_path, [doubled, honest], equity)
    rec = rn.load(tmp_path, progress=False)
    found = rn.audit(rec)
    lev = found[found["check"] == "pnl_leverage_double_count"]
    assert len(lev) == 1
    row = lev.iloc[0]
    assert row.agent_id == "qwen3-max" and row.reported == 2500.0 and row.expected == 500.0
    assert row.difference == 2000.0 and "leverage counted twice" in row.evidence
    assert "pnl_mismatch" not in set(found["check"])  # the honest ETH trade passes
    eq = found[found["check"] == "equity_net_of_deposits"]
    assert len(eq) == 1 and eq.iloc[0].reported == 10400.0 and eq.iloc[0].expected == 10500.0


def test_audit_flags_performance_over_the_oldest_trades():
    pnl = np.array([10.0] * 20 + [-50.0] * 4)  # the 4 newest trades lost
    t = ts(0) + pd.to_timedelta(np.arange(24) * 10, unit="min")
    ct = pd.DataFrame({"agent_id": "a", "timestamp": t, "received_at": t, "seq": range(24),
                       "symbol": "BTCUSDT", "side": "long", "close_time": t, "pnl_usdt": pnl})
    oldest = A._roma_stats(pnl[:20], None)  # what the backend serves: total_pnl 200
    perf = pd.DataFrame([{"agent_id": "a", "timestamp": ts(300), "received_at": ts(300), "seq": 0,
                          **{k: oldest[k] for k in ("total_trades", "wins", "losses", "win_rate",
                                                    "avg_profit", "avg_loss", "profit_factor",
                                                    "sharpe_ratio", "max_drawdown", "total_pnl")}}])
    found = rn.audit({"closed_trades": ct, "performance": perf})
    tp = found[found["figure"] == "performance.total_pnl"].iloc[0]
    # the newest 20 in time order: 16 x 10 - 4 x 50 = -40
    assert tp.reported == 200.0 and tp.expected == pytest.approx(-40.0)
    assert "oldest 20" in tp.evidence
    fixed = perf.assign(total_pnl=-40.0)
    again = rn.audit({"closed_trades": ct, "performance": fixed})
    assert "performance.total_pnl" not in set(again["figure"])


def test_audit_flags_times_ahead_cycle_gaps_and_unfilled_decisions():
    t = outcome_tables()
    cyc = table([{"agent_id": "a", "timestamp": ts(3 * c), "cycle": c} for c in (1, 2, 3, 5, 6)])
    acc = table([{"agent_id": "a", "timestamp": ts(0), "total_balance": 100.0}])
    acc["received_at"] = acc["timestamp"] - pd.Timedelta(hours=2)  # stamped 2 h "ahead": local time
    found = rn.audit({**t, "cycles": cyc, "account": acc})
    gap = found[found["check"] == "cycle_gap"]
    assert list(gap["evidence"]) == ["cycle 3 is followed by 5: 1 missing"]
    naive = found[found["check"] == "naive_local_time"].iloc[0]
    assert naive.reported == pytest.approx(2.0) and "2 h later" in naive.evidence
    unfilled = found[found["check"] == "decision_without_fill"]
    assert list(unfilled["timestamp"]) == [ts(30)]


def test_audit_of_a_consistent_dict_is_empty():
    assert rn.audit(outcome_tables()).pipe(lambda f: f[f.check != "decision_without_fill"]).empty


def test_clean_simulator_session_audits_clean():
    # error_rate=0: no failed cycles, so no cycle-number gaps
    from roma_notebook.views.dashboard import GroupDashboard

    with rn.Simulator(("a1", "a2"), seed=3, speed=3000, error_rate=0.0) as sim:
        with rn.connect(["a1", "a2"], url=sim.url) as group:
            group.wait_for("decision", count=30, timeout=60)
            tables = {n: getattr(group, n) for n in ("account", "trades", "closed_trades", "decisions",
                                                     "cycles", "position_history", "performance")}
            gd = GroupDashboard(group, fps=2)
            try:
                # the leaderboard carries the Sharpe interval and the skill-or-luck verdict
                lb = gd.leaderboard.value
                assert "sharpe_low" in lb and "n_periods" in lb and "vs_best_sharpe" in lb
                assert gd.refresh_errors == 0
            finally:
                gd.close()
    found = rn.audit(tables)
    # Known and reported: the simulator's closing fills carry the position's side while
    # round_trips() reads side as the direction. Everything else must add up.
    assert set(found["check"]) <= {"fill_side_convention"}, found[["check", "evidence"]].to_string()
