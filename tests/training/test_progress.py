"""The step loop's progress bar: an ETA when the end is known, elapsed time only otherwise."""

import io

from rich.console import Console
from rich.progress import TimeRemainingColumn

from riverbed.training.progress import StepProgress


def _render(total):
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    bar = StepProgress(enabled=True, start=2, total=total, branch="main", console=console)
    with bar:
        for _ in range(3):
            bar.advance()
        bar.show(loss=2.5, tokens_per_s=1000.0, eval_loss=None)
        columns = bar._progress.columns
        bar._progress.refresh()
    return columns, console.file.getvalue()


def test_eta_shown_when_the_end_is_known():
    columns, text = _render(10)
    assert any(isinstance(c, TimeRemainingColumn) for c in columns)
    assert "5/10" in text and "eta" in text and "loss 2.5000" in text


def test_no_eta_for_an_open_ended_run():
    columns, text = _render(None)
    assert not any(isinstance(c, TimeRemainingColumn) for c in columns)
    assert "eta" not in text
