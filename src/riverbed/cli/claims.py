"""`riverbed claims [--quick] [--seeds K] [--json]`: the seed claims re-measured at small scale.

Runs the studies the claims need, one job per study and seed (tiny models on the embedded corpus
or the bigram language, CPU): WSD branches, decay shapes, cosine runs and merges; WSD-S, WSD and
cyclic cosine at equal compute; a loss spike with and without PMA-init; a data law from branch
ends against cosine runs; Epoch AI's Chinchilla refit; the trajectory predictor's leave-one-out
check; the river-valley lab's bucket drops and interpolation lines. Then prints one row per claim
(and model size, side by side, for the claims measured at two): the claim, its source, what was
measured (mean, standard error and 95 % t-interval over seeds), the verdict (holds / does not hold /
inconclusive, from where the threshold lies against the interval) and how many seeds the observed
effect and spread would need to be decisive. A claim that does not hold at this scale is reported as
such, with its numbers. ``--quick`` is the CI size.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from riverbed.checkpoints.outputs import check_output
from riverbed.executors.flags import add_executor_arguments, executor_from_args
from riverbed.io.progress import Progress

SIZES = ("tiny", "quick", "full")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("claims",
                              help="re-measure the seed claims (PMA, WSD vs cosine, WSD-S, scaling, ...) over seeds",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the CI size (same as --size quick)")
    p.add_argument("--size", choices=SIZES, default=None,
                   help="study size: tiny (seconds, for tests), quick (CI), full (default; the README's table)")
    p.add_argument("--seeds", type=int, default=None, metavar="K",
                   help="seeds per study (default: each study's own, what its claims need where affordable)")
    p.add_argument("--models", default=None, metavar="PRESETS",
                   help="comma-separated model sizes for the claims measured at several (default: tiny,1m)")
    p.add_argument("--only", default=None, metavar="IDS",
                   help="comma-separated claim ids or study names (wsd, multibudget, schedulefree, spike, branch-law, epoch, "
                        "predictor, optimal-schedule, merge-interval, bigram); default: all")
    p.add_argument("--list", action="store_true", help="list the claims (id, study, claim, source) and exit")
    p.add_argument("--json", action="store_true",
                   help='print {"claims": [{"id", "model", "claim", "source", "mean", "stderr", "seeds", "ci95", '
                        '"verdict", "seeds_needed", "rule", ...}, ...], "jobs": [...]}')
    p.add_argument("--markdown", action="store_true", help="print the table as GitHub markdown instead")
    p.add_argument("--report", type=Path, default=None, metavar="OUT.html",
                   help="also write the table as a self-contained HTML page")
    p.add_argument("--save", type=Path, default=None, metavar="CLAIMS.json",
                   help="keep every job's result in this file as it ends (the --json document); the same command with "
                        "the same file runs only the jobs it does not hold yet (a failed or killed run loses nothing)")
    p.add_argument("--results", type=Path, default=None, metavar="CLAIMS.json",
                   help="judge the jobs of an earlier run's --json output instead of running them (e.g. --markdown of a saved run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_executor_arguments(p, what="claims job (one study, one seed)")
    p.set_defaults(func=run)


def _run_jobs(jobs: list[Any], processes: int, progress: bool,
              on_job: Any = None) -> list[dict[str, Any]]:
    from riverbed.claims import runner

    if not progress:
        return runner.run_local(jobs, processes=processes, on_job=on_job)
    with Progress(transient=True) as bar:
        task = bar.add(f"{len(jobs)} jobs", len(jobs), unit="jobs")

        def advance(job: Any, result: dict[str, Any]) -> None:
            if on_job is not None:
                on_job(job, result)
            bar.update(task, label=f"done: {job.study} seed {job.seed}")
            bar.advance(task)

        return runner.run_local(jobs, processes=processes, on_job=advance)


def run(args: argparse.Namespace) -> int:
    from riverbed.claims import runner
    from riverbed.claims.store import SavedJobs, plain
    from riverbed.errors import ConfigError, RiverbedError

    if args.list:
        for c in runner.select(None):
            print(f"{c.id:28s} {c.study:12s} {','.join(c.models):8s} {c.claim} ({c.source})")
        return 0
    if args.json and args.markdown:
        raise ConfigError("--json and --markdown: choose one output")
    size = args.size or ("quick" if args.quick else "full")
    if args.quick and args.size not in (None, "quick"):
        raise ConfigError(f"--quick contradicts --size {args.size}")
    only = [o.strip() for o in args.only.split(",") if o.strip()] if args.only else None
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    claims = runner.select(only)
    if args.results is not None:
        return _rejudge(args, claims, only)
    jobs = runner.plan_jobs(only, size, args.seeds, models)
    executor = executor_from_args(args)  # --executor / --jobs (K > 1 alone: a local pool of K processes)
    if args.report is not None:
        from riverbed.claims.report import check_out

        check_out(args.report)  # before any training: a bad path costs nothing
    if args.save is not None:
        check_output(args.save, flag="--save", suffixes=(".json",), inputs=[args.report] if args.report else [],
                     error=ConfigError)
    store = SavedJobs(args.save, size)  # None: in memory, written out only if the run fails
    todo = store.todo(jobs)
    if not args.json:
        seeds = args.seeds if args.seeds is not None else "each study's own number of"
        kept = f"; {len(jobs) - len(todo)} already in {args.save}" if len(todo) < len(jobs) else ""
        print(f"riverbed claims: {len(claims)} claim(s), {len(jobs)} job(s) ({size} size, {seeds} seed(s), "
              f"{'in this process' if executor is None else f'{executor.backend} executor, {executor.jobs} at once'}{kept})",
              flush=True)
    t0 = time.perf_counter()
    try:
        if executor is None:
            _run_jobs(todo, 1, not args.no_progress, on_job=lambda _j, r: store.add(r))
        elif todo:
            runner.run_on_executor(executor, todo, progress=not args.no_progress, on_job=lambda _j, r: store.add(r))
    except RiverbedError as exc:
        where = args.save if args.save is not None else store.keep_in_temp()
        if where is None:
            raise
        again = "the same command" if args.save is not None else f"the same command with --save {where}"
        raise type(exc)(f"{exc}\n{len(store.done)} finished job(s) are kept in {where}: {again} runs only the "
                        "others") from None
    results = store.results(jobs)
    verdicts = runner.judge_jobs(claims, results)
    seconds = time.perf_counter() - t0
    store.write({"claims": plain([r.to_json() for r in verdicts]), "seconds": seconds})
    if args.report is not None:
        from riverbed.claims.report import write_report

        write_report(args.report, verdicts, results, size=size, seconds=seconds)
    if args.json:
        doc = {"claims": [r.to_json() for r in verdicts], "size": size, "seconds": seconds,
               "jobs": results}
        print(json.dumps(plain(doc), indent=2, allow_nan=False))
        return 0
    if args.markdown:
        from riverbed.claims.report import markdown_table

        print(markdown_table(verdicts), end="")
        print(f"\n{seconds:.0f} s in all")
    else:
        _print_table(verdicts, results, seconds)
    if args.report is not None:
        print(f"wrote {args.report}")
    return 0


def _rejudge(args: argparse.Namespace, claims: Any, only: list[str] | None) -> int:
    """``--results``: the verdicts of a saved run's jobs, printed as a fresh run prints them (nothing trains)."""
    from riverbed.claims import runner
    from riverbed.claims.store import plain
    from riverbed.errors import ConfigError
    from riverbed.io.input_files import read_text

    given = [f for f, v in (("--save", args.save), ("--quick", args.quick), ("--size", args.size), ("--seeds", args.seeds), ("--models", args.models),
                            ("--executor", args.executor), ("--jobs", args.jobs)) if v]
    if given:
        raise ConfigError(f"--results judges the jobs it holds; drop {', '.join(given)}")
    try:
        doc = json.loads(read_text(args.results, "--results"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"--results {args.results}: not valid JSON ({exc})") from None
    results = runner.saved_results(doc, f"--results {args.results}")
    ran = {r["job"]["study"] for r in results}
    claims = [c for c in claims if c.study in ran] if only is None else claims  # --only: a claim without results is an error
    if args.report is not None:
        from riverbed.claims.report import check_out, write_report

        check_out(args.report)
    verdicts = runner.judge_jobs(claims, results)
    seconds = float(doc.get("seconds") or 0.0)
    size = str(doc.get("size") or "full")
    if args.report is not None:
        write_report(args.report, verdicts, results, size=size, seconds=seconds)
    if args.json:
        print(json.dumps(plain({"claims": [r.to_json() for r in verdicts], "size": size, "seconds": seconds, "jobs": results}),
                         indent=2, allow_nan=False))
    elif args.markdown:
        from riverbed.claims.report import markdown_table

        print(markdown_table(verdicts), end="")
        print(f"\n{seconds:.0f} s in all (the saved run's)")
    else:
        _print_table(verdicts, results, seconds)
    return 0


def _print_table(verdicts: list[Any], results: list[dict[str, Any]], seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    from riverbed.claims import by_id
    from riverbed.claims.report import heldout_note, interval

    t = Table(title="seed claims at small scale (mean ± standard error, 95 % t-interval over seeds)", show_lines=True)
    t.add_column("claim (source)", ratio=4)
    t.add_column("model", no_wrap=True)
    t.add_column("measured per seed", ratio=5)
    t.add_column("holds if", no_wrap=True)
    t.add_column("mean ± se [95 % CI]", justify="right")
    t.add_column("verdict", no_wrap=True)
    t.add_column("seeds needed", ratio=1)
    colour = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}
    for r in verdicts:
        spec = by_id(r.id)
        pre = f"\n[dim]first: {r.precondition}[/dim]" if r.precondition else ""
        t.add_row(f"{r.claim}\n[dim]{r.source}[/dim]", r.model, r.measured + heldout_note(r) + pre,
                  f"{'>' if spec.larger_holds else '<'} {r.threshold:g}",
                  f"{interval(r)}\n[dim]n={r.seeds}[/dim]", f"[{colour[r.verdict]}]{r.verdict}[/]", r.seeds_note)
    c = Console()
    c.print(t)
    per_study: dict[str, float] = {}
    for res in results:
        key = f"{res['job']['study']} ({res['job'].get('model', 'tiny')})"
        per_study[key] = per_study.get(key, 0.0) + res["seconds"]
    c.print("rule: a claim holds if the 95 % Student t interval of its mean (n-1 degrees of freedom) lies on the "
            "holding side of the threshold, does not hold if it lies on the other side, and is inconclusive if "
            "the threshold lies inside it (and with one seed); a deterministic claim (n=1, no seed enters) is "
            "judged by its value")
    c.print(f"{seconds:.0f} s in all; per study: " + ", ".join(f"{k} {v:.0f} s" for k, v in per_study.items()))
