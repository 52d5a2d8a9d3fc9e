"""Skill or luck: bootstrap intervals for agents' metrics and for their differences.

A leaderboard that ranks agents by a few days of return cannot tell skill from luck.
:func:`compare` puts an interval on each agent's metric and on every pair's difference,
with a plain verdict (``"A beats B at 95 %"`` or ``"not distinguishable"``).

How (so that the numbers can be checked by hand):

* **Returns.** Every agent's account value (``account.total_balance``, the gross value;
  see :func:`roma_notebook.analysis.analytics.equity`) is sampled on one common grid every
  ``period`` (the last value at or before each instant), starting at the latest first
  update among the agents, so that return ``k`` of every agent covers the same hour.
  When updates are sparser than ``period`` the grid is coarsened to cover the median
  update gap (the ``period`` column says what was used) and annualisation follows it:
  ``periods_per_year = 365 days / period``.
* **Circular block bootstrap** (Politis & Romano 1992; the scheme Ledoit & Wolf 2008 use
  for Sharpe ratios): a resample is ``ceil(n / b)`` blocks of ``b`` consecutive returns
  starting at uniform random positions, wrapping around the end, cut to ``n``. Blocks
  keep the autocorrelation of returns inside them. Default ``b = round(n ** (1/3))``,
  the usual rate-optimal order for block bootstraps of smooth statistics (Hall,
  Horowitz & Jing 1995): 9 for a month of hourly returns (720).
* **Paired differences.** All agents are resampled with the SAME indices (the same
  hours), so a market-wide move that hits every agent cancels in the difference, and
  the interval of ``metric(A) - metric(B)`` is computed from the per-resample
  differences, not from two separate intervals. Win rate is over closed trades, which
  are not aligned in time: each agent's trades are block-resampled on their own
  (independently), and so is their difference.
* **Intervals** are percentile intervals at ``level`` (default 95 %). The verdict says
  ``"A beats B at 95 %"`` when the difference's interval excludes 0 in A's favour (for
  max drawdown, lower is better), otherwise ``"not distinguishable"``.
* **Minimum sample.** An interval needs at least :data:`MIN_PERIODS` (30) returns or
  :data:`MIN_TRADES` (10) trades; below that the interval is NaN and ``note`` says why.
  30 returns make ~10 blocks of 3 for the bootstrap, and below ~30 the sample standard
  deviation in a Sharpe ratio is itself off by more than 13 % (its relative standard
  error is ``1 / sqrt(2 (n - 1))``), so an annualised ratio is mostly noise.

Example:
    >>> import roma_notebook as rn
    >>> rec = rn.load(rn.sample_recording(), progress=False)
    >>> c = rn.compare(rec, "sharpe", period="5min", n_boot=500)
    >>> list(c.agents.columns[1:4])
    ['estimate', 'low', 'high']
    >>> bool((c.pairs["verdict"] == "not distinguishable").any())
    True
"""
from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from .analytics import (
    _as_tables,
    _equity,
    _grid_returns,
    _html_table,
    _ns,
    _period_grid,
    _period_label,
    _sampling_period,
    _sharpe_sortino_rows,
    _trades_for_stats,
)

__all__ = [
    "compare",
    "Comparison",
    "METRICS",
    "MIN_PERIODS",
    "MIN_TRADES",
    "default_block",
    "block_bootstrap_indices",
    "ratio_intervals",
]

#: fewest returns behind an annualised ratio or a return-based interval (see module doc)
MIN_PERIODS = 30
#: fewest closed trades behind a win-rate interval (binomial steps of 10 % and coarser below)
MIN_TRADES = 10

#: metric name -> (unit of the estimate, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "return": ("percent", True),
    "sharpe": ("annualised ratio", True),
    "sortino": ("annualised ratio", True),
    "max_drawdown": ("percent below peak", False),
    "win_rate": ("fraction of trades", True),
}
_ALIASES = {"return_pct": "return", "max_drawdown_pct": "max_drawdown", "winrate": "win_rate"}
_YEAR = pd.Timedelta(days=365)


def default_block(n: int) -> int:
    """Default block length of the bootstrap: ``round(n ** (1/3))``, at least 1.

    Example:
        >>> default_block(720), default_block(120), default_block(5)
        (9, 5, 2)
    """
    return max(1, int(round(n ** (1.0 / 3.0)))) if n > 0 else 1


