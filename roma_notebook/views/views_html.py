"""HTML fragments of the dashboard: positions, decisions feed, status strip, SVG chart.

Each function takes DataFrames (or plain values) and returns an HTML string; no
widgets, no threads. The live dashboard puts these strings into
``ipywidgets.HTML`` (one comm message per change, far cheaper than a widget per
cell), and :meth:`Dashboard.snapshot` joins the same strings into static HTML for
nbconvert, GitHub previews and plain Python.

All text from the stream (reasoning, reasons, symbols, error messages) is
HTML-escaped: it comes from an LLM or a remote server and must not inject markup.

Example:
    >>> import pandas as pd
    >>> html = positions_html(pd.DataFrame({"symbol": ["BTCUSDT"], "side": ["LONG"],
    ...     "position_amt": [0.5], "entry_price": [100.0], "mark_price": [110.0],
    ...     "unrealized_profit": [5.0], "pnl_percentage": [10.0], "leverage": [10]}))
    >>> "BTCUSDT" in html and "+5.00" in html
    True
"""

from __future__ import annotations

import html as _html
import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .formatting import (  # GREEN, RED, fmt_num and fmt_time are public names of this module too
    AMBER,
    GREEN,
    GREY,
    RED,
    action_color,
    fmt_num,
    fmt_time,
    is_missing,
    sign_color,
)

__all__ = [
    "GREEN",
    "RED",
    "positions_html",
    "status_html",
    "leaderboard_html",
    "svg_chart",
    "page_html",
    "fmt_num",
    "fmt_time",
    "group_items",
    "cycle_html",
    "feed_html",
]

# Shared cell style; kept inline because the HTML widget and nbconvert output
# carry no stylesheet of ours.
_TD = "padding:2px 8px;text-align:right;white-space:nowrap"
_TDL = "padding:2px 8px;text-align:left;white-space:nowrap"
_TABLE = "border-collapse:collapse;font-size:12px;font-family:var(--jp-code-font-family,monospace)"
_EMPTY = f'<div style="color:{GREY};font-size:12px;padding:4px">{{}}</div>'


def _esc(v: Any) -> str:
    return _html.escape("" if v is None else str(v), quote=True)


def _pnl_pct(row: Any) -> float:
    """P&L % of margin; the real backend omits it, so derive it like the exchange (ROE)."""
    p = row.get("pnl_percentage", math.nan)
    if not is_missing(p):
        return float(p)
    try:
        pnl = float(row["unrealized_profit"])
        notional = abs(float(row["position_amt"])) * float(row["entry_price"])
        lev = row.get("leverage")
        lev = 1.0 if is_missing(lev) or not lev else float(lev)
        margin = notional / lev
        return pnl / margin * 100.0 if margin else math.nan
    except (KeyError, TypeError, ValueError):
        return math.nan


