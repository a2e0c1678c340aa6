"""Decay branches trained by the user's own code: `riverbed branch RUN --from K ... --command 'CMD'`.

For each branch riverbed validates the request as for a native branch (a saved main checkpoint
at K, a free name, a known shape, a length), then runs CMD once -- in this process's shell, or
as a job of an executor (local pool, Ray, Slurm) -- with three placeholders replaced (each a
shell-quoted path; also set as the environment variables RIVERBED_FORK, RIVERBED_SCHEDULE,
RIVERBED_OUT):

* ``{fork}``: the fork checkpoint's directory (``from_pretrained`` / ``resume_from_checkpoint``
  read it; for an adopted run its files are links to the source checkpoint's);
* ``{schedule}``: a JSON file ``{"lr", "schedule", "start_step", "end_step"}``
  (riverbed.schedules.branch_file: ``read_branch_schedule``; ``RiverbedLR`` takes its schedule);
* ``{out}``: an empty directory of the branch, where CMD writes its checkpoints (any format
  ``riverbed merge`` reads, named with their step: ``checkpoint-N``, ``step_N``, ...) and a log
  (trainer_state.json, a step,lr,loss CSV, JSONL or TensorBoard events).

Steps may count from the start of the run (``start_step`` .. ``end_step``) or from the fork
(1 .. ``end_step - start_step``): a last checkpoint at either end says which. Afterwards riverbed
ingests ``{out}`` -- the checkpoints as the branch's own (linked, not copied), the log's rows as
its metrics, the held-out loss logged at the last step as its final loss -- and records the
branch as a native one: lineage, status, final loss, tokens and FLOPs. CMD's output goes to
``RUN/branches/<name>/command.log``. A CMD that exits non-zero is a failed branch with its exit
code and the log's last lines; one that writes no checkpoint is a failed branch naming ``{out}``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.checkpoints.formats import open_input
from riverbed.checkpoints.layout import writer_lock
from riverbed.checkpoints.schema import CheckpointState
from riverbed.errors import CheckpointError, ConfigError, LogError, RunError
from riverbed.io.atomic import write_text
from riverbed.orchestration.adopt import Found, find_checkpoints, link_checkpoint
from riverbed.runs import fork
from riverbed.runs.logs.read import TRAINER_STATE, Log, read_log
from riverbed.runs.manifest import BranchRecord, JobInfo, Point, utc_now
from riverbed.runs.run import Run
from riverbed.schedules import schedule_to_spec
from riverbed.schedules.branch_file import BranchSchedule

PLACEHOLDERS = ("{fork}", "{schedule}", "{out}")
OUT_DIR = "out"
SCHEDULE_FILE = "schedule.json"
COMMAND_LOG = "command.log"
TAIL_LINES = 15


class CommandFailed(RunError):
    """CMD exited non-zero, or wrote nothing riverbed can read."""


def check_command(command: str) -> None:
    if not command.strip():
        raise RunError("--command: empty; give the command that trains one branch, e.g. 'python decay.py {fork} {schedule} {out}'")
    if "{out}" not in command and "{fork}" not in command:
        raise RunError(f"--command {command!r}: uses neither {{fork}} nor {{out}}; without them it cannot know where to "
                       "start nor where to write (RIVERBED_FORK / RIVERBED_OUT are set too, but say so explicitly)")


def expand(command: str, paths: dict[str, Path]) -> str:
    """CMD with each placeholder replaced by its shell-quoted path (other braces are left alone)."""
    for key, path in paths.items():
        command = command.replace("{" + key + "}", shlex.quote(str(path)))
    return command


def _stat_files(directory: Path) -> dict[str, tuple[int, int] | None]:
    """Size and modification time of each file of a checkpoint directory (through its links)."""
    out: dict[str, tuple[int, int] | None] = {}
    for p in sorted(directory.iterdir()):
        try:
            st = p.stat()
        except OSError:
            out[p.name] = None
            continue
        out[p.name] = (st.st_size, st.st_mtime_ns) if p.is_file() else (0, st.st_mtime_ns)
    return out


def _tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _find_log(out: Path, found: Sequence[Found]) -> Path | None:
    """The log CMD wrote under ``out``: a trainer_state.json, CSV / TSV / JSONL file or TensorBoard
    events at its top, else the newest checkpoint's trainer_state.json (what Trainer leaves)."""
    if (out / TRAINER_STATE).is_file():
        return out / TRAINER_STATE
    tables = sorted(p for p in out.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".tsv", ".jsonl"))
    if tables:
        return tables[0]
    if any(out.rglob("events.out.tfevents*")):
        return out
    if found and (found[-1].path / TRAINER_STATE).is_file():
        return found[-1].path / TRAINER_STATE
    return None


