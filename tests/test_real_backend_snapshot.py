"""The real ROMA-01 backend's WebSocket snapshot, as its FastAPI handler sends it."""

from __future__ import annotations

import json
import math

from roma_notebook.core import protocol as P
from roma_notebook.core.tables import Tables

# Shape of one real snapshot: loop-seconds timestamp, wallet-style account keys,
# positions without pnl_percentage, best/worst trade as objects, Infinity allowed.
REAL = """{"timestamp": 183424.512, "account": {"total_wallet_balance": 10234.5,
 "available_balance": 8123.25, "total_unrealized_profit": -12.75},
 "positions": [{"symbol": "ETHUSDT", "side": "short", "position_amt": 0.5,
   "entry_price": 3900.0, "mark_price": 3925.5, "unrealized_profit": -12.75,
   "leverage": 5, "liquidation_price": 4660.2}],
 "performance": {"total_trades": 4, "wins": 4, "losses": 0, "win_rate": 100.0,
   "avg_profit": 12.5, "avg_loss": 0.0, "profit_factor": Infinity, "sharpe_ratio": 1.9,
   "max_drawdown": 0.0, "total_pnl": 50.0,
   "best_trade": {"symbol": "BTCUSDT", "pnl": 20.0}, "worst_trade": null},
 "status": {"agent_id": "deepseek-chat-v3.1", "name": "DeepSeek V3.1", "is_running": true,
   "cycle_count": 57, "runtime_minutes": 171.5, "dex_type": "aster"}}"""


def test_real_snapshot_parses_into_four_events():
    acc, pos, perf, st = P.parse(REAL)
    assert (acc.timestamp, acc.total_balance, acc.available_balance, acc.unrealized_pnl) == (
        None, 10234.5, 8123.25, -12.75)
    assert math.isnan(acc.used_percentage)
    (p,) = pos.positions
    assert (p.symbol, p.side, p.leverage, p.liquidation_price) == ("ETHUSDT", "short", 5, 4660.2)
    assert math.isnan(p.pnl_percentage)
    assert perf.profit_factor == math.inf and perf.best_trade == 20.0 and math.isnan(perf.worst_trade)
    assert (st.agent_id, st.name, st.cycle_count, st.runtime_minutes) == ("deepseek-chat-v3.1", "DeepSeek V3.1", 57, 171.5)


def test_real_snapshot_rows_use_the_receive_time():
    t = Tables()
    t.ingest("deepseek-chat-v3.1", REAL, received_ns=1_762_079_400_000_000_000)
    for name in ("account", "position_history", "performance", "status"):
        df = t.frame(name)
        assert len(df) == 1, name
        assert (df["timestamp"] == df["received_at"]).all(), name
    assert t.frame("performance")["profit_factor"].iloc[0] == math.inf
    assert t.frame("positions")["symbol"].tolist() == ["ETHUSDT"]
    assert t.frame("errors").empty


def test_best_trade_of_wrong_shape_is_a_named_error():
    bad = json.loads(REAL.replace("Infinity", "1e308"))
    bad["performance"]["best_trade"] = {"symbol": "BTCUSDT", "pnl": "lots"}
    try:
        P.parse(json.dumps(bad))
    except P.ProtocolError as exc:
        assert "performance.best_trade.pnl" in exc.detail
    else:
        raise AssertionError("expected ProtocolError")
