"""The background thread never prints: whatever goes wrong, nothing reaches the
process's stdout/stderr (in Jupyter that text would land in the user's cell)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from scripted_server import closed_port


def test_faults_in_the_background_print_nothing():
    script = textwrap.dedent(
        """
        import time
        import roma_notebook as rn

        # broken frames, dropped connections, an unknown agent, a refused port,
        # a raising callback: all of it must stay inside the tables
        with rn.Simulator(("a",), seed=1, speed=600, malformed_every=3, drop_every=0.4) as sim:
            s = rn.connect("a", url=sim.url, reconnect_base=0.05)
            s.on("account_update", lambda ev: 1 / 0)
            ghost = rn.connect("ghost", url=sim.url)
            refused = rn.connect("a", url="ws://127.0.0.1:CLOSED_PORT", connect_retries=1, reconnect_base=0.01)
            s.wait_for("decision", count=3, timeout=30)
            deadline = time.monotonic() + 10
            while s.stats().iloc[0]["reconnects"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            kinds = set(s.errors["kind"])
            assert {"callback"} <= kinds and (kinds - {"callback"}), kinds
            assert s.stats().iloc[0]["reconnects"] >= 2
            for x in (s, ghost, refused):
                x.stop()
            assert ghost.state == "failed" and refused.state == "failed"
        """
    ).replace("CLOSED_PORT", str(closed_port()))  # a port this test bound and released
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == ""
