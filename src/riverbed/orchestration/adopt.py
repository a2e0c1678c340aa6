"""`riverbed adopt SOURCE --out RUN`: a run tree over a training output riverbed did not write.

SOURCE is a Hugging Face Trainer ``output_dir`` (``checkpoint-N`` folders, ``trainer_state.json``)
or a folder of checkpoints in any format ``riverbed merge`` reads (``step_N`` / ``iter_N`` /
``global_stepN`` folders or files) with a training log (``--log``: CSV / W&B export, JSONL,
trainer_state.json, TensorBoard events; riverbed.runs.logs.read). Nothing of SOURCE is copied,
moved or written: each checkpoint of the adopted main branch is a small directory of RUN
holding riverbed's ``state.json`` (step, tokens, FLOPs, held-out loss from the log),
``source.json`` (where the checkpoint lives) and links to the source's files, so every verb
that reads a run tree reads it as it reads its own.

What is known is recorded as known: the schedule (``--schedule``, or the one the logged LR
follows: riverbed.runs.logs.schedule), the peak LR, the held-out losses logged at checkpoint steps;
tokens come from the log (``num_input_tokens_seen``) or ``--tokens-per-step``, else they are
recorded as unknown (``riverbed ls`` says so) and FLOPs with them (6·N·D when tokens are known).
Running ``adopt`` again on the same RUN picks up the checkpoints a still-training run saved since.

>>> from riverbed import adopt                                          # doctest: +SKIP
>>> run = adopt("hf_out", "runs/hf")                                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.checkpoints.formats import open_input
from riverbed.checkpoints.schema import CheckpointState
from riverbed.errors import CheckpointError, ConfigError, LogError, RunError
from riverbed.io.atomic import atomic_dir, write_text
from riverbed.runs.logs.read import TRAINER_STATE, Log, LogColumns, read_log
from riverbed.runs.logs.schedule import infer_schedule
from riverbed.runs.manifest import BranchRecord, Manifest, Point, locked, read_manifest, write_manifest
from riverbed.runs.run import Run
from riverbed.schedules import schedule_from_spec, schedule_to_spec

ADOPTED = "adopted"  # the run.json config section of an adopted run
_STEP_RE = re.compile(r"^(?:checkpoint|step|iter|global_step|ckpt|model)?[-_]?0*(\d+)(\.[A-Za-z]+)?$", re.IGNORECASE)
_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class AdoptError(RunError):
    """SOURCE cannot be adopted (no checkpoints, no usable log, an output inside it)."""


@dataclass(frozen=True)
class Found:
    """One checkpoint of the source: its step and where it is (a folder or a file)."""

    step: int
    path: Path


def is_adopted(manifest: Manifest) -> bool:
    return ADOPTED in manifest.config


def find_checkpoints(source: Path, unreadable: list[str] | None = None) -> list[Found]:
    """The source's checkpoints, oldest first: children named with a step that the merge reader
    opens (``unreadable`` collects why the others named so were not)."""
    found: dict[int, Found] = {}
    for child in sorted(source.iterdir()):
        m = _STEP_RE.match(child.name)
        if not m or (child.is_file() and (m.group(2) or "").lower() not in _FILE_SUFFIXES):
            continue
        if child.is_dir() and m.group(2):
            continue
        try:
            open_input(child)  # headers only: a folder Trainer is still writing has no weights yet
        except CheckpointError as exc:
            if unreadable is not None:
                unreadable.append(str(exc))
            continue
        step = int(m.group(1))
        if step in found:
            raise AdoptError(f"{source}: two checkpoints at step {step} ({found[step].path.name}, {child.name})")
        found[step] = Found(step, child.resolve())
    return [found[s] for s in sorted(found)]


def find_log(source: Path, checkpoints: list[Found]) -> Path | None:
    """A Trainer output_dir's log: the newest trainer_state.json (top level or newest checkpoint)."""
    cands = [p for p in (source / TRAINER_STATE, *(c.path / TRAINER_STATE for c in checkpoints[::-1][:1])) if p.is_file()]

    def global_step(p: Path) -> int:
        try:
            return int(json.loads(p.read_text(encoding="utf-8")).get("global_step") or 0)
        except (OSError, ValueError, AttributeError):
            return -1
    return max(cands, key=global_step) if cands else None


