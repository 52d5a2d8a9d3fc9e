"""Seeded market, indicators, agents and exchange behind the bundled simulator.

Pure simulation: no I/O, no asyncio, no wall clock. :class:`World` advances in
fixed simulated ticks and returns :mod:`roma_notebook.core.protocol` events; the
simulator server only decides *when* to call :meth:`World.step` and how to ship
the events. Because every random draw comes from a seeded ``random.Random``
(one for the market, one per agent) and time is simulated, the same seed and
agent names give the same decisions, fills and account values whoever is
connected and however fast the host is. An agent's results do not even depend
on which *other* agents run: they share the market read-only.

Model, in brief:

* **Market**: six USDT perpetuals with realistic late-2025 prices. Log price =
  fundamental + short-lived noise. The fundamental is a GBM whose drift is a
  slow Ornstein-Uhlenbeck "trend" (common factor plus per-symbol part) and whose
  shocks are correlated through a common crypto factor; the noise is a fast OU
  (overshoots that mean-reversion agents can fade); rare jumps add spice. Ticks
  are ``tick_seconds`` (default 5 s) apart; indicators use 3-minute bars.
* **Indicators**: EMA (seeded with the first value), Wilder RSI and ATR, MACD
  (12, 26, 9), Bollinger bands (20, 2 sigma, population std), 20-bar
  high/low, 1 h and 4 h change. Batch functions (:func:`ema`, :func:`rsi`, ...)
  and the incremental ones inside :class:`Market` give the same numbers.
* **Exchange** (:class:`Exchange`), one per agent, isolated margin:

  - a position's margin is fixed at open: ``margin = qty * entry / leverage``;
  - ``unrealized = (mark - entry) * qty`` (long) or ``(entry - mark) * qty``;
  - ``total_balance = wallet + unrealized``;
    ``available_balance = total_balance - sum(margin)``;
    ``used_percentage = sum(margin) / total_balance * 100``;
  - market orders fill at mark +/- slippage (buys never below mark, sells never
    above), then a taker fee of ``fee_rate`` (0.04 %) of the fill notional is
    taken from the wallet;
  - liquidation price, maintenance margin rate ``mmr`` (0.5 %) on entry
    notional: long ``entry * (1 - 1/leverage + mmr)``, short
    ``entry * (1 + 1/leverage - mmr)``. A mark through it closes the position at
    exactly that price (the insurance fund eats any gap), so a position never
    loses much more than its margin and the wallet stays positive;
  - stop-loss / take-profit orders the agent sets trigger on the mark at each
    tick and fill like market orders;
  - closed trades: ``pnl_pct`` is the price move in percent, in the trade's
    favour, *without* leverage (as ROMA-01's ``DecisionLogger`` and the
    documented ``pnl_percentage`` example compute it: 68000 -> 68500 at 10x is
    0.74); ``pnl_usdt`` is the realised P&L net of both fees, so the wallet
    equals ``initial + sum(pnl_usdt) - open fees of open positions`` at all
    times. (ROMA-01 itself multiplies ``pnl_usdt`` by the leverage again, which
    would break that identity; we keep the identity.) Position
    ``pnl_percentage`` uses the same unlevered definition as ``pnl_pct``.

* **Agents**: one style per default model (momentum, mean reversion, cautious,
  breakout, swing, balanced); unknown names get a style by a stable CRC32 hash.
  Every cycle an agent reads the indicators, decides ``open_long``,
  ``open_short``, ``close_long``, ``close_short``, ``hold`` or ``wait``, and
  writes an ``ai_reasoning`` that quotes the numbers it used.
* **Performance** (:func:`performance`): ROMA-01's formulas over the last
  ``lookback`` closed trades (see the function).

Example:
    >>> w = World(["deepseek-chat-v3.1"], seed=7, start_time=0)
    >>> events = [ev for _ in range(40) for _, ev in w.step()]
    >>> sorted({ev.kind for ev in events})[:2]
    ['account_update', 'agent_status']
"""

from __future__ import annotations

import math
import random
import zlib
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Sequence

from ..analysis.roma_formulas import PERFORMANCE_FIELDS, performance_stats
from ..core.times import NS, iso_naive, to_ns  # public names of this module too
from ..core.protocol import (
    AccountUpdate,
    AgentStatus,
    ClosedTrade,
    Decision,
    DecisionItem,
    Performance,
    Position,
    PositionUpdate,
    TradeExecuted,
    event_to_data,
)

__all__ = [
    "SYMBOLS",
    "SymbolSpec",
    "SPECS",
    "DEFAULT_AGENTS",
    "AgentProfile",
    "STYLES",
    "Style",
    "agent_profile",
    "ema",
    "rsi",
    "macd",
    "bollinger",
    "atr",
    "Indicators",
    "Market",
    "OpenPosition",
    "Exchange",
    "Agent",
    "World",
    "performance",
    "liquidation_price",
    "to_ns",
    "iso_naive",
]

NaN = math.nan
SECONDS_PER_YEAR = 365.0 * 86_400.0

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "DOGEUSDT", "XRPUSDT")
_ORDER = {s: i for i, s in enumerate(SYMBOLS)}


@dataclass(frozen=True)
class SymbolSpec:
    """Static description of one perpetual.

    Attributes:
        symbol: exchange symbol, e.g. ``"BTCUSDT"``.
        price: starting price (late-2025 levels; a seeded jitter of a few
            percent is applied per run).
        vol: annualised volatility of the fundamental.
        beta: loading on the common crypto factor (trend and shocks).
        tick: price tick size; prices are multiples of it.
        step: quantity step size; quantities are multiples of it.
        half_spread_bps: half bid/ask spread, the floor of the slippage.
    """

    symbol: str
    price: float
    vol: float
    beta: float
    tick: float
    step: float
    half_spread_bps: float

    @property
    def price_decimals(self) -> int:
        d = _DEC_CACHE.get(self.tick)
        return d if d is not None else _DEC_CACHE.setdefault(self.tick, _decimals(self.tick))

    @property
    def qty_decimals(self) -> int:
        d = _DEC_CACHE.get(self.step)
        return d if d is not None else _DEC_CACHE.setdefault(self.step, _decimals(self.step))

    @property
    def base(self) -> str:
        return self.symbol[:-4] if self.symbol.endswith("USDT") else self.symbol


_DEC_CACHE: dict[float, int] = {}


def _decimals(step: float) -> int:
    d = 0
    while d < 12 and abs(round(step, d) - step) > 1e-15:
        d += 1
    return d


SPECS: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        SymbolSpec("BTCUSDT", 110_000.0, 0.50, 1.00, 0.1, 0.001, 0.5),
        SymbolSpec("ETHUSDT", 3_900.0, 0.68, 1.15, 0.01, 0.001, 0.8),
        SymbolSpec("SOLUSDT", 185.0, 0.85, 1.25, 0.01, 0.01, 1.5),
        SymbolSpec("BNBUSDT", 1_080.0, 0.55, 0.85, 0.01, 0.01, 1.5),
        SymbolSpec("DOGEUSDT", 0.185, 0.95, 1.30, 0.00001, 1.0, 2.5),
        SymbolSpec("XRPUSDT", 2.45, 0.80, 1.10, 0.0001, 0.1, 2.0),
    )
}


def _q(value: float, step: float, decimals: int, mode: str = "round") -> float:
    # Quantise to the exchange grid, then round to the grid's decimals so the
    # float has the short repr a real exchange would print (110000.1, not
    # 110000.10000000001).
    n = value / step
    if mode == "ceil":
        n = math.ceil(n - 1e-9)
    elif mode == "floor":
        n = math.floor(n + 1e-9)
    else:
        n = round(n)
    return round(n * step, decimals)


def _r8(x: float) -> float:
    # Money is kept to 8 decimals like exchange balances; always a float (an
    # empty sum is int 0, which would serialise as a JSON integer).
    return float(round(x, 8))


# ---------------------------------------------------------------- indicators (batch)


