"""Training logs: W&B-style CSV/TSV (blank cells, text columns), JSONL, trainer_state.json, TensorBoard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from riverbed.errors import LogError
from riverbed.runs.logs.read import LogColumns, read_log


def test_wandb_csv_export_skips_blank_cells_and_text_columns(tmp_path):
    p = tmp_path / "wandb.csv"
    p.write_text("Name,_step,train/loss,trainer/learning_rate,eval/loss\n"
                 "run-a,0,,1e-4,\nrun-a,10,3.0,1e-3,\nrun-a,20,,1e-3,2.9\nrun-a,30,2.5,,\n")
    log = read_log(p)
    assert log.kind == "csv"
    assert log.loss.steps.tolist() == [10, 30] and log.loss.values.tolist() == [3.0, 2.5]
    assert log.lr.steps.tolist() == [0, 10, 20] and log.lr.column == "trainer/learning_rate"
    assert log.eval_loss.at(20) == 2.9 and log.eval_loss.at(10) is None


def test_tsv_and_explicit_columns(tmp_path):
    p = tmp_path / "log.tsv"
    p.write_text("it\trate\tobjective\n1\t0.5\t4.0\n2\t0.5\t3.5\n")
    log = read_log(p, LogColumns(step="it", lr="rate", loss="objective"))
    assert log.lr.values.tolist() == [0.5, 0.5] and log.loss.steps.tolist() == [1, 2]


def test_a_step_logged_twice_keeps_its_last_value(tmp_path):
    p = tmp_path / "resumed.csv"
    p.write_text("step,lr,loss\n10,1,3.0\n20,1,2.9\n20,1,2.8\n")
    assert read_log(p).loss.values.tolist() == [3.0, 2.8]


def test_a_bad_value_in_a_role_column_names_the_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("step,lr,loss\n10,1,3.0\n20,x,2.9\n")
    with pytest.raises(LogError, match=r"bad.csv: line 3: column 'lr': 'x' is not a number"):
        read_log(p)


def test_a_log_without_lr_says_what_it_has(tmp_path):
    p = tmp_path / "noLR.csv"
    p.write_text("step,loss\n10,3.0\n")
    with pytest.raises(LogError, match=r"noLR.csv: missing column\(s\) lr \(learning rate\) \(it has: step, loss\).*--lr-col"):
        read_log(p).require("lr", "loss")


def test_trainer_state_log_history_without_the_final_summary(tmp_path):
    history = [{"step": 5, "loss": 3.0, "learning_rate": 1e-3, "epoch": 0.1, "num_input_tokens_seen": 640},
               {"step": 5, "eval_loss": 3.1, "eval_runtime": 0.2},
               {"step": 10, "loss": 2.8, "learning_rate": 5e-4},
               {"step": 10, "train_runtime": 1.0, "train_loss": 2.9, "total_flos": 1.0, "train_samples_per_second": 9.0}]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 10, "log_history": history}))
    log = read_log(tmp_path)  # a folder holding trainer_state.json
    assert log.kind == "trainer_state"
    assert log.loss.values.tolist() == [3.0, 2.8] and log.eval_loss.at(5) == 3.1 and log.tokens.at(5) == 640


def test_jsonl(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1, "lr": 0.1, "loss": 2.0}\n\n{"step": 2, "lr": 0.1, "loss": 1.9, "extra": {"a": 1}}\n')
    assert read_log(p).loss.values.tolist() == [2.0, 1.9]
    p.write_text('{"step": 1}\nnot json\n')
    with pytest.raises(LogError, match="m.jsonl: line 2: not JSON"):
        read_log(p)


def test_tensorboard_events_written_by_summarywriter(tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "tb"))
    for s in range(0, 50, 10):
        w.add_scalar("train/loss", 3.0 - s / 100, s)
        w.add_scalar("train/learning_rate", 1e-3 * min(1.0, (s + 10) / 20), s)
    w.close()
    log = read_log(tmp_path / "tb")
    assert log.kind == "tensorboard" and log.lr.steps.tolist() == [0, 10, 20, 30, 40]
    np.testing.assert_allclose(log.loss.values, [3.0, 2.9, 2.8, 2.7, 2.6], rtol=1e-6)
    with pytest.raises(LogError, match="carry their own steps"):
        read_log(tmp_path / "tb", LogColumns(step="x"))


def test_unknown_formats_and_empty_folders_are_named(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\0")
    with pytest.raises(LogError, match="x.bin: unknown log format"):
        read_log(tmp_path / "x.bin")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LogError, match="empty: a folder with neither trainer_state.json nor TensorBoard"):
        read_log(tmp_path / "empty")
