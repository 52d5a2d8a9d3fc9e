"""ROMA-01's own ``/performance`` formulas, in one place.

The simulator reports these figures the way the real backend computes them, and the
analytics recompute them over a source's closed trades (the ``roma_*`` columns of
``metrics``, ``roma_performance``, the audit): both call :func:`performance_stats`, so
the two can never disagree. What the backend does, quirks included, is described in
docs/roma01.md.

Example:
    >>> s = performance_stats([5.0, -2.0, 0.0])
    >>> s["wins"], s["losses"], s["win_rate"], round(s["profit_factor"], 2)
    (1, 1, 33.33333333333333, 2.5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["INITIAL_EQUITY", "performance_stats", "PERFORMANCE_FIELDS"]

#: ROMA-01 draws its trade-equity curve from a fixed 10,000 USDT, whatever the account
INITIAL_EQUITY = 10_000.0

#: the keys of :func:`performance_stats`, in the backend's order
PERFORMANCE_FIELDS = (
    "total_trades", "wins", "losses", "win_rate", "avg_profit", "avg_loss", "profit_factor",
    "sharpe_ratio", "max_drawdown", "total_pnl", "best_trade", "worst_trade",
)


def performance_stats(
    pnl: Sequence[float] | np.ndarray,
    lookback: int | None = 20,
    *,
    initial: float = INITIAL_EQUITY,
) -> dict[str, Any]:
    """ROMA-01's performance block over the last ``lookback`` trades' P&L, in close order.

    * ``wins`` / ``losses``: trades with P&L > 0 / < 0 (a trade at exactly 0 is neither);
    * ``win_rate``: percent of trades that won (0-100, as the backend sends it);
    * ``avg_profit`` / ``avg_loss``: mean winning P&L / mean absolute losing P&L (0 when none);
    * ``profit_factor``: gross win / gross loss; ``inf`` when nothing was lost (the backend
      sends ``Infinity``), 0 when there are no trades;
    * ``sharpe_ratio``: mean / population standard deviation of per-trade P&L, not
      annualised (0 with fewer than two trades or no spread);
    * ``max_drawdown``: largest peak-to-trough fall, in percent, of the curve
      ``initial + cumulative P&L`` (``initial`` is 10,000 whatever the account size);
    * ``total_pnl``: gross win - gross loss; ``best_trade`` / ``worst_trade``: the extreme
      P&L (NaN with no trades: the backend sends null).

    Args:
        pnl: realised P&L per closed trade, oldest first.
        lookback: how many of the most recent trades count; None or <= 0 for all.
        initial: start of the synthetic equity curve.
    """
    a = np.asarray(pnl, dtype="float64")
    if lookback is not None and lookback > 0 and len(a) > lookback:
        a = a[-lookback:]
    n = len(a)
    if n == 0:
        return {
            "total_trades": 0, "wins": 0, "losses": 0, "win_rate": 0.0,
            "avg_profit": 0.0, "avg_loss": 0.0, "profit_factor": 0.0,
            "sharpe_ratio": 0.0, "max_drawdown": 0.0, "total_pnl": 0.0,
            "best_trade": math.nan, "worst_trade": math.nan,
        }
    profits = a[a > 0]
    losses = -a[a < 0]
    gross_win, gross_loss = float(profits.sum()), float(losses.sum())
    sharpe = 0.0
    if n >= 2:
        sd = float(np.std(a))  # population standard deviation, as the backend's numpy call
        sharpe = float(np.mean(a)) / sd if sd > 0 else 0.0
    curve = initial + np.concatenate([[0.0], np.cumsum(a)])
    peak = np.maximum.accumulate(curve)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, (peak - curve) / peak * 100.0, 0.0)
    return {
        "total_trades": n,
        "wins": len(profits),
        "losses": len(losses),
        "win_rate": len(profits) / n * 100.0,
        "avg_profit": float(profits.mean()) if len(profits) else 0.0,
        "avg_loss": float(losses.mean()) if len(losses) else 0.0,
        "profit_factor": gross_win / gross_loss if gross_loss > 0 else math.inf,
        "sharpe_ratio": sharpe,
        "max_drawdown": max(0.0, float(dd[1:].max())),
        "total_pnl": gross_win - gross_loss,
        "best_trade": float(a.max()),
        "worst_trade": float(a.min()),
    }
