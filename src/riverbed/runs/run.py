"""`Run`: one run directory, its manifest and its branches (the run tree).

>>> from riverbed import Run                          # doctest: +SKIP
>>> run = Run.open("runs/tiny")                        # doctest: +SKIP
>>> [b.name for b in run.branches]                     # doctest: +SKIP
['main', 'linear-from800-len200']
>>> fork_branches(run, 800, "1-sqrt", 200)            # doctest: +SKIP (riverbed.runs.fork: trains)
>>> for p in run.finished_points(): print(p.tokens, p.loss)   # doctest: +SKIP

Reading never needs a lock; every change is a locked read-modify-write of ``run.json``
followed by an atomic rename, so concurrent writers (a trainer on ``main`` and a
``riverbed branch`` process) never lose each other's updates.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.io.atomic import atomic_dir, cleanup_stale_tmp, write_text
from riverbed.checkpoints.layout import writer_lock
from riverbed.checkpoints.schema import CheckpointState, read_state  # also imported from here by runs.fork, runs.drive
from riverbed.config import RunConfig
from riverbed.errors import RiverbedError, RunError
from riverbed.runs.config_io import config_dict, config_toml, model_info
from riverbed.runs.manifest import BranchRecord, Manifest, Point, locked, read_manifest, software_versions, utc_now, write_manifest
from riverbed.runs.resume import check_resume


@dataclass(frozen=True)
class FinishedPoint:
    """A finished (decayed) model: what a from-scratch run of ``tokens`` tokens would give.

    kind: "decay" (end of a decay branch), "wsds" (a WSD-S decayed checkpoint), "cyclic"
    (the end of a cyclic-cosine cycle), "cosine" (end of a cosine run), "main" (end of a main
    branch whose schedule has a finite length), "merge" (an evaluated merge).
    """

    run: str
    branch: str
    kind: str
    n_params: int
    tokens: int
    flops: float
    loss: float


def point_from_state(state: CheckpointState, checkpoint: str | None = None) -> Point:
    """The manifest's point of a checkpoint (its state read by riverbed.checkpoints.schema.read_state)."""
    return Point(step=state.step, tokens=state.tokens, flops=state.flops, eval_loss=state.eval_loss,
                 checkpoint=checkpoint)