def _offset(found: Sequence[Found], b: BranchSchedule, out: Path) -> int:
    """0 when CMD counted steps from the start of the run, ``start_step`` when from the fork."""
    last = found[-1].step
    if last == b.end_step or (last != b.steps and all(f.step > b.start_step for f in found)):
        return 0
    if last <= b.steps:
        return b.start_step
    raise CommandFailed(f"{out}: the last checkpoint is at step {last}, past the branch's end ({b.end_step} counted "
                        f"from the start of the run, {b.steps} from the fork)")


def ingest(run: Run, name: str, b: BranchSchedule, fork_point: Point) -> tuple[Point, Log | None]:
    """Record what CMD wrote under the branch's ``out``: checkpoints (linked), metrics; its final point."""
    bdir = layout.branch_dir(run.path, name)
    out = bdir / OUT_DIR
    found = find_checkpoints(out)
    if not found and _is_checkpoint(out):
        found = [Found(b.end_step, out.resolve())]  # CMD saved one model at the top of {out}
    if not found:
        listing = ", ".join(sorted(p.name for p in out.iterdir())[:8]) or "nothing"
        raise CommandFailed(f"{out}: the command wrote no checkpoint riverbed can read (checkpoint-N / step_N folders "
                            f"or files, or a model at the top); it holds: {listing}")
    shift = _offset(found, b, out)
    log_path = _find_log(out, found)
    log = None
    if log_path is not None:
        try:
            log = read_log(log_path)
        except LogError as exc:
            raise CommandFailed(str(exc)) from None
    tps = fork.tokens_per_step(run)

    def point(step: int, rel: str | None = None) -> Point:
        tokens = fork_point.tokens + (step - fork_point.step) * tps if tps else 0
        flops = fork_point.flops + 6.0 * float(run.manifest.model.get("n_params") or 0) * (tokens - fork_point.tokens) if tps else 0.0
        loss = None
        if log is not None and log.eval_loss is not None:
            loss = log.eval_loss.at(step - shift)
        return Point(step, tokens, flops, loss, rel)

    rels = {}
    for f in found:
        step = f.step + shift
        p = point(step)
        state = CheckpointState(step=step, tokens=p.tokens, flops=p.flops, branch=name, schedule=b.spec,
                                eval_loss=p.eval_loss, reason="command", init=fork_point.checkpoint,
                                extra={"adopted_from": str(f.path)})
        rels[step] = link_checkpoint(run.path, name, Found(step, f.path), state)
    rows = _metrics(log, shift) if log is not None else ""
    write_text(layout.metrics_path(run.path, name), rows)
    last = max(rels)
    return point(last, rels[last]), log


def _is_checkpoint(path: Path) -> bool:
    try:
        open_input(path)
    except CheckpointError:
        return False
    return True


def _metrics(log: Log, shift: int) -> str:
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for role, kind in (("lr", "train"), ("loss", "train"), ("eval_loss", "eval")):
        s = log.series.get(role)
        for step, v in zip(s.steps.tolist(), s.values.tolist()) if s is not None else ():
            rows.setdefault((step + shift, kind), {"kind": kind, "step": step + shift})[role] = v
    return "".join(json.dumps(rows[k]) + "\n" for k in sorted(rows))


