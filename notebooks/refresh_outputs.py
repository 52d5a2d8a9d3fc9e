"""Re-execute the example notebooks and keep only the outputs nbval compares.

    python notebooks/refresh_outputs.py [NOTEBOOK ...]    # re-execute, then normalise
    python notebooks/refresh_outputs.py --check           # exit 1 if one is not normalised

Cells marked ``# NBVAL_IGNORE_OUTPUT`` lose their outputs (widgets, times, ports),
and saved widget state is dropped: it is megabytes of plotly JavaScript that nbval
never compares. The kernelspec's display name is the one JupyterLab writes, and no
per-cell timing is kept (JupyterLab deletes it when it runs a cell), so opening and
running a notebook in the lab leaves its metadata as committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).parent

#: what JupyterLab 4 writes for the default Python kernel
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def problems(nb) -> list[str]:
    """Why ``nb`` is not in its committed form (empty when it is)."""
    out = []
    if dict(nb.metadata.get("kernelspec", {})) != KERNELSPEC:
        out.append(f"kernelspec is {dict(nb.metadata.get('kernelspec', {}))!r}, not {KERNELSPEC!r}")
    if "widgets" in nb.metadata:
        out.append("saved widget state (metadata.widgets)")
    for n, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        if "execution" in cell.get("metadata", {}):
            out.append(f"cell {n}: per-cell timing metadata")
        if "NBVAL_IGNORE_OUTPUT" in cell.source and cell.outputs:
            out.append(f"cell {n}: outputs in a # NBVAL_IGNORE_OUTPUT cell")
        for o in cell.outputs:
            if o.get("output_type") == "error" or o.get("name") == "stderr":
                out.append(f"cell {n}: an error or stderr output")
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                out.append(f"cell {n}: a widget view output")
    return out


def normalise(nb) -> None:
    """Drop what the lab or a session adds that the committed notebooks do not keep."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type != "code":
            continue
        if "NBVAL_IGNORE_OUTPUT" in cell.source:
            cell.outputs = []
        for out in cell.get("outputs", []):
            out.get("metadata", {}).pop("application/vnd.jupyter.widget-view+json", None)
            out.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)


def refresh(path: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(HERE)}}).execute()
    normalise(nb)
    nbformat.write(nb, path)
    print("refreshed", path.name)


def check(paths: list[Path]) -> int:
    bad = 0
    for p in paths:
        for why in problems(nbformat.read(p, as_version=4)):
            print(f"{p.name}: {why}", file=sys.stderr)
            bad += 1
    if bad:
        print("restore with `git checkout -- notebooks/` or re-run `python notebooks/refresh_outputs.py`",
              file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--check"]:
        sys.exit(check([Path(p) for p in args[1:]] or sorted(HERE.glob("*.ipynb"))))
    for p in [Path(p) for p in args] or sorted(HERE.glob("*.ipynb")):
        refresh(p)
