"""The README's first command, in a fresh virtualenv of its own: what a new user
installs must run every notebook (nothing from the test extra may be needed).

Its own file so that, with the suite's two workers, it builds its environment while
the Binder check builds the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


# The README's first command, up to starting the lab: the install a new user gets.
README_FIRST = 'python3 -m venv .venv && .venv/bin/pip install -e ".[lab]" && .venv/bin/roma-notebook lab'

RUN_NOTEBOOKS = r"""
import sys, pathlib, nbformat
from nbclient import NotebookClient
failed = []
for path in sys.argv[2:]:
    nb = nbformat.read(path, as_version=4)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": sys.argv[1]}}).execute()
    except Exception as exc:  # a cell raised: nbclient names the cell and the error
        failed.append(f"{pathlib.Path(path).name}: {type(exc).__name__}: {str(exc)[-1500:]}")
        continue
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error" or o.get("name") == "stderr":
                failed.append(f"{pathlib.Path(path).name}: {cell.source[:60]!r}: {o.get('text') or o.get('evalue')}")
print("\n".join(failed) or "ALL-NOTEBOOKS-RAN")
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_first_command_installs_what_every_notebook_imports(tmp_path):
    readme = (REPO / "README.md").read_text()
    assert README_FIRST in readme, "the README's first command changed: update this test"
    venv = tmp_path / "readme-env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # `.venv/bin/pip install -e ".[lab]"`, in a fresh venv of its own; --no-compile installs the
    # same packages without byte-compiling all of them up front (halves the install time)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-compile",
                    "-e", f"{REPO}[lab]"], check=True, timeout=600)
    env = {k: v for k, v in os.environ.items() if k not in ("ROMA_URL", "ROMA_TOKEN", "PYTHONPATH")}
    env.update(PATH=f"{venv / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    # nbclient comes with jupyterlab (the [lab] extra): nothing beyond that install runs the notebooks
    notebooks = sorted(str(p) for p in (REPO / "notebooks").glob("*.ipynb"))
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", RUN_NOTEBOOKS, str(tmp_path), *notebooks],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ALL-NOTEBOOKS-RAN"), proc.stdout[-4000:]
