"""Hugging Face interchange: export, load back, and logits parity with transformers."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from riverbed.errors import CheckpointError
from riverbed.model import build_model
from riverbed.checkpoints.hf import export_hf, load_hf
from riverbed.model.hf import hf_config_dict


def _export(cfg, tmp_path, seed=0, name="hf"):
    model = build_model(cfg, seed=seed).eval()
    out = export_hf(cfg, model.state_dict(), tmp_path / name)
    return model, out


def test_export_layout_and_round_trip(tiny_model_config, tiny_moe_config, tmp_path):
    for i, cfg in enumerate((tiny_model_config, tiny_moe_config.replace(tie_embeddings=False))):
        model, out = _export(cfg, tmp_path, name=f"m{i}")
        assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
        config = json.loads((out / "config.json").read_text())
        assert config == json.loads(json.dumps(hf_config_dict(cfg)))
        assert config["tie_word_embeddings"] is cfg.tie_embeddings
        tensors = load_file(out / "model.safetensors")
        assert ("lm_head.weight" in tensors) is (not cfg.tie_embeddings)
        cfg2, sd = load_hf(out)
        assert cfg2 == cfg
        ref = model.state_dict()
        assert sorted(sd) == sorted(ref) and all(torch.equal(sd[k], ref[k]) for k in sd)
    assert "model.layers.0.block_sparse_moe.experts.3.w2.weight" in sd
    assert "model.layers.1.block_sparse_moe.gate.weight" in sd


def test_export_refuses_existing_dir_and_bad_state_dict(tiny_model_config, tmp_path):
    model, out = _export(tiny_model_config, tmp_path)
    with pytest.raises(CheckpointError, match="already exists"):
        export_hf(tiny_model_config, model.state_dict(), out)
    sd = dict(model.state_dict())
    del sd["model.norm.weight"]
    with pytest.raises(CheckpointError, match="missing tensor model.norm.weight"):
        export_hf(tiny_model_config, sd, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_load_hf_errors_name_the_file_or_tensor(tiny_model_config, tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_hf(tmp_path / "nothing")
    _, out = _export(tiny_model_config, tmp_path)
    tensors = load_file(out / "model.safetensors")
    tensors["model.norm.weight"] = torch.ones(3)
    save_file(tensors, out / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model.norm.weight has shape \(3,\)"):
        load_hf(out)
    (out / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_hf(out)
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="model_type='gpt2'"):
        load_hf(out)


@pytest.mark.parametrize("kind", ["dense-tied", "dense-untied", "moe", "moe-tied-top1"])
def test_logits_match_transformers(kind, tiny_model_config, tiny_moe_config, tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = {
        "dense-tied": tiny_model_config,
        "dense-untied": tiny_model_config.replace(tie_embeddings=False, n_kv_heads=4, rope_theta=500.0),
        "moe": tiny_moe_config.replace(tie_embeddings=False),
        "moe-tied-top1": tiny_moe_config.replace(top_k=1),
    }[kind]
    model, out = _export(cfg, tmp_path, seed=5)
    cls = transformers.MixtralForCausalLM if cfg.is_moe else transformers.LlamaForCausalLM
    hf = cls.from_pretrained(out, dtype=torch.float32).eval()
    x = torch.randint(0, 256, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(x).logits, hf(x).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    # And HF's own save (transformers >= 5 fuses experts in memory) loads back to the same tensors.
    hf.save_pretrained(tmp_path / "resaved")
    cfg2, sd = load_hf(tmp_path / "resaved")
    ref = model.state_dict()
    assert cfg2 == cfg and sorted(sd) == sorted(ref)
    assert all(torch.equal(sd[k], ref[k]) for k in sd)


def test_load_sharded_dir_and_bf16_export(tiny_model_config, tmp_path):
    model, out = _export(tiny_model_config, tmp_path)
    tensors = load_file(out / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[:5], "model-00002-of-00002.safetensors": names[5:]}
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text((out / "config.json").read_text())
    for fname, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, sharded / fname)
    index = {"weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    cfg, sd = load_hf(sharded)
    assert cfg == tiny_model_config and all(torch.equal(sd[k], tensors[k]) for k in names)

    half = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    out16 = export_hf(tiny_model_config, half, tmp_path / "bf16")
    assert json.loads((out16 / "config.json").read_text())["dtype"] == "bfloat16"
    assert load_hf(out16)[1]["model.norm.weight"].dtype == torch.bfloat16
