"""The one progress display of long work: a rich bar with ETA on a terminal, plain lines otherwise.

Every progress display of riverbed (the step loop, branches on an executor, a merge, probes,
bootstrap refits, claims jobs) goes through :class:`Progress`, always on stderr so that stdout
keeps only results (``--json`` included). On a terminal it is a rich bar: the label, the bar,
done/total (or bytes), a free text, elapsed time and the ETA when the end is known. When stderr
is not a terminal (a log file, CI, ``nohup``) rich would show nothing until the end, so each task
prints a plain line at most every ``PLAIN_EVERY_S`` seconds and once when it ends::

    main: 42% (420/1000 steps, 3.1/s, elapsed 2m15s, ETA 3m05s) loss 2.5011

Labels (branch names, paths) are never cut: a narrow terminal wraps them (``overflow="fold"``),
and tables use :func:`name_column` for the same reason.

>>> import io
>>> out = io.StringIO()
>>> with Progress(stream=out, plain_every_s=0.0) as p:
...     task = p.add("main", total=4, unit="steps")
...     p.advance(task, 4)
>>> out.getvalue().splitlines()[-1].startswith("main: 100% (4/4 steps")
True
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Column, Table

#: A plain progress line at most this often (seconds) when stderr is not a terminal.
PLAIN_EVERY_S = 10.0


def _now() -> float:
    return time.perf_counter()


def duration(seconds: float) -> str:
    """``3m05s``-style, for the plain lines.

    >>> duration(5.2), duration(185), duration(7300)
    ('5s', '3m05s', '2h01m')
    """
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _amount(n: float, unit: str) -> str:
    if unit == "bytes":
        return f"{n / 1e6:.1f} MB"
    return f"{n:,.0f}" if n == int(n) else f"{n:,.1f}"


@dataclass
class _Task:
    label: str
    total: float | None
    unit: str
    completed: float = 0.0
    info: str = ""
    initial: float = 0.0  # done before this process started (a resumed branch): not in the rate
    start: float = field(default_factory=lambda: _now())
    last_line: float | None = None
    printed: tuple[float, str] | None = None  # (completed, info) of the last plain line
    ended: bool = False


class Progress:
    """Tasks with a known (or open) total; a rich bar on a terminal, plain lines otherwise.

    ``enabled=False``: nothing is shown (calls are cheap no-ops). ``transient``: the bar is removed
    when done (terminal only). ``bytes=True``: tasks count bytes (size and speed columns).
    ``stream``: where to write (default: stderr); ``terminal`` overrides the terminal test (tests).
    """

    def __init__(self, *, enabled: bool = True, transient: bool = False, bytes: bool = False,
                 stream: TextIO | None = None, terminal: bool | None = None, plain_every_s: float | None = None,
                 width: int | None = None) -> None:
        self.enabled = enabled
        self._stream = stream
        self._console = (Console(stderr=True, width=width, force_terminal=terminal or None) if stream is None
                         else Console(file=stream, width=width, force_terminal=terminal or None))
        self.plain = not (terminal if terminal is not None else self._console.is_terminal)
        self._every = PLAIN_EVERY_S if plain_every_s is None else plain_every_s
        self._transient, self._bytes = transient, bytes
        self._rich: RichProgress | None = None
        self._tasks: dict[int, _Task] = {}
        self._rich_ids: dict[int, object] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        if self.enabled and not self.plain:
            self._rich = RichProgress(*self._columns(), console=self._console, transient=self._transient)
            self._rich.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        elif self.enabled and exc_type is None:
            for task in self._tasks.values():
                if not task.ended and task.printed != (task.completed, task.info):
                    self._line(task, force=True)

    def _columns(self) -> list[ProgressColumn | str]:
        label = TextColumn("{task.description}", table_column=Column(overflow="fold"))
        if self._bytes:
            return [label, BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        return [label, BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}", table_column=Column(overflow="fold")),
                TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), TimeRemainingColumn()]

    # -- tasks -------------------------------------------------------------------------------
    def add(self, label: str, total: float | None = None, *, completed: float = 0, unit: str = "", info: str = "") -> int:
        """A new task; returns its id. ``total=None``: an open end (no percentage, no ETA)."""
        key = len(self._tasks)
        self._tasks[key] = _Task(label, total, unit, float(completed), info, float(completed))
        if self._rich is not None:
            self._rich_ids[key] = self._rich.add_task(label, total=total, completed=completed, info=info,
                                                      eta="eta" if total is not None else "")
        return key

    def advance(self, task: int, n: float = 1) -> None:
        self.update(task, completed=self._tasks[task].completed + n)

    def update(self, task: int, *, completed: float | None = None, total: float | None = None,
               info: str | None = None, label: str | None = None) -> None:
        t = self._tasks[task]
        if completed is not None:
            t.completed = float(completed)
        if total is not None:
            t.total = total
        if info is not None:
            t.info = info
        if label is not None:
            t.label = label
        if not self.enabled:
            return
        if self._rich is not None:
            kw: dict[str, object] = {"completed": t.completed, "info": t.info, "description": t.label}
            if total is not None:
                kw.update(total=total, eta="eta")
            self._rich.update(self._rich_ids[task], **kw)  # type: ignore[arg-type]
        else:
            self._line(t)

    def end(self, task: int) -> None:
        """The task is over: its last plain line now (a terminal bar simply stays)."""
        t = self._tasks[task]
        if self.enabled and self._rich is None and not t.ended and t.printed != (t.completed, t.info):
            self._line(t, force=True)
        t.ended = True

    # -- plain lines -------------------------------------------------------------------------
    def _line(self, t: _Task, *, force: bool = False) -> None:
        now = _now()
        done = t.total is not None and t.completed >= t.total
        if not force and not done and t.last_line is not None and now - t.last_line < self._every:
            return
        if not force and t.last_line is None and now - t.start < self._every and not done:
            return
        if not force and t.printed is not None and t.printed[0] == t.completed:
            return  # only the text changed: it shows in the next line
        t.last_line, t.printed = now, (t.completed, t.info)
        print(self.plain_line(t, now), file=self._stream if self._stream is not None else sys.stderr, flush=True)

    def plain_line(self, t: _Task, now: float | None = None) -> str:
        """``label: 42% (420/1000 steps, 3.1/s, elapsed 2m15s, ETA 3m05s) info`` (no % or ETA
        for an open end)."""
        elapsed = (_now() if now is None else now) - t.start
        rate = (t.completed - t.initial) / elapsed if elapsed > 0 else 0.0
        unit = f" {t.unit}" if t.unit and t.unit != "bytes" else ""
        if t.total:
            head = f"{t.label}: {100.0 * t.completed / t.total:3.0f}% ({_amount(t.completed, t.unit)}/{_amount(t.total, t.unit)}{unit}"
        else:
            head = f"{t.label}: ({_amount(t.completed, t.unit)}{unit}"
        parts = [f"{rate / 1e6:.0f} MB/s" if t.unit == "bytes" else f"{rate:,.1f}/s", f"elapsed {duration(elapsed)}"]
        if t.total and 0 < t.completed < t.total and rate > 0:
            parts.append(f"ETA {duration((t.total - t.completed) / rate)}")
        return f"{head}, {', '.join(parts)})" + (f" {t.info}" if t.info else "")


def name_column(table: Table, header: str, **kw: object) -> None:
    """Add a column of names (branches, paths) that a narrow terminal wraps instead of cutting."""
    table.add_column(header, overflow="fold", **kw)  # type: ignore[arg-type]
