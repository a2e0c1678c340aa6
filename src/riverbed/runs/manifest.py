"""The run manifest ``RUN/run.json``: branches, lineage, status, results and events.

The manifest is plain JSON, rewritten whole and atomically (temporary sibling, fsync, rename)
after every change, so a crash at any moment leaves the previous version. Writers
serialise through an advisory lock file (``RUN/.lock``) because a trainer on the main branch
and ``riverbed branch`` forking decay branches may update the same run at the same time.

Example (abridged)::

    {
      "format": "riverbed.run/1",
      "created": "2026-11-23T16:30:00Z",
      "config": {"model": {...}, "data": {...}, "schedule": {...}, ...},
      "model": {"n_params": 812544, "flops_per_token": 5.1e6},
      "branches": {
        "main": {"name": "main", "kind": "main", "parent": null, "fork": null,
                 "schedule": {"type": "warmup-stable", "warmup": 50},
                 "status": "stopped", "progress": {"step": 1200, "tokens": 1228800, "flops": 6.3e12},
                 "final": null, "milestones": [], "events": [], ...},
        "linear-from800-len200": {"kind": "decay", "parent": "main",
                 "fork": {"step": 800, "tokens": 819200, "flops": 4.2e12},
                 "schedule": {"type": "decay-branch", ...}, "status": "finished",
                 "final": {"step": 1000, "tokens": 1024000, "flops": 5.2e12, "eval_loss": 2.41}, ...}
      }
    }

Tokens and FLOPs are cumulative along the lineage (a decay branch forked at 800K tokens that
trains 200K more ends at 1M): what a from-scratch run to the same point would have spent.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.io.atomic import write_json
from riverbed.errors import RunError
from riverbed.runs.manifest_schema import FORMAT, check_manifest

KINDS = ("main", "decay", "wsds", "cosine", "cyclic", "merge")
# queued: submitted to an executor (riverbed.executors), its job not started yet;
# running: a process is training it; stopped: interrupted, can be resumed;
# finished: reached its end (final results recorded); failed: raised or its job died (error recorded).
STATUSES = ("queued", "running", "stopped", "finished", "failed")
LOCK = layout.RUN_LOCK


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Point:
    """A position along a lineage: optimizer step, tokens and training FLOPs (cumulative)."""

    step: int
    tokens: int
    flops: float
    eval_loss: float | None = None
    """The held-out loss there (the name of state.json and metrics.jsonl; run.json files written
    before it was renamed say ``heldout_loss``, still read)."""
    checkpoint: str | None = None  # path relative to the run directory, where one was saved
    # run.json is strict JSON: a NaN/inf held-out loss is stored as null and this says which
    # ("nan", "inf", "-inf"); kept through rewrites of the manifest.
    eval_loss_nonfinite: str | None = None

    def __post_init__(self) -> None:
        # What run.json cannot hold is refused here, so every point written reads back (manifest_schema).
        if not (isinstance(self.flops, (int, float)) and math.isfinite(self.flops) and self.flops >= 0):
            raise RunError(f"a point's flops must be a finite number >= 0, got {self.flops!r} (step {self.step})")
        loss = self.eval_loss
        if loss is not None and not math.isfinite(loss):
            word = "nan" if math.isnan(loss) else ("inf" if loss > 0 else "-inf")
            object.__setattr__(self, "eval_loss", None)
            object.__setattr__(self, "eval_loss_nonfinite", word)

    @staticmethod
    def from_dict(d: dict[str, Any], where: str) -> Point:
        loss = d.get("eval_loss", d.get("heldout_loss"))  # older run.json: "heldout_loss"
        try:
            return Point(
                step=int(d["step"]),
                tokens=int(d["tokens"]),
                flops=float(d["flops"]),
                eval_loss=None if loss is None else float(loss),
                checkpoint=d.get("checkpoint"),
                eval_loss_nonfinite=d.get("eval_loss_nonfinite", d.get("heldout_loss_nonfinite")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"{where}: malformed point {d!r} ({exc})") from exc

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "eval_loss"}


@dataclass(frozen=True)
class JobInfo:
    """The executor job that trains (or trained) a branch: which backend, its job id there."""

    backend: str  # "local", "ray" or "slurm" (riverbed.executors.BACKENDS)
    id: str  # the backend's job id: local pool slot, Ray task id, Slurm job id
    submitted: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any], where: str) -> JobInfo:
        if not isinstance(d, dict) or not isinstance(d.get("backend"), str) or not isinstance(d.get("id"), str):
            raise RunError(f"{where}: malformed job {d!r} (expected {{'backend': str, 'id': str}})")
        return JobInfo(d["backend"], d["id"], str(d.get("submitted", "")))


@dataclass(frozen=True)
class BranchRecord:
    """One branch of the run tree as the manifest records it."""

    name: str
    kind: str
    schedule: dict[str, Any]
    parent: str | None = None
    fork: Point | None = None  # where it left its parent (None for a root branch)
    status: str = "running"
    progress: Point | None = None  # newest checkpoint seen (reconciled from disk)
    final: Point | None = None  # end of a finished branch, with its held-out loss
    milestones: tuple[Point, ...] = ()  # WSD-S / cyclic: the decayed checkpoint of each budget
    events: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    created: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)
    pid: int | None = None  # process training it while running; the submitter's while queued (local, ray)
    host: str | None = None
    job: JobInfo | None = None  # set when an executor runs the branch as a job

    def __post_init__(self) -> None:
        layout.check_branch_name(self.name)
        if self.parent is not None:
            layout.check_branch_name(self.parent, f"branch {self.name!r}: parent")
        if self.kind not in KINDS:
            raise RunError(f"branch {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.status not in STATUSES:
            raise RunError(f"branch {self.name!r}: status {self.status!r} is not one of {', '.join(STATUSES)}")

    @property
    def last(self) -> Point | None:
        """The furthest point this branch is known to have reached."""
        pts = [p for p in (self.final, self.progress) if p is not None]
        return max(pts, key=lambda p: p.step) if pts else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "parent": self.parent,
            "fork": self.fork.to_dict() if self.fork else None,
            "schedule": self.schedule,
            "status": self.status,
            "progress": self.progress.to_dict() if self.progress else None,
            "final": self.final.to_dict() if self.final else None,
            "milestones": [m.to_dict() for m in self.milestones],
            "events": list(self.events),
            "error": self.error,
            "created": self.created,
            "updated": self.updated,
            "pid": self.pid,
            "host": self.host,
            "job": self.job.to_dict() if self.job else None,
        }

    @staticmethod
    def from_dict(d: dict[str, Any], where: str) -> BranchRecord:
        def pt(key: str) -> Point | None:
            return None if d.get(key) is None else Point.from_dict(d[key], f"{where}.{key}")

        try:
            return BranchRecord(
                name=str(d["name"]),
                kind=str(d["kind"]),
                schedule=dict(d.get("schedule") or {}),
                parent=d.get("parent"),
                fork=pt("fork"),
                status=str(d.get("status", "running")),
                progress=pt("progress"),
                final=pt("final"),
                milestones=tuple(Point.from_dict(m, f"{where}.milestones") for m in d.get("milestones", [])),
                events=tuple(d.get("events", [])),
                error=d.get("error"),
                created=str(d.get("created", "")),
                updated=str(d.get("updated", "")),
                pid=None if d.get("pid") is None else int(d["pid"]),
                host=d.get("host"),
                job=None if d.get("job") is None else JobInfo.from_dict(d["job"], f"{where}.job"),
            )
        except (KeyError, TypeError) as exc:
            raise RunError(f"{where}: malformed branch record ({exc!r})") from exc


@dataclass(frozen=True)
class Manifest:
    """The whole of ``run.json``. Immutable: updates build a new one and rewrite the file."""

    config: dict[str, Any]
    model: dict[str, Any]  # {"n_params": int, "flops_per_token": float}
    branches: dict[str, BranchRecord]
    created: str = field(default_factory=utc_now)
    format: str = FORMAT
    software: dict[str, str] = field(default_factory=dict)
    """Versions that created the run: riverbed, torch, python, numpy (empty in runs written before)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "created": self.created,
            "software": self.software,
            "config": self.config,
            "model": self.model,
            "branches": {name: b.to_dict() for name, b in self.branches.items()},
        }

    @staticmethod
    def from_dict(d: dict[str, Any], where: str) -> Manifest:
        check_manifest(d, where)
        branches = d["branches"]
        records = {}
        for n, b in branches.items():
            rec = BranchRecord.from_dict(b, f"{where}: branches.{n}")
            if rec.name != n:
                raise RunError(f"{where}: branches.{n} holds the record of a branch named {rec.name!r}")
            records[n] = rec
        check_lineage(records, where)
        return Manifest(
            config=dict(d.get("config") or {}),
            model=dict(d.get("model") or {}),
            branches=records,
            created=str(d.get("created", "")),
            software={str(k): str(v) for k, v in (d.get("software") or {}).items()} if isinstance(d.get("software"), dict) else {},
        )

    def with_branch(self, record: BranchRecord) -> Manifest:
        branches = dict(self.branches)
        branches[record.name] = replace(record, updated=utc_now())
        return replace(self, branches=branches)


