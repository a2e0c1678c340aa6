"""`riverbed init-from-merge NEW_RUN --run RUN --last N [...]`: a new run that starts from a merge.

PMA-init (arXiv 2505.12082): continued training on new data, or fine-tuning, starts from the
average of the last N checkpoints of RUN instead of its last checkpoint. The new run's config
is RUN's (or ``--config``, e.g. another data mix), plus an ``[init]`` section naming the merge;
the merged checkpoint is written to NEW_RUN/init-merge/ at once (the weights are printed), and
``riverbed train --run NEW_RUN`` (or ``--steps S`` here) trains from it. The same is reached from
a config alone with ``[init] from_merge = "RUN"``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.cli import train as train_cli
from riverbed.errors import ConfigError
from riverbed.merging.weights import format_weights
from riverbed.orchestration.init_from_merge import init_from_merge
from riverbed.units import arg, parse_count


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("init-from-merge", help="start a new run from a merge of another run's checkpoints",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("new_run", type=Path, metavar="NEW_RUN", help="directory of the new run (must not exist)")
    p.add_argument("--run", type=Path, required=True, help="the run whose checkpoints are merged")
    p.add_argument("--last", type=arg(parse_count), required=True, metavar="N", help="merge the newest N checkpoints")
    p.add_argument("--every", type=arg(parse_count), default=1, metavar="V", help="checkpoints at least V steps apart, back from the newest (as `riverbed merge --every`)")
    p.add_argument("--branch", default="main", help="branch of RUN to merge (default: main)")
    p.add_argument("--method", choices=("sma", "ema", "wma"), default="sma", help="merge weights (default: sma)")
    p.add_argument("--alpha", type=float, default=0.2, help="EMA coefficient (--method ema)")
    p.add_argument("--optimizer-state", choices=("reset", "from-last", "average"), default="reset",
                   help="AdamW moments of the new run: fresh, the newest merged checkpoint's, or merged alike")
    p.add_argument("--config", type=Path, default=None, help="config of the new run (default: RUN's config.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value of the new run (repeatable)")
    p.add_argument("--steps", type=arg(parse_count), default=None, help="also train the new run to this step now")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (with --steps)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps < 0:
        raise ConfigError(f"--steps={args.steps} must be >= 0")
    made = init_from_merge(args.new_run, args.run, last=args.last, every=args.every, branch=args.branch, method=args.method,
                           alpha=args.alpha, optimizer_state=args.optimizer_state, config=args.config,
                           overrides=args.overrides)
    print(f"{args.new_run}: starts from the {made.method} merge of {len(made.checkpoints)} checkpoints of {args.run} "
          f"(branch {args.branch}), optimizer state: {args.optimizer_state}")
    print(format_weights(list(made.weights), [layout.checkpoint_name(s) for s in made.checkpoints]))
    for r in made.rejected:
        print(f"  passed over step {r['step']}: {r['reason']}")
    if args.steps is None:
        print(f"train it with: riverbed train --run {args.new_run} [--steps S]")
        return 0
    return train_cli.run(argparse.Namespace(config=None, overrides=[], run=args.new_run, plan=None, steps=args.steps,
                                            no_progress=args.no_progress))
