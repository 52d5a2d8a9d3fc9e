"""Recordings as replayable timelines, for ``Simulator(replay=...)``.

:func:`read_replay` reads a recording written by
:class:`~roma_notebook.store.recording.Recorder` (``.jsonl`` or ``.jsonl.gz``, several
headers allowed) into a :class:`Replay`: per agent, the frames it received with
their offsets in recording seconds since the recording's first frame. Lines
are read by the same tolerant reader :func:`roma_notebook.load` uses, so a torn
last line or a truncated gzip tail only loses that line; lines that are not
usable frames (damaged JSON, bad base64) are skipped and counted in
:attr:`Replay.skipped`. Frames themselves are kept verbatim, bad ones included:
they are what the client received.

:class:`ReplayPlayer` is the replay's state, with no I/O: which frame is due
next at a given ``speed``, what each agent's latest account, positions and
status frames are (what a newly connected client gets first), and the REST
bodies that can be derived from the frames played so far. The simulator drives
it from its event loop.

Example:
    >>> import roma_notebook as rn
    >>> rep = read_replay(rn.sample_recording())
    >>> rep.agents
    ('deepseek-chat-v3.1', 'qwen3-max', 'claude-sonnet-4.5', 'gpt-5')
    >>> offset, frame = rep.timelines["gpt-5"][0]
    >>> offset >= 0.0 and frame.startswith("{")
    True
"""

from __future__ import annotations

import errno
import json
import os
import types
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote

from ..core import protocol
from ..core.errors import ProtocolError
from ..store.recording_reader import NotARecording, RecordingLines, last_line, read_header, read_line

__all__ = ["Replay", "ReplayPlayer", "read_replay", "frame_kind", "REPLAY_NOT_AVAILABLE"]

#: body of the 404 answered by REST endpoints a replay cannot derive
REPLAY_NOT_AVAILABLE = {"detail": "not available in replay"}

# What a newly connected client gets first, in this order: the latest valid
# frame of each kind played so far (the simulator's live order, then the real
# backend's snapshot for recordings of that dialect).
_INITIAL_KINDS = ("account_update", "position_update", "agent_status", "snapshot")
# Kinds whose latest frame is kept: the above, plus decisions for REST.
_KEPT_KINDS = frozenset(_INITIAL_KINDS) | {"decision"}
# Reasons for skipped lines kept for the log; the count is exact.
_MAX_PROBLEMS = 20
_NS = 1_000_000_000


def frame_kind(frame: str | bytes) -> str | None:
    """The message kind of a *valid* frame, None for a bad or binary one.

    Args:
        frame: a frame's text (or bytes, for a binary frame).

    Returns:
        ``"account_update"``, ``"position_update"``, ``"decision"``,
        ``"trade_executed"``, ``"agent_status"``, ``"performance"``, ``"pong"``,
        ``"snapshot"`` (the real backend's typeless message), or None when
        :func:`roma_notebook.core.protocol.parse` rejects it.

    Example:
        >>> frame_kind('{"type": "pong"}'), frame_kind('{"type": "account_update"')
        ('pong', None)
    """
    if type(frame) is not str or not frame:
        return None
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    try:
        events = protocol.parse_object(obj)
    except ProtocolError:
        return None
    if not events:
        return "pong"
    # A documented message always has a type, a real-backend snapshot never.
    return events[0].kind if "type" in obj else "snapshot"


