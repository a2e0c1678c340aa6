"""`riverbed init-from-merge` and `[init] from_merge`: a new run starting from a merge."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from riverbed.checkpoints import layout
from riverbed.checkpoints.state import read_state
from riverbed.cli.main import main
from riverbed.training import read_metrics, train_branch


@pytest.fixture
def source_run(tmp_path, tiny_run_config):
    """A run with checkpoints at steps 2, 4, 6, 8 (config.toml + run.json, like `riverbed train`)."""
    from riverbed.runs import Run

    train = dataclasses.replace(tiny_run_config.train, max_steps=8, ckpt_every=2, threads=1)
    cfg = dataclasses.replace(tiny_run_config, train=train)
    Run.create(tmp_path / "src", cfg)
    train_branch(cfg, tmp_path / "src", "main", until_step=8, progress=False)
    return tmp_path / "src"


def _ckpt(run, step, file=layout.MODEL_FILE):
    return load_file(layout.checkpoint_dir(run, "main", step) / file)


def test_init_from_merge_writes_the_merge_and_trains_from_it(tmp_path, source_run, capsys):
    new = tmp_path / "ft"
    rc = main(["init-from-merge", str(new), "--run", str(source_run), "--last", "3", "--method", "wma",
               "--optimizer-state", "average", "--steps", "2", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "wma merge of 3 checkpoints" in out and "0.500000  step_0000000008" in out
    merged = load_file(layout.init_merge_dir(new) / layout.MODEL_FILE)
    a, b, c = (_ckpt(source_run, s) for s in (4, 6, 8))
    for k in merged:  # golden: WMA weights 1/6, 2/6, 3/6 (oldest first)
        torch.testing.assert_close(merged[k], (a[k] + 2 * b[k] + 3 * c[k]) / 6, rtol=0, atol=1e-6)
    opt = load_file(layout.init_merge_dir(new) / layout.OPTIMIZER_FILE)
    oa, ob, oc = (_ckpt(source_run, s, layout.OPTIMIZER_FILE) for s in (4, 6, 8))
    key = next(k for k in opt if k.endswith(".exp_avg_sq"))
    torch.testing.assert_close(opt[key], (oa[key] + 2 * ob[key] + 3 * oc[key]) / 6, rtol=0, atol=1e-9)
    assert torch.equal(opt[key.replace("exp_avg_sq", "step")], oc[key.replace("exp_avg_sq", "step")])
    state = read_state(layout.init_merge_dir(new))
    assert state.step == 0 and state.init_from_merge["checkpoints"] == [4, 6, 8]
    # the new run trained 2 steps from the merge, numbering from 0
    assert [r.step for r in layout.list_checkpoints(new, "main")] == [2]
    rows = read_metrics(layout.metrics_path(new, "main"))
    assert rows[0]["event"] == "init"
    from riverbed.runs import Run

    ev = Run(new).branch("main").events[0]
    assert ev["event"] == "init-from-merge" and ev["weights"] == pytest.approx([1 / 6, 1 / 3, 1 / 2], abs=1e-6)


def test_config_init_section_starts_from_the_merge(tmp_path, source_run, tiny_run_config):
    train = dataclasses.replace(tiny_run_config.train, max_steps=2, ckpt_every=2, threads=1)
    cfg = dataclasses.replace(tiny_run_config, train=train)
    text = cfg.to_toml() + f'\n[init]\nfrom_merge = "{source_run}"\nlast = 2\nevery = 4\n'
    (tmp_path / "ft.toml").write_text(text)
    assert main(["train", str(tmp_path / "ft.toml"), "--run", str(tmp_path / "ft"), "--no-progress"]) == 0
    merged = load_file(layout.init_merge_dir(tmp_path / "ft") / layout.MODEL_FILE)
    a, b = _ckpt(source_run, 4), _ckpt(source_run, 8)  # at least 4 steps apart from the newest: 8, 4
    k = "model.embed_tokens.weight"
    torch.testing.assert_close(merged[k], (a[k] + b[k]) / 2, rtol=0, atol=1e-6)
    assert read_state(layout.init_merge_dir(tmp_path / "ft")).init_from_merge["optimizer_state"] == "reset"


def test_bad_input_exits_2_and_leaves_nothing(tmp_path, source_run, capsys):
    new = tmp_path / "ft"
    assert main(["init-from-merge", str(new), "--run", str(source_run), "--last", "9"]) == 2
    err = capsys.readouterr().err
    assert "init.last=9" in err and "only 4 usable checkpoints" in err
    assert not new.exists()
    assert main(["init-from-merge", str(new), "--run", str(tmp_path / "nope"), "--last", "2"]) == 2
    assert "not a riverbed run" in capsys.readouterr().err
    assert main(["init-from-merge", str(new), "--run", str(source_run), "--last", "0"]) == 2
    assert "init.last=0" in capsys.readouterr().err
    # a NaN checkpoint is passed over, never merged
    bad = layout.checkpoint_dir(source_run, "main", 8) / layout.MODEL_FILE
    tensors = load_file(bad)
    tensors["model.norm.weight"] = torch.full_like(tensors["model.norm.weight"], float("nan"))
    from safetensors.torch import save_file

    save_file(tensors, str(bad))
    assert main(["init-from-merge", str(new), "--run", str(source_run), "--last", "2"]) == 0
    out = capsys.readouterr().out
    assert "passed over step 8: tensor model.norm.weight holds NaN/inf" in out
    assert read_state(layout.init_merge_dir(new)).init_from_merge["checkpoints"] == [4, 6]
