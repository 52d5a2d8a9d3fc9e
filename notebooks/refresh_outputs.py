"""Re-execute the example notebooks and keep only the outputs nbval compares.

    python notebooks/refresh_outputs.py [NOTEBOOK ...]

Cells marked ``# NBVAL_IGNORE_OUTPUT`` lose their outputs (widgets, times, ports),
and saved widget state is dropped: it is megabytes of plotly JavaScript that nbval
never compares.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "NBVAL_IGNORE_OUTPUT" in cell.source:
            cell.outputs = []
        for out in cell.get("outputs", []):
            out.get("metadata", {}).pop("application/vnd.jupyter.widget-view+json", None)
            data = out.get("data", {})
            data.pop("application/vnd.jupyter.widget-view+json", None)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print("refreshed", path.name)


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(HERE.glob("*.ipynb"))
    for p in paths:
        refresh(p)
