"""`riverbed train CONFIG.toml [--set key=value ...] [--run DIR] [--plan plan.json]`.

Creates the run directory (config.toml + run.json) or resumes it, then trains the main branch:
to train.max_steps / train.max_tokens, to the last fork point of --plan, or indefinitely.
Ctrl-C stops at the next step boundary with a checkpoint there (single process); run the
same command again to resume exactly. Under `torchrun --nproc_per_node=K` it trains
data-parallel; rank 0 alone writes.

Resuming (with a config file, or with --set alone) checks the result against the run's
config: only its length, cadences and hardware may change (train.max_steps, max_tokens,
ckpt_every, ckpt_every_tokens, eval_every, log_every, device, threads, tensorboard,
grad_accum, dtype, keep); anything that would change the trajectory is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riverbed.orchestration.train import default_run_dir, train_run
from riverbed.units import arg, parse_count


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train (or resume) the main branch of a run",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", type=Path, help="TOML config (optional when resuming --run)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.batch_size=16 (repeatable)")
    p.add_argument("--run", type=Path, default=None, help="run directory (default: runs/<config name>)")
    p.add_argument("--plan", type=Path, default=None, help="a plan.json from `riverbed plan`: train main to its last fork point")
    p.add_argument("--steps", type=arg(parse_count), default=None,
                   help="train main until this global step, e.g. 2000 or 2K (overrides the config's length)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from riverbed.training import distributed as D  # lazy: loads torch; every verb module is imported for `riverbed --help`

    try:
        result = train_run(args.config, args.run, overrides=args.overrides, plan=args.plan, steps=args.steps,
                           progress=not args.no_progress)
    except KeyboardInterrupt:
        if D.from_env().is_main:
            run_dir = args.run if args.run is not None else default_run_dir(args.config)
            print(f"riverbed: interrupted; the main branch was saved at its last step boundary. "
                  f"Resume with: riverbed train --run {run_dir}", file=sys.stderr)
        return 130
    if D.from_env().is_main:
        loss = f"{result.last_eval_loss:.4f}" if result.last_eval_loss is not None else "n/a"
        print(f"main: step {result.step}  tokens {result.tokens:,}  FLOPs {result.flops:.3e}  held-out loss {loss}")
        print(f"checkpoint: {result.checkpoint}")
    return 0
