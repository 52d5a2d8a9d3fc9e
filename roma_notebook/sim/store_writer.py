"""Write the simulated world as the current ROMA-01 backend's SQLite store.

The current ROMA-01 backend keeps its history in ``data/roma_trading.db``: seven
tables whose declared types, text formats and quirks docs/roma01.md describes.
:func:`write_store` writes a :class:`~roma_notebook.sim.market.World`'s history in
exactly that form, so ``rn.load("roma_trading.db")`` can be tried and tested
without a real backend; :class:`StoreWriter` does it incrementally (the
simulator's ``store=`` option uses it to keep a store up to date while it runs).

What is reproduced, and why it matters to a reader:

- ``DATETIME`` columns as TEXT ``YYYY-MM-DD HH:MM:SS.ffffff`` in the backend
  host's local time, naive (``tz``); ``trades.created_at`` in UTC, whole seconds;
- JSON cells written by ``json.dumps`` with its default separators; ``decisions``
  and ``positions`` NULL when the list is empty (Q7);
- row ids not in time order for a few rows (Q8: order by the time columns);
- ``equity``/``adjusted_equity`` net of inferred deposits, ``gross_equity`` the
  account value (Q3); ``trades.pnl_usdt`` multiplied by leverage (Q2);
- ``account_state``/``positions`` of a decision log as at the start of its cycle
  (Q4), as the simulated agents log them;
- a few deterministic ``analysis_insights`` (and the ``analysis_jobs`` that made
  them) from each agent's closed trades, as the backend's own analysis would.

Example:
    >>> import tempfile, pathlib
    >>> db = write_store(pathlib.Path(tempfile.mkdtemp()) / "roma_trading.db", cycles=5)
    >>> import sqlite3
    >>> sqlite3.connect(db).execute("SELECT count(*) FROM decision_logs").fetchone()[0] >= 10
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import statistics
import threading
from datetime import timezone, tzinfo
from pathlib import Path
from typing import Any, Iterable

from .market import World
from ..core.times import NS, local_text, zone  # public names of this module too

__all__ = ["SCHEMA", "StoreWriter", "InsightBook", "write_store", "local_text", "zone"]

# The DDL SQLAlchemy emits for the backend's models on SQLite (declared types,
# NOT NULL, indexes): a reader is tested against the same schema it will meet.
SCHEMA = """
CREATE TABLE trades (
\tid INTEGER NOT NULL,
\tagent_id VARCHAR(100) NOT NULL,
\tsymbol VARCHAR(50) NOT NULL,
\tside VARCHAR(10) NOT NULL,
\tentry_price FLOAT NOT NULL,
\tclose_price FLOAT NOT NULL,
\tquantity FLOAT NOT NULL,
\tleverage INTEGER NOT NULL,
\topen_time DATETIME NOT NULL,
\tclose_time DATETIME NOT NULL,
\tpnl_pct FLOAT NOT NULL,
\tpnl_usdt FLOAT NOT NULL,
\tcreated_at DATETIME DEFAULT (CURRENT_TIMESTAMP),
\tPRIMARY KEY (id)
);
CREATE INDEX idx_trades_agent ON trades (agent_id);
CREATE INDEX idx_trades_symbol ON trades (symbol);
CREATE INDEX idx_trades_time ON trades (open_time, close_time);
CREATE INDEX ix_trades_agent_id ON trades (agent_id);
CREATE INDEX ix_trades_symbol ON trades (symbol);
CREATE INDEX ix_trades_open_time ON trades (open_time);
CREATE INDEX ix_trades_close_time ON trades (close_time);
CREATE TABLE equity_history (
\tid INTEGER NOT NULL,
\tagent_id VARCHAR(100) NOT NULL,
\ttimestamp DATETIME NOT NULL,
\tcycle INTEGER NOT NULL,
\tequity FLOAT NOT NULL,
\tadjusted_equity FLOAT NOT NULL,
\tgross_equity FLOAT NOT NULL,
\tunrealized_pnl FLOAT NOT NULL,
\tpnl FLOAT NOT NULL,
\tnet_deposits FLOAT NOT NULL,
\texternal_cash_flow FLOAT NOT NULL,
\tPRIMARY KEY (id)
);
CREATE INDEX idx_equity_agent ON equity_history (agent_id);
CREATE INDEX idx_equity_time ON equity_history (timestamp);
CREATE INDEX ix_equity_history_agent_id ON equity_history (agent_id);
CREATE INDEX ix_equity_history_timestamp ON equity_history (timestamp);
CREATE TABLE decision_logs (
\tid INTEGER NOT NULL,
\tagent_id VARCHAR(100) NOT NULL,
\tcycle_number INTEGER NOT NULL,
\ttimestamp DATETIME NOT NULL,
\tchain_of_thought TEXT,
\tdecisions TEXT,
\taccount_state TEXT,
\tpositions TEXT,
\tPRIMARY KEY (id)
);
CREATE INDEX idx_decision_agent_cycle ON decision_logs (agent_id, cycle_number);
CREATE INDEX idx_decision_time ON decision_logs (timestamp);
CREATE INDEX ix_decision_logs_agent_id ON decision_logs (agent_id);
CREATE INDEX ix_decision_logs_cycle_number ON decision_logs (cycle_number);
CREATE INDEX ix_decision_logs_timestamp ON decision_logs (timestamp);
CREATE TABLE analysis_insights (
\tinsight_id VARCHAR(100) NOT NULL,
\tagent_id VARCHAR(100),
\tcategory VARCHAR(50) NOT NULL,
\ttitle VARCHAR(500) NOT NULL,
\tsummary TEXT,
\tdetailed_findings TEXT,
\trecommendations TEXT,
\tconfidence_score FLOAT NOT NULL,
\tcreated_at DATETIME NOT NULL,
\tdeprecated_at DATETIME,
\tis_active BOOLEAN,
\tsupporting_trade_ids TEXT,
\tPRIMARY KEY (insight_id)
);
CREATE INDEX idx_insights_agent ON analysis_insights (agent_id);
CREATE INDEX idx_insights_category ON analysis_insights (category);
CREATE INDEX idx_insights_active ON analysis_insights (is_active, created_at);
CREATE TABLE analysis_snapshots (
\tid INTEGER NOT NULL,
\tagent_id VARCHAR(100) NOT NULL,
\tsnapshot_type VARCHAR(50) NOT NULL,
\tperiod_start DATETIME NOT NULL,
\tperiod_end DATETIME NOT NULL,
\tsnapshot_data TEXT,
\tcreated_at DATETIME DEFAULT (CURRENT_TIMESTAMP),
\tis_latest BOOLEAN,
\tPRIMARY KEY (id)
);
CREATE INDEX idx_snapshots_agent ON analysis_snapshots (agent_id);
CREATE INDEX idx_snapshots_latest ON analysis_snapshots (is_latest, created_at);
CREATE TABLE analysis_jobs (
\tjob_id VARCHAR(100) NOT NULL,
\tagent_id VARCHAR(100),
\tstatus VARCHAR(50) NOT NULL,
\tscheduled_at DATETIME NOT NULL,
\tstarted_at DATETIME,
\tcompleted_at DATETIME,
\tanalysis_period_start DATETIME,
\tanalysis_period_end DATETIME,
\terror_message TEXT,
\tPRIMARY KEY (job_id)
);
CREATE INDEX idx_jobs_status ON analysis_jobs (status);
CREATE INDEX idx_jobs_scheduled ON analysis_jobs (scheduled_at);
CREATE TABLE large_trades (
\tid INTEGER NOT NULL,
\tdex VARCHAR(50) NOT NULL,
\tsymbol VARCHAR(50) NOT NULL,
\tprice FLOAT NOT NULL,
\tquantity FLOAT NOT NULL,
\tquote_quantity FLOAT NOT NULL,
\tside VARCHAR(10) NOT NULL,
\ttimestamp DATETIME NOT NULL,
\ttrade_id VARCHAR(200) NOT NULL,
\tPRIMARY KEY (id)
);
CREATE INDEX idx_large_trades_time ON large_trades (timestamp);
"""

#: cycles between two simulated trade-history analyses of an agent
ANALYSIS_EVERY = 20
#: closed trades an analysis needs (the backend's ``min_trades_required`` is 5-10)
ANALYSIS_MIN_TRADES = 5
_CATEGORIES = ("entry_timing", "exit_timing", "position_sizing", "risk_management", "market_conditions",
               "leverage_usage")
# a few rows get their ids out of time order, as the backend's fire-and-forget writes do (Q8)
_SWAP_EVERY = 7


def _iso_text(ns: int, tz: tzinfo) -> str:
    # what REST writes: the stored local time, ISO with a "T", fraction dropped when zero
    text = local_text(ns, tz).replace(" ", "T")
    return text[:-7] if text.endswith(".000000") else text


def _hex(*parts: Any) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:12]


class InsightBook:
    """Deterministic trade-history insights of the simulated agents.

    Every :data:`ANALYSIS_EVERY` cycles an agent with at least
    :data:`ANALYSIS_MIN_TRADES` closed trades gets an analysis job that writes two
    insights from its trades so far (win rate by side, hold times, leverage) and
    deprecates the previous ones, as the backend's analysis scheduler does. The
    insights depend only on the agent's history, never on when :meth:`update` runs.

    Call :meth:`update` on the thread that advances the world.
    """

    def __init__(self, tz: tzinfo = timezone.utc) -> None:
        self.tz = tz
        #: insight dicts (REST shape, times as ns) per agent, oldest first
        self.insights: dict[str, list[dict]] = {}
        #: job dicts per agent
        self.jobs: dict[str, list[dict]] = {}
        self._next_run: dict[str, int] = {}

    def update(self, world: World) -> None:
        """Run the analyses that are due."""
        for a, ag in world.agents.items():
            due = self._next_run.get(a, ANALYSIS_EVERY)
            while ag.cycle >= due:
                rec = next((r for r in ag.decision_log if r["cycle_number"] >= due), None)
                if rec is None:  # that cycle failed and none after it is logged yet
                    break
                self._analyse(a, ag, due, _ns_of(rec["timestamp"]))
                due += ANALYSIS_EVERY
            self._next_run[a] = due

    def _analyse(self, agent_id: str, ag: Any, cycle: int, at: int) -> None:
        trades = [t for t in ag.closed_trades if t.close_time is not None and t.close_time <= at]
        run = cycle // ANALYSIS_EVERY
        job_id = "job_" + _hex(agent_id, run)
        job = {"job_id": job_id, "agent_id": agent_id, "scheduled_at": at, "started_at": at,
               "completed_at": at + NS, "status": "completed", "error_message": None}
        self.jobs.setdefault(agent_id, []).append(job)
        if len(trades) < ANALYSIS_MIN_TRADES:
            job["status"] = "failed"
            job["error_message"] = (
                f"Not enough trades for analysis: {len(trades)} < {ANALYSIS_MIN_TRADES}."
            )
            return
        done = at + NS
        for old in self.insights.get(agent_id, []):
            if old["is_active"]:
                old["is_active"] = False
                old["deprecated_at"] = done
        pnl = [t.pnl_usdt * (t.leverage or 1) for t in trades]  # Q2: the backend's P&L
        wins = [p for p in pnl if p > 0]
        win_rate = len(wins) / len(pnl)
        longs = [p for t, p in zip(trades, pnl) if t.side == "long"]
        shorts = [p for t, p in zip(trades, pnl) if t.side == "short"]
        holds = [(t.close_time - t.open_time) / NS / 60 for t in trades if t.open_time is not None]
        lev = [t.leverage for t in trades if t.leverage]
        # ROMA-01's synthetic trade ids: agent, symbol and the local open time
        ids = [f"{agent_id}_{t.symbol}_{_iso_text(t.open_time, self.tz)}" for t in trades[-6:]
               if t.open_time is not None]
        better = "long" if sum(longs) >= sum(shorts) else "short"
        cat1 = _CATEGORIES[run % 3]  # entry_timing, exit_timing, position_sizing in turn
        out = [
            {
                "category": cat1,
                "title": f"{better.capitalize()} trades carry the results ({win_rate:.0%} win rate)",
                "summary": (
                    f"Over {len(trades)} closed trades, longs made {sum(longs):+.2f} USDT and shorts "
                    f"{sum(shorts):+.2f} USDT."
                ),
                "detailed_findings": f"{len(longs)} longs, {len(shorts)} shorts; median hold "
                                     f"{statistics.median(holds) if holds else 0:.1f} min.",
                "recommendations": [f"Favour {better} setups when the score is marginal",
                                    "Re-check the thesis before adding to a losing position"],
                "confidence_score": round(0.7 + 0.2 * abs(win_rate - 0.5) * 2, 4),
            },
            {
                "category": "leverage_usage" if run % 2 else "risk_management",
                "title": f"Average leverage {statistics.fmean(lev) if lev else 0:.1f}x",
                "summary": f"Leverage ranged {min(lev, default=0)}x-{max(lev, default=0)}x; "
                           f"the worst trade lost {min(pnl):.2f} USDT.",
                "detailed_findings": "Losses grow with leverage on volatile symbols.",
                "recommendations": ["Cap leverage at 5x on volatile symbols", "Keep stops within 2 ATR"],
                "confidence_score": 0.65 if run % 3 == 2 else 0.78,  # some below the REST cut of 0.7
            },
        ]
        for j, d in enumerate(out):
            d.update(
                insight_id="ins_" + _hex(agent_id, run, j),
                agent_id=agent_id,
                created_at=done,
                deprecated_at=None,
                is_active=True,
                supporting_trade_ids=ids,
            )
            self.insights.setdefault(agent_id, []).append(d)

    def rest(self, agent_id: str | None, limit: int = 10, tz: tzinfo | None = None) -> list[dict]:
        """The REST ``/insights`` items (active, confidence >= 0.7, newest first), times
        naive in ``tz`` (default the book's)."""
        tz = self.tz if tz is None else tz
        rows = [d for a, lst in self.insights.items() if agent_id in (None, a) for d in lst]
        rows = [d for d in rows if d["is_active"] and d["confidence_score"] >= 0.7]
        rows.sort(key=lambda d: d["created_at"], reverse=True)
        out = []
        for d in rows[:limit]:
            created = d["created_at"]
            out.append({
                "insight_id": d["insight_id"], "agent_id": d["agent_id"],
                "analysis_period_start": _iso_text(created - 30 * 86_400 * NS, tz),
                "analysis_period_end": _iso_text(created, tz),
                "created_at": _iso_text(created, tz), "category": d["category"], "title": d["title"],
                "summary": d["summary"], "detailed_findings": d["detailed_findings"],
                "recommendations": d["recommendations"], "confidence_score": d["confidence_score"],
                "supporting_trade_ids": d["supporting_trade_ids"], "trade_count": len(d["supporting_trade_ids"]),
                "times_applied": 0, "effectiveness_score": None, "is_active": d["is_active"],
                "deprecated_at": None if d["deprecated_at"] is None else _iso_text(d["deprecated_at"], tz),
            })
        return out


def _ns_of(text: str) -> int:
    from ..core.times import parse_time

    ns = parse_time(text)
    assert ns is not None, text
    return ns


class StoreWriter:
    """Keeps a ROMA-01 SQLite store in step with a :class:`~roma_notebook.sim.market.World`.

    :meth:`collect` (on the thread that advances the world) turns what happened
    since the last call into rows; :meth:`write` (any thread) inserts them in
    one short transaction. A reader of the file sees each batch whole or not at all.

    Args:
        path: the database file; created with the backend's schema when missing.
            An existing file is appended to (it must have that schema).
        tz: the simulated backend host's zone: naive local times are written in it.

    Example:
        >>> import tempfile, pathlib
        >>> w = World(["gpt-5"], seed=1)
        >>> sw = StoreWriter(pathlib.Path(tempfile.mkdtemp()) / "r.db")
        >>> for _ in range(200): _ = w.step()
        >>> sw.write(sw.collect(w))["decision_logs"] > 0
        True
    """

    def __init__(self, path: Any, *, tz: Any = "UTC"):
        self.path = Path(os.fspath(path))
        self.tz = zone(tz)
        self.book = InsightBook(self.tz)
        self._cycles: dict[str, int] = {}
        self._trades: dict[str, int] = {}
        self._insights_written: set[str] = set()
        self._deprecated_written: set[str] = set()
        self._jobs_written: set[str] = set()
        self._n = 0  # rows ever collected, for the deterministic id swaps
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path)
        try:
            have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "decision_logs" not in have:
                con.executescript(SCHEMA)
            con.commit()
        finally:
            con.close()

    # -- on the world's thread

    def collect(self, world: World) -> dict[str, list[tuple]]:
        """Rows of everything new since the last call (call where the world advances)."""
        self.book.update(world)
        tz = self.tz
        out: dict[str, list[tuple]] = {"decision_logs": [], "equity_history": [], "trades": [],
                                       "analysis_insights": [], "deprecate": [], "analysis_jobs": []}
        for a, ag in world.agents.items():
            last = self._cycles.get(a, 0)
            recs = [r for r in ag.decision_log if r["cycle_number"] > last]
            eq = {p["cycle"]: p for p in ag.equity_history if p["cycle"] > last}
            for r in recs:
                ns = _ns_of(r["timestamp"])
                t = local_text(ns, tz)
                out["decision_logs"].append((ns, (
                    a, r["cycle_number"], t, r["chain_of_thought"],
                    json.dumps(r["decisions"]) if r["decisions"] else None,  # Q7: NULL, not []
                    json.dumps(r["account_state"]),
                    json.dumps(r["positions"]) if r["positions"] else None,
                )))
                p = eq.get(r["cycle_number"])
                if p is not None:
                    out["equity_history"].append((ns, (
                        a, t, p["cycle"], p["equity"], p["adjusted_equity"], p["gross_equity"],
                        p["unrealized_pnl"], p["pnl"], p["net_deposits"], p["external_cash_flow"],
                    )))
            if recs:
                self._cycles[a] = recs[-1]["cycle_number"]
            done = self._trades.get(a, 0)
            for tr in ag.closed_trades[done:]:
                lev = tr.leverage or 1
                out["trades"].append((tr.close_time, (
                    a, tr.symbol, tr.side, tr.entry_price, tr.close_price, tr.quantity, lev,
                    local_text(tr.open_time, tz), local_text(tr.close_time, tz), tr.pnl_pct,
                    tr.pnl_usdt * lev,  # Q2
                    # inserted a moment after the close, by SQLite's clock: UTC, whole seconds
                    local_text(tr.close_time + NS, timezone.utc, fraction=False),
                )))
            self._trades[a] = len(ag.closed_trades)
            for d in self.book.insights.get(a, []):
                if d["insight_id"] not in self._insights_written:
                    self._insights_written.add(d["insight_id"])
                    out["analysis_insights"].append((d["created_at"], (
                        d["insight_id"], a, d["category"], d["title"], d["summary"], d["detailed_findings"],
                        json.dumps(d["recommendations"]), d["confidence_score"], local_text(d["created_at"], tz),
                        None if d["deprecated_at"] is None else local_text(d["deprecated_at"], tz),
                        1 if d["is_active"] else 0, json.dumps(d["supporting_trade_ids"]),
                    )))
                    if d["deprecated_at"] is not None:
                        self._deprecated_written.add(d["insight_id"])
                elif d["deprecated_at"] is not None and d["insight_id"] not in self._deprecated_written:
                    self._deprecated_written.add(d["insight_id"])
                    out["deprecate"].append((0, (local_text(d["deprecated_at"], tz), d["insight_id"])))
            for j in self.book.jobs.get(a, []):
                if j["job_id"] not in self._jobs_written:
                    self._jobs_written.add(j["job_id"])
                    out["analysis_jobs"].append((j["scheduled_at"], (
                        j["job_id"], a, j["status"], local_text(j["scheduled_at"], tz),
                        local_text(j["started_at"], tz), local_text(j["completed_at"], tz), j["error_message"],
                    )))
        rows: dict[str, list[tuple]] = {}
        for name, items in out.items():
            items.sort(key=lambda x: x[0])
            if name in ("decision_logs", "equity_history", "trades"):
                items = self._swap_some(items)
            rows[name] = [r for _, r in items]
        return rows

    def _swap_some(self, items: list[tuple[int, tuple]]) -> list[tuple[int, tuple]]:
        # Insert order decides the ids: moving a row behind the next later one gives
        # the later row the smaller id, as the backend's out-of-order writes do (Q8).
        items = list(items)
        for i in range(len(items) - 1):
            if (self._n + i) % _SWAP_EVERY == _SWAP_EVERY - 1:
                j = next((k for k in range(i + 1, len(items)) if items[k][0] > items[i][0]), None)
                if j is not None:
                    items[i], items[j] = items[j], items[i]
        self._n += len(items)
        return items

    # -- any thread

    def write(self, rows: dict[str, list[tuple]]) -> dict[str, int]:
        """Insert rows from :meth:`collect` in one transaction; returns rows per table."""
        with self._lock:
            con = sqlite3.connect(self.path, timeout=30.0)
            try:
                with con:
                    con.executemany(
                        "INSERT INTO decision_logs (agent_id, cycle_number, timestamp, chain_of_thought, "
                        "decisions, account_state, positions) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        rows.get("decision_logs", []))
                    con.executemany(
                        "INSERT INTO equity_history (agent_id, timestamp, cycle, equity, adjusted_equity, "
                        "gross_equity, unrealized_pnl, pnl, net_deposits, external_cash_flow) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.get("equity_history", []))
                    con.executemany(
                        "INSERT INTO trades (agent_id, symbol, side, entry_price, close_price, quantity, leverage, "
                        "open_time, close_time, pnl_pct, pnl_usdt, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.get("trades", []))
                    con.executemany(
                        "INSERT INTO analysis_insights (insight_id, agent_id, category, title, summary, "
                        "detailed_findings, recommendations, confidence_score, created_at, deprecated_at, "
                        "is_active, supporting_trade_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        rows.get("analysis_insights", []))
                    con.executemany(
                        "UPDATE analysis_insights SET deprecated_at = ?, is_active = 0 WHERE insight_id = ?",
                        rows.get("deprecate", []))
                    con.executemany(
                        "INSERT INTO analysis_jobs (job_id, agent_id, status, scheduled_at, started_at, "
                        "completed_at, error_message) VALUES (?, ?, ?, ?, ?, ?, ?)", rows.get("analysis_jobs", []))
            finally:
                con.close()
        return {k: len(v) for k, v in rows.items()}


def write_store(
    path: Any,
    world: World | None = None,
    *,
    agents: Iterable[str] = ("deepseek-chat-v3.1", "qwen3-max"),
    seed: int = 0,
    cycles: int = 60,
    start_time: Any = None,
    tz: Any = "UTC",
    cycle_minutes: float = 3.0,
) -> Path:
    """Write a simulated world's history as a ROMA-01 SQLite store (a new file).

    Args:
        path: the ``.db`` file to create (must not exist).
        world: a :class:`~roma_notebook.sim.market.World` to write as it is; None
            simulates one (``agents``, ``seed``, ``start_time``,
            ``cycle_minutes``) until every agent has run ``cycles`` cycles.
        tz: the zone of the simulated backend host (naive local times).

    Returns:
        The path written.

    Raises:
        FileExistsError: ``path`` exists.

    Example:
        >>> import tempfile, pathlib, roma_notebook as rn
        >>> db = write_store(pathlib.Path(tempfile.mkdtemp()) / "roma_trading.db", cycles=5,
        ...                  tz="Asia/Shanghai")
        >>> bool(rn.load(db, tz="Asia/Shanghai").cycles.groupby("agent_id").size().min() >= 4)
        True
    """
    p = Path(os.fspath(path))
    if p.exists():
        raise FileExistsError(f"{p} exists; write_store makes a new store")
    if world is None:
        world = World(agents, seed=seed, start_time=start_time, cycle_minutes=cycle_minutes)
        while min(ag.cycle for ag in world.agents.values()) < cycles:
            world.step(emit_marks=False)
    writer = StoreWriter(p, tz=tz)
    writer.write(writer.collect(world))
    return p
