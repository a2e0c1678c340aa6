"""A nanoGPT-style run end to end: its ckpt_<iter>.pt files adopted with its log.csv, a decay
branch trained by the same script (``decay`` mode), the source untouched. Needs the merge reader
of nanoGPT checkpoints (the ``model`` entry of a ckpt.pt, riverbed.checkpoints.formats)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from riverbed.checkpoints.formats import open_input
from riverbed.cli.main import main
from riverbed.errors import CheckpointError
from riverbed.runs import Run
from tests.orchestration.conftest import RECIPES, tree_hash


@pytest.fixture(scope="module")
def nanogpt_out(tmp_path_factory, recipe_env_module):
    import torch

    probe = tmp_path_factory.mktemp("probe") / "ckpt_1.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "iter_num": 1}, probe)
    try:
        open_input(probe)
    except CheckpointError as exc:
        pytest.skip(f"the merge reader does not read nanoGPT checkpoints here ({exc})")
    out = tmp_path_factory.mktemp("ngpt") / "out"
    subprocess.run([sys.executable, str(RECIPES / "nanogpt.py"), "main", str(out)], check=True, env=recipe_env_module)
    return out


@pytest.fixture(scope="module")
def recipe_env_module():
    import os
    from pathlib import Path

    from tests.orchestration.conftest import TINY

    src = str(Path(__file__).parents[2] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TINY), src])}


def test_nanogpt_run_adopted_and_branched_by_its_own_script(nanogpt_out, tmp_path, recipe_env, capsys):
    before = tree_hash(nanogpt_out)
    run_dir = tmp_path / "run"
    assert main(["adopt", str(nanogpt_out), "--out", str(run_dir), "--log", str(nanogpt_out / "log.csv"),
                 "--tokens-per-step", "192"]) == 0
    run = Run.open(run_dir)
    assert [c.step for c in run.checkpoints()] == [8, 16, 24] and run.branch("main").schedule["type"] == "warmup-stable"
    cmd = f"{sys.executable} {RECIPES / 'nanogpt.py'} decay {{fork}} {{schedule}} {{out}}"
    assert main(["branch", str(run_dir), "--from", "16", "--shape", "linear", "--length", "8", "--command", cmd,
                 "--no-progress"]) == 0, capsys.readouterr().err
    b = Run.open(run_dir).branch("linear-from16-len8")
    assert b.status == "finished" and b.final.step == 24 and b.final.eval_loss is not None
    assert main(["merge", "--run", str(run_dir), "--last", "2", "--every", "8", str(tmp_path / "merged")]) == 0
    assert tree_hash(nanogpt_out) == before
