"""How numbers, times and actions look on screen, in one place.

The dashboard's HTML parts, its chart markers and the report's tables all format
through here, so a balance, a missing value or a long call reads and is coloured the
same everywhere. Parsing times is :mod:`roma_notebook.core.times`.

Example:
    >>> fmt_num(12345.678), fmt_num(float("nan")), fmt_num(3, 0, sign=True)
    ('12,345.68', '—', '+3')
    >>> action_tone("open_short"), action_color("close_long") == GREY
    (-1, True)
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "GREEN", "RED", "AMBER", "GREY", "MISSING", "is_missing", "fmt_num", "fmt_time",
    "cell_text", "sign_color", "action_tone", "action_color",
]

GREEN = "#1a9850"  # gains, long calls, buys
RED = "#d73027"  # losses, short calls, sells
AMBER = "#b8860b"
GREY = "#888"
MISSING = "—"  # what a missing value shows as


def is_missing(v: Any) -> bool:
    """None, pandas' NA/NaT or a float NaN."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:  # pragma: no cover - exotic scalars
        return False


def fmt_num(v: Any, digits: int = 2, sign: bool = False) -> str:
    """A number as text: thousands separators, fixed digits, ``—`` when missing, ``∞``.

    What is not a number comes back as text, HTML-escaped (these strings go into HTML).

    Example:
        >>> fmt_num(-float("inf")), fmt_num("<b>")
        ('−∞', '&lt;b&gt;')
    """
    if is_missing(v):
        return MISSING
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v), quote=True)
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    return f"{f:+,.{digits}f}" if sign else f"{f:,.{digits}f}"


def fmt_time(ts: Any, with_date: bool = False) -> str:
    """A timestamp as ``HH:MM:SS`` UTC (``MM-DD HH:MM:SS`` with ``with_date``).

    Example:
        >>> fmt_time(pd.Timestamp("2025-11-02T10:30:05Z"), with_date=True)
        '11-02 10:30:05'
    """
    if is_missing(ts):
        return MISSING
    ts = pd.Timestamp(ts)
    return ts.strftime("%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def cell_text(v: Any) -> str:
    """One cell of a report table: full timestamps, separators on integers, floats
    compact but exact enough to read (two decimals from 1,000 up, else 4 digits).

    Example:
        >>> cell_text(1234567.891), cell_text(0.012345), cell_text(7), cell_text(None)
        ('1,234,567.89', '0.01235', '7', '—')
    """
    if is_missing(v):
        return MISSING
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def sign_color(v: Any) -> str:
    """Green for a gain, red for a loss, the text colour otherwise."""
    if is_missing(v):
        return "inherit"
    f = float(v)
    return GREEN if f > 0 else RED if f < 0 else "inherit"


def action_tone(action: Any) -> int:
    """+1 for a long call (open long, buy), -1 for a short one, 0 for the rest:
    closing is neither a bullish nor a bearish call, and hold/wait say nothing."""
    a = str(action or "").lower()
    if "close" in a:
        return 0
    if "long" in a or a == "buy":
        return 1
    if "short" in a or a == "sell":
        return -1
    return 0


def action_color(action: Any) -> str:
    """The colour of an action: green long, red short, grey otherwise."""
    return {1: GREEN, -1: RED}.get(action_tone(action), GREY)
