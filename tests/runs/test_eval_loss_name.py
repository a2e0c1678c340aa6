"""The held-out loss is called eval_loss in run.json too; older manifests ("heldout_loss") still read."""

from __future__ import annotations

from riverbed.runs.manifest import Point


def test_old_and_new_names():
    old = Point.from_dict({"step": 4, "tokens": 256, "flops": 1.0, "heldout_loss": 2.5}, "run.json")
    assert old.eval_loss == 2.5
    assert old.to_dict() == {"step": 4, "tokens": 256, "flops": 1.0, "eval_loss": 2.5}
    nan = Point.from_dict({"step": 4, "tokens": 256, "flops": 1.0, "heldout_loss": None,
                           "heldout_loss_nonfinite": "nan"}, "run.json")
    assert nan.eval_loss is None and nan.to_dict()["eval_loss_nonfinite"] == "nan"
    assert Point(1, 2, 3.0, float("inf")).to_dict() == {"step": 1, "tokens": 2, "flops": 3.0, "eval_loss": None,
                                                       "eval_loss_nonfinite": "inf"}
