"""One selection, two merges: the streaming engine and the in-memory merge agree bit for bit.

The checkpoints of a riverbed run are chosen once (``select_checkpoints``: the last N, V apart,
riverbed.merging.select.pick_spaced); ``riverbed.merge`` streams them through numpy kernels and
``merge_state_dicts`` (PMA monitor, merged initialisation, spike recovery) merges them in torch.
Both must produce the same bits, and both must match a float64 reference to float32 rounding.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import riverbed
from riverbed.checkpoints import layout
from riverbed.checkpoints.schema import CheckpointState
from riverbed.checkpoints.state import write_checkpoint
from riverbed.merging import merge_state_dicts, weights_for
from riverbed.merging.select import select_checkpoints

from .helpers import random_state, reference

# a grid every 100 steps with one checkpoint off it (250) and one missing (600)
STEPS = (100, 200, 250, 300, 400, 500, 700, 800)


def _run(tmp_path, dtype):
    run = tmp_path / "run"
    (run / layout.BRANCHES).mkdir(parents=True)
    for i, step in enumerate(STEPS):
        write_checkpoint(layout.checkpoint_dir(run, layout.MAIN, step), random_state(i, dtype), None,
                         CheckpointState(step=step, tokens=64 * step), rng={})
    return run


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("method", ["sma", "ema", "wma"])
def test_engine_and_memory_merge_agree_bit_for_bit(tmp_path, dtype, method):
    run = _run(tmp_path, dtype)
    picked = select_checkpoints(run, last=4, every=200)
    assert [p.step for p in picked] == [100, 300, 500, 800]  # 400 is closer than 200 to 500
    result = riverbed.merge(tmp_path / "out", [p.path for p in picked], method, verbose=False, progress=False,
                            alpha=0.3 if method == "ema" else None)
    assert result.weights == pytest.approx(weights_for(method, 4, alpha=0.3 if method == "ema" else None))
    streamed = load_file(str(tmp_path / "out" / layout.MODEL_FILE))
    states = [load_file(str(p.path / layout.MODEL_FILE)) for p in picked]
    in_memory = merge_state_dicts(states, result.weights, dtype="input")
    assert streamed.keys() == in_memory.keys()
    for k in streamed:
        assert streamed[k].dtype == in_memory[k].dtype == dtype, k
        assert torch.equal(streamed[k], in_memory[k]), f"{k}: engine and in-memory merge differ"
    ref = reference(states, result.weights)
    tol = 1e-6 if dtype == torch.float32 else 8e-3  # one rounding to the output dtype
    for k in streamed:
        assert torch.allclose(streamed[k].double(), ref[k], rtol=tol, atol=tol), k


def test_selection_says_when_the_spacing_differs_from_every(tmp_path, capsys):
    run = _run(tmp_path, torch.float32)
    from riverbed.cli.main import main

    assert main(["merge", str(tmp_path / "m"), "--run", str(run), "--last", "3", "--every", "100", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "selected 3 checkpoints" in out and "500, 700, 800" in out
    assert "note: spacing used: 200, 100 steps apart, not the --every 100 asked" in out
    import json

    sel = json.loads((tmp_path / "m" / "merge.json").read_text())["selection"]
    assert sel["spacing_used"] == [200, 100] and "not the --every 100" in sel["spacing_note"]
    assert main(["merge", str(tmp_path / "g"), "--run", str(run), "--last", "2", "--every", "100", "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().out  # 700, 800: on the grid
