"""The flags that name a training log's columns (`predict fit`, `predict curve`, `adopt --log`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from riverbed.runs.logs.read import LogColumns

_ROLES = (("step", "step"), ("lr", "learning rate"), ("loss", "loss"))


def add_log_columns(parser: argparse.ArgumentParser, *, eval_loss: bool = False) -> None:
    """``--step-col``, ``--lr-col``, ``--loss-col`` (and ``--eval-loss-col``)."""
    roles = _ROLES + ((("eval-loss", "held-out loss"),) if eval_loss else ())
    for role, what in roles:
        parser.add_argument(f"--{role}-col", default=None, metavar="NAME",
                            help=f"log: the column (JSON key, TensorBoard tag) holding the {what} "
                                 "(default: found by its usual names)")


def log_columns(args: argparse.Namespace) -> LogColumns:
    return LogColumns(step=args.step_col, lr=args.lr_col, loss=args.loss_col,
                      eval_loss=getattr(args, "eval_loss_col", None))


def say(notes: Iterable[str]) -> None:
    """What a reader decided (columns used, a warmup found), one line each on stderr."""
    for note in notes:
        print(note, file=sys.stderr)


def say_one(note: str) -> None:
    say((note,))
