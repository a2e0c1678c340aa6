"""The claims' studies: each one trains what a few claims need, for one seed, and measures them.

A study is a function ``measure(size, seed, root) -> {"values": {claim id: float}, "extras": {...}}``
(plain JSON-able), one call per seed: a *job* that any executor can run (``riverbed.claims.runner``).
``size`` is "tiny" (the tests), "quick" (CI) or "full" (the README's table); ``root`` is an empty
scratch directory the study may fill.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES = ("tiny", "quick", "full")
Measure = Callable[[str, int, Path], dict[str, Any]]


def get(name: str) -> Measure:
    """The ``measure`` function of study ``name`` (imported lazily: each study pulls in torch)."""
    from importlib import import_module

    from riverbed.errors import ConfigError

    if name not in STUDIES:
        raise ConfigError(f"study {name!r}: unknown; known studies: {', '.join(STUDIES)}")
    return import_module(f"riverbed.claims.studies.{STUDIES[name]}").measure  # type: ignore[no-any-return]


#: study name -> module under riverbed.claims.studies
STUDIES: dict[str, str] = {
    "wsd": "wsd",
    "multibudget": "multibudget",
    "spike": "spike",
    "branch-law": "branch_law",
    "epoch": "epoch",
    "predictor": "predictor",
    "bigram": "bigram",
    "merge-interval": "merge_interval",
}
#: Studies whose measurement does not depend on the seed: run once, judged without a standard error.
DETERMINISTIC = frozenset({"epoch"})