class Replay:
    """A recording read for replay: per-agent timelines of verbatim frames.

    Attributes:
        path: the recording file.
        agents: agent ids, those named in the headers first (in header order),
            then any others that have frames (first-seen order). An agent named
            only in a header has an empty timeline.
        events: every frame in file order as ``(offset_seconds, agent_id,
            frame, kind)``; ``frame`` is ``str`` (``bytes`` for a binary frame),
            ``kind`` is :func:`frame_kind`'s answer.
        url: server URL of the first header (never with a token), or None.
        skipped: lines that were neither frames, headers nor connection events,
            or were damaged (including a torn last line).
        problems: why lines were skipped (the first few) and any gzip damage.

    Offsets are recording seconds since the first frame, the receive-time gaps
    added up in file order; a gap that goes backwards (clocks stepping between
    appended sessions) counts as 0, so offsets never decrease.

    Example:
        >>> import roma_notebook as rn
        >>> rep = read_replay(rn.sample_recording())
        >>> rep.frames == sum(len(t) for t in rep.timelines.values())
        True
    """

    def __init__(
        self,
        path: Path,
        agents: Iterable[str],
        events: list[tuple[float, str, str | bytes, str | None]],
        *,
        url: str | None = None,
        skipped: int = 0,
        problems: Iterable[str] = (),
    ):
        self.path = path
        self.agents: tuple[str, ...] = tuple(agents)
        self.events = events
        self.url = url
        self.skipped = skipped
        self.problems = list(problems)
        self.timelines: dict[str, list[tuple[float, str | bytes]]] = {a: [] for a in self.agents}
        for off, agent, frame, _ in events:
            self.timelines[agent].append((off, frame))

    @property
    def frames(self) -> int:
        """Number of frames, all agents."""
        return len(self.events)

    @property
    def duration(self) -> float:
        """Recording seconds from the first frame to the last (0 with one frame or none)."""
        return self.events[-1][0] if self.events else 0.0

    def cycles(self, agent_id: str) -> int:
        """Valid ``decision`` frames of ``agent_id`` (what ``cycle_count`` reaches)."""
        return sum(1 for _, a, _, k in self.events if a == agent_id and k == "decision")

    def __repr__(self) -> str:
        return (
            f"Replay({str(self.path)!r}, agents={list(self.agents)!r}, frames={self.frames}, "
            f"duration={self.duration:.1f}s, skipped={self.skipped})"
        )


def read_replay(path: Any) -> Replay:
    """Read a recording into a :class:`Replay` (the whole file, into memory).

    Args:
        path: a ``.jsonl`` or ``.jsonl.gz`` recording (``str`` or ``os.PathLike``).

    Returns:
        The :class:`Replay`.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: ``path`` is a folder, not a roma_notebook recording, a
            newer recording version, or names no agent at all.
        TypeError: ``path`` is not a path.

    Example:
        >>> import roma_notebook as rn
        >>> read_replay(rn.sample_recording()).skipped
        0
    """
    if isinstance(path, (str, os.PathLike)):
        p = Path(os.fspath(path))
    else:
        raise TypeError(f"replay must be a path to a recording, got {type(path).__name__}")
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "recording to replay not found", str(p))
    if p.is_dir():
        raise ValueError(f"replay needs a recording file (.jsonl or .jsonl.gz), {str(p)!r} is a folder")
    # read_header() notes the header's URL and agent ids here
    ctx = types.SimpleNamespace(url=None, declared=[])
    events: list[tuple[float, str, str | bytes, str | None]] = []
    seen_agents: list[str] = []
    known: set[str] = set()
    problems: list[str] = []
    skipped = 0
    first = True
    offset = 0.0
    last_t: int | None = None
    lineno = 0

    def skip(why: str) -> None:
        nonlocal skipped
        skipped += 1
        if len(problems) < _MAX_PROBLEMS:
            problems.append(f"line {lineno}: {why}")

    def handle(line: str) -> None:
        nonlocal first, offset, last_t
        # Damage later on is skipped, but a first line that is not ours means
        # this is some other file.
        try:
            got = read_line(line, first=first)
        except NotARecording:
            got = None
        if first:
            first = False
            if got is None or (got[0] == "bad" and not got[2]):
                raise ValueError(
                    f"{str(p)!r} is not a roma_notebook recording (its first line is not a recording header)"
                )
        kind = got[0]
        if kind == "bad":
            skip(got[1])
        elif kind == "frame":
            _, t, agent, frame = got
            if not isinstance(frame, (str, bytes)):
                skip("frame is not a string")
                return
            if last_t is not None and t > last_t:
                offset += (t - last_t) / _NS
            last_t = t
            if agent not in known:
                known.add(agent)
                seen_agents.append(agent)
            events.append((offset, agent, frame, frame_kind(frame)))
        elif kind == "header":
            read_header(ctx, got[1], p)  # ValueError for another format or a newer version
        # connection events say what the recording client went through; a
        # replay serves its own connections, so they are not replayed

    reader = RecordingLines(p)
    for lines in reader:
        for line in lines:
            lineno += 1
            if line.strip():
                handle(line)
    tail, whole = last_line(reader.tail)
    if tail.strip():
        lineno += 1
        if whole:  # a last line without its newline is still a whole line
            handle(tail)
        else:
            skip(f"torn last line ({len(reader.tail)} bytes)")
    if reader.problem:
        problems.append(reader.problem)
    if first:
        raise ValueError(f"{str(p)!r} is empty: no recording header, no frames")
    agents = [a for a in ctx.declared if isinstance(a, str)]
    agents += [a for a in seen_agents if a not in agents]
    if not agents:
        raise ValueError(f"{str(p)!r} names no agent: nothing to replay")
    return Replay(p, agents, events, url=ctx.url, skipped=skipped, problems=problems)


