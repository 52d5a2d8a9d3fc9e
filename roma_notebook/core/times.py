"""Times, in one place: parsing and formatting instants as the library and ROMA-01 write them.

Inside the library every instant is an int of nanoseconds since the epoch, UTC (what
``datetime64[ns, UTC]`` columns hold). Text comes in three forms: ISO 8601 with a zone
or ``Z`` (the documented protocol), zone-less ISO text (ROMA-01's logs and REST, written
in the backend host's local time; the library reads zone-less text as UTC unless told
the zone) and the naive local ``YYYY-MM-DD HH:MM:SS.ffffff`` of the current backend's
SQLite store. Display formatting (``HH:MM:SS`` in a table cell) is in
:mod:`roma_notebook.views.formatting`.

Example:
    >>> parse_time("2025-11-02T10:30:00Z") == to_ns("2025-11-02T10:30:00Z")
    True
    >>> format_time(1762079400_500000_000), iso_naive(1762079400_000000_000)
    ('2025-11-02T10:30:00.500000Z', '2025-11-02T10:30:00')
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["NS", "epoch_ns", "parse_time", "parse_local", "format_time", "to_ns", "iso_naive", "zone", "local_text"]

NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_ns(dt: datetime) -> int:
    """An aware datetime as int ns since the epoch (integer arithmetic: microseconds stay exact).

    Example:
        >>> epoch_ns(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=timezone.utc))
        1000005000
    """
    d = dt - _EPOCH
    return (d.days * 86_400 + d.seconds) * NS + d.microseconds * 1000


_time_cache: dict[str, int] = {}


def parse_time(value: Any) -> int | None:
    """ISO 8601 text to int ns UTC; zone-less times are taken as UTC.

    Returns None for anything unusable (the tables then use the receive time);
    a bad timestamp is never a reason to drop a frame.

    Example:
        >>> parse_time("2025-11-02T10:30:00Z")
        1762079400000000000
    """
    if type(value) is not str:
        return None
    # Fast path for "YYYY-MM-DDTHH:MM:SS.fffZ": the whole second repeats from frame
    # to frame and only the fraction changes, so cache the second, add the fraction.
    # Tried before _time_cache: such stamps are rarely repeated whole, and hashing
    # each for a lookup that misses cost ~0.2 us a frame.
    if len(value) > 21 and value[19] == "." and value[-1] == "Z":
        frac = value[20:-1]
        if len(frac) <= 9 and frac.isascii() and frac.isdigit():
            base = _second_cache.get(value[:19])
            if base is None:
                base = _parse_full(value[:19] + "Z")
                if base is None:
                    return None
                if len(_second_cache) > 4096:
                    _second_cache.clear()
                _second_cache[value[:19]] = base
            ns = base + int(frac) * _FRACTION_SCALE[len(frac)]
            return ns if ns < _NS_MAX else None
    ns = _time_cache.get(value)
    if ns is not None:
        return ns
    ns = _parse_full(value)
    if ns is None:
        return None
    if len(_time_cache) > 4096:  # frames of one second share a stamp; keep it small
        _time_cache.clear()
    _time_cache[value] = ns
    return ns


_second_cache: dict[str, int] = {}
_FRACTION_SCALE = tuple(10 ** (9 - i) for i in range(10))  # ns per unit of an i-digit fraction


def _parse_full(value: str, zone_less: tzinfo = timezone.utc) -> int | None:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone_less)
    try:
        ns = epoch_ns(dt)
    except OverflowError:  # pragma: no cover - absurd offsets
        return None
    if not _NS_MIN < ns < _NS_MAX:
        # outside datetime64[ns] (years ~1677-2262): unusable, like any bad stamp
        return None
    return ns


# datetime64[ns] bounds; -2**63 itself is NaT
_NS_MIN = -(2**63)
_NS_MAX = 2**63


def parse_local(text: str, tz: tzinfo) -> int | None:
    """ISO 8601 text to int ns UTC, zone-less text taken in ``tz`` (a ROMA-01 host's
    local time); None when unusable.

    Example:
        >>> parse_local("2025-11-02 18:30:00", ZoneInfo("Asia/Shanghai")) == parse_time("2025-11-02T10:30:00Z")
        True
    """
    return _parse_full(text, tz)


def format_time(ns: int | None) -> str | None:
    """int ns UTC to ISO 8601 with ``Z`` (millisecond precision dropped when zero)."""
    if ns is None:
        return None
    s, rem = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(s, tz=timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if rem:
        text += f".{rem // 1000:06d}"
    return text + "Z"


def to_ns(value: int | float | str | datetime | None) -> int | None:
    """Int ns, epoch seconds (float), ISO text or datetime to int ns UTC.

    Example:
        >>> to_ns("2025-11-02T10:30:00Z")
        1762079400000000000
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("start_time must be a datetime, ISO string, or epoch number")
    if isinstance(value, int):
        # Heuristic: values this large are already nanoseconds.
        return value if abs(value) > 10**14 else value * NS
    if isinstance(value, float):
        return int(round(value * NS))
    if isinstance(value, str):
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return to_ns(dt)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return epoch_ns(value)
    raise TypeError(f"cannot interpret {value!r} as a time")


def iso_naive(ns: int) -> str:
    """int ns UTC to zone-less ISO 8601, as ROMA-01's logs and REST write times.

    The real backend writes ``datetime.now().isoformat()`` (server local time,
    no zone); the simulator writes UTC without a zone, which readers treat as UTC.

    Example:
        >>> iso_naive(1762079400000000000)
        '2025-11-02T10:30:00'
    """
    s, rem = divmod(ns, NS)
    dt = datetime.fromtimestamp(s, tz=timezone.utc).replace(tzinfo=None)
    text = dt.isoformat()
    if rem // 1000:
        text += f".{rem // 1000:06d}"
    return text


def zone(tz: Any) -> tzinfo:
    """A tzinfo from a zone name (``"Asia/Shanghai"``), a tzinfo, or None/``"UTC"``.

    Raises:
        ValueError: an unknown zone name.
    """
    if tz is None:
        return timezone.utc
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str):
        raise TypeError(f"tz must be a zone name or a tzinfo, got {type(tz).__name__}")
    if tz.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Berlin')") from None


def local_text(ns: int, tz: tzinfo, fraction: bool = True) -> str:
    """int ns UTC as the backend stores a DATETIME: naive local ``YYYY-MM-DD HH:MM:SS.ffffff``.

    Example:
        >>> local_text(1762079400_123456_000, ZoneInfo("Asia/Shanghai"))
        '2025-11-02 18:30:00.123456'
    """
    s, rem = divmod(ns, NS)
    dt = datetime.fromtimestamp(s, tz=timezone.utc).astimezone(tz)
    text = dt.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{rem // 1000:06d}" if fraction else text
