"""`riverbed` command line: one module per verb, listed literally below.

Each verb module defines ``add_parser(subparsers)`` (which registers its parser and sets
``func``) and keeps its heavy imports (torch, matplotlib) inside the function that runs,
so ``riverbed --help`` and ``riverbed merge`` start fast.
"""

from __future__ import annotations

import argparse
import ast
import errno
import importlib
import importlib.util
import os
import re
import sys
import warnings
from pathlib import Path

from riverbed.errors import RiverbedError, RiverbedWarning
from riverbed.io.atomic import disk_full_error, is_disk_full
from riverbed.version import __version__
from riverbed.extras import missing_extra

# verb -> module. Literal on purpose: one place lists every verb.
VERBS: dict[str, str] = {
    "schedule": "riverbed.cli.schedule",
    "plan": "riverbed.cli.plan",
    "train": "riverbed.cli.train",
    "branch": "riverbed.cli.branch",
    "ls": "riverbed.cli.ls",
    "rm": "riverbed.cli.rm",
    "eval": "riverbed.cli.eval",
    "demo": "riverbed.cli.demo",
    "merge": "riverbed.cli.merge",
    "merge-sweep": "riverbed.cli.merge_sweep",
    "scaling": "riverbed.cli.scaling",
    "init-from-merge": "riverbed.cli.init_from_merge",
    "experiment": "riverbed.cli.experiment",
    "completion": "riverbed.cli.completion",
    "report": "riverbed.cli.report",
    "claims": "riverbed.cli.claims",
    "probe": "riverbed.cli.probe",
    "predict": "riverbed.cli.predict",
}


# Module docstrings double as the verbs' --help; they are reStructuredText for the API docs
# (``code``, :class:`X`), which --help shows as plain text.
_RST = re.compile(r"``(.+?)``|:[a-z]+:`~?([^`]+)`", re.DOTALL)


class _Parser(argparse.ArgumentParser):
    # argparse already exits 2 on usage errors; keep its message but make it one line.
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"riverbed: error: {message}\n")

    def format_help(self) -> str:
        return _RST.sub(lambda m: m.group(1) or m.group(2), super().format_help())


def build_parser(only: str | None = None, *, lazy: bool = False) -> argparse.ArgumentParser:
    """The whole command line (every verb module imported), or a start-up-light one.

    ``only``: import that verb's module alone; the other verbs are bare names (enough to parse
    or refuse a command line that runs ``only``). ``lazy``: import no verb module; each verb's
    one-line help is read from its module's source (``riverbed --help``). Verb modules import
    what they run at their top, so importing all of them costs a second of numpy, the reports
    and the run tree that ``riverbed --help`` or ``riverbed ls`` do not need.
    """
    parser = _Parser(prog="riverbed", description="riverbed: WSD main branches, rewind-and-decay branches, WSD-S, checkpoint averaging (PMA) and scaling laws.")

    parser.add_argument("--version", action="version", version=f"riverbed {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for verb, module_name in VERBS.items():
        if only == verb or (only is None and not lazy):
            importlib.import_module(module_name).add_parser(sub)
        elif only is not None:
            sub.add_parser(verb)
        else:
            text = _verb_help(verb, module_name)
            if text is None:  # not a literal: ask the module itself
                importlib.import_module(module_name).add_parser(sub)
            else:
                sub.add_parser(verb, help=text)
    return parser


def _verb_help(verb: str, module_name: str) -> str | None:
    # The literal help= of the module's `add_parser("VERB", help=...)` call, read without importing it.
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return None
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_parser"
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == verb):
            value = next((kw.value for kw in node.keywords if kw.arg == "help"), None)
            return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    # riverbed's own warnings read as messages to the user, not as source locations.
    if issubclass(category, RiverbedWarning):
        print(f"riverbed: warning: {message}", file=file or sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    verb = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(verb) if verb in VERBS else build_parser(lazy=True)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error (2) or --help/--version (0): a return code, like every verb
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            warnings.simplefilter("always", RiverbedWarning)
            rc = args.func(args)
    except RiverbedError as exc:
        print(f"riverbed: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        # torch-free install (no `train` extra) or another optional dependency missing.
        err = missing_extra(exc, f"riverbed {args.verb}")
        if err is None:
            raise
        print(f"riverbed: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("riverbed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `riverbed ls --json | head`: the reader went away; not an error of ours.

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a full disk or a read-only mount met where no riverbed writer named it
        if is_disk_full(exc):
            where = getattr(exc, "filename", None) or "an output"
            print(f"riverbed: error: {disk_full_error(where, exc)}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError) and exc.errno == errno.EROFS:
            print(f"riverbed: error: {exc.filename}: {exc.strerror}; riverbed {args.verb} writes there", file=sys.stderr)
            return 2
        raise
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