def _max_steps(log_path: Path) -> int | None:
    if log_path.name != TRAINER_STATE:
        return None
    try:
        v = json.loads(log_path.read_text(encoding="utf-8")).get("max_steps")
    except (OSError, ValueError, AttributeError):
        return None
    return int(v) if isinstance(v, int) and v > 0 else None


@dataclass(frozen=True)
class Knowns:
    """What the log and flags say about the trajectory, per step."""

    log: Log
    spec: dict[str, Any]
    peak: float
    tokens_per_step: int | None
    n_params: int

    def tokens(self, step: int) -> int | None:
        if self.log.tokens is not None and (t := self.log.tokens.at(step)) is not None:
            return int(t)
        return None if self.tokens_per_step is None else step * self.tokens_per_step

    def point(self, step: int, checkpoint: str | None = None) -> Point:
        t = self.tokens(step)
        loss = self.log.eval_loss.at(step) if self.log.eval_loss is not None else None
        return Point(step, t or 0, 6.0 * self.n_params * t if t else 0.0, loss, checkpoint)


def link_checkpoint(run: Path, branch: str, found: Found, state: CheckpointState) -> str:
    """A checkpoint of ``branch`` in the run tree that names and links ``found`` (never touching
    it): ``state.json``, ``source.json`` and a link per file of the source. Its relative path."""
    final = layout.checkpoint_dir(run, branch, found.step)
    rel = str(final.relative_to(run))
    if final.is_dir():
        return rel
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(final) as tmp:
        write_text(tmp / layout.STATE_FILE, state.dumps())
        write_text(tmp / layout.SOURCE_FILE, json.dumps({"path": str(found.path)}, indent=2) + "\n")
        if found.path.is_dir():
            for item in sorted(found.path.iterdir()):
                if item.name not in (layout.STATE_FILE, layout.SOURCE_FILE):
                    os.symlink(item, tmp / item.name)
        elif found.path.suffix == ".safetensors":
            os.symlink(found.path, tmp / layout.MODEL_FILE)
        else:
            os.symlink(found.path, tmp / found.path.name)
    return rel


def _stub(run: Path, found: Found, k: Knowns) -> str:
    p = k.point(found.step)
    loss = k.log.loss.at(found.step) if k.log.loss is not None else None
    state = CheckpointState(step=found.step, tokens=p.tokens, flops=p.flops, branch=layout.MAIN, schedule=k.spec,
                            train_loss=loss, eval_loss=p.eval_loss, reason="adopted",
                            extra={"adopted_from": str(found.path)})
    return link_checkpoint(run, layout.MAIN, found, state)


def _metrics(k: Knowns) -> str:
    rows = []
    for role, kind, key in (("lr", "train", "lr"), ("loss", "train", "loss"), ("eval_loss", "eval", "eval_loss")):
        s = k.log.series.get(role)
        for step, v in zip(s.steps.tolist(), s.values.tolist()) if s is not None else ():
            rows.append((step, kind, key, v))
    merged: dict[tuple[int, str], dict[str, Any]] = {}
    for step, kind, key, v in sorted(rows, key=lambda r: (r[0], r[1])):
        row = merged.setdefault((step, kind), {"kind": kind, "step": step})
        row[key] = v
        if (t := k.tokens(step)) is not None:
            row["tokens"] = t
    return "".join(json.dumps(r) + "\n" for r in merged.values())


