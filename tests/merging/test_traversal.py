"""Shard names in an index are plain file names inside the model directory (issue 9, item 7)."""

import json
import os

import pytest
import torch

import riverbed
from riverbed.cli.main import main
from riverbed.errors import CheckpointError
from riverbed.merging.formats import open_input
from .helpers import random_state, write_dir


def _point_index_at(model_dir, shard_name):
    index = model_dir / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    first = next(iter(data["weight_map"]))
    data["weight_map"][first] = shard_name
    index.write_text(json.dumps(data))
    return first


@pytest.fixture
def outside(tmp_path):
    """A real, valid safetensors file outside the model directory (so a follower would read it)."""
    secret = tmp_path / "outside" / "secret.safetensors"
    secret.parent.mkdir()
    from safetensors.torch import save_file

    save_file({"secret": torch.ones(3)}, str(secret))
    return secret


@pytest.mark.parametrize("kind", ["relative", "absolute", "symlink"])
def test_merge_refuses_shards_outside_the_model_dir(tmp_path, capsys, outside, kind):
    m = write_dir(tmp_path / "m", random_state(0), shards=2)
    if kind == "relative":
        name = "../outside/secret.safetensors"
    elif kind == "absolute":
        name = str(outside)
    else:
        os.symlink(outside, m / "linked.safetensors")
        name = "linked.safetensors"
    tensor = _point_index_at(m, name)
    with pytest.raises(CheckpointError, match=rf"weight_map entry '{tensor}' names shard"):
        open_input(m)
    assert main(["merge", str(tmp_path / "out"), str(m), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert tensor in err and "secret'" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_passwd_is_never_opened(tmp_path, capsys, monkeypatch):
    m = write_dir(tmp_path / "m", random_state(0), shards=2)
    _point_index_at(m, "/etc/passwd")
    opened = []
    real_open = open

    def spy(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    assert main(["merge", str(tmp_path / "out"), str(m), "--no-progress"]) == 2
    assert "/etc/passwd" not in opened
    assert "root:" not in capsys.readouterr().err


def test_hf_hub_cache_links_are_allowed(tmp_path):
    """snapshots/<rev>/shard -> ../../blobs/<hash>: the hub cache layout stays mergeable."""
    repo = tmp_path / "models--org--tiny"
    src = write_dir(tmp_path / "src", random_state(0), shards=2)
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    for f in src.iterdir():
        (repo / "blobs" / f.name).write_bytes(f.read_bytes())
        os.symlink(f"../../blobs/{f.name}", snap / f.name)
    r = riverbed.merge(tmp_path / "out", [snap], verbose=False, progress=False)
    assert r.weights == (1.0,)


def test_load_hf_refuses_traversal(tmp_path, tiny_model_config, outside):
    from riverbed.model import build_model
    from riverbed.model.hf import export_hf, load_hf

    out = export_hf(tiny_model_config, build_model(tiny_model_config).state_dict(), tmp_path / "hf")
    weights = json.loads(json.dumps({"weight_map": {"model.embed_tokens.weight": "../outside/secret.safetensors"}}))
    (out / "model.safetensors.index.json").write_text(json.dumps(weights))
    with pytest.raises(CheckpointError, match=r"weight_map entry 'model.embed_tokens.weight' names shard '../outside/secret.safetensors'"):
        load_hf(out)
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(CheckpointError, match="unreadable checkpoint index"):
        load_hf(out)
