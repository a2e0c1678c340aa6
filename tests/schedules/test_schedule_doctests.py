"""The runnable examples in the schedules package's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["shapes", "core", "wsd", "presets", "spec", "check", "budget_plan", "torch"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"riverbed.schedules.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