def ema(values: Sequence[float], period: int) -> list[float]:
    """Exponential moving average, seeded with the first value.

    Args:
        values: prices, oldest first.
        period: span; ``alpha = 2 / (period + 1)``.

    Returns:
        One EMA value per input value.

    Example:
        >>> ema([1.0, 2.0, 3.0], 3)
        [1.0, 1.5, 2.25]
    """
    if period < 1:
        raise ValueError("period must be >= 1")
    out: list[float] = []
    alpha = 2.0 / (period + 1)
    e = NaN
    for i, v in enumerate(values):
        e = v if i == 0 else e + alpha * (v - e)
        out.append(e)
    return out


def rsi(values: Sequence[float], period: int = 14) -> float:
    """Wilder's RSI of the last value (NaN until ``period`` changes exist).

    Average gain/loss start as the simple mean of the first ``period`` changes,
    then follow Wilder's smoothing ``avg = (avg * (period - 1) + x) / period``.
    100 when there were no losses, 50 when nothing moved.

    Example:
        >>> rsi([1, 2, 3, 4, 5, 6], period=5)
        100.0
    """
    gain = loss = 0.0
    n = 0
    for i in range(1, len(values)):
        ch = values[i] - values[i - 1]
        g, lo = (ch, 0.0) if ch > 0 else (0.0, -ch)
        n += 1
        if n <= period:
            gain += g
            loss += lo
            if n == period:
                gain /= period
                loss /= period
        else:
            gain = (gain * (period - 1) + g) / period
            loss = (loss * (period - 1) + lo) / period
    if n < period:
        return NaN
    return _rsi_value(gain, loss)


def _rsi_value(gain: float, loss: float) -> float:
    if loss == 0.0:
        return 100.0 if gain > 0 else 50.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