def _as_today(stored: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """A config dict as ``cfg``'s own type reads it today (defaults filled in, the schedule in
    canonical form), so resuming compares like with like; a plain dict is compared as it is."""
    from_dict = getattr(type(cfg), "from_dict", None)
    if from_dict is None:
        return stored
    try:
        return from_dict(stored).to_dict()
    except RiverbedError:  # recorded by another version and no longer valid: compare as written
        return stored


def _pid_alive(pid: int | None, host: str | None) -> bool:
    """Is the process that marked a branch ``running`` still alive?"""
    if host is not None and host != socket.gethostname():
        return True  # another machine: cannot tell, trust the manifest
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_aside(path: Path) -> None:
    """Delete a branch directory set aside by ``delete_branch``. A branch directory that is a symbolic
    link loses the link only: what it points to lies outside the run and is never riverbed's to delete."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


class Run:
    """A run directory: ``run.json`` + ``config.toml`` + ``branches/<name>/...``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._manifest_path = self.path / layout.MANIFEST
        if not self._manifest_path.is_file():
            what = "does not exist" if not self.path.exists() else f"has no {layout.MANIFEST}"
            raise RunError(f"{self.path} is not a riverbed run: the directory {what}")
        read_manifest(self._manifest_path)  # a corrupt manifest is refused here, naming the key

    # -- construction ------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Run:
        """Open an existing run (RunError if ``path`` is not one)."""
        return cls(path)

    @classmethod
    def create(cls, path: str | os.PathLike[str], cfg: RunConfig | Mapping[str, Any], *, resume: bool = False) -> Run:
        """Create a run directory for ``cfg`` (a RunConfig), atomically.

        An existing run is refused unless ``resume``; resuming checks the config against the
        run's by the resume rule (riverbed.runs.resume: only length, cadences and hardware change).
        """
        path = Path(path)
        if os.path.lexists(path) and not path.is_dir():
            raise RunError(f"{path} is not a directory (a run directory is made there); choose another path")
        if (path / layout.MANIFEST).is_file():
            if not resume:
                raise RunError(f"{path} already holds a run; resume it or choose another directory")
            run = cls(path)
            check_resume(_as_today(run.manifest.config, cfg), _as_today(config_dict(cfg), cfg),
                         source=f"resuming {path}", stored=str(path / layout.MANIFEST))
            return run
        if path.exists() and any(path.iterdir()):
            raise RunError(f"{path} exists and is not an empty directory nor a riverbed run")
        manifest = Manifest(config=config_dict(cfg), model=model_info(cfg), branches={}, software=software_versions())
        with atomic_dir(path, overwrite=path.exists()) as tmp:
            write_text(tmp / layout.CONFIG, config_toml(cfg))
            write_manifest(tmp / layout.MANIFEST, manifest)
        return cls(path)

    # -- reading -----------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        """run.json as the disk shows it now: a branch marked running by a process that is gone reads
        as stopped, progress as the newest checkpoint on disk. Reading never writes (a read-only run is
        read like any other); writers persist this through :meth:`reconcile`."""
        m = read_manifest(self._manifest_path)
        return replace(m, branches={name: self._reconciled(name, b) for name, b in m.branches.items()})

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def branches(self) -> list[BranchRecord]:
        """Branches, the root first, then by fork step."""
        recs = list(self.manifest.branches.values())
        return sorted(recs, key=lambda b: (b.parent is not None, b.fork.step if b.fork else -1, b.name))

    def branch(self, name: str) -> BranchRecord:
        branches = self.manifest.branches
        if name not in branches:
            raise RunError(f"{self.path}: no branch {name!r} (branches: {', '.join(branches) or 'none'})")
        return branches[name]

    def checkpoints(self, branch: str = layout.MAIN) -> list[layout.CheckpointRef]:
        """Complete checkpoints of ``branch`` on disk, oldest first."""
        return layout.list_checkpoints(self.path, branch)

    def checkpoint(self, step: int, branch: str = layout.MAIN) -> layout.CheckpointRef:
        """The saved checkpoint of ``branch`` at ``step``; RunError lists the saved steps if absent."""
        refs = self.checkpoints(branch)
        for ref in refs:
            if ref.step == step:
                return ref
        saved = ", ".join(str(r.step) for r in refs) or "none"
        raise RunError(f"{self.path}: branch {branch!r} has no checkpoint at step {step} (saved steps: {saved})")

    def finished_points(self) -> list[FinishedPoint]:
        """Every finished model of this run with its held-out loss, for scaling fits."""
        m = self.manifest
        n_params = int(m.model.get("n_params", 0))
        out: list[FinishedPoint] = []

        def add(b: BranchRecord, kind: str, p: Point | None) -> None:
            if p is not None and p.eval_loss is not None:
                out.append(FinishedPoint(str(self.path), b.name, kind, n_params, p.tokens, p.flops, p.eval_loss))

        for b in self.branches:
            if b.kind in ("wsds", "cyclic"):
                for ms in b.milestones:
                    add(b, b.kind, ms)
            elif b.status == "finished":
                # A main branch is only ever "finished" when its schedule had an end (a WSD or
                # cosine run); an indefinite main branch stays "stopped" and is no finished model.
                add(b, b.kind, b.final)
        return out

    # -- changes (locked read-modify-write) --------------------------------------------
    def update_branch(self, name: str, fn: Callable[[BranchRecord], BranchRecord]) -> BranchRecord:
        with locked(self.path):
            m = read_manifest(self._manifest_path)
            if name not in m.branches:
                raise RunError(f"{self.path}: no branch {name!r}")
            rec = fn(m.branches[name])
            write_manifest(self._manifest_path, m.with_branch(rec))
        return rec

    def add_branch(self, record: BranchRecord) -> BranchRecord:
        """Record a new branch; RunError if the name is taken."""
        with locked(self.path):
            m = read_manifest(self._manifest_path)
            if record.name in m.branches:
                raise RunError(f"{self.path}: a branch named {record.name!r} already exists")
            write_manifest(self._manifest_path, m.with_branch(record))
        return record

    def remove_branch(self, name: str) -> None:
        """Forget a branch record (used when a fork failed before training anything)."""
        with locked(self.path):
            m = read_manifest(self._manifest_path)
            if name in m.branches:
                branches = {k: v for k, v in m.branches.items() if k != name}
                write_manifest(self._manifest_path, replace(m, branches=branches))

    def delete_branch(self, name: str, *, recursive: bool = False) -> list[str]:
        """Remove ``name`` (directory and manifest entry); returns the names removed.

        Refuses the root (main) branch, a branch being trained, and -- unless ``recursive``,
        which removes them too -- a branch that others were forked from.

        Crash safety: under the manifest lock, each branch directory is first *renamed aside*
        (one atomic rename to ``branches/.<name>.removing``), then run.json is rewritten without
        the entries, and only then are the set-aside directories deleted. So a crash leaves
        either the branch whole and listed, or listed with its directory gone (``riverbed ls``
        shows it as missing; ``riverbed rm`` again finishes), never a half-deleted directory
        under the branch's own name that a new branch of that name would resume from.
        """
        with locked(self.path):
            m = read_manifest(self._manifest_path)
            if name not in m.branches:
                raise RunError(f"{self.path}: no branch {name!r} (branches: {', '.join(m.branches) or 'none'})")
            if name == layout.MAIN or m.branches[name].parent is None:
                raise RunError(f"{self.path}: {name!r} is the run's root branch; remove the run directory instead")
            doomed = [name]
            for b in doomed:  # grows while iterating: every descendant, parents first
                doomed += [c.name for c in m.branches.values() if c.parent == b and c.name not in doomed]
            roots = [b for b in doomed if b == layout.MAIN or m.branches[b].parent is None]
            if roots:  # unreachable with a checked lineage; kept so that no path here can remove a root
                raise RunError(f"{self.path}: removing {name!r} would reach the root branch {roots[0]!r}; refused")
            children = [c for c in doomed if m.branches[c].parent == name]
            if children and not recursive:
                raise RunError(f"{self.path}: branch {name!r} has branches forked from it ({', '.join(children)}); "
                               f"remove them first or pass --recursive")
            busy = [b for b in doomed if (m.branches[b].status == "running" and _pid_alive(m.branches[b].pid, m.branches[b].host))
                    or (m.branches[b].status == "queued"
                        and (m.branches[b].pid is None or _pid_alive(m.branches[b].pid, m.branches[b].host)))]
            if busy:
                b = m.branches[busy[0]]
                who = f"job {b.job.backend}:{b.job.id}" if b.job else f"pid {b.pid}"
                raise RunError(f"{self.path}: branch {busy[0]!r} is {'being trained' if b.status == 'running' else 'queued'} "
                               f"({who}); stop it first")
            aside = []
            for b in doomed:
                src = layout.branch_dir(self.path, b)
                dst = src.with_name(f".{b}.removing")
                if os.path.lexists(dst):  # set aside by an rm that crashed before rewriting run.json
                    _remove_aside(dst)
                if os.path.lexists(src):  # a directory, or a link (dangling or not): set aside as it is
                    os.replace(src, dst)
                    aside.append(dst)
            write_manifest(self._manifest_path, replace(m, branches={k: v for k, v in m.branches.items() if k not in doomed}))
        for d in aside:
            _remove_aside(d)
        return doomed

    def missing_dirs(self) -> list[str]:
        """Branches that trained (a recorded point) but whose directory is gone (deleted by hand)."""
        return [b.name for b in self.branches
                if b.last is not None and not layout.branch_dir(self.path, b.name).is_dir()]

    def record_event(self, branch: str, event: dict[str, Any]) -> None:
        """Append ``event`` (JSON-serialisable; a "time" is added) to ``branch``'s event list."""
        try:
            json.dumps(event)
        except (TypeError, ValueError) as exc:
            raise RunError(f"event for branch {branch!r} is not JSON-serialisable: {exc}") from exc
        ev = {"time": utc_now(), **event}
        self.update_branch(branch, lambda b: replace(b, events=(*b.events, ev)))

    def set_progress(self, branch: str, point: Point) -> None:
        self.update_branch(branch, lambda b: replace(b, progress=point))

    def add_milestone(self, branch: str, point: Point) -> None:
        """Record a WSD-S / cyclic decayed checkpoint as a finished model (replacing one at the same step)."""

        def fn(b: BranchRecord) -> BranchRecord:
            kept = tuple(p for p in b.milestones if p.step != point.step)
            return replace(b, milestones=tuple(sorted((*kept, point), key=lambda p: p.step)), progress=point)

        self.update_branch(branch, fn)

    def finish_branch(self, branch: str, final: Point) -> None:
        self.update_branch(branch, lambda b: replace(b, status="finished", final=final, progress=final, error=None, pid=None))

    @contextmanager
    def training(self, record: BranchRecord) -> Iterator[BranchRecord]:
        """Mark ``record`` running (adding it if new) for the body; stopped/failed on the way out.

        The body calls :meth:`finish_branch` when the branch reached its end; otherwise a clean
        exit leaves it ``stopped`` (a main branch that can be resumed).
        """
        # The branch's writer lock first: a second writer fails here, before touching the record.
        with writer_lock(self.path, record.name):
            cleanup_stale_tmp(self.path)  # a killed writer's leftovers (run.json, config.toml temporaries)
            self.reconcile()
            yield from self._training(record)

    def _training(self, record: BranchRecord) -> Iterator[BranchRecord]:
        mark = {"status": "running", "pid": os.getpid(), "host": socket.gethostname(), "error": None}
        if record.name in self.manifest.branches:
            self.update_branch(record.name, lambda b: replace(b, **mark))
        else:
            self.add_branch(replace(record, **mark))
        try:
            yield self.branch(record.name)
        except KeyboardInterrupt:
            self.update_branch(record.name, lambda b: replace(b, status="stopped", pid=None))
            raise
        except BaseException as exc:
            msg = f"{type(exc).__name__}: {exc}"
            self.update_branch(record.name, lambda b: replace(b, status="failed", error=msg, pid=None))
            raise
        else:
            self.update_branch(
                record.name, lambda b: b if b.status == "finished" else replace(b, status="stopped", pid=None)
            )
        finally:
            self.reconcile()

    # -- crash recovery ----------------------------------------------------------------
    def reconcile(self) -> None:
        """Bring run.json in line with the checkpoints on disk and with dead processes (a writer's step).

        A crash can leave checkpoints newer than the manifest's ``progress`` (the trainer
        writes the checkpoint, then the manifest) or a branch marked ``running`` whose process
        is gone. Both are fixed here, under the lock; the checkpoints themselves are the truth.
        A change is written only if the record is still exactly the one it was computed from:
        a concurrent ``finish_branch`` in between (same second or not) is never overwritten.
        """
        m = read_manifest(self._manifest_path)
        changes = {name: (b, new) for name, b in m.branches.items() if (new := self._reconciled(name, b)) != b}
        if not changes:
            return
        with locked(self.path):
            m = read_manifest(self._manifest_path)
            fresh = [rec for name, (seen, rec) in changes.items() if m.branches.get(name) == seen]
            if not fresh:
                return
            for rec in fresh:
                m = m.with_branch(rec)
            write_manifest(self._manifest_path, m)

    def _reconciled(self, name: str, b: BranchRecord) -> BranchRecord:
        """``b`` as the disk and the live processes show it (nothing is written)."""
        new = b
        refs = layout.list_checkpoints(self.path, name)
        if refs and (b.progress is None or refs[-1].step > b.progress.step):
            try:
                state = read_state(refs[-1].path)
                rel = str(refs[-1].path.relative_to(self.path))
                new = replace(new, progress=point_from_state(state, rel))
            except Exception:  # noqa: BLE001 - a corrupt newest checkpoint is reported when used
                pass
        if new.status == "running" and not _pid_alive(new.pid, new.host):
            new = replace(new, status="stopped", pid=None)
        elif new.status == "queued" and new.pid is not None and not _pid_alive(new.pid, new.host):
            # A local or Ray job lives as long as the process that queued it (pid); a Slurm
            # job (pid None) outlives its submitter and stays queued until it starts.
            new = replace(new, status="stopped", pid=None, error="its job never started: the process that queued it ended")
        return new

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"
