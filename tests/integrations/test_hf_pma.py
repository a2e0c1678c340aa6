"""PMAMonitorCallback under a real transformers.Trainer: pma_eval_loss is the merged model's eval loss."""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer needs it
torch = pytest.importorskip("torch")

from riverbed.errors import ConfigError  # noqa: E402
from riverbed.integrations.hf import PMAMonitorCallback  # noqa: E402
from riverbed.merging.pma_snapshots import PMAConfig  # noqa: E402

from ._tiny import Patterned, tiny_llama  # noqa: E402


class _Weights(transformers.TrainerCallback):
    def __init__(self) -> None:
        self.after: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.after[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def _eval_loss(model, data) -> float:
    model.eval()
    batch = {k: torch.stack([row[k] for row in data]) for k in ("input_ids", "labels")}
    return float(model(**batch).loss)


def test_pma_monitor_adds_the_merged_eval_loss(tmp_path):
    model = tiny_llama()
    eval_set = Patterned(16)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=16, per_device_train_batch_size=16, per_device_eval_batch_size=16,
        learning_rate=1e-2, lr_scheduler_type="constant", eval_strategy="steps", eval_steps=8, logging_steps=8,
        save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=0, dataloader_num_workers=0)
    pma, weights = PMAMonitorCallback(PMAConfig(every=4, count=3)), _Weights()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Patterned(), eval_dataset=eval_set,
                                   callbacks=[weights, pma])
    with pytest.warns(UserWarning, match="not attached"):  # not attached: log_history only
        trainer.train()
    assert [row["step"] for row in pma.history] == [16]  # at step 8 only 2 snapshots exist
    row = pma.history[0]
    assert row["pma_positions"] == [8, 12, 16]
    merged = tiny_llama()
    merged.load_state_dict({k: sum(weights.after[s][k].float() for s in (8, 12, 16)) / 3 for k in weights.after[16]})
    assert row["pma_eval_loss"] == pytest.approx(_eval_loss(merged, eval_set), rel=1e-5)
    assert {"pma_eval_loss": row["pma_eval_loss"], "step": 16} in trainer.state.log_history
    # the trained weights are back: the raw eval_loss is the raw model's, and evaluate() carries both
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights.after[16][k])
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(_eval_loss(model, eval_set), rel=1e-5)
    assert metrics["pma_eval_loss"] == pytest.approx(row["pma_eval_loss"], rel=1e-6)


def test_pma_monitor_counts_steps_only():
    with pytest.raises(ConfigError, match="pma.unit='tokens'"):
        PMAMonitorCallback(PMAConfig(every=4, count=2, unit="tokens"))


class _Logged(transformers.TrainerCallback):
    """What a report_to integration sees: every on_log call's logs."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append({**logs, "step": state.global_step})


def test_attached_pma_monitor_logs_through_trainer_log_to_report_to_dashboards(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = tiny_llama()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=16, per_device_train_batch_size=16, per_device_eval_batch_size=16,
        learning_rate=1e-2, lr_scheduler_type="constant", eval_strategy="steps", eval_steps=8, logging_steps=8,
        save_strategy="no", report_to=["tensorboard"], use_cpu=True, disable_tqdm=True,
        seed=0, dataloader_num_workers=0)
    logged = _Logged()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Patterned(), eval_dataset=Patterned(16), callbacks=[logged])
    pma = PMAMonitorCallback(PMAConfig(every=4, count=3)).attach(trainer)
    assert pma in trainer.callback_handler.callbacks and pma.attach(trainer) is pma
    assert sum(c is pma for c in trainer.callback_handler.callbacks) == 1  # attaching twice adds it once
    trainer.train()
    loss = pma.history[0]["pma_eval_loss"]
    # every on_log listener (report_to integrations included) saw it, at the evaluation's step
    assert [(row["pma_eval_loss"], row["step"]) for row in logged.logs if "pma_eval_loss" in row] == [(loss, 16)]
    assert [row for row in trainer.state.log_history if "pma_eval_loss" in row][0]["pma_eval_loss"] == loss
    # ... and TensorBoard wrote it
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    scalars = {}
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    (tag,) = [t for t in scalars if t.endswith("pma_eval_loss")]
    assert scalars[tag] == [(16, pytest.approx(loss, rel=1e-6))]


def test_an_unattached_pma_monitor_warns_that_dashboards_miss_it(tmp_path):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=8, per_device_train_batch_size=16, per_device_eval_batch_size=16,
        learning_rate=1e-2, eval_strategy="steps", eval_steps=8, logging_steps=8, save_strategy="no", report_to="none",
        use_cpu=True, disable_tqdm=True, seed=0, dataloader_num_workers=0)
    pma = PMAMonitorCallback(PMAConfig(every=4, count=2))
    trainer = transformers.Trainer(model=tiny_llama(), args=args, train_dataset=Patterned(), eval_dataset=Patterned(16), callbacks=[pma])
    with pytest.warns(UserWarning, match=r"not attached .*pma.attach\(trainer\)"):
        trainer.train()
    assert [row["step"] for row in trainer.state.log_history if "pma_eval_loss" in row] == [8]
