"""Merged checkpoints are usable: a riverbed checkpoint loads and trains; an HF dir loads in transformers."""

import json

import pytest
import torch
from safetensors.torch import load_file

import riverbed
from riverbed.checkpoints import layout
from riverbed.model import build_model


def test_merged_riverbed_checkpoints_load_and_train(tmp_path, tiny_model_config):
    from safetensors.torch import save_file

    model = build_model(tiny_model_config, seed=0)
    base = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    ckpts = []
    for i in range(3):  # three checkpoint dirs laid out as a run's main branch, weights drifting
        g = torch.Generator().manual_seed(i)
        sd = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in base.items()}
        path = layout.checkpoint_dir(tmp_path / "run", "main", 100 * (i + 1))
        path.mkdir(parents=True)
        save_file(sd, str(path / layout.MODEL_FILE))
        (path / layout.STATE_FILE).write_text(json.dumps({"step": 100 * (i + 1), "tokens": 0}))
        ckpts.append(path)
    riverbed.merge(tmp_path / "merged", ckpts, "sma", verbose=False, progress=False)
    model.load_state_dict(load_file(tmp_path / "merged" / layout.MODEL_FILE), strict=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, tiny_model_config.vocab_size, (4, 17), generator=g)
    losses = []
    for _ in range(5):
        out = model(x[:, :-1], x[:, 1:])
        (out.loss + out.aux_loss).backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_merged_hf_directory_loads_in_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    models, dirs = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        m = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
        d = tmp_path / f"hf{seed}"
        m.save_pretrained(d, max_shard_size="20KB")  # sharded, with model.safetensors.index.json
        models.append(m)
        dirs.append(d)
    assert (dirs[0] / "model.safetensors.index.json").exists()
    r = riverbed.merge(tmp_path / "merged", dirs, "wma", max_shard_size="30KB", verbose=False, progress=False)
    assert (tmp_path / "merged" / "config.json").exists()
    merged = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.bfloat16)
    sds = [m.state_dict() for m in models]
    for name, t in merged.state_dict().items():
        ref = sum(w * sd[name].double() for w, sd in zip(r.weights, sds))
        assert torch.allclose(t.double(), ref, rtol=1e-2, atol=1e-3), name
    out = merged(torch.tensor([[1, 2, 3]]))
    assert torch.isfinite(out.logits.float()).all()


def test_merge_of_trained_run_checkpoints_loads_in_transformers(tmp_path, tiny_run_config, capsys):
    """Checkpoints written by riverbed's trainer carry a config.json, so a merge of a run's
    checkpoints (`riverbed merge OUT --run RUN ...`) is a Hugging Face directory."""
    transformers = pytest.importorskip("transformers")
    from riverbed.cli.main import main
    from riverbed.training import train_branch

    run = tmp_path / "run"
    train_branch(tiny_run_config, run, "main", until_step=4, progress=False)
    ckpt = layout.list_checkpoints(run, "main")[-1].path
    assert json.loads((ckpt / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    assert main(["merge", str(tmp_path / "merged"), "--run", str(run), "--last", "2", "--every", "2",
                 "--no-progress"]) == 0
    merged = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    ours = build_model(tiny_run_config.model)
    ours.load_state_dict(load_file(tmp_path / "merged" / layout.MODEL_FILE), strict=True)
    x = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=x).logits, ours(x).logits, atol=1e-5)
