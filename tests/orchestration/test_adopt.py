"""`riverbed adopt`: a run tree over a real Trainer output_dir and over a folder of checkpoints
plus a log; what is known and unknown recorded as such; the source never written; re-adopting
picks up new checkpoints; bad sources exit 2 naming the file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.orchestration.adopt import AdoptError, adopt
from riverbed.runs import Run
from tests.orchestration.conftest import tree_hash


def test_adopt_a_trainer_output_dir(hf_output, tmp_path, capsys):
    before = tree_hash(hf_output)
    assert main(["adopt", str(hf_output), "--out", str(tmp_path / "run")]) == 0
    cap = capsys.readouterr()
    assert "6 checkpoints (steps 8, 16, 24, 32, 40, 48)" in cap.out
    assert "schedule read from the logged LR ('learning_rate'): warmup-stable, peak 0.003" in cap.err
    run = Run.open(tmp_path / "run")
    m = run.manifest
    assert m.config["adopted"]["source"] == str(hf_output.resolve())
    assert m.config["adopted"]["checkpoints"]["48"] == str((hf_output / "checkpoint-48").resolve())
    assert m.config["optim"]["lr"] == pytest.approx(3e-3) and m.model["tokens_per_step"] == 8 * 24
    assert [c.step for c in run.checkpoints()] == [8, 16, 24, 32, 40, 48]
    main_b = run.branch("main")
    assert main_b.schedule["type"] == "warmup-stable" and main_b.status == "stopped"
    history = json.loads((hf_output / "checkpoint-48" / "trainer_state.json").read_text())["log_history"]
    want = [h["eval_loss"] for h in history if h.get("step") == 48 and "eval_loss" in h][0]
    assert main_b.progress.eval_loss == pytest.approx(want) and main_b.progress.tokens == 48 * 192
    ck = run.checkpoint(32).path
    assert json.loads((ck / layout.SOURCE_FILE).read_text())["path"] == str((hf_output / "checkpoint-32").resolve())
    assert (ck / "model.safetensors").is_symlink() and (ck / "model.safetensors").resolve().parent == (hf_output / "checkpoint-32").resolve()
    evals = [json.loads(x) for x in layout.metrics_path(run.path, "main").read_text().splitlines()]
    assert sum(r["kind"] == "eval" for r in evals) == 12  # every 4 steps
    assert tree_hash(hf_output) == before


def test_readopting_picks_up_new_checkpoints(hf_output, tmp_path):
    import riverbed

    assert riverbed.adopt is adopt  # the public entry point
    src = tmp_path / "still_training"
    src.mkdir()
    for n in (8, 16):
        shutil.copytree(hf_output / f"checkpoint-{n}", src / f"checkpoint-{n}", symlinks=True)
    run, _ = adopt(src, tmp_path / "run")
    assert [c.step for c in run.checkpoints()] == [8, 16]
    (src / "checkpoint-24").mkdir()  # a checkpoint being written: no weights yet -> not adopted
    run, _ = adopt(src, tmp_path / "run")
    assert [c.step for c in run.checkpoints()] == [8, 16]
    shutil.rmtree(src / "checkpoint-24")
    for n in (24, 32):
        shutil.copytree(hf_output / f"checkpoint-{n}", src / f"checkpoint-{n}", symlinks=True)
    run, _ = adopt(src, tmp_path / "run")
    assert [c.step for c in run.checkpoints()] == [8, 16, 24, 32]
    assert run.branch("main").progress.step == 32
    assert [e["type"] for e in run.branch("main").events] == ["adopt", "adopt", "adopt"]
    shutil.rmtree(src / "checkpoint-8")  # the trainer rotated it away (save_total_limit)
    run, notes = adopt(src, tmp_path / "run")
    assert [c.step for c in run.checkpoints()] == [16, 24, 32]
    assert any("steps 8 are gone" in n for n in notes)
    with pytest.raises(AdoptError, match="not one adopted from"):
        adopt(hf_output, tmp_path / "run")


def _safetensors_folder(root, steps):
    root.mkdir()
    for s in steps:
        save_file({"w": np.full((4, 4), s, dtype=np.float32)}, str(root / f"step_{s}.safetensors"))
    return root


def test_a_folder_of_checkpoints_with_a_wandb_log_and_unknown_tokens(tmp_path, capsys):
    src = _safetensors_folder(tmp_path / "ckpts", [100, 200, 300])
    log = tmp_path / "wandb.csv"
    rows = ["_step,trainer/learning_rate,train/loss,eval/loss"]
    for s in range(10, 301, 10):  # linear warmup over 50 steps, then constant
        rows.append(f"{s},{1e-3 * min(1, s / 50)},{4 - s / 200},{'' if s % 100 else 3.9 - s / 200}")
    log.write_text("\n".join(rows) + "\n")
    before = tree_hash(src)
    assert main(["adopt", str(src), "--out", str(tmp_path / "run"), "--log", str(log)]) == 0
    capsys.readouterr()
    run = Run.open(tmp_path / "run")
    assert run.branch("main").schedule == {"type": "warmup-stable", "warmup": 50, "warmup_start": 0.0, "warmup_shape": "linear"}
    assert run.branch("main").progress.eval_loss == pytest.approx(3.9 - 1.5)
    assert run.manifest.config["adopted"]["tokens"] is None
    assert main(["ls", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "tokens and FLOPs unknown" in out
    # the merge reader reads the adopted checkpoints: the mean of 200 and 300 is 250
    assert main(["merge", "--run", str(tmp_path / "run"), "--last", "2", "--every", "100", str(tmp_path / "m.safetensors")]) == 0
    from safetensors.numpy import load_file

    assert load_file(str(tmp_path / "m.safetensors"))["w"][0, 0] == pytest.approx(250)
    assert tree_hash(src) == before


def test_an_explicit_schedule_and_tokens_per_step(tmp_path, capsys):
    src = _safetensors_folder(tmp_path / "ckpts", [100, 200])
    log = tmp_path / "log.csv"
    log.write_text("step,lr,loss\n100,0.001,3.0\n200,0.0005,2.5\n")
    spec = '{"type": "wsd", "warmup": 10, "stable": 90, "decay": 110, "shape": "linear"}'
    assert main(["adopt", str(src), "--out", str(tmp_path / "run"), "--log", str(log), "--schedule", spec,
                 "--tokens-per-step", "4K"]) == 0
    run = Run.open(tmp_path / "run")
    assert run.branch("main").schedule["type"] == "wsd" and run.branch("main").progress.tokens == 200 * 4000


@pytest.mark.parametrize("case", ["no-checkpoints", "no-lr", "no-loss", "out-inside", "unknown-schedule", "is-run"])
def test_bad_sources_exit_2_naming_the_file_and_write_nothing(tmp_path, capsys, case):
    src = _safetensors_folder(tmp_path / "ckpts", [100, 200])
    log = tmp_path / "log.csv"
    log.write_text("step,lr,loss\n100,0.001,3.0\n200,0.001,2.5\n")
    out = tmp_path / "run"
    if case == "no-checkpoints":
        src = tmp_path / "empty_out"
        src.mkdir()
        (src / "runs").mkdir()
        want = "empty_out: no checkpoints found"
    elif case == "no-lr":
        log.write_text("step,loss\n100,3.0\n")
        want = "log.csv: missing column(s) lr"
    elif case == "no-loss":
        log.write_text("step,lr\n100,0.001\n")
        want = "log.csv: missing column(s) loss"
    elif case == "out-inside":
        out = src / "run"
        want = "may be neither inside"
    elif case == "unknown-schedule":
        log.write_text("step,lr,loss\n100,0.001,3.0\n150,0.002,2.9\n200,0.0001,2.5\n250,0.002,2.4\n")
        want = "log.csv: the logged learning rate follows none of the schedules tried"
    else:
        (src / "run.json").write_text("{}")
        want = "already a riverbed run"
    before = tree_hash(src)
    assert main(["adopt", str(src), "--out", str(out), "--log", str(log)]) == 2
    err = capsys.readouterr().err
    assert want in err and err.count("\n") == 1
    assert not out.exists() and tree_hash(src) == before


def test_a_tensorboard_log(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    src = _safetensors_folder(tmp_path / "ckpts", [100, 200])
    w = SummaryWriter(str(tmp_path / "tb"))
    for s in range(10, 201, 10):
        w.add_scalar("train/learning_rate", 1e-3 * min(1.0, s / 40), s)
        w.add_scalar("train/loss", 4 - s / 100, s)
        if s % 100 == 0:
            w.add_scalar("eval/loss", 3.9 - s / 100, s)
    w.close()
    assert main(["adopt", str(src), "--out", str(tmp_path / "run"), "--log", str(tmp_path / "tb")]) == 0
    run = Run.open(tmp_path / "run")
    assert run.branch("main").schedule["warmup"] == 40
    assert run.branch("main").progress.eval_loss == pytest.approx(1.9, rel=1e-6)


@pytest.mark.slow  # two more Trainer runs
@pytest.mark.parametrize("scheduler,want", [("linear", "wsd"), ("cosine", "cosine")])
def test_real_trainer_schedulers_are_read_exactly(tmp_path, scheduler, want):
    from tests.orchestration.conftest import train_hf

    src = train_hf(tmp_path / "out", scheduler=scheduler)
    run, notes = adopt(src, tmp_path / "run")
    main_b = run.branch("main")
    assert main_b.schedule["type"] == want and main_b.schedule["warmup"] == 4
    assert run.manifest.config["optim"]["lr"] == pytest.approx(3e-3, rel=1e-9)
    assert main_b.status == "finished" and [p.kind for p in run.finished_points()] == ["main"]


def test_merge_baselines_need_held_out_data_an_adopted_run_lacks(hf_output, tmp_path, capsys):
    adopt(hf_output, tmp_path / "run")
    assert main(["scaling", "fit", str(tmp_path / "run"), "--points", "merge"]) == 2
    err = capsys.readouterr().err
    assert "it was adopted: merged checkpoints are evaluated on the run's held-out data" in err and err.count("\n") == 1


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_a_folder_of_torch_dcp_checkpoints(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    import torch.distributed.checkpoint as dcp

    src = tmp_path / "titan"
    for s in (100, 200, 300):  # what torchtitan / OLMo-core save: step-N folders of DCP shards
        dcp.save({"w": torch.full((2, 3), float(s))}, checkpoint_id=str(src / f"step-{s}"))
    log = tmp_path / "log.csv"
    log.write_text("step,lr,loss,eval_loss\n" + "".join(f"{s},0.001,{4 - s / 100},{3.9 - s / 100}\n" for s in range(50, 301, 50)))
    before = tree_hash(src)
    assert main(["adopt", str(src), "--out", str(tmp_path / "run"), "--log", str(log)]) == 0
    assert [c.step for c in Run.open(tmp_path / "run").checkpoints()] == [100, 200, 300]
    assert main(["merge", "--run", str(tmp_path / "run"), "--last", "2", "--every", "100", str(tmp_path / "m")]) == 0
    from safetensors.numpy import load_file

    assert load_file(str(tmp_path / "m" / "model.safetensors"))["w"][0, 0] == pytest.approx(250)
    assert tree_hash(src) == before
