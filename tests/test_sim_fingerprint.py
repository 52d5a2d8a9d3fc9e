"""The simulator sends what it sent before its split into a server and sources.

Everything a seeded simulator sends that does not depend on the wall clock is
hashed per scenario and compared with ``tests/data/sim_fingerprints.json``,
computed from the code before the split (``Simulator`` with the market and the
replay inline). What is deterministic (see the module docs of
:mod:`roma_notebook.sim.simulator`): with ``clock="simulated"`` and a fixed
``start_time``, the documented dialect's broadcast frames, a client's first
frames, pongs, firehose frames and malformed frames; the state of the world
after N ticks (advanced on the simulator's thread through ``query`` while
``speed`` is so low that the server's own clock never moves it) and so every
REST body and snapshot built from it; a replay's frames and REST answers. Not
deterministic, and so dropped before hashing: the ``timestamp`` of the
real-backend dialects' frames (``loop.time()``) and the store's
``created_at`` (SQLite's clock).

Regenerate the data only when a change of behaviour is intended:
``PYTHONPATH=. python tests/test_sim_fingerprint.py --write``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from roma_notebook.store.samples import sample_recording
from roma_notebook.sim.simulator import Simulator

sys.path.insert(0, str(Path(__file__).parent))
from scripted_server import wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(120)

DATA = Path(__file__).parent / "data" / "sim_fingerprints.json"
START = "2025-11-02T00:00:00Z"
AGENTS = ("deepseek-chat-v3.1", "qwen3-max")
# speed at which the server's own clock never advances the world during a test
# (one tick every 5e7 real seconds): only query() moves it, so its state is exact
FROZEN = 1e-7
TICKS = 2500  # ~70 decision cycles: trades, closed trades, insights, analytics


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _untimed(frame: str | bytes) -> Any:
    """The frame with a real-backend ``loop.time()`` timestamp dropped; other frames as they are."""
    try:
        obj = json.loads(frame)
    except ValueError:
        return frame if isinstance(frame, str) else frame.decode("utf-8", "replace")  # a broken frame: as sent
    if isinstance(obj, dict) and isinstance(obj.get("timestamp"), float):
        obj = dict(obj)
        del obj["timestamp"]
    return obj


def _get(base: str, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _rest_paths(agents: tuple[str, ...]) -> list[str]:
    paths = ["/", "/health", "/api/agents", "/api/market/prices", "/api/market/prices?symbols=btcusdt,NOPE",
             "/api/insights/global", "/api/insights/global?limit=3", "/api/nothing", "/api/agents/nobody",
             "/api/agents/nobody/account"]
    for a in agents:
        base = f"/api/agents/{a}"
        paths += [base, base + "/account", base + "/positions", base + "/performance",
                  base + "/performance?lookback=5", base + "/decisions", base + "/decisions?limit=3",
                  base + "/equity-history", base + "/equity-history?limit=7", base + "/trades",
                  base + "/trades?limit=2", base + "/insights", base + "/analytics", base + "/decisions?limit=x",
                  base + "/unknown"]
    return paths


def _rest(sim: Simulator) -> dict[str, Any]:
    return {p: _get(sim.http_url, p) for p in _rest_paths(sim.agents)}


async def _client(url: str, n: int, ping: bool = False) -> list[Any]:
    """The first ``n`` frames one client receives (a pong among them with ``ping``)."""
    async with websockets.connect(url, max_size=2**22) as ws:
        out = []
        if ping:
            await ws.send(json.dumps({"type": "ping"}))
        for _ in range(n):
            out.append(_untimed(await asyncio.wait_for(ws.recv(), 20)))
        return out


def _advance(sim: Simulator, ticks: int) -> None:
    sim.query(lambda w: [w.step() for _ in range(ticks)], timeout=60)


def documented_live() -> dict[str, Any]:
    """The documented dialect's broadcast stream as simulated time runs (fast)."""
    n = 400
    with Simulator(AGENTS, seed=5, speed=3000, start_time=START, malformed_every=37, history=5000) as sim:
        for a in AGENTS:
            wait_until(lambda a=a: sim.sent_count(a) >= n, 60, f"{n} frames of {a}")
        frames = {a: sim.sent_frames(a)[:n] for a in AGENTS}
    return {"frames": frames}


