"""PMAGuardCallback with a tiny transformers Llama and the real Trainer: inject a spike, see recovery."""

from __future__ import annotations

import json
import math

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer needs it
torch = pytest.importorskip("torch")

from riverbed.errors import ConfigError  # noqa: E402
from riverbed.integrations.hf import PMAGuardCallback  # noqa: E402
from riverbed.config.guard import GuardConfig  # noqa: E402

from ._tiny import Patterned, tiny_llama  # noqa: E402

STEPS, SPIKE_AT = 48, 30


class _Corrupt(transformers.TrainerCallback):
    """At the end of step ``at``, break the weights (NaN, or scale them up)."""

    def __init__(self, at: int, mode: str) -> None:
        self.at, self.mode = at, mode

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.at:
            with torch.no_grad():
                if self.mode == "nan":
                    next(model.parameters()).fill_(float("nan"))
                else:
                    for p in model.parameters():
                        p.mul_(8.0)


class _Losses(transformers.TrainerCallback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses[state.global_step] = logs["loss"]


def _train(tmp_path, guard: PMAGuardCallback, mode: str | None, steps: int = STEPS):
    model = tiny_llama()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=16, learning_rate=1e-2,
        lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, disable_tqdm=True, logging_nan_inf_filter=False, seed=0, dataloader_num_workers=0)
    losses = _Losses()
    callbacks = [guard, losses] + ([_Corrupt(SPIKE_AT, mode)] if mode else [])
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Patterned(), callbacks=callbacks)
    trainer.train()
    return model, losses.losses


def _finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_nan_weights_recovered_by_pma_init_in_memory(tmp_path):
    guard = PMAGuardCallback(GuardConfig(window=20, min_history=5, pma_count=3, optimizer_state="average"),
                             every=4, events_path=tmp_path / "events.jsonl")
    model, losses = _train(tmp_path, guard, "nan")
    assert _finite(model)
    kinds = [e["event"] for e in guard.events]
    assert kinds[:2] == ["spike", "recovery"], guard.events
    spike, rec = guard.events[0], guard.events[1]
    assert spike["kind"] == "nan-weights" and spike["global_step"] == SPIKE_AT
    # snapshots every 4 steps; the corrupted weights appear after update 30, so 28 and older are healthy
    assert rec["checkpoints"] == [20, 24, 28] and rec["weights"] == pytest.approx([1 / 3] * 3)
    assert rec["action"] == "pma-init" and guard.recoveries == 1
    pre = losses[SPIKE_AT]
    assert all(math.isfinite(v) for s, v in losses.items() if s > SPIKE_AT + 2)
    assert losses[STEPS] < 1.2 * pre  # back on the pre-spike level
    on_disk = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert on_disk == json.loads(json.dumps(guard.events))


def test_scaled_weights_spike_rolled_back_from_disk_snapshots(tmp_path):
    cfg = GuardConfig(window=20, min_history=5, action="rollback", optimizer_state="from-last", lr_scale=0.5,
                      lr_scale_steps=5)
    guard = PMAGuardCallback(cfg, every=5, storage="disk", directory=tmp_path / "snaps")
    model, losses = _train(tmp_path, guard, "scale")
    spike, rec = guard.events[0], guard.events[1]
    assert spike["event"] == "spike" and spike["kind"] == "loss-mad" and spike["onset"] == SPIKE_AT
    assert spike["value"] > 2 * losses[SPIKE_AT]
    assert rec["event"] == "recovery" and rec["checkpoints"] == [25] and rec["weights"] == [1.0]
    assert losses[STEPS] < 1.2 * losses[SPIKE_AT]
    files = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert len(files) == 2 * len(guard.snapshot_steps) and all(not f.startswith(".") for f in files)


def test_keeps_spiking_stops_with_a_clear_message(tmp_path, caplog):
    guard = PMAGuardCallback(GuardConfig(window=20, min_history=5, max_recoveries=0), every=4)
    _train(tmp_path, guard, "nan")
    assert guard.stopped_reason is not None and "max_recoveries=0" in guard.stopped_reason
    assert guard.events[-1]["event"] == "stop"
    assert "keeps spiking" in caplog.text


def test_no_spike_no_event(tmp_path):
    guard = PMAGuardCallback(GuardConfig(window=20, min_history=5), every=8)
    _, losses = _train(tmp_path, guard, None, steps=24)
    assert guard.events == [] and guard.snapshot_steps == [8, 16, 24]


def test_bad_arguments():
    with pytest.raises(ConfigError, match="every=0"):
        PMAGuardCallback(every=0)
    with pytest.raises(ConfigError, match="directory"):
        PMAGuardCallback(storage="disk")
    with pytest.raises(ConfigError, match="keep=1"):
        PMAGuardCallback(GuardConfig(pma_count=3), keep=1)