def _evaluate(run: Run, name: str, final: Point) -> Point:
    """The final point with its loss on the run's own held-out data, where riverbed can build the
    model (a run riverbed trained: its config.toml; the checkpoint in a format it loads). An
    adopted run has no held-out data of riverbed's: the loss CMD logged at the last step stays."""
    if not (run.path / layout.CONFIG).is_file() or final.checkpoint is None:
        return final
    from riverbed.training.evaluate import evaluate_checkpoints  # lazy: loads torch

    try:
        loss = evaluate_checkpoints([run.path / final.checkpoint], run=run.path)[0].loss
    except (CheckpointError, ConfigError) as exc:
        run.record_event(name, {"type": "eval-skipped", "why": str(exc), "kept": "the loss the command logged"})
        return final
    with open(layout.metrics_path(run.path, name), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": "eval", "step": final.step, "eval_loss": loss, "by": "riverbed"}) + "\n")
    run.record_event(name, {"type": "eval", "step": final.step, "eval_loss": loss, "logged": final.eval_loss})
    return replace(final, eval_loss=loss)


def branch_schedule(run: Run, req: fork.ForkRequest, schedule: Any) -> BranchSchedule:
    lr = (run.manifest.config.get("optim") or {}).get("lr")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise RunError(f"{run.path}: run.json config has no positive optim.lr (the peak LR {{schedule}} hands to CMD)")
    return BranchSchedule(float(lr), schedule_to_spec(schedule), req.from_step, req.from_step + req.length)


def train_command_branch(run: Run, req: fork.ForkRequest, schedule: Any, command: str, *,
                         echo: bool = False) -> BranchRecord:
    """Run CMD for one validated request, ingest what it wrote, record the branch (finished or failed)."""
    b = branch_schedule(run, req, schedule)
    record = replace(fork.fork_record(run, req, schedule),
                     events=({"type": "command", "command": command},))
    bdir = layout.branch_dir(run.path, req.name)
    ref = run.checkpoint(req.from_step, layout.MAIN)
    with run.training(record):
        for stale in (bdir / OUT_DIR, layout.checkpoints_dir(run.path, req.name)):  # an earlier attempt's
            shutil.rmtree(stale, ignore_errors=True)
        (bdir / OUT_DIR).mkdir(parents=True)
        write_text(bdir / SCHEDULE_FILE, b.to_json())
        paths = {"fork": ref.path.resolve(), "schedule": (bdir / SCHEDULE_FILE).resolve(), "out": (bdir / OUT_DIR).resolve()}
        env = {**os.environ, **{f"RIVERBED_{k.upper()}": str(v) for k, v in paths.items()}}
        logfile = bdir / COMMAND_LOG
        before = _stat_files(ref.path)
        with open(logfile, "wb") as fh:
            rc = subprocess.run(expand(command, paths), shell=True, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                cwd=os.getcwd(), check=False).returncode
        if echo:
            print(_tail(logfile))
        changed = sorted(n for n, st in _stat_files(ref.path).items() if before.get(n) != st)
        if changed:  # for an adopted run these are the user's own files, behind the links
            raise CommandFailed(f"the command changed the fork checkpoint ({ref.path / changed[0]}"
                                f"{f' and {len(changed) - 1} more' if len(changed) > 1 else ''}): {{fork}} is an input, "
                                "read it and write under {out}")
        if rc != 0:
            raise CommandFailed(f"the command exited with code {rc} (log {logfile}); its last lines:\n{_tail(logfile)}")
        final, _log = ingest(run, req.name, b, record.fork or Point(req.from_step, 0, 0.0))
        final = _evaluate(run, req.name, final)
        if final.step >= b.end_step:
            run.finish_branch(req.name, final)
        else:
            run.set_progress(req.name, final)
        run.record_event(req.name, {"type": "command-ended", "exit_code": rc, "checkpoints": len(run.checkpoints(req.name))})
    return run.branch(req.name)


def validate(run: Run, requests: Sequence[fork.ForkRequest]) -> list[tuple[fork.ForkRequest, Any]]:
    """Every request checked before anything runs: the fork checkpoint, a free name, the schedule."""
    out = []
    seen: set[str] = set()
    branches = run.manifest.branches
    for req in requests:
        fork.check_name(req.name)
        if req.name in seen:
            raise RunError(f"branch name {req.name!r} is requested twice")
        seen.add(req.name)
        run.checkpoint(req.from_step, layout.MAIN)  # RunError listing the saved steps
        schedule = fork.decay_schedule(run, req)
        old = branches.get(req.name)
        if old is not None and old.status in ("finished", "running", "queued"):
            raise RunError(f"{run.path}: a branch named {req.name!r} already exists ({old.status}); choose another --name")
        out.append((req, schedule))
    return out


def command_job(p: dict[str, Any]) -> dict[str, Any]:
    """The job: run CMD for one branch (riverbed.executors.commands names it as its task kind)."""

    run = Run.open(p["run"])
    req = fork.ForkRequest(p["name"], int(p["from_step"]), int(p["length"]), p["shape"], p.get("min_ratio"),
                           tuple((k, v) for k, v in p.get("extra", [])))
    if p.get("job_id"):  # the local pool names its jobs; Ray and Slurm ids were recorded by the submitter
        with writer_lock(run.path, req.name):  # LockedError: another writer has this branch
            run.update_branch(req.name, lambda b: replace(b, job=JobInfo(p["backend"], str(p["job_id"]),
                                                                         b.job.submitted if b.job else utc_now())))
    os.chdir(p.get("cwd") or os.getcwd())  # CMD runs where `riverbed branch` was typed, as without an executor
    rec = train_command_branch(run, req, fork.decay_schedule(run, req), p["command"])
    last = rec.last
    return {"branch": rec.name, "status": rec.status, "step": last.step if last else None,
            "eval_loss": last.eval_loss if last else None}
