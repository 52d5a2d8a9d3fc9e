"""Binder cannot run here, so build what it would build: a fresh virtualenv from
exactly the binder/ files, then run the notebooks under strict nbval in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_binder_environment_runs_every_notebook(tmp_path):
    venv = tmp_path / "binder-env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["-r", str(REPO / "binder" / "requirements.txt")], check=True, timeout=600)
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    # postBuild exactly as Binder runs it: from the repository root, with the env's pip
    subprocess.run(["bash", str(REPO / "binder" / "postBuild")], cwd=REPO, env=env, check=True, timeout=300)
    # the test runner only, not part of the Binder image
    subprocess.run(pip + ["pytest", "nbval"], check=True, timeout=300)
    # the environment has the widget front ends Binder needs prebuilt (no build step)
    out = subprocess.run([str(venv / "bin" / "jupyter"), "labextension", "list"], env=env,
                         capture_output=True, text=True, check=True)
    listing = out.stdout + out.stderr
    assert "@jupyter-widgets/jupyterlab-manager" in listing
    assert "anywidget" in listing
    # run the notebooks from a copy so no build artefacts land in the repo
    proc = subprocess.run(
        [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         "--nbval-sanitize-with", str(REPO / "notebooks" / "sanitize.cfg"),
         "-o", "addopts=", "-o", "testpaths=", str(REPO / "notebooks")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout.splitlines()[-1]
    # the package came from postBuild, not from this checkout's path
    where = subprocess.run([str(py), "-c", "import roma_notebook, sys; print(roma_notebook.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(venv) in where
