"""Every example notebook, as a reader runs it: ``roma-notebook lab``, then Run All in Chromium.

nbval runs cells through a plain kernel client and does not see what JupyterLab's
Run All does (a notebook that patched the kernel's loop passed nbval and hung the
lab). So this test starts the README's ``roma-notebook lab`` on the repository's
notebooks (its simulator behind ``ROMA_URL``), opens each ``notebooks/*.ipynb`` in
one headless Chromium, runs **Run All** and waits for it to finish. Every code cell
must have run with no error or stderr output, the lab's log (where kernels' stderr
goes) must hold no traceback, the notebooks with a dashboard must still show a live
chart with data at the end, and the notebook files must be unchanged (opening and
running them in the lab does not dirty git). Screenshots go to
``test-output/run-all/``.

A second test runs a fresh notebook whose only cells are the import and
``rn.report(...)``: every chart of the report must draw its data (no plotly.js was
on the page before it). Both fail without chromium (CI installs it);
``ROMA_SKIP_BROWSER=1`` skips them on purpose.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from scripted_server import wait_until
from test_dashboard_browser import ARGS

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
OUT = REPO / "test-output" / "run-all"
# what a kernel or the lab writes when something went wrong behind the cells
BAD_LOG = re.compile(r"Traceback|Task was destroyed|already entered|RuntimeError|^\[E ", re.M)

RUN_ALL = """() => {
    window.__runAll = null;
    window.jupyterapp.commands.execute('notebook:run-all-cells').then(
        ok => { window.__runAll = {ok: ok}; },
        err => { window.__runAll = {ok: false, error: String(err)}; });
}"""

KERNEL_IDLE = """(name) => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.context && w.context.path.endsWith(name) && w.sessionContext
              && w.sessionContext.session && w.sessionContext.session.kernel;
    return k && k.status === 'idle';
}"""

CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .filter(c => c.model.type === 'code')
    .map(c => ({
        count: c.model.executionCount,
        source: c.model.sharedModel.getSource().slice(0, 60),
        outputs: c.model.outputs.toJSON().map(o => ({
            type: o.output_type, name: o.name || '', ename: o.ename || '',
            text: String(o.text || o.evalue || '').slice(0, 300)})),
    }))"""

CHART_POINTS = """() => Array.from(document.querySelectorAll(
        '.roma-dashboard .js-plotly-plot, .roma-group-dashboard .js-plotly-plot'))
    .map(gd => (gd.data || []).reduce((n, t) => n + (t.x ? t.x.length : 0), 0))"""


