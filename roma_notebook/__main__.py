"""``python -m roma_notebook``: the ``roma-notebook`` command line.

Example:
    python -m roma_notebook sim --port 0 --speed 60
"""

from __future__ import annotations

import sys

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