def check_lineage(branches: dict[str, BranchRecord], where: str) -> None:
    """RunError naming the branches of a parent cycle (a hand-edited run.json): following parents from
    any branch must end at a root, or ``rm --recursive`` could reach the main branch."""
    for start in branches:
        seen = [start]
        b = branches[start].parent
        while b is not None and b in branches:
            if b in seen:
                loop = " -> ".join([*seen[seen.index(b):], b])
                raise RunError(f"{where}: the branches' parents form a cycle ({loop}); fix the 'parent' keys")
            seen.append(b)
            b = branches[b].parent


def software_versions() -> dict[str, str]:
    """riverbed, torch, python and numpy versions of this process, without importing torch (its installed
    version when it is not loaded yet; "not installed" without it)."""
    from importlib import metadata

    from riverbed.version import __version__

    torch = sys.modules.get("torch")
    try:
        tv = torch.__version__ if torch is not None else metadata.version("torch")
    except metadata.PackageNotFoundError:
        tv = "not installed"
    np_mod = sys.modules.get("numpy")
    nv = np_mod.__version__ if np_mod is not None else metadata.version("numpy")
    return {"riverbed": __version__, "torch": str(tv), "python": platform.python_version(), "numpy": str(nv)}


def read_manifest(path: Path) -> Manifest:
    """Parse ``run.json``; a missing or corrupt file is a :class:`RunError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RunError(f"{path.parent} is not a riverbed run: {path.name} not found") from exc
    except UnicodeDecodeError as exc:
        raise RunError(f"{path}: corrupt manifest (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: corrupt manifest ({exc})") from exc
    except RecursionError:
        raise RunError(f"{path}: corrupt manifest (nested too deeply to be a run manifest)") from None
    return Manifest.from_dict(data, str(path))


def write_manifest(path: Path, manifest: Manifest) -> None:
    write_json(path, manifest.to_dict())


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``RUN/.lock`` for a read-modify-write of the manifest."""
    try:
        import fcntl  # lazy: optional dependency (ImportError handled here)
    except ImportError:  # pragma: no cover - non-POSIX: single writer assumed
        yield
        return
    try:
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunError(f"{run_dir} cannot be changed: {exc.strerror or exc} ({run_dir / LOCK}); this command writes "
                       "to the run (reading verbs such as ls and report do not)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
