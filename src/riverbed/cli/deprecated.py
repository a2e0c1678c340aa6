"""Renamed flags: the old spelling keeps working for one release and says what replaced it.

One flag name has one meaning across verbs: ``--shape`` is a decay shape, ``--decay-steps``
and ``--decay-fraction`` are lengths, ``-o/--output`` is a JSON file written, ``--plot`` a
PNG written, ``--out`` an output directory, ``--run`` an existing run directory. The
spellings that meant different things in different verbs (``--decay``; ``scaling fit --out``,
a file; ``schedule plot -o``, a PNG) are registered here, hidden from ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


class DeprecatedAlias(argparse.Action):
    """Stores like the new flag, after printing a deprecation message naming it."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"riverbed: warning: `{parser.prog} {option_string}` is deprecated, use {self.new} "
              f"(the old spelling will be removed in the next release)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated(parser: argparse.ArgumentParser | Any, *old: str, new: str, dest: str, **kw: Any) -> None:
    """Register ``old`` spellings of ``new`` (same ``dest``, ``type``), hidden from --help."""
    parser.add_argument(*old, dest=dest, action=DeprecatedAlias, new=new, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **kw)
