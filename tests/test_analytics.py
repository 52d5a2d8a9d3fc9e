"""Tests for roma_notebook.analysis.analytics against hand-computed values."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roma_notebook.analysis import analytics as A
from roma_notebook.core import schema

UTC = schema.UTC
T0 = pd.Timestamp("2025-11-02 10:00:00", tz="UTC")


def ts(minutes: float = 0.0) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def table(name: str, rows: list[dict], agent: str = "a") -> pd.DataFrame:
    """A table with exactly the table's columns and dtypes (schema.py); seq/received_at
    filled in, columns a row does not give missing."""
    dtypes = schema.dtypes(name)
    data = {c: [] for c in dtypes}
    for i, r in enumerate(rows):
        r = {"agent_id": agent, "seq": i, **r}
        r.setdefault("received_at", r.get("timestamp"))
        for c in dtypes:
            data[c].append(r.get(c))
    out = pd.DataFrame({c: pd.Series(v, dtype="object") for c, v in data.items()})
    for c, d in dtypes.items():
        col = out[c]
        if d == UTC:
            out[c] = pd.to_datetime(col, utc=True).astype(UTC)
        elif d == "float64":
            out[c] = pd.to_numeric(col.astype("float64"))
        else:
            out[c] = col.astype(d)
    return out


def empty(name: str) -> pd.DataFrame:
    return table(name, [])


def closed(pnls, agent="a", symbols=None) -> pd.DataFrame:
    rows = []
    for i, p in enumerate(pnls):
        rows.append({"timestamp": ts(10 * i + 5), "symbol": (symbols or ["BTCUSDT"] * len(pnls))[i],
                     "side": "long", "entry_price": 100.0, "close_price": 100.0 + p,
                     "quantity": 1.0, "leverage": 10, "open_time": ts(10 * i),
                     "close_time": ts(10 * i + 5), "pnl_usdt": p, "pnl_pct": p})
    return table("closed_trades", rows, agent)


def account(values, minutes, agent="a") -> pd.DataFrame:
    return table("account", [{"timestamp": ts(m), "total_balance": v, "available_balance": v,
                              "unrealized_pnl": 0.0, "used_percentage": 0.0}
                             for v, m in zip(values, minutes)], agent)


def fill(minute, side, qty, price, *, symbol="BTCUSDT", lev=10, oid=None, status="filled"):
    return {"timestamp": ts(minute), "order_id": oid or f"o{minute}", "symbol": symbol,
            "side": side, "quantity": qty, "price": price, "leverage": lev, "status": status}


def decision(minute, action, symbol="BTCUSDT", cycle=1):
    return {"timestamp": ts(minute), "cycle": cycle, "action": action, "symbol": symbol,
            "quantity": 1.0, "leverage": 10, "reason": "r"}


# --------------------------------------------------------------------------- metrics: trades

def test_metrics_no_trades():
    m = A.metrics({"account": account([100.0, 105.0], [0, 60])})
    r = m.loc["a"]
    assert r.n_trades == 0
    assert r.current_streak == 0
    for c in ("win_rate", "profit_factor", "avg_win", "avg_loss", "largest_win",
              "largest_loss", "realized_pnl"):
        assert math.isnan(r[c]), c
    # ROMA-01's backend answers zeros (profit factor 0, not inf) with no trades.
    assert r.roma_total_trades == 0 and r.roma_profit_factor == 0.0
    assert r.roma_win_rate_pct == 0.0 and r.roma_sharpe_ratio == 0.0
    assert math.isnan(r.roma_best_trade)


def test_metrics_one_winning_trade():
    r = A.metrics({"closed_trades": closed([50.0])}).loc["a"]
    assert r.n_trades == 1
    assert r.win_rate == 1.0
    assert r.profit_factor == math.inf
    assert r.avg_win == 50.0 and math.isnan(r.avg_loss)
    assert r.largest_win == 50.0 and math.isnan(r.largest_loss)
    assert r.current_streak == 1
    assert r.realized_pnl == 50.0
    assert r.roma_total_trades == 1 and r.roma_wins == 1 and r.roma_losses == 0
    assert r.roma_win_rate_pct == 100.0
    assert r.roma_avg_profit == 50.0 and r.roma_avg_loss == 0.0
    assert r.roma_profit_factor == math.inf
    assert r.roma_sharpe_ratio == 0.0  # fewer than 2 trades
    assert r.roma_max_drawdown_pct == 0.0
    assert r.roma_total_pnl == 50.0
    assert r.roma_best_trade == 50.0 and r.roma_worst_trade == 50.0
    # No account rows: account-curve columns are missing, not zero.
    assert pd.isna(r.start) and math.isnan(r.return_pct) and math.isnan(r.sharpe)


def test_metrics_all_losses():
    r = A.metrics({"closed_trades": closed([-10.0, -30.0])}).loc["a"]
    assert r.win_rate == 0.0
    assert r.profit_factor == 0.0
    assert r.avg_loss == pytest.approx(-20.0)
    assert r.largest_loss == -30.0 and math.isnan(r.largest_win)
    assert r.current_streak == -2
    assert r.roma_losses == 2 and r.roma_wins == 0
    assert r.roma_avg_loss == pytest.approx(20.0)  # ROMA reports it as a positive number
    assert r.roma_profit_factor == 0.0
    # mean -20 / population std 10
    assert r.roma_sharpe_ratio == pytest.approx(-2.0)
    # curve 10000, 9990, 9960 from ROMA's fixed 10,000 start
    assert r.roma_max_drawdown_pct == pytest.approx(40 / 10000 * 100)
    assert r.roma_total_pnl == pytest.approx(-40.0)


def test_metrics_profit_factor_no_losses_is_inf():
    r = A.metrics({"closed_trades": closed([10.0, 20.0])}).loc["a"]
    assert r.profit_factor == math.inf
    assert r.roma_profit_factor == math.inf
    assert r.roma_sharpe_ratio == pytest.approx(15.0 / 5.0)
    assert r.current_streak == 2


def test_metrics_mixed_trades_sorted_by_close_time():
    pnls = [100.0, -50.0, 30.0, 0.0, -20.0, -10.0]
    ct = closed(pnls)
    shuffled = ct.iloc[[3, 0, 5, 1, 4, 2]].reset_index(drop=True)
    r = A.metrics({"closed_trades": shuffled}).loc["a"]
    assert r.n_trades == 6
    assert r.win_rate == pytest.approx(2 / 6)
    assert r.profit_factor == pytest.approx(130 / 80)
    assert r.avg_win == pytest.approx(65.0)
    assert r.avg_loss == pytest.approx(-80 / 3)
    assert r.largest_win == 100.0 and r.largest_loss == -50.0
    assert r.realized_pnl == pytest.approx(50.0)
    assert r.current_streak == -2
    p = np.array(pnls)
    assert r.roma_win_rate_pct == pytest.approx(200 / 6)
    assert r.roma_avg_loss == pytest.approx(80 / 3)
    assert r.roma_profit_factor == pytest.approx(1.625)
    assert r.roma_sharpe_ratio == pytest.approx(p.mean() / p.std(ddof=0))
    # curve 10000, 10100, 10050, ...: worst fall 10100 -> 10050
    assert r.roma_max_drawdown_pct == pytest.approx(50 / 10100 * 100)
    assert r.roma_total_pnl == pytest.approx(50.0)
    assert r.roma_best_trade == 100.0 and r.roma_worst_trade == -50.0


def test_streak_zero_after_break_even_trade():
    assert A.metrics({"closed_trades": closed([5.0, 0.0])}).loc["a", "current_streak"] == 0


def test_roma_lookback_uses_last_trades():
    pnls = [-100.0] * 5 + [10.0] * 20
    m = A.metrics({"closed_trades": closed(pnls)})
    r = m.loc["a"]
    assert r.n_trades == 25 and r.win_rate == pytest.approx(20 / 25)
    assert r.roma_total_trades == 20 and r.roma_losses == 0
    assert r.roma_profit_factor == math.inf
    assert r.roma_total_pnl == pytest.approx(200.0)
    r_all = A.metrics({"closed_trades": closed(pnls)}, lookback=None).loc["a"]
    assert r_all.roma_total_trades == 25 and r_all.roma_total_pnl == pytest.approx(-300.0)
    perf = A.roma_performance({"closed_trades": closed(pnls)}, lookback=5)
    assert list(perf.columns) == ["total_trades", "wins", "losses", "win_rate", "avg_profit",
                                  "avg_loss", "profit_factor", "sharpe_ratio", "max_drawdown",
                                  "total_pnl", "best_trade", "worst_trade"]
    assert perf.loc["a", "total_trades"] == 5 and perf.loc["a", "total_pnl"] == 50.0
    with pytest.raises(ValueError):
        A.metrics({}, lookback=0)


def test_metrics_dtypes_and_columns():
    m = A.metrics({"account": account([100.0, 101.0], [0, 60]), "closed_trades": closed([1.0])})
    assert m.index.name == "agent_id" and m.index.dtype == "string"
    assert str(m["start"].dtype) == UTC and str(m["end"].dtype) == UTC
    assert m["n_trades"].dtype == "int64" and m["current_streak"].dtype == "int64"
    assert m["roma_total_trades"].dtype == "int64"
    assert m["period"].iloc[0] == "1h"
    for c in ("return_pct", "sharpe", "sortino", "win_rate", "profit_factor", "roma_sharpe_ratio"):
        assert m[c].dtype == "float64", c


# --------------------------------------------------------------------------- equity

def test_max_drawdown_on_known_equity():
    acc = account([100.0, 120.0, 90.0, 130.0, 104.0, 110.0], [0, 60, 120, 180, 240, 300])
    eq = A.equity({"account": acc})
    assert list(eq.columns) == ["timestamp", "agent_id", "equity", "peak", "drawdown", "drawdown_pct"]
    assert eq["peak"].tolist() == [100, 120, 120, 130, 130, 130]
    assert eq["drawdown"].tolist() == [0, 0, 30, 0, 26, 20]
    assert eq["drawdown_pct"].tolist() == pytest.approx([0, 0, 25, 0, 20, 20 / 130 * 100])
    assert str(eq["timestamp"].dtype) == UTC and eq["agent_id"].dtype == "string"
    dd = A.drawdown({"account": acc})
    assert list(dd.columns) == ["timestamp", "agent_id", "drawdown", "drawdown_pct"]
    r = A.metrics({"account": acc}).loc["a"]
    assert r.max_drawdown == 30.0
    assert r.max_drawdown_pct == pytest.approx(25.0)
    assert r.start_balance == 100.0 and r.end_balance == 110.0
    assert r.return_pct == pytest.approx(10.0) and r.total_pnl == pytest.approx(10.0)
    assert r.start == ts(0) and r.end == ts(300)


def test_equity_orders_rows_by_time_then_seq():
    acc = account([100.0, 90.0, 95.0], [60, 0, 60])  # seq 0, 1, 2
    eq = A.equity({"account": acc})
    assert eq["equity"].tolist() == [90.0, 100.0, 95.0]


def test_sharpe_sortino_hourly_hand_computation():
    v = np.array([100.0, 102.0, 101.0, 104.0, 103.5, 106.0])
    r = v[1:] / v[:-1] - 1
    k = math.sqrt(24 * 365)
    sharpe = r.mean() / r.std(ddof=1) * k
    sortino = r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * k
    # min_periods=2: the formulas, not the small-sample guard (tests/test_skill.py)
    m = A.metrics({"account": account(v, [60 * i for i in range(6)])}, min_periods=2).loc["a"]
    assert m.sharpe == pytest.approx(sharpe)
    assert m.sortino == pytest.approx(sortino)
    assert m.n_periods == 5
    daily = A.metrics({"account": account(v, [60 * 24 * i for i in range(6)])},
                      period="1D", min_periods=2).loc["a"]
    assert daily.period == "1D"
    assert daily.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    custom = A.metrics({"account": account(v, [60 * i for i in range(6)])},
                       periods_per_year=252, min_periods=2).loc["a"]
    assert custom.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))


def test_sharpe_samples_irregular_updates_on_a_regular_grid():
    # updates at 0:00, 0:20, 1:00, 2:45 -> hourly samples at 0h, 1h, 2h, 3h take the
    # last value at or before each: 100, 103, 103, 99
    acc = account([100.0, 110.0, 103.0, 99.0], [0, 20, 60, 165])
    v = np.array([100.0, 103.0, 103.0, 99.0])
    r = v[1:] / v[:-1] - 1
    m = A.metrics({"account": acc}, min_periods=2).loc["a"]
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(8760))
    assert m.sortino == pytest.approx(r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2))
                                      * math.sqrt(8760))


def test_sharpe_nan_with_too_few_points_and_sortino_inf_without_losses():
    one = A.metrics({"account": account([100.0], [0])}).loc["a"]
    assert math.isnan(one.sharpe) and math.isnan(one.sortino)
    assert one.max_drawdown == 0.0 and one.return_pct == 0.0
    up = A.metrics({"account": account([100.0, 101.0, 103.0], [0, 60, 120])},
                   min_periods=2).loc["a"]
    assert up.sortino == math.inf and up.sharpe > 0


# --------------------------------------------------------------------------- round trips

def test_round_trips_simple_long_and_short():
    fills = table("trades", [fill(0, "long", 1.0, 100.0), fill(5, "short", 1.0, 110.0),
                             fill(10, "short", 2.0, 50.0, symbol="ETHUSDT"),
                             fill(15, "long", 2.0, 60.0, symbol="ETHUSDT")])
    rt = A.round_trips({"trades": fills})
    assert list(rt.columns[:14]) == ["agent_id", "timestamp", "received_at", "seq", "symbol", "side",
                                     "entry_price", "close_price", "quantity", "leverage",
                                     "open_time", "close_time", "pnl_usdt", "pnl_pct"]
    assert rt["side"].tolist() == ["long", "short"]
    assert rt["symbol"].tolist() == ["BTCUSDT", "ETHUSDT"]
    assert rt["pnl_usdt"].tolist() == pytest.approx([10.0, -20.0])
    assert rt["pnl_pct"].tolist() == pytest.approx([10.0, -20.0])
    assert rt["close_order_id"].tolist() == ["o5", "o15"]
    assert rt["open_time"].tolist() == [ts(0), ts(10)]
    assert (rt["timestamp"] == rt["close_time"]).all()
    for c, d in {"leverage": "Int64", "open_time": UTC, "close_time": UTC, "side": "string",
                 "pnl_usdt": "float64", "seq": "int64"}.items():
        assert str(rt[c].dtype) == d, c


def test_round_trips_partial_closes_fifo_weighted():
    fills = table("trades", [fill(0, "long", 1.0, 100.0, lev=5), fill(1, "long", 1.0, 120.0, lev=10),
                             fill(2, "short", 1.5, 130.0), fill(3, "short", 0.5, 90.0)])
    rt = A.round_trips({"trades": fills})
    assert len(rt) == 2
    first, second = rt.iloc[0], rt.iloc[1]
    assert first.quantity == pytest.approx(1.5)
    assert first.entry_price == pytest.approx((100 + 0.5 * 120) / 1.5)
    assert first.pnl_usdt == pytest.approx(30 + 0.5 * 10)
    assert first.open_time == ts(0) and first.close_time == ts(2)
    assert first.leverage == 5
    assert second.quantity == pytest.approx(0.5)
    assert second.entry_price == pytest.approx(120.0)
    assert second.pnl_usdt == pytest.approx(-15.0)
    assert second.open_time == ts(1) and second.leverage == 10
    assert second.pnl_pct == pytest.approx(-25.0)


def test_round_trips_flip_and_status_and_aliases():
    fills = table("trades", [
        fill(0, "short", 2.0, 50.0),
        fill(1, "long", 5.0, 1.0, status="canceled"),  # nothing filled: ignored
        fill(2, "buy", 3.0, 40.0),                      # closes the short, opens long 1
        fill(3, "SELL", 1.0, 45.0),
    ])
    rt = A.round_trips({"trades": fills})
    assert rt["side"].tolist() == ["short", "long"]
    assert rt["quantity"].tolist() == pytest.approx([2.0, 1.0])
    assert rt["entry_price"].tolist() == pytest.approx([50.0, 40.0])
    assert rt["pnl_usdt"].tolist() == pytest.approx([20.0, 5.0])
    assert rt.iloc[1].open_time == ts(2)


def test_round_trips_agents_kept_separate():
    fills = pd.concat([table("trades", [fill(0, "long", 1.0, 100.0)], "a"),
                       table("trades", [fill(1, "short", 1.0, 90.0)], "b")], ignore_index=True)
    # a's long and b's short must not close each other
    assert A.round_trips({"trades": fills}).empty


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["long", "short"]),
                          st.integers(1, 5), st.integers(50, 150)), min_size=1, max_size=12))
def test_round_trips_pnl_equals_cash_flow_when_flat(steps):
    rows, pos = [], 0
    for i, (side, q, p) in enumerate(steps):
        rows.append(fill(i, side, float(q), float(p)))
        pos += q if side == "long" else -q
    if pos:
        rows.append(fill(len(steps), "short" if pos > 0 else "long", float(abs(pos)), 100.0))
    fills = table("trades", rows)
    cash = sum((-1 if r["side"] == "long" else 1) * r["quantity"] * r["price"] for r in rows)
    rt = A.round_trips({"trades": fills})
    assert rt["pnl_usdt"].sum() == pytest.approx(cash, abs=1e-6)
    assert (rt["quantity"] > 0).all()


def test_metrics_fall_back_to_round_trips_per_agent():
    tr = pd.concat([table("trades", [fill(0, "long", 1.0, 100.0), fill(1, "short", 1.0, 90.0)], "b"),
                    table("trades", [fill(0, "long", 1.0, 100.0), fill(1, "short", 1.0, 200.0)], "a")],
                   ignore_index=True)
    m = A.metrics({"trades": tr, "closed_trades": closed([7.0], agent="a")})
    assert list(m.index) == ["a", "b"]
    assert m.loc["a", "realized_pnl"] == 7.0 and m.loc["a", "n_trades"] == 1  # closed_trades win
    assert m.loc["b", "realized_pnl"] == pytest.approx(-10.0)
    assert m.loc["b", "roma_losses"] == 1


# --------------------------------------------------------------------------- decisions

def test_decision_fills_inside_and_outside_window():
    dec = table("decisions", [
        decision(0, "open_long", "BTCUSDT"),
        decision(0, "open_short", "ETHUSDT"),
        decision(0, "hold", None),
        decision(20, "close_long", "BTCUSDT", cycle=2),
    ])
    fills = table("trades", [
        fill(0.5, "long", 1.0, 68450.0, oid="inside"),
        fill(0.1, "short", 1.0, 1.0, oid="wrong-direction"),
        fill(10, "short", 1.0, 3000.0, symbol="ETHUSDT", oid="too-late"),
        fill(21, "short", 1.0, 69000.0, oid="closer"),
    ])
    out = A.decision_fills({"decisions": dec, "trades": fills})
    assert len(out) == 3  # hold is not a trading decision
    assert out["action"].tolist() == ["open_long", "open_short", "close_long"]
    assert out["filled"].tolist() == [True, False, True]
    assert out["filled"].dtype == bool
    assert out["order_id"].tolist()[0] == "inside" and pd.isna(out["order_id"].iloc[1])
    assert out["order_id"].iloc[2] == "closer"
    assert out["fill_price"].iloc[0] == 68450.0 and math.isnan(out["fill_price"].iloc[1])
    assert out["fill_latency"].iloc[0] == pd.Timedelta(seconds=30)
    assert out["fill_latency"].iloc[2] == pd.Timedelta(minutes=1)
    assert pd.isna(out["fill_latency"].iloc[1])
    assert str(out["fill_latency"].dtype) == "timedelta64[ns]"
    assert str(out["fill_time"].dtype) == UTC
    for c in ("cycle", "reason", "symbol", "timestamp"):
        assert c in out.columns
    wider = A.decision_fills({"decisions": dec, "trades": fills}, within="15min")
    assert wider["order_id"].iloc[1] == "too-late"
    with pytest.raises(ValueError):
        A.decision_fills({}, within="-1min")


def test_decision_fills_each_fill_used_once_and_agents_separate():
    dec = pd.concat([table("decisions", [decision(0, "open_long"), decision(1, "open_long")], "a"),
                     table("decisions", [decision(0, "open_long")], "b")], ignore_index=True)
    fills = table("trades", [fill(2, "long", 1.0, 100.0, oid="x")], "a")
    out = A.decision_fills({"decisions": dec, "trades": fills})
    assert out["filled"].tolist() == [True, False, False]
    assert out["agent_id"].tolist() == ["a", "a", "b"]


def test_action_mix_and_hold_rate():
    dec = pd.concat([
        table("decisions", [decision(0, "open_long"), decision(0, "HOLD", None),
                            decision(3, "wait", None), decision(3, "open_long", "ETHUSDT")], "a"),
        table("decisions", [decision(0, "close_short")], "b"),
    ], ignore_index=True)
    mix = A.action_mix({"decisions": dec})
    assert list(mix.columns) == ["agent_id", "action", "count", "share"]
    got = {(r.agent_id, r.action): (r.count, r.share) for r in mix.itertuples()}
    assert got == {("a", "hold"): (1, 0.25), ("a", "open_long"): (2, 0.5),
                   ("a", "wait"): (1, 0.25), ("b", "close_short"): (1, 1.0)}
    assert mix["count"].dtype == "int64" and mix["action"].dtype == "string"
    by_sym = A.action_mix({"decisions": dec}, by_symbol=True)
    assert list(by_sym.columns) == ["agent_id", "symbol", "action", "count", "share"]
    eth = by_sym[(by_sym.agent_id == "a") & (by_sym.symbol == "ETHUSDT")]
    assert eth["count"].tolist() == [1] and eth["share"].tolist() == [1.0]
    assert by_sym[by_sym.symbol.isna()]["count"].sum() == 2
    hr = A.hold_rate({"decisions": dec})
    assert hr.loc["a", "hold_rate"] == 0.5 and hr.loc["a", "n_hold"] == 2
    assert hr.loc["b", "hold_rate"] == 0.0 and hr.loc["b", "n_decisions"] == 1


def test_pnl_by_symbol_and_action():
    ct = closed([10.0, -4.0, 6.0], symbols=["BTCUSDT", "ETHUSDT", "BTCUSDT"])
    ct.loc[1, "side"] = "short"
    by_sym = A.pnl_by({"closed_trades": ct}, by="symbol")
    assert by_sym["symbol"].tolist() == ["BTCUSDT", "ETHUSDT"]
    assert by_sym["total_pnl"].tolist() == [16.0, -4.0]
    assert by_sym["n_trades"].tolist() == [2, 1] and by_sym["win_rate"].tolist() == [1.0, 0.0]
    assert by_sym["avg_pnl"].tolist() == [8.0, -4.0]
    by_act = A.pnl_by({"closed_trades": ct}, by="action")
    assert dict(zip(by_act["action"], by_act["total_pnl"])) == {"open_long": 16.0, "open_short": -4.0}
    with pytest.raises(ValueError):
        A.pnl_by({}, by="nonsense")


# --------------------------------------------------------------------------- multi-agent, forms

def test_two_agents_kept_separate():
    tables = {
        "account": pd.concat([account([100.0, 50.0], [0, 60], "a"),
                              # b stays below a's peak: a peak taken over both agents
                              # would show b a drawdown it never had
                              account([60.0, 90.0], [0, 60], "b")], ignore_index=True),
        "closed_trades": pd.concat([closed([-5.0], "a"), closed([8.0, 2.0], "b")], ignore_index=True),
    }
    m = A.metrics(tables)
    assert list(m.index) == ["a", "b"]
    assert m.loc["a", "return_pct"] == pytest.approx(-50.0)
    assert m.loc["b", "return_pct"] == pytest.approx(50.0)
    assert m.loc["a", "max_drawdown"] == 50.0 and m.loc["b", "max_drawdown"] == 0.0
    assert m.loc["a", "n_trades"] == 1 and m.loc["b", "n_trades"] == 2
    assert m.loc["b", "roma_total_pnl"] == 10.0 and m.loc["a", "roma_total_pnl"] == -5.0
    eq = A.equity(tables)
    assert eq.groupby("agent_id")["peak"].max().to_dict() == {"a": 100.0, "b": 90.0}
    assert eq.loc[eq["agent_id"] == "b", "drawdown"].tolist() == [0.0, 0.0]


class _Recording:
    """Stands in for AgentStream/Recording: tables as properties."""

    def __init__(self, tables):
        self._t = tables

    def __getattr__(self, name):
        if name in {"account", "trades", "closed_trades", "decisions", "cycles", "positions"}:
            return self._t.get(name, table(name, []))
        raise AttributeError(name)


def test_object_with_properties_and_dict_agree():
    tables = {"account": account([100.0, 90.0, 95.0], [0, 60, 120]),
              "closed_trades": closed([3.0, -1.0])}
    pd.testing.assert_frame_equal(A.metrics(tables), A.metrics(_Recording(tables)))
    ns = SimpleNamespace(account=tables["account"])
    assert A.equity(ns)["equity"].tolist() == [100.0, 90.0, 95.0]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="single DataFrame"):
        A.metrics(pd.DataFrame())
    with pytest.raises(TypeError):
        A.metrics(42)
    with pytest.raises(ValueError):
        A.metrics({}, period="0h")


def test_zoneless_times_are_taken_as_utc():
    acc = account([1.0, 2.0], [0, 60])
    acc["timestamp"] = acc["timestamp"].dt.tz_localize(None)
    eq = A.equity({"account": acc})
    assert str(eq["timestamp"].dtype) == UTC and eq["timestamp"].iloc[0] == ts(0)


# --------------------------------------------------------------------------- empty tables

@pytest.mark.parametrize("source", [
    {},
    {n: empty(n) for n in schema.TABLE_NAMES},
    _Recording({}),
])
def test_empty_tables_give_empty_results(source):
    m = A.metrics(source)
    assert m.empty and "sharpe" in m.columns and "roma_win_rate_pct" in m.columns
    assert A.equity(source).empty and A.drawdown(source).empty
    rt = A.round_trips(source)
    assert rt.empty and "pnl_usdt" in rt.columns
    df = A.decision_fills(source)
    assert df.empty and {"order_id", "fill_price", "fill_latency", "filled"} <= set(df.columns)
    assert A.action_mix(source).empty and A.action_mix(source, by_symbol=True).empty
    assert A.hold_rate(source).empty
    assert A.pnl_by(source).empty and A.pnl_by(source, by="action").empty
    assert A.roma_performance(source).empty
    r = A.report(source)
    assert "no data" in r._repr_html_()


def test_agent_with_decisions_only_gets_a_nan_row():
    m = A.metrics({"decisions": table("decisions", [decision(0, "hold", None)], "z")})
    assert list(m.index) == ["z"]
    assert math.isnan(m.loc["z", "return_pct"]) and m.loc["z", "n_trades"] == 0


# --------------------------------------------------------------------------- report

def test_report_html_contains_metrics_and_figures(tmp_path):
    import plotly.graph_objects as go

    tables = {
        "account": pd.concat([account([100.0, 120.0, 90.0], [0, 60, 120], "deepseek-chat-v3.1"),
                              account([100.0, 101.0], [0, 60], "qwen3-max")], ignore_index=True),
        "closed_trades": closed([12.5, -3.0], "deepseek-chat-v3.1"),
        "decisions": table("decisions", [decision(0, "open_long"), decision(3, "hold", None)],
                           "qwen3-max"),
    }
    r = A.report(tables)
    html = r._repr_html_()
    for needle in ("deepseek-chat-v3.1", "qwen3-max", "sharpe", "max_drawdown_pct",
                   "roma_win_rate_pct", "<table", "Action mix", "open_long", "Equity", "Drawdown"):
        assert needle in html, needle
    assert "cdn.plot.ly" not in html and "report.show()" in html  # offline by default
    assert set(r.figures) == {"equity", "drawdown"}
    for fig in r.figures.values():
        assert type(fig) is go.Figure
        assert [t.name for t in fig.data] == ["deepseek-chat-v3.1", "qwen3-max"]
    assert list(r.figures["drawdown"].data[0].y) == pytest.approx([0.0, 0.0, -25.0])
    assert set(r.tables) == {"metrics", "action_mix", "hold_rate", "pnl_by_symbol",
                             "skill", "skill_pairs", "audit"}
    assert "Skill or luck" in html and "Audit" in html
    # best Sharpe first; qwen3-max has one return, no Sharpe, and comes last
    assert list(r.tables["skill"].index) == ["deepseek-chat-v3.1", "qwen3-max"]
    pd.testing.assert_frame_equal(r.metrics, A.metrics(tables))
    assert "deepseek-chat-v3.1" in repr(r)
    page = r.to_html(str(tmp_path / "r.html"))
    assert page.startswith("<!DOCTYPE html>") and (tmp_path / "r.html").read_text() == page
    assert "cdn.plot.ly" in page
    online = A.report(tables, include_plotlyjs="cdn")._repr_html_()
    assert online.count("cdn.plot.ly") == 1


def test_report_decimates_long_curves():
    n = 5000
    vals = 100 + np.sin(np.arange(n) / 50.0)
    vals[3333] = 10.0  # the deepest trough must survive thinning
    r = A.report({"account": account(vals, list(range(n)))}, max_points=500)
    y = np.array(r.figures["drawdown"].data[0].y, dtype=float)
    assert len(y) <= 501
    assert y.min() == pytest.approx(-(vals[:3334].max() - 10.0) / vals[:3334].max() * 100)


def test_all_exports_exist():
    for name in A.__all__:
        assert hasattr(A, name)
