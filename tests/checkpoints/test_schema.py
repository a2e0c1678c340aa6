"""CheckpointState: the one schema of state.json (strict round trip, older files, one writer)."""

from __future__ import annotations

import json

import pytest
import torch

from riverbed.checkpoints import layout
from riverbed.checkpoints.schema import CheckpointState, DataPosition, read_state
from riverbed.checkpoints.state import load_checkpoint, save_checkpoint
from riverbed.errors import CheckpointError


def _full() -> CheckpointState:
    return CheckpointState(step=12, tokens=768, flops=1.5e9, branch="decay-a", schedule={"type": "wsd"}, lr_scale=0.5,
                           data=DataPosition(position=15, sample=60, seed=7, offset=3), train_loss=2.25, eval_loss=2.5,
                           init="runs/x/branches/main/checkpoints/step_0000000010", reason="periodic", world_size=2,
                           parallel="fsdp", config={"train": {"seed": 7}}, extra={"future_key": [1, 2]})


def test_round_trip_through_strict_json_on_disk(tmp_path):
    m = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path / "c", m, torch.optim.AdamW(m.parameters()), _full())
    text = (tmp_path / "c" / layout.STATE_FILE).read_text()
    raw = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert raw["format"] == "riverbed.checkpoint.v1" and raw["metrics"] == {"train_loss": 2.25, "eval_loss": 2.5}
    assert raw["data"] == {"position": 15, "sample": 60, "seed": 7, "offset": 3}
    assert raw["parallel"] == "fsdp"
    back = read_state(tmp_path / "c")
    assert back == _full() and back.extra == {"future_key": [1, 2]}  # unknown keys survive a rewrite
    assert load_checkpoint(tmp_path / "c", m) == back


def test_nonfinite_loss_is_null_with_a_reason():
    raw = json.loads(CheckpointState(step=1, train_loss=float("nan")).dumps())
    assert raw["metrics"]["train_loss"] is None and raw["metrics"]["train_loss_nonfinite"] == "nan"
    assert CheckpointState.from_json(raw).train_loss is None


def test_older_files_are_read():
    # the held-out loss under its older names; no data / lr_scale / tokens (a hand-made or old state)
    assert CheckpointState.from_json({"step": 3, "metrics": {"heldout_loss": 1.25}}).eval_loss == 1.25
    assert CheckpointState.from_json({"step": 3, "metrics": {"loss": 1.5}}).eval_loss == 1.5
    old = CheckpointState.from_json({"step": 3, "metrics": {"eval_loss": 1.0, "heldout_loss": 2.0}})
    assert old.eval_loss == 1.0  # the current name wins
    bare = CheckpointState.from_json({"step": 5})
    assert (bare.tokens, bare.flops, bare.lr_scale, bare.data_offset, bare.eval_loss) == (0, 0.0, 1.0, 0, None)
    assert bare.parallel is None  # written before the parallelism was recorded


def test_bad_states_name_the_file(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(CheckpointError, match="missing"):
        read_state(tmp_path / "c")
    (tmp_path / "c" / layout.STATE_FILE).write_text(json.dumps({"tokens": 3}))
    with pytest.raises(CheckpointError, match=r"state.json.*no 'step'"):
        read_state(tmp_path / "c")
    (tmp_path / "c" / layout.STATE_FILE).write_text(json.dumps({"step": "three"}))
    with pytest.raises(CheckpointError, match="state.json: malformed"):
        read_state(tmp_path / "c")
    m = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match="no 'step'"):
        save_checkpoint(tmp_path / "d", m, None, {"tokens": 1})
    assert not (tmp_path / "d").exists()  # nothing half-written


def test_component_files_are_inside_before_the_checkpoint_is_visible(tmp_path, monkeypatch):
    import riverbed.checkpoints.state as st

    seen = {}
    real = st.atomic_dir

    def spy(path, **kw):
        cm = real(path, **kw)

        class Wrapped:
            def __enter__(self):
                self.tmp = cm.__enter__()
                return self.tmp

            def __exit__(self, *exc):
                # at the moment of the rename the component file is already in the temporary dir
                seen["before_rename"] = sorted(p.name for p in self.tmp.iterdir())
                return cm.__exit__(*exc)

        return Wrapped()

    monkeypatch.setattr(st, "atomic_dir", spy)
    m = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path / "c", m, None, CheckpointState(step=1), files={layout.GUARD_FILE: {"recoveries": 2}})
    assert layout.GUARD_FILE in seen["before_rename"] and layout.STATE_FILE in seen["before_rename"]
    assert json.loads((tmp_path / "c" / layout.GUARD_FILE).read_text()) == {"recoveries": 2}
    with pytest.raises(CheckpointError, match="reserved"):
        save_checkpoint(tmp_path / "e", m, None, CheckpointState(step=1), files={layout.STATE_FILE: {}})