def _knowns(log_path: Path, columns: LogColumns, schedule: dict[str, Any] | None,
            tokens_per_step: int | None, n_params: int) -> tuple[Knowns, list[str]]:
    log = read_log(log_path, columns)
    log.require("lr")
    if log.loss is None and log.eval_loss is None:
        log.require("loss")  # the message names the file and the accepted columns
    notes = []
    if schedule is not None:
        try:
            spec = schedule_to_spec(schedule_from_spec(schedule, where="--schedule"))
        except ConfigError as exc:
            raise AdoptError(str(exc)) from None
        peak = float(log.lr.values.max())  # type: ignore[union-attr]
    else:
        spec_raw, peak, warmup = infer_schedule(log.lr.steps, log.lr.values, max_steps=_max_steps(log_path),  # type: ignore[union-attr]
                                                source=str(log_path))
        spec = schedule_to_spec(schedule_from_spec(dict(spec_raw)))
        notes.append(f"schedule read from the logged LR ({log.lr.column!r}): {spec['type']}, peak {peak:.4g}, "  # type: ignore[union-attr]
                     f"warmup {warmup} steps")
    if tokens_per_step is not None and (isinstance(tokens_per_step, bool) or tokens_per_step < 1):
        raise AdoptError(f"--tokens-per-step {tokens_per_step!r}: expected a whole number >= 1")
    if tokens_per_step is None and log.tokens is not None and len(log.tokens):
        tokens_per_step = _constant_rate(log)
    if log.eval_loss is None or not len(log.eval_loss):
        notes.append(f"{log_path}: no held-out loss logged; predict and scaling need one (log eval_loss)")
    return Knowns(log, spec, peak, tokens_per_step, n_params), notes


