"""riverbed's Lightning callbacks with a tiny LightningModule and a real lightning.Trainer on the CPU."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
try:
    import lightning as L
except ImportError as exc:  # not installed, or installed but broken: skip, saying why
    pytest.skip(f"lightning is not importable ({exc}); pip install 'riverbed[lightning]'", allow_module_level=True)

from riverbed.errors import ConfigError  # noqa: E402
from riverbed.integrations.lightning import PMAGuardCallback, PMAMonitorCallback  # noqa: E402
from riverbed.merging.pma_snapshots import PMAConfig  # noqa: E402
from riverbed.config.guard import GuardConfig  # noqa: E402

SPIKE_AT = 30
pytestmark = [pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`"),
              pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated")]


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.linspace(-1, 1, 16).reshape(8, 2)
    return torch.utils.data.TensorDataset(x, x @ w + 0.01 * torch.randn(n, 2, generator=g))


class _Regressor(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


class _Weights(L.Callback):
    """Copies of the weights after each update (place it before the corrupting callback)."""

    def __init__(self) -> None:
        self.after: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after[trainer.global_step] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


class _Corrupt(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == SPIKE_AT:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))


class _Losses(L.Callback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"].detach())


def _fit(callbacks, steps: int, val: bool = False, val_every: int = 8):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    module = _Regressor()
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        val_check_interval=val_every if val else None, limit_val_batches=4 if val else 0,
                        callbacks=callbacks)
    loader = torch.utils.data.DataLoader(_data(1024, 0), batch_size=16)
    val_loader = torch.utils.data.DataLoader(_data(64, 1), batch_size=16) if val else None
    trainer.fit(module, loader, val_loader)
    return module, trainer


def test_nan_weights_restored_to_the_sma_of_healthy_snapshots():
    guard = PMAGuardCallback(GuardConfig(window=20, min_history=5, pma_count=3), every=4)
    weights, losses = _Weights(), _Losses()

    class _AfterGuard(L.Callback):
        restored = None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == SPIKE_AT:
                _AfterGuard.restored = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    module, _ = _fit([weights, _Corrupt(), guard, _AfterGuard(), losses], steps=48)
    kinds = [e["event"] for e in guard.events]
    assert kinds[:2] == ["spike", "recovery"], guard.events
    spike, rec = guard.events[0], guard.events[1]
    assert spike["kind"] == "nan-weights" and spike["global_step"] == SPIKE_AT
    assert rec["checkpoints"] == [20, 24, 28] and rec["weights"] == pytest.approx([1 / 3] * 3)
    # the module holds exactly the SMA of the weights after updates 20, 24 and 28
    for name, value in _AfterGuard.restored.items():
        sma = sum(weights.after[s][name] for s in (20, 24, 28)) / 3
        torch.testing.assert_close(value, sma, rtol=1e-6, atol=1e-7, msg=name)
    assert all(math.isfinite(v) for s, v in losses.losses.items() if s > SPIKE_AT)
    assert losses.losses[48] < 1.5 * losses.losses[SPIKE_AT - 1]  # back on the pre-spike level
    assert all(torch.isfinite(p).all() for p in module.parameters())


@torch.no_grad()
def _val_loss(module) -> float:
    losses = [float(torch.nn.functional.mse_loss(module.net(x), y))
              for x, y in torch.utils.data.DataLoader(_data(64, 1), batch_size=16)]
    return sum(losses) / len(losses)


def test_pma_monitor_logs_the_merged_validation_loss():
    pma = PMAMonitorCallback(PMAConfig(every=4, count=3))
    weights = _Weights()
    module, trainer = _fit([weights, pma], steps=24, val=True, val_every=8)
    assert [row["step"] for row in pma.history] == [16, 24]  # at step 8 only 2 snapshots exist
    row = pma.history[-1]
    assert row["pma_positions"] == [16, 20, 24] and row["pma_method"] == "sma"
    assert trainer.callback_metrics["pma_eval_loss"] == pytest.approx(row["pma_eval_loss"])
    # the same number by hand: the SMA of the weights after 16, 20, 24 on the validation batches
    merged = _Regressor()
    merged.load_state_dict({k: sum(weights.after[s][k] for s in (16, 20, 24)) / 3 for k in weights.after[24]})
    assert row["pma_eval_loss"] == pytest.approx(_val_loss(merged), rel=1e-5)
    # the trained weights are back, and the raw val_loss is the raw model's
    for k, v in module.state_dict().items():
        assert torch.equal(v, weights.after[24][k])
    assert float(trainer.callback_metrics["val_loss"]) == pytest.approx(_val_loss(module), rel=1e-5)
    assert row["pma_eval_loss"] != pytest.approx(float(trainer.callback_metrics["val_loss"]), rel=1e-6)


def test_lr_scale_after_recovery_and_a_stop():
    cfg = GuardConfig(window=20, min_history=5, action="rollback", lr_scale=0.5, lr_scale_steps=4)
    guard = PMAGuardCallback(cfg, every=4)

    lrs: dict[int, float] = {}

    class _LRs(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            lrs[trainer.global_step] = optimizer.param_groups[0]["lr"]

    _fit([_Corrupt(), guard, _LRs()], steps=40)
    assert guard.events[1]["checkpoints"] == [28] and guard.events[1]["action"] == "rollback"
    # updates 30..33 run at half the LR, then the scheduled LR is back (restored after each step)
    assert [lrs[s] for s in range(28, 36)] == [1e-2] * 2 + [1e-2 * 0.5] * 4 + [1e-2] * 2

    stopper = PMAGuardCallback(GuardConfig(window=20, min_history=5, max_recoveries=0), every=4)
    _, trainer = _fit([_Corrupt(), stopper], steps=48)
    assert "max_recoveries=0" in stopper.stopped_reason and trainer.global_step == SPIKE_AT


def test_bad_arguments():
    with pytest.raises(ConfigError, match="every=0"):
        PMAGuardCallback(every=0)
    with pytest.raises(ConfigError, match="pma.unit='tokens'"):
        PMAMonitorCallback(PMAConfig(every=4, count=2, unit="tokens"))
