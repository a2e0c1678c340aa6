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
import contextlib
import sys
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.io.atomic import write_text
from riverbed.checkpoints.layout import writer_lock
from riverbed.config import config_from_dict, load_config
from riverbed.data import load_dataset
from riverbed.errors import ConfigError, RunError
from riverbed.runs import BranchRecord, Run
from riverbed.orchestration.drive import train_main
from riverbed.runs.fork_plans import check_main_schedule, load_plan, plan_fork_steps as fork_steps
from riverbed.runs.resume import check_resume
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


def resolve_config(config: Path | None, overrides: list[str], run_dir: Path) -> tuple[Any, bool]:
    """The config to train with and whether the run already exists (then checked against it)."""

    stored_path = run_dir / layout.CONFIG
    if not stored_path.is_file():
        if config is None:
            raise ConfigError(f"no CONFIG given and {run_dir} is not an existing run (no {layout.CONFIG})")
        return load_config(config, overrides), False
    stored = load_config(stored_path)
    # Resuming with or without a CONFIG file: either way the result is checked against the
    # run's stored config, so `--set` cannot slip in a change the config file could not.
    if config is None:
        new, source = config_from_dict(stored.to_dict(), overrides, source=str(stored_path)), "--set"
    else:
        new, source = load_config(config, overrides), str(config)
    check_resume(stored.to_dict(), new.to_dict(), source=source, stored=str(stored_path))
    return new, True


def plan_fork_steps(plan_path: Path, cfg: Any) -> list[int]:
    """The plan's fork points in steps: main must reach the last one, with a checkpoint at each.
    A plan made for another main schedule (its warmup) is refused before anything trains."""

    check_main_schedule(load_plan(plan_path), dict(cfg.schedule), plan_path)
    return fork_steps(plan_path, cfg.train.tokens_per_step)


def run(args: argparse.Namespace) -> int:
    import torch  # noqa: F401  (heavy import kept out of `riverbed --help`)

    from riverbed.training import distributed as D  # lazy: loads torch; every verb module is imported for `riverbed --help`
    from riverbed.training.loop import resolve_device  # lazy: loads torch; every verb module is imported for `riverbed --help`

    run_dir = args.run
    if run_dir is None:
        if args.config is None:
            raise ConfigError("give a CONFIG file or --run DIR")
        run_dir = Path("runs") / args.config.stem
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--run {run_dir}: is a file, not a run directory; choose another path")
    cfg, exists = resolve_config(args.config, args.overrides, run_dir)
    if args.steps is not None and args.steps < 0:
        raise ConfigError(f"--steps={args.steps} must be >= 0")
    # Segments (riverbed.orchestration.drive.train_main, run tree): main stops at every plan fork point
    # (so each is a saved checkpoint) and at each WSD-S / cyclic-cosine budget (recorded as a
    # finished model); a schedule with an end (wsd, cosine, wsds) finishes the branch there.
    stops = plan_fork_steps(args.plan, cfg) if args.plan else []
    if cfg.train.keep:  # [train] keep: the retention plan (with --plan's forks) is checked before anything is written
        from riverbed.runs.retention import config_with_plan
        cfg = config_with_plan(cfg, args.plan)
    until = args.steps if args.steps is not None else (max(stops) if stops else cfg.train.total_steps)

    dist = D.setup(resolve_device(cfg.train.device))
    run_obj = None
    try:
        # Everything that can be wrong with the request is found before the run directory exists,
        # so a corrected command starts afresh instead of meeting a half-made run.
        data = preflight(cfg, run_dir, dist.world)
        with contextlib.ExitStack() as stack:
            if dist.is_main:
                run_obj = _create_run(run_dir, cfg, exists)
                # One writer per branch: a second `riverbed train` on this run stops here (exit 2).
                stack.enter_context(writer_lock(run_dir, layout.MAIN))
                # config.toml always reflects what is being trained (a resumed run may have grown longer).

                write_text(run_dir / layout.CONFIG, cfg.to_toml())
            D.barrier(dist)
            try:
                with _manifest_training(run_obj, cfg):
                    result = train_main(cfg, run_dir, run_obj, until_step=until, extra_stops=stops,
                                        progress=not args.no_progress, data=data)
            except KeyboardInterrupt:
                if dist.is_main:
                    print(f"riverbed: interrupted; the main branch was saved at its last step boundary. "
                          f"Resume with: riverbed train --run {run_dir}", file=sys.stderr)
                return 130
    finally:
        D.shutdown()
    if dist.is_main:
        loss = f"{result.last_eval_loss:.4f}" if result.last_eval_loss is not None else "n/a"
        print(f"main: step {result.step}  tokens {result.tokens:,}  FLOPs {result.flops:.3e}  held-out loss {loss}")
        print(f"checkpoint: {result.checkpoint}")
    return 0


def preflight(cfg: Any, run_dir: Path, world: int) -> Any:
    """Check what the config alone cannot: the batch split, the data source (loaded: returned),
    the model's vocabulary against the data's, an [init] merge source. Nothing is written."""
    from riverbed.training.loop import check_vocab, micro_batch_size  # lazy: loads torch; every verb module is imported for `riverbed --help`

    micro_batch_size(cfg, world)
    data = load_dataset(cfg.data)
    check_vocab(cfg, data)
    init = getattr(cfg, "init", None)
    if init is not None and not layout.list_checkpoints(run_dir, layout.MAIN) \
            and not (layout.init_merge_dir(run_dir) / layout.STATE_FILE).is_file():
        have = layout.list_checkpoints(init.from_merge, init.branch) if Path(init.from_merge).is_dir() else None
        if have is None:
            raise ConfigError(f"init.from_merge={init.from_merge!r}: no such run directory")
        if len(have) < init.last:
            raise ConfigError(f"init.last={init.last}: {init.from_merge} branch {init.branch!r} has only {len(have)} "
                              f"checkpoints")
    return data


# ---- the run tree (riverbed.runs owns run.json; we only call its API) -----------------------


def _create_run(run_dir: Path, cfg: Any, exists: bool) -> Any:
    return Run.create(run_dir, cfg, resume=exists)


def _manifest_training(run_obj: Any, cfg: Any) -> Any:
    if run_obj is None:
        return contextlib.nullcontext()

    return run_obj.training(BranchRecord(name="main", kind="main", schedule=dict(cfg.schedule)))

