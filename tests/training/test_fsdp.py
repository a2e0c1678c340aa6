"""FSDP2 with 2 CPU processes (gloo): the same trajectory as 1 process, checkpoints in the common
safetensors layout (a merge input), resumes resharded across world sizes and parallelisms."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from riverbed.training import distributed_checkpoint as DC
from riverbed.checkpoints import layout
from riverbed.checkpoints.schema import read_state
from riverbed.cli.main import main
from riverbed.config import load_config_text
from riverbed.errors import CheckpointError, ConfigError
from riverbed.training import read_metrics
from riverbed.training.loop import micro_batch_size

# grad_clip far below the gradient norm (~1.8): every step clips, so a per-shard norm instead of
# the global one would change the weights and fail the comparison. eval_batches = 3: odd, so a
# round-robin over 2 ranks would give them different numbers of (collective) FSDP forwards.
FSDP = """
[model]
preset = "tiny"
max_seq_len = 64

[optim]
lr = 0.003
grad_clip = 0.05

[schedule]
type = "warmup-stable"
warmup = 2

[train]
batch_size = 8
seq_len = 32
max_steps = 4
grad_accum = 2
ckpt_every = 2
eval_every = 2
eval_batches = 3
log_every = 1
device = "cpu"
threads = 1
tensorboard = false
parallel = "fsdp"
"""


def _torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "riverbed.cli.main", "--", *args]  # "--": torchrun would take --run for its --run-path
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _ckpt(run, step):
    return layout.checkpoint_dir(run, "main", step)


def _max_diff(a, b, file):
    x, y = load_file(a / file), load_file(b / file)
    assert x.keys() == y.keys(), set(x) ^ set(y)
    return max(float((x[k].float() - y[k].float()).abs().max()) for k in x)


def _train_rows(run):
    return [r for r in read_metrics(layout.metrics_path(run, "main")) if r["kind"] == "train"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, same config and global batch: checkpoints at steps 2 and 4."""
    root = tmp_path_factory.mktemp("fsdp_ref")
    cfg = root / "fsdp.toml"
    cfg.write_text(FSDP)
    assert main(["train", str(cfg), "--run", str(root / "one"), "--no-progress"]) == 0
    return cfg, root / "one"


@pytest.mark.distributed
def test_fsdp_matches_one_process_and_resumes_on_one(reference, tmp_path):
    cfg, one = reference
    two = tmp_path / "two"
    proc = _torchrun(2, "train", str(cfg), "--run", str(two), "--no-progress")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    s1, s2 = read_state(_ckpt(one, 4)), read_state(_ckpt(two, 4))
    assert (s1.tokens, s1.flops) == (s2.tokens, s2.flops)
    assert (s2.world_size, s2.parallel) == (2, "fsdp")
    # Weights and AdamW moments (gathered from the shards) equal 1 process up to reduction order.
    assert _max_diff(_ckpt(one, 4), _ckpt(two, 4), layout.MODEL_FILE) < 1e-5  # measured 5.9e-7
    assert _max_diff(_ckpt(one, 4), _ckpt(two, 4), layout.OPTIMIZER_FILE) < 1e-7  # measured 5.2e-10
    r1, r2 = _train_rows(one), _train_rows(two)
    assert [r["step"] for r in r2] == [1, 2, 3, 4]
    for a, b in zip(r1, r2):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)  # the global norm, not a shard's
    assert s2.eval_loss == pytest.approx(s1.eval_loss, rel=1e-5)

    # The checkpoint is the common layout: no per-rank shards, no pickled .metadata left behind,
    # the consolidated file holds full tensors under HF names.
    names = sorted(p.name for p in _ckpt(two, 4).iterdir())
    assert names == ["config.json", "model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json"]
    w = load_file(_ckpt(two, 4) / layout.MODEL_FILE)
    assert w["model.embed_tokens.weight"].shape == load_file(_ckpt(one, 4) / layout.MODEL_FILE)[
        "model.embed_tokens.weight"].shape
    # ... and a merge input.
    out = tmp_path / "merged"
    assert main(["merge", str(out), str(_ckpt(two, 2)), str(_ckpt(two, 4))]) == 0
    merged = load_file(out / layout.MODEL_FILE)
    w2 = load_file(_ckpt(two, 2) / layout.MODEL_FILE)
    k = "model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(merged[k], (w[k] + w2[k]) / 2)

    # FSDP(2) -> 1 process: the consolidated files load into a plain model.
    assert main(["train", "--run", str(two), "--no-progress", "--set", "train.max_steps=5"]) == 0
    assert (read_state(_ckpt(two, 5)).world_size, read_state(_ckpt(two, 5)).parallel) == (1, "single")


@pytest.mark.distributed
def test_resume_one_process_checkpoint_under_fsdp(reference, tmp_path):
    """1 process (DDP writes the same files) -> FSDP(2): weights and AdamW state resharded from
    step 2 give step 4 of the uninterrupted run; then FSDP(2) -> DDP(2)."""
    cfg, one = reference
    run = tmp_path / "run"
    shutil.copytree(one, run)
    shutil.rmtree(_ckpt(run, 4))
    proc = _torchrun(2, "train", "--run", str(run), "--no-progress")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = read_state(_ckpt(run, 4))
    assert (s.world_size, s.parallel) == (2, "fsdp")
    assert _max_diff(_ckpt(one, 4), _ckpt(run, 4), layout.MODEL_FILE) < 1e-5
    assert _max_diff(_ckpt(one, 4), _ckpt(run, 4), layout.OPTIMIZER_FILE) < 1e-7
    resumed = [r for r in read_metrics(layout.metrics_path(run, "main")) if r.get("event") == "resume"]
    assert resumed and resumed[-1]["world_size"] == 2

    proc = _torchrun(2, "train", "--run", str(run), "--no-progress", "--set", "train.max_steps=5",
                     "--set", "train.parallel=ddp")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (read_state(_ckpt(run, 5)).world_size, read_state(_ckpt(run, 5)).parallel) == (2, "ddp")


