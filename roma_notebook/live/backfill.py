"""History before the stream started: past decisions, equity and closed trades
fetched over REST when ``connect(..., backfill=True)``.

The fetch runs in a worker thread (blocking ``urllib``); the rows are appended on
the loop thread by the stream, which keeps the tables' single writer.
"""

from __future__ import annotations

from typing import Any

from ..core import protocol as P
from ..core.errors import ProtocolError, RomaError
from .rest import get_json

__all__ = ["fetch_backfill", "BACKFILL_LIMITS"]

#: how much history is kept per endpoint (the newest). ``equity-history`` is asked
#: for without a limit: the current backend's ``limit=N`` keeps the OLDEST N
#: points (docs/roma01.md, Q5), so the newest are cut here instead.
BACKFILL_LIMITS = {"decisions": 200, "equity-history": 2000, "trades": 500}


def _decision_only(rec: Any) -> tuple[Any, ...]:
    events, problems = P.decision_record_events(rec)
    if problems:
        raise ProtocolError("bad_field", "; ".join(problems))
    return tuple(e for e in events if e.kind == "decision")


def fetch_backfill(
    base: str, agent_id: str, token: str | None = None, timeout: float = 10.0
) -> tuple[list[Any], list[str]]:
    """Fetch and convert an agent's REST history.

    Returns:
        (events sorted by time, problems): each problem is a text for an
        ``errors`` row; one failing endpoint does not stop the others.
    """
    from urllib.parse import quote

    root = f"/api/agents/{quote(agent_id, safe='')}"
    events: list[Any] = []
    problems: list[str] = []
    convert = {
        # equity-history is the account series; the records' account_state would repeat it
        "decisions": _decision_only,
        "equity-history": lambda r: (P.equity_point_event(r),),
        "trades": lambda r: (P.closed_trade_from_dict(r),),
    }
    for name, limit in BACKFILL_LIMITS.items():
        # every generation returns the whole series without a limit
        params = None if name == "equity-history" else {"limit": limit}
        try:
            data = get_json(base, f"{root}/{name}", params, token=token, timeout=timeout)
        except RomaError as exc:
            problems.append(f"backfill {name}: {exc}")
            continue
        if not isinstance(data, list):
            problems.append(f"backfill {name}: expected a list, got {type(data).__name__}")
            continue
        got: list[Any] = []
        for i, rec in enumerate(data):
            try:
                got.extend(convert[name](rec))
            except ProtocolError as exc:
                problems.append(f"backfill {name}[{i}]: {exc}")
        if name == "equity-history" and len(got) > limit:
            got.sort(key=lambda e: (e.timestamp is not None, e.timestamp or 0))
            got = got[-limit:]  # the newest
        events.extend(got)
    # time order; rows without a time keep their relative order at the end
    events.sort(key=lambda e: (e.timestamp is None, e.timestamp or 0))
    return events, problems
