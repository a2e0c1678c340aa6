"""The retention plan (riverbed.runs.retention) and the pruning callback (riverbed.training.retention_callback)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from riverbed.checkpoints import layout
from conftest import TINY_TOML, TWELVE_STEPS
from riverbed.cli.main import main
from riverbed.config import load_config_text
from riverbed.errors import ConfigError
from riverbed.runs.retention import PlannedDecay, RetentionPlan, parse_keep
from riverbed.runs.metrics import read_metrics

SRC = Path(__file__).resolve().parents[2] / "src"



def test_rules_parse_and_bad_rules_name_the_key():
    r = parse_keep(["merge=4,100", "guard=2", "emulate", "steps=30,10"])
    assert (r.merge, r.guard, r.emulate, r.steps) == ((4, 100), 2, True, (10, 30))
    for bad, msg in (("merge=4", "expected merge=N,V"), ("guard=0", "must be >= 1"), ("keep=1", "unknown rule"),
                     ("emulate=3", "takes no value"), ("steps=a", "not a whole number")):
        with pytest.raises(ConfigError, match=f"train.keep: .*{msg}"):
            parse_keep([bad])


def test_needed_checkpoints_are_never_pruned_whatever_exists():
    plan = RetentionPlan(parse_keep(["merge=3,20", "guard=2", "emulate", "steps=50"]),
                         (PlannedDecay(100, 40), PlannedDecay(200, 40)), ckpt_every=10)
    needs = set(plan.static_needs())
    assert needs == {50, 60, 80, 100, 110, 120, 130, 140, 160, 180, 200, 210, 220, 230, 240}
    rng = random.Random(0)
    for _ in range(200):
        existing = sorted(rng.sample(range(0, 300, 10), rng.randint(1, 30)))
        protected = set(rng.sample(existing, min(2, len(existing))))
        kept, prune = plan.keep(existing, protected)
        assert not (set(prune) & (needs | protected)), (existing, prune)
        assert existing[-1] in kept and set(kept) | set(prune) == set(existing)


def test_a_need_off_the_save_grid_names_the_step():
    with pytest.raises(ConfigError, match="merge=2,15 before the fork at 100 needs the main checkpoint at step 85"):
        RetentionPlan(parse_keep(["merge=2,15"]), (PlannedDecay(100, 40),), ckpt_every=10).static_needs()
    with pytest.raises(ConfigError, match="emulate: the decay from 100 .*steps never saved: 110, 130"):
        RetentionPlan(parse_keep(["emulate"]), (PlannedDecay(100, 40),), ckpt_every=20).static_needs()


def test_plan_keep_for_lists_checkpoints_and_disk(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["plan", "--budgets", "500,1000", "--keep-for", "merge=2,50", "--keep-for", "guard=2",
                 "--ckpt-every", "50", "--n-params", "1000", "--json", "-o", str(out)]) == 0
    r = json.loads(capsys.readouterr().out)["retention"]
    # forks at 450 and 900; merges 400+450 and 850+900; main ends at 900 (newest two: 850, 900)
    assert r["kept_steps"] == [400, 450, 850, 900] and r["saved"] == 18
    assert (r["kept_bytes"], r["all_bytes"]) == (4 * 12_000, 18 * 12_000)
    assert json.loads(out.read_text())["keep"] == ["merge=2,50", "guard=2"]
    # `[train] keep = ["plan=plan.json"]` reads the plan's branches and the rules it recorded
    from riverbed.runs.retention import build_retention

    rp = build_retention([f"plan={out}"], ckpt_every=50)
    assert [d.fork for d in rp.decays] == [450, 900] and (rp.rules.merge, rp.rules.guard) == ((2, 50), 2)
    assert main(["plan", "--budgets", "500,1000", "--keep-for", "merge=2,50", "--ckpt-every", "50"]) == 0
    assert "keeps 4 of 18 main checkpoints (give --n-params" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    assert main(["plan", "--budgets", "500,1000", "--keep-for", "merge=2,30", "--ckpt-every", "50", "-o", str(bad)]) == 2
    assert "--keep-for: merge=2,30 before the fork at 450 needs the main checkpoint at step 420" in capsys.readouterr().err
    assert not bad.exists()


def _cfg(tmp_path: Path) -> Path:
    """The 12-step run (TWELVE_STEPS) keeping ``merge=2,4`` and ``steps=6``, as a config file."""
    p = tmp_path / "c.toml"
    p.write_text(load_config_text(TINY_TOML, [*TWELVE_STEPS, 'train.keep=["merge=2,4", "steps=6"]']).to_toml())
    return p


def test_training_prunes_what_no_rule_needs_and_logs_it(tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(_cfg(tmp_path)), "--run", str(run), "--no-progress"]) == 0
    # steps=6 kept; merge=2,4 of the newest: every checkpoint of the last 8 steps (6, 8, 10, 12)
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [6, 8, 10, 12]
    pruned = [r["pruned_step"] for r in read_metrics(layout.metrics_path(run, "main")) if r.get("event") == "prune"]
    assert sorted(pruned) == [2, 4]
    assert not list(layout.checkpoints_dir(run, "main").glob(".pruning-*"))
    # a branch forked at 8 protects its fork once main moves on (8 leaves the rolling merge window);
    # 12 ended the first segment (state.json reason "final") and stays too
    assert main(["branch", str(run), "--from", "8", "--shape", "linear", "--length", "2", "--no-progress"]) == 0
    assert main(["train", "--run", str(run), "--set", "train.max_steps=20", "--no-progress"]) == 0
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [6, 8, 12, 14, 16, 18, 20]


def test_bad_keep_exits_2_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(_cfg(tmp_path)), "--run", str(run), "--set", 'train.keep=["mrge=2"]', "--no-progress"]) == 2
    assert "train.keep: unknown rule 'mrge=2'" in capsys.readouterr().err
    plan = tmp_path / "plan.json"
    assert main(["plan", "--budgets", "8,12", "--decay-fraction", "0.25", "--warmup", "2", "-o", str(plan)]) == 0
    assert main(["train", str(_cfg(tmp_path)), "--run", str(run), "--plan", str(plan), "--set", 'train.keep=["merge=2,3"]',
                 "--no-progress"]) == 2
    assert "needs the main checkpoint at step 3, which is never saved" in capsys.readouterr().err
    assert not run.exists()


CHILD = """
import os, signal, sys
import riverbed.training.retention_callback as rc
from riverbed.config import load_config
from riverbed.training.loop import train_branch

