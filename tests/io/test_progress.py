"""The one progress display: plain lines (%, ETA, at most every N seconds) when stderr is not a
terminal, a rich bar when it is, and names never cut at 80 columns (bars and tables)."""

from __future__ import annotations

import io
import re

from rich.console import Console
from rich.table import Table

from riverbed.io import progress as P
from riverbed.io.progress import Progress, name_column

LONG = "1-sqrt-from400-len150-a-branch-name-longer-than-a-terminal-is-wide-on-purpose-x"  # 81 chars


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _plain(monkeypatch, every: float) -> tuple[Progress, io.StringIO, Clock]:
    clock = Clock()
    monkeypatch.setattr(P, "_now", clock)
    out = io.StringIO()
    return Progress(stream=out, terminal=False, plain_every_s=every), out, clock


def test_plain_lines_every_n_seconds_with_percent_and_eta(monkeypatch):
    bar, out, clock = _plain(monkeypatch, every=10.0)
    with bar:
        task = bar.add("main", total=100, unit="steps")
        for _ in range(100):
            clock.t += 1.0  # one step per second
            bar.advance(task)
    lines = out.getvalue().splitlines()
    # one line per 10 s of work, the last when the task ends
    assert len(lines) == 10, lines
    assert lines[0] == "main:  10% (10/100 steps, 1.0/s, elapsed 10s, ETA 1m30s)"
    assert lines[-1] == "main: 100% (100/100 steps, 1.0/s, elapsed 1m40s)"
    pcts = [int(re.match(r"main: +(\d+)%", ln).group(1)) for ln in lines]
    assert pcts == sorted(pcts)


def test_plain_rate_and_eta_leave_out_what_a_resume_did_before(monkeypatch):
    bar, out, clock = _plain(monkeypatch, every=0.0)
    with bar:
        task = bar.add("main", total=1000, completed=900, unit="steps")
        clock.t += 10.0
        bar.advance(task, 10)
    assert out.getvalue().splitlines()[0] == "main:  91% (910/1,000 steps, 1.0/s, elapsed 10s, ETA 1m30s)"


def test_open_ended_task_shows_no_percent_or_eta_and_text_waits_for_the_next_line(monkeypatch):
    bar, out, clock = _plain(monkeypatch, every=0.0)
    with bar:
        task = bar.add("main", None, unit="steps")
        clock.t += 2.0
        bar.advance(task, 4)
        bar.update(task, info="loss 2.5000")  # text alone prints no line
        assert len(out.getvalue().splitlines()) == 1
    lines = out.getvalue().splitlines()
    assert lines == ["main: (4 steps, 2.0/s, elapsed 2s)", "main: (4 steps, 2.0/s, elapsed 2s) loss 2.5000"]


def test_disabled_shows_nothing(monkeypatch):
    out = io.StringIO()
    with Progress(enabled=False, stream=out, terminal=False, plain_every_s=0.0) as bar:
        bar.advance(bar.add("main", 3))
    assert out.getvalue() == ""


def test_a_terminal_bar_folds_a_long_name_at_80_columns():
    out = io.StringIO()
    with Progress(stream=out, terminal=True, width=80) as bar:
        task = bar.add(LONG, total=10, unit="steps")
        bar.advance(task, 5)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    last = text.split("\r")[-1]  # the final frame
    assert "…" not in last
    assert "".join(ln.split()[0] for ln in last.splitlines() if ln.strip()) == LONG, last


def test_a_name_column_folds_instead_of_cutting():
    table = Table()
    name_column(table, "branch")
    for col in ("fork", "main @ fork", "tokens", "final loss", "status"):
        table.add_column(col)
    table.add_row(LONG, "400", "2.5000", "1.2M", "2.4000", "finished")
    out = io.StringIO()
    Console(file=out, width=80).print(table)
    assert "…" not in out.getvalue()
    cells = [ln.split("│")[1].strip() for ln in out.getvalue().splitlines() if ln.startswith("│")]
    assert "".join(cells) == LONG, out.getvalue()


def test_training_in_a_log_prints_plain_lines_with_percent(tmp_path, tiny_run_config, capsys, monkeypatch):
    from riverbed.training import train_branch

    monkeypatch.setattr(P, "PLAIN_EVERY_S", 0.0)
    train_branch(tiny_run_config, tmp_path, "main", until_step=4, progress=True)
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.startswith("main:")]
    assert lines and lines[-1].startswith("main: 100% (4/4 steps"), captured.err
    assert any("ETA" in ln for ln in lines[:-1]) and "loss" in lines[-1]
    assert "main:" not in captured.out  # stdout keeps only results
