"""`riverbed branch RUN --from STEP[,STEP...] --shape SHAPE --length N`: rewind & decay.

Forks a decay branch from each saved main-branch checkpoint named by --from, trains it to
its end and records its final held-out loss in the run's manifest. The main branch is only
read. --length takes a unit: steps (2000 steps), tokens (2M tok, 65536tok) or a percentage
of the budget (20%: the decay is 20 % of fork step + decay); a plain integer (200) is steps,
any other bare number (2M, 1e6) is refused as ambiguous. A decay longer than the main branch
before its fork is allowed, with a warning. --plan plan.json (from `riverbed plan`) forks
every decay branch of the plan instead; re-running it skips branches that finished and
resumes interrupted ones. --schedule SPEC follows a whole-run schedule after the fork instead of a
decay shape (a `tabulated` spec from `riverbed predict optimize`, or any schedule with an end):
it must equal the main branch's schedule up to the fork, and --from defaults to the newest saved
checkpoint before the two part.

All requests are checked before anything trains: a step that was never saved, an existing
branch name, an unknown shape or a bad length is one error message, exit code 2, and the run
is left as it was.

Scale-out: --executor local|ray|slurm (--jobs K > 1 alone means local) trains each branch as
an independent job -- a pool of K processes here, Ray tasks (riverbed[ray]) or Slurm jobs
through submitit (riverbed[slurm]; --slurm-option KEY=VALUE for its parameters, e.g.
slurm_partition=gpu, cluster=local). `riverbed ls RUN` shows each branch queued / running (job,
host) / failed. Local and Ray jobs end with this process, so it waits for them; Slurm jobs
stay queued when it returns, unless --wait. `riverbed branch RUN --wait` alone waits for the
run's queued and running branches. A job that fails or dies is a failed branch (exit 2, the
branch and job named); the same command again keeps the branches that finished and resumes
the others from their newest checkpoints.

Your own training code: --command 'CMD' runs CMD once per branch instead of riverbed's trainer
(through the executors as well), with {fork} (the fork checkpoint's directory), {schedule} (a
JSON file: peak lr, the branch's riverbed schedule, start_step, end_step) and {out} (an empty
directory for the branch's checkpoints and log) replaced by shell-quoted paths. riverbed then
ingests {out} and records the branch like a native one; a CMD that fails or writes nothing is a
failed branch (exit 2) with its exit code and the last lines of its log. This is the way to
branch a run made with `riverbed adopt`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riverbed.cli.deprecated import add_deprecated
from riverbed.executors.flags import add_executor_arguments, executor_from_args
from riverbed.errors import ConfigError, RunError
from riverbed.executors.branches import fork_branches
from riverbed.io.progress import name_column
from riverbed.runs import Run
from riverbed.runs.view import human
from riverbed.units import JoinWords, parse_count


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("branch", help="fork decay branches from saved main-branch checkpoints and train them",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--from", dest="from_steps", default=None, metavar="STEP[,STEP...]",
                   help="main-branch step(s) to fork from (must be saved checkpoints)")
    p.add_argument("--shape", dest="shape", default=None, metavar="SHAPE",
                   help="decay shape: linear, cosine, 1-sqrt, square, mirror-cosine, inverse-proportional, exp-..., step")
    add_deprecated(p, "--decay", new="--shape", dest="shape", metavar="SHAPE")
    p.add_argument("--length", nargs="+", action=JoinWords, default=None, metavar=("N", "UNIT"),
                   help="decay length with a unit: 2000 steps, 2M tok or 20%% (of the budget); a plain integer is steps")
    p.add_argument("--min-ratio", type=float, default=None, metavar="R",
                   help="final LR as a fraction of the peak (default: the schedule's, 0)")
    p.add_argument("--name", default=None,
                   help="branch name (default <shape>-from<step>-len<length>; with several steps NAME-<step>)")
    p.add_argument("--plan", type=Path, default=None, help="fork every decay branch of a plan.json from `riverbed plan`")
    p.add_argument("--schedule", default=None, metavar="SPEC",
                   help="follow this whole-run schedule after the fork instead of a decay shape: inline JSON or a "
                        "TOML/JSON file (e.g. what `riverbed predict optimize --json`/`-o` writes); it must equal the main "
                        "branch's schedule up to the fork (--from: default the newest checkpoint before they part)")
    p.add_argument("--eval-every", type=int, default=0, metavar="N",
                   help="held-out evaluation every N steps of each branch (default 0: the branch length / 10, "
                        "about 10 evaluations per branch, enough to draw its drop)")
    p.add_argument("--command", default=None, metavar="CMD",
                   help="train each branch with your own command; {fork}, {schedule} and {out} are replaced by paths")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_executor_arguments(p, what="branch")
    p.add_argument("--wait", action="store_true",
                   help="wait for the jobs to end, a progress bar over the branches (local and ray always wait); "
                        "alone (no --from/--plan): wait for the run's queued and running branches")
    p.set_defaults(func=run)


def parse_steps(text: str) -> list[int]:
    steps = []
    for part in text.split(","):
        part = part.strip()
        try:
            steps.append(parse_count(part, field="--from"))
        except ConfigError:
            raise RunError(f"--from {text!r}: {part!r} is not a step number") from None
    return steps


def run(args: argparse.Namespace) -> int:
    if args.wait and args.plan is None and all(v is None for v in (args.from_steps, args.shape, args.length, args.schedule)):
        from riverbed.executors.fanout import wait_for_run

        return _finish(lambda: wait_for_run(Run.open(args.run), progress=not args.no_progress))
    if args.plan is None and args.schedule is None:  # the command line names every part of a branch (the library has defaults)
        missing = [f for f, v in (("--from", args.from_steps), ("--shape", args.shape), ("--length", args.length)) if v is None]
        if missing:
            raise RunError(f"riverbed branch needs {', '.join(missing)} (or --plan plan.json)")
    steps = parse_steps(args.from_steps) if args.from_steps is not None else None
    return _finish(lambda: fork_branches(args.run, steps, args.shape, args.length, plan=args.plan, min_ratio=args.min_ratio,
                                         name=args.name, eval_every=args.eval_every, executor=executor_from_args(args),
                                         wait=args.wait, progress=not args.no_progress, command=args.command,
                                         schedule=args.schedule))


def _finish(train) -> int:
    """Run ``train()`` and print the branches' table (also when some jobs failed: the table,
    then the JobError naming them, exit 2)."""
    from riverbed.executors.base import JobError

    try:
        records = train()
    except JobError as exc:
        print_results(exc.records)
        raise
    print_results(records)
    if any(b.status == "queued" for b in records):
        print("queued; `riverbed ls RUN` shows them, `riverbed branch RUN --wait` waits for them")
        return 0
    return 0 if all(b.status == "finished" for b in records) else 1


def print_results(records) -> None:
    t = Table(title="decay branches (held-out loss)", caption="tokens: of the finished model, main up to the fork + the decay")
    name_column(t, "branch")
    for col in ("fork", "main @ fork", "tokens", "final loss", "status"):
        t.add_column(col, justify="left" if col == "status" else "right")
    for b in records:
        last = b.final or b.progress
        fork_loss = "-" if b.fork is None or b.fork.eval_loss is None else f"{b.fork.eval_loss:.4f}"
        loss = "-" if last is None or last.eval_loss is None else f"{last.eval_loss:.4f}"
        status = b.status + (f" (job {b.job.backend}:{b.job.id})" if b.job and b.status != "finished" else "")
        t.add_row(b.name, str(b.fork.step if b.fork else "-"), fork_loss, human(last.tokens if last else None), loss, status)
    Console().print(t)