def _constant_rate(log: Log) -> int | None:
    """Tokens per step when every logged token count is the same multiple of its step (else None)."""
    t = log.tokens
    assert t is not None
    pos = t.steps > 0
    rates = {int(v) // int(s) for s, v in zip(t.steps[pos], t.values[pos]) if int(v) % int(s) == 0}
    whole = all(int(v) % int(s) == 0 for s, v in zip(t.steps[pos], t.values[pos]))
    return rates.pop() if whole and len(rates) == 1 else None


def _check_paths(source: Path, out: Path) -> None:
    src, dst = source.resolve(), out.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise AdoptError(f"--out {out}: the run tree may be neither inside {source} nor around it (nothing of the source is written)")


def adopt(source: str | os.PathLike[str], out: str | os.PathLike[str], *, log: str | os.PathLike[str] | None = None,
          schedule: Mapping[str, object] | None = None, tokens_per_step: int | None = None,
          columns: LogColumns | None = None) -> tuple[Run, list[str]]:
    """Adopt ``source`` as the run tree ``out`` (or bring an adopted ``out`` up to date).

    ``log``: the training log (default: a Trainer output_dir's trainer_state.json); ``schedule``:
    a riverbed schedule spec (default: the one the logged LR follows); ``tokens_per_step``
    (default: from the log's token counts, else unknown); ``columns``: the log's column names
    where its own are not recognised. Returns the run and notes worth telling (what was
    inferred, what is unknown). AdoptError (exit 2 in the CLI) names the file at fault."""
    src, dst = Path(source), Path(out)
    if not src.is_dir():
        raise AdoptError(f"{src}: {'no such directory' if not src.exists() else 'not a directory'} (give a training output_dir or a folder of checkpoints)")
    if (src / layout.MANIFEST).is_file():
        raise AdoptError(f"{src} is already a riverbed run; use it as it is")
    _check_paths(src, dst)
    unreadable: list[str] = []
    found = find_checkpoints(src, unreadable)
    if not found:
        names = ", ".join(sorted(c.name for c in src.iterdir())[:6]) or "nothing"
        why = f"; not readable: {unreadable[0]}" if unreadable else ""
        raise AdoptError(f"{src}: no checkpoints found (looked for checkpoint-N, step_N, iter_N folders or files with "
                         f"weights riverbed merge reads); it holds: {names}{why}")
    log_path = Path(log) if log is not None else find_log(src, found)
    if log_path is None:
        raise AdoptError(f"{src}: no training log found (no {TRAINER_STATE}); give one with --log FILE")
    n_params = sum(t.numel for t in open_input(found[-1].path).tensors.values())
    try:
        k, notes = _knowns(log_path, columns or LogColumns(), None if schedule is None else dict(schedule), tokens_per_step, n_params)
    except LogError as exc:
        raise AdoptError(str(exc)) from None
    section = {"source": str(src.resolve()), "log": str(log_path.resolve()), "tokens_per_step": k.tokens_per_step,
               "tokens": "log" if k.log.tokens is not None else ("tokens_per_step" if tokens_per_step else None),
               "flops": "6ND" if (k.log.tokens is not None or k.tokens_per_step) else None,
               "checkpoints": {str(f.step): str(f.path) for f in found}}
    if k.tokens(found[-1].step) is None:
        notes.append("tokens and FLOPs unknown (no token count in the log): give --tokens-per-step N to record them")
    if (dst / layout.MANIFEST).is_file():
        run = _update(dst, src, found, k, section, notes)
    else:
        run = _create(dst, found, k, section)
    return run, notes


def _main_record(run_dir: Path, found: list[Found], k: Knowns, rels: dict[int, str], old: BranchRecord | None) -> BranchRecord:
    last = k.point(found[-1].step, rels[found[-1].step])
    total = schedule_from_spec(k.spec).total_steps
    finished = total is not None and last.step >= total
    base = old or BranchRecord(layout.MAIN, "main", k.spec, status="stopped")
    events = base.events + ({"type": "adopt", "source": str(found[-1].path.parent), "checkpoints": len(found),
                             "last_step": last.step},)
    return replace(base, schedule=k.spec, progress=last, final=last if finished else None,
                   status="finished" if finished else "stopped", events=events, pid=None)


def _create(dst: Path, found: list[Found], k: Knowns, section: dict[str, Any]) -> Run:
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise AdoptError(f"--out {dst}: exists and is neither empty nor a run adopted from the same source")
    with atomic_dir(dst, overwrite=dst.exists()) as tmp:
        rels = {f.step: _stub(tmp, f, k) for f in found}
        write_text(layout.metrics_path(tmp, layout.MAIN), _metrics(k))
        config = {ADOPTED: section, "optim": {"lr": k.peak}, "schedule": k.spec}
        model = {"n_params": k.n_params, "tokens_per_step": k.tokens_per_step}
        rec = _main_record(tmp, found, k, rels, None)
        write_manifest(tmp / layout.MANIFEST, Manifest(config=config, model=model, branches={layout.MAIN: rec}))
    return Run(dst)


def _update(dst: Path, src: Path, found: list[Found], k: Knowns, section: dict[str, Any], notes: list[str]) -> Run:
    m = read_manifest(dst / layout.MANIFEST)
    old = m.config.get(ADOPTED) or {}
    if old.get("source") != str(src.resolve()):
        raise AdoptError(f"--out {dst}: already a run, not one adopted from {src} (it was {old.get('source') or 'trained by riverbed'})")
    rels = {f.step: _stub(dst, f, k) for f in found}
    gone = []
    for ref in layout.list_checkpoints(dst, layout.MAIN):
        if ref.step in rels or not (ref.path / layout.SOURCE_FILE).is_file():
            continue
        target = json.loads((ref.path / layout.SOURCE_FILE).read_text(encoding="utf-8")).get("path")
        if target and not os.path.lexists(target):
            shutil.rmtree(ref.path)  # ours: the links to a checkpoint the trainer deleted (save_total_limit)
            gone.append(ref.step)
    if gone:
        notes.append(f"checkpoints at steps {', '.join(map(str, gone))} are gone from {src} (a trainer's rotation, "
                     "e.g. save_total_limit): dropped from the run")
    write_text(layout.metrics_path(dst, layout.MAIN), _metrics(k))
    with locked(dst):
        m = read_manifest(dst / layout.MANIFEST)
        rec = _main_record(dst, found, k, rels, m.branches.get(layout.MAIN))
        config = {**m.config, ADOPTED: section, "optim": {"lr": k.peak}, "schedule": k.spec}
        model = {**m.model, "n_params": k.n_params, "tokens_per_step": k.tokens_per_step}
        write_manifest(dst / layout.MANIFEST, replace(m, config=config, model=model).with_branch(rec))
    return Run(dst)
