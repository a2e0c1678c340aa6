"""Merging a Hugging Face Trainer output_dir: step order, checkpoint-N selection, dtype-correct
config, model files only and a model card (issue 10)."""

import json

import pytest
import torch

import riverbed
from riverbed.cli.main import main
from riverbed.errors import MergeError
from riverbed.merging.order import order_inputs
from riverbed.merging.select import select_checkpoints
from riverbed.model import build_model
from riverbed.checkpoints.hf import export_hf
from .helpers import load_dir

STEPS = (3, 20, 100)  # lexical order: checkpoint-100, checkpoint-20, checkpoint-3


@pytest.fixture
def output_dir(tmp_path, tiny_model_config):
    """A Trainer-style output_dir: checkpoint-N folders with model files and Trainer's own state."""
    out = tmp_path / "trainer_out"
    out.mkdir()
    for step in STEPS:
        model = build_model(tiny_model_config, seed=step)
        ck = export_hf(tiny_model_config, model.state_dict(), out / f"checkpoint-{step}")
        (ck / "trainer_state.json").write_text(json.dumps({"global_step": step, "num_input_tokens_seen": 64 * step}))
        (ck / "optimizer.pt").write_bytes(b"optimizer")
        (ck / "scheduler.pt").write_bytes(b"scheduler")
        (ck / "README.md").write_text(f"model card of checkpoint {step}")
        (ck / "tokenizer_config.json").write_text("{}")
        (ck / "generation_config.json").write_text(json.dumps({"_from_model_config": True}))
    return out


def _lexical(output_dir):
    return sorted(str(p) for p in output_dir.glob("checkpoint-*"))  # what a shell glob passes


def test_inputs_put_in_step_order_with_a_warning(output_dir, tmp_path, capsys):
    given = _lexical(output_dir)
    assert [p.rsplit("-", 1)[1] for p in given] == ["100", "20", "3"]
    assert main(["merge", str(tmp_path / "m"), *given, "--method", "wma", "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert "not given oldest first" in cap.err and "steps 3, 20, 100" in cap.out
    recipe = json.loads((tmp_path / "m" / "merge.json").read_text())
    assert [p.rsplit("-", 1)[1] for p in recipe["inputs"]] == ["3", "20", "100"] and recipe["steps"] == [3, 20, 100]
    assert recipe["effective_weights"] == pytest.approx([1 / 6, 2 / 6, 3 / 6])  # the newest weighs most
    # --order given keeps the old behaviour, no warning
    assert main(["merge", str(tmp_path / "g"), *given, "--method", "wma", "--order", "given", "--no-progress"]) == 0
    assert "not given oldest first" not in capsys.readouterr().err
    assert [p.rsplit("-", 1)[1] for p in json.loads((tmp_path / "g" / "merge.json").read_text())["inputs"]] == ["100", "20", "3"]
    # steps come from trainer_state.json before the name
    (output_dir / "checkpoint-3" / "trainer_state.json").write_text(json.dumps({"global_step": 500}))
    ordered, positions, _ = order_inputs(given)
    assert [p.step for p in positions] == [20, 100, 500] and positions[0].source == "trainer_state.json"


def test_wma_by_step_on_explicit_inputs(output_dir, tmp_path):
    with pytest.warns(UserWarning, match="not given oldest first"):
        r = riverbed.merge(tmp_path / "m", _lexical(output_dir), "wma", wma_by="step", verbose=False, progress=False)
    assert r.weights == pytest.approx([3 / 123, 20 / 123, 100 / 123])


def test_run_accepts_a_trainer_output_dir(output_dir, tmp_path, capsys):
    picked = select_checkpoints(output_dir, last=2, every=50)
    assert [s.step for s in picked] == [20, 100]
    assert [s.tokens for s in select_checkpoints(output_dir, last=3, every=1, unit="tokens")] == [192, 1280, 6400]
    (output_dir / "checkpoint-200").mkdir()  # being written by Trainer: no weights yet
    assert main(["merge", str(tmp_path / "m"), "--run", str(output_dir), "--last", "3", "--every", "10", "--no-progress"]) == 0
    assert "steps 3, 20, 100" in capsys.readouterr().out
    with pytest.raises(MergeError, match="Trainer output_dir .* has only 2 checkpoint"):
        select_checkpoints(output_dir, last=3, every=50)
    with pytest.raises(MergeError, match="has no branches"):
        select_checkpoints(output_dir, last=1, every=1, branch="decay")
    with pytest.raises(MergeError, match="a single checkpoint"):
        select_checkpoints(output_dir / "checkpoint-20", last=1, every=1)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(MergeError, match=r"neither a riverbed run .* nor a Trainer output_dir .* it holds: notes.txt"):
        select_checkpoints(tmp_path / "junk", last=1, every=1)


def test_bf16_merge_loads_as_bf16_with_model_files_only(output_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "merged"
    riverbed.merge(out, _lexical(output_dir), dtype="bf16", verbose=False, progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["torch_dtype"] == config["dtype"] == "bfloat16"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", "config.json", "generation_config.json", "merge.json", "model.safetensors", "tokenizer_config.json"]
    card = (out / "README.md").read_text()
    assert "checkpoint 100" not in card and "riverbed merge --recipe merge.json" in card and "checkpoint-100" in card
    model = transformers.LlamaForCausalLM.from_pretrained(out)  # no dtype given: config.json decides
    assert next(model.parameters()).dtype == torch.bfloat16
    sd = load_dir(out)
    assert torch.equal(model.state_dict()["model.norm.weight"], sd["model.norm.weight"])


def test_dtype_key_updated_only_where_present(output_dir, tmp_path):
    newest = output_dir / "checkpoint-100"
    config = json.loads((newest / "config.json").read_text())
    del config["torch_dtype"]
    (newest / "config.json").write_text(json.dumps(config))
    riverbed.merge(tmp_path / "m", [newest], dtype="fp16", verbose=False, progress=False)
    got = json.loads((tmp_path / "m" / "config.json").read_text())
    assert got["dtype"] == "float16" and "torch_dtype" not in got


def test_cli_dtype_bfloat16_spelling(output_dir, tmp_path):
    assert main(["merge", str(tmp_path / "m"), str(output_dir / "checkpoint-20"), "--dtype", "bfloat16", "--no-progress"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["torch_dtype"] == config["dtype"] == "bfloat16"
    assert load_dir(tmp_path / "m")["model.norm.weight"].dtype == torch.bfloat16