def macd(
    values: Sequence[float], fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[float, float, float]:
    """MACD line, signal line and histogram of the last value.

    Example:
        >>> [round(x, 6) for x in macd([10.0] * 30)]
        [0.0, 0.0, 0.0]
    """
    if not values:
        return NaN, NaN, NaN
    line = [f - s for f, s in zip(ema(values, fast), ema(values, slow))]
    sig = ema(line, signal)
    return line[-1], sig[-1], line[-1] - sig[-1]


def bollinger(values: Sequence[float], period: int = 20, k: float = 2.0) -> tuple[float, float, float]:
    """Lower band, middle (SMA) and upper band over the last ``period`` values.

    Uses the population standard deviation, like most charting packages.

    Example:
        >>> bollinger([1.0, 3.0], period=2, k=1.0)
        (1.0, 2.0, 3.0)
    """
    if len(values) < period:
        return NaN, NaN, NaN
    w = values[-period:]
    mid = sum(w) / period
    sd = math.sqrt(sum((x - mid) ** 2 for x in w) / period)
    return mid - k * sd, mid, mid + k * sd


def atr(highs: Sequence[float], lows: Sequence[float], closes: Sequence[float], period: int = 14) -> float:
    """Wilder's average true range of the last bar (NaN until ``period`` ranges).

    Example:
        >>> atr([2, 2, 2], [1, 1, 1], [1.5, 1.5, 1.5], period=2)
        1.0
    """
    a = 0.0
    n = 0
    for i in range(1, len(closes)):
        tr = max(highs[i] - lows[i], abs(highs[i] - closes[i - 1]), abs(lows[i] - closes[i - 1]))
        n += 1
        if n <= period:
            a += tr
            if n == period:
                a /= period
        else:
            a = (a * (period - 1) + tr) / period
    return a if n >= period else NaN


# ---------------------------------------------------------------- indicators (incremental)


@dataclass(frozen=True)
class Indicators:
    """What an agent sees of one symbol at decision time.

    Moving averages, RSI, MACD, Bollinger, ATR and the 20-bar range use closed
    3-minute bars; ``price`` is the current mark.
    """

    symbol: str
    price: float
    ema20: float
    ema50: float
    macd: float
    macd_signal: float
    macd_hist: float
    prev_macd_hist: float
    rsi7: float
    rsi14: float
    bb_lower: float
    bb_mid: float
    bb_upper: float
    atr14: float
    high20: float
    low20: float
    change_1h: float
    change_4h: float

    @property
    def atr_pct(self) -> float:
        """ATR(14) as a percent of the price."""
        return self.atr14 / self.price * 100.0

    @property
    def zscore(self) -> float:
        """Distance of the price from the Bollinger middle in standard deviations."""
        half = (self.bb_upper - self.bb_mid) / 2.0
        return (self.price - self.bb_mid) / half if half > 0 else 0.0


class _Ema:
    __slots__ = ("alpha", "value")

    def __init__(self, period: int):
        self.alpha = 2.0 / (period + 1)
        self.value = NaN

    def update(self, x: float) -> float:
        self.value = x if self.value != self.value else self.value + self.alpha * (x - self.value)
        return self.value


class _Wilder:
    # Shared by RSI (two of them) and ATR: simple mean of the first `period`
    # inputs, then Wilder smoothing. Mirrors the batch functions exactly.
    __slots__ = ("period", "n", "value")

    def __init__(self, period: int):
        self.period = period
        self.n = 0
        self.value = 0.0

    def update(self, x: float) -> None:
        self.n += 1
        p = self.period
        if self.n <= p:
            self.value += x
            if self.n == p:
                self.value /= p
        else:
            self.value = (self.value * (p - 1) + x) / p

    @property
    def ready(self) -> bool:
        return self.n >= self.period


class _SymbolState:
    """Price process and bar/indicator state of one symbol."""

    def __init__(self, spec: SymbolSpec, start_price: float):
        self.spec = spec
        self.x = math.log(start_price)  # log fundamental
        self.noise = 0.0  # fast OU, log units
        self.trend = 0.0  # idiosyncratic drift, per second
        self.price = _q(start_price, spec.tick, spec.price_decimals)
        # current bar
        self.bar_open = self.bar_high = self.bar_low = self.price
        # closed bars
        self.closes: deque[float] = deque(maxlen=600)
        self.highs: deque[float] = deque(maxlen=21)
        self.lows: deque[float] = deque(maxlen=21)
        self.ema20, self.ema50 = _Ema(20), _Ema(50)
        self.ema12, self.ema26, self.ema9 = _Ema(12), _Ema(26), _Ema(9)
        self.gain7, self.loss7 = _Wilder(7), _Wilder(7)
        self.gain14, self.loss14 = _Wilder(14), _Wilder(14)
        self.atr = _Wilder(14)
        self.macd_hist = NaN
        self.prev_macd_hist = NaN
        self._ind: Indicators | None = None

    def close_bar(self) -> None:
        c = self.price
        prev = self.closes[-1] if self.closes else None
        self.closes.append(c)
        self.highs.append(self.bar_high)
        self.lows.append(self.bar_low)
        self.ema20.update(c)
        self.ema50.update(c)
        m = self.ema12.update(c) - self.ema26.update(c)
        s = self.ema9.update(m)
        self.prev_macd_hist = self.macd_hist
        self.macd_hist = m - s
        if prev is not None:
            ch = c - prev
            g, lo = (ch, 0.0) if ch > 0 else (0.0, -ch)
            self.gain7.update(g)
            self.loss7.update(lo)
            self.gain14.update(g)
            self.loss14.update(lo)
            tr = max(self.bar_high - self.bar_low, abs(self.bar_high - prev), abs(self.bar_low - prev))
            self.atr.update(tr)
        self.bar_open = self.bar_high = self.bar_low = c
        self._ind = None

    def indicators(self) -> Indicators:
        ind = self._ind
        if ind is not None and ind.price == self.price:
            return ind
        closes = self.closes
        n = len(closes)
        lo, mid, up = bollinger(list(closes)[-20:], 20) if n >= 20 else (NaN, NaN, NaN)
        hi20 = max(list(self.highs)[-21:-1]) if len(self.highs) >= 21 else NaN
        lo20 = min(list(self.lows)[-21:-1]) if len(self.lows) >= 21 else NaN
        ind = Indicators(
            symbol=self.spec.symbol,
            price=self.price,
            ema20=self.ema20.value,
            ema50=self.ema50.value,
            macd=self.ema12.value - self.ema26.value,
            macd_signal=self.ema9.value,
            macd_hist=self.macd_hist,
            prev_macd_hist=self.prev_macd_hist,
            rsi7=_rsi_value(self.gain7.value, self.loss7.value) if self.gain7.ready else NaN,
            rsi14=_rsi_value(self.gain14.value, self.loss14.value) if self.gain14.ready else NaN,
            bb_lower=lo,
            bb_mid=mid,
            bb_upper=up,
            atr14=self.atr.value if self.atr.ready else NaN,
            high20=hi20,
            low20=lo20,
            change_1h=(self.price / closes[-20] - 1.0) * 100.0 if n >= 20 else NaN,
            change_4h=(self.price / closes[-80] - 1.0) * 100.0 if n >= 80 else NaN,
        )
        self._ind = ind
        return ind


class Market:
    """The shared, seeded price process of the six perpetuals.

    Args:
        seed: seeds the market's own ``random.Random``.
        start_ns: simulated time of the first tick minus one tick, int ns UTC.
        tick_seconds: simulated seconds per :meth:`step`.
        bar_seconds: bar length for indicators (3 minutes, as ROMA-01 prompts use).
        volatility_scale: multiplies every volatility (2.0 makes a lively demo).
        history_bars: bars simulated before ``start_ns`` so indicators are warm.

    Example:
        >>> m = Market(seed=1, start_ns=0)
        >>> p0 = m.price("BTCUSDT"); m.step(); m.time_ns
        5000000000
    """

    # Trend (drift) OU: stationary std per hour and time scale; noise OU: std
    # relative to annual vol and time scale. Chosen so 3-minute bars look like
    # crypto perps: trends of a few percent over hours, overshoots of ~0.2-0.4 %.
    TREND_STD_PER_HOUR = 0.007
    TREND_TAU = 3 * 3600.0
    NOISE_STD_PER_VOL = 0.0035
    NOISE_TAU = 20 * 60.0
    JUMPS_PER_DAY = 1.0
    FACTOR_CORR = 0.8

    def __init__(
        self,
        seed: int = 0,
        start_ns: int = 0,
        *,
        tick_seconds: float = 5.0,
        bar_seconds: float = 180.0,
        volatility_scale: float = 1.0,
        history_bars: int = 240,
        symbols: Iterable[str] = SYMBOLS,
    ):
        if tick_seconds <= 0 or bar_seconds < tick_seconds:
            raise ValueError("need 0 < tick_seconds <= bar_seconds")
        if volatility_scale <= 0:
            raise ValueError("volatility_scale must be > 0")
        self.rng = random.Random(f"roma-market:{seed}")
        self.tick_ns = int(round(tick_seconds * NS))
        self.bar_ns = int(round(bar_seconds * NS))
        self.vscale = float(volatility_scale)
        self.common_trend = 0.0
        self._prices: dict[str, float] | None = None
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.states: dict[str, _SymbolState] = {}
        for s in self.symbols:
            spec = SPECS[s]
            jitter = math.exp(self.rng.gauss(0.0, 0.02))
            self.states[s] = _SymbolState(spec, spec.price * jitter)
        # Warm-up: history_bars bars before start_ns, 12 sub-steps per bar so bar
        # highs/lows (and hence ATR) look like the live ones.
        sub = 12
        dt = bar_seconds / sub
        for _ in range(history_bars):
            for _ in range(sub):
                self._advance(dt)
            for st in self.states.values():
                st.close_bar()
        self.time_ns = int(start_ns)
        self._next_bar_ns = self.time_ns + self.bar_ns

    def _advance(self, dt: float) -> None:
        self._prices = None
        rng = self.rng
        gauss = rng.gauss
        # common drift factor (OU, exact discretisation)
        tr_std = self.TREND_STD_PER_HOUR / 3600.0 * self.vscale
        a_tr = math.exp(-dt / self.TREND_TAU)
        b_tr = tr_std * math.sqrt(1.0 - a_tr * a_tr)
        self.common_trend = self.common_trend * a_tr + b_tr * gauss(0.0, 1.0)
        z_common = gauss(0.0, 1.0)
        a_n = math.exp(-dt / self.NOISE_TAU)
        jump_p = self.JUMPS_PER_DAY * dt / 86_400.0
        rho = self.FACTOR_CORR
        idio = math.sqrt(1.0 - rho * rho)
        for st in self.states.values():
            spec = st.spec
            sigma = spec.vol * self.vscale / math.sqrt(SECONDS_PER_YEAR)
            st.trend = st.trend * a_tr + 0.6 * b_tr * gauss(0.0, 1.0)
            drift = spec.beta * self.common_trend + st.trend
            shock = rho * z_common + idio * gauss(0.0, 1.0)
            st.x += (drift - 0.5 * sigma * sigma) * dt + sigma * math.sqrt(dt) * shock
            if rng.random() < jump_p * spec.beta:
                st.x += gauss(0.0, 0.012 * spec.vol / 0.5 * self.vscale)
            n_std = self.NOISE_STD_PER_VOL * spec.vol * self.vscale
            st.noise = st.noise * a_n + n_std * math.sqrt(1.0 - a_n * a_n) * gauss(0.0, 1.0)
            p = _q(math.exp(st.x + st.noise), spec.tick, spec.price_decimals)
            if p <= 0:  # absurd paths only; never quote zero
                p = spec.tick
            st.price = p
            if p > st.bar_high:
                st.bar_high = p
            if p < st.bar_low:
                st.bar_low = p

    def step(self) -> None:
        """Advance one tick; close a bar when its time is up."""
        self._advance(self.tick_ns / NS)
        self.time_ns += self.tick_ns
        while self.time_ns >= self._next_bar_ns:
            for st in self.states.values():
                st.close_bar()
            self._next_bar_ns += self.bar_ns

    def price(self, symbol: str) -> float:
        """Current mark price of ``symbol``."""
        return self.states[symbol].price

    def prices(self) -> dict[str, float]:
        """Current mark prices of every symbol (a shared dict: do not modify)."""
        p = self._prices
        if p is None:
            p = self._prices = {s: st.price for s, st in self.states.items()}
        return p

    def indicators(self, symbol: str) -> Indicators:
        """Indicators of ``symbol`` now (cached until the price changes)."""
        return self.states[symbol].indicators()

    def closes(self, symbol: str) -> list[float]:
        """Closed 3-minute bar closes of ``symbol``, oldest first (up to 600)."""
        return list(self.states[symbol].closes)


# ---------------------------------------------------------------- exchange


def liquidation_price(side: str, entry: float, leverage: int, mmr: float = 0.005) -> float:
    """Isolated-margin liquidation price.

    The position is liquidated when margin + unrealised P&L falls to the
    maintenance margin ``mmr * entry * qty``; with ``margin = entry * qty /
    leverage`` that is ``entry * (1 - 1/leverage + mmr)`` for a long and
    ``entry * (1 + 1/leverage - mmr)`` for a short.

    Example:
        >>> round(liquidation_price("long", 100.0, 10), 6)
        90.5
    """
    if side == "long":
        return entry * (1.0 - 1.0 / leverage + mmr)
    return entry * (1.0 + 1.0 / leverage - mmr)


@dataclass
class OpenPosition:
    """An open isolated-margin position."""

    symbol: str
    side: str  # "long" | "short"
    quantity: float
    entry_price: float
    leverage: int
    open_fee: float
    open_time_ns: int
    stop_loss: float = NaN
    take_profit: float = NaN
    mark_price: float = NaN
    liq_price: float = NaN

    @property
    def direction(self) -> int:
        return 1 if self.side == "long" else -1

    @property
    def margin(self) -> float:
        return self.quantity * self.entry_price / self.leverage

    @property
    def unrealized(self) -> float:
        return (self.mark_price - self.entry_price) * self.quantity * self.direction

    @property
    def pnl_pct(self) -> float:
        return (self.mark_price - self.entry_price) / self.entry_price * 100.0 * self.direction

    def to_position(self) -> Position:
        d = SPECS[self.symbol].price_decimals
        return Position(
            symbol=self.symbol,
            side=self.side,
            position_amt=self.quantity,
            entry_price=self.entry_price,
            mark_price=self.mark_price,
            unrealized_profit=_r8(self.unrealized),
            pnl_percentage=round(self.pnl_pct, 4),
            leverage=self.leverage,
            liquidation_price=round(self.liq_price, d + 2),
        )


@dataclass
class Fill:
    """One executed order (internal; becomes a ``TradeExecuted``)."""

    order_id: str
    symbol: str
    side: str
    quantity: float
    price: float
    leverage: int
    fee: float
    time_ns: int
    closed: ClosedTrade | None = None
    reason: str = ""


class Exchange:
    """One agent's isolated-margin futures account (see the module docstring).

    Args:
        initial_balance: starting wallet in USDT.
        rng: source of slippage jitter (the agent's generator: deterministic).
        order_prefix: leading digits of this account's order ids.
        fee_rate: taker fee as a fraction of notional.
        mmr: maintenance margin rate used for liquidation prices.

    Example:
        >>> ex = Exchange(10_000.0, random.Random(0), order_prefix=1234)
        >>> f = ex.open("BTCUSDT", "long", 0.01, 10, mark=100_000.0, time_ns=0)
        >>> ex.account(0).total_balance < 10_000.0   # the fee and slippage
        True
    """

    def __init__(
        self,
        initial_balance: float,
        rng: random.Random,
        *,
        order_prefix: int = 1000,
        fee_rate: float = 0.0004,
        mmr: float = 0.005,
    ):
        self.initial_balance = float(initial_balance)
        self.wallet = float(initial_balance)
        self.rng = rng
        self.fee_rate = fee_rate
        self.mmr = mmr
        self.positions: dict[str, OpenPosition] = {}
        self._order_prefix = int(order_prefix)
        self._order_seq = 0
        self.fees_paid = 0.0

    # -- arithmetic ------------------------------------------------------

    @property
    def unrealized(self) -> float:
        return sum(p.unrealized for p in self.positions.values())

    @property
    def margin(self) -> float:
        return sum(p.margin for p in self.positions.values())

    @property
    def total_balance(self) -> float:
        return self.wallet + self.unrealized

    @property
    def available_balance(self) -> float:
        return self.total_balance - self.margin

    @property
    def used_percentage(self) -> float:
        total = self.total_balance
        return self.margin / total * 100.0 if total > 0 else 0.0

    def account(self, time_ns: int | None) -> AccountUpdate:
        """The account as a documented ``account_update`` event."""
        u = self.unrealized
        m = self.margin
        total = self.wallet + u
        return AccountUpdate(
            time_ns,
            _r8(total),
            _r8(total - m),
            _r8(u),
            round(m / total * 100.0, 6) if total > 0 else 0.0,
        )

    def position_update(self, time_ns: int | None) -> PositionUpdate:
        """Open positions (in symbol order) as a ``position_update`` event."""
        return PositionUpdate(
            time_ns, tuple(p.to_position() for p in self._sorted_positions())
        )

    def _sorted_positions(self) -> list[OpenPosition]:
        if len(self.positions) < 2:
            return list(self.positions.values())
        return sorted(self.positions.values(), key=lambda p: (_ORDER.get(p.symbol, 99), p.symbol))

    # -- orders ----------------------------------------------------------

    def _next_order_id(self) -> str:
        self._order_seq += 1
        return f"{self._order_prefix:04d}{self._order_seq:08d}"

    def _fill_price(self, symbol: str, buy: bool, mark: float, notional: float) -> float:
        spec = SPECS[symbol]
        # Half spread + a little random impact + size impact (1 bp per $1M).
        bps = spec.half_spread_bps + self.rng.uniform(0.0, 1.0) + notional / 1e6
        raw = mark * (1.0 + bps / 1e4) if buy else mark * (1.0 - bps / 1e4)
        # Round away from the mark so a buy never fills below it.
        p = _q(raw, spec.tick, spec.price_decimals, "ceil" if buy else "floor")
        return p if p > 0 else spec.tick

    def max_quantity(self, symbol: str, leverage: int, mark: float, margin_budget: float) -> float:
        """Largest quantity whose margin plus fees fit ``margin_budget`` and the
        available balance (with a 1 % cushion for slippage)."""
        spec = SPECS[symbol]
        budget = min(margin_budget, self.available_balance) * 0.99
        if budget <= 0:
            return 0.0
        per_unit = mark * (1.0 / leverage + self.fee_rate)
        return _q(budget / per_unit, spec.step, spec.qty_decimals, "floor")

    def open(
        self,
        symbol: str,
        side: str,
        quantity: float,
        leverage: int,
        *,
        mark: float,
        time_ns: int,
        stop_loss: float = NaN,
        take_profit: float = NaN,
    ) -> Fill:
        """Open a position with a market order; raises ``ValueError`` if it
        cannot be afforded or a position in ``symbol`` is already open."""
        if symbol in self.positions:
            raise ValueError(f"a {symbol} position is already open")
        if side not in ("long", "short"):
            raise ValueError("side must be 'long' or 'short'")
        if quantity <= 0 or leverage < 1:
            raise ValueError("quantity must be > 0 and leverage >= 1")
        price = self._fill_price(symbol, side == "long", mark, quantity * mark)
        fee = _r8(price * quantity * self.fee_rate)
        margin = quantity * price / leverage
        if margin + fee > self.available_balance:
            raise ValueError("insufficient available balance")
        self.wallet = _r8(self.wallet - fee)
        self.fees_paid += fee
        pos = OpenPosition(
            symbol, side, quantity, price, int(leverage), fee, time_ns, stop_loss, take_profit, mark
        )
        pos.liq_price = liquidation_price(side, price, pos.leverage, self.mmr)
        self.positions[symbol] = pos
        return Fill(self._next_order_id(), symbol, side, quantity, price, pos.leverage, fee, time_ns)

    def close(self, symbol: str, *, mark: float, time_ns: int, price: float | None = None, reason: str = "") -> Fill:
        """Close the whole ``symbol`` position at market (or at ``price``,
        used for liquidations) and record the closed trade."""
        pos = self.positions.pop(symbol)
        if price is None:
            price = self._fill_price(symbol, pos.side == "short", mark, pos.quantity * mark)
        fee = _r8(price * pos.quantity * self.fee_rate)
        gross = (price - pos.entry_price) * pos.quantity * pos.direction
        self.wallet = _r8(self.wallet + gross - fee)
        self.fees_paid += fee
        closed = ClosedTrade(
            timestamp=time_ns,
            symbol=symbol,
            side=pos.side,
            entry_price=pos.entry_price,
            close_price=price,
            quantity=pos.quantity,
            leverage=pos.leverage,
            open_time=pos.open_time_ns,
            close_time=time_ns,
            pnl_usdt=_r8(gross - fee - pos.open_fee),
            pnl_pct=round((price - pos.entry_price) / pos.entry_price * 100.0 * pos.direction, 6),
        )
        # A fill's side is its direction, as the analytics read fills: closing a
        # long sells ("short"), closing a short buys ("long").
        direction = "short" if pos.side == "long" else "long"
        return Fill(
            self._next_order_id(), symbol, direction, pos.quantity, price, pos.leverage, fee, time_ns, closed, reason
        )

    def mark(self, prices: dict[str, float]) -> None:
        """Mark every position to the given prices."""
        for p in self.positions.values():
            p.mark_price = prices[p.symbol]

    def triggers(self, time_ns: int) -> list[Fill]:
        """Liquidations, stop-losses and take-profits hit by the current marks."""
        fills: list[Fill] = []
        for sym in [p.symbol for p in self._sorted_positions()]:
            p = self.positions[sym]
            m = p.mark_price
            long = p.side == "long"
            liq_hit = m <= p.liq_price if long else m >= p.liq_price
            if liq_hit:
                spec = SPECS[sym]
                px = _q(p.liq_price, spec.tick, spec.price_decimals, "ceil" if long else "floor")
                fills.append(self.close(sym, mark=m, time_ns=time_ns, price=px, reason="liquidation"))
                continue
            sl, tp = p.stop_loss, p.take_profit
            if sl == sl and (m <= sl if long else m >= sl):
                fills.append(self.close(sym, mark=m, time_ns=time_ns, reason="stop_loss"))
            elif tp == tp and (m >= tp if long else m <= tp):
                fills.append(self.close(sym, mark=m, time_ns=time_ns, reason="take_profit"))
        return fills

    # -- REST views ------------------------------------------------------

    def rest_account(self) -> dict:
        """``/account`` body: the real backend's keys and the docs' keys."""
        u = self.unrealized
        m = self.margin
        total = self.wallet + u
        return {
            "total_wallet_balance": _r8(total),
            "available_balance": _r8(total - m),
            "total_unrealized_profit": _r8(u),
            "initial_balance": self.initial_balance,
            "wallet_balance": _r8(self.wallet),
            "total_balance": _r8(total),
            "unrealized_pnl": _r8(u),
            "total_positions_value": _r8(sum(p.quantity * p.mark_price for p in self.positions.values())),
            "total_margin_used": _r8(m),
            "used_percentage": round(m / total * 100.0, 6) if total > 0 else 0.0,
        }

    def rest_positions(self) -> list[dict]:
        """``/positions`` body (documented position keys plus ``margin_type``)."""
        out = event_to_data(self.position_update(None))  # the documented keys
        for d in out:
            d["margin_type"] = "isolated"
        return out


# ---------------------------------------------------------------- performance


def performance(
    trades: Sequence[ClosedTrade],
    lookback: int = 20,
    *,
    initial: float = 10_000.0,
    time_ns: int | None = None,
) -> Performance:
    """ROMA-01's performance metrics over the last ``lookback`` closed trades, as a
    ``Performance`` event: :func:`roma_notebook.analysis.roma_formulas.performance_stats` (the one
    copy of the backend's formulas) over their ``pnl_usdt``.

    ``lookback <= 0`` means all trades.

    Example:
        >>> t = ClosedTrade(None, "BTCUSDT", "long", 1, 2, 1, 1, None, None, 5.0, 100.0)
        >>> performance([t]).profit_factor
        inf
    """
    s = performance_stats([t.pnl_usdt for t in trades], lookback, initial=initial)
    return Performance(time_ns, *(s[k] for k in PERFORMANCE_FIELDS))


# ---------------------------------------------------------------- agents


@dataclass(frozen=True)
class AgentProfile:
    """Who an agent is: display name, model metadata and trading style."""

    agent_id: str
    name: str
    model_provider: str
    model_id: str
    style: str


DEFAULT_AGENTS: dict[str, AgentProfile] = {
    p.agent_id: p
    for p in (
        AgentProfile("deepseek-chat-v3.1", "DeepSeek Chat V3.1", "deepseek", "deepseek/deepseek-chat-v3.1", "momentum"),
        AgentProfile("qwen3-max", "Qwen3 Max", "qwen", "qwen/qwen3-max", "mean_reversion"),
        AgentProfile("claude-sonnet-4.5", "Claude Sonnet 4.5", "anthropic", "anthropic/claude-sonnet-4.5", "cautious"),
        AgentProfile("grok-4", "Grok 4", "xai", "x-ai/grok-4", "breakout"),
        AgentProfile("gemini-2.5-pro", "Gemini 2.5 Pro", "google", "google/gemini-2.5-pro", "swing"),
        AgentProfile("gpt-5", "GPT-5", "openai", "openai/gpt-5", "balanced"),
    )
}


@dataclass(frozen=True)
class Style:
    """Parameters and rules of one trading style.

    ``score(ind)`` returns a signal in [-1, 1] (positive: long) and a short
    text quoting the numbers behind it; ``exit(ind, side, score)`` says whether
    an open position should be closed and why.
    """

    name: str
    title: str
    threshold: float
    leverage: tuple[int, ...]
    margin_fraction: float
    max_positions: int
    max_new_per_cycle: int
    sl_atr: float
    tp_ratio: float
    hesitation: float
    score: Callable[[Indicators], tuple[float, str]]
    exit: Callable[[Indicators, str, float], str | None]


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def _momentum_score(ind: Indicators) -> tuple[float, str]:
    trend = (ind.ema20 - ind.ema50) / ind.atr14 if ind.atr14 > 0 else 0.0
    h = ind.macd_hist / (0.2 * ind.atr14) if ind.atr14 > 0 else 0.0
    s = 0.45 * math.tanh(trend / 2.0) + 0.3 * _clip(h) + 0.25 * math.tanh(ind.change_1h / 1.0)
    if s > 0 and ind.rsi14 > 78:  # don't chase an exhausted move
        s *= 0.3
    if s < 0 and ind.rsi14 < 22:
        s *= 0.3
    return s, (
        f"EMA20-EMA50 {trend:+.2f} ATR, MACD hist {ind.macd_hist:+.4g}, "
        f"RSI(14) {ind.rsi14:.1f}, 1h {ind.change_1h:+.2f}%"
    )


def _momentum_exit(ind: Indicators, side: str, s: float) -> str | None:
    if side == "long" and (s < -0.1 or ind.rsi14 > 80):
        return f"momentum faded (score {s:+.2f}, RSI(14) {ind.rsi14:.1f})"
    if side == "short" and (s > 0.1 or ind.rsi14 < 20):
        return f"momentum faded (score {s:+.2f}, RSI(14) {ind.rsi14:.1f})"
    return None


def _meanrev_score(ind: Indicators) -> tuple[float, str]:
    z = ind.zscore
    s = 0.6 * _clip((50.0 - ind.rsi7) / 30.0) + 0.4 * _clip(-z / 2.5)
    return s, f"RSI(7) {ind.rsi7:.1f}, Bollinger z {z:+.2f} (mid {ind.bb_mid:.6g})"


def _meanrev_exit(ind: Indicators, side: str, s: float) -> str | None:
    if side == "long" and (ind.price >= ind.bb_mid or ind.rsi7 > 55):
        return f"reverted to the mean (price {ind.price:.6g} vs mid {ind.bb_mid:.6g}, RSI(7) {ind.rsi7:.1f})"
    if side == "short" and (ind.price <= ind.bb_mid or ind.rsi7 < 45):
        return f"reverted to the mean (price {ind.price:.6g} vs mid {ind.bb_mid:.6g}, RSI(7) {ind.rsi7:.1f})"
    return None


def _cautious_score(ind: Indicators) -> tuple[float, str]:
    s, text = _momentum_score(ind)
    agree = ind.change_4h == ind.change_4h and (ind.change_4h > 0) == (s > 0)
    calm = 42.0 <= ind.rsi14 <= 68.0 if s > 0 else 32.0 <= ind.rsi14 <= 58.0
    if not (agree and calm):
        s *= 0.4
    return s, f"{text}, 4h {ind.change_4h:+.2f}% ({'aligned' if agree else 'not aligned'})"


def _cautious_exit(ind: Indicators, side: str, s: float) -> str | None:
    if side == "long" and s < 0.15:
        return f"edge gone, protecting capital (score {s:+.2f})"
    if side == "short" and s > -0.15:
        return f"edge gone, protecting capital (score {s:+.2f})"
    return None


def _breakout_score(ind: Indicators) -> tuple[float, str]:
    a = ind.atr14 if ind.atr14 > 0 else ind.price * 0.001
    if ind.price > ind.high20 and ind.macd_hist > 0:
        s = 0.6 + 0.4 * math.tanh((ind.price - ind.high20) / a)
    elif ind.price < ind.low20 and ind.macd_hist < 0:
        s = -0.6 - 0.4 * math.tanh((ind.low20 - ind.price) / a)
    else:
        s = 0.3 * _clip((ind.price - (ind.high20 + ind.low20) / 2) / max(ind.high20 - ind.low20, a))
    return s, (
        f"price {ind.price:.6g} vs 20-bar range {ind.low20:.6g}-{ind.high20:.6g}, "
        f"MACD hist {ind.macd_hist:+.4g}, ATR {ind.atr_pct:.2f}%"
    )


def _breakout_exit(ind: Indicators, side: str, s: float) -> str | None:
    if side == "long" and ind.price < ind.ema20:
        return f"lost EMA20 {ind.ema20:.6g}, breakout failed"
    if side == "short" and ind.price > ind.ema20:
        return f"reclaimed EMA20 {ind.ema20:.6g}, breakdown failed"
    return None


def _swing_score(ind: Indicators) -> tuple[float, str]:
    h, ph = ind.macd_hist, ind.prev_macd_hist
    cross_up = ph == ph and ph <= 0 < h
    cross_dn = ph == ph and ph >= 0 > h
    if cross_up and ind.price > ind.ema50:
        s = 0.65 + 0.35 * math.tanh(ind.change_1h)
    elif cross_dn and ind.price < ind.ema50:
        s = -0.65 + 0.35 * math.tanh(ind.change_1h)
    else:
        s = 0.4 * math.tanh(h / (0.3 * ind.atr14)) if ind.atr14 > 0 else 0.0
    what = "bullish cross" if cross_up else "bearish cross" if cross_dn else "no cross"
    return s, f"MACD {ind.macd:+.4g} vs signal {ind.macd_signal:+.4g} ({what}), price vs EMA50 {ind.ema50:.6g}"


def _swing_exit(ind: Indicators, side: str, s: float) -> str | None:
    if side == "long" and ind.macd_hist < 0 and ind.price < ind.ema20:
        return f"MACD hist {ind.macd_hist:+.4g} negative and price under EMA20"
    if side == "short" and ind.macd_hist > 0 and ind.price > ind.ema20:
        return f"MACD hist {ind.macd_hist:+.4g} positive and price over EMA20"
    return None


def _balanced_score(ind: Indicators) -> tuple[float, str]:
    m, _ = _momentum_score(ind)
    r, _ = _meanrev_score(ind)
    t4 = math.tanh(ind.change_4h / 2.0) if ind.change_4h == ind.change_4h else 0.0
    h = _clip(ind.macd_hist / (0.2 * ind.atr14)) if ind.atr14 > 0 else 0.0
    # Fade only the extremes: the mean-reversion term counts when it is strong.
    s = 0.4 * m + 0.2 * (r if abs(r) > 0.6 else 0.0) + 0.2 * h + 0.2 * t4
    return s, f"momentum {m:+.2f}, reversion {r:+.2f}, MACD {h:+.2f}, 4h trend {t4:+.2f} (RSI(14) {ind.rsi14:.1f})"


def _balanced_exit(ind: Indicators, side: str, s: float) -> str | None:
    if side == "long" and s < -0.05:
        return f"factor blend turned negative ({s:+.2f})"
    if side == "short" and s > 0.05:
        return f"factor blend turned positive ({s:+.2f})"
    return None


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style("momentum", "momentum trader", 0.5, (8, 10), 0.12, 3, 2, 6.0, 2.5, 0.15, _momentum_score, _momentum_exit),
        Style("mean_reversion", "mean-reversion trader", 0.6, (5,), 0.10, 3, 2, 5.0, 1.5, 0.10, _meanrev_score, _meanrev_exit),
        Style("cautious", "risk-first trader", 0.6, (3,), 0.06, 2, 1, 4.0, 2.0, 0.30, _cautious_score, _cautious_exit),
        Style("breakout", "breakout trader", 0.6, (10,), 0.15, 3, 2, 5.0, 3.0, 0.10, _breakout_score, _breakout_exit),
        Style("swing", "MACD swing trader", 0.6, (5, 6), 0.10, 2, 1, 8.0, 2.0, 0.15, _swing_score, _swing_exit),
        Style("balanced", "multi-factor trader", 0.45, (4, 5, 6, 8), 0.10, 4, 2, 6.0, 2.0, 0.15, _balanced_score, _balanced_exit),
    )
}
_STYLE_ORDER = tuple(STYLES)


