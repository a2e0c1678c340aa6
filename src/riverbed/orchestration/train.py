"""Train a run: create (or resume) a run directory and train its main branch.

The library behind ``riverbed train``. Resuming checks the new config against the run's stored
one (:func:`riverbed.runs.resume.check_resume`: only length, cadences and hardware may change);
everything that can be wrong with the request is found before the run directory exists
(:func:`preflight`), so a corrected command starts afresh instead of meeting a half-made run.
Under ``torchrun`` it trains data-parallel; rank 0 alone writes.

>>> from riverbed import train_run                                   # doctest: +SKIP
>>> result = train_run("configs/tiny.toml", "runs/tiny", steps=200)  # doctest: +SKIP
>>> result.step, result.last_eval_loss                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from riverbed.checkpoints import layout
from riverbed.checkpoints.layout import writer_lock
from riverbed.config import RunConfig, config_from_dict, load_config
from riverbed.data import load_dataset
from riverbed.errors import ConfigError, RunError
from riverbed.io.atomic import write_text
from riverbed.orchestration.drive import train_main
from riverbed.runs import BranchRecord, Run
from riverbed.runs.fork_plans import check_main_schedule, load_plan
from riverbed.runs.fork_plans import plan_fork_steps as fork_steps
from riverbed.runs.resume import check_resume

if TYPE_CHECKING:  # the trainer's types; importing it loads torch, which importing this module must not
    from riverbed.data.dataset import TokenData
    from riverbed.training.loop import BranchResult

PathLike = str | os.PathLike[str]


def default_run_dir(config: PathLike) -> Path:
    """Where ``riverbed train CONFIG`` puts a run without ``--run``: ``runs/<config name>``."""
    return Path("runs") / Path(config).stem


def resolve_config(config: RunConfig | PathLike | None, overrides: Sequence[str], run_dir: Path) -> tuple[RunConfig, bool]:
    """The config to train with and whether the run already exists (then checked against it).

    ``config``: a TOML file, a :class:`RunConfig`, or None to resume the run's stored config;
    ``overrides`` are ``--set key=value`` strings applied on top."""
    stored_path = run_dir / layout.CONFIG
    if not stored_path.is_file():
        if config is None:
            raise ConfigError(f"no CONFIG given and {run_dir} is not an existing run (no {layout.CONFIG})")
        return _load(config, overrides), False
    stored = load_config(stored_path)
    # Resuming with or without a CONFIG: either way the result is checked against the run's
    # stored config, so `--set` cannot slip in a change the config file could not.
    if config is None:
        new, source = config_from_dict(stored.to_dict(), list(overrides), source=str(stored_path)), "--set"
    else:
        new, source = _load(config, overrides), (str(config) if not isinstance(config, RunConfig) else "the given RunConfig")
    check_resume(stored.to_dict(), new.to_dict(), source=source, stored=str(stored_path))
    return new, True


def _load(config: RunConfig | PathLike, overrides: Sequence[str]) -> RunConfig:
    if isinstance(config, RunConfig):
        return config_from_dict(config.to_dict(), list(overrides), source="RunConfig") if overrides else config
    return load_config(config, list(overrides))


def plan_fork_steps(plan_path: PathLike, cfg: RunConfig) -> list[int]:
    """The plan's fork points in steps: main must reach the last one, with a checkpoint at each.
    A plan made for another main schedule (its warmup) is refused before anything trains."""
    check_main_schedule(load_plan(plan_path), dict(cfg.schedule), plan_path)
    return fork_steps(plan_path, cfg.train.tokens_per_step)


def preflight(cfg: RunConfig, run_dir: Path, world: int) -> TokenData:
    """Check what the config alone cannot: the batch split, the data source (loaded: returned),
    the model's vocabulary against the data's, an [init] merge source. Nothing is written."""
    from riverbed.training.loop import check_vocab, micro_batch_size  # lazy: loads torch

    micro_batch_size(cfg, world)
    data = load_dataset(cfg.data)
    check_vocab(cfg, data)
    init = cfg.init
    if init is not None and not layout.list_checkpoints(run_dir, layout.MAIN) \
            and not (layout.init_merge_dir(run_dir) / layout.STATE_FILE).is_file():
        have = layout.list_checkpoints(init.from_merge, init.branch) if Path(init.from_merge).is_dir() else None
        if have is None:
            raise ConfigError(f"init.from_merge={init.from_merge!r}: no such run directory")
        if len(have) < init.last:
            raise ConfigError(f"init.last={init.last}: {init.from_merge} branch {init.branch!r} has only {len(have)} "
                              f"checkpoints")
    return data


def train_run(config: RunConfig | PathLike | None = None, run_dir: PathLike | None = None, *,
              overrides: Sequence[str] = (), plan: PathLike | None = None, steps: int | None = None,
              progress: bool = True) -> BranchResult:
    """Create (or resume) the run at ``run_dir`` and train its main branch; returns its result.

    ``config``: a TOML file or a :class:`RunConfig` (None: resume ``run_dir`` with its stored
    config); ``run_dir`` defaults to ``runs/<config file name>``. The main branch trains to
    ``steps`` (a global step), else to the last fork point of ``plan`` (a ``riverbed plan``
    JSON: main also stops, with a checkpoint, at each of its fork points), else to the config's
    length (train.max_steps / max_tokens), else indefinitely. A WSD-S or cyclic-cosine schedule
    records each budget as a finished model. Ctrl-C stops at the next step boundary with a
    checkpoint there and raises KeyboardInterrupt; calling again resumes exactly. A second
    writer of the same run gets :class:`~riverbed.errors.LockedError`.
    """
    from riverbed.training import distributed as D  # lazy: loads torch
    from riverbed.training.devices import resolve_device  # lazy: loads torch

    if run_dir is None:
        if config is None or isinstance(config, RunConfig):
            raise ConfigError("give a CONFIG file or --run DIR")
        run_dir = default_run_dir(config)
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--run {run_dir}: is a file, not a run directory; choose another path")
    cfg, exists = resolve_config(config, overrides, run_dir)
    if steps is not None and steps < 0:
        raise ConfigError(f"--steps={steps} must be >= 0")
    # Segments (riverbed.orchestration.drive.train_main): main stops at every plan fork point (so
    # each is a saved checkpoint) and at each WSD-S / cyclic-cosine budget (recorded as a finished
    # model); a schedule with an end (wsd, cosine, wsds) finishes the branch there.
    stops = plan_fork_steps(plan, cfg) if plan is not None else []
    if cfg.train.keep:  # the retention plan (with the plan's forks) is checked before anything is written
        from riverbed.runs.retention import config_with_plan

        cfg = config_with_plan(cfg, Path(plan) if plan is not None else None)
    until = steps if steps is not None else (max(stops) if stops else cfg.train.total_steps)

    dist = D.setup(resolve_device(cfg.train.device))
    try:
        data = preflight(cfg, run_dir, dist.world)
        with contextlib.ExitStack() as stack:
            run = None
            if dist.is_main:
                run = Run.create(run_dir, cfg, resume=exists)
                # One writer per branch: a second `riverbed train` on this run stops here.
                stack.enter_context(writer_lock(run_dir, layout.MAIN))
                # config.toml always reflects what is being trained (a resumed run may have grown longer).
                write_text(run_dir / layout.CONFIG, cfg.to_toml())
            D.barrier(dist)
            manifest = (run.training(BranchRecord(name=layout.MAIN, kind="main", schedule=dict(cfg.schedule)))
                        if run is not None else contextlib.nullcontext())
            with manifest:
                return train_main(cfg, run_dir, run, until_step=until, extra_stops=stops, progress=progress, data=data)
    finally:
        D.shutdown()
