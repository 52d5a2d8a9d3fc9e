"""roma_notebook: ROMA-01 AI trading agents, live and recorded, as pandas DataFrames.

Example:
    >>> import roma_notebook as rn
    >>> sim = rn.Simulator(agents=("deepseek-chat-v3.1",), seed=7, speed=600).start()  # doctest: +SKIP
    >>> stream = rn.connect("deepseek-chat-v3.1", url=sim.url)                           # doctest: +SKIP
    >>> stream.wait_for("decision", count=2).decisions                                  # doctest: +SKIP

Importing the package starts nothing: the background loop starts with the first
stream, and plotly/ipywidgets load with the first dashboard.
"""

import logging as _logging

from .analytics import (
    action_mix,
    decision_fills,
    drawdown,
    equity,
    hold_rate,
    metrics,
    pnl_by,
    report,
    round_trips,
)
from .audit import audit
from .errors import AgentNotFound, AuthenticationError, ConnectionFailed, ProtocolError, RomaError
from .loading import LoadWarning, Recording, load
from .outcomes import calibration, decision_outcomes
from .rest import agent_analytics, agents, insights
from .roma_store import StoreError, StoreLocked
from .samples import sample_recording
from .simulator import Simulator
from .skill import Comparison, compare
from .stream import AgentStream, StreamGroup, connect

__version__ = "0.1.0"

# A library never prints: without a handler of the user's, our log records go nowhere
# (Python's last-resort handler would write them into the current notebook cell).
_logging.getLogger("roma_notebook").addHandler(_logging.NullHandler())

__all__ = [
    "RomaError",
    "ProtocolError",
    "ConnectionFailed",
    "AgentNotFound",
    "AuthenticationError",
    "connect",
    "AgentStream",
    "StreamGroup",
    "agents",
    "insights",
    "agent_analytics",
    "StoreError",
    "StoreLocked",
    "Simulator",
    "load",
    "Recording",
    "LoadWarning",
    "sample_recording",
    "metrics",
    "report",
    "equity",
    "drawdown",
    "round_trips",
    "action_mix",
    "hold_rate",
    "decision_fills",
    "pnl_by",
    "compare",
    "Comparison",
    "decision_outcomes",
    "calibration",
    "audit",
    "__version__",
]
