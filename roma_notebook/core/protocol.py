"""Sans-I/O codec of the ROMA-01 agent WebSocket, both dialects.

Text in, typed events out (:func:`parse`); events in, documented frames out
(:func:`encode`, :func:`encode_snapshot`). No sockets, threads, asyncio or pandas
here: the client, the recording loader and the simulator all go through this
module, so both ends agree by construction.

Dialects read:

1. documented: ``{"type", "timestamp", "data"}`` with ``account_update``,
   ``position_update``, ``decision``, ``trade_executed``, ``agent_status`` (and
   ``pong``, which yields nothing);
2. the real backend's 5-second snapshot ``{"timestamp": <loop seconds>,
   "account", "positions", "performance", "status"}``; its timestamp is event-loop
   time, not wall time, so its events carry ``timestamp=None`` and the tables use
   the receive time instead;
3. decision items with ``quantity``/``reason`` or
   ``position_size_usd``/``stop_loss``/``take_profit``/``reasoning``.

Times are carried as int nanoseconds since the epoch (UTC) or ``None``: cheap to
store in columnar buffers and exact to turn into ``datetime64[ns, UTC]``.

Example:
    >>> events = parse('{"type": "pong"}')
    >>> events
    ()
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, Union

from .errors import ProtocolError
from .times import format_time, parse_time  # public names of this module too
from .urls import redact_secrets

__all__ = [
    "ProtocolError",
    "MESSAGE_TYPES",
    "AccountUpdate",
    "Position",
    "PositionUpdate",
    "DecisionItem",
    "Decision",
    "TradeExecuted",
    "AgentStatus",
    "Performance",
    "ClosedTrade",
    "ServerError",
    "Event",
    "DIALECTS",
    "dialect_of",
    "parse",
    "parse_account",
    "parse_object",
    "parse_time",
    "format_time",
    "encode",
    "encode_snapshot",
    "encode_keepalive",
    "encode_error",
    "event_to_data",
]

NaN = math.nan
_INF = math.inf

MESSAGE_TYPES = (
    "account_update",
    "position_update",
    "decision",
    "trade_executed",
    "agent_status",
)


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """Account balances; ``timestamp`` in ns UTC or None."""

    kind: ClassVar[str] = "account_update"
    timestamp: int | None
    total_balance: float
    available_balance: float
    unrealized_pnl: float
    used_percentage: float
    #: ROMA-01's balance net of the deposits it infers (``adjusted_total_balance``,
    #: ``equity``); not the account value, kept beside it (docs/roma01.md)
    adjusted_balance: float = NaN


@dataclass(frozen=True, slots=True)
class Position:
    """One open position (not an event by itself)."""

    symbol: str
    side: str
    position_amt: float
    entry_price: float
    mark_price: float
    unrealized_profit: float
    pnl_percentage: float
    leverage: int | None
    liquidation_price: float


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """The full set of open positions (an empty tuple means flat)."""

    kind: ClassVar[str] = "position_update"
    timestamp: int | None
    positions: tuple[Position, ...]
    #: from a real backend's periodic snapshot (which never comes with fills)
    snapshot: bool = False


@dataclass(frozen=True, slots=True)
class DecisionItem:
    """One action inside a decision message, in either item shape."""

    action: str
    symbol: str | None
    quantity: float
    leverage: int | None
    reason: str | None
    position_size_usd: float
    stop_loss: float
    take_profit: float
    #: the model's stated confidence as a fraction 0..1 (``75`` is read as 0.75)
    confidence: float = NaN
    #: share of the position a close closes, in percent 0..100 (``0.5`` is read as 50)
    close_quantity_pct: float = NaN


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision cycle of an agent."""

    kind: ClassVar[str] = "decision"
    timestamp: int | None
    cycle: int | None
    agent_id: str | None
    ai_reasoning: str | None
    decisions: tuple[DecisionItem, ...]


@dataclass(frozen=True, slots=True)
class TradeExecuted:
    """A fill reported by the exchange."""

    kind: ClassVar[str] = "trade_executed"
    timestamp: int | None
    order_id: str | None
    symbol: str | None
    side: str | None
    quantity: float
    price: float
    leverage: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """Agent running state (documented message or the snapshot's ``status``)."""

    kind: ClassVar[str] = "agent_status"
    timestamp: int | None
    agent_id: str | None
    is_running: bool | None
    cycle_count: int | None
    last_decision_time: int | None
    name: str | None = None
    runtime_minutes: float = NaN


