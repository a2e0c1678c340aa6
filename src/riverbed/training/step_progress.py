"""The step loop's progress display: step, loss, held-out loss, tokens/s, elapsed, ETA.

Updated once per step (a counter increment) and re-labelled only at logging steps, so it
costs nothing measurable; disabled on ranks other than 0 and with ``progress=False``. The ETA
is shown when the end is known (a target step); an open-ended run shows elapsed time only.
Drawn by riverbed.io.progress (a rich bar on a terminal, plain lines in a log).
"""

from __future__ import annotations

from typing import TextIO

from riverbed.io.progress import Progress


class StepProgress:
    def __init__(self, *, enabled: bool, start: int, total: int | None, branch: str,
                 stream: TextIO | None = None, terminal: bool | None = None) -> None:
        self._progress = Progress(enabled=enabled, stream=stream, terminal=terminal)
        self._start, self._total, self._branch = start, total, branch
        self._task = -1
        self._rate = 0.0
        self._loss: float | None = None
        self._eval: float | None = None

    def __enter__(self) -> StepProgress:
        self._progress.__enter__()
        self._task = self._progress.add(self._branch, self._total, completed=self._start, unit="steps")
        return self

    def advance(self) -> None:
        self._progress.advance(self._task)

    def show(self, *, loss: float | None, tokens_per_s: float | None = None, eval_loss: float | None,
             extra: dict[str, str] | None = None) -> None:
        """Update the text; ``tokens_per_s=None`` keeps the last rate (after an evaluation)."""
        if tokens_per_s is None:
            tokens_per_s = self._rate
        self._rate = tokens_per_s
        info = f"loss {loss:.4f}" if loss is not None else ""
        if eval_loss is not None:
            info += f"  eval {eval_loss:.4f}"
        info += f"  {tokens_per_s:,.0f} tok/s"
        for k, v in (extra or {}).items():  # callbacks' values (the forecast monitor's "decay now")
            info += f"  {k} {v}"
        self._progress.update(self._task, info=info)

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)
