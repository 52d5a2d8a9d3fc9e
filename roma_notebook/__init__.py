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
import sys as _sys
from importlib import abc as _abc
from importlib import import_module as _import_module
from importlib import util as _util
from typing import Any as _Any

from ._version import __version__

# A library never prints: without a handler of the user's, our log records go nowhere
# (Python's last-resort handler would write them into the current notebook cell).
_logging.getLogger("roma_notebook").addHandler(_logging.NullHandler())

#: public name -> the module that defines it (imported when the name is first used).
#: No module may share a public name: importing it would set the package attribute
#: to the module, hiding the function of that name.
_EXPORTS = {
    "RomaError": "core.errors",
    "ProtocolError": "core.errors",
    "ConnectionFailed": "core.errors",
    "AgentNotFound": "core.errors",
    "AuthenticationError": "core.errors",
    "connect": "live.stream",
    "AgentStream": "live.stream",
    "StreamGroup": "live.stream",
    "agents": "live.rest",
    "insights": "live.rest",
    "agent_analytics": "live.rest",
    "StoreError": "store.roma_store",
    "StoreLocked": "store.roma_store",
    "Simulator": "sim.simulator",
    "load": "store.loading",
    "Recording": "store.loading",
    "LoadWarning": "store.loading",
    "sample_recording": "store.samples",
    "metrics": "analysis.analytics",
    "report": "analysis.analytics",
    "equity": "analysis.analytics",
    "drawdown": "analysis.analytics",
    "round_trips": "analysis.analytics",
    "action_mix": "analysis.analytics",
    "hold_rate": "analysis.analytics",
    "decision_fills": "analysis.analytics",
    "pnl_by": "analysis.analytics",
    "compare": "analysis.skill",
    "Comparison": "analysis.skill",
    "decision_outcomes": "analysis.outcomes",
    "calibration": "analysis.outcomes",
    "audit": "analysis.audit_checks",
}

__all__ = [*_EXPORTS, "__version__"]

#: the layer subpackage of every module (docs/ARCHITECTURE.md). In 0.1 the package
#: was flat: ``roma_notebook.tables`` and the like still import, as the same module
#: object as ``roma_notebook.core.tables`` (see :class:`_FlatNames`).
_LAYER = {
    name: layer
    for layer, names in {
        "core": ("errors", "urls", "times", "protocol", "schema", "tables"),
        "live": ("loop", "stream", "rest", "backfill"),
        "store": ("recording", "recording_reader", "loading", "parquet", "roma_store", "dask_tables", "samples"),
        "analysis": ("analytics", "skill", "outcomes", "audit_checks", "roma_formulas"),
        "views": ("dashboard", "render_scheduler", "views_series", "views_html", "formatting", "zoom", "decimate"),
        "sim": ("simulator", "sim_sources", "market", "replay", "store_writer"),
    }.items()
    for name in names
}


class _FlatNames(_abc.MetaPathFinder, _abc.Loader):
    """Imports ``roma_notebook.<module>`` (the flat names of 0.1) as the module of its layer."""

    def find_spec(self, fullname: str, path: _Any = None, target: _Any = None) -> _Any:
        head, _, name = fullname.rpartition(".")
        if head != __name__ or name not in _LAYER:
            return None
        return _util.spec_from_loader(fullname, self)

    def create_module(self, spec: _Any) -> _Any:
        name = spec.name.rpartition(".")[2]
        return _import_module(f"{__name__}.{_LAYER[name]}.{name}")

    def exec_module(self, module: _Any) -> None:
        pass  # the layer module ran already


if not any(isinstance(f, _FlatNames) for f in _sys.meta_path):
    _sys.meta_path.append(_FlatNames())


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        # a submodule (rn.core, rn.analytics, ...) as after an eager import
        try:
            return _import_module(f"{__name__}.{_LAYER[name]}.{name}" if name in _LAYER
                                  else f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
