import json

import pytest
import torch
from safetensors.torch import load_file

from riverbed.checkpoints import layout
from riverbed.runs import BranchRecord, Run
from riverbed.orchestration.drive import milestones, root_kind, stops, train_main
from riverbed.schedules import WSDS, CyclicCosine, WarmupStable

from .conftest import tiny_config

WSDS_TOML = 'type = "wsds"\nbudgets = [6, 12, 18]\ndecays = [2, 2, 3]\nwarmup = 2'


def test_stops_golden():
    s = WSDS(budgets=(6, 12, 18), warmup=2, decays=(2, 2, 3))
    assert milestones(s) == [6, 12, 18]
    assert stops(s, 0, 18) == [6, 12, 18]
    assert stops(s, 6, 18, extra=[9]) == [9, 12, 18]
    assert stops(s, 18, 18) == []
    assert stops(WarmupStable(warmup=2), 0, None, extra=[5]) == [5, None]
    assert root_kind(CyclicCosine(budgets=(4, 8))) == "cyclic" and root_kind(s) == "wsds"


def _lrs(run_dir):
    rows = [json.loads(x) for x in layout.metrics_path(run_dir, "main").read_text().splitlines()]
    return {r["step"]: r["lr"] for r in rows if r.get("kind") == "train"}


def test_wsds_run_decays_at_each_budget_and_resumes_at_peak(tmp_path, tiny_data):
    cfg = tiny_config(WSDS_TOML, eval_every=0, ckpt_every=0)
    run = Run.create(tmp_path / "w", cfg)
    res = train_main(cfg, run.path, run, progress=False, data=tiny_data)
    assert res.step == 18
    main = run.branch("main")
    assert main.kind == "wsds" and main.status == "finished" and main.schedule["type"] == "wsds"
    assert [m.step for m in main.milestones] == [6, 12, 18]
    assert all(m.eval_loss is not None for m in main.milestones)
    assert [m.checkpoint for m in main.milestones][0] == "branches/main/checkpoints/step_0000000006"
    pts = run.finished_points()
    assert [(p.kind, p.tokens) for p in pts] == [("wsds", 6 * 128), ("wsds", 12 * 128), ("wsds", 18 * 128)]
    lr = _lrs(run.path)  # row "step" = updates done; its lr = that of update step-1
    assert lr[6] == 0.0 and lr[12] == 0.0 and lr[18] == 0.0  # each budget's last update at the minimum
    assert lr[7] == pytest.approx(0.005) and lr[13] == pytest.approx(0.005)  # straight back to the peak
    assert lr[11] == pytest.approx(0.0025)

    # Segments resume exactly (weights, AdamW state, RNG): same weights as one uninterrupted branch.
    from riverbed.training import train_branch

    other = Run.create(tmp_path / "one", cfg)
    train_branch(cfg, other.path, "main", until_step=18, progress=False, data=tiny_data)
    a = load_file(str(layout.checkpoint_dir(run.path, "main", 18) / layout.MODEL_FILE))
    b = load_file(str(layout.checkpoint_dir(other.path, "main", 18) / layout.MODEL_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    oa = load_file(str(layout.checkpoint_dir(run.path, "main", 18) / layout.OPTIMIZER_FILE))
    ob = load_file(str(layout.checkpoint_dir(other.path, "main", 18) / layout.OPTIMIZER_FILE))
    assert all(torch.equal(oa[k], ob[k]) for k in oa)


def test_cyclic_and_cosine_runs(tmp_path, tiny_data):
    cyc = tiny_config('type = "cyclic-cosine"\nbudgets = [5, 10]\nwarmup = 1\nmin_ratio = 0.1',
                      eval_every=0, ckpt_every=0)
    run = Run.create(tmp_path / "c", cyc)
    train_main(cyc, run.path, run, progress=False, data=tiny_data)
    assert [(p.kind, p.tokens) for p in run.finished_points()] == [("cyclic", 640), ("cyclic", 1280)]
    assert _lrs(run.path)[5] == pytest.approx(0.1 * 0.005)

    cos = tiny_config('type = "cosine"\nsteps = 6\nwarmup = 1\nmin_ratio = 0.1', eval_every=0, ckpt_every=0)
    run = Run.create(tmp_path / "cos", cos)
    train_main(cos, run.path, run, progress=False, data=tiny_data)
    pts = run.finished_points()
    assert [(p.branch, p.kind, p.tokens) for p in pts] == [("main", "cosine", 6 * 128)]
    assert run.branch("main").status == "finished"


def test_indefinite_main_is_never_a_finished_model(tmp_path, tiny_data):
    cfg = tiny_config(eval_every=0, ckpt_every=0)
    run = Run.create(tmp_path / "m", cfg)
    with run.training(BranchRecord("main", "main", {})):
        train_main(cfg, run.path, run, until_step=4, extra_stops=[2], progress=False, data=tiny_data)
    assert [c.step for c in run.checkpoints()] == [2, 4]  # a stop is always a checkpoint
    assert run.branch("main").status == "stopped" and run.finished_points() == []
