"""One typed entry point per verb, exported from ``riverbed``, with no ``Any`` in its signature."""

from __future__ import annotations

import inspect

import pytest

import riverbed

ENTRY_POINTS = ("train_run", "fork_branches", "merge", "build_report", "init_from_merge")


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_is_exported_and_typed_without_any(name):
    assert name in riverbed.__all__
    fn = getattr(riverbed, name)
    sig = inspect.signature(fn)
    annotations = {p.name: p.annotation for p in sig.parameters.values()} | {"return": sig.return_annotation}
    missing = [k for k, a in annotations.items() if a is inspect.Parameter.empty]
    assert not missing, f"riverbed.{name}: untyped {missing}"
    loose = {k: a for k, a in annotations.items() if "Any" in str(a)}
    assert not loose, f"riverbed.{name}: Any in {loose}"
