"""Merge flags are never ignored (issue 9, item 10) and recipes replay (issue 10)."""

import json

import pytest
import torch

import riverbed
from riverbed.cli.main import main
from riverbed.errors import MergeError
from riverbed.merging.recipe import MergeRecipe, load_recipe
from .helpers import load_dir, random_state, reference, write_dir


@pytest.fixture
def three(tmp_path):
    sds = [random_state(i) for i in range(3)]
    return sds, [str(write_dir(tmp_path / f"in{i}", sd)) for i, sd in enumerate(sds)]


def _weights(out):
    return json.loads((out / "merge.json").read_text())["effective_weights"]


def test_weight_flags_imply_their_method(tmp_path, capsys, three):
    _, paths = three
    assert main(["merge", str(tmp_path / "w"), *paths, "--weights", "1,1,2", "--no-progress"]) == 0
    assert "--weights given without --method: using --method weights" in capsys.readouterr().out
    assert _weights(tmp_path / "w") == [0.25, 0.25, 0.5]  # not the SMA the old code computed
    assert main(["merge", str(tmp_path / "e"), *paths, "--alpha", "0.5", "--no-progress"]) == 0
    assert "using --method ema" in capsys.readouterr().out
    assert _weights(tmp_path / "e") == [0.25, 0.25, 0.5]
    assert main(["merge", str(tmp_path / "n"), *paths, "--alpha", "0.5", "--ema-form", "normalized", "--no-progress"]) == 0
    assert _weights(tmp_path / "n") == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    r = riverbed.merge(tmp_path / "api", paths, weights=[1, 0, 0], verbose=False, progress=False)
    assert r.weights == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("argv, message", [
    (["--method", "ema", "--alpha", "0.2", "--weights", "1,2,3"], "--weights applies to --method weights only"),
    (["--method", "sma", "--alpha", "0.2"], "--alpha applies to --method ema only"),
    (["--method", "wma", "--ema-form", "normalized"], "--ema-form applies to --method ema only"),
    (["--method", "sma", "--wma-by", "step"], "--wma-by applies to --method wma only"),
    (["--weights", "1,2,3", "--alpha", "0.2"], "pass --method to choose one"),
    (["--unit", "tokens"], "--unit selects checkpoints of a run"),
    (["--branch", "decay"], "--branch selects checkpoints of a run"),
    (["--wma-by", "step"], "--wma-by step needs the step of every input"),
])
def test_flags_that_do_not_apply_are_refused(tmp_path, capsys, three, argv, message):
    _, paths = three
    assert main(["merge", str(tmp_path / "out"), *paths, *argv, "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_recipe_replays_bit_for_bit(tmp_path, capsys, three):
    sds, paths = three
    assert main(["merge", str(tmp_path / "a"), *paths, "--method", "ema", "--alpha", "0.3", "--dtype", "bf16", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["merge", "--recipe", str(tmp_path / "a" / "merge.json"), str(tmp_path / "b"), "--no-progress"]) == 0
    a, b = load_dir(tmp_path / "a"), load_dir(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a) and a["lm_head.weight"].dtype == torch.bfloat16
    # a merged directory stands for its merge.json; the Python API replays too
    riverbed.merging.replay(tmp_path / "a", tmp_path / "c", verbose=False, progress=False)
    assert torch.equal(load_dir(tmp_path / "c")["lm_head.weight"], a["lm_head.weight"])


def test_toml_and_yaml_recipes(tmp_path, three):
    sds, paths = three
    (tmp_path / "r.toml").write_text(f'inputs = {json.dumps(paths)}\nmethod = "weights"\nweights = [1, 2, 1]\n')
    riverbed.merging.replay(tmp_path / "r.toml", tmp_path / "t", verbose=False, progress=False)
    got, ref = load_dir(tmp_path / "t"), reference(sds, (0.25, 0.5, 0.25))
    assert all(torch.allclose(got[k].double(), ref[k], atol=1e-5) for k in ref)
    pytest.importorskip("yaml")
    (tmp_path / "r.yaml").write_text("inputs:\n" + "".join(f"  - {p}\n" for p in paths) + "alpha: 0.5\n")
    r = riverbed.merging.replay(tmp_path / "r.yaml", tmp_path / "y", verbose=False, progress=False)
    assert r.weights == (0.25, 0.25, 0.5)


def test_dry_run_prints_the_recipe_and_writes_nothing(tmp_path, capsys, three):
    _, paths = three
    assert main(["merge", str(tmp_path / "out"), *paths, "--alpha", "0.5", "--dry-run"]) == 0
    text = capsys.readouterr().out
    recipe = json.loads(text[text.index("{"):])
    assert recipe["method"] == "ema" and recipe["alpha"] == 0.5 and recipe["effective_weights"] == [0.25, 0.25, 0.5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in0", "in1", "in2"]
    (tmp_path / "dry.json").write_text(json.dumps(recipe))
    assert main(["merge", "--recipe", str(tmp_path / "dry.json"), str(tmp_path / "out"), "--no-progress"]) == 0
    assert _weights(tmp_path / "out") == [0.25, 0.25, 0.5]


def test_bad_recipes(tmp_path, capsys, three):
    _, paths = three
    (tmp_path / "typo.json").write_text(json.dumps({"inputs": paths, "methd": "ema"}))
    with pytest.raises(MergeError, match="unknown recipe key 'methd'"):
        load_recipe(tmp_path / "typo.json")
    (tmp_path / "nan.json").write_text('{"inputs": ["a"], "alpha": NaN}')
    with pytest.raises(MergeError, match="not valid JSON"):
        load_recipe(tmp_path / "nan.json")
    (tmp_path / "bad.toml").write_text("inputs = [")
    with pytest.raises(MergeError, match="not valid TOML"):
        load_recipe(tmp_path / "bad.toml")
    (tmp_path / "ok.json").write_text(json.dumps({"inputs": paths, "method": "sma", "effective_weights": [0.5, 0.25, 0.25]}))
    with pytest.raises(MergeError, match="recorded weights"):
        riverbed.merging.replay(tmp_path / "ok.json", tmp_path / "o", verbose=False, progress=False)
    (tmp_path / "good.json").write_text(json.dumps({"inputs": paths}))
    assert main(["merge", "--recipe", str(tmp_path / "good.json"), str(tmp_path / "o"), "--method", "ema"]) == 2
    assert "--method cannot be combined with it" in capsys.readouterr().err
    with pytest.raises(MergeError, match="at least one input"):
        MergeRecipe(inputs=())


def test_legacy_merge_json_and_single_file_shard_flag(tmp_path, capsys, three):
    _, paths = three
    # riverbed 0.1 wrote the effective weights of any method under "weights" and WMA steps as floats
    (tmp_path / "old.json").write_text(json.dumps({"method": "wma", "weights": [0.25, 0.75], "inputs": paths[:2], "alpha": None,
                                                   "ema_form": None, "steps": [100.0, 300.0], "dtype": None, "accumulate": "fp32",
                                                   "riverbed_version": "0.1.0"}))
    r = riverbed.merging.replay(tmp_path / "old.json", tmp_path / "o", verbose=False, progress=False)
    assert r.weights == (0.25, 0.75)
    assert main(["merge", str(tmp_path / "x.safetensors"), *paths, "--max-shard-size", "1KB"]) == 2
    assert "does not apply to a single-file OUT" in capsys.readouterr().err