def block_bootstrap_indices(n: int, n_boot: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """Circular block bootstrap: ``(n_boot, n)`` indices into a series of length ``n``.

    Each row is ``ceil(n / block)`` runs of ``block`` consecutive indices, each run
    starting at a uniform random position and wrapping past the end, cut to ``n``.
    Vectorised: one random draw of all block starts, no loop over resamples.

    Args:
        n: Length of the series.
        n_boot: Number of resamples.
        block: Block length (1 = the ordinary iid bootstrap).
        rng: A ``numpy.random.Generator`` (its state decides the draw).

    Returns:
        int64 array of shape ``(n_boot, n)``.

    Example:
        >>> idx = block_bootstrap_indices(10, 3, 4, np.random.default_rng(0))
        >>> idx.shape, bool(((np.diff(idx[:, :4], axis=1) % 10) == 1).all())
        ((3, 10), True)
    """
    if n <= 0:
        return np.empty((n_boot, 0), dtype="int64")
    block = int(min(max(block, 1), n))
    k = -(-n // block)
    starts = rng.integers(0, n, size=(n_boot, k), dtype="int64")
    idx = (starts[:, :, None] + np.arange(block, dtype="int64")) % n
    return idx.reshape(n_boot, k * block)[:, :n]


# --------------------------------------------------------------------------- statistics

def _return_rows(r: np.ndarray) -> np.ndarray:
    """Compounded return in percent of each row (NaN returns count as flat)."""
    ok = np.isfinite(r)
    out = (np.prod(np.where(ok, 1.0 + r, 1.0), axis=1) - 1.0) * 100.0
    return np.where(ok.any(axis=1), out, np.nan)


def _max_drawdown_rows(r: np.ndarray) -> np.ndarray:
    """Largest fall below the running peak, in percent, of the path of each row."""
    ok = np.isfinite(r)
    path = np.cumprod(np.where(ok, 1.0 + r, 1.0), axis=1)
    peak = np.maximum(np.maximum.accumulate(path, axis=1), 1.0)  # the start (1.0) is a peak
    dd = ((peak - path) / peak).max(axis=1, initial=0.0) * 100.0
    return np.where(ok.any(axis=1), dd, np.nan)


def _stat_rows(metric: str, r: np.ndarray, ppy: float) -> np.ndarray:
    """The metric of each row of returns ``r`` (2-D, NaN = no return that period)."""
    if metric == "return":
        return _return_rows(r)
    if metric == "max_drawdown":
        return _max_drawdown_rows(r)
    sharpe, sortino = _sharpe_sortino_rows(r, ppy)
    return sharpe if metric == "sharpe" else sortino


def _win_rows(w: np.ndarray) -> np.ndarray:
    return w.mean(axis=1) if w.shape[1] else np.full(w.shape[0], np.nan)


def _quantiles(boot: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of a bootstrap distribution (non-finite draws ignored)."""
    b = boot[~np.isnan(boot)]
    if len(b) == 0:
        return math.nan, math.nan
    a = (1.0 - level) / 2.0
    # inf draws (a Sortino without a losing period) cannot be interpolated: then pick
    # order statistics instead
    method = "linear" if np.isfinite(b).all() else "inverted_cdf"
    lo, hi = np.quantile(b, [a, 1.0 - a], method=method)
    return float(lo), float(hi)


def _se(boot: np.ndarray) -> float:
    b = boot[np.isfinite(boot)]
    return float(b.std(ddof=1)) if len(b) > 1 else math.nan


def _check_args(n_boot: Any, block: Any, level: Any) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10, got {n_boot!r}")
    if block is not None and (not isinstance(block, (int, np.integer)) or block < 1):
        raise ValueError(f"block must be a positive integer or None, got {block!r}")
    if not (isinstance(level, float | int) and 0.5 <= level < 1.0):
        raise ValueError(f"level must be in [0.5, 1), e.g. 0.95, got {level!r}")


def _level_text(level: float) -> str:
    return f"{level * 100:g}"


def _verdict(a: str, b: str, low: float, high: float, higher_better: bool, level: float) -> str:
    """Plain words for a difference interval of ``metric(a) - metric(b)``."""
    if math.isnan(low) or math.isnan(high):
        return "not distinguishable"
    lv = _level_text(level)
    if low > 0:
        return f"{a} beats {b} at {lv} %" if higher_better else f"{b} beats {a} at {lv} %"
    if high < 0:
        return f"{b} beats {a} at {lv} %" if higher_better else f"{a} beats {b} at {lv} %"
    return "not distinguishable"


def _p_value(d: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference": twice the smaller tail at 0."""
    d = d[~np.isnan(d)]
    if len(d) == 0:
        return math.nan
    return float(min(1.0, 2.0 * min((d <= 0).mean(), (d >= 0).mean())))


def ratio_intervals(
    r: np.ndarray,
    ppy: float,
    *,
    n_boot: int = 1000,
    block: int | None = None,
    seed: int = 0,
    level: float = 0.95,
    min_periods: int = MIN_PERIODS,
) -> dict[str, Any]:
    """Sharpe and Sortino of one return series with block-bootstrap intervals.

    What :func:`roma_notebook.analysis.analytics.metrics` reports per agent. Below
    ``min_periods`` returns every ratio is NaN and ``note`` says why.

    Args:
        r: Period returns (NaN entries are skipped).
        ppy: Periods per year (annualisation factor).
        n_boot, block, seed, level: As for :func:`compare`.
        min_periods: Fewest returns behind a ratio.

    Returns:
        Dict with ``n_periods``, ``sharpe``, ``sharpe_low``, ``sharpe_high``, ``sortino``,
        ``sortino_low``, ``sortino_high`` and ``note`` ("" when all is well).

    Example:
        >>> out = ratio_intervals(np.full(10, 0.01), 8760)
        >>> out["n_periods"], out["note"][:16]
        (10, '10 returns < 30 ')
    """
    r = np.asarray(r, dtype="float64")
    r = r[np.isfinite(r)]
    n = len(r)
    out: dict[str, Any] = {"n_periods": n}
    nan = {k: math.nan for k in ("sharpe", "sharpe_low", "sharpe_high",
                                 "sortino", "sortino_low", "sortino_high")}
    if n < min_periods:
        out.update(nan)
        out["note"] = (f"{n} returns < {min_periods} needed for an annualised ratio"
                       if n else "no returns")
        return out
    sharpe, sortino = _sharpe_sortino_rows(r[None, :], ppy)
    idx = block_bootstrap_indices(n, n_boot, block or default_block(n), np.random.default_rng(seed))
    bs, bso = _sharpe_sortino_rows(r[idx], ppy)
    out.update(sharpe=float(sharpe[0]), sortino=float(sortino[0]))
    out["sharpe_low"], out["sharpe_high"] = _quantiles(bs, level)
    out["sortino_low"], out["sortino_high"] = _quantiles(bso, level)
    out["note"] = "" if np.isfinite(sharpe[0]) else "zero volatility"
    return out


# --------------------------------------------------------------------------- compare

def _grid_matrix(eq: pd.DataFrame, agents: list[str], period: pd.Timedelta
                 ) -> tuple[np.ndarray, pd.Timedelta, np.ndarray]:
    """Returns of every agent on one common grid: ``(A, K)`` matrix, period, grid ends."""
    groups = {a: g for a, g in eq.groupby("agent_id", sort=False)}
    have = [a for a in agents if a in groups and len(groups[a]) >= 2]
    if not have:
        return np.full((len(agents), 0), np.nan), period, np.empty(0, dtype="int64")
    per = max(_sampling_period(groups[a]["timestamp"], period) for a in have)
    start = max(int(_ns(groups[a]["timestamp"])[0]) for a in have)
    end = max(int(_ns(groups[a]["timestamp"])[-1]) for a in have)
    rows, grid = [], None
    for a in agents:
        g = groups.get(a)
        if g is None or len(g) < 2:
            rows.append(None)
            continue
        grid, v = _period_grid(g["timestamp"], g["equity"].to_numpy("float64"), per, start, end)
        rows.append(_grid_returns(v))
    k = max((len(x) for x in rows if x is not None), default=0)
    mat = np.full((len(agents), k), np.nan)
    for i, x in enumerate(rows):
        if x is not None:
            mat[i, : len(x)] = x
    return mat, per, (grid[1:] if grid is not None else np.empty(0, dtype="int64"))


class Comparison:
    """What :func:`compare` returns: per-agent intervals, pairwise verdicts, a forest plot.

    Attributes:
        metric: The metric compared.
        level: Confidence level of the intervals (0.95 = 95 %).
        agents: DataFrame indexed by ``agent_id``, best estimate first: ``estimate``,
            ``low``, ``high`` (the interval), ``se`` (bootstrap standard error), ``n_obs``,
            ``unit`` (what ``n_obs`` counts), ``period``, ``block``, ``rank`` and ``note``.
        pairs: One row per pair, the better-estimated agent as ``a``: ``a``, ``b``,
            ``estimate`` (``metric(a) - metric(b)``), ``low``, ``high``, ``p_value``
            (two-sided bootstrap), ``verdict`` and ``note``.
        settings: ``n_boot``, ``block``, ``seed``, ``period``, ``periods_per_year``.

    Example:
        >>> c = compare(rec, "sharpe")                 # doctest: +SKIP
        >>> c.pairs[["a", "b", "verdict"]]             # doctest: +SKIP
        >>> c.figure                                   # forest plot   # doctest: +SKIP
    """

    def __init__(self, metric: str, level: float, agents: pd.DataFrame, pairs: pd.DataFrame,
                 settings: dict[str, Any]):
        self.metric = metric
        self.level = level
        self.agents = agents
        self.pairs = pairs
        self.settings = settings

    def to_frame(self) -> pd.DataFrame:
        """Agents and pairs in one long frame (``kind`` = ``agent`` or ``difference``)."""
        a = self.agents.reset_index().rename(columns={"agent_id": "label"}).assign(kind="agent")
        p = self.pairs.assign(label=self.pairs["a"] + " − " + self.pairs["b"], kind="difference")
        cols = ["kind", "label", "estimate", "low", "high", "verdict", "note"]
        a["verdict"] = ""
        return pd.concat([a[cols], p[cols]], ignore_index=True)

    @property
    def figure(self) -> Any:
        """Forest plot (a plain ``plotly.graph_objects.Figure``): agents above, differences below."""
        import plotly.graph_objects as go  # lazy: plotly import is slow
        from plotly.subplots import make_subplots

        lv = _level_text(self.level)
        fig = make_subplots(rows=2, cols=1, vertical_spacing=0.16,
                            row_heights=[max(1, len(self.agents)), max(1, len(self.pairs))],
                            subplot_titles=(f"{self.metric} per agent ({lv} % interval)",
                                            f"difference a − b ({lv} % interval)"))
        ag = self.agents.iloc[::-1]  # plotly draws categories bottom-up: best on top
        fig.add_trace(go.Scatter(
            x=ag["estimate"], y=ag.index.astype(str), mode="markers", name="agent",
            marker=dict(size=9, color="#1f77b4"),
            error_x=dict(type="data", symmetric=False, array=(ag["high"] - ag["estimate"]),
                         arrayminus=(ag["estimate"] - ag["low"])),
            hovertemplate="%{y}: %{x:.4g}<extra></extra>"), row=1, col=1)
        pr = self.pairs.iloc[::-1]
        colors = ["#2ca02c" if "beats" in v else "#7f7f7f" for v in pr["verdict"]]
        fig.add_trace(go.Scatter(
            x=pr["estimate"], y=(pr["a"] + " − " + pr["b"]).astype(str), mode="markers",
            name="difference", marker=dict(size=9, color=colors),
            error_x=dict(type="data", symmetric=False, array=(pr["high"] - pr["estimate"]),
                         arrayminus=(pr["estimate"] - pr["low"])),
            text=pr["verdict"], hovertemplate="%{y}: %{x:.4g}<br>%{text}<extra></extra>"),
            row=2, col=1)
        fig.add_vline(x=0, line=dict(color="#999", dash="dot"), row=2, col=1)
        fig.update_layout(template="plotly_white", showlegend=False,
                          height=160 + 28 * (len(self.agents) + len(self.pairs)),
                          margin=dict(l=10, r=20, t=40, b=30))
        return fig

    def _repr_html_(self) -> str:
        s = self.settings
        head = (f"<h4>{html.escape(self.metric)}: skill or luck</h4>"
                f"<p>{_level_text(self.level)} % intervals from a circular block bootstrap "
                f"({s['n_boot']} resamples, block {s['block']}, seed {s['seed']}, "
                f"period {html.escape(str(s['period']))}).</p>")
        return ('<div class="roma-report">' + head + _html_table(self.agents)
                + "<h4>Pairs</h4>" + _html_table(self.pairs, index=False) + "</div>")

    def __repr__(self) -> str:
        lines = [f"Comparison of {self.metric} ({_level_text(self.level)} % intervals)",
                 self.agents[["estimate", "low", "high", "n_obs"]].to_string()]
        if len(self.pairs):
            lines.append(self.pairs[["a", "b", "estimate", "low", "high", "verdict"]].to_string(index=False))
        return "\n".join(lines)


def compare(
    source: Any,
    metric: str = "sharpe",
    *,
    n_boot: int = 2000,
    block: int | None = None,
    seed: int = 0,
    period: str | pd.Timedelta = "1h",
    level: float = 0.95,
    periods_per_year: float | None = None,
    min_periods: int = MIN_PERIODS,
) -> Comparison:
    """Is the difference between agents skill or luck? Intervals and paired verdicts.

    Per agent: ``metric`` with a percentile interval from a circular block bootstrap of
    its return series (autocorrelation kept inside blocks). Per pair: the difference
    ``metric(a) - metric(b)`` with an interval from the same resampled periods (paired),
    and a verdict: ``"a beats b at 95 %"`` or ``"not distinguishable"``. See the module
    docstring for the method, the common grid and the minimum sample sizes.

    Metrics: ``"return"`` (compounded, percent), ``"sharpe"`` and ``"sortino"``
    (annualised with the grid's period, the formulas of
    :func:`~roma_notebook.analysis.analytics.metrics`), ``"max_drawdown"`` (percent below the
    running peak of the sampled curve; lower is better) and ``"win_rate"`` (fraction of
    closed trades with P&L > 0, trades resampled per agent).

    Args:
        source: A stream, stream group, recording or dict of tables.
        metric: One of :data:`METRICS` (``return_pct``/``max_drawdown_pct`` accepted).
        n_boot: Number of bootstrap resamples.
        block: Block length; default ``round(n ** (1/3))`` of the series length.
        seed: Seed of the resampling; the same seed gives the same result.
        period: Sampling period of the account curves (coarsened when updates are sparser).
        level: Confidence level of every interval.
        periods_per_year: Annualisation factor per ``period``; default 365 days / period.
        min_periods: Fewest returns behind an interval (:data:`MIN_PERIODS`).

    Returns:
        A :class:`Comparison` (``.agents``, ``.pairs``, ``.figure``).

    Example:
        >>> c = compare(rec, "sharpe", seed=1)                    # doctest: +SKIP
        >>> c.agents[["estimate", "low", "high"]]                 # doctest: +SKIP
        >>> c.pairs.loc[c.pairs.verdict != "not distinguishable"]  # doctest: +SKIP
    """
    name = _ALIASES.get(str(metric).lower(), str(metric).lower())
    if name not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    _check_args(n_boot, block, level)
    per = pd.Timedelta(period)
    if pd.isna(per) or per <= pd.Timedelta(0):
        raise ValueError(f"period must be a positive duration, got {period!r}")
    unit_text, higher = METRICS[name]
    rng = np.random.default_rng(seed)
    tables = _as_tables(source, "account", "trades", "closed_trades")

    est: dict[str, float] = {}
    boot: dict[str, np.ndarray] = {}
    n_obs: dict[str, int] = {}
    notes: dict[str, str] = {}
    used_block: dict[str, int] = {}
    pair_fn = None
    if name == "win_rate":
        trades = _trades_for_stats(tables)
        trades = trades[trades["pnl_usdt"].notna()]
        agents = sorted(set(trades["agent_id"]))
        per_label = "trades"
        ppy = math.nan
        for a in agents:  # sorted order: the draws do not depend on the input's row order
            w = (trades.loc[trades["agent_id"] == a, "pnl_usdt"].to_numpy("float64") > 0).astype("float64")
            n = len(w)
            n_obs[a] = n
            est[a] = float(w.mean()) if n else math.nan
            b = block or default_block(n)
            used_block[a] = min(b, max(n, 1))
            boot[a] = _win_rows(w[block_bootstrap_indices(n, n_boot, b, rng)])
            notes[a] = "" if n >= MIN_TRADES else f"{n} trades < {MIN_TRADES} needed for an interval"
        unit = "trades"
    else:
        eq = _equity(tables["account"])
        agents = sorted(set(eq["agent_id"]))
        mat, per_used, _ = _grid_matrix(eq, agents, per)
        per_label = _period_label(per_used)
        ppy = ((float(periods_per_year) * (per / per_used)) if periods_per_year is not None
               else _YEAR / per_used)
        k = mat.shape[1]
        b = block or default_block(k)
        idx = block_bootstrap_indices(k, n_boot, b, rng)
        ok = np.isfinite(mat)
        for i, a in enumerate(agents):
            n = int(ok[i].sum())
            n_obs[a] = n
            used_block[a] = min(b, max(k, 1))
            est[a] = float(_stat_rows(name, mat[i][None, :], ppy)[0]) if n else math.nan
            boot[a] = _stat_rows(name, mat[i][idx], ppy) if k else np.full(n_boot, np.nan)
            notes[a] = "" if n >= min_periods else f"{n} returns < {min_periods} needed for an interval"
        unit = f"{per_label} returns"
        row_of = {a: i for i, a in enumerate(agents)}

        def pair_fn(a: str, c: str) -> tuple[float, np.ndarray]:
            ia, ic = row_of[a], row_of[c]
            if (ok[ia] == ok[ic]).all():
                return est[a] - est[c], boot[a] - boot[c]
            both = ok[ia] & ok[ic]  # pair over the periods both agents have
            ra, rc = np.where(both, mat[ia], np.nan), np.where(both, mat[ic], np.nan)
            e = float(_stat_rows(name, ra[None, :], ppy)[0] - _stat_rows(name, rc[None, :], ppy)[0])
            return e, _stat_rows(name, ra[idx], ppy) - _stat_rows(name, rc[idx], ppy)

    enough = {a: not notes[a] for a in agents}
    rows = []
    for a in agents:
        lo, hi = _quantiles(boot[a], level) if enough[a] else (math.nan, math.nan)
        rows.append({"agent_id": a, "metric": name, "estimate": est[a], "low": lo, "high": hi,
                     "se": _se(boot[a]) if enough[a] else math.nan, "n_obs": n_obs[a],
                     "unit": unit, "period": per_label, "block": used_block[a], "note": notes[a]})
    dtypes = {"metric": "string", "estimate": "float64", "low": "float64", "high": "float64",
              "se": "float64", "n_obs": "int64", "unit": "string", "period": "string",
              "block": "int64", "note": "string"}
    ag = pd.DataFrame(rows, columns=["agent_id", *dtypes]).astype({"agent_id": "string", **dtypes})
    # Best first: the order a leaderboard would show, and the order pairs are read in.
    key = ag["estimate"] if higher else -ag["estimate"]
    ag = ag.assign(_k=key).sort_values(["_k", "agent_id"], ascending=[False, True],
                                       na_position="last", kind="mergesort").drop(columns="_k")
    ag = ag.set_index("agent_id")
    ag.insert(len(ag.columns) - 1, "rank", np.arange(1, len(ag) + 1, dtype="int64"))

    order = list(ag.index)
    prow = []
    for i, a in enumerate(order):
        for c in order[i + 1:]:
            if pair_fn is not None:
                d_est, d = pair_fn(a, c)
            else:  # independent resamples: trades of two agents are not paired in time
                d_est, d = est[a] - est[c], boot[a] - boot[c]
            if enough[a] and enough[c]:
                lo, hi = _quantiles(d, level)
                verdict, note, p = _verdict(a, c, lo, hi, higher, level), "", _p_value(d)
            else:
                lo = hi = p = math.nan
                verdict = "not distinguishable"
                note = "too few observations: " + "; ".join(
                    f"{x}: {notes[x]}" for x in (a, c) if notes[x])
            prow.append({"a": a, "b": c, "estimate": d_est, "low": lo, "high": hi,
                         "p_value": p, "verdict": verdict, "note": note})
    pdt = {"a": "string", "b": "string", "estimate": "float64", "low": "float64",
           "high": "float64", "p_value": "float64", "verdict": "string", "note": "string"}
    pairs = pd.DataFrame(prow, columns=list(pdt)).astype(pdt)
    settings = {"n_boot": int(n_boot), "block": (block or "n^(1/3)"), "seed": seed,
                "period": per_label, "periods_per_year": ppy, "unit": unit_text}
    return Comparison(name, float(level), ag, pairs, settings)