class ReplayPlayer:
    """Where a replay stands: the next due frame, and each agent's state so far.

    No I/O and no clock of its own: the caller asks :meth:`take` for the frames
    due ``elapsed`` real seconds into the current pass and sends them. Every
    method is meant to be called from one thread (the simulator's loop).

    Real-time spacing: each frame follows the previous one (any agent) by its
    recorded gap divided by ``speed``, at most ``max_gap`` real seconds.

    Args:
        replay: what to play.
        agents: the agents served (a subset of ``replay.agents``, in any order).
        speed: recording seconds per real second.
        max_gap: cap, in real seconds, on any single gap.
        loop: start again from the beginning after the last frame.

    Example:
        >>> import roma_notebook as rn
        >>> player = ReplayPlayer(read_replay(rn.sample_recording()), ["gpt-5"], speed=1e9)
        >>> len(player.take(1.0)) == len(player.replay.timelines["gpt-5"])
        True
        >>> [json.loads(f)["type"] for f in player.initial_frames("gpt-5")]
        ['account_update', 'position_update', 'agent_status']
    """

    def __init__(self, replay: Replay, agents: Iterable[str], *, speed: float, max_gap: float = 5.0,
                 loop: bool = False):
        self.replay = replay
        self.agents = tuple(agents)
        served = set(self.agents)
        self.speed = float(speed)
        self.max_gap = float(max_gap)
        self.loop = bool(loop)
        # (due real seconds into a pass, recording offset, agent, frame, kind),
        # served agents only
        self.schedule: list[tuple[float, float, str, str | bytes, str | None]] = []
        due = 0.0
        prev: float | None = None
        for off, agent, frame, kind in replay.events:
            if agent not in served:
                continue
            if prev is not None:
                due += min((off - prev) / self.speed, self.max_gap)
            prev = off
            self.schedule.append((due, off, agent, frame, kind))
        self.total = {a: 0 for a in self.agents}
        for _, _, agent, _, _ in self.schedule:
            self.total[agent] += 1
        self.index = 0  # next frame of the schedule
        self.passes = 0  # completed passes
        self.state = "new"  # "new", "playing", "ended" (the driver sets "playing")
        self._serial = 0  # frames taken, all passes: orders the latest frames
        self.played = {a: 0 for a in self.agents}  # frames of the current pass
        self.cycles = {a: 0 for a in self.agents}  # valid decisions, all passes
        self.offset = {a: 0.0 for a in self.agents}  # recording offset of the last frame taken
        self.latest: dict[str, dict[str, tuple[int, str | bytes]]] = {a: {} for a in self.agents}

    @property
    def pass_seconds(self) -> float:
        """Real seconds one pass takes (first frame to last)."""
        return self.schedule[-1][0] if self.schedule else 0.0

    def take(self, elapsed: float, limit: int | None = None) -> list[tuple[str, str | bytes]]:
        """The frames due ``elapsed`` real seconds into this pass, as ``(agent, frame)``.

        Updates the agents' state as if they were sent. ``limit`` caps how many
        are taken at once (the rest stay due).
        """
        out: list[tuple[str, str | bytes]] = []
        sched = self.schedule
        i = self.index
        while i < len(sched) and sched[i][0] <= elapsed and (limit is None or len(out) < limit):
            _, off, agent, frame, kind = sched[i]
            i += 1
            self._serial += 1
            self.played[agent] += 1
            self.offset[agent] = off
            if kind in _KEPT_KINDS:
                self.latest[agent][kind] = (self._serial, frame)
                if kind == "decision":
                    self.cycles[agent] += 1
            out.append((agent, frame))
        self.index = i
        return out

    def next_due(self) -> float | None:
        """Real seconds into this pass when the next frame is due; None at the end of the pass."""
        return self.schedule[self.index][0] if self.index < len(self.schedule) else None

    def rewind(self) -> None:
        """Start the next pass (``loop``): latest frames and cycle counts are kept."""
        self.passes += 1
        self.index = 0
        self.played = {a: 0 for a in self.agents}

    def is_running(self, agent_id: str) -> bool:
        """True while the agent has frames left in this pass (always, with ``loop``)."""
        return self.loop or self.played[agent_id] < self.total[agent_id]

    def initial_frames(self, agent_id: str) -> list[str | bytes]:
        """What a newly connected client gets first: the latest valid account,
        positions and status frames played so far (or snapshot)."""
        latest = self.latest[agent_id]
        return [latest[k][1] for k in _INITIAL_KINDS if k in latest]

    # ------------------------------------------------------------ REST

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """``(status, body)`` for a REST GET of ``path`` (already authorised).

        ``/api/agents`` and ``/api/agents/{id}`` come from the frames played;
        ``/account`` and ``/positions`` from the latest account and positions
        frames (404 before the first one); everything else that the live
        simulator serves is 404 :data:`REPLAY_NOT_AVAILABLE`.
        """
        del query  # no endpoint served in replay takes parameters
        if path == "/api/agents":
            return 200, [self._summary(a) for a in self.agents]
        if path == "/api/market/prices":
            return 404, dict(REPLAY_NOT_AVAILABLE)
        if path.startswith("/api/agents/"):
            rest = path[len("/api/agents/"):].split("/")
            agent_id = unquote(rest[0])
            sub = "/".join(rest[1:])
            if agent_id not in self.latest:
                return 404, {"detail": f"Agent not found: {agent_id}"}
            if sub == "":
                return 200, self._status(agent_id)
            if sub == "account":
                return self._account(agent_id)
            if sub == "positions":
                return self._positions(agent_id)
            if sub in ("performance", "decisions", "equity-history", "trades"):
                return 404, dict(REPLAY_NOT_AVAILABLE)
        return 404, {"detail": "Not Found"}

    def _summary(self, a: str) -> dict:
        return {
            "id": a,
            "name": a,
            "is_running": self.is_running(a),
            "cycle_count": self.cycles[a],
            "runtime_minutes": round(self.offset[a] / 60.0, 4),
        }

    def _status(self, a: str) -> dict:
        last_decision = None
        got = self._latest_object(a, "decision")
        if got is not None and isinstance(got.get("timestamp"), str):
            last_decision = got["timestamp"]
        body = {"agent_id": a, **self._summary(a)}
        body.update(last_decision_time=last_decision, last_error=None)
        return body

    def _latest_object(self, a: str, kind: str) -> dict | None:
        got = self.latest[a].get(kind)
        if got is None:
            return None
        obj = json.loads(got[1])  # kept kinds are valid frames: this parses
        return obj if isinstance(obj, dict) else None

    def _newest(self, a: str, kinds: tuple[str, str]) -> str | None:
        have = [(self.latest[a][k][0], k) for k in kinds if k in self.latest[a]]
        return max(have)[1] if have else None

    def _account(self, a: str) -> tuple[int, Any]:
        kind = self._newest(a, ("account_update", "snapshot"))
        if kind is None:
            return 404, {"detail": f"No account frame replayed yet for agent {a}"}
        obj = self._latest_object(a, kind) or {}
        data = dict(obj.get("data") if kind == "account_update" else obj.get("account") or {})
        # Both key sets, like the live /account: the documented and the real backend's.
        for doc, real in (("total_balance", "total_wallet_balance"), ("unrealized_pnl", "total_unrealized_profit")):
            if doc in data and real not in data:
                data[real] = data[doc]
            elif real in data and doc not in data:
                data[doc] = data[real]
        return 200, data

    def _positions(self, a: str) -> tuple[int, Any]:
        kind = self._newest(a, ("position_update", "snapshot"))
        if kind is None:
            return 404, {"detail": f"No positions frame replayed yet for agent {a}"}
        obj = self._latest_object(a, kind) or {}
        data = obj.get("data") if kind == "position_update" else obj.get("positions")
        return 200, list(data or [])
