"""The mutation self-check as part of the suite (see ``mutation_check.py``).

A planted bug that the fast tests let through fails this test and names the
mutation. ``-m "not mutation"`` leaves it out of a quick local run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mutation_check  # tests/ is on sys.path under pytest

HERE = Path(__file__).resolve().parent


def test_every_mutation_targets_text_that_exists_exactly_once():
    # cheap, and it names the entry to update when the code it targets changes
    assert mutation_check._check_texts(mutation_check.MUTATIONS, mutation_check.PACKAGE) == []
    names = [m.name for m in mutation_check.MUTATIONS]
    assert len(names) == len(set(names)) and len(names) >= 12


@pytest.mark.mutation
@pytest.mark.timeout(600)
def test_every_planted_bug_is_caught_by_the_fast_tests():
    p = subprocess.run([sys.executable, str(HERE / "mutation_check.py")],
                       capture_output=True, text=True, timeout=580)
    print(p.stdout)  # the per-mutation table, shown with -s or on failure
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
