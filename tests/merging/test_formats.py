"""The hand-written safetensors header parser is exactly as strict as the safetensors library
(issue 9, item 8): every malformed file is refused by both, every odd-but-valid one read by both."""

import json
import os
import struct

import pytest
import torch
from safetensors import safe_open

import riverbed
from riverbed.cli.main import main
from riverbed.errors import CheckpointError
from riverbed.checkpoints.formats import open_input, read_header

from .helpers import random_state, write_dir


D8 = b"\0" * 8
A = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def _file(tmp_path, header=None, data=D8, raw=None, pad=True):
    h = raw if raw is not None else json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


def _library_accepts(path) -> bool:
    try:
        with safe_open(str(path), "np") as f:
            for k in f.keys():
                f.get_tensor(k)
        return True
    except Exception:  # noqa: BLE001 - any refusal by the library is its verdict
        return False


MALFORMED = {
    "gap between tensors": dict(header={"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}),
    "overlapping tensors": dict(header={"a": A, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}),
    "trailing bytes": dict(header={"a": A}, data=D8 + b"\0" * 4),
    "data but no tensors": dict(header={}),
    "end before begin": dict(header={"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}),
    "non-integer shape 4.5": dict(header={"a": {"dtype": "F32", "shape": [4.5], "data_offsets": [0, 18]}}, data=b"\0" * 18),
    "float shape 2.0": dict(header={"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}),
    "boolean shape": dict(header={"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, data=b"\0" * 4),
    "string shape": dict(header={"a": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}}),
    "negative shape": dict(header={"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}),
    "boolean offsets": dict(header={"a": {"dtype": "U8", "shape": [1], "data_offsets": [False, True]}}, data=b"\0"),
    "float offsets": dict(header={"a": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.0]}}),
    "three offsets": dict(header={"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 8]}}),
    "unknown dtype": dict(header={"a": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}),
    "lower-case dtype": dict(header={"a": {"dtype": "f32", "shape": [2], "data_offsets": [0, 8]}}),
    "byte length != prod(shape)*itemsize": dict(header={"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}),
    "shape overflows": dict(header={"a": {"dtype": "F32", "shape": [2**62, 8], "data_offsets": [0, 8]}}),
    "missing dtype": dict(header={"a": {"shape": [2], "data_offsets": [0, 8]}}),
    "NaN in header JSON": dict(raw=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":NaN}'),
    "NUL padding": dict(raw=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}\0\0\0', pad=False),
    "invalid UTF-8": dict(raw=b'{"a\xff":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
    "header not an object": dict(raw=b"[]", data=b""),
    "metadata value not a string": dict(header={"__metadata__": {"k": 1}, "a": A}),
    "metadata a list": dict(header={"__metadata__": [], "a": A}),
    "empty header": dict(raw=b"", data=b"", pad=False),
}

VALID = {
    "plain": dict(header={"a": A}),
    "zero-size tensor": dict(header={"z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}, "a": A}),
    "leading space": dict(raw=b' {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
    "unpadded header": dict(raw=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', pad=False),
    "null metadata": dict(header={"__metadata__": None, "a": A}),
    "no tensors at all": dict(header={"__metadata__": {"k": "v"}}, data=b""),
    "unknown extra key": dict(header={"a": {**A, "x": 1}}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_refused_by_both(tmp_path, case):
    path = _file(tmp_path, **MALFORMED[case])
    assert not _library_accepts(path), f"the safetensors library accepts {case!r}: the test case is wrong"
    with pytest.raises(CheckpointError, match=r"x\.safetensors"):
        read_header(path)


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_read_by_both(tmp_path, case):
    path = _file(tmp_path, **VALID[case])
    assert _library_accepts(path)
    entries, _ = read_header(path)
    assert all(e.offset + e.nbytes <= path.stat().st_size for e in entries.values())


def test_messages_name_the_tensor(tmp_path):
    with pytest.raises(CheckpointError, match=r"tensor 'b' at data offset 4 overlaps"):
        read_header(_file(tmp_path, **MALFORMED["overlapping tensors"]))
    with pytest.raises(CheckpointError, match=r"tensor 'a' at data offset 4 leaves a gap"):
        read_header(_file(tmp_path, **MALFORMED["gap between tensors"]))
    with pytest.raises(CheckpointError, match=r"tensor 'a' has shape \[4\.5\]"):
        read_header(_file(tmp_path, **MALFORMED["non-integer shape 4.5"]))
    with pytest.raises(CheckpointError, match=r"4 byte\(s\) after the last tensor"):
        read_header(_file(tmp_path, **MALFORMED["trailing bytes"]))


# Shard names in an index are plain file names inside the model directory (issue 9, item 7).
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
    from riverbed.checkpoints.hf import export_hf, load_hf

    out = export_hf(tiny_model_config, build_model(tiny_model_config).state_dict(), tmp_path / "hf")
    weights = json.loads(json.dumps({"weight_map": {"model.embed_tokens.weight": "../outside/secret.safetensors"}}))
    (out / "model.safetensors.index.json").write_text(json.dumps(weights))
    with pytest.raises(CheckpointError, match=r"weight_map entry 'model.embed_tokens.weight' names shard '../outside/secret.safetensors'"):
        load_hf(out)
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(CheckpointError, match="unreadable checkpoint index"):
        load_hf(out)


def _nanogpt_ckpt(path, seed: int, iter_num: int, compiled: bool):
    """A checkpoint as nanoGPT's train.py writes it (``torch.save(checkpoint, 'ckpt.pt')``): the
    model's state dict (``_orig_mod.``-prefixed when the model was torch.compile'd), AdamW's state
    dict, model_args, iter_num, best_val_loss and the config dict."""
    g = torch.Generator().manual_seed(seed)
    wte = torch.randn(50, 16, generator=g)
    model = {"transformer.wte.weight": wte, "transformer.wpe.weight": torch.randn(8, 16, generator=g),
             "transformer.h.0.attn.c_attn.weight": torch.randn(48, 16, generator=g),
             "transformer.h.0.ln_1.weight": torch.ones(16), "lm_head.weight": wte}  # tied, as in nanoGPT
    params = [torch.nn.Parameter(v.clone()) for v in model.values()]
    opt = torch.optim.AdamW(params)
    sum((p ** 2).sum() for p in params).backward()
    opt.step()
    prefix = "_orig_mod." if compiled else ""  # torch.compile's OptimizedModule names its module _orig_mod
    path.mkdir(parents=True)
    torch.save({"model": {prefix + k: v for k, v in model.items()}, "optimizer": opt.state_dict(),
                "model_args": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8, "bias": False, "vocab_size": 50, "dropout": 0.0},
                "iter_num": iter_num, "best_val_loss": torch.tensor(2.5), "config": {"out_dir": str(path), "compile": compiled}},
               path / "ckpt.pt")
    return model


def test_nanogpt_ckpt_pt_merges_with_its_model_entry_and_without_the_compile_prefix(tmp_path):
    a = _nanogpt_ckpt(tmp_path / "iter1000", 0, 1000, compiled=True)
    b = _nanogpt_ckpt(tmp_path / "iter2000", 1, 2000, compiled=False)
    src = open_input(tmp_path / "iter1000" / "ckpt.pt")
    assert src.kind == "nanogpt" and set(src.tensors) == set(a)
    assert main(["merge", str(tmp_path / "m"), str(tmp_path / "iter1000"), str(tmp_path / "iter2000" / "ckpt.pt"), "--no-progress"]) == 0
    from safetensors.torch import load_file

    m = load_file(tmp_path / "m" / "model.safetensors")
    assert set(m) == set(a)
    for k in a:
        assert torch.allclose(m[k], (a[k] + b[k]) / 2), k


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_pickle_with_code_in_ckpt_pt_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad").mkdir()
    torch.save({"model": {"w": torch.zeros(2)}, "extra": _Payload()}, tmp_path / "bad" / "ckpt.pt")
    assert main(["merge", str(tmp_path / "m"), str(tmp_path / "bad"), str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "ckpt.pt" in err and "weights-only" in err and not (tmp_path / "m").exists()
    assert not (tmp_path / "pwned.txt").exists()