@dataclass(frozen=True, slots=True)
class Performance:
    """Performance metrics as the real backend reports them."""

    kind: ClassVar[str] = "performance"
    timestamp: int | None
    total_trades: int | None
    wins: int | None
    losses: int | None
    win_rate: float
    avg_profit: float
    avg_loss: float
    profit_factor: float
    sharpe_ratio: float
    max_drawdown: float
    total_pnl: float
    best_trade: float = NaN
    worst_trade: float = NaN


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A round trip with realised P&L (REST ``/trades``, ``trade_history.json``)."""

    kind: ClassVar[str] = "closed_trade"
    timestamp: int | None
    symbol: str | None
    side: str | None
    entry_price: float
    close_price: float
    quantity: float
    leverage: int | None
    open_time: int | None
    close_time: int | None
    pnl_usdt: float
    pnl_pct: float


@dataclass(frozen=True, slots=True)
class ServerError:
    """The current backend's ``{"type": "error", "message"}`` frame: an iteration of
    its send loop failed (exchange or database error); the connection stays open.

    ``message`` is the server's text with URL query strings (signed requests) and
    wallet-like hex redacted, so it is safe to show and store.
    """

    kind: ClassVar[str] = "server_error"
    timestamp: int | None
    message: str


Event = Union[
    AccountUpdate, PositionUpdate, Decision, TradeExecuted, AgentStatus, Performance, ClosedTrade,
    ServerError,
]


def _constructor(cls: type) -> Any:
    """A positional constructor of the frozen, slotted dataclass ``cls``, ~2x faster.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` once per
    field; this writes the slots through their descriptors. The object is the same
    (same type, fields, equality, hash). Used for the events parsed most often.
    """
    names = [f.name for f in fields(cls)]
    setters = {f"_set_{n}": getattr(cls, n).__set__ for n in names}
    body = "".join(f"    _set_{n}(obj, {n})\n" for n in names)
    source = f"def new({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n"
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, **setters}
    exec(source, namespace)
    return namespace["new"]


_new_account = _constructor(AccountUpdate)
_new_position = _constructor(Position)
_new_position_update = _constructor(PositionUpdate)
_new_decision_item = _constructor(DecisionItem)
_new_decision = _constructor(Decision)
_new_trade = _constructor(TradeExecuted)


# ---------------------------------------------------------------- field readers
# Each reader names the field it rejects: users see "bad_field: data.total_balance
# must be a number, got 'abc'" in the errors table.


def _num(obj: dict, key: str, where: str, allow_inf: bool = False) -> float:
    v: Any = obj.get(key)
    t = type(v)
    if t is float:
        if v - v == 0.0:  # finite; NaN and +-inf fail this cheaply
            return v
        if allow_inf and v in (_INF, -_INF):
            return v
        raise ProtocolError("bad_field", f"{where}.{key} must be a finite number, got {v!r}")
    if t is int:
        try:
            return float(v)
        except OverflowError:  # JSON ints are unbounded; 10**400 is no balance
            raise ProtocolError(
                "bad_field", f"{where}.{key} must be a finite number, got {_short(v)}"
            ) from None
    if v is None:
        return NaN
    if t is str:
        try:
            f = float(v)
        except ValueError:
            raise ProtocolError(
                "bad_field", f"{where}.{key} must be a number, got {_short(v)}"
            ) from None
        if math.isfinite(f) or (allow_inf and math.isinf(f)):
            return f
        raise ProtocolError("bad_field", f"{where}.{key} must be a finite number, got {_short(v)}")
    raise ProtocolError("bad_field", f"{where}.{key} must be a number, got {type(v).__name__}")


def _int(obj: dict, key: str, where: str) -> int | None:
    v = obj.get(key)
    t = type(v)
    if t is int:
        return v
    if v is None:
        return None
    if t is float and v.is_integer():
        return int(v)
    if t is str:
        try:
            return int(v)
        except ValueError:
            try:
                f = float(v)
            except ValueError:
                f = NaN
            if f.is_integer():
                return int(f)
    raise ProtocolError("bad_field", f"{where}.{key} must be an integer, got {_short(v)}")


def _str(obj: dict, key: str, where: str) -> str | None:
    v = obj.get(key)
    t = type(v)
    if t is str:
        return v
    if v is None:
        return None
    if t is int:  # order ids are often sent as numbers
        return str(v)
    raise ProtocolError("bad_field", f"{where}.{key} must be a string, got {type(v).__name__}")


def _req_str(obj: dict, key: str, where: str) -> str:
    v = _str(obj, key, where)
    if v is None:
        raise ProtocolError("bad_field", f"{where}.{key} is required")
    return v


def _bool(obj: dict, key: str, where: str) -> bool | None:
    v = obj.get(key)
    if v is None or type(v) is bool:
        return v
    if v in (0, 1) and type(v) is int:
        return bool(v)
    raise ProtocolError("bad_field", f"{where}.{key} must be a boolean, got {_short(v)}")


def _short(v: Any) -> str:
    if type(v) is str and len(v) > 60:
        v = v[:60]  # don't repr a 10 MB field just to cut it
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


# ---------------------------------------------------------------- parsing


def _account(d: Any, ts: int | None, where: str) -> AccountUpdate:
    if type(d) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(d).__name__}")
    # Real backend: total_wallet_balance / total_unrealized_profit; docs: total_balance / unrealized_pnl.
    total = d.get("total_balance")
    if total is None and "total_wallet_balance" in d:
        total_f = _num(d, "total_wallet_balance", where)
    else:
        total_f = _num(d, "total_balance", where)
    if d.get("unrealized_pnl") is None and "total_unrealized_profit" in d:
        upnl = _num(d, "total_unrealized_profit", where)
    else:
        upnl = _num(d, "unrealized_pnl", where)
    # decision logs' account_state carries ROMA-01's net figure beside the gross one
    adjusted = _num(d, "adjusted_total_balance", where) if "adjusted_total_balance" in d else NaN
    return _new_account(
        ts,
        total_f,
        _num(d, "available_balance", where),
        upnl,
        _num(d, "used_percentage", where),
        adjusted,
    )


def _position(p: Any, where: str) -> Position:
    if type(p) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(p).__name__}")
    return _new_position(
        _req_str(p, "symbol", where),
        _req_str(p, "side", where).lower(),
        _num(p, "position_amt", where),
        _num(p, "entry_price", where),
        _num(p, "mark_price", where),
        _num(p, "unrealized_profit", where),
        _num(p, "pnl_percentage", where),
        _int(p, "leverage", where),
        _num(p, "liquidation_price", where),
    )


def _positions(data: Any, ts: int | None, where: str, snapshot: bool = False) -> PositionUpdate:
    if type(data) is not list:
        raise ProtocolError("bad_field", f"{where} must be a list, got {type(data).__name__}")
    try:
        return _new_position_update(ts, tuple([_position(p, where) for p in data]), snapshot)
    except ProtocolError:
        # Name the item only when one is bad: formatting "data[i]" for every good
        # item costs more than reading it. Reading is pure, so it fails again.
        for i, p in enumerate(data):
            _position(p, f"{where}[{i}]")
        raise  # pragma: no cover - the loop above raised


def _decision_item(it: Any, where: str) -> DecisionItem:
    if type(it) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(it).__name__}")
    reason = _str(it, "reason", where)
    if reason is None:
        reason = _str(it, "reasoning", where)
    qty = _num(it, "quantity", where)
    if qty != qty and "close_quantity" in it:  # a close's absolute amount
        qty = _num(it, "close_quantity", where)
    return DecisionItem(
        _req_str(it, "action", where),
        _str(it, "symbol", where),
        qty,
        _int(it, "leverage", where),
        reason,
        _num(it, "position_size_usd", where),
        _num(it, "stop_loss", where),
        _num(it, "take_profit", where),
        _fraction(_num(it, "confidence", where)),
        _percent(_num(it, "close_quantity_pct", where)),
    )


# Models are asked for confidence 0..1 and close_quantity_pct 0..1 or 0..100, and
# nothing validates what they emit: one unit per column, whatever the model wrote.
def _fraction(v: float) -> float:
    return v / 100.0 if 1.0 < v <= 100.0 else v


def _percent(v: float) -> float:
    return v * 100.0 if 0.0 < v <= 1.0 else v


def _decision(d: Any, ts: int | None, where: str) -> Decision:
    if type(d) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(d).__name__}")
    items = d.get("decisions")
    if items is None:
        items = []
    elif type(items) is not list:
        raise ProtocolError("bad_field", f"{where}.decisions must be a list")
    cycle = _int(d, "cycle", where)
    if cycle is None:
        cycle = _int(d, "cycle_number", where)
    reasoning = _str(d, "ai_reasoning", where)
    if reasoning is None:
        reasoning = _str(d, "chain_of_thought", where)
    return Decision(
        ts,
        cycle,
        _str(d, "agent_id", where),
        reasoning,
        tuple(_decision_item(it, f"{where}.decisions[{i}]") for i, it in enumerate(items)),
    )


def _trade(d: Any, ts: int | None, where: str) -> TradeExecuted:
    if type(d) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(d).__name__}")
    side = _str(d, "side", where)
    return TradeExecuted(
        ts,
        _str(d, "order_id", where),
        _str(d, "symbol", where),
        side.lower() if side else side,
        _num(d, "quantity", where),
        _num(d, "price", where),
        _int(d, "leverage", where),
        _str(d, "status", where),
    )


def _status(d: Any, ts: int | None, where: str) -> AgentStatus:
    if type(d) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(d).__name__}")
    agent = _str(d, "agent_id", where)
    if agent is None:
        agent = _str(d, "id", where)
    last = d.get("last_decision_time")
    if last is not None and type(last) is not str:
        raise ProtocolError("bad_field", f"{where}.last_decision_time must be a string")
    return AgentStatus(
        ts,
        agent,
        _bool(d, "is_running", where),
        _int(d, "cycle_count", where),
        parse_time(last),
        _str(d, "name", where),
        _num(d, "runtime_minutes", where),
    )


def _performance(d: Any, ts: int | None, where: str) -> Performance:
    if type(d) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(d).__name__}")
    return Performance(
        ts,
        _int(d, "total_trades", where),
        _int(d, "wins", where),
        _int(d, "losses", where),
        _num(d, "win_rate", where),
        _num(d, "avg_profit", where),
        _num(d, "avg_loss", where),
        _num(d, "profit_factor", where, allow_inf=True),
        _num(d, "sharpe_ratio", where),
        _num(d, "max_drawdown", where),
        _num(d, "total_pnl", where),
        _trade_pnl(d, "best_trade", where),
        _trade_pnl(d, "worst_trade", where),
    )


def _trade_pnl(d: dict, key: str, where: str) -> float:
    # The real backend sends best/worst trade as {"symbol", "pnl"} (or null); a bare
    # number is accepted too. Only the P&L is kept.
    v = d.get(key)
    if type(v) is dict:
        return _num(v, "pnl", f"{where}.{key}")
    return _num(d, key, where, allow_inf=True)


def closed_trade_from_dict(d: Any, where: str = "trade") -> ClosedTrade:
    """Read one closed trade as REST ``/trades`` and ``trade_history.json`` give it."""
    if type(d) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(d).__name__}")
    open_t = parse_time(d.get("open_time"))
    close_t = parse_time(d.get("close_time"))
    side = _str(d, "side", where)
    return ClosedTrade(
        close_t,
        _str(d, "symbol", where),
        side.lower() if side else side,
        _num(d, "entry_price", where),
        _num(d, "close_price", where),
        _num(d, "quantity", where),
        _int(d, "leverage", where),
        open_t,
        close_t,
        _num(d, "pnl_usdt", where),
        _num(d, "pnl_pct", where),
    )


__all__.append("closed_trade_from_dict")

# message type -> reader(data, timestamp, where)
_DOCUMENTED: dict[str, Callable[[Any, int | None, str], Event]] = {
    "account_update": _account,
    "position_update": _positions,
    "decision": _decision,
    "trade_executed": _trade,
    "agent_status": _status,
    "performance": _performance,
}


def _reject_constant(name: str) -> float:
    # JSON has no NaN/Infinity; Python's json accepts them. Only profit_factor-like
    # fields may be infinite, so keep them as floats and let the field readers decide.
    return float(name)


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
try:
    from msgspec import DecodeError as _FastError
    from msgspec.json import Decoder as _FastDecoder

    _fast_loads = _FastDecoder().decode
except ImportError:  # pragma: no cover - msgspec is a dependency; stay correct without it
    _fast_loads = None  # type: ignore[assignment]
    _FastError = ValueError  # type: ignore[assignment,misc]
    _fast_typed = None
    _fast_account = None
    _fast_decision_or_fill = None
else:
    from msgspec import Struct as _Struct

    # Typed decoding of the messages streams send most (documented account and
    # position updates, agent status), straight into fields: no dict, no field readers. Strict
    # on purpose: any frame whose result could differ from parse_object's (a
    # missing, null, string or extra field, an out-of-range number,
    # a bool, a float leverage, another type) is rejected here and takes the
    # general path, which decides as it always did.
    class _AccountData(_Struct, forbid_unknown_fields=True):
        total_balance: float
        available_balance: float
        unrealized_pnl: float
        used_percentage: float

    class _AccountMsg(_Struct, tag_field="type", tag="account_update", forbid_unknown_fields=True):
        timestamp: str
        data: _AccountData

    class _PositionItem(_Struct, forbid_unknown_fields=True):
        symbol: str
        side: str
        position_amt: float
        entry_price: float
        mark_price: float
        unrealized_profit: float
        pnl_percentage: float
        leverage: int
        liquidation_price: float

    class _PositionMsg(_Struct, tag_field="type", tag="position_update", forbid_unknown_fields=True):
        timestamp: str
        data: list[_PositionItem]

    class _StatusData(_Struct, forbid_unknown_fields=True):
        agent_id: str
        is_running: bool
        cycle_count: int
        last_decision_time: str

    class _StatusMsg(_Struct, tag_field="type", tag="agent_status", forbid_unknown_fields=True):
        timestamp: str
        data: _StatusData

    _fast_typed = _FastDecoder(Union[_AccountMsg, _PositionMsg, _StatusMsg]).decode
    # the same decoder for account updates alone (parse_account)
    _fast_account = _FastDecoder(_AccountMsg).decode

    # Documented decisions and fills, as encode() writes them, the same way: a
    # field left out takes the general path's value for a missing one (None, or
    # NaN for a number); the fields only the general path reads (reasoning,
    # close_quantity, cycle_number, chain_of_thought), a number as a string or an
    # order id as a number, null numbers and any unknown field send the frame there.
    # A separate decoder: the loader's bulk path collects only _fast_typed's kinds.
    class _DecisionItemData(_Struct, forbid_unknown_fields=True):
        action: str
        symbol: Union[str, None] = None
        quantity: float = NaN
        leverage: Union[int, None] = None
        reason: Union[str, None] = None
        position_size_usd: float = NaN
        stop_loss: float = NaN
        take_profit: float = NaN
        confidence: float = NaN
        close_quantity_pct: float = NaN

    class _DecisionData(_Struct, forbid_unknown_fields=True):
        cycle: Union[int, None] = None
        agent_id: Union[str, None] = None
        ai_reasoning: Union[str, None] = None
        decisions: Union[list[_DecisionItemData], None] = None

    class _DecisionMsg(_Struct, tag_field="type", tag="decision", forbid_unknown_fields=True):
        timestamp: str
        data: _DecisionData

    class _TradeData(_Struct, forbid_unknown_fields=True):
        order_id: Union[str, None] = None
        symbol: Union[str, None] = None
        side: Union[str, None] = None
        quantity: float = NaN
        price: float = NaN
        leverage: Union[int, None] = None
        status: Union[str, None] = None

    class _TradeMsg(_Struct, tag_field="type", tag="trade_executed", forbid_unknown_fields=True):
        timestamp: str
        data: _TradeData

    _fast_decision_or_fill = _FastDecoder(Union[_DecisionMsg, _TradeMsg]).decode


@dataclass(frozen=True)
class TypedUpdates:
    """The typed decoder of documented account, position and status updates, for bulk
    readers (the recording loader) that put its messages into columns themselves.

    ``decode(frame)`` returns an ``account``, ``positions`` or ``status`` message (fields
    as the frame names them, ``data`` inside) or raises one of ``errors``; what it
    accepts, :func:`parse` reads to the same events, and whatever it rejects must take
    :func:`parse`.
    """

    decode: Callable[[Any], Any]
    account: type
    positions: type
    status: type
    errors: tuple[type[BaseException], ...]


#: None without msgspec (then every frame takes :func:`parse`)
TYPED_UPDATES: TypedUpdates | None = (
    None if _fast_typed is None
    else TypedUpdates(_fast_typed, _AccountMsg, _PositionMsg, _StatusMsg, (_FastError,))
)
__all__ += ["TypedUpdates", "TYPED_UPDATES"]

_scan = _decoder.scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__, not in the stubs


def parse(frame: str | bytes | bytearray | memoryview) -> tuple[Event, ...]:
    """Parse one WebSocket frame into events.

    Args:
        frame: the text of one frame. Binary frames are rejected.

    Returns:
        A tuple of events: one for a documented message, up to four for a real
        backend snapshot, none for ``pong``.

    Raises:
        ProtocolError: the frame is unusable; ``kind`` and ``detail`` say why.

    Example:
        >>> ev, = parse('{"type":"trade_executed","timestamp":"2025-11-02T10:30:05Z",'
        ...             '"data":{"order_id":"1","symbol":"BTCUSDT","side":"long",'
        ...             '"quantity":0.001,"price":68450.0,"leverage":10,"status":"filled"}}')
        >>> ev.price
        68450.0
    """
    if type(frame) is not str:
        if isinstance(frame, (bytes, bytearray, memoryview)):
            raise ProtocolError("binary", f"binary frame of {len(frame)} bytes (text expected)")
        raise ProtocolError("not_text", f"frame must be text, got {type(frame).__name__}")
    if not frame:
        raise ProtocolError("empty", "empty frame")
    # The typed decoder is tried only where the type names the front of the frame:
    # a failed attempt would cost every other message ~0.5 us.
    head = frame[:40]
    if _fast_typed is not None and (
        "account_update" in head or "position_update" in head or "agent_status" in head
    ):
        try:
            msg = _fast_typed(frame)
        except (_FastError, RecursionError, UnicodeEncodeError):
            pass
        else:
            return _from_typed(msg)
    elif _fast_decision_or_fill is not None and ("decision" in head or "trade_executed" in head):
        try:
            typed_msg = _fast_decision_or_fill(frame)
        except (_FastError, RecursionError, UnicodeEncodeError):
            pass
        else:
            return _from_typed_decision_or_fill(typed_msg)
    if _fast_loads is not None:
        # msgspec reads a frame several times faster than the stdlib and gives the
        # same values (big ints exact, same floats). What it rejects and the stdlib
        # accepts here (the bare Infinity/NaN the real backends send, lone
        # surrogates, numbers beyond float range), and bad frames, take the
        # stdlib path below, which decides as it always did.
        try:
            obj = _fast_loads(frame)
        # UnicodeEncodeError: a lone surrogate in the text itself (a recording's
        # "\ud800" escape decodes to one), which msgspec cannot take as UTF-8
        except (_FastError, RecursionError, UnicodeEncodeError):
            pass
        else:
            return parse_object(obj)
    try:
        # The scanner alone reads the usual frame (one object, nothing around it)
        # ~1 us faster than decode(); anything else goes through decode(), which
        # gives the same value or the same error.
        try:
            obj, end = _scan(frame, 0)
        except StopIteration:  # no value at 0: leading whitespace, or not JSON
            end = -1
        if end != len(frame):
            obj = _decoder.decode(frame)
    except RecursionError:
        raise ProtocolError("not_json", "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError
        raise ProtocolError("not_json", f"not JSON ({exc})") from None
    return parse_object(obj)


def parse_account(frame: Any) -> tuple[int | None, float, float, float, float] | None:
    """The values of a documented ``account_update`` frame, without building its event.

    ``(timestamp, total_balance, available_balance, unrealized_pnl,
    used_percentage)``, exactly those fields of the
    :class:`AccountUpdate` that :func:`parse` returns (its ``adjusted_balance``
    is NaN), for the frames its typed decoder takes; None for any other frame
    (:func:`parse` decides those).
    Building the event costs ~0.4 us, as much as decoding the frame: a writer
    that only stores the values (``Tables.ingest_many``) skips it.

    Example:
        >>> parse_account('{"type":"account_update","timestamp":"2025-11-02T10:30:00.5Z","data":'
        ...               '{"total_balance":1.0,"available_balance":2.0,"unrealized_pnl":3.0,"used_percentage":4.0}}')
        (1762079400500000000, 1.0, 2.0, 3.0, 4.0)
    """
    if _fast_account is None or type(frame) is not str or "account_update" not in frame[:40]:
        return None
    try:
        msg = _fast_account(frame)
    except (_FastError, RecursionError, UnicodeEncodeError):
        return None
    d = msg.data
    return (parse_time(msg.timestamp), d.total_balance, d.available_balance, d.unrealized_pnl, d.used_percentage)


def _from_typed(msg: Any) -> tuple[Event, ...]:
    """Events of a message the typed decoder accepted.

    Its floats are finite without a check: msgspec rejects bare NaN/Infinity and
    numbers beyond float range (the field readers' non-finite cases), which then
    take the general path.
    """
    ts = parse_time(msg.timestamp)
    if type(msg) is _AccountMsg:
        d = msg.data
        return (
            _new_account(ts, d.total_balance, d.available_balance, d.unrealized_pnl, d.used_percentage, NaN),
        )
    if type(msg) is _StatusMsg:
        st = msg.data
        return (
            AgentStatus(ts, st.agent_id, st.is_running, st.cycle_count, parse_time(st.last_decision_time), None, NaN),
        )
    return (
        _new_position_update(
            ts,
            tuple([
                _new_position(
                    p.symbol, p.side.lower(), p.position_amt, p.entry_price, p.mark_price,
                    p.unrealized_profit, p.pnl_percentage, p.leverage, p.liquidation_price,
                )
                for p in msg.data
            ]),
            False,
        ),
    )


def _from_typed_decision_or_fill(msg: Any) -> tuple[Event, ...]:
    """The event of a decision or fill the typed decoder accepted (see :func:`_from_typed`)."""
    ts = parse_time(msg.timestamp)
    d = msg.data
    if type(msg) is _TradeMsg:
        side = d.side
        return (
            _new_trade(ts, d.order_id, d.symbol, side.lower() if side else side, d.quantity, d.price,
                       d.leverage, d.status),
        )
    items = []
    if d.decisions:
        new_item = _new_decision_item
        for it in d.decisions:
            # the units _fraction and _percent make, inline (NaN stays NaN)
            conf = it.confidence
            if 1.0 < conf <= 100.0:
                conf = conf / 100.0
            pct = it.close_quantity_pct
            if 0.0 < pct <= 1.0:
                pct = pct * 100.0
            items.append(new_item(it.action, it.symbol, it.quantity, it.leverage, it.reason,
                                  it.position_size_usd, it.stop_loss, it.take_profit, conf, pct))
    return (_new_decision(ts, d.cycle, d.agent_id, d.ai_reasoning, tuple(items)),)


def parse_object(obj: Any) -> tuple[Event, ...]:
    """Like :func:`parse` for an already decoded JSON value."""
    if type(obj) is not dict:
        raise ProtocolError("not_object", f"JSON {type(obj).__name__} instead of an object")
    mtype = obj.get("type")
    if mtype is not None:
        handler = _DOCUMENTED.get(mtype) if type(mtype) is str else None
        if handler is None:
            current: Callable[[dict], tuple[Event, ...]] | None = (
                _CURRENT.get(mtype) if type(mtype) is str else None)
            if current is not None:
                return current(obj)
            if mtype == "pong":
                return ()
            raise ProtocolError("unknown_type", f"type {_short(mtype)} is not a known message type")
        if "data" not in obj:
            raise ProtocolError("bad_field", f"data is missing in a {mtype} message")
        return (handler(obj["data"], parse_time(obj.get("timestamp")), "data"),)
    return _snapshot(obj)


def _snapshot(obj: dict) -> tuple[Event, ...]:
    # Real backend snapshot: its timestamp is event-loop seconds, so rows use received_at.
    out: list[Event] = []
    if "account" in obj and obj["account"] is not None:
        out.append(_account(obj["account"], None, "account"))
    if "positions" in obj and obj["positions"] is not None:
        out.append(_positions(obj["positions"], None, "positions", True))
    if "performance" in obj and obj["performance"] is not None:
        out.append(_performance(obj["performance"], None, "performance"))
    if "status" in obj and obj["status"] is not None:
        out.append(_status(obj["status"], None, "status"))
    if not out:
        raise ProtocolError(
            "unknown_type", "object has no 'type' and none of account/positions/performance/status"
        )
    return tuple(out)


# The current backend (dialect 3): the snapshot typed "update", a "keepalive"
# carrying the status after every update or error, and "error" when an iteration
# failed. Their timestamps are event-loop seconds too: rows use received_at.
def _update(obj: dict) -> tuple[Event, ...]:
    return _snapshot(obj)


def _keepalive(obj: dict) -> tuple[Event, ...]:
    st = obj.get("status")
    if st is None:
        return ()  # liveness only
    return (_status(st, None, "status"),)


def _error(obj: dict) -> tuple[Event, ...]:
    msg = obj.get("message")
    if msg is None:
        msg = "(no message)"
    elif type(msg) is not str:
        msg = json.dumps(msg)[:2000]
    return (ServerError(None, redact_secrets(msg)),)


_CURRENT: dict[str, Callable[[dict], tuple[Event, ...]]] = {
    "update": _update, "keepalive": _keepalive, "error": _error,
}

#: the three generations a server may speak (see :func:`dialect_of`)
DIALECTS = ("documented", "roma-backend", "roma-current")


def dialect_of(frame: Any) -> str | None:
    """Which generation a frame comes from, or None when it does not tell.

    ``documented`` (typed messages of the API reference, ``pong``),
    ``roma-backend`` (the v1.1 backend's untyped snapshot) or ``roma-current``
    (``update``/``keepalive``/``error``). A client uses it on the first frames of
    a connection to decide whether the server may be sent anything at all.

    Example:
        >>> dialect_of('{"type": "keepalive", "timestamp": 12.5, "status": {}}')
        'roma-current'
    """
    if type(frame) is str:
        try:
            frame = _decoder.decode(frame)
        except (ValueError, RecursionError):
            return None
    if type(frame) is not dict:
        return None
    mtype = frame.get("type")
    if mtype is None:
        return "roma-backend" if any(k in frame for k in ("account", "positions", "performance", "status")) else None
    if mtype in _CURRENT:
        return "roma-current"
    if mtype in _DOCUMENTED or mtype == "pong":
        return "documented"
    return None


# ---------------------------------------------------------------- encoding


def _clean(v: Any) -> Any:
    if type(v) is float and not math.isfinite(v):
        return None if math.isnan(v) else v
    return v


def _drop_nan(d: dict) -> dict:
    return {k: _clean(v) for k, v in d.items() if not (type(v) is float and math.isnan(v))}


def event_to_data(event: Event) -> Any:
    """The documented ``data`` payload of an event (NaN fields left out)."""
    if isinstance(event, AccountUpdate):
        return _drop_nan(
            {
                "total_balance": event.total_balance,
                "available_balance": event.available_balance,
                "unrealized_pnl": event.unrealized_pnl,
                "used_percentage": event.used_percentage,
            }
        )
    if isinstance(event, PositionUpdate):
        return [
            {
                k: v
                for k, v in _drop_nan(
                    {
                        "symbol": p.symbol,
                        "side": p.side,
                        "position_amt": p.position_amt,
                        "entry_price": p.entry_price,
                        "mark_price": p.mark_price,
                        "unrealized_profit": p.unrealized_profit,
                        "pnl_percentage": p.pnl_percentage,
                        "leverage": p.leverage,
                        "liquidation_price": p.liquidation_price,
                    }
                ).items()
                if v is not None
            }
            for p in event.positions
        ]
    if isinstance(event, Decision):
        items = []
        for it in event.decisions:
            d = _drop_nan(
                {
                    "action": it.action,
                    "symbol": it.symbol,
                    "quantity": it.quantity,
                    "leverage": it.leverage,
                    "reason": it.reason,
                    "position_size_usd": it.position_size_usd,
                    "stop_loss": it.stop_loss,
                    "take_profit": it.take_profit,
                    "confidence": it.confidence,
                    "close_quantity_pct": it.close_quantity_pct,
                }
            )
            items.append({k: v for k, v in d.items() if v is not None})
        out: dict[str, Any] = {"cycle": event.cycle, "agent_id": event.agent_id,
                               "ai_reasoning": event.ai_reasoning}
        out["decisions"] = items
        return out
    if isinstance(event, TradeExecuted):
        return _drop_nan(
            {
                "order_id": event.order_id,
                "symbol": event.symbol,
                "side": event.side,
                "quantity": event.quantity,
                "price": event.price,
                "leverage": event.leverage,
                "status": event.status,
            }
        )
    if isinstance(event, AgentStatus):
        d = {
            "agent_id": event.agent_id,
            "is_running": event.is_running,
            "cycle_count": event.cycle_count,
            "last_decision_time": format_time(event.last_decision_time),
        }
        if event.name is not None:
            d["name"] = event.name
        if not math.isnan(event.runtime_minutes):
            d["runtime_minutes"] = event.runtime_minutes
        return d
    if isinstance(event, Performance):
        return _drop_nan(
            {
                "total_trades": event.total_trades,
                "wins": event.wins,
                "losses": event.losses,
                "win_rate": event.win_rate,
                "avg_profit": event.avg_profit,
                "avg_loss": event.avg_loss,
                "profit_factor": event.profit_factor,
                "sharpe_ratio": event.sharpe_ratio,
                "max_drawdown": event.max_drawdown,
                "total_pnl": event.total_pnl,
                "best_trade": event.best_trade,
                "worst_trade": event.worst_trade,
            }
        )
    if isinstance(event, ClosedTrade):
        return _drop_nan(
            {
                "symbol": event.symbol,
                "side": event.side,
                "entry_price": event.entry_price,
                "close_price": event.close_price,
                "quantity": event.quantity,
                "leverage": event.leverage,
                "open_time": format_time(event.open_time),
                "close_time": format_time(event.close_time),
                "pnl_usdt": event.pnl_usdt,
                "pnl_pct": event.pnl_pct,
            }
        )
    if isinstance(event, ServerError):
        return {"message": event.message}
    raise TypeError(f"not an event: {type(event).__name__}")


def encode(event: Event) -> str:
    """Serialise an event to one documented frame.

    Example:
        >>> encode(AccountUpdate(None, 1.0, 1.0, 0.0, 0.0))[:26]
        '{"type": "account_update",'
    """
    if isinstance(event, (ClosedTrade, ServerError)):
        raise TypeError(f"{event.kind} has no documented WebSocket message")
    data = event_to_data(event)  # first: it raises TypeError for non-events
    return json.dumps({"type": event.kind, "timestamp": format_time(event.timestamp), "data": data})


def encode_snapshot(
    loop_time: float,
    account: AccountUpdate,
    positions: PositionUpdate,
    performance: Performance,
    status: AgentStatus,
    *,
    typed: bool = False,
) -> str:
    """Serialise one real-backend snapshot, with its field names.

    The real backend names account keys ``total_wallet_balance`` and
    ``total_unrealized_profit``, omits ``pnl_percentage`` from positions, and writes
    ``profit_factor`` as the bare ``Infinity`` Python's json emits. ``typed=True``
    gives the current backend's ``{"type": "update", ...}`` (dialect 3); otherwise
    the v1.1 backend's untyped snapshot (dialect 2).
    """
    acc = _drop_nan(
        {
            "total_wallet_balance": account.total_balance,
            "available_balance": account.available_balance,
            "total_unrealized_profit": account.unrealized_pnl,
        }
    )
    pos = event_to_data(positions)
    for p in pos:
        p.pop("pnl_percentage", None)
    body: dict[str, Any] = {"type": "update"} if typed else {}
    body.update(
        timestamp=loop_time,
        account=acc,
        positions=pos,
        performance=event_to_data(performance),
        status=_backend_status(status),
    )
    return json.dumps(body)


def _backend_status(status: AgentStatus) -> dict:
    st = event_to_data(status)
    st.pop("last_decision_time", None)  # the real status object has none
    return st


def encode_keepalive(loop_time: float, status: AgentStatus) -> str:
    """The current backend's ``keepalive`` frame (sent after every update and error)."""
    return json.dumps({"type": "keepalive", "timestamp": loop_time, "status": _backend_status(status)})


def encode_error(loop_time: float | None, message: str) -> str:
    """The current backend's ``error`` frame: the failing iteration's exception text."""
    return json.dumps({"type": "error", "timestamp": loop_time, "message": message})


# ---------------------------------------------------------------- REST and log records


def decision_record_events(
    rec: Any, cycle_hint: int | None = None, default_ts: int | None = None
) -> tuple[tuple[Event, ...], list[str]]:
    """Events of one decision-log record (REST ``/decisions`` item or ``decision_*.json``).

    A record carries the decision (``cycle_number``, ``chain_of_thought``,
    ``decisions``) and the account and positions at that cycle. Each part is read
    on its own, so a bad ``account_state`` costs that row only.

    Args:
        rec: the decoded record.
        cycle_hint: cycle number to use when the body lacks one (from a file name).
        default_ts: time to use when the record has no usable ``timestamp``.

    Returns:
        (events, problems): the usable events and one text per unusable part.

    Raises:
        ProtocolError: the record is not an object.

    Example:
        >>> evs, problems = decision_record_events({"cycle_number": 3, "decisions": []})
        >>> evs[0].cycle, problems
        (3, [])
    """
    if type(rec) is not dict:
        raise ProtocolError("bad_field", f"decision record must be an object, got {type(rec).__name__}")
    ts = parse_time(rec.get("timestamp"))
    if ts is None:
        ts = default_ts
    events: list[Event] = []
    problems: list[str] = []
    try:
        dec = _decision(rec, ts, "record")
        if dec.cycle is None and cycle_hint is not None:
            dec = Decision(dec.timestamp, cycle_hint, dec.agent_id, dec.ai_reasoning, dec.decisions)
        events.append(dec)
    except ProtocolError as exc:
        problems.append(exc.detail)
    for key, read in (("account_state", _account), ("positions", _positions)):
        part = rec.get(key)
        if part is None:
            continue
        try:
            events.append(read(part, ts, f"record.{key}"))
        except ProtocolError as exc:
            problems.append(exc.detail)
    return tuple(events), problems


def equity_point_event(rec: Any, where: str = "equity") -> AccountUpdate:
    """An account row from one ``equity-history`` point.

    ``total_balance`` is the account value: ``gross_equity`` where the point has
    it (the current backend's ``equity`` is net of deposits it infers, wrongly),
    else ``equity`` (older backends). ROMA-01's net figure (``adjusted_equity``,
    or ``equity`` beside a gross one) goes to ``adjusted_balance``.

    Raises:
        ProtocolError: not an object, no ``gross_equity`` nor ``equity``, or a
            field of the wrong type.
    """
    if type(rec) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(rec).__name__}")
    gross = rec.get("gross_equity")
    if gross is None and rec.get("equity") is None:
        raise ProtocolError("bad_field", f"{where}.equity is missing")
    upnl = _num(rec, "unrealized_pnl", where)
    if gross is None:
        total, adjusted = _num(rec, "equity", where), _num(rec, "adjusted_equity", where)
    else:
        total = _num(rec, "gross_equity", where)
        adjusted = _num(rec, "adjusted_equity", where)
        if adjusted != adjusted:
            adjusted = _num(rec, "equity", where)
    return AccountUpdate(parse_time(rec.get("timestamp")), total, NaN, upnl, NaN, adjusted)


__all__ += ["decision_record_events", "equity_point_event"]


# ---------------------------------------------------------------- insights (trade-history analysis)


@dataclass(frozen=True, slots=True)
class Insight:
    """One insight of ROMA-01's own trade-history analysis (current backend only).

    From the ``analysis_insights`` table or REST ``/api/agents/{id}/insights``;
    ``timestamp`` is ``created_at``. ``recommendations`` and
    ``supporting_trade_ids`` are tuples of strings (the trade ids are ROMA-01's
    synthetic ``<agent>_<SYMBOL>_<open time>``, duplicates possible).
    """

    kind: ClassVar[str] = "insight"
    timestamp: int | None
    insight_id: str | None
    agent_id: str | None
    category: str | None
    title: str | None
    summary: str | None
    detailed_findings: str | None
    confidence: float
    recommendations: tuple[str, ...]
    supporting_trade_ids: tuple[str, ...]
    is_active: bool | None
    created_at: int | None
    deprecated_at: int | None


def _str_list(d: dict, key: str, where: str) -> tuple[str, ...]:
    v = d.get(key)
    if v is None:
        return ()
    if type(v) is str:  # a JSON text cell not decoded by the caller
        try:
            v = _decoder.decode(v)
        except (ValueError, RecursionError):
            raise ProtocolError("bad_field", f"{where}.{key} is not a JSON list: {_short(v)}") from None
    if type(v) is not list:
        raise ProtocolError("bad_field", f"{where}.{key} must be a list, got {type(v).__name__}")
    return tuple(x if type(x) is str else json.dumps(x) for x in v)


def insight_from_dict(d: Any, where: str = "insight") -> Insight:
    """Read one insight as REST ``/insights`` and the ``analysis_insights`` table give it.

    ``confidence_score`` (or ``confidence``) is a fraction 0..1 (``75`` is read as
    0.75); times are ISO text, zone-less read as UTC like every REST time.

    Raises:
        ProtocolError: not an object, or a field of the wrong type.

    Example:
        >>> ins = insight_from_dict({"insight_id": "ins_1", "category": "exit_timing",
        ...     "title": "Exits late", "confidence_score": 0.8, "recommendations": ["tighten"],
        ...     "created_at": "2026-12-02T06:25:43", "is_active": 1})
        >>> ins.recommendations, ins.is_active
        (('tighten',), True)
    """
    if type(d) is not dict:
        raise ProtocolError("bad_field", f"{where} must be an object, got {type(d).__name__}")
    conf_key = "confidence_score" if d.get("confidence_score") is not None else "confidence"
    created = d.get("created_at")
    deprecated = d.get("deprecated_at")
    for key, v in (("created_at", created), ("deprecated_at", deprecated)):
        if v is not None and type(v) is not str:
            raise ProtocolError("bad_field", f"{where}.{key} must be a string, got {type(v).__name__}")
    created_ns = parse_time(created)
    return Insight(
        created_ns,
        _str(d, "insight_id", where),
        _str(d, "agent_id", where),
        _str(d, "category", where),
        _str(d, "title", where),
        _str(d, "summary", where),
        _str(d, "detailed_findings", where),
        _fraction(_num(d, conf_key, where)),
        _str_list(d, "recommendations", where),
        _str_list(d, "supporting_trade_ids", where),
        _bool(d, "is_active", where),
        created_ns,
        parse_time(deprecated),
    )


__all__ += ["Insight", "insight_from_dict"]
