"""The package's public names: every module declares ``__all__``, the root
re-exports the public API the README documents, and importing starts nothing."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import roma_notebook as rn

MODULES = sorted(m.name for m in pkgutil.walk_packages(rn.__path__, prefix="roma_notebook."))

# the binding public names and errors (README, docs/ARCHITECTURE.md)
DESIGN_NAMES = [
    "RomaError",
    "ProtocolError",
    "ConnectionFailed",
    "AgentNotFound",
    "AuthenticationError",
    "connect",
    "load",
    "Simulator",
    "metrics",
    "agents",
    "AgentStream",
    "StreamGroup",
    "Recording",
]


def test_modules_found():
    assert {"roma_notebook.core.protocol", "roma_notebook.core.tables", "roma_notebook.core.errors"} <= set(MODULES)


def test_root_all_names_exist():
    assert isinstance(rn.__all__, list | tuple)
    assert len(set(rn.__all__)) == len(rn.__all__), "duplicates in __all__"
    for name in rn.__all__:
        assert hasattr(rn, name), name


@pytest.mark.parametrize("module", MODULES)
def test_every_module_sets_all(module):
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    assert names is not None, f"{module} does not set __all__"
    assert all(isinstance(n, str) for n in names), module
    assert len(set(names)) == len(names), f"duplicates in {module}.__all__"
    for name in names:
        assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which does not exist"


def test_star_import_matches_all():
    ns: dict = {}
    exec("from roma_notebook import *", ns)
    assert set(rn.__all__) - {"__version__"} <= set(ns)


def test_errors_hierarchy_exported():
    assert issubclass(rn.ProtocolError, rn.RomaError)
    assert issubclass(rn.ConnectionFailed, rn.RomaError)
    assert issubclass(rn.AgentNotFound, rn.ConnectionFailed)
    assert issubclass(rn.AuthenticationError, rn.ConnectionFailed)


def test_root_exports_the_current_backends_readers():
    # issue 11: the SQLite store's errors and the newer REST endpoints
    for name in ("insights", "agent_analytics", "StoreError", "StoreLocked"):
        assert name in rn.__all__ and hasattr(rn, name), name
    assert callable(rn.insights) and callable(rn.agent_analytics)
    assert issubclass(rn.StoreError, rn.RomaError) and issubclass(rn.StoreError, ValueError)
    assert issubclass(rn.StoreLocked, rn.RomaError)


def test_root_exports_design_public_api():
    missing = [n for n in DESIGN_NAMES if n not in rn.__all__ or not hasattr(rn, n)]
    assert not missing, f"missing from roma_notebook: {missing}"


def test_import_starts_nothing():
    # a fresh interpreter: importing the package (and every module) starts no thread
    code = (
        "import importlib, threading, roma_notebook\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "print(threading.active_count())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, timeout=120,
        cwd=Path(rn.__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1", out.stdout


def test_import_loads_no_server_simulator_plotly_or_widgets():
    # PEP 562: public names are imported on first use, so `import roma_notebook`
    # in a fresh interpreter brings in none of the heavy or server-side modules
    code = (
        "import sys, roma_notebook as rn\n"
        "heavy = ['roma_notebook.sim.simulator', 'roma_notebook.sim.market', 'websockets.asyncio.server',\n"
        "         'plotly', 'ipywidgets', 'pandas']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "rn.metrics\n"
        "print('pandas' in sys.modules, 'roma_notebook.sim.simulator' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(rn.__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True False"], out.stdout


def test_cli_help_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from roma_notebook import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('pandas', 'websockets', 'plotly', 'roma_notebook.sim.simulator') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(rn.__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]"), out.stdout


def test_version_is_the_packages():
    from importlib.metadata import version

    from roma_notebook._version import __version__

    assert rn.__version__ == __version__ == version("roma-notebook")


def test_no_module_is_named_like_a_public_name():
    # importing roma_notebook.X sets the package attribute X to the module: with
    # lazily imported names, a module named like a function would hide it
    short = {m.rsplit(".", 1)[1] for m in MODULES}
    assert not short & set(rn.__all__), short & set(rn.__all__)
    import roma_notebook.analysis.audit_checks  # noqa: F401 - the module that defines rn.audit

    assert callable(rn.audit)


# ------------------------------------------------------------------ layout

LAYERS = {"core", "live", "store", "analysis", "views", "sim"}


def test_every_module_sits_in_a_layer():
    # docs/ARCHITECTURE.md: the tree says where a frame is parsed, becomes a row, a pixel
    top = {m.name for m in pkgutil.iter_modules(rn.__path__)}
    assert top == LAYERS | {"__main__", "_version", "cli", "source_api"}, top
    for layer in LAYERS:
        doc = importlib.import_module(f"roma_notebook.{layer}").__doc__
        assert doc and "ARCHITECTURE.md" in doc, layer


def test_the_flat_module_names_of_0_1_still_import():
    # users' `import roma_notebook.tables` / `from roma_notebook.analytics import ...`
    code = (
        "import importlib, sys, roma_notebook as rn\n"
        "out = []\n"
        f"for layer in {sorted(LAYERS)!r}:\n"
        "    pkg = importlib.import_module('roma_notebook.' + layer)\n"
        "    import pkgutil\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        old = importlib.import_module('roma_notebook.' + m.name)\n"
        "        new = importlib.import_module(f'roma_notebook.{layer}.{m.name}')\n"
        "        out.append(old is new and sys.modules['roma_notebook.' + m.name] is new)\n"
        "from roma_notebook.analytics import metrics\n"
        "from roma_notebook import protocol as P\n"
        "import roma_notebook.tables as T\n"
        "print(len(out), all(out), metrics is rn.metrics, P.__name__, T.Tables.__module__, rn.zoom.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(rn.__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    n, ok, same, p, t, z = out.stdout.split()
    assert int(n) >= 30 and ok == same == "True", out.stdout
    assert (p, t, z) == ("roma_notebook.core.protocol", "roma_notebook.core.tables", "roma_notebook.views.zoom")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("roma_notebook.no_such_module")
