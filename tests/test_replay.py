"""Replay through the simulator: ``Simulator(replay=...)`` and ``sim --replay``.

Real clients over loopback on port 0, wait-for-condition loops, no mocks. The
central check: a stream following a replay of the bundled sample ends up with
the DataFrames ``rn.load`` gives for the same file.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

import roma_notebook as rn
from roma_notebook.core import protocol as P
from roma_notebook.sim.replay import REPLAY_NOT_AVAILABLE, ReplayPlayer, frame_kind, read_replay
from roma_notebook.sim.simulator import Simulator
from roma_notebook.live.stream import connect

from scripted_server import wait_until

pytestmark = pytest.mark.timeout(60)

SAMPLE = rn.sample_recording()
SEC = 1_000_000_000
T0 = 1_762_079_400 * SEC  # 2025-11-02T10:30:00Z
BAD_ACCT = '{"type": "account_update", "data": {"total_balance": "n/a"}}'
HEADER = {"format": "roma-notebook-recording", "version": 1, "library_version": "0.1.0",
          "url": "ws://127.0.0.1:8000", "agent_ids": ["a1", "a2"], "created": "2025-11-02T10:30:00Z"}



def recorded_lines(path=SAMPLE) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def frames_of(agent: str, path=SAMPLE) -> list[str]:
    return [r["frame"] for r in recorded_lines(path) if "frame" in r and r["agent"] == agent]


def acct(t: int, bal: float) -> str:
    return P.encode(P.AccountUpdate(t, bal, bal * 0.8, 1.5, 10.0))


def status(t: int, agent: str, cycle: int) -> str:
    return P.encode(P.AgentStatus(t, agent, True, cycle, t))


def write_recording(path: Path, lines: list, *, tail: str = "") -> Path:
    text = "".join(json.dumps(x) + "\n" if not isinstance(x, str) else x + "\n" for x in lines) + tail
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def line(t: int, agent: str, frame: str) -> dict:
    return {"t": t, "agent": agent, "frame": frame}


def get(url: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def recv_n(url: str, n: int, timeout: float = 5.0) -> list:
    async with websockets.connect(url, open_timeout=5) as ws:
        return [await asyncio.wait_for(ws.recv(), timeout) for _ in range(n)]


# ---------------------------------------------------------------- reading


def test_read_replay_gives_the_recorded_frames_per_agent():
    rep = read_replay(SAMPLE)
    lines = recorded_lines()
    assert rep.agents == tuple(lines[0]["agent_ids"])
    assert rep.skipped == 0 and rep.problems == []
    frame_lines = [r for r in lines if "frame" in r]
    t0 = frame_lines[0]["t"]
    for a in rep.agents:
        mine = [r for r in frame_lines if r["agent"] == a]
        assert [f for _, f in rep.timelines[a]] == [r["frame"] for r in mine]
        # a monotonic recording: offsets are exactly the receive times since the first frame
        assert [o for o, _ in rep.timelines[a]] == pytest.approx([(r["t"] - t0) / SEC for r in mine])
    assert rep.frames == len(frame_lines)
    assert rep.duration == pytest.approx((frame_lines[-1]["t"] - t0) / SEC)
    assert rep.cycles("gpt-5") == len(rn.load(SAMPLE, progress=False).cycles.query("agent_id == 'gpt-5'"))


def test_read_replay_keeps_bad_frames_and_survives_damage(tmp_path):
    bad_frame = '{"type": "account_update", "data": {"total_balance": "n/a"}}'
    p = write_recording(tmp_path / "damaged.jsonl.gz", [
        HEADER,
        line(T0, "a1", acct(T0, 100.0)),
        {"t": T0 + SEC, "agent": "a1", "connection": "disconnected", "detail": "1012"},
        line(T0 + 2 * SEC, "a1", bad_frame),
        "{this is not json",
        {"t": T0 + 3 * SEC, "agent": "a2", "frame": base64.b64encode(b"\x00\x01bin").decode(), "binary": True},
        {"t": T0 + 4 * SEC, "agent": "a2", "frame": "!!!", "binary": True},
        dict(HEADER, created="2025-11-02T11:00:00Z"),  # an append: a second header
        # the clock stepped back between sessions: that gap counts as 0
        line(T0 + SEC, "a2", status(T0, "a2", 1)),
        line(T0 + 2 * SEC, "a2", "half a fra"),
    ], tail='{"t": 1, "agent": "a1", "fra')  # torn last line
    rep = read_replay(p)
    assert rep.agents == ("a1", "a2")
    assert rep.timelines["a1"] == [(0.0, acct(T0, 100.0)), (2.0, bad_frame)]
    assert rep.timelines["a2"] == [(3.0, b"\x00\x01bin"), (3.0, status(T0, "a2", 1)), (4.0, "half a fra")]
    assert rep.skipped == 3  # not JSON, bad base64, the torn line
    assert any("torn last line" in x for x in rep.problems) and any("base64" in x for x in rep.problems)
    kinds = [k for _, _, _, k in rep.events]
    assert kinds == ["account_update", None, None, "agent_status", None]


def test_read_replay_refuses_what_it_cannot_serve(tmp_path):
    missing = tmp_path / "nope.jsonl.gz"
    with pytest.raises(FileNotFoundError, match="nope.jsonl.gz") as exc:
        read_replay(missing)
    assert exc.value.filename == str(missing)
    with pytest.raises(ValueError, match="is a folder"):
        read_replay(tmp_path)
    with pytest.raises(ValueError, match="not a roma_notebook recording"):
        read_replay(write_recording(tmp_path / "other.jsonl", [{"hello": 1}]))
    with pytest.raises(ValueError, match="not a roma_notebook recording"):
        read_replay(write_recording(tmp_path / "data.csv", ["a,b,c", "1,2,3"]))
    with pytest.raises(ValueError, match="version 99"):
        read_replay(write_recording(tmp_path / "new.jsonl", [dict(HEADER, version=99)]))
    with pytest.raises(ValueError, match="names no agent"):
        read_replay(write_recording(tmp_path / "none.jsonl", [dict(HEADER, agent_ids=[])]))
    with pytest.raises(ValueError, match="empty"):
        read_replay(write_recording(tmp_path / "empty.jsonl", []))
    with pytest.raises(TypeError):
        read_replay(42)


def test_frame_kind():
    assert frame_kind(acct(T0, 1.0)) == "account_update"
    assert frame_kind('{"type": "pong", "timestamp": "2025-11-02T10:30:00Z"}') == "pong"
    snap = P.encode_snapshot(
        1.0, P.AccountUpdate(None, 1.0, 1.0, 0.0, float("nan")), P.PositionUpdate(None, ()),
        P.Performance(None, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        P.AgentStatus(None, "a1", True, 1, None),
    )
    assert frame_kind(snap) == "snapshot"
    for bad in ("", "{", "[1]", '{"type": "nope", "data": {}}', b"bytes", '{"type": "account_update"}'):
        assert frame_kind(bad) is None


def test_player_spacing_cap_state_and_loop(tmp_path):
    p = write_recording(tmp_path / "r.jsonl", [
        HEADER,
        line(T0, "a1", acct(T0, 1.0)),
        line(T0 + 10 * SEC, "a2", acct(T0, 2.0)),
        line(T0 + 20 * SEC, "a1", BAD_ACCT),  # bad: never "latest"
        line(T0 + 1000 * SEC, "a1", status(T0, "a1", 3)),
    ])
    rep = read_replay(p)
    player = ReplayPlayer(rep, ["a1", "a2"], speed=10, max_gap=5.0)
    # gaps 10, 10, 980 recording s at speed 10: 1, 1 and 98 -> capped at 5 real s
    assert [d for d, *_ in player.schedule] == pytest.approx([0.0, 1.0, 2.0, 7.0])
    assert player.initial_frames("a1") == []
    assert player.take(1.5) == [("a1", acct(T0, 1.0)), ("a2", acct(T0, 2.0))]
    assert player.next_due() == pytest.approx(2.0)
    assert player.take(2.0) == [("a1", BAD_ACCT)]
    assert player.initial_frames("a1") == [acct(T0, 1.0)]  # the bad one did not replace it
    assert player.is_running("a1") and not player.is_running("a2")
    assert player.take(100.0) == [("a1", status(T0, "a1", 3))]
    assert player.next_due() is None and not player.is_running("a1")
    assert player.initial_frames("a1") == [acct(T0, 1.0), status(T0, "a1", 3)]
    # only a2 served: its one frame, due at once
    solo = ReplayPlayer(rep, ["a2"], speed=1.0)
    assert [(d, a) for d, _, a, _, _ in solo.schedule] == [(0.0, "a2")]
    looping = ReplayPlayer(rep, ["a1", "a2"], speed=1e9, loop=True)
    looping.take(1.0)
    looping.rewind()
    assert looping.passes == 1 and looping.is_running("a1") and looping.index == 0
    assert len(looping.take(1.0)) == 4 and looping.initial_frames("a1")  # latest kept across passes


# ---------------------------------------------------------------- serving the sample


def _comparable(df: pd.DataFrame, agent: str) -> pd.DataFrame:
    df = df[df["agent_id"] == agent].drop(columns=["received_at", "seq"], errors="ignore")
    return df.reset_index(drop=True)


def test_stream_of_a_replay_equals_loading_the_recording():
    rec = rn.load(SAMPLE, progress=False)
    with Simulator(replay=SAMPLE, speed=1e6, paused=True) as sim:
        assert sim.replay_state == "paused"
        group = connect(list(sim.agents), url=sim.url)
        try:
            sim.wait_for_clients(len(sim.agents))
            sim.play()
            for a in sim.agents:
                want = len(rec.cycles.query("agent_id == @a"))
                wait_until(lambda: len(group[a].cycles) == want, 15, f"{a}: {want} cycles")
                wait_until(lambda: len(group[a].account) == len(rec.account.query("agent_id == @a")), 15,
                           f"{a}: every account row")
            wait_until(lambda: sim.replay_state == "ended", 5, "the replay to end")
            for a in sim.agents:
                for table in ("cycles", "decisions", "trades", "account", "position_history", "positions",
                              "status", "errors"):
                    pd.testing.assert_frame_equal(
                        _comparable(getattr(group[a], table), a), _comparable(getattr(rec, table), a), obj=f"{a} {table}"
                    )
                # what went out is the recording, verbatim and in order
                assert sim.sent_frames(a) == frames_of(a)
                assert sim.sent_count(a) == len(frames_of(a))
        finally:
            group.stop()
        status_code, agents = get(sim.http_url + "/api/agents")
    assert status_code == 200
    assert [x["id"] for x in agents] == list(rec.agent_ids)
    for x in agents:
        assert x["name"] == x["id"] and x["is_running"] is False
        assert x["cycle_count"] == len(rec.cycles.query("agent_id == @x['id']"))


def _last_valid(agent: str, kind: str) -> str:
    return [f for f in frames_of(agent) if frame_kind(f) == kind][-1]


def test_late_client_gets_latest_state_then_pongs():
    with Simulator(replay=SAMPLE, agents=["gpt-5", "qwen3-max"], speed=1e6) as sim:
        assert sim.agents == ("gpt-5", "qwen3-max")
        wait_until(lambda: sim.replay_state == "ended", 10, "the replay to end")

        async def late() -> tuple[list, str]:
            async with websockets.connect(sim.url + "/ws/agents/gpt-5") as ws:
                first = [await asyncio.wait_for(ws.recv(), 5) for _ in range(3)]
                await ws.send(json.dumps({"type": "ping"}))
                return first, await asyncio.wait_for(ws.recv(), 5)

        first, pong = asyncio.run(late())
        assert first == [_last_valid("gpt-5", k) for k in ("account_update", "position_update", "agent_status")]
        assert json.loads(pong)["type"] == "pong" and P.parse(pong) == ()
        # REST derived from the same frames
        code, account = get(sim.http_url + "/api/agents/gpt-5/account")
        data = json.loads(first[0])["data"]
        assert code == 200 and account["total_balance"] == data["total_balance"]
        assert account["total_wallet_balance"] == data["total_balance"]  # the real backend's name too
        code, positions = get(sim.http_url + "/api/agents/gpt-5/positions")
        assert code == 200 and positions == json.loads(first[1])["data"]
        code, one = get(sim.http_url + "/api/agents/gpt-5")
        assert code == 200 and one["id"] == one["agent_id"] == "gpt-5" and one["is_running"] is False
        assert one["last_decision_time"] == json.loads(_last_valid("gpt-5", "decision"))["timestamp"]
        # an agent of the recording that is not served
        assert get(sim.http_url + "/api/agents/deepseek-chat-v3.1")[0] == 404


def test_pacing_follows_recorded_gaps_with_a_cap(tmp_path):
    p = write_recording(tmp_path / "paced.jsonl", [
        HEADER,
        line(T0, "a1", acct(T0, 1.0)),
        line(T0 + 4 * SEC, "a1", acct(T0, 2.0)),  # 4 s at speed 10: 0.4 real s
        line(T0 + 3600 * SEC, "a1", acct(T0, 3.0)),  # an hour: capped at max_gap
    ])
    with Simulator(replay=p, speed=10, max_gap=0.5, paused=True) as sim:

        async def timed() -> list[float]:
            async with websockets.connect(sim.url + "/ws/agents/a1") as ws:
                sim.play()
                out = []
                for _ in range(3):
                    await asyncio.wait_for(ws.recv(), 10)
                    out.append(time.monotonic())
                return out

        t = asyncio.run(timed())
        assert 0.3 <= t[1] - t[0] < 2.0
        assert 0.4 <= t[2] - t[1] < 2.0
        wait_until(lambda: sim.replay_state == "ended", 5, "the end")
        assert sim.is_running  # still serving after the last frame


def test_loop_plays_again_and_serves_binary_and_bad_frames(tmp_path):
    frames = [acct(T0, 1.0), "not json at all", status(T0, "a1", 1)]
    p = write_recording(tmp_path / "loop.jsonl.gz", [
        HEADER,
        *[line(T0 + i * SEC, "a1", f) for i, f in enumerate(frames)],
        {"t": T0 + 3 * SEC, "agent": "a1", "frame": base64.b64encode(b"\x01\x02").decode(), "binary": True},
    ])
    with Simulator(replay=p, speed=1000, loop=True, paused=True) as sim:

        async def two_passes() -> list:
            async with websockets.connect(sim.url + "/ws/agents/a1") as ws:
                sim.play()
                return [await asyncio.wait_for(ws.recv(), 10) for _ in range(8)]

        got = asyncio.run(two_passes())
        assert got == (frames + [b"\x01\x02"]) * 2  # verbatim, binary as binary, and again
        assert sim.replay_state == "playing" and sim.sent_count("a1") >= 8
        code, agents = get(sim.http_url + "/api/agents")
        assert agents[0]["is_running"] is True and agents[0]["cycle_count"] == 0
        assert [a["id"] for a in agents] == ["a1", "a2"]  # a2: named in the header, no frames
        # a2 has nothing to send yet, but it exists
        assert get(sim.http_url + "/api/agents/a2/account") == (
            404, {"detail": "No account frame replayed yet for agent a2"})


def test_rest_tokens_caps_and_unknown_agents(tmp_path):
    with Simulator(replay=SAMPLE, speed=1.0, token="s3cret", max_connections_per_ip=1, paused=True) as sim:
        assert get(sim.http_url + "/") == (200, {"name": "ROMA-01 Trading API", "version": "1.1.0",
                                                 "status": "running"})
        assert get(sim.http_url + "/health") == (200, {"status": "healthy"})
        assert get(sim.http_url + "/api/agents")[0] == 401
        code, agents = get(sim.http_url + "/api/agents", "s3cret")
        assert code == 200 and all(a["is_running"] and a["cycle_count"] == 0 for a in agents)
        assert get(sim.http_url + "/api/agents/gpt-5/account", "s3cret")[0] == 404  # nothing played yet
        for sub in ("performance", "decisions", "equity-history", "trades"):
            assert get(f"{sim.http_url}/api/agents/gpt-5/{sub}", "s3cret") == (404, REPLAY_NOT_AVAILABLE)
        assert get(sim.http_url + "/api/market/prices", "s3cret") == (404, REPLAY_NOT_AVAILABLE)
        assert get(sim.http_url + "/api/agents/nobody", "s3cret") == (404, {"detail": "Agent not found: nobody"})

        async def ws_checks() -> None:
            with pytest.raises(InvalidStatus) as exc:
                await websockets.connect(sim.url + "/ws/agents/gpt-5")
            assert exc.value.response.status_code == 401
            async with websockets.connect(sim.url + "/ws/agents/nobody?token=s3cret") as ws:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1008 and ws.close_reason == "Agent not found: nobody"
            async with websockets.connect(sim.url + "/ws/agents/gpt-5?token=s3cret"):
                with pytest.raises(InvalidStatus) as exc:
                    await websockets.connect(sim.url + "/ws/agents/gpt-5?token=s3cret")
                assert exc.value.response.status_code == 429

        asyncio.run(ws_checks())


def test_invalid_combinations_are_refused():
    for kw, name in (({"dialect": "roma-backend"}, "dialect"), ({"firehose": 10}, "firehose"),
                     ({"malformed_every": 3}, "malformed_every"), ({"seed": 7}, "seed"),
                     ({"clock": "wall"}, "clock"), ({"start_time": "2025-11-02T00:00:00Z"}, "start_time")):
        with pytest.raises(ValueError, match=f"replay serves the recorded frames as they are; {name}="):
            Simulator(replay=SAMPLE, **kw)
    with pytest.raises(ValueError, match="seed=1, firehose=10 only make sense"):
        Simulator(replay=SAMPLE, firehose=10, seed=1)
    with pytest.raises(ValueError, match=r"\['nobody'\] are not in the recording"):
        Simulator(["gpt-5", "nobody"], replay=SAMPLE)
    for kw in ({"loop": True}, {"paused": True}, {"max_gap": 1.0}):
        with pytest.raises(ValueError, match="only to a replay"):
            Simulator(["gpt-5"], **kw)
    with pytest.raises(ValueError, match="max_gap"):
        Simulator(replay=SAMPLE, max_gap=0)
    with pytest.raises(FileNotFoundError, match="missing.jsonl.gz"):
        Simulator(replay="missing.jsonl.gz")
    sim = Simulator(replay=read_replay(SAMPLE), speed=1e6, drop_every=60.0)  # a Replay object; drops are fine
    assert sim.replay_state == "playing" and "replay=" in repr(sim)
    with pytest.raises(RuntimeError, match="play"):
        Simulator(["gpt-5"]).play()
    with sim:
        with pytest.raises(RuntimeError, match="simulated market"):
            sim.query(lambda w: w)
        with pytest.raises(RuntimeError, match="simulated market"):
            sim.set_running("gpt-5", False)


# ---------------------------------------------------------------- CLI


def test_cli_serves_a_replay():
    proc = subprocess.Popen(
        [sys.executable, "-m", "roma_notebook", "sim", "--replay", str(SAMPLE), "--speed", "1000", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out: list[str] = []
    err: list[str] = []
    pumps = [threading.Thread(target=lambda s=s, k=k: k.extend(s), daemon=True)
             for s, k in ((proc.stdout, out), (proc.stderr, err))]
    for t in pumps:
        t.start()
    try:
        wait_until(lambda: out[:1] or proc.poll() is not None, 20, "the URL line")
        m = re.match(r"ROMA-01 simulator listening on (ws://\S+)", out[0] if out else "")
        assert m, (out, "".join(err))
        url = m.group(1)
        wait_until(lambda: "replay ended" in "".join(err), 20, "the end of the replay")
        first = asyncio.run(recv_n(url + "/ws/agents/qwen3-max", 3))
        assert first == [_last_valid("qwen3-max", k) for k in ("account_update", "position_update", "agent_status")]
        code, agents = get(url.replace("ws://", "http://") + "/api/agents")
        assert code == 200 and len(agents) == 4
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        for t in pumps:
            t.join(5)
    text = "".join(out)
    assert "/ws/agents/claude-sonnet-4.5" in text and f"replay={SAMPLE}" in text


def test_cli_refuses_bad_replay_arguments(capsys, tmp_path):
    from roma_notebook.cli import main

    assert main(["sim", "--port", "0", "--replay", str(tmp_path / "gone.jsonl.gz")]) == 2
    assert "recording to replay not found" in capsys.readouterr().err
    assert main(["sim", "--port", "0", "--replay", str(SAMPLE), "--dialect", "roma-backend"]) == 2
    assert "dialect='roma-backend'" in capsys.readouterr().err
    assert main(["sim", "--port", "0", "--replay-loop"]) == 2
    assert "only to a replay" in capsys.readouterr().err
    assert main(["sim", "--port", "0", "--replay", str(SAMPLE), "--agents", "gpt-5,x"]) == 2
    assert "['x'] are not in the recording" in capsys.readouterr().err


def test_load_and_replay_read_a_damaged_recording_the_same_way(tmp_path):
    """One recording-line reader: the lines load() makes file errors rows of are the
    lines a replay skips, for the same reasons."""
    p = write_recording(tmp_path / "damaged.jsonl", [
        HEADER,
        line(T0, "a1", acct(T0, 100.0)),
        "{this is not json",
        "[1, 2]",
        {"t": "soon", "agent": "a1", "frame": acct(T0, 1.0)},
        {"t": 2**64, "agent": "a1", "frame": acct(T0, 1.0)},
        {"t": T0 + SEC, "agent": "a2", "frame": "!!!", "binary": True},
        {"t": T0 + SEC, "agent": 7, "connection": "disconnected"},
        {"t": T0 + SEC, "agent": "a1", "something": "else"},
        line(T0 + 2 * SEC, "a2", status(T0, "a2", 1)),
    ], tail='{"t": 1, "agent": "a1", "fra')
    rep = read_replay(p)
    with pytest.warns(rn.LoadWarning):
        rec = rn.load(p, progress=False)
    err = rec.errors
    why = [re.sub(r"^.*?: line \d+: ", "", d) for d in err.loc[err["kind"] == "file", "detail"]]
    assert [re.sub(r"^line \d+: ", "", x) for x in rep.problems] == why[:-1] + ["torn last line (28 bytes)"]
    assert rep.skipped == len(why) == 8
    assert why[-1].endswith("torn last line (28 bytes)")
    assert "outside the int64 nanosecond range" in why[3] and "base64" in why[4] and "connection line" in why[5]
    assert rep.timelines["a2"] == [(2.0, status(T0, "a2", 1))] and len(rec.status) == 1