real = rc.shutil.rmtree
def rmtree_then_die(path, *a, **k):
    files = sorted(p for p in __import__("pathlib").Path(path).rglob("*") if p.is_file())
    files[0].unlink()                      # part of the deletion done ...
    os.kill(os.getpid(), signal.SIGKILL)   # ... then kill -9 mid-prune
rc.shutil.rmtree = rmtree_then_die
train_branch(load_config(sys.argv[1]), sys.argv[2], "main", until_step=int(sys.argv[3]), progress=False)
"""


@pytest.mark.slow
def test_kill_9_mid_prune_keeps_every_needed_checkpoint_and_the_next_run_finishes(tmp_path):
    from riverbed.config import load_config
    from riverbed.training.loop import train_branch

    cfg_path, run = _cfg(tmp_path), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(cfg_path), str(run), "12"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpts = layout.checkpoints_dir(run, "main")
    # killed while pruning step 2 at the checkpoint of step 10: step 2 is out of the namespace, the rest whole
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [4, 6, 8, 10]
    assert [p.name for p in ckpts.glob(".pruning-*")] == [".pruning-" + layout.checkpoint_name(2)]
    for step in (4, 6, 8, 10):
        assert json.loads((ckpts / layout.checkpoint_name(step) / layout.STATE_FILE).read_text())["step"] == step
    # the next run resumes from 10, finishes the interrupted prune first, and keeps what the plan needs
    res = train_branch(load_config(cfg_path), run, "main", until_step=12, progress=False)
    assert res.step == 12
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [6, 8, 10, 12]
    assert not list(ckpts.glob(".pruning-*"))
    events = [r for r in read_metrics(layout.metrics_path(run, "main")) if r.get("kind") == "event"]
    assert any(e.get("event") == "prune-finished" for e in events)
