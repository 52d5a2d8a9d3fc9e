"""The committed notebooks are in the form the lab leaves them and nbval compares.

JupyterLab rewrites a kernelspec display name it does not expect, drops per-cell
timing and (with autosave) saves whatever a session produced; nbval then compares
against those outputs. This names what is off and how to restore it, before nbval
reports a confusing output mismatch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
_spec = importlib.util.spec_from_file_location("refresh_outputs", NOTEBOOKS / "refresh_outputs.py")
refresh_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(refresh_outputs)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_committed_clean(path):
    problems = refresh_outputs.problems(nbformat.read(path, as_version=4))
    assert not problems, (
        f"{path.name}: {'; '.join(problems)}. Restore it with `git checkout -- notebooks/{path.name}` "
        f"or regenerate with `python notebooks/refresh_outputs.py notebooks/{path.name}`"
    )


def test_normalise_fixes_what_the_lab_changes():
    nb = nbformat.read(NOTEBOOKS / "01_live_agent.ipynb", as_version=4)
    nb.metadata["kernelspec"]["display_name"] = "Python 3"
    nb.metadata["widgets"] = {"state": {}}
    assert len(refresh_outputs.problems(nb)) == 2
    refresh_outputs.normalise(nb)
    assert refresh_outputs.problems(nb) == []
