"""Zoom that shows detail: follow a FigureWidget's x-axis range and re-decimate it.

A decimated overview of a million rows has ~2,000 points; zooming into a tenth of
it in the browser would show ~200 of them, stretched. Here the user's zoom or pan
reaches Python as a plotly ``relayout`` (plotly 7's FigureWidget forwards every
``plotly_relayout`` event of the page to :meth:`plotly_relayout` on the kernel
side), :class:`XZoom` records the new range, and the dashboard's next refresh
(at most ``1/fps`` later) re-decimates only the rows inside it from the full
history, at most ``max_points`` per trace with every bucket's minimum and
maximum kept. A double-click (``autorange``) returns to the overview.

While zoomed the range stays where the user put it: rows arriving inside it are
drawn, in detail, at the next refresh; rows after it wait off-screen until the
user pans there or double-clicks. (Following the live edge is what the window
control is for; moving the axis under a user who is reading it would not do.)

Pure Python/numpy, no widgets: the dashboards connect it to their figure.

Example:
    >>> z = XZoom(("xaxis", "xaxis2"))
    >>> z.relayout({"xaxis.range[0]": "2025-11-02 10:00:00", "xaxis.range[1]": "2025-11-02 11:00"})
    True
    >>> z.range_ns
    (1762077600000000000, 1762081200000000000)
    >>> z.relayout({"xaxis.autorange": True}), z.range_ns
    (True, None)
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["XZoom", "zoom_slice"]

_RANGE_KEY = re.compile(r"^(?P<axis>xaxis\d*)\.range(?:\[(?P<i>[01])\])?$")


def _to_ns(v: Any) -> int | None:
    """A plotly date-axis value as epoch nanoseconds (UTC), or None when unusable.

    plotly.js reports date ranges as strings without a zone in the axis' own
    frame (our axes plot UTC epoch milliseconds); code may also pass numbers
    (epoch milliseconds, as the traces carry) or timestamps.
    """
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return int(round(f * 1e6)) if math.isfinite(f) and abs(f) < 9.2e15 else None
    try:
        ts = pd.Timestamp(v)
    except (TypeError, ValueError, OverflowError):
        return None
    if ts is pd.NaT:
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value)


class XZoom:
    """The x range the user looks at, from the figure's relayout events.

    Args:
        axes: the layout names of the x axes that move together (shared x axes
            of subplots report their ranges under either name).

    Attributes:
        range_ns: ``(start, end)`` epoch nanoseconds, or None for the overview.
        version: bumped on every change of ``range_ns`` (a refresh key).
    """

    def __init__(self, axes: tuple[str, ...] = ("xaxis",)):
        self.axes = tuple(axes)
        self.range_ns: tuple[int, int] | None = None
        self.version = 0
        self._lock = threading.Lock()  # relayouts come from the kernel thread

    def relayout(self, data: Mapping[str, Any]) -> bool:
        """Apply one relayout (plotly's ``{"xaxis.range[0]": ..., ...}``); True when the range changed.

        ``autorange`` (a double-click, the home button) returns to the overview;
        ranges of other axes (a y-only zoom) change nothing. Values that do not
        read as times are ignored.
        """
        if not isinstance(data, Mapping):
            return False
        new: list[int | None] | None = None
        auto = False
        for key, v in data.items():
            if not isinstance(key, str):
                continue
            axis, _, prop = key.partition(".")
            if axis not in self.axes:
                continue
            if prop == "autorange":
                auto = auto or bool(v)
                continue
            m = _RANGE_KEY.match(key)
            if m is None:
                continue
            if new is None:
                new = list(self.range_ns) if self.range_ns is not None else [None, None]
            if m.group("i") is None:
                if isinstance(v, (list, tuple)) and len(v) == 2:
                    new[0], new[1] = _to_ns(v[0]), _to_ns(v[1])
            else:
                new[int(m.group("i"))] = _to_ns(v)
        if new is not None and None not in new:
            lo, hi = sorted((int(new[0]), int(new[1])))
            target: tuple[int, int] | None = (lo, hi)
        elif auto:
            target = None
        else:
            return False
        with self._lock:
            if target == self.range_ns:
                return False
            self.range_ns = target
            self.version += 1
        return True

    def snapshot(self) -> tuple[int, tuple[int, int] | None]:
        """``(version, range_ns)`` read together: a refresh draws the range it keys on
        (read apart, a relayout landing between them would label the old range new)."""
        with self._lock:
            return self.version, self.range_ns

    def reset(self) -> bool:
        """Back to the overview (the caller also tells the figure to autorange)."""
        with self._lock:
            if self.range_ns is None:
                return False
            self.range_ns = None
            self.version += 1
        return True


def zoom_slice(x: np.ndarray, monotonic: bool, start_ns: int, end_ns: int) -> Any:
    """Rows of ``x`` inside ``[start_ns, end_ns]``, plus one on each side: a slice or a mask.

    The neighbours let the line run to the edges of the plot instead of stopping
    at the first and last point inside. Times that went backwards (``monotonic``
    False) get a boolean mask of the rows inside.

    Example:
        >>> zoom_slice(np.array([0, 10, 20, 30, 40]), True, 15, 25)
        slice(1, 4, None)
    """
    if not monotonic:
        return (x >= start_ns) & (x <= end_ns)
    a = int(np.searchsorted(x, start_ns, side="left"))
    b = int(np.searchsorted(x, end_ns, side="right"))
    return slice(max(a - 1, 0), min(b + 1, len(x)))
