import hashlib
import json

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.errors import CheckpointError, ConfigError, RunError
from riverbed.runs.fork import branch_eval_every, parse_length, plan_requests
from riverbed import fork_branches
from riverbed.orchestration.fork import run_requests
from riverbed.runs.metrics import read_metrics


def tree_digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_parse_length_golden():
    assert parse_length("200", 800, 64) == 200
    assert parse_length(7, 800, 64) == 7
    assert parse_length("1k steps", 800, 64) == 1000
    assert parse_length("2000 steps", 800, 64) == 2000
    assert parse_length("65536tok", 800, 64) == 1024
    assert parse_length("128tok", 800, 64) == 2
    assert parse_length("129 tokens", 800, 64) == 3  # ceil: at least that many tokens
    assert parse_length("1.5M tok", 800, 4096) == 367
    assert parse_length("20%", 800, 64) == 200  # 200 / (800 + 200) = 20 %
    assert parse_length("10%", 900, 64) == 100
    for bad, msg in (("0", "must be positive"), ("-5", "must be positive"), ("1.5", "ambiguous"), ("1.5 steps", "whole number"),
                     ("150%", "impossible"), ("0.01%", "less than one step"), ("abc", "expected a number"),
                     # a bare number that is not a plain integer needs a unit (2M once meant 2M *steps*)
                     ("2M", "ambiguous"), ("1e6", "ambiguous"), ("1k", "ambiguous"), ("2 parsecs", "unexpected 'parsecs'"),
                     ("1e400", "too large"), ("1e400 tok", "too large"), ("1e400 steps", "too large")):
        with pytest.raises(ConfigError, match=msg):
            parse_length(bad, 800, 64)


def test_fork_trains_branch_and_leaves_main_untouched(tiny_main, tiny_data):
    main_dir = layout.branch_dir(tiny_main.path, "main")
    before = tree_digest(main_dir)
    reqs = plan_requests(tiny_main, [10, 20], "linear", 6, min_ratio=0.1)
    recs = run_requests(tiny_main, reqs, progress=False, data=tiny_data)
    assert tree_digest(main_dir) == before  # byte for byte
    assert [r.name for r in recs] == ["linear-from10-len6", "linear-from20-len6"]
    tps = 4 * 32
    for rec, k in zip(recs, (10, 20)):
        assert rec.status == "finished" and rec.kind == "decay" and rec.parent == "main"
        assert rec.fork.step == k and rec.fork.tokens == k * tps and rec.fork.eval_loss is not None
        assert rec.final.step == k + 6 and rec.final.tokens == (k + 6) * tps
        assert rec.final.eval_loss is not None
        assert rec.schedule["type"] == "decay-branch" and rec.schedule["fork_step"] == k
        rows = [json.loads(x) for x in layout.metrics_path(tiny_main.path, rec.name).read_text().splitlines()]
        lrs = {r["step"]: r["lr"] for r in rows if r.get("kind") == "train"}
        # the last decay step runs at min_ratio * peak (riverbed's decay convention)
        assert lrs[k + 6] == pytest.approx(0.1 * 0.005)
        assert lrs[k + 1] < 0.005
    pts = tiny_main.finished_points()
    assert [(p.kind, p.tokens) for p in pts] == [("decay", 16 * tps), ("decay", 26 * tps)]
    assert pts[0].n_params == 102720


def _unchanged(run, before_manifest):
    assert (run.path / "run.json").read_text() == before_manifest
    assert sorted(p.name for p in (run.path / "branches").iterdir()) == ["main"]


def test_fork_errors_write_nothing(tiny_main, tiny_data):
    before = (tiny_main.path / "run.json").read_text()
    with pytest.raises(RunError, match=r"no checkpoint at step 15 \(saved steps: 10, 20, 30\)"):
        run_requests(tiny_main, plan_requests(tiny_main, [10, 15], "linear", 5), progress=False, data=tiny_data)
    _unchanged(tiny_main, before)
    with pytest.raises(ConfigError, match="unknown decay shape 'wiggly'"):
        run_requests(tiny_main, plan_requests(tiny_main, [10], "wiggly", 5), progress=False, data=tiny_data)
    _unchanged(tiny_main, before)
    with pytest.raises(RunError, match="'main'"):
        run_requests(tiny_main, plan_requests(tiny_main, [10], "linear", 5, name="main"), progress=False)
    with pytest.raises(RunError, match="requested twice"):
        run_requests(tiny_main, plan_requests(tiny_main, [10], "linear", 5) * 2, progress=False)
    _unchanged(tiny_main, before)


def test_corrupt_fork_checkpoint_names_file(tiny_main, tiny_data):
    before = (tiny_main.path / "run.json").read_text()
    model = layout.checkpoint_dir(tiny_main.path, "main", 20) / layout.MODEL_FILE
    model.write_bytes(model.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="step_0000000020/model.safetensors"):
        run_requests(tiny_main, plan_requests(tiny_main, [20], "linear", 5), progress=False, data=tiny_data)
    _unchanged(tiny_main, before)


def test_existing_branch_name(tiny_main, tiny_data):
    run_requests(tiny_main, plan_requests(tiny_main, [10], "linear", 3, name="b"), progress=False, data=tiny_data)
    with pytest.raises(RunError, match=r"branch named 'b' already exists \(finished"):
        run_requests(tiny_main, plan_requests(tiny_main, [20], "linear", 3, name="b"), progress=False, data=tiny_data)
    # a finished identical request is returned as it is when re-running a plan
    again = run_requests(tiny_main, plan_requests(tiny_main, [10], "linear", 3, name="b"), progress=False,
                         skip_finished=True)
    assert again[0].status == "finished"


def test_run_fork_api(tiny_main):
    recs = fork_branches(tiny_main, 20, "cosine", "2 tok", progress=False)  # 2 tokens -> 1 step
    assert recs[0].name == "cosine-from20-len1" and recs[0].final.step == 21


# Decay branches are evaluated often enough to draw their drop (about ten times by default).
def _evals(run, name):
    return [r["step"] for r in read_metrics(layout.metrics_path(run.path, name)) if r.get("kind") == "eval"]


def test_branch_eval_every_values():
    assert [branch_eval_every(n, 0) for n in (1, 9, 10, 25, 200)] == [1, 1, 1, 2, 20]
    assert branch_eval_every(25, 7) == 7
    with pytest.raises(RunError, match="--eval-every -1"):
        branch_eval_every(10, -1)


def test_cli_default_gives_ten_evaluations(tiny_main, capsys):
    # the run's eval_every is 10: a 12-step branch would get one evaluation at its end
    assert main(["branch", str(tiny_main.path), "--from", "20", "--shape", "linear", "--length", "12", "--no-progress"]) == 0
    assert _evals(tiny_main, "linear-from20-len12") == list(range(21, 33))
    assert main(["branch", str(tiny_main.path), "--from", "10", "--shape", "linear", "--length", "6",
                 "--eval-every", "3", "--no-progress"]) == 0
    assert _evals(tiny_main, "linear-from10-len6") == [12, 15, 16]


def test_api_keeps_the_config_cadence_unless_asked(tiny_main):
    run_requests(tiny_main, plan_requests(tiny_main, [20], "linear", 12), progress=False)
    assert _evals(tiny_main, "linear-from20-len12") == [30, 32]
    with pytest.raises(RunError, match="--eval-every"):
        run_requests(tiny_main, plan_requests(tiny_main, [10], "linear", 5, name="x"), progress=False, eval_every=-2)
    assert "x" not in tiny_main.manifest.branches
