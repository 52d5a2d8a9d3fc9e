"""ROMA-01's performance formulas: one copy, hand-computed expectations, and the
simulator and the analytics reporting the same figures for the same trades."""

import math

import numpy as np
import pandas as pd
import pytest

from roma_notebook.analysis import analytics

from roma_notebook.sim import market
from roma_notebook.core.protocol import ClosedTrade
from roma_notebook.analysis.roma_formulas import PERFORMANCE_FIELDS, performance_stats


def test_hand_computed_block():
    s = performance_stats([10.0, -5.0, 0.0, 20.0])
    assert (s["total_trades"], s["wins"], s["losses"]) == (4, 2, 1)
    assert s["win_rate"] == 50.0  # percent, as the backend sends it
    assert s["avg_profit"] == 15.0 and s["avg_loss"] == 5.0
    assert s["profit_factor"] == 6.0
    mean, sd = 25 / 4, math.sqrt(((10 - 6.25) ** 2 + (-5 - 6.25) ** 2 + 6.25 ** 2 + 13.75 ** 2) / 4)
    assert s["sharpe_ratio"] == pytest.approx(mean / sd)
    # curve 10000, 10010, 10005, 10005, 10025: the fall 10010 -> 10005
    assert s["max_drawdown"] == pytest.approx(5 / 10010 * 100)
    assert s["total_pnl"] == 25.0 and s["best_trade"] == 20.0 and s["worst_trade"] == -5.0


def test_lookback_and_edges():
    assert performance_stats([1.0, -100.0, 2.0], lookback=2)["total_trades"] == 2
    assert performance_stats([1.0, -100.0, 2.0], lookback=None)["total_trades"] == 3
    empty = performance_stats([])
    assert empty["profit_factor"] == 0.0 and math.isnan(empty["best_trade"])
    assert performance_stats([3.0])["profit_factor"] == math.inf
    # break-even trades only: nothing lost, nothing to divide by (the simulator said 0
    # and the analytics inf before there was one formula)
    assert performance_stats([0.0, 0.0])["profit_factor"] == math.inf


def test_simulator_and_analytics_agree():
    rng = np.random.default_rng(3)
    pnl = list(np.round(rng.normal(0, 20, 60), 2)) + [0.0, 0.0]
    trades = [ClosedTrade(None, "BTCUSDT", "long", 1.0, 1.0, 1.0, 1, None, None, float(p), 0.0)
              for p in pnl]
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    closed = pd.DataFrame({
        "agent_id": pd.Series(["a"] * len(pnl), dtype="string"),
        "timestamp": [t0 + pd.Timedelta(minutes=i) for i in range(len(pnl))],
        "pnl_usdt": pnl,
    })
    for lookback in (20, 2):  # 2: the break-even trades alone
        sim = market.performance(trades, lookback)
        ours = analytics.roma_performance({"closed_trades": closed}, lookback=lookback).loc["a"]
        for k in PERFORMANCE_FIELDS:
            assert getattr(sim, k) == pytest.approx(ours[k]), (lookback, k)
