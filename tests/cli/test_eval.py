"""`riverbed eval` and riverbed.training.evaluate.evaluate_checkpoints: the trainer's numbers."""

import json
import shutil
from dataclasses import dataclass

import pytest
import torch

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.training.evaluate import evaluate_checkpoints, heldout_set
from riverbed.runs.metrics import read_metrics
from runs.conftest import TINY_TOML, tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    cfg = tiny_config(ckpt_every=5, eval_every=5)
    run = Run.create(tmp_path_factory.mktemp("eval") / "run", cfg)
    train_main(cfg, run.path, run, until_step=10, progress=False)
    return run.path


def _logged(run_dir, step):
    rows = read_metrics(layout.metrics_path(run_dir, "main"))
    return [r["eval_loss"] for r in rows if r["kind"] == "eval" and r["step"] == step][-1]


def test_eval_equals_the_trainers_logged_loss_side_by_side(run_dir, tmp_path, capsys):
    c5, c10 = (str(layout.checkpoint_dir(run_dir, "main", s)) for s in (5, 10))
    assert main(["eval", c5, c10, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert [r["step"] for r in res] == [5, 10]
    for r in res:
        assert r["kind"] == "riverbed" and r["buckets"] == {}
        assert r["loss"] == _logged(run_dir, r["step"])  # the same evaluation, bit for bit
        assert r["logged_loss"] == r["loss"]
    assert res[0]["loss"] != res[1]["loss"]
    # the table form lists both, with the difference to the best
    assert main(["eval", c5, c10]) == 0
    out = capsys.readouterr().out
    assert "held-out loss" in out and f"{res[1]['loss']:.4f}" in out and "+0.0000" in out


def test_eval_merge_output_hf_dir_and_file(run_dir, tmp_path, capsys):
    c5, c10 = (layout.checkpoint_dir(run_dir, "main", s) for s in (5, 10))
    merged = tmp_path / "merged"
    assert main(["merge", str(merged), str(c5), str(c10), "--no-progress"]) == 0
    hf = tmp_path / "hf"
    hf.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copy(c10 / name, hf / name)
    capsys.readouterr()
    # an HF dir alone has no riverbed config: the held-out split must be named
    assert main(["eval", str(hf)]) == 2
    assert "give --run RUN or --config CONFIG" in capsys.readouterr().err
    res = evaluate_checkpoints([c10, merged, hf, c10 / "model.safetensors"], run=run_dir)
    assert [r.kind for r in res] == ["riverbed", "merge", "hf", "safetensors"]
    assert res[2].loss == res[3].loss == res[0].loss == _logged(run_dir, 10)
    assert res[1].loss != res[0].loss and res[1].step is None and res[1].logged_loss is None
    assert main(["eval", str(merged), "--run", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["loss"] == res[1].loss


def test_eval_mismatched_model_exits_2_naming_tensor_and_checkpoint(run_dir, tmp_path, capsys):
    other = tmp_path / "other.toml"
    other.write_text(TINY_TOML.replace('preset = "tiny"', 'preset = "tiny"\nd_model = 96\nn_heads = 4\nn_kv_heads = 2'))
    c5 = layout.checkpoint_dir(run_dir, "main", 5)
    assert main(["eval", str(c5), "--config", str(other)]) == 2
    err = capsys.readouterr().err
    assert str(c5) in err and "model.embed_tokens.weight" in err and "shape" in err
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(c5), "--run", str(run_dir), "--config", str(other)]) == 2  # one source of config


@dataclass
class _ParityBuckets:
    names: tuple = ("even", "odd")

    def of(self, x, y):
        return y % 2


@dataclass
class _Bucketed:
    inner: object
    buckets: object

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_per_bucket_losses_where_the_data_defines_buckets(run_dir):
    from riverbed.data import load_dataset
    from riverbed.runs.config_io import load_run_config

    cfg = load_run_config(run_dir)
    data = _Bucketed(load_dataset(cfg.data), _ParityBuckets())
    ckpt = layout.checkpoint_dir(run_dir, "main", 10)
    (r,) = evaluate_checkpoints([ckpt], cfg, data=data)
    assert r.loss == _logged(run_dir, 10)  # buckets do not change the loss
    assert set(r.buckets) == {"even", "odd"} and r.buckets["even"] != r.buckets["odd"]
    # token-weighted: the bucket means recombine into the overall token mean
    ys = torch.cat([y.reshape(-1) for _, y in heldout_set(cfg, data)])
    n_even, n_odd = int((ys % 2 == 0).sum()), int((ys % 2 == 1).sum())
    recombined = (r.buckets["even"] * n_even + r.buckets["odd"] * n_odd) / (n_even + n_odd)
    assert recombined == pytest.approx(r.loss, rel=1e-6)


def test_diverged_checkpoint_is_null_in_strict_json():
    from riverbed.training.evaluate import CheckpointEval

    d = CheckpointEval("x", "hf", None, float("nan"), {"a": float("inf"), "b": 1.5}).to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == {"path": "x", "kind": "hf", "step": None, "loss": None,
                                                          "buckets": {"a": None, "b": 1.5}, "logged_loss": None}
