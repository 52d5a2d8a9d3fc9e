"""The README's tour, run exactly as a reader pastes it."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tour_code() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## A short tour", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_tour_runs_as_pasted(tmp_path):
    # the tour as it stands, then checks of what a reader would look at
    checks = """
import gzip as _gz
_m = rn.metrics(rec)
assert list(_m.index) == ["deepseek-chat-v3.1", "qwen3-max"], _m
assert len(rec.cycles) >= 10, rec
assert "(no data)" not in repr(rn.report(rec)), "the report of the tour's recording is empty"
_gz.decompress(open("session.jsonl.gz", "rb").read())  # a whole gzip: the group closed it
print("TOUR-OK")
"""
    proc = subprocess.run([sys.executable, "-c", tour_code() + checks], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "TOUR-OK" in proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert gzip.decompress((tmp_path / "session.jsonl.gz").read_bytes())