def agent_profile(agent_id: str) -> AgentProfile:
    """Profile of a default agent, or one derived from a stable hash of the id.

    Example:
        >>> agent_profile("qwen3-max").style
        'mean_reversion'
        >>> agent_profile("my-bot").style == agent_profile("my-bot").style
        True
    """
    p = DEFAULT_AGENTS.get(agent_id)
    if p is not None:
        return p
    # crc32, not hash(): str hashes are salted per process.
    style = _STYLE_ORDER[zlib.crc32(agent_id.encode()) % len(_STYLE_ORDER)]
    return AgentProfile(agent_id, agent_id, "custom", agent_id, style)


def _confidence(score: float, floor: float) -> float:
    """The stated confidence (0..1) the real prompt asks every decision for: from
    the signal's strength, so it draws no random numbers (values stay as seeded)."""
    return round(min(0.95, floor + 0.35 * math.tanh(abs(score))), 2)


def _fmt_price(symbol: str, x: float) -> str:
    d = SPECS[symbol].price_decimals
    return f"{x:,.{d}f}"


class Agent:
    """A simulated LLM agent: style, seeded generator, exchange account and the
    history the REST endpoints serve.

    Args:
        agent_id: the id clients use in ``/ws/agents/{agent_id}``.
        seed: world seed; the agent's generator is seeded by ``(seed, agent_id)``.
        start_ns: simulated start time.
        cycle_ns: simulated time between decision cycles.
        initial_balance: starting wallet.
        error_rate: probability that a cycle fails (a simulated LLM timeout:
            no decision, an ``agent_status`` is still sent).
        history: cap on stored decision-log records and equity points.
    """

    def __init__(
        self,
        agent_id: str,
        *,
        seed: int,
        start_ns: int,
        cycle_ns: int,
        initial_balance: float = 10_000.0,
        error_rate: float = 0.02,
        history: int = 10_000,
    ):
        self.agent_id = agent_id
        self.profile = agent_profile(agent_id)
        self.style = STYLES[self.profile.style]
        self.rng = random.Random(f"roma-agent:{seed}:{agent_id}")
        self.exchange = Exchange(
            initial_balance, self.rng, order_prefix=zlib.crc32(agent_id.encode()) % 9000 + 1000
        )
        self.start_ns = start_ns
        self.cycle_ns = cycle_ns
        # First cycle on the first tick, then every cycle_ns after it.
        self.next_cycle_ns = start_ns + 1
        self.cycle = 0
        self.is_running = True
        self.error_rate = error_rate
        self.last_decision_ns: int | None = None
        self.last_error: str | None = None
        self.now_ns = start_ns
        self.decision_log: deque[dict] = deque(maxlen=history)
        self.equity_history: deque[dict] = deque(maxlen=history)
        self.closed_trades: list[ClosedTrade] = []
        # ROMA-01's inferred deposits (Q3 of docs/roma01.md): each logged cycle, the
        # change of account value not explained by the newly logged trades' P&L
        # (which ROMA-01 multiplies by leverage, Q2) and the change in unrealised P&L
        self.net_deposits = 0.0
        self._last_logged: tuple[float, float] | None = None  # (gross, unrealised) at the last log
        self._trades_logged = 0

    # -- events ------------------------------------------------------------

    def status(self, time_ns: int | None) -> AgentStatus:
        """``agent_status`` event of this agent now."""
        return AgentStatus(
            time_ns,
            self.agent_id,
            self.is_running,
            self.cycle,
            self.last_decision_ns,
            self.profile.name,
            round((self.now_ns - self.start_ns) / NS / 60.0, 4),
        )

    def performance(self, lookback: int = 20, time_ns: int | None = None) -> Performance:
        """Metrics over the last ``lookback`` closed trades (:func:`performance`)."""
        return performance(
            self.closed_trades, lookback, initial=self.exchange.initial_balance, time_ns=time_ns
        )

    def set_running(self, running: bool, time_ns: int) -> AgentStatus:
        """Start or stop deciding (positions keep being marked and stops still
        trigger); returns the ``agent_status`` event to send."""
        self.is_running = bool(running)
        if running and self.next_cycle_ns < time_ns:
            self.next_cycle_ns = time_ns
        return self.status(time_ns)

    # -- per tick ----------------------------------------------------------

    def on_tick(self, market: Market, now: int, emit_marks: bool) -> list:
        """Mark, trigger stops, maybe run a cycle; return the events to send."""
        self.now_ns = now
        ex = self.exchange
        had_positions = bool(ex.positions)
        ex.mark(market.prices())
        events: list = []
        fills = ex.triggers(now)
        t = now
        for f in fills:
            t += 100_000_000  # fills land a little after the tick, in order
            f.time_ns = t
            events.append(self._record_fill(f))
        if self.is_running and now >= self.next_cycle_ns:
            while self.next_cycle_ns <= now:
                self.next_cycle_ns += self.cycle_ns
            cycle_events = self._run_cycle(market, now)
            if cycle_events is not None:
                # a decision cycle always ends with position, account and status
                events.extend(cycle_events)
                return events
            failed = self.status(events[-1].timestamp if events else now)
        else:
            failed = None
        if fills or (emit_marks and had_positions):
            ts = events[-1].timestamp if events else now
            events.append(ex.position_update(ts))
            events.append(ex.account(ts))
        if failed is not None:
            events.append(failed)
        return events

    def _record_fill(self, f: Fill) -> TradeExecuted:
        if f.closed is not None:
            # close_time is the fill time (set after the tick offset)
            c = f.closed
            closed = ClosedTrade(
                f.time_ns, c.symbol, c.side, c.entry_price, c.close_price, c.quantity, c.leverage,
                c.open_time, f.time_ns, c.pnl_usdt, c.pnl_pct,
            )
            self.closed_trades.append(closed)
            f.closed = closed
        else:
            self.exchange.positions[f.symbol].open_time_ns = f.time_ns
        return TradeExecuted(f.time_ns, f.order_id, f.symbol, f.side, f.quantity, f.price, f.leverage, "filled")

    # -- decision cycle ------------------------------------------------------

    def _run_cycle(self, market: Market, now: int) -> list | None:
        rng = self.rng
        self.cycle += 1
        ex = self.exchange
        if rng.random() < self.error_rate:
            # A failed LLM call: the cycle is counted, nothing is decided.
            self.last_error = f"cycle {self.cycle}: LLM request timed out after 60s (simulated)"
            return None
        self.last_error = None
        # ROMA-01 logs the account and positions fetched at the start of the cycle,
        # before its orders (Q4)
        start_account, start_positions = ex.rest_account(), ex.rest_positions()
        style = self.style
        inds = {s: market.indicators(s) for s in market.symbols}
        scores = {s: style.score(inds[s]) for s in market.symbols}
        equity = ex.total_balance
        items: list[DecisionItem] = []
        plans: list[tuple] = []  # (kind, symbol, ...)
        lines: list[str] = []

        ret = (equity / ex.initial_balance - 1.0) * 100.0
        lines.append(
            f"Cycle {self.cycle} as a {style.title}. Equity ${equity:,.2f} ({ret:+.2f}% since start), "
            f"available ${ex.available_balance:,.2f}, margin used {ex.used_percentage:.1f}%, "
            f"{len(ex.positions)} open position(s)."
        )
        lines.append("Market scan (3m bars):")
        for s in market.symbols:
            ind = inds[s]
            sc, why = scores[s]
            lines.append(f"- {SPECS[s].base} {_fmt_price(s, ind.price)} (ATR {ind.atr_pct:.2f}%): {why} -> score {sc:+.2f}")

        # 1. manage open positions
        for pos in ex._sorted_positions():
            s = pos.symbol
            ind = inds[s]
            sc = scores[s][0]
            reason = style.exit(ind, pos.side, sc)
            upnl_pct = pos.pnl_pct
            if reason is None and rng.random() < 0.03:
                reason = "reducing exposure, uncertain tape"
            if reason is not None:
                action = f"close_{pos.side}"
                text = f"{reason}; position {upnl_pct:+.2f}% from entry {_fmt_price(s, pos.entry_price)}"
                items.append(DecisionItem(action, s, pos.quantity, pos.leverage, text, NaN, NaN, NaN,
                                          _confidence(sc, 0.55)))
                plans.append(("close", s))
            else:
                text = (
                    f"thesis intact (score {sc:+.2f}), {upnl_pct:+.2f}% from entry; "
                    f"stop {_fmt_price(s, pos.stop_loss)}, target {_fmt_price(s, pos.take_profit)}"
                )
                items.append(DecisionItem("hold", s, pos.quantity, pos.leverage, text, NaN, pos.stop_loss,
                                          pos.take_profit, _confidence(sc, 0.5)))
        closing = {p[1] for p in plans}

        # 2. new entries, strongest first
        open_after = len(ex.positions) - len(closing)
        thr = style.threshold * (1.0 + rng.uniform(-0.1, 0.1))
        cands = sorted(
            (s for s in market.symbols if s not in ex.positions and abs(scores[s][0]) >= thr),
            key=lambda s: (-abs(scores[s][0]), s),
        )
        new = 0
        skipped: list[str] = []
        # Margin freed by this cycle's closes is not counted: a cautious
        # approximation, like an LLM that sizes off the account it was shown.
        budget_total = max(0.0, equity * 0.6 - (ex.margin - sum(ex.positions[s].margin for s in closing)))
        for s in cands:
            if open_after >= style.max_positions or new >= style.max_new_per_cycle:
                break
            if rng.random() < style.hesitation:
                skipped.append(SPECS[s].base)
                continue
            ind = inds[s]
            sc = scores[s][0]
            side = "long" if sc > 0 else "short"
            lev = rng.choice(style.leverage)
            if style.name == "balanced" and ind.atr_pct > 0.25:
                lev = min(lev, 4)  # volatility-aware sizing
            margin_budget = min(equity * style.margin_fraction * (0.8 + 0.4 * rng.random()), budget_total)
            mark = ind.price
            qty = ex.max_quantity(s, lev, mark, margin_budget)
            if qty <= 0:
                skipped.append(SPECS[s].base)
                continue
            sl_pct = min(max(style.sl_atr * ind.atr_pct, 0.5), 4.0)
            tp_pct = sl_pct * style.tp_ratio
            spec = SPECS[s]
            d = 1 if side == "long" else -1
            sl = _q(mark * (1 - d * sl_pct / 100), spec.tick, spec.price_decimals)
            tp = _q(mark * (1 + d * tp_pct / 100), spec.tick, spec.price_decimals)
            notional = round(qty * mark, 2)
            text = (
                f"{scores[s][1]}; score {sc:+.2f} >= {thr:.2f}. {lev}x, stop {_fmt_price(s, sl)} "
                f"(-{sl_pct:.2f}%), target {_fmt_price(s, tp)} (+{tp_pct:.2f}%)"
            )
            items.append(DecisionItem(f"open_{side}", s, qty, lev, text, notional, sl, tp, _confidence(sc, 0.6)))
            plans.append(("open", s, side, qty, lev, sl, tp))
            budget_total -= notional / lev
            open_after += 1
            new += 1

        if not items:
            best = max(market.symbols, key=lambda s: (abs(scores[s][0]), s))
            text = (
                f"no setup clears the {thr:.2f} bar; strongest is {SPECS[best].base} at "
                f"{scores[best][0]:+.2f}" + (f"; passed on {', '.join(skipped)}" if skipped else "")
            )
            items.append(DecisionItem("wait", None, NaN, None, text, NaN, NaN, NaN, _confidence(0.0, 0.5)))

        acts = [f"{it.action} {SPECS[it.symbol].base}" if it.symbol else it.action for it in items]
        lines.append("Decision: " + ", ".join(acts) + ".")
        if skipped and any(it.action != "wait" for it in items):
            lines.append(f"Held back on {', '.join(skipped)}: waiting for confirmation.")
        reasoning = "\n".join(lines)

        # 3. execute
        events: list = [Decision(now, self.cycle, self.agent_id, reasoning, tuple(items))]
        t = now
        for plan in plans:
            t += 100_000_000
            if plan[0] == "close":
                f = ex.close(plan[1], mark=inds[plan[1]].price, time_ns=t, reason="agent")
            else:
                _, s, side, qty, lev, sl, tp = plan
                try:
                    f = ex.open(s, side, qty, lev, mark=inds[s].price, time_ns=t, stop_loss=sl, take_profit=tp)
                except ValueError:
                    # Sized with a cushion, so this should not happen; an
                    # exchange rejection is still no reason to stop the world.
                    continue
            events.append(self._record_fill(f))
        ex.mark(market.prices())
        self.last_decision_ns = now
        pu = ex.position_update(t)
        acc = ex.account(t)
        events.append(pu)
        events.append(acc)
        self._log_cycle(now, reasoning, items, start_account, start_positions)
        events.append(self.status(t))
        return events

    def _log_cycle(
        self, now: int, reasoning: str, items: Sequence[DecisionItem], acc: dict, positions: list[dict]
    ) -> None:
        gross, upnl = acc["total_wallet_balance"], acc["total_unrealized_profit"]
        new_trades = self.closed_trades[self._trades_logged:]
        self._trades_logged = len(self.closed_trades)
        logged_pnl = sum(t.pnl_usdt * (t.leverage or 1) for t in new_trades)
        flow = 0.0
        if self._last_logged is not None:
            flow = _r8((gross - self._last_logged[0]) - logged_pnl - (upnl - self._last_logged[1]))
        self._last_logged = (gross, upnl)
        self.net_deposits = _r8(self.net_deposits + flow)
        acc.update(
            gross_total_balance=gross,
            adjusted_total_balance=_r8(gross - self.net_deposits),
            net_deposits=self.net_deposits,
            external_cash_flow=flow,
        )
        decisions = []
        for it in items:
            d = {"action": it.action}
            if it.symbol is not None:
                d["symbol"] = it.symbol
            if it.leverage is not None:
                d["leverage"] = it.leverage
            for k in ("position_size_usd", "stop_loss", "take_profit", "quantity"):
                v = getattr(it, k)
                if v == v:
                    d[k] = v
            d["reasoning"] = it.reason
            decisions.append(d)
        ts = iso_naive(now)
        self.decision_log.append(
            {
                "timestamp": ts,
                "cycle_number": self.cycle,
                "chain_of_thought": reasoning,
                "decisions": decisions,
                "account_state": acc,
                "positions": positions,
            }
        )
        adjusted = acc["adjusted_total_balance"]
        self.equity_history.append(
            {
                "timestamp": ts,
                "cycle": self.cycle,
                "equity": adjusted,
                "adjusted_equity": adjusted,
                "gross_equity": gross,
                "unrealized_pnl": upnl,
                # ROMA-01 writes the unrealised P&L under "pnl" too.
                "pnl": upnl,
                "net_deposits": self.net_deposits,
                "external_cash_flow": flow,
            }
        )

    # -- REST views ------------------------------------------------------

    def rest_status(self) -> dict:
        """``/api/agents/{id}`` body."""
        p = self.profile
        st = self.status(None)
        return {
            "agent_id": self.agent_id,
            "id": self.agent_id,
            "name": p.name,
            "is_running": self.is_running,
            "cycle_count": self.cycle,
            "runtime_minutes": st.runtime_minutes,
            "last_decision_time": iso_naive(self.last_decision_ns) if self.last_decision_ns is not None else None,
            "last_error": self.last_error,
            "dex_type": "aster",
            "model_id": p.model_id,
            "model_provider": p.model_provider,
            "style": self.style.name,
            "scan_interval_minutes": self.cycle_ns / NS / 60.0,
        }

    def rest_summary(self) -> dict:
        """One item of ``/api/agents``."""
        p = self.profile
        return {
            "id": self.agent_id,
            "name": p.name,
            "is_running": self.is_running,
            "cycle_count": self.cycle,
            "runtime_minutes": round((self.now_ns - self.start_ns) / NS / 60.0, 4),
            "dex_type": "aster",
            "model_id": p.model_id,
            "model_provider": p.model_provider,
        }

    def rest_decisions(self, limit: int = 20) -> list[dict]:
        """Decision-log records, newest first."""
        if limit <= 0:
            return []
        out = []
        for rec in reversed(self.decision_log):
            out.append(rec)
            if len(out) >= limit:
                break
        return out

    def rest_equity(self, limit: int | None = None) -> list[dict]:
        """Equity points, oldest first (the last ``limit``)."""
        pts = list(self.equity_history)
        return pts[-limit:] if limit else pts

    def rest_trades(self, limit: int | None = None) -> list[dict]:
        """Closed trades, oldest first (the last ``limit``), with naive ISO times."""
        trades = self.closed_trades[-limit:] if limit else self.closed_trades
        out = []
        for t in trades:
            d = event_to_data(t)
            d["open_time"] = iso_naive(t.open_time)
            d["close_time"] = iso_naive(t.close_time)
            out.append(d)
        return out


