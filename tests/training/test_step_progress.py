"""The step loop's progress display: an ETA when the end is known, elapsed time only otherwise; a
rich bar on a terminal, plain lines in a log."""

import io

from riverbed.io import progress as P
from riverbed.training.step_progress import StepProgress


def _render(total, *, terminal):
    out = io.StringIO()
    bar = StepProgress(enabled=True, start=2, total=total, branch="main", stream=out, terminal=terminal)
    with bar:
        for _ in range(3):
            bar.advance()
        bar.show(loss=2.5, tokens_per_s=1000.0, eval_loss=None)
        if bar._progress._rich is not None:
            bar._progress._rich.refresh()
    return out.getvalue()


def test_eta_shown_when_the_end_is_known(monkeypatch):
    monkeypatch.setattr(P, "PLAIN_EVERY_S", 0.0)
    assert "5/10" in _render(10, terminal=True) and "eta" in _render(10, terminal=True)
    plain = _render(10, terminal=False).splitlines()
    assert plain[0].startswith("main:  30% (3/10 steps") and "ETA" in plain[0]
    assert plain[-1].startswith("main:  50% (5/10 steps") and plain[-1].endswith("loss 2.5000  1,000 tok/s")


def test_no_eta_for_an_open_ended_run(monkeypatch):
    monkeypatch.setattr(P, "PLAIN_EVERY_S", 0.0)
    assert "eta" not in _render(None, terminal=True)
    plain = _render(None, terminal=False)
    assert "main: (5 steps" in plain and "ETA" not in plain and "%" not in plain
