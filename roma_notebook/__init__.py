"""roma_notebook: ROMA-01 AI trading agents, live and recorded, as pandas DataFrames.

Example:
    >>> import roma_notebook as rn
    >>> sim = rn.Simulator(agents=("deepseek-chat-v3.1",), seed=7, speed=600).start()  # doctest: +SKIP
    >>> stream = rn.connect("deepseek-chat-v3.1", url=sim.url)                           # doctest: +SKIP
    >>> stream.wait_for("decision", count=2).decisions                                  # doctest: +SKIP

Importing the package starts and loads next to nothing: each public name is
imported on first use (PEP 562), so ``import roma_notebook`` brings in neither the
simulator nor a websockets server, plotly or ipywidgets; the background loop
starts with the first stream, plotly/ipywidgets with the first dashboard.
"""

import logging as _logging
from importlib import import_module as _import_module
from typing import Any as _Any

from ._version import __version__

# A library never prints: without a handler of the user's, our log records go nowhere
# (Python's last-resort handler would write them into the current notebook cell).
_logging.getLogger("roma_notebook").addHandler(_logging.NullHandler())

#: public name -> the module that defines it (imported when the name is first used).
#: No module may share a public name: importing it would set the package attribute
#: to the module, hiding the function of that name.
_EXPORTS = {
    "RomaError": "errors",
    "ProtocolError": "errors",
    "ConnectionFailed": "errors",
    "AgentNotFound": "errors",
    "AuthenticationError": "errors",
    "connect": "stream",
    "AgentStream": "stream",
    "StreamGroup": "stream",
    "agents": "rest",
    "insights": "rest",
    "agent_analytics": "rest",
    "StoreError": "roma_store",
    "StoreLocked": "roma_store",
    "Simulator": "simulator",
    "load": "loading",
    "Recording": "loading",
    "LoadWarning": "loading",
    "sample_recording": "samples",
    "metrics": "analytics",
    "report": "analytics",
    "equity": "analytics",
    "drawdown": "analytics",
    "round_trips": "analytics",
    "action_mix": "analytics",
    "hold_rate": "analytics",
    "decision_fills": "analytics",
    "pnl_by": "analytics",
    "compare": "skill",
    "Comparison": "skill",
    "decision_outcomes": "outcomes",
    "calibration": "outcomes",
    "audit": "audit_checks",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        # a submodule (rn.protocol, rn.analytics, ...) as after an eager import
        try:
            return _import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