def test_unreshardable_checkpoints_are_refused(tmp_path):
    # Per-rank shards without the consolidated file (a killed save, another tool's sharded save).
    shards = tmp_path / "shards"
    (shards / DC.SHARDS).mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, str(shards / DC.SHARDS / "shard-00001-model-00001-of-00001.safetensors"))
    with pytest.raises(CheckpointError, match="per-rank shards.*cannot be resharded"):
        DC.load(shards, torch.nn.Linear(2, 2), None)
    # DCP's default format: its .metadata is a pickle and is never opened.
    pickled = tmp_path / "distcp"
    pickled.mkdir()
    (pickled / ".metadata").write_bytes(b"\x80\x04not opened")
    (pickled / "__0_0.distcp").write_bytes(b"")
    with pytest.raises(CheckpointError, match="pickled .metadata.*cannot be resharded"):
        DC.load(pickled, torch.nn.Linear(2, 2), None)


def test_world_size_that_does_not_split_the_batch_names_it():
    cfg = load_config_text(FSDP)
    assert micro_batch_size(cfg, 2) == 2
    with pytest.raises(ConfigError, match=r"processes x train.grad_accum = 3 x 2"):
        micro_batch_size(cfg, 3)


def test_parallel_key_is_validated(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(FSDP.replace('parallel = "fsdp"', 'parallel = "zero3"'))
    assert main(["train", str(cfg), "--run", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "train.parallel" in capsys.readouterr().err
    assert not (tmp_path / "r" / "branches").exists()


@pytest.mark.distributed
def test_python_api_one_step_and_sharded_roundtrip(tmp_path):
    """wrap_model + clip_grad_norm + checkpoints.distributed.save/load under 2 ranks, against
    the same step on one process (the gradient of the two ranks' batches averaged)."""
    import json

    from riverbed.checkpoints.state import load_checkpoint
    from riverbed.model import build_model
    from riverbed.training.optim import build_optimizer

    worker = Path(__file__).with_name("fsdp_api_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(worker), str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    sys.path.insert(0, str(worker.parent))
    try:
        from fsdp_api_worker import CFG, batch
    finally:
        sys.path.pop(0)
    model = build_model(CFG.model, seed=0)
    opt = build_optimizer(model, CFG.optim)
    loss = (model(batch(0), batch(0)).loss + model(batch(1), batch(1)).loss) / 2
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
    opt.step()
    assert json.loads((tmp_path / "norm.json").read_text())["norm"] == pytest.approx(float(norm), rel=1e-5)

    saved = build_model(CFG.model, seed=1)
    saved_opt = build_optimizer(saved, CFG.optim)
    st = load_checkpoint(tmp_path / "ckpt", saved, saved_opt)  # a plain model reads it
    assert (st.step, st.parallel) == (1, "fsdp")
    assert json.loads((tmp_path / "ckpt" / "component.json").read_text()) == {"rank": 0}
    for (name, p), q in zip(model.named_parameters(), saved.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(saved_opt.state[q]["exp_avg"], opt.state[p]["exp_avg"], rtol=0, atol=1e-8)


def test_cli_refuses_a_branch_checkpoint_of_shards_only(reference, tmp_path, capsys):
    """A step dir with state.json but only per-rank shards is an error (exit 2), not silently
    skipped for an older checkpoint."""
    _, one = reference
    run = tmp_path / "run"
    shutil.copytree(one, run)
    bad = _ckpt(run, 6)
    shutil.copytree(_ckpt(run, 4), bad)
    (bad / layout.MODEL_FILE).unlink()
    (bad / DC.SHARDS).mkdir()
    save_file({"w": torch.zeros(2)}, str(bad / DC.SHARDS / "shard-00001-model-00001-of-00001.safetensors"))
    assert main(["train", "--run", str(run), "--no-progress", "--set", "train.max_steps=8"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "cannot be resharded" in err
    assert not _ckpt(run, 8).exists()


def test_with_metadata_streams_data_and_appends_scalars(tmp_path):
    src, dst = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    t = {"x.exp_avg": torch.randn(3, 5), "y.exp_avg": torch.arange(7, dtype=torch.float32)}
    save_file(t, str(src))  # no metadata, as DCP's consolidation writes it
    DC.with_metadata(src, dst, {"format": "riverbed.adamw.v1"}, extra={"x.step": torch.tensor(4.0)})
    from safetensors import safe_open

    with safe_open(str(dst), framework="pt") as fh:
        assert fh.metadata() == {"format": "riverbed.adamw.v1"}
    got = load_file(dst)
    assert set(got) == {"x.exp_avg", "y.exp_avg", "x.step"}
    assert got["x.step"].shape == () and float(got["x.step"]) == 4.0
    for k in t:
        assert torch.equal(got[k], t[k])


def test_guard_or_pma_with_fsdp_is_refused_before_the_run_exists(tmp_path, capsys):
    cfg = tmp_path / "guard.toml"
    cfg.write_text(FSDP + '\n[guard]\ndetectors = ["ratio"]\n')
    assert main(["train", str(cfg), "--run", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "[guard] with train.parallel='fsdp'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
