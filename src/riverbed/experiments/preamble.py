"""How every experiment starts: its common flags, its output folder, bounded mode and progress.

An experiment owns its ``--out`` folder and replaces it on every run. So that a mistyped
``--out`` can never delete someone's data, the folder is marked with ``MARKER`` (naming the
experiment) when the experiment creates it, and only a folder holding that experiment's marker
is ever removed: a non-empty folder without it (or with another experiment's) is refused with
:class:`~riverbed.errors.OutputExistsError` (CLI exit 2) and left untouched.

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_arguments(p, "spike", seeds=3)
>>> args = p.parse_args(["--no-progress"])
>>> str(args.out), args.seeds, args.no_progress
('experiments/spike', None, True)
"""

from __future__ import annotations

import argparse
import json
import os
import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riverbed.io.atomic import write_json
from riverbed.errors import OutputExistsError

MARKER = ".riverbed-experiment.json"
"""Written first into an experiment's output folder: ``{"experiment": NAME}``."""

BOUNDED_ENV = "RIVERBED_BOUNDED"


def bounded() -> bool:
    """RIVERBED_BOUNDED set (not 0): the short form CI runs (fewer seeds and steps, same code path)."""
    return os.environ.get(BOUNDED_ENV, "") not in ("", "0")


def add_arguments(p: argparse.ArgumentParser, name: str, *, seeds: int | None = None, quick: bool = False) -> None:
    """``--out`` (default ``experiments/NAME``), ``--no-progress``, and where asked ``--seeds``
    (``seeds`` is its full-form default) and ``--quick`` (the bounded form on request)."""
    p.add_argument("--out", type=Path, default=Path("experiments") / name,
                   help=f"output folder (replaced; only a folder this experiment wrote, marked by {MARKER})")
    if seeds is not None:
        p.add_argument("--seeds", type=int, default=None, help=f"seeds (default {seeds}; bounded 1)")
    if quick:
        p.add_argument("--quick", action="store_true", help=f"the short form CI runs (also {BOUNDED_ENV}=1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


@dataclass(frozen=True)
class Options:
    """The common flags, resolved."""

    bounded: bool
    """The short form: RIVERBED_BOUNDED=1 or --quick."""
    progress: bool
    seeds: int | None
    """--seeds, else the default of the form (None where the experiment has no --seeds)."""

    def choose(self, given: Any, bounded_value: Any, full_value: Any) -> Any:
        """A setting of the experiment: the flag when given, else the bounded or the full form's."""
        return given if given is not None else (bounded_value if self.bounded else full_value)


@dataclass(frozen=True)
class Start(Options):
    """What an experiment's ``run`` starts from: the options and its output folder."""

    out: Path
    """The (fresh, marked) output folder."""


def options(args: argparse.Namespace, *, seeds: int = 3, bounded_seeds: int = 1) -> Options:
    """The common flags: bounded = --quick or RIVERBED_BOUNDED; --seeds or the form's default."""
    b = bool(getattr(args, "quick", False)) or bounded()
    n = getattr(args, "seeds", None)
    if n is None and hasattr(args, "seeds"):
        n = bounded_seeds if b else seeds
    return Options(b, not args.no_progress, n)


def start(args: argparse.Namespace, name: str, *, seeds: int = 3, bounded_seeds: int = 1) -> Start:
    """:func:`options`, then a fresh output folder (see :func:`fresh_output`). An experiment
    that checks more flags first calls the two itself, so a bad flag deletes nothing."""
    o = options(args, seeds=seeds, bounded_seeds=bounded_seeds)
    return Start(o.bounded, o.progress, o.seeds, fresh_output(args.out, name))


def fresh_output(out: str | Path, name: str) -> Path:
    """An empty folder ``out`` marked as experiment ``name``'s output; a previous output of the
    same experiment is removed first, anything else non-empty is refused untouched."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputExistsError(f"--out {out}: exists and is not a folder; refusing to replace it")
    if out.is_dir() and any(out.iterdir()):
        owner = _owner(out)
        if owner != name:
            why = (f"it holds experiment {owner!r}'s output" if owner else
                   f"it is not empty and is not an experiment's output (no {MARKER})")
            raise OutputExistsError(f"--out {out}: {why}; refusing to delete it: choose another folder or empty it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, {"experiment": name})
    return out


def _owner(out: Path) -> str | None:
    """The experiment named by ``out``'s marker, or None (no marker, or not one we wrote)."""
    try:
        value = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value.get("experiment") if isinstance(value, dict) and isinstance(value.get("experiment"), str) else None


def mean_se(xs: list[float]) -> dict[str, float | None]:
    """Mean, standard error (None for one value) and count: how every experiment here reports seeds."""
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else None
    return {"mean": statistics.fmean(xs), "se": se, "n": len(xs)}
