"""The step loop: determinism, exact resume, forks from a checkpoint, LR, metrics, errors."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from riverbed.checkpoints import layout
from riverbed.checkpoints.state import read_state
from riverbed.config import TrainConfig
from riverbed.errors import CheckpointError, ConfigError
from riverbed.schedules import DecayBranch, WarmupStable
from riverbed.training import Callback, read_metrics, train_branch


def _train(cfg, **kw):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **kw))


def _weights(ref_or_path):
    path = getattr(ref_or_path, "checkpoint", ref_or_path)
    return load_file(path / layout.MODEL_FILE), load_file(path / layout.OPTIMIZER_FILE)


def _assert_bitwise(a, b):
    for (wa, oa), (wb, ob) in [(a, b)]:
        assert wa.keys() == wb.keys() and oa.keys() == ob.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), k
        for k in oa:
            assert torch.equal(oa[k], ob[k]), k


def test_trains_checkpoints_and_logs(tmp_path, tiny_run_config):
    res = train_branch(tiny_run_config, tmp_path, "main", until_step=4, progress=False)
    assert (res.step, res.tokens) == (4, 4 * 4 * 32)
    assert res.flops == pytest.approx(res.tokens * tiny_run_config.model.flops_per_token(32))
    assert [r.step for r in layout.list_checkpoints(tmp_path, "main")] == [2, 4]
    state = read_state(res.checkpoint)
    assert state.step == 4 and state.data.position == 4 and state.branch == "main"
    assert state.eval_loss == pytest.approx(res.last_eval_loss)
    assert state.schedule["type"] == "warmup-stable"
    rows = read_metrics(layout.metrics_path(tmp_path, "main"))
    train = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    # Update s uses lr * multiplier(s): warmup 2 from 0 then constant.
    sched = WarmupStable(warmup=2)
    assert [r["lr"] for r in train] == pytest.approx([3e-3 * sched.multiplier(s) for s in range(4)])
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [2, 4]
    assert res.last_train_loss == pytest.approx(train[-1]["loss"])
    assert train[-1]["loss"] < train[0]["loss"]  # it learns
    assert 0 < res.last_eval_loss < 6


def test_same_seed_same_weights_other_seed_differs(tmp_path, tiny_run_config):
    a = train_branch(tiny_run_config, tmp_path / "a", until_step=3, progress=False)
    b = train_branch(tiny_run_config, tmp_path / "b", until_step=3, progress=False)
    _assert_bitwise(_weights(a), _weights(b))
    c = train_branch(_train(tiny_run_config, seed=1), tmp_path / "c", until_step=3, progress=False)
    assert not torch.equal(_weights(a)[0]["model.norm.weight"], _weights(c)[0]["model.norm.weight"])


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_resume_is_exact(tmp_path, tiny_run_config, grad_accum):
    cfg = _train(tiny_run_config, grad_accum=grad_accum, ckpt_every=0, eval_every=0)
    straight = train_branch(cfg, tmp_path / "straight", until_step=6, progress=False)
    first = train_branch(cfg, tmp_path / "resumed", until_step=3, progress=False)
    assert first.step == 3
    second = train_branch(cfg, tmp_path / "resumed", until_step=6, progress=False)
    assert second.step == 6
    _assert_bitwise(_weights(straight), _weights(second))
    assert second.last_eval_loss == straight.last_eval_loss
    # metrics read as if the run had never stopped (plus one resume event)
    rows = read_metrics(layout.metrics_path(tmp_path / "resumed", "main"))
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["event"] for r in rows if r["kind"] == "event"] == ["start", "resume"]


def test_already_done_branch_is_returned(tmp_path, tiny_run_config):
    a = train_branch(tiny_run_config, tmp_path, until_step=2, progress=False)
    again = train_branch(tiny_run_config, tmp_path, until_step=2, progress=False)
    assert again.step == 2 and again.checkpoint == a.checkpoint and again.last_eval_loss == a.last_eval_loss


def test_fork_continues_global_numbering(tmp_path, tiny_run_config):
    cfg = _train(tiny_run_config, ckpt_every=2, eval_every=0)
    train_branch(cfg, tmp_path, "main", until_step=4, progress=False)
    main2 = layout.checkpoint_dir(tmp_path, "main", 2)
    # A fork with the main schedule is the main branch itself: bitwise the same at step 4.
    same = train_branch(cfg, tmp_path, "same", until_step=4, init=main2, progress=False)
    _assert_bitwise(_weights(same), _weights(layout.checkpoint_dir(tmp_path, "main", 4)))
    # A decay branch: global steps 2..5, LR decays from the main LR to 0.
    sched = DecayBranch(main=WarmupStable(warmup=2), fork_step=2, decay_steps=4, shape="linear", min_ratio=0.0)
    res = train_branch(cfg, tmp_path, "decay", sched, until_step=6, init=main2, progress=False)
    assert (res.step, res.tokens) == (6, 6 * 128)
    state = read_state(res.checkpoint)
    assert state.init == str(main2) and state.schedule["type"] == "decay-branch"
    rows = [r for r in read_metrics(layout.metrics_path(tmp_path, "decay")) if r["kind"] == "train"]
    assert [r["step"] for r in rows] == [3, 4, 5, 6]
    assert [r["lr"] for r in rows] == pytest.approx([3e-3 * sched.multiplier(s) for s in range(2, 6)])
    assert [r.step for r in layout.list_checkpoints(tmp_path, "main")] == [2, 4]  # main untouched


def test_fork_from_missing_checkpoint(tmp_path, tiny_run_config):
    with pytest.raises(CheckpointError, match="step_0000000007"):
        train_branch(tiny_run_config, tmp_path, "b", until_step=9, init=layout.checkpoint_dir(tmp_path, "main", 7),
                     progress=False)
    assert not layout.branch_dir(tmp_path, "b").exists() or not layout.list_checkpoints(tmp_path, "b")


def test_corrupt_newest_checkpoint_is_named(tmp_path, tiny_run_config):
    train_branch(tiny_run_config, tmp_path, until_step=2, progress=False)
    f = layout.checkpoint_dir(tmp_path, "main", 2) / layout.OPTIMIZER_FILE
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        train_branch(tiny_run_config, tmp_path, until_step=4, progress=False)


def test_indivisible_batch_is_a_config_error():
    from riverbed.training import micro_batch_size

    cfg = _Cfg(TrainConfig(batch_size=8, grad_accum=2))
    assert micro_batch_size(cfg, 2) == 2
    with pytest.raises(ConfigError, match="train.batch_size=8 is not divisible by processes x train.grad_accum = 3 x 2"):
        micro_batch_size(cfg, 3)


@dataclasses.dataclass
class _Cfg:
    train: TrainConfig


def test_bf16_autocast_on_cpu(tmp_path, tiny_run_config):
    res = train_branch(_train(tiny_run_config, dtype="bfloat16"), tmp_path, until_step=2, progress=False)
    assert torch.isfinite(torch.tensor(res.last_eval_loss))
    assert _weights(res)[0]["model.norm.weight"].dtype == torch.float32  # weights stay fp32


def test_moe_trains(tmp_path, tiny_run_config, tiny_moe_config):
    cfg = dataclasses.replace(tiny_run_config, model=tiny_moe_config)
    res = train_branch(cfg, tmp_path, until_step=2, progress=False)
    assert "model.layers.0.block_sparse_moe.gate.weight" in _weights(res)[0]


class _Recorder(Callback):
    def __init__(self):
        self.steps, self.evals, self.ckpts = [], [], []

    def on_step_end(self, ctx):
        self.steps.append((ctx.step, ctx.tokens, ctx.train_loss, ctx.grad_norm))

    def on_eval(self, ctx, metrics):
        self.evals.append((ctx.step, metrics["eval_loss"]))

    def on_checkpoint(self, ctx, ref):
        self.ckpts.append(ref.step)
        assert (ref.path / layout.STATE_FILE).is_file()


def test_callbacks_and_stop(tmp_path, tiny_run_config):
    rec = _Recorder()

    class Stop(Callback):
        def on_step_end(self, ctx):
            if ctx.step == 3:
                ctx.stop("enough")

    res = train_branch(tiny_run_config, tmp_path, until_step=10, callbacks=[rec, Stop()], progress=False)
    assert (res.step, res.stopped) == (3, "enough")
    assert [s for s, *_ in rec.steps] == [1, 2, 3] and all(loss > 0 for *_, loss, _ in rec.steps)
    assert [s for s, _ in rec.evals] == [2, 3] and rec.ckpts == [2, 3]
    assert read_state(res.checkpoint).reason == "stopped"


def test_restore_checkpoint_rewinds_exactly(tmp_path, tiny_run_config):
    cfg = _train(tiny_run_config, eval_every=0)
    straight = train_branch(cfg, tmp_path / "a", until_step=4, progress=False)

    class Rollback(Callback):
        done = False

        def on_step_end(self, ctx):
            if ctx.step == 3 and not self.done:
                self.done = True
                ctx.restore_checkpoint(layout.checkpoint_dir(ctx.run_dir, "main", 2), reason="test")

    res = train_branch(cfg, tmp_path / "b", until_step=4, callbacks=[Rollback()], progress=False)
    _assert_bitwise(_weights(straight), _weights(res))  # rewound to 2 and replayed 2..3
    events = [r for r in read_metrics(layout.metrics_path(tmp_path / "b", "main")) if r.get("event") == "restore"]
    assert events[0]["to_step"] == 2 and events[0]["optimizer"] == "loaded"


def test_restore_weights_with_lr_scale(tmp_path, tiny_run_config):
    class Halve(Callback):
        def on_step_end(self, ctx):
            if ctx.step == 2:
                ctx.restore({k: v.clone() for k, v in ctx.model.state_dict().items()}, reset_optimizer=True,
                            lr_scale=0.5)

    res = train_branch(tiny_run_config, tmp_path, until_step=4, callbacks=[Halve()], progress=False)
    rows = [r for r in read_metrics(layout.metrics_path(tmp_path, "main")) if r["kind"] == "train"]
    assert [r["lr"] for r in rows] == pytest.approx([1.5e-3, 3e-3, 1.5e-3, 1.5e-3])
    assert read_state(res.checkpoint).lr_scale == 0.5
    assert float(_weights(res)[1]["model.norm.weight.step"]) == 2.0  # moments were reset at step 2


def test_restore_with_wrong_tensors_is_named(tmp_path, tiny_run_config):
    class Bad(Callback):
        def on_step_end(self, ctx):
            ctx.restore({"model.norm.weight": torch.zeros(3)})

    with pytest.raises(CheckpointError, match="restore"):
        train_branch(tiny_run_config, tmp_path, until_step=2, callbacks=[Bad()], progress=False)


def test_ctrl_c_saves_at_step_boundary_and_resumes_exactly(tmp_path, tiny_run_config):
    cfg = _train(tiny_run_config, ckpt_every=0, eval_every=0)
    straight = train_branch(cfg, tmp_path / "a", until_step=5, progress=False)

    class CtrlC(Callback):
        def on_step_end(self, ctx):
            if ctx.step == 3:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train_branch(cfg, tmp_path / "b", until_step=5, callbacks=[CtrlC()], progress=False)
    assert [r.step for r in layout.list_checkpoints(tmp_path / "b", "main")] == [3]
    assert read_state(layout.checkpoint_dir(tmp_path / "b", "main", 3)).reason == "interrupted"
    res = train_branch(cfg, tmp_path / "b", until_step=5, progress=False)
    _assert_bitwise(_weights(straight), _weights(res))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_metrics_file_is_json_lines(tmp_path, tiny_run_config):
    train_branch(tiny_run_config, tmp_path, until_step=1, progress=False)
    lines = layout.metrics_path(tmp_path, "main").read_text().splitlines()

    def no_constants(c):
        raise AssertionError(f"bare {c} in metrics.jsonl")

    rows = [json.loads(line, parse_constant=no_constants) for line in lines]
    assert all(isinstance(r, dict) for r in rows)
    # one start event, the train row of step 1 (log_every = 1), the end-of-branch evaluation
    assert [(r["kind"], r["step"]) for r in rows] == [("event", 0), ("train", 1), ("eval", 1)]
    train, ev = rows[1], rows[2]
    assert train["tokens"] == ev["tokens"] == 128  # 4 sequences x 32 tokens
    assert math.isfinite(train["loss"]) and train["lr"] == pytest.approx(0.0015)  # 3e-3 x 1/2 of the warmup
    held_out = [v for k, v in ev.items() if "loss" in k]
    assert len(held_out) == 1 and math.isfinite(held_out[0]) and 0 < held_out[0] < 10
