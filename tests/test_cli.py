"""The `roma-notebook` commands run as users run them: as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import roma_notebook as rn

from scripted_server import wait_until

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "roma_notebook"]


def test_record_command_writes_a_loadable_recording(tmp_path):
    out = tmp_path / "session.jsonl.gz"
    with rn.Simulator(("deepseek-chat-v3.1", "qwen3-max"), seed=4, speed=600, token="tkn-123") as sim:
        proc = subprocess.run(
            CLI + ["record", sim.url, "deepseek-chat-v3.1,qwen3-max", str(out), "--token", "tkn-123",
                   "--duration", "3", "--quiet"],
            capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    # a one-line summary at the end, even with --quiet
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"recorded {out} (") and "deepseek-chat-v3.1" in summary and " errors" in summary
    rec = rn.load(out, progress=False)
    assert rec.agent_ids == ["deepseek-chat-v3.1", "qwen3-max"]
    assert len(rec.cycles) >= 2 and len(rec.account) >= 2
    assert rec.errors.empty
    import gzip

    assert b"tkn-123" not in gzip.decompress(out.read_bytes())


def test_record_command_reports_a_failed_stream(tmp_path):
    with rn.Simulator(("a",), seed=1, speed=60) as sim:
        proc = subprocess.run(
            CLI + ["record", sim.url, "ghost", str(tmp_path / "x.jsonl"), "--duration", "10", "--quiet"],
            capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode == 1
    assert "Agent not found: ghost" in proc.stderr


def test_lab_command_starts_jupyterlab_and_the_simulator(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path / "home"))  # prove nothing lands in $HOME
    (tmp_path / "home").mkdir()
    stale = tmp_path / "state" / "workspaces" / "default-37a8.jupyterlab-workspace"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")  # the last session's tabs: not restored
    proc = subprocess.Popen(
        CLI + ["lab", "--port", "0", "--no-browser", "--state-dir", str(tmp_path / "state"), "--speed", "120"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 90
        lab_url = health = None
        while time.monotonic() < deadline and not (lab_url and health):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("JupyterLab: "):
                lab_url = line.split(" ", 1)[1].strip()
            if "health:" in line:
                health = line.split("health:")[1].strip(" )\n")
        assert lab_url and health, "".join(lines)
        with urllib.request.urlopen(health, timeout=10) as r:
            assert json.loads(r.read()) == {"status": "healthy"}

        def fetch():
            try:
                with urllib.request.urlopen(lab_url, timeout=10) as r:
                    return r.status, r.read().decode()
            except OSError:  # lab prints its URL a moment before it serves
                return None

        status, page = wait_until(fetch, 60, "the lab page")
        assert status == 200 and "JupyterLab" in page
        assert "01_live_agent.ipynb" in lab_url or "lab" in lab_url
        assert not any((tmp_path / "home").iterdir()), list((tmp_path / "home").iterdir())
        assert not stale.exists()
        settings = tmp_path / "state" / "settings" / "@jupyterlab"
        assert json.loads((settings / "docmanager-extension" / "plugin.jupyterlab-settings").read_text()) == {
            "autosave": False}
        assert json.loads((settings / "apputils-extension" / "notification.jupyterlab-settings").read_text())[
            "fetchNews"] == "false"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    text = "".join(lines) + out + err
    # the URL once, not lab's banner of it; the rest of lab's INFO log only in the file
    assert text.count("token=") == 1, text
    assert "[I " not in text, text
    assert "ServerApp" in (tmp_path / "state" / "lab.log").read_text()
    assert "stopping JupyterLab and the simulator" in out and out.rstrip().endswith("stopped"), out
    # SIGTERM stopped JupyterLab as well: no lab process of this run is left
    wait_until(lambda: str(tmp_path / "state") not in _processes(), 30, "JupyterLab to exit")


def _processes() -> str:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode())
            except OSError:
                pass
    return "\n".join(out)


@pytest.mark.parametrize("argv", [["sim", "--speed", "-1"], ["export", "nope.jsonl", "out"]])
def test_bad_arguments_are_clear_errors_not_tracebacks(argv, tmp_path):
    proc = subprocess.run(CLI + argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "roma-notebook" in proc.stderr


def test_replay_waits_for_the_first_client(tmp_path):
    sample = rn.sample_recording()
    agent = "qwen3-max"
    recorded = rn.load(sample, progress=False)
    cycles = list(recorded.cycles.query("agent_id == @agent")["cycle"])
    proc = subprocess.Popen(
        CLI + ["sim", "--replay", str(sample), "--speed", "1000000", "--port", "0", "--wait-for-client"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = proc.stdout.readline().split()[-1]
        lines = [proc.stdout.readline() for _ in range(len(recorded.agent_ids) + 3)]
        assert any("paused: playback starts when the first client connects" in ln for ln in lines), lines
        # at this speed the whole recording would be over by now without the flag
        stream = rn.connect(agent, url=url)
        try:
            stream.wait_for("decision", count=len(cycles), timeout=30)
            assert list(stream.cycles["cycle"]) == cycles, "every decision, from the first"
        finally:
            stream.stop()
        assert "a client connected: playing" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_wait_for_client_needs_a_replay():
    proc = subprocess.run(CLI + ["sim", "--port", "0", "--wait-for-client"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "--wait-for-client applies only with --replay" in proc.stderr