# ---------------------------------------------------------------- world


class World:
    """Market plus agents, advanced one simulated tick at a time.

    Args:
        agents: agent ids (order decides only the order of returned events).
        seed: seeds the market and, with each id, each agent.
        start_time: simulated start (datetime, ISO text, epoch seconds or ns);
            ``None`` means 2025-11-02T00:00:00Z. Values never depend on it.
        cycle_minutes: simulated minutes between decision cycles.
        tick_seconds: simulated seconds per :meth:`step`.
        initial_balance: each agent's starting wallet.
        volatility_scale: passed to :class:`Market`.
        error_rate: per-cycle probability of a simulated LLM failure.

    Example:
        >>> w = World(["gpt-5"], seed=3, start_time="2025-11-02T00:00:00Z")
        >>> while w.agents["gpt-5"].cycle < 3:
        ...     _ = w.step()
        >>> w.agents["gpt-5"].cycle
        3
    """

    DEFAULT_START = 1762041600 * NS  # 2025-11-02T00:00:00Z

    def __init__(
        self,
        agents: Iterable[str] = ("deepseek-chat-v3.1", "qwen3-max"),
        *,
        seed: int = 0,
        start_time: int | float | str | datetime | None = None,
        cycle_minutes: float = 3.0,
        tick_seconds: float = 5.0,
        initial_balance: float = 10_000.0,
        volatility_scale: float = 1.0,
        error_rate: float = 0.02,
        history: int = 10_000,
    ):
        if isinstance(agents, str):
            agents = (agents,)
        ids = list(agents)
        if not ids:
            raise ValueError("at least one agent is needed")
        for a in ids:
            if not isinstance(a, str) or not a or "/" in a:
                raise ValueError(f"agent ids must be non-empty strings without '/', got {a!r}")
        if len(set(ids)) != len(ids):
            raise ValueError("agent ids must be unique")
        if not cycle_minutes > 0:
            raise ValueError("cycle_minutes must be > 0")
        if not 0.0 <= error_rate < 1.0:
            raise ValueError("error_rate must be in [0, 1)")
        if not initial_balance > 0:
            raise ValueError("initial_balance must be > 0")
        start_ns = to_ns(start_time)
        if start_ns is None:
            start_ns = self.DEFAULT_START
        self.seed = seed
        self.start_ns = start_ns
        self.market = Market(seed, start_ns, tick_seconds=tick_seconds, volatility_scale=volatility_scale)
        self.cycle_ns = int(round(cycle_minutes * 60 * NS))
        self.agents: dict[str, Agent] = {
            a: Agent(
                a,
                seed=seed,
                start_ns=start_ns,
                cycle_ns=self.cycle_ns,
                initial_balance=initial_balance,
                error_rate=error_rate,
                history=history,
            )
            for a in ids
        }
        self.ticks = 0
        prices = self.market.prices()
        for ag in self.agents.values():
            ag.exchange.mark(prices)

    @property
    def time_ns(self) -> int:
        """Current simulated time, int ns UTC."""
        return self.market.time_ns

    def start_events(self) -> list[tuple[str, object]]:
        """The ``agent_status`` (started) and first account/position state."""
        now = self.time_ns
        out: list[tuple[str, object]] = []
        for a, ag in self.agents.items():
            out.append((a, ag.status(now)))
            out.append((a, ag.exchange.position_update(now)))
            out.append((a, ag.exchange.account(now)))
        return out

    def step(self, emit_marks: bool = True) -> list[tuple[str, object]]:
        """Advance one tick; return ``(agent_id, event)`` pairs in send order.

        Args:
            emit_marks: also report position/account changes caused only by
                mark-price moves (the simulator thins these out at high speed).
        """
        self.market.step()
        self.ticks += 1
        now = self.market.time_ns
        out: list[tuple[str, object]] = []
        for a, ag in self.agents.items():
            for ev in ag.on_tick(self.market, now, emit_marks):
                out.append((a, ev))
        return out

    def set_running(self, agent_id: str, running: bool) -> list[tuple[str, object]]:
        """Start or stop an agent; returns its ``agent_status`` event."""
        return [(agent_id, self.agents[agent_id].set_running(running, self.time_ns))]
