"""Choosing the last N checkpoints spaced V apart from a run's main branch."""

import json

import pytest

from riverbed.checkpoints import layout
from riverbed.errors import MergeError
from riverbed.merging.select import select_checkpoints
from .helpers import random_state, write_dir


def make_run(root, steps, tokens_per_step=64, branch="main"):
    for s in steps:
        write_dir(layout.checkpoint_dir(root, branch, s), random_state(s % 7), state={"step": s, "tokens": s * tokens_per_step})
    return root


def test_last_n_every_v_steps(tmp_path):
    run = make_run(tmp_path / "run", range(100, 1001, 100))
    picked = select_checkpoints(run, last=3, every=200)
    assert [p.step for p in picked] == [600, 800, 1000]
    assert picked[-1].path == layout.checkpoint_dir(run, "main", 1000)
    assert [p.step for p in select_checkpoints(run, last=10, every=100)] == list(range(100, 1001, 100))


def test_tokens_unit_and_uneven_spacing(tmp_path):
    run = make_run(tmp_path / "run", [100, 150, 300, 350, 500])
    picked = select_checkpoints(run, last=3, every=150 * 64, unit="tokens")
    # newest 500; then newest <= 350 -> 350; then newest <= 200 -> 150
    assert [p.step for p in picked] == [150, 350, 500]
    assert [p.tokens for p in picked] == [150 * 64, 350 * 64, 500 * 64]


def test_too_few_checkpoints_names_what_exists(tmp_path):
    run = make_run(tmp_path / "run", [100, 200, 300])
    with pytest.raises(MergeError, match=r"only 2 checkpoint\(s\) spaced 200 steps apart, 3 asked .*checkpoints at steps: 100, 200, 300"):
        select_checkpoints(run, last=3, every=200)
    with pytest.raises(MergeError, match="checkpoints at steps: none"):
        select_checkpoints(run, last=1, every=1, branch="decay")
    with pytest.raises(MergeError, match="unit"):
        select_checkpoints(run, last=1, every=1, unit="epochs")
    with pytest.raises(MergeError, match="does not exist"):
        select_checkpoints(tmp_path / "nope", last=1, every=1)


def test_half_written_checkpoints_are_ignored(tmp_path):
    run = make_run(tmp_path / "run", [100, 200])
    (layout.checkpoint_dir(run, "main", 300)).mkdir()  # no state.json: not complete
    assert [p.step for p in select_checkpoints(run, last=2, every=100)] == [100, 200]
    (layout.checkpoint_dir(run, "main", 200) / "state.json").write_text(json.dumps({"step": 200, "tokens": 5}))
    assert select_checkpoints(run, last=1, every=1, unit="tokens")[0].tokens == 5


def _with_schedule(run, spec):
    (run / layout.MANIFEST).write_text(json.dumps({"format": "riverbed.run/1", "config": {}, "model": {},
                                                   "branches": {"main": {"name": "main", "kind": "main", "schedule": spec}}}))
    return run


WSD = {"type": "wsd", "warmup": 100, "stable": 500, "decay": 400, "shape": "linear"}


def test_until_keeps_the_checkpoints_up_to_a_step(tmp_path):
    run = make_run(tmp_path / "run", range(100, 1001, 100))
    assert [p.step for p in select_checkpoints(run, last=3, every=100, until=650)] == [400, 500, 600]
    with pytest.raises(MergeError, match="up to step 150 has only 1 checkpoint"):
        select_checkpoints(run, last=2, every=100, until=150)


def test_stable_only_keeps_the_stable_phase_and_a_decay_spanning_selection_warns(tmp_path):
    from riverbed.errors import RiverbedWarning

    run = _with_schedule(make_run(tmp_path / "run", range(100, 1001, 100)), WSD)
    # steps 200..600 trained at the peak LR (a checkpoint at 100 ends the warmup; from 601 on it decays)
    assert [p.step for p in select_checkpoints(run, last=3, every=100, stable_only=True)] == [400, 500, 600]
    with pytest.warns(RiverbedWarning, match=r"span an LR change \(x0.75 of the peak LR at step 700, x0 at step 1000\)"):
        select_checkpoints(run, last=4, every=100)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        select_checkpoints(run, last=4, every=100, until=600)  # all stable: no warning


def test_stable_only_needs_a_schedule(tmp_path):
    run = make_run(tmp_path / "run", [100, 200])
    with pytest.raises(MergeError, match="--stable-only: .* has no schedule riverbed knows"):
        select_checkpoints(run, last=1, every=100, stable_only=True)
