"""The README's Hugging Face Trainer snippet runs as written, and its LRs are the riverbed schedule's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_trainer_snippet_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    snippet = [b for b in blocks if "riverbed_optimizers(" in b]
    assert len(snippet) == 1, "README: expected one Trainer snippet using riverbed_optimizers"
    monkeypatch.chdir(tmp_path)
    import torch

    torch.set_num_threads(1)  # a tiny model: more threads only add contention
    scope: dict = {}
    exec(compile(snippet[0], "README.md", "exec"), scope)  # noqa: S102 - our own documentation
    trainer, schedule = scope["trainer"], scope["schedule"]
    assert trainer.state.global_step == schedule.total_steps == 20
    assert (tmp_path / "out" / "checkpoint-10" / "scheduler.pt").is_file()
    from riverbed.schedules import schedule_fingerprint

    # the checkpoint's scheduler state is riverbed's, loadable with weights_only (no pickle)
    state = torch.load(tmp_path / "out" / "checkpoint-10" / "scheduler.pt", weights_only=True)
    assert state["step"] == state["last_epoch"] == 10 and state["fingerprint"] == schedule_fingerprint(schedule)
    assert state["multiplier"] == schedule.multiplier(10) == 1.0
