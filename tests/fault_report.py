"""What the fault tests measured, as the README's table.

Each fault test calls :func:`record` with what it injected, the frames the server
sent (good and bad, counted by the server) and what the client lost, counted: good
frames sent without their row in the client's table (scripted servers), or frames
the simulator sent, by its own per-connection count, that the client never received.
Where a count is not possible (a SIGKILLed server's count dies with it; a client
that stops itself leaves frames in flight) the test says what it counted instead,
or "not measured"; never a typed-in number. The line is printed (``pytest -s`` shows
it) and upserted into ``test-output/faults.md``, one row per fault, in a fixed order.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["record", "OUT"]

OUT = Path(__file__).resolve().parent.parent / "test-output" / "faults.md"

# table order: the order of the list
ORDER = [
    "server SIGKILL + restart",
    "network stall",
    "protocol-level bad frames",
    "invalid UTF-8 close reason",
    "blocking callback, queue overflow",
    "connection cap (HTTP 429)",
    "fatal: unknown agent",
    "fatal: bad token",
    "fatal: DNS failure",
    "fatal: connection refused",
    "long run with max_rows",
    "ping flood + garbage (other client)",
    "concurrency stress",
    "recording writer SIGKILL",
]

_HEAD = (
    "| fault | injected | frames sent | rows lost |\n"
    "|---|---|---|---|\n"
)
_ROW = re.compile(r"^\| (?P<fault>[^|]+?) \| (?P<rest>.*)$")


def record(fault: str, injected: object, frames: object, lost: object) -> str:
    """Print and store one row; returns the row."""
    row = f"| {fault} | {injected} | {frames} | {lost} |"
    print(f"\nFAULT-SUMMARY {row}")
    rows: dict[str, str] = {}
    if OUT.exists():
        for line in OUT.read_text().splitlines()[2:]:
            m = _ROW.match(line)
            if m:
                rows[m.group("fault")] = line
    rows[fault] = row
    rank = {f: i for i, f in enumerate(ORDER)}
    ordered = sorted(rows, key=lambda f: (rank.get(f, len(ORDER)), f))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(_HEAD + "\n".join(rows[f] for f in ordered) + "\n")
    return row
