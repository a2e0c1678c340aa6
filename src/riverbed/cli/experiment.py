"""`riverbed experiment NAME`: the slow, self-contained experiments (plots + a table).

Each experiment module defines ``add_arguments(parser)`` and ``run(args) -> int``; the list
below is literal so that one place names them all.
"""

from __future__ import annotations

import argparse
import importlib

EXPERIMENTS: dict[str, tuple[str, str]] = {
    "scaling": ("riverbed.experiments.scaling", "scaling study: WSD branches vs cosine runs, fits, held-out budget"),
    "spike": ("riverbed.experiments.spike", "loss-spike recovery: none vs rollback vs PMA-init"),
    "continued-training": ("riverbed.experiments.continued_training", "continued training from last checkpoint vs PMA merge"),
    "decay-vs-merge": ("riverbed.experiments.decay_vs_merge", "emulated-decay merge vs SMA/EMA/WMA vs the trained decay, over seeds"),
    "bigram": ("riverbed.experiments.bigram", "WSD on bigram data: decay drop by entropy bucket, interpolation, sharpness"),
    "lr-sweep": ("riverbed.experiments.lr_sweep", "decay drop and decayed loss against the stable LR (bigram data)"),
    "multi-budget": ("riverbed.experiments.multi_budget", "WSD branches vs WSD-S vs cyclic cosine vs cosine at equal compute"),
    "optimal-schedule": ("riverbed.experiments.optimal_schedule", "the law-optimised LR schedule vs WSD and cosine, trained over seeds"),
    "merge-interval": ("riverbed.experiments.merge_interval", "best merge interval V against model size (>= 3 sizes, merge-sweep)"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("experiment", help="run a slow experiment (plots + table)")
    sub = parser.add_subparsers(dest="experiment", metavar="NAME", required=True)
    for name, (module_name, help_text) in EXPERIMENTS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
