"""`riverbed adopt SOURCE --out RUN`: a run tree over a training output riverbed did not write.

SOURCE: a Hugging Face Trainer output_dir (checkpoint-N folders; its trainer_state.json is the
log), or a folder of checkpoints in any format `riverbed merge` reads (step_N / iter_N /
checkpoint-N folders or files) with --log FILE (CSV or W&B export, JSONL, trainer_state.json,
TensorBoard event files or their folder). Nothing of SOURCE is copied, moved or written: RUN's
checkpoints name and link the source's. The schedule is --schedule SPEC or the one the logged
LR follows (an error when it follows none riverbed can name); tokens come from the log or
--tokens-per-step, else `riverbed ls` shows them as unknown. Afterwards RUN works like a run
riverbed trained: ls, report, predict fit|branch|schedule|check, merge --run, scaling fit,
and decay branches trained by your own script (riverbed branch RUN --command 'CMD').
Run it again on the same RUN to pick up checkpoints saved since.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from riverbed.cli.log_args import add_log_columns, log_columns, say
from riverbed.units import arg, parse_count


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("adopt", help="make a run tree over an existing training output (HF Trainer output_dir, "
                                             "a folder of checkpoints + a log) without touching it",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, metavar="SOURCE", help="a Trainer output_dir or a folder of checkpoints")
    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="the run tree to create (or update)")
    p.add_argument("--log", type=Path, default=None, metavar="FILE",
                   help="the training log (default: a Trainer output_dir's trainer_state.json)")
    p.add_argument("--schedule", default=None, metavar="SPEC",
                   help="the run's schedule (inline JSON or a TOML/JSON file; default: read from the logged LR)")
    p.add_argument("--tokens-per-step", type=arg(parse_count, positive=True), default=None, metavar="N",
                   help="tokens per optimizer step (default: the log's token count, else unknown)")
    add_log_columns(p, eval_loss=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from riverbed.predict.verbs import parse_spec  # lazy: the schedule-spec reader of `predict` (scipy)
    from riverbed.orchestration.adopt import adopt
    from riverbed.runs.view import human

    spec = parse_spec(args.schedule) if args.schedule else None
    r, notes = adopt(args.source, args.out, log=args.log, schedule=spec, tokens_per_step=args.tokens_per_step,
                     columns=log_columns(args))
    say(notes)
    main = r.branch("main")
    last = main.last
    steps = ", ".join(str(c.step) for c in r.checkpoints())
    print(f"adopted {args.source} as {r.path}: {len(r.checkpoints())} checkpoints (steps {steps}), "
          f"{human(r.manifest.model.get('n_params'))} params, schedule {main.schedule.get('type')}, "
          f"last held-out loss {'-' if last is None or last.eval_loss is None else f'{last.eval_loss:.4f}'}")
    return 0
