"""What the simulator serves: the seeded market or a recording, behind one interface.

:class:`~roma_notebook.sim.simulator.Simulator` is the server (sockets, REST routing,
tokens, byte budgets, dialect encoding, recording of sent frames) and drives one
:class:`FrameSource`: :class:`MarketSource` (a seeded
:class:`~roma_notebook.sim.market.World`, its decision cycles and the SQLite store
of :mod:`roma_notebook.sim.store_writer`) or :class:`ReplaySource` (a recording,
through :class:`~roma_notebook.sim.replay.ReplayPlayer`).

A source hands the server *items*: a protocol event (a frozen dataclass of
:mod:`roma_notebook.core.protocol`), which the server encodes in its dialect, or a
frame (``str``/``bytes``), which the server sends verbatim. It never touches a
socket and runs only on the simulator's loop thread.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import statistics
import time
from typing import Any, Callable, Sequence, TypeVar
from urllib.parse import unquote

from ..core import protocol
from .market import SPECS, SYMBOLS, World
from .replay import Replay, ReplayPlayer
from ..core.times import NS, iso_naive

__all__ = ["FrameSource", "MarketSource", "ReplaySource", "Item", "Emit"]

log = logging.getLogger("roma_notebook.simulator")

#: a protocol event (the server encodes it) or a frame (sent as it is)
Item = Any
#: how a source hands the server what is due: ``[(agent_id, item), ...]``, in order
Emit = Callable[[Sequence[tuple[str, Item]]], None]
T = TypeVar("T")
_UTC = datetime.timezone.utc

# Mark-price updates go out at most this often per agent in real time, so a
# high speed thins them out instead of flooding clients.
_MIN_REAL_MARK_INTERVAL = 0.25
# Real seconds of work one advance() may do before the server's loop runs again.
_STEP_BUDGET = 0.02
# Replay with loop=True: real seconds between the last frame and the next pass,
# so a very high speed replays the recording at most once a second.
_REPLAY_LOOP_PAUSE = 1.0


class FrameSource:
    """The interface the simulator's server drives; one thread (the server's loop) calls it.

    Lifecycle: :meth:`prepare` before the port is bound (what REST and new
    connections read must exist before the first request), :meth:`start` once it
    is bound, :meth:`advance` from the server's one driving task after
    :attr:`paused` is lifted, :meth:`background` tasks alongside, :meth:`close`
    and :meth:`farewell` at stop.
    """

    #: the agents served, in order
    agents: tuple[str, ...] = ()
    #: counters merged into ``Simulator.stats()`` (same keys for every source)
    counters: dict[str, int]

    def __init__(self) -> None:
        self.counters = {"ticks": 0, "time_slips": 0}

    # -- timeline

    def prepare(self) -> None:
        """Build the state served (before the port is bound)."""

    def start(self, emit: Emit) -> None:
        """The port is bound: emit what goes out first."""

    @property
    def paused(self) -> bool:
        """True until :meth:`play`: the server does not advance the source before."""
        return False

    def play(self) -> None:
        """Lift :attr:`paused`."""
        raise RuntimeError("play() is for a replay (Simulator(replay=...))")

    @property
    def state(self) -> str | None:
        """``"paused"``, ``"playing"`` or ``"ended"`` for a replay; None otherwise."""
        return None

    def advance(self, elapsed: float, emit: Emit) -> float | None:
        """Emit what is due ``elapsed`` real seconds after the start of play.

        Returns when, in the same seconds, the next item is due (the server's
        loop sleeps until then; a value ``<= elapsed`` means at once, after
        letting the clients' senders run), or None when nothing will ever be due.
        """
        raise NotImplementedError

    def background(self) -> list[Any]:
        """Coroutines the server runs as tasks while serving (cancelled at stop)."""
        return []

    def close(self) -> None:
        """At stop, after the background tasks ended: finish what they do."""

    def farewell(self) -> list[tuple[str, Item]]:
        """At stop: what a documented-dialect client gets before the close frame."""
        return []

    # -- what clients and REST read

    def initial_frames(self, agent_id: str) -> list[Item]:
        """What a newly connected documented-dialect client gets first."""
        raise NotImplementedError

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """``(status, body)`` of an authorised REST GET (``/`` and ``/health`` are the server's)."""
        raise NotImplementedError

    def now_ns(self) -> int | None:
        """The simulated clock (epoch ns), or None when the source has none."""
        return None

    # -- live state (only a simulated market has it)

    def account(self, agent_id: str, time_ns: int | None) -> protocol.AccountUpdate:
        """The agent's account now, stamped ``time_ns``."""
        raise RuntimeError("live account state needs the simulated market")

    def status(self, agent_id: str, time_ns: int | None) -> protocol.AgentStatus:
        """The agent's status now, stamped ``time_ns``."""
        raise RuntimeError("live agent status needs the simulated market")

    def snapshot_parts(self, agent_id: str) -> tuple[Any, Any, Any, Any]:
        """Account, positions, performance and status for a real-backend snapshot."""
        raise RuntimeError("snapshots need the simulated market")

    def set_running(self, agent_id: str, running: bool) -> Callable[[], list[tuple[str, Item]]]:
        """A call, for the loop thread, that stops or restarts an agent's cycles
        and returns what to send; raises at once where that does not apply."""
        raise RuntimeError("set_running() needs the simulated market; a replay plays what was recorded")

    def query(self, fn: Callable[[World], T]) -> Callable[[], T]:
        """A call of ``fn(world)`` for the loop thread; raises at once where there is no world."""
        raise RuntimeError("query() needs the simulated market; a replay has none")

    def repr_parts(self) -> tuple[str, str]:
        """What ``repr(Simulator)`` shows before the token and URL, and after the state."""
        return f"agents={list(self.agents)!r}", ""


# ---------------------------------------------------------------- the seeded market


class MarketSource(FrameSource):
    """A seeded :class:`~roma_notebook.sim.market.World` advanced in fixed ticks of simulated time.

    Values are deterministic: the same arguments give the same events whatever
    the host's load; only *when* they are due depends on the wall clock. At most
    one real second of ticks is caught up at once; beyond that simulated time
    slips (``counters["time_slips"]``). ``dialect`` selects the REST answers of
    the ROMA-01 generation served (``roma-current`` differs, docs/roma01.md).
    """

    def __init__(
        self,
        agents: Sequence[str],
        *,
        seed: int,
        speed: float,
        dialect: str,
        start_time: Any,
        cycle_minutes: float,
        tick_seconds: float,
        mark_interval: float,
        initial_balance: float,
        volatility_scale: float,
        error_rate: float,
        history: int,
        store: str | None,
        store_tz: Any,
        store_interval: float,
    ):
        super().__init__()
        from .store_writer import InsightBook

        self.agents = tuple(agents)
        self.seed = seed
        self.speed = speed
        self.dialect = dialect
        self._world_args = dict(
            seed=seed, cycle_minutes=cycle_minutes, tick_seconds=tick_seconds, initial_balance=initial_balance,
            volatility_scale=volatility_scale, error_rate=error_rate, history=history,
        )
        self._start_time = start_time
        self.tick_seconds = tick_seconds
        # Thin mark updates deterministically: a multiple of the tick that
        # depends only on the arguments, never on how the host keeps up.
        want = max(mark_interval, speed * _MIN_REAL_MARK_INTERVAL)
        self.mark_every = max(1, math.ceil(want / tick_seconds - 1e-9))
        self._real_per_tick = tick_seconds / speed
        # One real second of backlog at most: beyond it simulated time slips.
        self._max_lag = max(1, math.ceil(1.0 / self._real_per_tick))
        self._origin = 0.0  # play seconds of tick 0 (moves forward when time slips)
        self._done = 0  # ticks stepped
        #: the world served (after :meth:`prepare`)
        self.world: World | None = None
        self.store = store
        self._store_tz = store_tz
        self.store_interval = store_interval
        self._store_writer: Any = None
        self._insights = InsightBook(store_tz)  # REST insights (roma-current)

    def prepare(self) -> None:
        start = self._start_time
        if start is None:
            start = (time.time_ns() // NS) * NS
        self.world = World(self.agents, start_time=start, **self._world_args)

    def start(self, emit: Emit) -> None:
        if self.store is not None:
            from .store_writer import StoreWriter

            self._store_writer = StoreWriter(self.store, tz=self._store_tz)
            self._insights = self._store_writer.book  # REST and the store show the same insights
        emit(self._w.start_events())

    @property
    def _w(self) -> World:
        w = self.world
        if w is None:
            raise RuntimeError("the simulated market is not started")
        return w

    def advance(self, elapsed: float, emit: Emit) -> float:
        w = self._w
        rpt = self._real_per_tick
        due = int((elapsed - self._origin) / rpt)
        if due - self._done > self._max_lag:
            self._origin += (due - self._done - self._max_lag) * rpt
            due = self._done + self._max_lag
            self.counters["time_slips"] += 1
        budget_end = time.monotonic() + _STEP_BUDGET
        mark_every = self.mark_every
        while self._done < due:
            events = w.step(emit_marks=(w.ticks + 1) % mark_every == 0)
            self._done += 1
            self.counters["ticks"] += 1
            if events:
                emit(events)  # per tick: what is sent reads the world as of this tick
            if time.monotonic() > budget_end:
                break
        if self._done < due:
            return elapsed  # more is due: after the senders had a turn
        return self._origin + (self._done + 1) * rpt

    def background(self) -> list[Any]:
        return [] if self._store_writer is None else [self._store_loop()]

    async def _store_loop(self) -> None:
        """Write what happened to the SQLite store every ``store_interval`` s."""
        loop = asyncio.get_running_loop()
        w, sw = self._w, self._store_writer
        while True:
            await asyncio.sleep(self.store_interval)
            rows = sw.collect(w)  # here, where the world advances
            if any(rows.values()):
                try:  # the insert (disk I/O) off the loop
                    await loop.run_in_executor(None, sw.write, rows)
                except Exception:
                    log.exception("writing the store %s failed", self.store)

    def close(self) -> None:
        sw, w = self._store_writer, self.world
        if sw is not None and w is not None:
            try:  # the last rows: a stopped simulator leaves a complete store
                sw.write(sw.collect(w))
            except Exception:
                log.exception("writing the store %s failed", self.store)

    def farewell(self) -> list[tuple[str, Item]]:
        # Like the real platform: agents stop, then connections close.
        w = self._w
        out: list[tuple[str, Item]] = []
        for a in self.agents:
            ag = w.agents[a]
            ag.is_running = False
            out.append((a, ag.status(w.time_ns)))
        return out

    def initial_frames(self, agent_id: str) -> list[Item]:
        w = self._w
        ag = w.agents[agent_id]
        now = w.time_ns
        return [ag.exchange.account(now), ag.exchange.position_update(now), ag.status(now)]

    def now_ns(self) -> int:
        return self._w.time_ns

    def account(self, agent_id: str, time_ns: int | None) -> protocol.AccountUpdate:
        return self._w.agents[agent_id].exchange.account(time_ns)

    def status(self, agent_id: str, time_ns: int | None) -> protocol.AgentStatus:
        return self._w.agents[agent_id].status(time_ns)

    def snapshot_parts(self, agent_id: str) -> tuple[Any, Any, Any, Any]:
        ag = self._w.agents[agent_id]
        return ag.exchange.account(None), ag.exchange.position_update(None), ag.performance(20), ag.status(None)

    def set_running(self, agent_id: str, running: bool) -> Callable[[], list[tuple[str, Item]]]:
        return lambda: self._w.set_running(agent_id, running)

    def query(self, fn: Callable[[World], T]) -> Callable[[], T]:
        return lambda: fn(self._w)

    def repr_parts(self) -> tuple[str, str]:
        return (f"agents={list(self.agents)!r}, seed={self.seed}, speed={self.speed:g}, "
                f"dialect={self.dialect!r}"), ""

    # -- REST

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        w = self._w
        if path == "/api/agents":
            return 200, [ag.rest_summary() for ag in w.agents.values()]
        if path == "/api/market/prices":
            raw = (query.get("symbols") or [""])[-1]
            syms = [s.strip().upper() for s in raw.split(",") if s.strip()] or list(SYMBOLS)
            prices = w.market.prices()
            # Like the real backend: "BTC" plus "fullSymbol"; unknown symbols skipped.
            return 200, [{"symbol": SPECS[s].base, "fullSymbol": s, "price": prices[s]} for s in syms if s in prices]
        if path == "/api/insights/global" and self.dialect == "roma-current":
            self._insights.update(w)
            limit = int_param(query, "limit", 10)
            items = self._insights.rest(None, 10 if limit is None else limit, tz=_UTC)
            return 200, {"status": "success", "data": {"insights": items}}
        if path.startswith("/api/agents/"):
            rest = path[len("/api/agents/") :].split("/")
            agent_id = unquote(rest[0])
            sub = "/".join(rest[1:])
            ag = w.agents.get(agent_id)
            if ag is None:
                return 404, {"detail": f"Agent not found: {agent_id}"}
            try:
                if self.dialect == "roma-current":
                    answer = self._rest_current(ag, sub, query)
                    if answer is not None:
                        return answer
                if sub == "":
                    return 200, ag.rest_status()
                if sub == "account":
                    return 200, ag.exchange.rest_account()
                if sub == "positions":
                    return 200, ag.exchange.rest_positions()
                if sub == "performance":
                    lookback = int_param(query, "lookback", 20)
                    perf = ag.performance(lookback if lookback is not None else 20)
                    return 200, protocol.event_to_data(perf)
                if sub == "decisions":
                    limit = int_param(query, "limit", 20)
                    return 200, ag.rest_decisions(20 if limit is None else limit)
                if sub == "equity-history":
                    return 200, ag.rest_equity(int_param(query, "limit", None))
                if sub == "trades":
                    return 200, ag.rest_trades(int_param(query, "limit", None))
            except ValueError as exc:
                return 422, {"detail": str(exc)}
        return 404, {"detail": "Not Found"}

    def _rest_current(self, ag: Any, sub: str, query: dict[str, list[str]]) -> tuple[int, Any] | None:
        """REST bodies where today's backend differs (docs/roma01.md); None: as before."""
        if sub == "account":
            # the account as of the start of the last cycle, not live
            if ag.decision_log:
                acc = dict(ag.decision_log[-1]["account_state"])
            else:
                acc = ag.exchange.rest_account()
                acc.update(gross_total_balance=acc["total_wallet_balance"],
                           adjusted_total_balance=acc["total_wallet_balance"], net_deposits=0.0,
                           external_cash_flow=0.0)
            acc["initial_balance"] = ag.exchange.initial_balance
            return 200, acc
        if sub == "decisions":
            limit = int_param(query, "limit", 20)
            out = []
            for rec in ag.rest_decisions(20 if limit is None else limit):
                rec = dict(rec)
                # the store keeps NULL for an empty list, and REST says null (Q7)
                rec["decisions"] = rec["decisions"] or None
                rec["positions"] = rec["positions"] or None
                out.append(rec)
            return 200, out
        if sub == "equity-history":
            limit = int_param(query, "limit", None)
            pts = list(ag.equity_history)
            return 200, pts[:limit] if limit else pts  # the OLDEST N (Q5)
        if sub == "trades":
            limit = int_param(query, "limit", None)
            out = []
            for t in reversed(ag.closed_trades):  # newest first
                d = protocol.event_to_data(t)
                d["open_time"] = iso_naive(t.open_time)
                d["close_time"] = iso_naive(t.close_time)
                d["pnl_usdt"] = t.pnl_usdt * (t.leverage or 1)  # Q2: times leverage
                out.append(d)
                if limit and len(out) >= limit:
                    break
            return 200, out
        if sub == "insights":
            self._insights.update(self._w)
            limit = int_param(query, "limit", 10)
            items = self._insights.rest(ag.agent_id, 10 if limit is None else limit, tz=_UTC)
            return 200, {"status": "success", "data": {"insights": items}}
        if sub == "analytics":
            recent = list(ag.decision_log)[-100:]
            if any(not r["decisions"] for r in recent):
                # the backend iterates None here (Q7)
                return 500, {"detail": "'NoneType' object is not iterable"}
            return 200, _analytics(ag.closed_trades, recent)
        return None


def _analytics(trades: list, recent: list[dict]) -> dict:
    """The current backend's ``/analytics`` body (P&L x leverage, Q2)."""
    pnl = [t.pnl_usdt * (t.leverage or 1) for t in trades]
    wins = [p for p in pnl if p > 0]
    losses = [p for p in pnl if p < 0]
    sizes = [t.entry_price * t.quantity for t in trades]
    holds = [(t.close_time - t.open_time) / NS / 60 for t in trades if t.open_time is not None]
    levs = [float(t.leverage) for t in trades if t.leverage]
    sides = [{p["side"] for p in (r["positions"] or [])} for r in recent]
    conf = [it["confidence"] * 100 for r in recent for it in r["decisions"] if "confidence" in it]
    n = len(recent) or 1

    def mean(xs: list) -> float:
        return float(statistics.fmean(xs)) if xs else 0.0

    def median(xs: list) -> float:
        return float(statistics.median(xs)) if xs else 0.0

    return {
        "total_trades": len(trades), "winning_trades": len(wins), "losing_trades": len(losses),
        "avg_trade_size": mean(sizes), "median_trade_size": median(sizes),
        "avg_hold_mins": mean(holds), "median_hold_mins": median(holds),
        "avg_leverage": mean(levs), "median_leverage": median(levs),
        "pct_long": 100.0 * sum("long" in s for s in sides) / n,
        "pct_short": 100.0 * sum("short" in s for s in sides) / n,
        "pct_flat": 100.0 * sum(not s for s in sides) / n,
        "win_rate": 100.0 * len(wins) / len(pnl) if pnl else 0.0,
        "expectancy": mean(pnl), "biggest_win": max(wins, default=0.0), "biggest_loss": min(losses, default=0.0),
        "avg_win": mean(wins), "avg_loss": mean(losses),
        "avg_confidence": mean(conf), "median_confidence": median(conf),
    }


# ---------------------------------------------------------------- a recording


class ReplaySource(FrameSource):
    """A recording's frames, verbatim, on one timeline (see :class:`~roma_notebook.sim.replay.ReplayPlayer`).

    Args:
        replay: what to play.
        agents: the agents served (a subset of ``replay.agents``).
        speed: recording seconds per real second.
        max_gap: the longest real pause between two frames.
        loop: start over after a 1 s pause at the end instead of ending.
        paused: wait for :meth:`play` before the first frame.
        batch: frames emitted at most per :meth:`advance` (the rest stay due).
    """

    def __init__(self, replay: Replay, agents: Sequence[str], *, speed: float, max_gap: float, loop: bool,
                 paused: bool, batch: int):
        super().__init__()
        self.replay = replay
        self.agents = tuple(agents)
        self.speed = speed
        self.player = ReplayPlayer(replay, self.agents, speed=speed, max_gap=max_gap, loop=loop)
        self._paused = bool(paused)
        self._batch = batch
        self._origin = 0.0  # play seconds at which this pass started
        self._rewind_at: float | None = None  # loop: play seconds of the next pass

    @property
    def paused(self) -> bool:
        return self._paused

    def play(self) -> None:
        self._paused = False

    @property
    def state(self) -> str:
        p = self.player
        if p.state == "new":
            return "paused" if self._paused else "playing"
        return p.state

    def advance(self, elapsed: float, emit: Emit) -> float | None:
        p = self.player
        if p.state == "new":
            self._begin()
        if self._rewind_at is not None:
            if elapsed < self._rewind_at:
                return self._rewind_at
            p.rewind()
            log.info("replay: starting pass %d", p.passes + 1)
            self._origin, self._rewind_at = elapsed, None
        batch = p.take(elapsed - self._origin, self._batch)
        emit(batch)
        if len(batch) == self._batch:
            return elapsed  # more are due: let senders and REST run first
        due = p.next_due()
        if due is not None:
            return self._origin + due
        if not p.loop:
            p.state = "ended"
            log.info("replay ended after %d frames; still serving, idle (Ctrl-C stops)", len(p.schedule))
            return None
        self._rewind_at = elapsed + _REPLAY_LOOP_PAUSE
        return self._rewind_at

    def _begin(self) -> None:
        p, r = self.player, self.replay
        p.state = "playing"
        log.info(
            "replaying %s: %d frames of %s, %.1f recording s in %.1f real s (speed %g)",
            r.path, len(p.schedule), ", ".join(self.agents), r.duration, p.pass_seconds, self.speed,
        )
        if r.skipped or r.problems:
            log.warning("replay: %d unusable line(s) of %s skipped: %s", r.skipped, r.path, "; ".join(r.problems[:3]))

    def initial_frames(self, agent_id: str) -> list[Item]:
        return self.player.initial_frames(agent_id)

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        return self.player.rest(path, query)

    def repr_parts(self) -> tuple[str, str]:
        return (f"replay={str(self.replay.path)!r}, agents={list(self.agents)!r}, speed={self.speed:g}, "
                f"loop={self.player.loop}"), f", replay_state={self.state!r}"


def replay_agents(replay: Replay, agents: Sequence[str] | None) -> tuple[str, ...]:
    """The agents to serve from ``replay``: all by default; a ValueError names those it lacks."""
    if agents is None:
        return replay.agents
    agents = tuple(agents)
    missing = [a for a in agents if a not in replay.agents]
    if missing:
        raise ValueError(
            f"agents {missing} are not in the recording {str(replay.path)!r}; it has {list(replay.agents)}"
        )
    return agents


def int_param(query: dict[str, list[str]], name: str, default: int | None) -> int | None:
    """The integer query parameter ``name``; a ValueError (REST 422) when it is not one."""
    vals = query.get(name)
    if not vals:
        return default
    try:
        return int(vals[-1])
    except ValueError:
        raise ValueError(f"query parameter {name} must be an integer, got {vals[-1]!r}") from None

