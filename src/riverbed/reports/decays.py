"""The demo's most useful table, for any run: each finished decay branch against the undecayed main
branch at the same tokens, and the drop the decay bought.

``drop = main @ budget - decay branch``: positive when the decay helped. A negative drop is not
printed bare: the decay *hurt*, and :func:`explain_drop` says why in the run's own numbers (the
main branch was still falling fast over the decay's span, or the fork came early in the main
branch): a decay trades the progress the constant LR would still make along the river for the
noise it removes across the valley, and early on the first outweighs the second.

>>> explain_drop(-0.01, 2.40, 2.30, fork=100, budget=125, main_last=1200)[:14]
'the decay hurt'
>>> explain_drop(0.05, 2.40, 2.30, fork=100, budget=125, main_last=1200)
''
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riverbed.checkpoints import layout
from riverbed.runs.run import Run
from riverbed.runs.metrics import read_metrics


@dataclass(frozen=True)
class DecayRow:
    """One finished decay branch beside the main branch."""

    branch: str
    fork: int
    budget: int
    tokens: int
    main_at_fork: float | None
    main_at_budget: float | None
    """The undecayed main branch at the branch's final step (interpolated between eval rows if needed)."""
    interpolated: bool
    loss: float

    @property
    def drop(self) -> float | None:
        return None if self.main_at_budget is None else self.main_at_budget - self.loss


def main_eval(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """The main branch's eval steps and losses (the last row per step wins)."""
    pts: dict[int, float] = {}
    for r in read_metrics(layout.metrics_path(run.path, layout.MAIN)):
        if r.get("kind") == "eval" and isinstance(r.get("eval_loss"), (int, float)) and isinstance(r.get("step"), int):
            pts[int(r["step"])] = float(r["eval_loss"])
    steps = np.array(sorted(pts), dtype=np.int64)
    return steps, np.array([pts[int(s)] for s in steps])


def _at(steps: np.ndarray, loss: np.ndarray, step: int) -> tuple[float | None, bool]:
    if steps.size == 0 or step < steps[0] or step > steps[-1]:
        return None, False
    i = int(np.searchsorted(steps, step))
    if i < steps.size and steps[i] == step:
        return float(loss[i]), False
    return float(np.interp(step, steps, loss)), True


def decay_rows(run: Run) -> list[DecayRow]:
    """Every finished decay branch with a final held-out loss, by fork step."""
    steps, loss = main_eval(run)
    rows = []
    for b in run.branches:
        if b.kind != "decay" or b.status != "finished" or b.final is None or b.final.eval_loss is None or b.fork is None:
            continue
        at_fork, _ = _at(steps, loss, b.fork.step)
        at_budget, interp = _at(steps, loss, b.final.step)
        rows.append(DecayRow(b.name, b.fork.step, b.final.step, b.final.tokens, at_fork, at_budget, interp, float(b.final.eval_loss)))
    return rows


def explain_drop(drop: float | None, main_at_fork: float | None, main_at_budget: float | None, *, fork: int, budget: int,
                 main_last: int | None) -> str:
    """Why a decay ended above the undecayed main branch ('' when it did not)."""
    if drop is None or drop >= 0:
        return ""
    parts = [f"the decay hurt: the branch ends {-drop:.4f} above the undecayed main branch at the same tokens"]
    if main_at_fork is not None and main_at_budget is not None:
        fell = main_at_fork - main_at_budget
        parts.append(f"over the decay's {budget - fork} steps the main branch itself fell {fell:.4f} "
                     f"({fell / max(budget - fork, 1) * 1000:.2f} per 1000 steps): the model is still learning fast, and "
                     "lowering the LR gives up that progress along the river")
    if main_last:
        parts.append(f"the fork is at {100 * fork / main_last:.0f} % of the main branch: too early for a decay to pay")
    return "; ".join(parts)
