"""The claims' studies: each one trains what a few claims need, for one seed, and measures them.

A study is a function ``measure(size, seed, root, model) -> {"values": {claim id: float}, "extras":
{...}, "sampling": {claim id: float}}`` (plain JSON-able; ``sampling``, where given, is each number's
held-out sampling error), one call per seed: a *job* that any executor can run
(``riverbed.claims.runner``). ``size`` is "tiny" (the tests), "quick" (CI) or "full" (the README's
table); ``root`` is an empty scratch directory the study may fill; ``model`` is the model preset
(``MODELS``: the studies measured at more than one size).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES = ("tiny", "quick", "full")
Measure = Callable[[str, int, Path, str], dict[str, Any]]


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
    "schedulefree": "schedulefree",
    "spike": "spike",
    "branch-law": "branch_law",
    "epoch": "epoch",
    "predictor": "predictor",
    "bigram": "bigram",
    "optimal-schedule": "optimal_schedule",
    "merge-interval": "merge_interval",
}
#: Studies whose measurement does not depend on the seed: run once, judged without a standard error.
DETERMINISTIC = frozenset({"epoch"})
#: Studies measured at several model presets (the others: "tiny" only).
MODELS: dict[str, tuple[str, ...]] = {"wsd": ("tiny", "1m")}
#: Seeds each study runs by default: what its claims' observed effects and spreads need for a
#: decisive 95 % t-interval where that is affordable on a 2-core CPU machine (the full size takes
#: ~50-100 s per seed and study there); the table says where a claim would need more.
SEEDS: dict[str, int] = {"wsd": 5, "multibudget": 5, "schedulefree": 3, "spike": 3, "branch-law": 3, "epoch": 1, "predictor": 3,
                         "bigram": 5, "optimal-schedule": 3, "merge-interval": 3}
