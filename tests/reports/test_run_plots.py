import json

from riverbed.checkpoints import layout
from riverbed.reports.run_plots import Curves, branch_curves, plot_curves, plot_run
from riverbed.runs import BranchRecord, Point, Run


def _metrics(run_dir, branch, rows):
    path = layout.metrics_path(run_dir, branch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "train", "st')  # torn last line


def _run(tmp_path):
    run = Run.create(tmp_path / "r", {"model": {}})
    run.add_branch(BranchRecord("main", "main", {"type": "warmup-stable"}, status="stopped"))
    run.add_branch(BranchRecord("d", "decay", {"type": "decay-branch"}, parent="main", fork=Point(2, 200, 1.0, 3.0)))
    _metrics(run.path, "main", [
        {"kind": "event", "step": 0, "tokens": 0, "event": "start"},
        {"kind": "train", "step": 1, "tokens": 100, "lr": 0.5, "loss": 4.0},
        {"kind": "train", "step": 2, "tokens": 200, "lr": 1.0, "loss": 3.5},
        {"kind": "eval", "step": 2, "tokens": 200, "eval_loss": 3.0},
        {"kind": "train", "step": 3, "tokens": 300, "lr": 1.0, "loss": 3.4},
        {"kind": "eval", "step": 3, "tokens": 300, "eval_loss": 2.9},
    ])
    _metrics(run.path, "d", [
        {"kind": "train", "step": 3, "tokens": 300, "lr": 0.5, "loss": 3.0},
        {"kind": "eval", "step": 3, "tokens": 300, "eval_loss": 2.5},
    ])
    return run


def test_branch_curves_start_at_the_fork(tmp_path):
    run = _run(tmp_path)
    main = branch_curves(run.path, "main")
    assert (main.lr_tokens, main.lr) == ([100, 200, 300], [0.5, 1.0, 1.0])
    assert (main.loss_tokens, main.loss) == ([200, 300], [3.0, 2.9])
    d = branch_curves(run.path, "d", "decay", run.branch("d").fork)
    assert (d.loss_tokens, d.loss) == ([200, 300], [3.0, 2.5])  # the fork point joins the branch to main
    assert branch_curves(run.path, "missing").lr == []


def test_plot_run_writes_png_atomically(tmp_path):
    run = _run(tmp_path)
    out = plot_run(run.path, tmp_path / "plots" / "tree.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["tree.png"]  # no temporary left behind
    svg = plot_curves([Curves("main", "main", [1, 2], [1.0, 1.0], [1, 2], [3.0, 2.0])], tmp_path / "x.svg")
    assert svg.read_text().lstrip().startswith("<?xml")


def test_run_curves_join_branch_lr_to_the_fork(tmp_path):
    from riverbed.reports.run_plots import run_curves

    run = _run(tmp_path)
    curves = {c.name: c for c in run_curves(run.path)}
    assert (curves["d"].lr_tokens, curves["d"].lr) == ([200, 300], [1.0, 0.5])
