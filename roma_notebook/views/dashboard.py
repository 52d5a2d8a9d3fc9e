"""Live Jupyter dashboards of one agent (:class:`Dashboard`) or a group (:class:`GroupDashboard`).

A dashboard reads a source's :class:`~roma_notebook.core.tables.Tables` and pushes
changes to widgets from the shared background loop, so it keeps moving while
other cells run. Design points, each measured (see
``benchmarks/bench_dashboard.py``):

- One ``go.FigureWidget`` per dashboard, with subplots: each costs seconds to
  create cold, so it is built once and afterwards only its data changes.
- One render scheduler (:class:`~roma_notebook.views.render_scheduler.RenderScheduler`)
  ticks at most ``fps`` times a second and refreshes only when ``tables.version``
  (or a control) changed. A refresh sends one ``fig.batch_update()`` and holds
  the other widgets' sync, so a burst of 1,000 messages costs one frame.
- Histories longer than ``max_points`` are min/max-decimated
  (:mod:`roma_notebook.views.decimate`) before they reach the browser: spikes survive
  and a million rows ship as at most ``max_points`` points per trace.
- Zooming or panning re-decimates the visible range from the full history on the
  next frame (:mod:`roma_notebook.views.zoom`); a double-click returns to the overview.
- Tables and feeds are ``ipywidgets.HTML`` strings (one message per change); the
  background thread never prints and never uses ``with output:``.
- Nothing raises into the kernel: a failing refresh is caught, counted
  (``refresh_errors``) and shown in the status strip.

Example:
    >>> from roma_notebook.core.tables import Tables
    >>> class Source:                      # anything with .tables works (a stream, a recording)
    ...     agent_id, tables = "demo", Tables()
    >>> d = Dashboard(Source(), fps=2)
    >>> "no open positions" in d.snapshot()
    True
    >>> d.close()
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from .render_scheduler import RenderScheduler
from .decimate import MinMaxCache
from .zoom import XZoom, zoom_slice
from .views_html import (
    GREEN,
    RED,
    leaderboard_html,
    page_html,
    positions_html,
    status_html,
    svg_chart,
)
from .views_series import (
    WINDOWS,
    AccountSeries,
    CycleLog,
    FillLog,
    chart_xy,
    place_markers,
    parse_window,
    window_slice,
)

__all__ = ["Dashboard", "GroupDashboard"]

_WINDOW_LABELS = {"1h": "last 1h", "6h": "last 6h", "24h": "last 24h", "all": "all"}
_ALL = ""  # symbol dropdown value meaning "all symbols"
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")
# Above this many points per trace WebGL draws faster than SVG; below it SVG is
# cheaper to start and does not use up the browser's ~16 WebGL contexts.
_WEBGL_ABOVE = 5000


def _check_args(fps: Any, max_points: Any) -> None:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 60:
        raise ValueError(f"fps must be a number in (0, 60], got {fps!r}")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 10:
        raise ValueError(f"max_points must be an int >= 10, got {max_points!r}")


def _widgets():
    # imported on first dashboard, never at package import (ipywidgets and plotly
    # cost ~0.5 s to import and a plain DataFrame user never needs them)
    import ipywidgets as W
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    return W, go, make_subplots


_FIGURE_CLASS: Any = None


def _figure_class() -> Any:
    """A ``go.FigureWidget`` whose update messages are complete for every trace they touch.

    Two things in plotly 7.1's widget, measured in JupyterLab 4.6, and fixed here
    by rewriting the one message a ``batch_update`` sends:

    - A batch that changes a property on some traces only sends a placeholder for
      the others, and the widget's model in the page stores that placeholder as the
      value. Every view created later (a second ``display``, a page reload) then
      loses colours, hover texts or whole series. The message is filled in with
      the current values of the untouched traces instead.
    - When an update replaces the x data of a shown figure, plotly.js re-guesses
      the axis type and draws epoch milliseconds on a ``linear`` axis. The axis
      type rides along in the same message, so there is still a single redraw.

    It also hands every relayout the page reports (zoom, pan, double-click) to
    ``_relayout_hooks``, after noting ``autorange: False`` for an axis given a
    range, as plotly.js does in the page: otherwise a later ``autorange = True``
    set from Python would equal the stale value and never be sent.
    """
    global _FIGURE_CLASS
    if _FIGURE_CLASS is None:
        import plotly.graph_objects as go
        from plotly.basedatatypes import Undefined

        class CompleteUpdateFigureWidget(go.FigureWidget):
            _date_axes: tuple[str, ...] = ()
            _relayout_hooks: tuple[Any, ...] = ()

            def plotly_relayout(self, relayout_data, **kwargs):
                data = dict(relayout_data or {})
                for key in list(data):
                    axis, _, prop = key.partition(".")
                    if prop.startswith("range") and axis[1:5] == "axis":
                        data.setdefault(f"{axis}.autorange", False)
                super().plotly_relayout(data, **kwargs)
                for hook in self._relayout_hooks:
                    hook(data)

            def _send_update_msg(self, restyle_data, relayout_data, trace_indexes=None,
                                 source_view_id=None):
                idx = self._normalize_trace_indexes(trace_indexes)
                full = {}
                for key, vals in (restyle_data or {}).items():
                    if isinstance(vals, list) and any(v is Undefined for v in vals):
                        vals = [self.data[t][key] if v is Undefined else v
                                for t, v in zip(idx, vals)]
                    full[key] = vals
                relayout_data = dict(relayout_data or {})
                if "x" in full:
                    for ax in self._date_axes:
                        relayout_data.setdefault(f"{ax}.type", "date")
                return super()._send_update_msg(full, relayout_data, idx, source_view_id)

        _FIGURE_CLASS = CompleteUpdateFigureWidget
    return _FIGURE_CLASS


# Redraws the feed's HTML and re-opens the entries (``<details data-key>``) that
# were open: an ipywidgets.HTML replaces its DOM on every change, which folded an
# entry the user had just expanded at the next refresh (every few seconds).
_FEED_ESM = """
function render({ model, el }) {
  const draw = () => {
    const open = new Set(Array.from(el.querySelectorAll("details[data-key][open]"), (d) => d.dataset.key));
    el.innerHTML = model.get("value");
    for (const d of el.querySelectorAll("details[data-key]")) {
      if (open.has(d.dataset.key)) d.open = true;
    }
  };
  draw();
  model.on("change:value", draw);
  return () => model.off("change:value", draw);
}
export default { render };
"""

_FEED_CLASS: Any = None


def _feed_class() -> Any:
    """An HTML widget whose expanded ``<details data-key>`` entries stay expanded across updates."""
    global _FEED_CLASS
    if _FEED_CLASS is None:
        import anywidget
        import traitlets

        class FeedHTML(anywidget.AnyWidget):
            _esm = _FEED_ESM
            value = traitlets.Unicode("").tag(sync=True)

        _FEED_CLASS = FeedHTML
    return _FEED_CLASS


def _placeholder(what: str) -> Any:
    """Show "starting ..." in the running cell at once; None outside a kernel's cell.

    Building a dashboard costs seconds the first time in a kernel (plotly's widget),
    and the cell would show nothing meanwhile.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        from IPython import get_ipython

        ip = get_ipython()
        if ip is None or getattr(ip, "kernel", None) is None:
            return None
        from IPython.display import display

        return display(
            {"text/html": f'<div class="roma-placeholder" style="color:#777;padding:6px 0">'
                          f"Starting the live {what}&hellip; (the first one in a kernel takes a few seconds)</div>",
             "text/plain": f"starting the live {what}..."},
            raw=True, display_id=True,
        )
    except Exception:  # noqa: BLE001 - a placeholder must never stop the dashboard
        return None


def _clear_placeholder(handle: Any) -> None:
    if handle is not None:
        with contextlib.suppress(Exception):
            handle.update({"text/html": "", "text/plain": ""}, raw=True)


def _window_options(key: str) -> list[tuple[str, str]]:
    opts = [(_WINDOW_LABELS[k], k) for k in WINDOWS]
    if key not in WINDOWS:
        opts.insert(0, (f"last {key}", key))
    return opts


def _safe_stats(src: Any) -> dict[str, dict]:
    """A live source's ``stats()`` as ``{agent_id: {column: value}}``; empty for a
    recording (nothing is live) or when the source cannot say."""
    fn = getattr(src, "stats", None)
    if fn is None or getattr(src, "state", None) is None:
        return {}
    try:
        df = fn()
        return {str(a): {k: (None if v is pd.NaT or v is pd.NA else v) for k, v in row.items()}
                for a, row in df.to_dict("index").items()}
    except Exception:  # noqa: BLE001 - a status strip must not take the view down
        return {}


def _age_seconds(ts: Any) -> float | None:
    if ts is None or ts is pd.NaT:
        return None
    try:
        return (pd.Timestamp.now(tz="UTC") - pd.Timestamp(ts)).total_seconds()
    except (TypeError, ValueError):
        return None


def _na(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _close_widget(w: Any) -> None:
    import ipywidgets as W

    for sub in (getattr(w, "layout", None), getattr(w, "style", None)):
        if isinstance(sub, W.Widget) and sub is not w:
            with contextlib.suppress(Exception):
                sub.close()
    with contextlib.suppress(Exception):
        w.close()


class _ViewBase:
    """What both dashboards share: scheduler, error capture, pause, display, close."""

    refresh_count: int
    figure_update_count: int

    def _stats_of(self, src: Any) -> dict[str, dict]:
        """``src.stats()`` per agent (see :func:`_safe_stats`), read at most twice a second:
        it builds a DataFrame (~1 ms) and the strip shows rates and ages to a tenth of a
        second at best."""
        now = time.monotonic()
        hit = self._stats_cache
        if hit is None or now - hit[0] >= 0.5:
            hit = self._stats_cache = (now, _safe_stats(src))
        return hit[1]

    def _init_common(self, fps: float, max_points: int, window: Any) -> None:
        _check_args(fps, max_points)
        self._stats_cache: tuple[float, dict[str, dict]] | None = None
        self.fps = float(fps)
        self.max_points = int(max_points)
        self._window_key, self._window_ns = parse_window(window)
        self.refresh_count = 0  # full refreshes (data or controls changed)
        self.figure_update_count = 0  # fig.batch_update() calls
        # the zoom range (epoch ns) the figure was last drawn for, None for the overview
        self.drawn_zoom: tuple[int, int] | None = None
        self._draw_zoom: tuple[int, int] | None = None  # the range this refresh draws
        self.status_refresh_count = 0  # status-only refreshes (message age moves on)
        self.refresh_errors = 0
        self.last_refresh_error: str | None = None
        self.last_refresh_ms = 0.0
        # monotonic start times of recent refreshes: lets tests check the rate cap
        self.refresh_times: deque[float] = deque(maxlen=1000)
        self._lock = threading.RLock()  # a refresh and close() never overlap
        self._closed = False
        self._paused = False
        self._controls_version = 0
        self._last_key: Any = None
        self._last_status_at = 0.0
        self._widgets_made: list[Any] = []
        self._scheduler: RenderScheduler | None = None
        self.status_period = 1.0  # seconds between status-only refreshes
        self._zoom = XZoom()  # the figure's x range; dashboards set its axes
        self._zoom_decim: dict[str, MinMaxCache] = {}  # apart from the overview's caches
        self._autorange_pending = False

    # --------------------------------------------------------------- scheduling

    def _start(self) -> None:
        self._scheduler = RenderScheduler(self._tick, fps=self.fps).start()

    def _change_key(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _refresh_now(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _refresh_status_now(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _tick(self) -> None:
        """One scheduler frame: refresh if anything changed, else maybe the status."""
        if self._closed or self._paused:
            return
        with self._lock:
            if self._closed or self._paused:  # (paused while this tick waited for the lock)
                return
            try:
                key = self._change_key()
                if key != self._last_key:
                    s = self._scheduler
                    self._refresh(key, s.tick_started if s is not None else None)
                elif time.monotonic() - self._last_status_at >= self.status_period:
                    self._refresh_status_now()
                    self.status_refresh_count += 1
                    self._last_status_at = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - never raise into the loop or kernel
                self._note_error(exc)

    def _refresh(self, key: Any = None, started: float | None = None) -> None:
        # the scheduler's tick start, so recorded times keep its spacing guarantee
        self.refresh_times.append(time.monotonic() if started is None else started)
        t0 = time.perf_counter()
        try:
            if key is None:
                key = self._change_key()
            self._refresh_now()
            self._last_key = key
        except Exception as exc:  # noqa: BLE001
            self._last_key = key  # don't retry a broken frame at full rate
            self._note_error(exc)
        finally:
            self.refresh_count += 1
            self.last_refresh_ms = (time.perf_counter() - t0) * 1e3
            self._last_status_at = time.monotonic()

    def _note_error(self, exc: BaseException) -> None:
        self.refresh_errors += 1
        self.last_refresh_error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            self._refresh_status_now()

    def refresh(self) -> None:
        """Refresh now, from any thread (normally the scheduler does this)."""
        with self._lock:
            if not self._closed:
                self._refresh()

    # --------------------------------------------------------------- controls

    def _on_control(self, change: dict) -> None:
        # runs on the kernel thread when the user clicks: only flag the change,
        # the scheduler renders it on its next frame (at most 1/fps later)
        self._controls_version += 1

    def _on_pause(self, change: dict) -> None:
        # under the refresh lock: a refresh already running ends first, so once
        # pause() returns the view holds still
        with self._lock:
            self._paused = bool(change["new"])
            btn = change["owner"]
            btn.description = "Resume" if self._paused else "Pause"
            btn.icon = "play" if self._paused else "pause"
            self._controls_version += 1
            if self._paused:
                with contextlib.suppress(Exception):
                    self._refresh_status_now()

    @property
    def paused(self) -> bool:
        """Whether updates are paused (the Pause toggle)."""
        return self._paused

    def pause(self) -> None:
        """Stop pushing updates (the view keeps its last frame)."""
        self.pause_button.value = True

    def resume(self) -> None:
        """Push updates again; the next frame catches up at once."""
        self.pause_button.value = False

    def _make_controls(self, W: Any) -> None:
        self.pause_button = W.ToggleButton(
            value=False, description="Pause", icon="pause", tooltip="pause/resume live updates",
            layout=W.Layout(width="100px"),
        )
        self.pause_button.observe(self._on_pause, "value")
        self.window_dropdown = W.Dropdown(
            options=_window_options(self._window_key), value=self._window_key,
            description="window", layout=W.Layout(width="180px"),
            style={"description_width": "50px"},
        )
        self.window_dropdown.observe(self._on_window, "value")
        self._widgets_made += [self.pause_button, self.window_dropdown]

    def _on_window(self, change: dict) -> None:
        self._window_key, self._window_ns = parse_window(change["new"])
        if self._zoom.reset():  # a new window shows the window, not an old zoom
            self._autorange_pending = True
        self._controls_version += 1

    # --------------------------------------------------------------- zoom

    def _watch_zoom(self, fig: Any, axes: tuple[str, ...]) -> None:
        self._zoom = XZoom(axes)
        fig._relayout_hooks = (self._on_relayout,)

    def _on_relayout(self, data: dict) -> None:
        # the kernel thread, when the page reports a zoom, pan or double-click:
        # only note it; the scheduler re-decimates on its next frame
        try:
            if self._zoom.relayout(data):
                self._controls_version += 1
        except Exception as exc:  # noqa: BLE001 - a UI callback must not raise
            self._note_error(exc)

    @property
    def x_range(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The x range the user zoomed to (UTC), or None when showing the overview."""
        r = self._zoom.range_ns
        return None if r is None else (pd.Timestamp(r[0], tz="UTC"), pd.Timestamp(r[1], tz="UTC"))

    def _zoomed_xy(self, s: AccountSeries, which: str, y: np.ndarray, end_ns: int | None):
        """Decimated ``(x, y)`` of one trace: the zoomed range when zoomed, else the window."""
        r = self._draw_zoom
        g = (s.generation, self.max_points)
        if r is not None:
            sel = zoom_slice(s.x, s.monotonic, r[0], r[1])
            cache = self._zoom_decim.setdefault(which, MinMaxCache())
        else:
            sel = window_slice(s.x, s.monotonic, end_ns, self._window_ns)
            cache = self._decim.setdefault(which, MinMaxCache())
        return chart_xy(s.x, y, s.offset, self.max_points, sel, cache, g)

    def _apply_autorange(self, fig: Any) -> None:
        # inside the refresh's batch_update: the figure leaves the old zoom
        if self._autorange_pending:
            for ax in self._zoom.axes:
                fig.layout[ax].autorange = True
            self._autorange_pending = False

    # --------------------------------------------------------------- display

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kw: Any) -> dict:
        """The live widget view, plus static HTML for front ends without widgets."""
        bundle: dict = {}
        make = getattr(self.widget, "_repr_mimebundle_", None)
        if not self._closed and callable(make):
            with contextlib.suppress(Exception):
                bundle = dict(make(**kw) or {})
        try:
            bundle["text/html"] = self.snapshot()
        except Exception as exc:  # noqa: BLE001 - display must never raise
            bundle["text/html"] = f"<pre>dashboard snapshot failed: {type(exc).__name__}</pre>"
        bundle["text/plain"] = repr(self)
        return bundle

    def stats(self) -> dict:
        """Counters of this view: refreshes, figure updates, errors, last cost."""
        s = self._scheduler
        return {
            "refreshes": self.refresh_count,
            "figure_updates": self.figure_update_count,
            "status_refreshes": self.status_refresh_count,
            "refresh_errors": self.refresh_errors,
            "last_refresh_ms": self.last_refresh_ms,
            "ticks": s.ticks if s else 0,
            "scheduler_running": bool(s and s.running),
        }

    def close(self) -> None:
        """Stop the scheduler and close every widget (idempotent, any thread)."""
        if self._closed:
            return
        self._closed = True
        if self._scheduler is not None:
            self._scheduler.stop()
        with self._lock:
            self._close_children()
            for w in reversed(self._widgets_made):
                _close_widget(w)

    def _close_children(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Dashboard(_ViewBase):
    """Live view of one agent: account chart, fills, decisions, positions, status.

    Args:
        source: an ``AgentStream`` (or anything with ``.tables``; ``agent_id``,
            ``state``, ``last_error``, ``stats()`` and ``_add_closer`` are used when
            present, so a ``Recording`` shows a static view).
        fps: at most this many refreshes per second (default 4).
        max_points: point budget per chart trace; longer histories are decimated.
        window: initial time window: None/"all", "1h", "6h", "24h" or a duration.

    Attributes:
        widget: the ``ipywidgets.VBox`` to display (``display(d)`` does it).
        figure: the ``go.FigureWidget`` (balance, fills, decisions; unrealised P&L).
        refresh_count, figure_update_count, refresh_errors: counters for tests.
        drawn_zoom: the zoom range (epoch ns) the figure was last drawn for, None
            for the overview (:attr:`x_range` is the range asked for).

    Example:
        >>> import roma_notebook as rn                                # doctest: +SKIP
        >>> sim = rn.Simulator(seed=7, speed=60).start()              # doctest: +SKIP
        >>> stream = rn.connect("deepseek-chat-v3.1", url=sim.url)    # doctest: +SKIP
        >>> stream.dashboard()            # same as Dashboard(stream)  # doctest: +SKIP
    """

    #: trace order in :attr:`figure`
    TRACES = ("total balance", "buys", "sells", "decisions", "unrealised P&L")

    def __init__(
        self,
        source: Any,
        *,
        fps: float = 4,
        max_points: int = 2000,
        window: Any = None,
        feed_rows: int = 20,
        webgl: bool | None = None,
        _managed: bool = False,
    ):
        tables = getattr(source, "tables", None)
        if tables is None or not hasattr(tables, "table_version"):
            raise TypeError(
                "Dashboard needs a source with a .tables attribute (an AgentStream or a "
                f"Recording), got {type(source).__name__}"
            )
        self._init_common(fps, max_points, window)
        self.source = source
        self.tables = tables
        self.agent_id = getattr(source, "agent_id", None)
        self.feed_rows = int(feed_rows)
        self.webgl = (max_points > _WEBGL_ABOVE) if webgl is None else bool(webgl)
        self._series = AccountSeries(tables)
        self._decim = {"balance": MinMaxCache(), "pnl": MinMaxCache()}
        self._pushed_lists: dict[str, Any] = {}
        self._frames: dict[str, tuple[int, pd.DataFrame]] = {}
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._chart_key: Any = None
        self._symbols: tuple[str, ...] = ()
        self._sym_key: Any = None
        self._dirty = 0  # bumped when a refresh left something for a later frame
        self._sym_at = -1e9
        self._fills = FillLog()
        self._cycles = CycleLog()
        placeholder = None if _managed else _placeholder("dashboard")
        try:
            self._build()
            self._refresh()  # first frame now: displaying shows data at once
        finally:
            _clear_placeholder(placeholder)
        if not _managed:
            self._start()
            add = getattr(source, "_add_closer", None)
            if callable(add):
                add(self.close)

    # --------------------------------------------------------------- widgets

    def _build(self) -> None:
        W, go, make_subplots = _widgets()
        Scatter = go.Scattergl if self.webgl else go.Scatter
        fig = make_subplots(
            rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05
        )
        date_hover = "%{x|%Y-%m-%d %H:%M:%S}"
        fig.add_trace(
            Scatter(x=[], y=[], mode="lines", name="total balance", line=dict(color="#1f77b4"),
                    hovertemplate=date_hover + "<br>balance %{y:,.2f}<extra></extra>"),
            row=1, col=1,
        )
        for name, shape, color in (("buys", "triangle-up", GREEN), ("sells", "triangle-down", RED)):
            fig.add_trace(
                go.Scatter(x=[], y=[], mode="markers", name=name,
                           marker=dict(size=10, symbol=shape, color=color,
                                       line=dict(width=0.5, color="#333")),
                           hovertemplate=date_hover + "<br>%{hovertext}<extra>fill</extra>"),
                row=1, col=1,
            )
        fig.add_trace(
            go.Scatter(x=[], y=[], mode="markers", name="decisions",
                       marker=dict(size=8, symbol="diamond", line=dict(width=0.5, color="#333"),
                                   color=[], cmin=-1, cmax=1, showscale=False,
                                   colorscale=[[0, RED], [0.5, "#4575b4"], [1, GREEN]]),
                       hovertemplate=date_hover + "<br>%{hovertext}<extra>decision</extra>"),
            row=1, col=1,
        )
        fig.add_trace(
            Scatter(x=[], y=[], mode="lines", name="unrealised P&L",
                    line=dict(color="#ff7f0e"), fill="tozeroy",
                    hovertemplate=date_hover + "<br>P&L %{y:+,.2f}<extra></extra>"),
            row=2, col=1,
        )
        fig.update_layout(
            height=450, margin=dict(l=60, r=20, t=30, b=60), template="plotly_white",
            uirevision="roma",  # keep the user's zoom and legend clicks across updates
            hovermode="closest", hoverlabel=dict(align="left"),
            # below the plot: above it, the legend ran under plotly's toolbar
            legend=dict(orientation="h", x=0, y=-0.11, yanchor="top"),
        )
        fig.update_xaxes(type="date")
        fig.update_yaxes(title_text="balance", row=1, col=1)
        fig.update_yaxes(title_text="P&L", row=2, col=1)
        self.figure = _figure_class()(fig)
        self.figure._date_axes = ("xaxis", "xaxis2")
        self._watch_zoom(self.figure, ("xaxis", "xaxis2"))

        self.status = W.HTML()
        self._make_controls(W)
        self.symbol_dropdown = W.Dropdown(
            options=[("all symbols", _ALL)], value=_ALL, description="symbol",
            layout=W.Layout(width="200px"), style={"description_width": "50px"},
        )
        self.symbol_dropdown.observe(self._on_control, "value")
        self.positions = W.HTML()
        self.feed = _feed_class()()
        pos_title = W.HTML("<b>Open positions</b>")
        feed_title = W.HTML("<b>Decisions</b> <small>(newest first; click to expand)</small>")
        # positions take the width their columns need; the feed gets the rest
        pos_box = W.VBox([pos_title, self.positions],
                         layout=W.Layout(flex="0 1 auto", max_width="100%", overflow="auto",
                                         margin="0 16px 0 0"))
        feed_box = W.VBox(
            [feed_title, self.feed],
            layout=W.Layout(flex="1 1 360px", min_width="320px", max_height="360px", overflow="auto"),
        )
        controls = W.HBox([self.pause_button, self.window_dropdown, self.symbol_dropdown])
        bottom = W.HBox([pos_box, feed_box], layout=W.Layout(flex_flow="row wrap", width="100%"))
        self.widget = W.VBox([self.status, controls, self.figure, bottom])
        self.widget.add_class("roma-dashboard")
        self._widgets_made += [
            self.figure, self.status, self.symbol_dropdown, self.positions, self.feed,
            pos_title, feed_title, pos_box, feed_box, controls, bottom, self.widget,
        ]

    # --------------------------------------------------------------- data

    def _frame(self, name: str) -> pd.DataFrame:
        """A table's DataFrame, re-read only when its version moved."""
        v = self.tables.table_version(name)
        hit = self._frames.get(name)
        if hit is not None and hit[0] == v:
            return hit[1]
        df = self.tables.frame(name)
        self._frames[name] = (v, df)
        return df

    def _symbol(self) -> str | None:
        v = self.symbol_dropdown.value
        return None if v in (_ALL, None) else v

    def _change_key(self) -> Any:
        src = self.source
        return (
            self._dirty,
            self.tables.version,
            self._controls_version,
            getattr(src, "state", None),
            getattr(src, "last_error", None),
        )

    def _memo(self, name: str, key: Any, make: Any) -> Any:
        """``make()`` cached under ``name`` until ``key`` changes.

        Most refreshes carry only new account rows; memoising by the versions of
        the tables each piece reads keeps those refreshes from rebuilding the
        positions table or re-reading the other tables.
        """
        hit = self._cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = make()
        self._cache[name] = (key, value)
        return value

    def _update_logs(self) -> None:
        tv = self.tables.table_version
        self._memo("fill_log", tv("trades"), lambda: self._fills.update(self._frame("trades")))
        self._memo(
            "cycle_log", (tv("cycles"), tv("decisions")),
            lambda: self._cycles.update(self._frame("cycles"), self._frame("decisions")),
        )

    def _chart_data(self) -> dict:
        s = self._series
        s.update()
        self._update_logs()
        start_ns = None
        if self._window_ns is not None and s.last_ns is not None:
            start_ns = s.last_ns - self._window_ns
        symbol = self._symbol()
        bx, by = self._zoomed_xy(s, "balance", s.balance, s.last_ns)
        px, py = self._zoomed_xy(s, "pnl", s.pnl, s.last_ns)
        limit = min(self.max_points, 1000)
        buys, sells = self._memo(
            "fills", (self._fills.version, symbol, limit),
            lambda: self._fills.markers(symbol, limit),
        )
        marks = self._memo(
            "marks", (self._cycles.version, symbol, limit),
            lambda: self._cycles.markers(symbol, min(limit, 500)),
        )
        return {
            "balance": (bx, by),
            "pnl": (px, py),
            "buys": place_markers(buys, s, start_ns),
            "sells": place_markers(sells, s, start_ns),
            "decisions": place_markers(marks, s, start_ns),
        }

    def _source_stats(self) -> dict:
        return next(iter(self._stats_of(self.source).values()), {})  # one agent

    def _status(self) -> dict:
        src = self.source
        st = self._source_stats()
        info: dict = {
            "agent": self.agent_id,
            "state": getattr(src, "state", None) or ("recorded" if not st else None),
            "paused": self._paused,
            "refresh_errors": self.refresh_errors,
            "last_refresh_error": self.last_refresh_error,
            "last_error": getattr(src, "last_error", None),
        }
        tv = self.tables.table_version
        info.update(self._memo("agent", (tv("status"), tv("cycles")), self._agent_state))
        if st:
            info["age"] = _age_seconds(st.get("last_message_at"))
            info["rate"] = st.get("rate")
            info["errors"] = st.get("errors")
        else:
            info["errors"] = self.tables.counts().get("errors", 0)
        if self.tables.totals().get("server_errors"):
            info["server_error"] = self._memo("server_error", tv("errors"), self._latest_server_error)
        return info

    def _latest_server_error(self) -> str | None:
        err = self._frame("errors")
        err = err[err["kind"] == "server_error"]
        if err.empty:
            return None
        when = err["received_at"].iloc[-1].strftime("%H:%M:%S")
        return f"{err['detail'].iloc[-1]} ({when} UTC)"

    def _agent_state(self) -> dict:
        """Running flag and cycle count from the latest status (or the cycles seen)."""
        out: dict = {}
        status = self._frame("status")
        if len(status):
            run = status["is_running"].iloc[-1]
            out["running"] = None if run is pd.NA else bool(run)
            cyc = status["cycle_count"].iloc[-1]
            out["cycle"] = None if cyc is pd.NA else int(cyc)
        if out.get("cycle") is None:
            self._update_logs()
            cycles = [e["cycle"] for e in self._cycles.entries if e["cycle"] is not None]
            if cycles:
                out["cycle"] = max(cycles)
        return out

    def _symbols_now(self) -> tuple[str, ...]:
        self._update_logs()
        seen = {str(s) for s in self._fills.symbol if not _na(s)}
        for e in self._cycles.entries[-500:]:
            seen.update(str(s) for s in e["symbols"] if not _na(s))
        pos = self._frame("positions")
        if len(pos):
            seen.update(str(s) for s in pos["symbol"].dropna().unique())
        return tuple(sorted(seen))

    # --------------------------------------------------------------- pushing

    def _refresh_now(self) -> None:
        tv = self.tables.table_version
        zoom_version, self._draw_zoom = self._zoom.snapshot()
        chart_key = (
            tv("account"), tv("trades"), tv("cycles"), tv("decisions"),
            self._window_key, self.symbol_dropdown.value, self.max_points, zoom_version,
        )
        if chart_key != self._chart_key:
            data = self._chart_data()
            fig = self.figure
            with fig.batch_update():
                self._apply_autorange(fig)
                b, buys, sells, d, p = fig.data
                b.x, b.y = data["balance"]
                p.x, p.y = data["pnl"]
                for tr, key in ((buys, "buys"), (sells, "sells"), (d, "decisions")):
                    m = data[key]
                    tr.x, tr.y = m["x"], m["y"]
                    # plotly validates a list element by element before it compares;
                    # skip unchanged hover texts (most refreshes only add account rows)
                    if self._pushed_lists.get(key) != m["text"]:
                        tr.hovertext = m["text"]
                        self._pushed_lists[key] = m["text"]
                d.marker.color = data["decisions"]["tone"]
            self.drawn_zoom = self._draw_zoom
            self.figure_update_count += 1
            self._chart_key = chart_key
        else:
            self._update_logs()

        symbol = self._symbol()
        pos_html = self._memo(
            "positions", (tv("positions"), symbol),
            lambda: positions_html(self._frame("positions"), symbol),
        )
        feed = self._memo(
            "feed", (self._cycles.version, symbol, self.feed_rows),
            lambda: self._cycles.feed_html(symbol, self.feed_rows),
        )
        status = status_html(self._status())
        # the symbol list changes rarely; don't rescan it on every frame
        now = time.monotonic()
        symbols = None
        sym_key = (tv("positions"), self._fills.version, self._cycles.version)
        if sym_key != self._sym_key:
            if now - self._sym_at >= 1.0:
                symbols = self._symbols_now()
                self._sym_key, self._sym_at = sym_key, now
            else:
                self._dirty += 1  # come back on a later frame even if no data arrives
        with contextlib.ExitStack() as stack:
            for w in (self.positions, self.feed, self.status, self.symbol_dropdown):
                stack.enter_context(w.hold_sync())
            if symbols is not None and symbols != self._symbols:
                self._set_symbols(symbols)
            # assigning an equal string sends nothing, but skip the trait machinery too
            if self.positions.value != pos_html:
                self.positions.value = pos_html
            if self.feed.value != feed:
                self.feed.value = feed
            if self.status.value != status:
                self.status.value = status

    def _set_symbols(self, symbols: tuple[str, ...]) -> None:
        dd = self.symbol_dropdown
        current = dd.value
        opts = [("all symbols", _ALL)] + [(s, s) for s in symbols]
        if current not in (_ALL, None) and current not in symbols:
            opts.append((current, current))  # keep the user's pick while it has no rows
        # swapping options must not count as a user change of the filter
        dd.unobserve(self._on_control, "value")
        try:
            dd.options = opts
            dd.value = current if current is not None else _ALL
        finally:
            dd.observe(self._on_control, "value")
        self._symbols = symbols

    def _refresh_status_now(self) -> None:
        html = status_html(self._status())
        if self.status.value != html:
            self.status.value = html

    # --------------------------------------------------------------- static

    def snapshot(self, plotly: bool = False) -> str:
        """Static HTML of the dashboard: status, chart, positions and decisions feed.

        Args:
            plotly: embed the chart as a plotly figure (needs plotly.js on the page)
                instead of the default self-contained SVG.

        Returns:
            An HTML fragment; works without a widget front end (nbconvert, GitHub,
            plain Python), and after :meth:`close`.

        Example:
            >>> html = dashboard.snapshot()        # doctest: +SKIP
            >>> "roma-positions" in html           # doctest: +SKIP
            True
        """
        with self._lock:
            data = self._chart_data()
            symbol = self._symbol()
            status = status_html(self._status())
            pos = positions_html(self._frame("positions"), symbol)
            feed = self._cycles.feed_html(symbol, self.feed_rows)
        if plotly:
            import plotly.graph_objects as go

            chart = go.Figure(self.figure).to_html(include_plotlyjs=False, full_html=False)
        else:
            bx, by = data["balance"]
            px, py = data["pnl"]
            chart = svg_chart([("total balance", bx, by, "#1f77b4")], height=170,
                              title="account value") + svg_chart(
                [("unrealised P&L", px, py, "#ff7f0e")], height=110, title="unrealised P&L"
            )
        return page_html(
            [("", status), ("", chart), ("Open positions", pos), ("Decisions", feed)],
            title=f"ROMA-01 agent {self.agent_id}" if self.agent_id else "ROMA-01 agent",
        )

    def __repr__(self) -> str:
        state = getattr(self.source, "state", None)
        extra = f", state={state!r}" if state else ""
        closed = ", closed" if self._closed else ""
        return f"<Dashboard agent={self.agent_id!r}{extra}, refreshes={self.refresh_count}{closed}>"


class GroupDashboard(_ViewBase):
    """Side-by-side view of several agents: account values, leaderboard, drill-down.

    Args:
        group: a ``StreamGroup`` (``streams`` dict of agent id -> stream;
            ``_add_closer`` is used when present; a recording of several agents
            shows through ``Recording.dashboard()``).
        fps, max_points, window: as for :class:`Dashboard`.

    Attributes:
        widget: the ``ipywidgets.VBox`` to display.
        figure: one ``go.FigureWidget``, one trace of total balance per agent.
        agent_dropdown: picks the agent whose :class:`Dashboard` opens below; each
            agent's view is created on first pick and reused (and only the shown one
            is refreshed, by this dashboard's scheduler).

    Example:
        >>> group = rn.connect(["deepseek-chat-v3.1", "qwen3-max"], url=sim.url)  # doctest: +SKIP
        >>> group.dashboard()                                                   # doctest: +SKIP
    """

    def __init__(
        self,
        group: Any,
        *,
        fps: float = 4,
        max_points: int = 2000,
        window: Any = None,
        webgl: bool | None = None,
    ):
        streams = getattr(group, "streams", None)
        if not isinstance(streams, dict):
            raise TypeError(
                f"GroupDashboard needs a group with a .streams dict, got {type(group).__name__}"
            )
        self._init_common(fps, max_points, window)
        self.group = group
        self.webgl = (max_points > _WEBGL_ABOVE) if webgl is None else bool(webgl)
        self._series: dict[str, AccountSeries] = {}
        self._decim: dict[str, MinMaxCache] = {}
        self._children: dict[str, Dashboard] = {}
        self._active: Dashboard | None = None
        self._chart_key: Any = None
        self._lb_key: Any = None
        placeholder = _placeholder("comparison dashboard")
        try:
            self._build()
            self._refresh()
        finally:
            _clear_placeholder(placeholder)
        self._start()
        add = getattr(group, "_add_closer", None)
        if callable(add):
            add(self.close)

    def _streams(self) -> dict[str, Any]:
        return dict(self.group.streams)

    def _build(self) -> None:
        W, go, _ = _widgets()
        Scatter = go.Scattergl if self.webgl else go.Scatter
        layout = go.Layout(
            height=380, margin=dict(l=60, r=20, t=30, b=50), template="plotly_white",
            uirevision="roma", hovermode="x unified",
            legend=dict(orientation="h", x=0, y=-0.1, yanchor="top"),  # not under the toolbar
            xaxis=dict(type="date"), yaxis=dict(title="total balance"),
        )
        traces = [
            Scatter(x=[], y=[], mode="lines", name=str(a), line=dict(color=_PALETTE[i % len(_PALETTE)]),
                    hovertemplate="%{y:,.2f}")
            for i, a in enumerate(self._streams())
        ]
        self._trace_agents = list(self._streams())
        self.figure = _figure_class()(data=traces, layout=layout)
        self.figure._date_axes = ("xaxis",)
        self._watch_zoom(self.figure, ("xaxis",))
        self.status = W.HTML()
        self.leaderboard = W.HTML()
        self._make_controls(W)
        self.agent_dropdown = W.Dropdown(
            options=[("— agent view —", _ALL)] + [(a, a) for a in self._streams()], value=_ALL,
            description="agent", layout=W.Layout(width="260px"), style={"description_width": "45px"},
        )
        self.agent_dropdown.observe(self._on_agent, "value")
        self.detail = W.VBox([])
        lb_title = W.HTML("<b>Leaderboard</b>")
        controls = W.HBox([self.pause_button, self.window_dropdown, self.agent_dropdown])
        self.widget = W.VBox(
            [self.status, controls, self.figure, lb_title, self.leaderboard, self.detail]
        )
        self.widget.add_class("roma-group-dashboard")
        self._widgets_made += [
            self.figure, self.status, self.leaderboard, self.agent_dropdown, self.detail,
            lb_title, controls, self.widget,
        ]

    # --------------------------------------------------------------- drill-down

    def _on_agent(self, change: dict) -> None:
        aid = change["new"]
        try:
            child = self.agent_view(aid) if aid not in (_ALL, None) else None
        except Exception as exc:  # noqa: BLE001 - a UI callback must not raise
            self._note_error(exc)
            return
        self._active = child
        self.detail.children = [child.widget] if child is not None else []

    def agent_view(self, agent_id: str) -> Dashboard:
        """The :class:`Dashboard` of one agent, created on first call and reused."""
        with self._lock:
            child = self._children.get(agent_id)
            if child is None:
                streams = self._streams()
                if agent_id not in streams:
                    raise ValueError(
                        f"unknown agent {agent_id!r}; the group has {', '.join(streams)}"
                    )
                window = (self._window_key if self._window_key in WINDOWS
                          else pd.Timedelta(self._window_ns))
                child = Dashboard(
                    streams[agent_id], fps=self.fps, max_points=self.max_points,
                    window=window, webgl=self.webgl, _managed=True,
                )
                self._children[agent_id] = child
            return child

    def _close_children(self) -> None:
        for child in self._children.values():
            child.close()

    # --------------------------------------------------------------- refresh

    def _tick(self) -> None:
        if self._paused:  # pausing the group pauses the agent view shown in it too
            return
        super()._tick()
        child = self._active
        # the shown agent view rides on this scheduler; hidden ones cost nothing
        if child is not None and not self._closed and not child._closed:
            child._tick()

    def _change_key(self) -> Any:
        streams = self._streams()
        return (
            tuple((a, s.tables.version, getattr(s, "state", None), getattr(s, "last_error", None))
                  for a, s in streams.items()),
            self._controls_version,
        )

    def _refresh_now(self) -> None:
        streams = self._streams()
        for a, s in streams.items():
            if a not in self._series:
                self._series[a] = AccountSeries(s.tables)
        versions = tuple(s.tables.table_version("account") for s in streams.values())
        zoom_version, self._draw_zoom = self._zoom.snapshot()
        chart_key = (versions, self._window_key, tuple(streams), zoom_version)
        if chart_key != self._chart_key:
            self._push_chart(streams)
            self._chart_key = chart_key
        lb_key = tuple(s.tables.version for s in streams.values())
        lb = None
        if lb_key != self._lb_key:
            lb = leaderboard_html(self._leaderboard(streams))
            self._lb_key = lb_key
        status = status_html(self._status(streams))
        with self.leaderboard.hold_sync(), self.status.hold_sync():
            if lb is not None and self.leaderboard.value != lb:
                self.leaderboard.value = lb
            if self.status.value != status:
                self.status.value = status

    def _push_chart(self, streams: dict[str, Any]) -> None:
        for s in self._series.values():
            s.update()
        ends = [s.last_ns for s in self._series.values() if s.last_ns is not None]
        end = max(ends) if ends else None
        fig = self.figure
        _, go, _ = _widgets()
        Scatter = go.Scattergl if self.webgl else go.Scatter
        with fig.batch_update():
            self._apply_autorange(fig)
            for i, a in enumerate(streams):
                if a not in self._trace_agents:  # an agent joined after the view was built
                    fig.add_trace(Scatter(x=[], y=[], mode="lines", name=str(a),
                                          line=dict(color=_PALETTE[len(self._trace_agents) % len(_PALETTE)]),
                                          hovertemplate="%{y:,.2f}"))
                    self._trace_agents.append(a)
            for a, s in self._series.items():
                x, y = self._zoomed_xy(s, a, s.balance, end)
                tr = fig.data[self._trace_agents.index(a)]
                tr.x, tr.y = x, y
        self.drawn_zoom = self._draw_zoom
        self.figure_update_count += 1

    def _leaderboard(self, streams: dict[str, Any]) -> pd.DataFrame:
        """The live board: state, latest balance, return since the first row, unrealised
        P&L, open positions and fills per agent, ranked by return (cheap: the agents'
        own series and counts), plus the Sharpe intervals of :meth:`_with_skill`.
        ``group.leaderboard()`` is the full metrics projection, for notebooks."""
        rows = []
        for a, s in streams.items():
            ser = self._series.get(a)
            if ser is None:
                ser = self._series[a] = AccountSeries(s.tables)
                ser.update()
            bal, pnl = ser.balance, ser.pnl
            first = bal[0] if len(bal) else np.nan
            last = bal[-1] if len(bal) else np.nan
            counts = s.tables.counts()
            rows.append({
                "agent_id": a,
                "state": getattr(s, "state", None) or "recorded",
                "balance": last,
                "return_pct": (last / first - 1) * 100 if first == first and first else np.nan,
                "unrealized_pnl": pnl[-1] if len(pnl) else np.nan,
                "open_positions": counts.get("positions", 0),
                "fills": counts.get("trades", 0),
            })
        df = pd.DataFrame(rows)
        if df.empty:
            return df
        df = df.sort_values("return_pct", ascending=False, na_position="last", kind="stable")
        df = df.set_index("agent_id")
        df.insert(0, "rank", range(1, len(df) + 1))
        return self._with_skill(df, streams)

    # A bootstrap per refresh would cost more than the whole view: the Sharpe intervals
    # are recomputed at most this often, and only when an account table changed.
    SKILL_EVERY = 10.0

    def _with_skill(self, df: pd.DataFrame, streams: dict[str, Any]) -> pd.DataFrame:
        """The leaderboard plus Sharpe, its 95 % interval, the returns behind it and
        whether the best agent's lead over each agent is skill or luck
        (:func:`roma_notebook.compare`, paired block bootstrap)."""
        if df is None or not len(df):
            return df
        key = tuple(s.tables.table_version("account") for s in streams.values())
        cache = getattr(self, "_skill_cache", None)
        now = time.monotonic()
        if cache is None or (cache[0] != key and now - cache[1] >= self.SKILL_EVERY):
            try:
                from ..analysis.skill import compare  # lazy: only dashboards that show agents need it

                acc = [s.tables.frame("account") for s in streams.values()]
                comp = compare({"account": pd.concat(acc, ignore_index=True) if acc else None},
                               "sharpe", n_boot=500)
                ag = comp.agents
                best = ag.index[0] if len(ag) else None
                vs = {r.b: r.verdict for r in comp.pairs.itertuples() if r.a == best}
                cols = pd.DataFrame({
                    "sharpe": ag["estimate"], "sharpe_low": ag["low"], "sharpe_high": ag["high"],
                    "n_periods": ag["n_obs"],
                    "vs_best_sharpe": pd.Series({a: vs.get(a, "—" if a == best else "not distinguishable")
                                                 for a in ag.index}, dtype="string"),
                })
            except Exception as exc:  # noqa: BLE001 - a leaderboard without intervals beats none
                self._note_error(exc)
                cols = None
            self._skill_cache = cache = (key, now, cols)
        cols = cache[2]
        if cols is None or cols.empty:
            return df
        return df.join(cols, how="left")

    def _status(self, streams: dict[str, Any] | None = None) -> dict:
        streams = self._streams() if streams is None else streams
        states = []
        errors = 0
        last_error = None
        rate = 0.0
        all_stats = self._stats_of(self.group)
        for a, s in streams.items():
            st = all_stats.get(str(a), {})
            errors += int(st.get("errors") or 0)
            rate += float(st.get("rate") or 0.0)
            state = getattr(s, "state", None)
            states.append(f"{a}: {state}" if state else a)
            if state in ("failed", "reconnecting") and getattr(s, "last_error", None):
                last_error = f"{a}: {s.last_error}"
        worst = "live"
        for s in streams.values():
            state = getattr(s, "state", None)
            if state in ("failed", "reconnecting", "connecting", "closed"):
                worst = state
                if state == "failed":
                    break
        return {
            "agent": f"{len(streams)} agents ({'; '.join(states)})",
            "state": worst if streams else None,
            "paused": self._paused,
            "rate": rate,
            "errors": errors,
            "refresh_errors": self.refresh_errors,
            "last_refresh_error": self.last_refresh_error,
            "last_error": last_error,
            "show_error": last_error is not None,
        }

    def _refresh_status_now(self) -> None:
        html = status_html(self._status())
        if self.status.value != html:
            self.status.value = html

    def snapshot(self) -> str:
        """Static HTML: status, an SVG of every agent's account value, the leaderboard."""
        with self._lock:
            streams = self._streams()
            series = []
            for i, (a, s) in enumerate(streams.items()):
                ser = self._series.get(a) or AccountSeries(s.tables)
                ser.update()
                x, y = chart_xy(ser.x, ser.balance, ser.offset, 600)
                series.append((str(a), x, y, _PALETTE[i % len(_PALETTE)]))
            lb = leaderboard_html(self._leaderboard(streams))
            status = status_html(self._status(streams))
        return page_html(
            [("", status), ("", svg_chart(series, height=200, title="account value")),
             ("Leaderboard", lb)],
            title="ROMA-01 agents",
        )

    def __repr__(self) -> str:
        closed = ", closed" if self._closed else ""
        return (f"<GroupDashboard agents={list(self._streams())!r}, "
                f"refreshes={self.refresh_count}{closed}>")

