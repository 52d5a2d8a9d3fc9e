"""The examples in the package's docstrings run and say what they show."""

import doctest
import importlib
import pkgutil

import pytest

import roma_notebook

MODULES = sorted(m.name for m in pkgutil.iter_modules(roma_notebook.__path__, "roma_notebook."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed"