def positions_html(df: pd.DataFrame, symbol: str | None = None) -> str:
    """The open-positions table: one row per (symbol, side), coloured by P&L sign.

    Args:
        df: rows shaped like the ``positions`` table.
        symbol: show only this symbol (None: all).
    """
    if symbol is not None and len(df):
        df = df[df["symbol"] == symbol]
    if not len(df):
        return _EMPTY.format("no open positions")
    head = ["symbol", "side", "size", "entry", "mark", "P&amp;L", "P&amp;L %", "lev"]
    out = [f'<table class="roma-positions" style="{_TABLE}"><thead><tr>']
    out += [f'<th style="{_TDL if i < 2 else _TD}">{h}</th>' for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for row in df.to_dict("records"):
        pnl = row.get("unrealized_profit")
        color = sign_color(pnl)
        lev = row.get("leverage")
        out.append(
            f'<tr style="color:{color}">'
            f'<td style="{_TDL}"><b>{_esc(row.get("symbol"))}</b></td>'
            f'<td style="{_TDL}">{_esc(row.get("side"))}</td>'
            f'<td style="{_TD}">{fmt_num(row.get("position_amt"), 4)}</td>'
            f'<td style="{_TD}">{fmt_num(row.get("entry_price"), 4)}</td>'
            f'<td style="{_TD}">{fmt_num(row.get("mark_price"), 4)}</td>'
            f'<td style="{_TD}">{fmt_num(pnl, 2, sign=True)}</td>'
            f'<td style="{_TD}">{fmt_num(_pnl_pct(row), 2, sign=True)}</td>'
            f'<td style="{_TD}">{"—" if is_missing(lev) else f"{int(lev)}x"}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def _item_text(item: dict) -> str:
    """``OPEN_LONG BTCUSDT 0.1 @10x`` for one decision item (plain text)."""
    parts = [str(item.get("action") or "?").upper()]
    if not is_missing(item.get("symbol")):
        parts.append(str(item["symbol"]))
    q = item.get("quantity")
    if not is_missing(q):
        parts.append(f"{float(q):g}")
    elif not is_missing(item.get("position_size_usd")):
        parts.append(f"${float(item['position_size_usd']):,.0f}")
    lev = item.get("leverage")
    if not is_missing(lev):
        parts.append(f"@{int(lev)}x")
    return " ".join(parts)


def group_items(decisions: pd.DataFrame) -> dict[tuple[str, Any], list[dict]]:
    """Decision items grouped by (agent_id, cycle), in arrival order."""
    out: dict[tuple[str, Any], list[dict]] = {}
    if not len(decisions):
        return out
    cols = [c for c in ("agent_id", "cycle", "action", "symbol", "quantity", "leverage",
                        "reason", "position_size_usd") if c in decisions.columns]
    for row in decisions[cols].to_dict("records"):
        key = (row.get("agent_id"), None if is_missing(row.get("cycle")) else int(row["cycle"]))
        out.setdefault(key, []).append(row)
    return out


def feed_html(parts: list[str], symbol: str | None, any_cycles: bool) -> str:
    """Wrap rendered cycles (:func:`cycle_html`) into the feed block."""
    if not parts:
        if not any_cycles:
            return _EMPTY.format("no decisions yet")
        return _EMPTY.format(f"no decisions on {_esc(symbol)}")
    return '<div class="roma-feed" style="font-size:12px">' + "".join(parts) + "</div>"


def cycle_html(row: dict, cyc: int | None, items: list[dict]) -> str:
    """One feed entry: cycle, time and action badges; reasoning folds into ``<details>``."""
    badges = "".join(
        f'<span style="color:{action_color(i.get("action"))};margin-right:8px">'
        f"{_esc(_item_text(i))}</span>"
        for i in items
    ) or f'<span style="color:{GREY}">no action</span>'
    reasons = "".join(
        f"<li><b>{_esc(_item_text(i))}</b>: {_esc(i.get('reason'))}</li>"
        for i in items
        if not is_missing(i.get("reason"))
    )
    reasoning = row.get("ai_reasoning")
    body = ""
    if not is_missing(reasoning) and reasoning:
        body += f'<div style="white-space:pre-wrap;margin:4px 0">{_esc(reasoning)}</div>'
    if reasons:
        body += f'<ul style="margin:2px 0 4px 16px;padding:0">{reasons}</ul>'
    label = "—" if cyc is None else f"#{cyc}"
    summary = (
        f'<b>{label}</b> <span style="color:{GREY}">{fmt_time(row.get("timestamp"), True)}</span> '
        f"{badges}"
    )
    if not body:
        return (
            '<div class="roma-cycle" style="padding:2px 0 2px 14px;border-bottom:1px solid #eee">'
            f"{summary}</div>"
        )
    # data-key names the entry across refreshes: the feed widget re-opens entries
    # the user expanded when it redraws
    key = _html.escape(f"{row.get('agent_id')}|{label}|{row.get('timestamp')}", quote=True)
    return (
        f'<details class="roma-cycle" data-key="{key}" style="padding:2px 0;border-bottom:1px solid #eee">'
        f'<summary style="cursor:pointer">{summary}</summary>{body}</details>'
    )


_STATE_COLOR = {
    "live": GREEN,
    "connecting": "#f0a500",
    "reconnecting": "#f0a500",
    "closed": GREY,
    "failed": RED,
    "paused": "#4575b4",
}


def status_html(info: dict) -> str:
    """The status strip: state, running, cycle, last message age, rate, errors.

    Args:
        info: keys ``state``, ``running`` (bool/None), ``cycle``, ``age`` (seconds
            or None), ``rate`` (msg/s or None), ``errors``, ``refresh_errors``,
            ``last_error``, ``paused``, and optionally ``agent`` and
            ``server_error`` (the latest error frame's text).

    Example:
        >>> "failed" in status_html({"state": "failed", "last_error": "unknown agent"})
        True
    """
    state = str(info.get("state") or "—")
    color = _STATE_COLOR.get(state, GREY)
    cells = []
    if info.get("agent"):
        cells.append(f"<b>{_esc(info['agent'])}</b>")
    cells.append(f'<span style="color:{color}">●&nbsp;{_esc(state)}</span>')
    if info.get("paused"):
        cells.append(f'<span style="color:{_STATE_COLOR["paused"]}">⏸&nbsp;paused</span>')
    running = info.get("running")
    if running is not None and not is_missing(running):
        cells.append("agent running" if running else f'<span style="color:{GREY}">agent stopped</span>')
    if not is_missing(info.get("cycle")) and info.get("cycle") is not None:
        cells.append(f"cycle {int(info['cycle'])}")
    age = info.get("age")
    if age is not None and not is_missing(age):
        cells.append(f"last msg {_age(age)} ago")
    rate = info.get("rate")
    if rate is not None and not is_missing(rate):
        cells.append(f"{float(rate):,.1f} msg/s")
    errs = info.get("errors")
    if errs is not None:
        c = RED if errs else "inherit"
        cells.append(f'<span style="color:{c}">errors {int(errs)}</span>')
    rerr = info.get("refresh_errors")
    if rerr:
        cells.append(f'<span style="color:{RED}">view errors {int(rerr)}</span>')
    text = " · ".join(cells)
    err = info.get("last_error")
    if err and (state in ("failed", "reconnecting") or info.get("show_error")):
        text += (
            f'<div style="color:{RED};white-space:pre-wrap;margin-top:2px">'
            f"{_esc(str(err)[:500])}</div>"
        )
    serr = info.get("server_error")
    if serr:
        # the backend said an iteration failed (exchange or database): the stream
        # stays up, so this is news, not a state
        text += (
            f'<div style="color:{AMBER};white-space:pre-wrap;margin-top:2px">server error: '
            f"{_esc(str(serr)[:300])}</div>"
        )
    rlast = info.get("last_refresh_error")
    if rlast:
        text += (
            f'<div style="color:{RED};white-space:pre-wrap;margin-top:2px">view: '
            f"{_esc(str(rlast)[:300])}</div>"
        )
    return f'<div class="roma-status" style="font-size:12px;padding:2px 4px">{text}</div>'


def _age(seconds: float) -> str:
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def leaderboard_html(df: pd.DataFrame) -> str:
    """A leaderboard DataFrame (indexed by agent) as a table; P&L-like columns coloured.

    Columns whose name mentions pnl, return or profit are coloured by sign; floats
    get two decimals. The column set is whatever the group's ``leaderboard()``
    returns, so new metrics appear without a change here.
    """
    if df is None or not len(df):
        return _EMPTY.format("no agents yet")
    cols = list(df.columns)
    signed = {c for c in cols if any(k in str(c).lower() for k in ("pnl", "return", "profit"))}
    out = [f'<table class="roma-leaderboard" style="{_TABLE}"><thead><tr><th style="{_TDL}">{_esc(df.index.name or "agent")}</th>']
    out += [f'<th style="{_TD}">{_esc(c)}</th>' for c in cols]
    out.append("</tr></thead><tbody>")
    for idx, row in zip(df.index, df.itertuples(index=False)):
        out.append(f'<tr><td style="{_TDL}"><b>{_esc(idx)}</b></td>')
        for c, v in zip(cols, row):
            style = _TD + (f";color:{sign_color(v)}" if c in signed else "")
            if isinstance(v, (bool, np.bool_)):
                text = "yes" if v else "no"
            elif isinstance(v, (int, np.integer)):
                text = f"{int(v):,}"
            elif isinstance(v, (float, np.floating)):
                text = fmt_num(v, 2, sign=c in signed)
            elif is_missing(v):
                text = "—"
            else:
                text = _esc(v)
            out.append(f'<td style="{style}">{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def svg_chart(
    series: Sequence[tuple[str, np.ndarray, np.ndarray, str]],
    width: int = 640,
    height: int = 180,
    title: str = "",
) -> str:
    """A small self-contained SVG line chart (no JavaScript needed).

    Args:
        series: ``(name, x, y, colour)``; x in any increasing numeric unit (the
            dashboard passes epoch milliseconds), already decimated.
        width, height: pixel size.
        title: drawn top-left.

    Example:
        >>> svg = svg_chart([("a", np.arange(3.0), np.array([1.0, 3.0, 2.0]), "#333")])
        >>> svg.startswith("<svg") and "polyline" in svg
        True
    """
    pad_l, pad_r, pad_t, pad_b = 64, 8, 18, 16
    xs = [np.asarray(x, float) for _, x, _, _ in series if len(x)]
    ys = [np.asarray(y, float) for _, _, y, _ in series if len(y)]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="font:10px sans-serif">'
        f'<text x="4" y="12">{_esc(title)}</text>'
    )
    finite = [v[np.isfinite(v)] for v in ys]
    finite = [v for v in finite if len(v)]
    if not xs or not finite:
        return head + f'<text x="{width // 2}" y="{height // 2}" fill="{GREY}">no data</text></svg>'
    x0 = min(float(np.nanmin(x)) for x in xs)
    x1 = max(float(np.nanmax(x)) for x in xs)
    y0 = min(float(v.min()) for v in finite)
    y1 = max(float(v.max()) for v in finite)
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    if x1 == x0:
        x1 = x0 + 1
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    parts = [head]
    for val in (y0, y1):
        py = pad_t + h - (val - y0) / (y1 - y0) * h
        parts.append(
            f'<text x="{pad_l - 4}" y="{py + 3:.1f}" text-anchor="end" fill="{GREY}">'
            f"{fmt_num(val)}</text>"
        )
    parts.append(
        f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" fill="none" stroke="#ddd"/>'
    )
    for k, (name, x, y, color) in enumerate(series):
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            continue
        px = pad_l + (x[ok] - x0) / (x1 - x0) * w
        py = pad_t + h - (y[ok] - y0) / (y1 - y0) * h
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
        parts.append(
            f'<polyline fill="none" stroke="{_esc(color)}" stroke-width="1.2" points="{pts}">'
            f"<title>{_esc(name)}</title></polyline>"
        )
        parts.append(
            f'<text x="{pad_l + 4 + 110 * k}" y="{height - 3}" fill="{_esc(color)}">'
            f"{_esc(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def page_html(sections: Iterable[tuple[str, str]], title: str = "") -> str:
    """Join ``(heading, html)`` sections into one static block.

    The root carries ``tex2jax_ignore`` so JupyterLab's MathJax leaves dollar
    amounts in reasoning text alone.
    """
    body = "".join(
        f'<div style="margin:6px 0"><div style="font-weight:600;font-size:12px">{_esc(h)}</div>{s}</div>'
        if h
        else s
        for h, s in sections
    )
    t = f'<div style="font-weight:700">{_esc(title)}</div>' if title else ""
    return f'<div class="roma-dashboard tex2jax_ignore">{t}{body}</div>'
