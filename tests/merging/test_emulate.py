"""`riverbed merge --run RUN --emulate-decay SHAPE --from STEP --length N OUT` and its Python API."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TINY_TOML, TWELVE_STEPS
from riverbed.cli.main import main
from riverbed.errors import MergeError
from riverbed.orchestration.emulate import emulate_decay, emulation_weights, merge_emulated_decay
from riverbed.merging.weights import decay_weights



@pytest.fixture(scope="module")
def run12(tmp_path_factory):
    """A main branch of 12 steps with a checkpoint every 2 steps."""
    from riverbed.config import load_config_text
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    cfg = load_config_text(TINY_TOML, TWELVE_STEPS)
    run = Run.create(tmp_path_factory.mktemp("emu") / "run", cfg)
    train_main(cfg, run.path, run, until_step=12, progress=False)
    return run.path


def test_every_step_saved_gives_the_per_step_weights():
    r = [1.0, 0.6, 0.2]
    e = emulation_weights(r, fork=10, saved=range(0, 20))
    assert e.steps == (11, 12, 13)  # c_0 = 0: the fork carries no weight and is not read
    assert e.weights == pytest.approx(decay_weights(r)[1:])


def test_interpolation_rule_keeps_total_and_mean_step():
    r = [1.0 - j / 8 for j in range(8)]  # linear, 8 updates
    per = np.array(decay_weights(r))
    e = emulation_weights(r, fork=100, saved=[100, 102, 104, 106, 108], max_gap=2)
    assert sum(e.weights) == pytest.approx(1.0)
    assert np.dot(e.weights, e.steps) == pytest.approx(np.dot(per, np.arange(100, 109)))


def test_missing_end_and_coarse_spacing_name_the_steps():
    with pytest.raises(MergeError, match=r"step\(s\) 110 not saved"):
        emulation_weights([1.0] * 10, fork=100, saved=[100, 105])
    with pytest.raises(MergeError, match=r"up to 8 steps apart.*missing steps: 102, 104, 106"):
        emulation_weights([1.0 - j / 8 for j in range(8)], fork=100, saved=[100, 108], max_gap=2)


def test_from_a_run_matches_the_decay_schedule(run12):
    e = emulate_decay(run12, 4, "linear", 8)
    assert e.steps[-1] == 12 and all(s % 2 == 0 for s in e.steps)
    assert sum(e.weights) == pytest.approx(1.0)
    with pytest.raises(MergeError, match="needs the main-branch checkpoints at steps 4 and 16"):
        emulate_decay(run12, 4, "linear", 12)


def test_cli_writes_the_merge_and_records_the_emulation(run12, tmp_path, capsys):
    out = tmp_path / "emu"
    assert main(["merge", str(out), "--run", str(run12), "--emulate-decay", "1-sqrt", "--from", "4", "--length", "8",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "emulating a 1-sqrt decay of 8 steps from step 4" in text and "weights (oldest first)" in text
    rec = json.loads((out / "merge.json").read_text())
    assert rec["method"] == "weights" and rec["selection"]["emulate_decay"]["shape"] == "1-sqrt"
    assert rec["steps"][-1] == 12
    # the merged tensors are the weighted sum of the checkpoints
    from safetensors.numpy import load_file

    merged = load_file(str(out / "model.safetensors"))
    name = next(iter(merged))
    ref = sum(w * load_file(p + "/model.safetensors")[name].astype(np.float64) for w, p in zip(rec["effective_weights"], rec["inputs"]))
    np.testing.assert_allclose(merged[name], ref, rtol=1e-5, atol=1e-6)
    # a replay reproduces it
    assert main(["merge", "--recipe", str(out / "merge.json"), str(tmp_path / "again"), "--no-progress"]) == 0


def test_cli_bad_input_exits_2_and_writes_nothing(run12, tmp_path, capsys):
    out = tmp_path / "emu"
    assert main(["merge", str(out), "--run", str(run12), "--emulate-decay", "linear", "--from", "5", "--length", "4"]) == 2
    assert "step(s) 5" in capsys.readouterr().err
    assert main(["merge", str(out), "--run", str(run12), "--emulate-decay", "linear", "--from", "4"]) == 2
    assert "needs --run RUN --from STEP --length N" in capsys.readouterr().err
    assert main(["merge", str(out), "--run", str(run12), "--emulate-decay", "linear", "--from", "4", "--length", "8",
                 "--last", "2"]) == 2
    assert "--last cannot be combined" in capsys.readouterr().err
    assert main(["merge", str(out), "--run", str(run12), "--emulate-decay", "nope", "--from", "4", "--length", "8"]) == 2
    assert "unknown decay shape" in capsys.readouterr().err
    assert not out.exists()


def test_python_api_dry_run(run12, tmp_path):
    r = merge_emulated_decay(tmp_path / "x", run12, 4, "linear", "4 steps", max_gap=2, dry_run=True, verbose=False)
    assert r.dry_run and sum(r.weights) == pytest.approx(1.0) and not (tmp_path / "x").exists()
