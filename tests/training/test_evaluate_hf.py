"""`riverbed eval HF_DIR --data FILE`: a model built by transformers from its own config.json,
evaluated on the user's data with riverbed's one held-out evaluator; a config.json that
disagrees with a given riverbed config is an error naming the key."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from riverbed.cli.main import main
from riverbed.config import load_config_text
from riverbed.data import heldout_batches, load_dataset
from riverbed.data.config import DataConfig
from riverbed.errors import ConfigError
from riverbed.model import build_model
from riverbed.checkpoints.hf import export_hf
from riverbed.training.evaluate import evaluate_checkpoints

TEXT = "".join(f"line {i}: the river runs to the sea, and the sea is never full. {i * 7 % 13}\n" for i in range(2000))
GEOMETRY = dict(seq_len=32, eval_batches=2, batch_size=4)


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return path


def _gpt2(path):
    """A tiny real transformers model that is not riverbed's architecture, saved with save_pretrained."""
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=256, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


def _reference_loss(model_dir, text_path) -> float:
    """transformers' own loss (labels = inputs, shifted inside the model) on the same windows."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    data = load_dataset(DataConfig(source=str(text_path)))
    losses = []
    with torch.no_grad():
        for x, y in heldout_batches(data.heldout, 32, 4, 2):
            full = torch.cat([x, y[:, -1:]], dim=1)  # the T+1 tokens: predictions at the first T positions
            losses.append(model(input_ids=full, labels=full).loss.item())
    return sum(losses) / len(losses)


def test_hf_dir_is_built_from_its_config_json_and_evaluated_on_the_users_data(tmp_path, text, capsys):
    d = _gpt2(tmp_path / "gpt2")
    assert main(["eval", str(d), "--data", str(text), "--seq-len", "32", "--eval-batches", "2", "--batch-size", "4", "--json"]) == 0
    (res,) = json.loads(capsys.readouterr().out)["results"]
    assert res["kind"] == "hf"
    assert res["loss"] == pytest.approx(_reference_loss(d, text), rel=1e-5)


def test_riverbed_config_and_transformers_agree_on_an_exported_model(tmp_path, text, tiny_toml):
    cfg = load_config_text(tiny_toml, source="tiny")
    d = export_hf(cfg.model, build_model(cfg.model, seed=1).state_dict(), tmp_path / "hf")
    (tmp_path / "tiny.toml").write_text(tiny_toml)
    (ours,) = evaluate_checkpoints([d], config=tmp_path / "tiny.toml", data_file=text, **GEOMETRY)
    (theirs,) = evaluate_checkpoints([d], data_file=text, **GEOMETRY)
    assert ours.loss == pytest.approx(theirs.loss, rel=1e-4)
    assert theirs.loss == pytest.approx(_reference_loss(d, text), rel=1e-5)


@pytest.mark.parametrize("key, value, field", [("tie_word_embeddings", None, "tie_embeddings"),  # None: flip it
                                               ("rms_norm_eps", 1e-3, "norm_eps"),
                                               ("num_key_value_heads", 4, "n_kv_heads")])
def test_a_config_json_that_disagrees_with_the_riverbed_config_names_the_key(tmp_path, text, tiny_toml, capsys, key, value, field):
    cfg = load_config_text(tiny_toml, source="tiny")
    d = export_hf(cfg.model, build_model(cfg.model, seed=1).state_dict(), tmp_path / "hf")
    raw = json.loads((d / "config.json").read_text())
    raw[key] = (not raw[key]) if value is None else value
    assert raw[key] != json.loads((d / "config.json").read_text())[key]
    (d / "config.json").write_text(json.dumps(raw))
    (tmp_path / "tiny.toml").write_text(tiny_toml)
    with pytest.raises(ConfigError, match=rf"config.json: {key} = .*model\.{field} = "):
        evaluate_checkpoints([d], config=tmp_path / "tiny.toml")
    assert main(["eval", str(d), "--config", str(tmp_path / "tiny.toml"), "--data", str(text)]) == 2
    assert key in capsys.readouterr().err


def test_a_foreign_architecture_with_a_riverbed_config_is_refused(tmp_path, text, tiny_toml, capsys):
    d = _gpt2(tmp_path / "gpt2")
    (tmp_path / "tiny.toml").write_text(tiny_toml)
    assert main(["eval", str(d), "--config", str(tmp_path / "tiny.toml")]) == 2
    assert "model_type='gpt2'" in capsys.readouterr().err


def test_hf_eval_without_data_or_with_a_too_large_vocabulary_says_what_to_give(tmp_path, capsys):
    d = _gpt2(tmp_path / "gpt2")
    assert main(["eval", str(d)]) == 2
    assert "--data FILE" in capsys.readouterr().err
    tokens = tmp_path / "tokens"  # nanoGPT's layout: train.bin + val.bin
    tokens.mkdir()
    import numpy as np

    for split in ("train", "val"):
        np.arange(0, 5000, dtype=np.uint16).tofile(tokens / f"{split}.bin")  # ids up to 4999: beyond the 256-token vocabulary
    assert main(["eval", str(d), "--data", str(tokens)]) == 2
    assert "beyond the vocabulary" in capsys.readouterr().err
