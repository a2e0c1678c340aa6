"""`predict fit` / `predict curve` on the logs users have: a W&B export with its column names,
trainer_state.json, TensorBoard events -- the same fit as from riverbed's own step,lr,loss CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from riverbed.cli.main import main

DATA = Path(__file__).parents[1] / "predict" / "data" / "mpl400"
NAMES = ("cosine_24000", "wsdcon_9")


def _rows(name):
    with open(DATA / f"{name}.csv") as f:
        return [(int(r["step"]), float(r["lr"]), float(r["loss"])) for r in csv.DictReader(f)]


def _fit(tmp_path, capsys, srcs, *flags):
    out = tmp_path / f"law{len(list(tmp_path.iterdir()))}.json"
    assert main(["predict", "fit", *map(str, srcs), "--law", "tissue", "-o", str(out), *flags]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())["params"]


def test_wandb_trainer_state_and_tensorboard_logs_fit_like_the_csv(tmp_path, capsys):
    ref = _fit(tmp_path, capsys, [DATA / f"{n}.csv" for n in NAMES])
    wandb, states = [], []
    for n in NAMES:
        p = tmp_path / f"{n}_wandb.csv"  # one row per logging call: LR and loss in separate rows
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Name", "_step", "trainer/learning_rate", "train/loss", "_runtime"])
            for s, lr, loss in _rows(n):
                w.writerow(["run", s, lr, "", ""])
                w.writerow(["run", s, "", loss, 1.5])
        wandb.append(p)
        d = tmp_path / f"{n}_trainer"
        d.mkdir()
        hist = [{"step": s, "learning_rate": lr, "loss": loss, "epoch": 0.0} for s, lr, loss in _rows(n)]
        (d / "trainer_state.json").write_text(json.dumps({"log_history": hist}))
        states.append(d / "trainer_state.json")
    got = _fit(tmp_path, capsys, wandb)
    assert got == pytest.approx(ref, rel=1e-9)
    assert _fit(tmp_path, capsys, states) == pytest.approx(ref, rel=1e-9)


def test_tensorboard_events_and_column_flags(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    ref = _fit(tmp_path, capsys, [DATA / f"{n}.csv" for n in NAMES])
    dirs = []
    for n in NAMES:
        w = SummaryWriter(str(tmp_path / f"tb_{n}"))
        for s, lr, loss in _rows(n):
            w.add_scalar("optimizer/step_size", lr, s)
            w.add_scalar("objective", loss, s)
        w.close()
        dirs.append(tmp_path / f"tb_{n}")
    # TensorBoard stores float32: the fit agrees to float32 precision of the inputs.
    got = _fit(tmp_path, capsys, dirs, "--lr-col", "optimizer/step_size", "--loss-col", "objective")
    assert got == pytest.approx(ref, rel=1e-3)


def test_a_log_without_lr_exits_2_naming_the_file(tmp_path, capsys):
    p = tmp_path / "noLR.csv"
    p.write_text("_step,train/loss\n1,3.0\n2,2.9\n")
    assert main(["predict", "fit", str(p)]) == 2
    err = capsys.readouterr().err
    assert "noLR.csv" in err and "missing column(s) lr" in err and "--lr-col" in err


def test_rows_inside_the_warmup_are_said_on_stderr(tmp_path, capsys):
    law = tmp_path / "law.json"
    assert main(["predict", "fit", *[str(DATA / f"{n}.csv") for n in NAMES], "--law", "tissue", "-o", str(law)]) == 0
    p = tmp_path / "warm.csv"
    p.write_text("step,lr\n100,0.0001\n200,0.0002\n300,0.0003\n400,0.0003\n500,0.0002\n")
    capsys.readouterr()
    assert main(["predict", "curve", str(law), "--lr", str(p), "--json"]) == 0
    cap = capsys.readouterr()
    assert "steps up to 300 are taken as the warmup" in cap.err
    assert [r["step"] for r in json.loads(cap.out)["rows"]] == [300, 400, 500]
