"""The spike guard inside riverbed's trainer: inject a spike, see the recovery happen."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from riverbed.checkpoints import layout
from riverbed.checkpoints.state import read_state
from riverbed.errors import RunError
from riverbed.training import Callback, read_metrics, train_branch
from riverbed.config.guard import GuardConfig
from riverbed.training.spike_guard import SpikeGuard
from riverbed.training.recovery import pick_checkpoints

STEPS, CORRUPT_AT = 40, 25


class Corrupt(Callback):
    """At the end of the step that brings ctx.step to ``at``, break the weights (``times`` times)."""

    def __init__(self, at: int = CORRUPT_AT, mode: str = "scale", times: int = 1) -> None:
        self.at, self.mode, self.left = at, mode, times

    def on_step_end(self, ctx):
        if ctx.step == self.at and self.left > 0:
            self.left -= 1
            with torch.no_grad():
                for p in ctx.model.parameters():
                    p.mul_(20.0) if self.mode == "scale" else p.fill_(float("nan"))


def _cfg(tiny_run_config, **guard):
    # one thread: a ~100K-parameter model gains nothing from more, and the tests share the machine
    train = dataclasses.replace(tiny_run_config.train, max_steps=STEPS, ckpt_every=5, eval_every=5, log_every=1,
                                threads=1)
    g = GuardConfig(**{"window": 20, "min_history": 5, **guard})
    return dataclasses.replace(tiny_run_config, train=train, guard=g)


def _run(cfg, run_dir, *callbacks):
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    run = Run.create(run_dir, cfg)
    return train_main(cfg, run_dir, run, until_step=STEPS, callbacks=callbacks, progress=False), Run(run_dir)


def _evals(run_dir):
    rows = read_metrics(layout.metrics_path(run_dir, "main"))
    return [(r["step"], r["eval_loss"]) for r in rows if r["kind"] == "eval"]


def test_pma_init_recovers_from_an_injected_spike(tmp_path, tiny_run_config):
    cfg = _cfg(tiny_run_config, action="pma-init", pma_count=3)
    res, run = _run(cfg, tmp_path / "run", Corrupt())
    events = [e for e in run.branch("main").events if e.get("source") == "guard"]
    kinds = [e["event"] for e in events]
    assert kinds == ["spike", "quarantine", "recovery"], events
    spike, quarantine, rec = events
    # weights broken after update 25 -> the loss of step 25 spikes; checkpoints 10, 15, 20 are healthy
    assert spike["kind"] == "loss-mad" and spike["onset"] == CORRUPT_AT and spike["action"] == "pma-init"
    assert rec["checkpoints"] == [10, 15, 20] and rec["weights"] == pytest.approx([1 / 3] * 3)
    assert rec["method"] == "sma" and rec["resume_step"] == 20 and rec["optimizer_state"] == "reset"
    assert quarantine["steps"] == [25]
    assert (layout.quarantine_dir(run.path, "main", 1) / layout.checkpoint_name(25)).is_dir()
    # the run went on to the end; the held-out loss is back on (below) its pre-spike level
    assert res.step == STEPS and res.stopped is None
    evals = dict(_evals(run.path))
    assert res.last_eval_loss < evals[20]
    guard_state = json.loads((res.checkpoint / layout.GUARD_FILE).read_text())
    assert guard_state["recoveries"] == 1
    # the recovery is also in metrics.jsonl (the loop's restore row and the guard's events)
    rows = read_metrics(layout.metrics_path(run.path, "main"))
    assert any(r.get("event") == "restore" and r.get("to_step") == 20 for r in rows)


def test_spiked_run_without_guard_stays_broken(tmp_path, tiny_run_config):
    cfg = dataclasses.replace(_cfg(tiny_run_config), guard=None)
    res, run = _run(cfg, tmp_path / "run", Corrupt())
    evals = dict(_evals(run.path))
    assert res.last_eval_loss > 1.5 * evals[20]  # the control: the injected spike does hurt


def test_skip_rolls_back_and_moves_the_data_position(tmp_path, tiny_run_config):
    cfg = _cfg(tiny_run_config, action="skip", optimizer_state="from-last", lr_scale=0.5, lr_scale_steps=3)
    res, run = _run(cfg, tmp_path / "run", Corrupt(mode="nan"))
    rec = next(e for e in run.branch("main").events if e.get("event") == "recovery")
    # NaN weights after update 25 are seen at once (onset = step 24): newest healthy checkpoint 20,
    # the batches of steps 20..24 are skipped
    assert rec["checkpoints"] == [20] and rec["resume_step"] == 20 and rec["data_skipped"] == 5
    state = read_state(res.checkpoint)
    assert state.data.offset == 5 and state.data.position == STEPS + 5
    assert state.lr_scale == 1.0  # the scale-down ended after 3 steps
    rows = read_metrics(layout.metrics_path(run.path, "main"))
    lrs = {r["step"]: r["lr"] for r in rows if r["kind"] == "train"}  # the last row per step wins
    assert lrs[21] == pytest.approx(0.5 * lrs[30]) and lrs[24] == pytest.approx(lrs[30])
    assert torch.isfinite(torch.tensor(res.last_eval_loss))


def test_keeps_spiking_stops_with_a_clear_message(tmp_path, tiny_run_config):
    cfg = _cfg(tiny_run_config, action="rollback", max_recoveries=2)
    with pytest.raises(RunError, match="keeps spiking"):
        _run(cfg, tmp_path / "run", Corrupt(times=10))
    run = __import__("riverbed.runs", fromlist=["Run"]).Run(tmp_path / "run")
    events = [e["event"] for e in run.branch("main").events if e.get("source") == "guard"]
    assert events.count("recovery") == 2 and events[-1] == "stop"


def test_fewer_healthy_checkpoints_than_asked(tmp_path, tiny_run_config):
    cfg = _cfg(tiny_run_config, pma_count=6)
    res, run = _run(cfg, tmp_path / "a", Corrupt())
    fallback = next(e for e in run.branch("main").events if e.get("event") == "fallback")
    assert "only 4 healthy checkpoint(s)" in fallback["reason"] and "use-available" in fallback["reason"]
    assert next(e for e in run.branch("main").events if e.get("event") == "recovery")["checkpoints"] == [5, 10, 15, 20]
    cfg = _cfg(tiny_run_config, pma_count=6, on_insufficient="error")
    with pytest.raises(RunError, match="only 4 healthy checkpoint"):
        _run(cfg, tmp_path / "b", Corrupt())


def test_stop_action(tmp_path, tiny_run_config):
    with pytest.raises(RunError, match="guard.action = stop"):
        _run(_cfg(tiny_run_config, action="stop"), tmp_path / "run", Corrupt(mode="nan"))


def test_explicit_guard_callback_on_a_bare_branch(tmp_path, tiny_run_config):
    cfg = dataclasses.replace(_cfg(tiny_run_config), guard=None)
    guard = SpikeGuard(GuardConfig(window=20, min_history=5, action="rollback"))
    res = train_branch(cfg, tmp_path, "main", until_step=STEPS, callbacks=[Corrupt(), guard], progress=False)
    assert [e["event"] for e in guard.events] == ["spike", "quarantine", "recovery"]
    assert res.step == STEPS


def test_pick_checkpoints_passes_over_nan_weights(tmp_path):
    refs = []
    for step in (10, 20, 30, 40):
        d = tmp_path / f"step_{step}"
        d.mkdir()
        value = float("nan") if step == 30 else float(step)
        save_file({"w": torch.full((2,), value)}, str(d / layout.MODEL_FILE))
        refs.append(layout.CheckpointRef(step, d))
    picked, weights, rejected = pick_checkpoints(refs, count=2, onset=40)
    assert [r.step for r in picked] == [10, 20] and [w["w"][0].item() for w in weights] == [10.0, 20.0]
    assert rejected == [{"step": 30, "path": str(tmp_path / "step_30"), "reason": "tensor w holds NaN/inf"}]
    picked, _, rejected = pick_checkpoints(refs, count=2, onset=None, every=20)
    assert [r.step for r in picked] == [20, 40] and rejected == []  # at least 20 steps apart, from the newest
    picked, _, rejected = pick_checkpoints(refs, count=2, onset=None, every=25)
    assert [r.step for r in picked] == [10, 40] and rejected == []
    picked, _, rejected = pick_checkpoints(refs, count=3, onset=None)
    assert [r.step for r in picked] == [10, 20, 40] and [r["step"] for r in rejected] == [30]


def test_guard_state_survives_a_resume(tmp_path, tiny_run_config):
    cfg = dataclasses.replace(_cfg(tiny_run_config), guard=None)
    first = SpikeGuard(GuardConfig(window=20, min_history=5))
    train_branch(cfg, tmp_path, "main", until_step=20, callbacks=[first], progress=False)
    saved = json.loads((layout.checkpoint_dir(tmp_path, "main", 20) / layout.GUARD_FILE).read_text())
    assert [s for s, _ in saved["detector"]["losses"]] == list(range(0, 20))
    second = SpikeGuard(GuardConfig(window=20, min_history=5))
    train_branch(cfg, tmp_path, "main", until_step=22, callbacks=[second], progress=False)
    # the resumed guard continues the window: steps 0..19 from the checkpoint, then 20, 21
    assert [s for s, _ in second.detector.state_dict()["losses"]] == list(range(2, 22))
    assert second.detector.state_dict()["losses"][:18] == [list(x) for x in saved["detector"]["losses"][2:]]
