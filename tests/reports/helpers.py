"""Hand-made run trees with known curves (no training): a WSD tree with PMA rows and guard events,
and a WSD-S run with decayed checkpoints."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.runs import BranchRecord, Point, Run

TPS = 100  # tokens per step
FPT = 6.0  # FLOPs per token


def pt(step: int, loss: float | None = None) -> Point:
    return Point(step, step * TPS, step * TPS * FPT, loss)


def metrics(run_dir: Path, branch: str, rows: list[dict]) -> None:
    path = layout.metrics_path(run_dir, branch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main_loss(step: int) -> float:
    return 2.0 + 3.0 / (1 + step / 10)


def _rows(steps, lr, loss, *, pma: bool = False) -> list[dict]:
    rows = []
    for s in steps:
        rows.append({"kind": "train", "step": s, "tokens": s * TPS, "flops": s * TPS * FPT, "lr": lr(s), "loss": loss(s) + 0.1})
        if s % 10 == 0:
            rows.append({"kind": "eval", "step": s, "tokens": s * TPS, "flops": s * TPS * FPT, "eval_loss": loss(s)})
            if pma:
                rows.append({"kind": "pma", "step": s, "tokens": s * TPS, "flops": s * TPS * FPT,
                             "pma_eval_loss": loss(s) - 0.05, "pma_count": 3})
    return rows


def wsd_tree(path: Path, forks=(40, 80, 120, 160, 200)) -> Run:
    """main 1..200 (PMA rows, one guard event), a 20 % decay branch from each fork in ``forks``."""
    run = Run.create(path, {"model": {"d_model": 8}, "train": {"batch_size": 1}, "schedule": {"type": "warmup-stable"}})
    run.add_branch(BranchRecord("main", "main", {"type": "warmup-stable", "warmup": 10}, status="stopped",
                                progress=pt(200, main_loss(200))))
    metrics(path, "main", _rows(range(1, 201), lambda s: min(1.0, s / 10) * 1e-2, main_loss, pma=True))
    run.record_event("main", {"source": "guard", "event": "spike", "step": 77, "loss": 9.5})
    for fork in forks:
        length = fork // 4
        name = f"linear-from{fork}-len{length}"
        run.add_branch(BranchRecord(name, "decay", {"type": "decay-branch"}, parent="main", fork=pt(fork, main_loss(fork))))
        end = fork + length
        drop = lambda s, f=fork, n=length: main_loss(s) - 0.2 * (s - f) / n  # noqa: E731
        metrics(path, name, _rows(range(fork + 1, end + 1), lambda s, f=fork, n=length: 1e-2 * (1 - (s - f) / n), drop))
        run.finish_branch(name, pt(end, drop(end)))
    return Run.open(path)


def wsds_run(path: Path) -> Run:
    """One WSD-S branch with decayed checkpoints at steps 50 and 100."""
    run = Run.create(path, {"model": {"d_model": 8}, "schedule": {"type": "wsds", "budgets": [50, 100]}})
    run.add_branch(BranchRecord("main", "wsds", {"type": "wsds"}, status="stopped", progress=pt(100, 2.4)))
    metrics(path, "main", _rows(range(1, 101), lambda s: 1e-2, main_loss))
    for s in (50, 100):
        run.update_branch("main", lambda b, s=s: replace(b, milestones=(*b.milestones, pt(s, main_loss(s) - 0.1))))
    return Run.open(path)


LAW = dict(L0=2.0, A=3.0, alpha=0.4, B=0.3, C=0.02, beta=0.6, gamma=0.5)  # MPL, LR in units of the peak


def law_tree(path: Path, forks=((300, 100, "linear"), (500, 300, "1-sqrt"), (700, 200, "linear"), (200, 50, "1-sqrt"),
                                    (400, 400, "linear"))) -> Run:
    """A WSD tree whose held-out losses follow the Multi-Power Law exactly (tiny noise): main 1..1000, eval
    every 10 steps, one decay branch per (fork, length, shape) with a complete decay-branch schedule spec."""
    import numpy as np

    from riverbed.predict.laws import mpl_loss
    from riverbed.schedules import schedule_from_spec

    peak, warm = 1e-2, 10
    main_spec = {"type": "warmup-stable", "warmup": warm}
    run = Run.create(path, {"model": {"d_model": 8}, "optim": {"lr": peak}, "schedule": main_spec})
    rng = np.random.default_rng(0)

    def write(name: str, spec: dict, first: int, last: int) -> float:
        lr = np.asarray(schedule_from_spec(spec).values(last + 1))
        steps = [s for s in range(first, last + 1) if s % 10 == 0 or s == last]
        loss = mpl_loss(lr, steps, warm, **LAW) * np.exp(rng.normal(0, 1e-4, len(steps)))
        ev = dict(zip(steps, loss.tolist()))
        metrics(path, name, [{"kind": "eval", "step": s, "tokens": s * TPS, "flops": s * TPS * FPT, "eval_loss": v}
                             for s, v in ev.items()])
        return ev[last]

    end = write("main", main_spec, 10, 1000)
    run.add_branch(BranchRecord("main", "main", main_spec, status="stopped", progress=pt(1000, end)))
    for fork, length, shape in forks:
        name = f"{shape}-from{fork}-len{length}"
        spec = {"type": "decay-branch", "main": main_spec, "fork_step": fork, "decay_steps": length, "shape": shape}
        run.add_branch(BranchRecord(name, "decay", spec, parent="main", fork=pt(fork)))
        run.finish_branch(name, pt(fork + length, write(name, spec, fork + 1, fork + length)))
    return Run.open(path)