def frozen(dialect: str, **kw: Any) -> dict[str, Any]:
    """REST bodies and a client's first frames after ``TICKS`` ticks, in ``dialect``."""
    with Simulator(AGENTS, seed=11, speed=FROZEN, start_time=START, dialect=dialect, snapshot_interval=0.005,
                   **kw) as sim:
        _advance(sim, TICKS)
        rest = _rest(sim)
        url = f"{sim.url}/ws/agents/{AGENTS[1]}"
        # documented: 3 initial frames, the firehose, a pong (nothing is broadcast while frozen);
        # the others: the firehose, then snapshots (and keepalives, errors, broken frames)
        n = 3 + kw.get("firehose", 0) + 1 if dialect == "documented" else 24 + kw.get("firehose", 0)
        received = asyncio.run(_client(url, n, ping=dialect == "documented"))
        # documented: the broadcast stream, only start_events' status frames while frozen;
        # the others, with one client: the snapshots it received, recorded
        recorded = [_untimed(f) for f in sim.sent_frames(AGENTS[1])][:24]
    return {"rest": rest, "received": received, "recorded": recorded}


def set_running() -> dict[str, Any]:
    """set_running's status frames and the REST that follows (documented)."""
    with Simulator(AGENTS, seed=2, speed=FROZEN, start_time=START) as sim:
        _advance(sim, 400)
        sim.set_running(AGENTS[0], False)
        _advance(sim, 100)
        sim.set_running(AGENTS[0], True)
        frames = sim.sent_frames(AGENTS[0])
        rest = _get(sim.http_url, f"/api/agents/{AGENTS[0]}")
        summary = _get(sim.http_url, "/api/agents")
    return {"frames": frames, "rest": [rest, summary]}


def store(tmp: Path) -> dict[str, Any]:
    """The SQLite store written at stop, created_at dropped."""
    path = tmp / "roma_trading.db"
    with Simulator(AGENTS, seed=4, speed=FROZEN, start_time=START, dialect="roma-current", store=path,
                   store_interval=3600) as sim:
        _advance(sim, TICKS)
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        out = {}
        for t in tables:
            cur = con.execute(f'SELECT * FROM "{t}" ORDER BY rowid')
            cols = [d[0] for d in cur.description]
            out[t] = [[v for c, v in zip(cols, row) if c != "created_at"] for row in cur]
    finally:
        con.close()
    return out


def replay(**kw: Any) -> dict[str, Any]:
    """A replay played to its end: frames, REST, a late client's catch-up frames."""
    with Simulator(replay=sample_recording(), speed=1e7, max_gap=0.001, **kw) as sim:
        wait_until(lambda: sim.replay_state == "ended", 60, "the replay's end")
        frames = {a: sim.sent_frames(a) for a in sim.agents}
        counts = {a: sim.sent_count(a) for a in sim.agents}
        rest = _rest(sim)
        received = asyncio.run(_client(f"{sim.url}/ws/agents/{sim.agents[0]}", 3))
    return {"agents": list(sim.agents), "frames": frames, "counts": counts, "rest": rest, "received": received}


def scenarios(tmp: Path) -> dict[str, Any]:
    return {
        "documented_live": documented_live,
        "documented_frozen": lambda: frozen("documented", malformed_every=5, firehose=3),
        "roma_backend_frozen": lambda: frozen("roma-backend", malformed_every=4, firehose=3),
        "roma_current_frozen": lambda: frozen("roma-current", malformed_every=4, error_every=3),
        "set_running": set_running,
        "store": lambda: store(tmp),
        "replay_all": replay,
        "replay_subset": lambda: replay(agents=["qwen3-max", "deepseek-chat-v3.1"]),
    }


NAMES = list(scenarios(Path(".")))


@pytest.mark.parametrize("name", NAMES)
def test_same_frames_and_answers_as_before_the_split(name: str, tmp_path: Path) -> None:
    want = json.loads(DATA.read_text())[name]
    got = scenarios(tmp_path)[name]()
    assert _digest(got) == want, f"{name}: the simulator no longer sends what it sent ({DATA.name})"


def main() -> None:
    import tempfile

    if "--write" not in sys.argv[1:]:
        raise SystemExit("usage: PYTHONPATH=. python tests/test_sim_fingerprint.py --write")
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, fn in scenarios(Path(d)).items():
            out[name] = _digest(fn())
            print(name, out[name])
    DATA.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