def _api(base: str, token: str, path: str, method: str = "GET") -> object:
    req = urllib.request.Request(f"{base}{path}?token={token}", method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


@contextlib.contextmanager
def _lab_server(tmp_path: Path, *args: str):
    """``roma-notebook lab [args]``; yields (base URL, token, log path, stderr path)."""
    state = tmp_path / "state"
    # What the test needs on top of the command's own settings: the app object
    # for probes, and every cell kept in the DOM (JupyterLab drops off-screen ones).
    (state / "config").mkdir(parents=True)
    (state / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"LabApp": {"expose_app_in_browser": True}}))
    tracker = state / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    err = open(tmp_path / "lab.stderr", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "roma_notebook", "lab", *args, "--port", "0", "--no-browser",
         "--state-dir", str(state)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("JupyterLab: "):
                url = line.split(" ", 1)[1].strip()
        assert url, "roma-notebook lab printed no URL:\n" + open(tmp_path / "lab.stderr").read()[-3000:]
        m = re.match(r"(http://127\.0\.0\.1:\d+)/.*[?&]token=(\w+)", url)
        base, token = m.group(1), m.group(2)
        wait_until(lambda: _status(base, token), 60, "the lab to serve")
        yield base, token, state / "lab.log", tmp_path / "lab.stderr"
    finally:
        proc.terminate()  # the command stops its kernels' server and its simulator
        proc.communicate(timeout=60)
        err.close()


@pytest.fixture
def lab(tmp_path):
    """``roma-notebook lab`` on the repository's notebooks (its simulator behind ROMA_URL)."""
    with _lab_server(tmp_path) as server:
        yield server


def _status(base: str, token: str) -> bool:
    try:
        return _api(base, token, "/api/status") is not None
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_run_all_in_jupyterlab_for_every_notebook(chromium, lab):
    from playwright.sync_api import sync_playwright

    base, token, log, stderr = lab
    OUT.mkdir(parents=True, exist_ok=True)
    before = {p: p.read_bytes() for p in NOTEBOOKS}
    assert len(NOTEBOOKS) >= 4
    timings = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            for nb in NOTEBOOKS:
                t0 = time.monotonic()
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                try:
                    _run_all(page, base, token, nb)
                finally:
                    page.screenshot(path=str(OUT / f"{nb.stem}.png"), full_page=True)
                    # the kernel goes first: a live dashboard still streaming to a page
                    # that closes makes the server log tornado's WebSocketClosedError
                    for s in _api(base, token, "/api/sessions"):  # one kernel at a time, by id
                        _api(base, token, f"/api/sessions/{s['id']}", method="DELETE")
                    deadline = time.monotonic() + 30
                    while _api(base, token, "/api/kernels") and time.monotonic() < deadline:
                        page.wait_for_timeout(100)
                    page.close()
                timings[nb.name] = round(time.monotonic() - t0, 1)
        finally:
            browser.close()
    (OUT / "timings.json").write_text(json.dumps(timings, indent=1))
    bad = BAD_LOG.findall(log.read_text()) + BAD_LOG.findall(stderr.read_text())
    assert not bad, f"errors in the lab's log: {bad}\n" + stderr.read_text()[-3000:]
    changed = [p.name for p in NOTEBOOKS if p.read_bytes() != before[p]]
    assert not changed, f"opening and running them in the lab rewrote {changed}"


def _run_all(page, base: str, token: str, nb: Path) -> None:
    page.goto(f"{base}/lab/tree/{nb.name}?reset&token={token}")
    page.wait_for_function(KERNEL_IDLE, arg=nb.name, timeout=60_000)
    page.evaluate(RUN_ALL)  # not awaited: the probe below waits for its promise
    page.wait_for_function("() => window.__runAll !== null", timeout=90_000, polling=250)
    result = page.evaluate("() => window.__runAll")
    cells = page.evaluate(CELLS)
    not_run = [c["source"] for c in cells if c["count"] is None]
    errors = [(c["source"], o) for c in cells for o in c["outputs"]
              if o["type"] == "error" or o["name"] == "stderr"]
    assert result["ok"] and not not_run and not errors, (nb.name, result, not_run, errors)
    if ".dashboard(" in nb.read_text():
        # the live notebooks end with their dashboard still live and drawing
        page.wait_for_function(f"() => ({CHART_POINTS})().some(n => n > 0)", timeout=30_000)
        first = max(page.evaluate(CHART_POINTS))
        page.wait_for_function(f"() => Math.max(...({CHART_POINTS})()) > {first}", timeout=30_000)
        status = page.inner_text(".roma-status >> nth=0")
        assert "live" in status, (nb.name, status)
        view = page.locator(".roma-dashboard, .roma-group-dashboard").first
        view.scroll_into_view_if_needed()
        view.screenshot(path=str(OUT / f"{nb.stem}-dashboard.png"))


# points plotly drew per chart (_fullData: the traces after plotly decoded their binary arrays)
REPORT_PLOTS = """() => Array.from(document.querySelectorAll('.jp-OutputArea .js-plotly-plot'))
    .map(gd => (gd._fullData || []).reduce((n, t) => n + (t._length || 0), 0))"""


@pytest.mark.timeout(300)
def test_a_fresh_notebook_shows_every_chart_of_a_report(chromium, tmp_path):
    """The import and the report, nothing else: no cell loaded plotly.js first."""
    import nbformat
    from playwright.sync_api import sync_playwright

    import roma_notebook as rn

    rec = rn.load(rn.sample_recording(), progress=False)
    n_charts = len(rn.report(rec).figures)
    folder = tmp_path / "fresh"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import roma_notebook as rn"),
                nbformat.v4.new_code_cell("rn.report(rn.load(rn.sample_recording(), progress=False))")]
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    path = folder / "report.ipynb"
    nbformat.write(nb, path)
    OUT.mkdir(parents=True, exist_ok=True)
    with _lab_server(tmp_path, "--notebook", str(path), "--no-sim") as (base, token, log, stderr):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                try:
                    _run_all(page, base, token, path)
                    page.wait_for_function(
                        f"() => ({REPORT_PLOTS})().filter(n => n > 0).length >= {n_charts}",
                        timeout=60_000, polling=250)
                    drawn = page.evaluate(REPORT_PLOTS)
                finally:
                    page.screenshot(path=str(OUT / "fresh-report.png"), full_page=True)
                    page.close()
            finally:
                browser.close()
    assert n_charts >= 2 and len(drawn) == n_charts and all(n > 0 for n in drawn), drawn
