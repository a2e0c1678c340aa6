"""The rich progress bar of the step loop: step, loss, held-out loss, tokens/s, elapsed, ETA.

Updated once per step (a counter increment) and re-labelled only at logging steps, so it
costs nothing measurable; disabled on ranks other than 0 and with ``progress=False``. The ETA
is shown when the end is known (a target step); an open-ended run shows elapsed time only.
"""

from __future__ import annotations

from typing import Any


class StepProgress:
    def __init__(self, *, enabled: bool, start: int, total: int | None, branch: str, console: Any = None) -> None:
        self.enabled = enabled
        self._console = console
        self._progress: Any = None
        self._task: Any = None
        self._start, self._total, self._branch = start, total, branch
        self._rate = 0.0

    def __enter__(self) -> StepProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            columns: list[Any] = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[info]}"), TimeElapsedColumn()]
            if self._total is not None:  # the end is known: remaining time from the step rate
                columns += [TextColumn("eta"), TimeRemainingColumn()]
            self._progress = Progress(*columns, transient=False, console=self._console)
            self._progress.start()
            self._task = self._progress.add_task(self._branch, total=self._total, completed=self._start, info="")
        return self

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def show(self, *, loss: float | None, tokens_per_s: float | None = None, eval_loss: float | None,
             extra: dict[str, str] | None = None) -> None:
        """Update the bar's text; ``tokens_per_s=None`` keeps the last rate (after an evaluation)."""
        if self._progress is None:
            return
        if tokens_per_s is None:
            tokens_per_s = self._rate
        self._rate = tokens_per_s
        info = f"loss {loss:.4f}" if loss is not None else ""
        if eval_loss is not None:
            info += f"  eval {eval_loss:.4f}"
        info += f"  {tokens_per_s:,.0f} tok/s"
        for k, v in (extra or {}).items():
            info += f"  {k} {v}"
        self._progress.update(self._task, info=info)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
