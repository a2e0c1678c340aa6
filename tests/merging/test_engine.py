"""The streaming engine against a float64 reference, across dtypes, shards and thread counts."""

import json

import pytest
import torch
from safetensors import safe_open

import riverbed
from riverbed.merging import engine
from riverbed.checkpoints.formats import read_header
from .helpers import load_dir, random_state, reference, write_dir

FP32_EPS = 2.0**-24


def _inputs(tmp_path, n=3, dtype=torch.float32, shards=1):
    sds = [random_state(i, dtype) for i in range(n)]
    paths = [write_dir(tmp_path / f"in{i}", sd, shards=shards) for i, sd in enumerate(sds)]
    return sds, paths


@pytest.mark.parametrize("method, kw", [("sma", {}), ("ema", {"alpha": 0.3}), ("wma", {}), ("weights", {"weights": [0.5, -0.25, 1.0]})])
def test_matches_float64_reference_within_fp32_rounding(tmp_path, method, kw):
    sds, paths = _inputs(tmp_path)
    r = riverbed.merge(tmp_path / "out", paths, method, verbose=False, progress=False, **kw)
    ref = reference(sds, r.weights)
    got = load_dir(tmp_path / "out")
    for k, v in ref.items():
        assert got[k].dtype == torch.float32
        # each of the N fused multiply-adds rounds once in fp32; the output conversion is exact
        scale = sum(abs(float(w)) * sd[k].double().abs() for w, sd in zip(r.weights, sds))
        # each product and each sum rounds once in fp32, the weight too: at most (N + 1) u * sum|w x|
        assert torch.all((got[k].double() - v).abs() <= (len(sds) + 1) * FP32_EPS * scale * 1.001 + 1e-30), k


def test_fp64_accumulation_rounds_once(tmp_path):
    sds, paths = _inputs(tmp_path)
    r = riverbed.merge(tmp_path / "out", paths, "ema", alpha=0.3, accumulate="fp64", verbose=False, progress=False)
    ref = reference(sds, r.weights)
    got = load_dir(tmp_path / "out")
    for k, v in ref.items():
        # float64 sum then one rounding to float32: at most half an fp32 ulp (plus fp64 noise)
        assert torch.all((got[k].double() - v).abs() <= FP32_EPS * v.abs() * 1.0001 + 1e-30), k


def test_bf16_inputs_keep_bf16_and_round_once(tmp_path):
    sds, paths = _inputs(tmp_path, dtype=torch.bfloat16)
    r = riverbed.merge(tmp_path / "out", paths, "sma", accumulate="fp64", verbose=False, progress=False)
    got = load_dir(tmp_path / "out")
    ref = reference(sds, r.weights)
    for k, v in ref.items():
        assert got[k].dtype == torch.bfloat16
        assert torch.equal(got[k], v.float().to(torch.bfloat16)), k


def test_output_dtype_as_asked(tmp_path):
    sds, paths = _inputs(tmp_path, dtype=torch.bfloat16)
    r = riverbed.merge(tmp_path / "out", paths, "sma", dtype="fp32", verbose=False, progress=False)
    got = load_dir(tmp_path / "out")
    ref = reference(sds, r.weights)
    assert all(t.dtype == torch.float32 for t in got.values())
    for k, v in ref.items():
        assert torch.allclose(got[k].double(), v, rtol=1e-6, atol=1e-6)


def test_sma_invariant_to_input_order(tmp_path):
    sds, paths = _inputs(tmp_path, n=4)
    riverbed.merge(tmp_path / "a", paths, "sma", verbose=False, progress=False)
    riverbed.merge(tmp_path / "b", [paths[2], paths[0], paths[3], paths[1]], "sma", verbose=False, progress=False)
    a, b = load_dir(tmp_path / "a"), load_dir(tmp_path / "b")
    for k in a:
        scale = sum(0.25 * sd[k].double().abs() for sd in sds)
        assert torch.all((a[k].double() - b[k].double()).abs() <= 2 * 5 * FP32_EPS * scale * 1.001 + 1e-30), k


def test_bit_identical_whatever_the_thread_count(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "CHUNK_ELEMS", 100)  # many chunks, finishing in any order
    _, paths = _inputs(tmp_path, n=3, dtype=torch.bfloat16)
    blobs = []
    for threads in (1, 2, 3):
        out = tmp_path / f"out{threads}"
        riverbed.merge(out, paths, "ema", alpha=0.2, threads=threads, max_shard_size="4KB", verbose=False, progress=False)
        blobs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert len(blobs[0]) > 3  # sharded
    assert blobs[0] == blobs[1] == blobs[2]


def test_sharded_round_trip_and_index(tmp_path):
    sds, paths = _inputs(tmp_path, n=2, shards=3)
    r = riverbed.merge(tmp_path / "out", paths, "sma", max_shard_size="8KB", verbose=False, progress=False)
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    shard_files = sorted(set(index["weight_map"].values()))
    assert len(shard_files) > 1 and shard_files[0].endswith(f"-of-{len(shard_files):05d}.safetensors")
    assert set(index["weight_map"]) == set(sds[0])
    assert index["metadata"]["total_size"] == sum(t.numel() * 4 for t in sds[0].values())
    for name, fname in index["weight_map"].items():
        with safe_open(str(tmp_path / "out" / fname), "pt") as f:
            assert name in f.keys()
    # a one-input merge of the sharded output reproduces it bit for bit
    riverbed.merge(tmp_path / "again", [tmp_path / "out"], "sma", verbose=False, progress=False)
    a, b = load_dir(tmp_path / "out"), load_dir(tmp_path / "again")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert r.weights == (0.5, 0.5)


def test_recipe_metadata_and_carried_files(tmp_path):
    sds = [random_state(i) for i in range(2)]
    old = write_dir(tmp_path / "old", sds[0], config={"which": "old"})
    new = write_dir(tmp_path / "new", sds[1], config={"which": "new"})
    (new / "tokenizer.json").write_text("{}")
    (new / "generation_config.json").write_text("{}")
    r = riverbed.merge(tmp_path / "out", [old, new], "ema", alpha=0.25, verbose=False, progress=False)
    out = tmp_path / "out"
    assert json.loads((out / "config.json").read_text()) == {"which": "new"}
    assert (out / "tokenizer.json").exists() and (out / "generation_config.json").exists()
    recipe = json.loads((out / "merge.json").read_text())
    assert recipe["method"] == "ema" and recipe["effective_weights"] == [0.75, 0.25] and recipe["alpha"] == 0.25
    assert recipe["inputs"] == [str(old), str(new)] and "riverbed_version" in recipe
    _, meta = read_header(out / "model.safetensors")
    assert meta["format"] == "pt" and meta["merge_method"] == "ema"
    assert json.loads(meta["merge_weights"]) == [0.75, 0.25]
    assert all(isinstance(v, str) for v in meta.values())
    assert sorted(p.name for p in r.files) == sorted(p.name for p in out.iterdir())


def test_riverbed_checkpoint_inputs_do_not_carry_their_state(tmp_path):
    sds = [random_state(i) for i in range(2)]
    paths = [write_dir(tmp_path / f"step_{i}", sd, state={"step": i, "tokens": 10 * i}) for i, sd in enumerate(sds)]
    riverbed.merge(tmp_path / "out", paths, "sma", verbose=False, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README.md", "merge.json", "model.safetensors"]


def test_non_float_tensors_copied_from_newest(tmp_path):
    a, b = random_state(0), random_state(1)
    a["ids"], b["ids"] = torch.arange(5), torch.arange(5) * 7
    paths = [write_dir(tmp_path / "a", a), write_dir(tmp_path / "b", b)]
    riverbed.merge(tmp_path / "out", paths, "sma", verbose=False, progress=False)
    assert torch.equal(load_dir(tmp_path / "out")["ids"], torch.arange(5) * 7)


def test_single_file_output_and_input(tmp_path):
    sds = [random_state(i) for i in range(2)]
    from safetensors.torch import save_file

    files = []
    for i, sd in enumerate(sds):
        save_file(sd, str(tmp_path / f"m{i}.safetensors"))
        files.append(tmp_path / f"m{i}.safetensors")
    r = riverbed.merge(tmp_path / "merged.safetensors", files, "sma", verbose=False, progress=False)
    assert r.files == [tmp_path / "merged.safetensors"]
    from safetensors.torch import load_file

    got = load_file(str(tmp_path / "merged.safetensors"))
    ref = reference(sds, r.weights)
    assert all(torch.allclose(got[k].double(), ref[k], atol=1e-6) for k in ref)


def test_pytorch_bin_import(tmp_path):
    sds = [random_state(i) for i in range(2)]
    (tmp_path / "bin").mkdir()
    torch.save(sds[0], tmp_path / "bin" / "pytorch_model.bin")
    st = write_dir(tmp_path / "st", sds[1])
    riverbed.merge(tmp_path / "out", [tmp_path / "bin", st], "sma", verbose=False, progress=False)
    got, ref = load_dir(tmp_path / "out"), reference(sds, (0.5, 0.5))
    assert all(torch.allclose(got[k].double(), ref[k], atol=1e-6) for k in ref)


def test_dry_run_writes_nothing_and_prints_weights(tmp_path, capsys):
    _, paths = _inputs(tmp_path)
    r = riverbed.merge(tmp_path / "out", paths, "ema", alpha=0.1, dry_run=True, progress=False)
    assert r.dry_run and r.files == [] and not (tmp_path / "out").exists()
    text = capsys.readouterr().out
    assert "0.810000" in text and "0.090000" in text and "0.100000" in text  # 0.9^2, 0.1*0.9, 0.1
    assert "model.safetensors" in text


def test_merge_path_never_imports_transformers(tmp_path):
    import subprocess
    import sys

    _, paths = _inputs(tmp_path, n=2)
    code = (
        "import sys, riverbed.merging, riverbed\n"
        f"riverbed.merge({str(tmp_path / 'out')!r}, {[str(p) for p in paths]!r}, verbose=False, progress=False)\n"
        "from riverbed.cli.main import main\n"
        f"assert main(['merge', {str(tmp_path / 'cli')!r}, {str(paths[0])!r}, {str(paths[1])!r}, '--no-progress']) == 0\n"
        "assert 'transformers' not in sys.modules, 'transformers imported'\n"
        # safetensors inputs need no torch either: start-up is numpy's, not torch's
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert (tmp_path / "out" / "model.safetensors").exists() and (tmp_path / "cli" / "model.safetensors").exists()


def test_bf16_encoding_matches_torch_rounding():
    import numpy as np

    from riverbed.merging.kernels import Buffers, encode

    g = torch.Generator().manual_seed(0)
    x = torch.cat([
        torch.randn(5000, generator=g) * 10.0 ** torch.randint(-30, 30, (5000,), generator=g),
        torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 3.4028235e38, -3.4028235e38, 1e-45, 1.0 + 2**-8, 1.0 + 3 * 2**-8]),
    ]).float()
    got = encode(x.numpy(), "BF16", Buffers(len(x), np.float32)).view(np.uint16)
    want = x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(x.numpy())
    assert np.array_equal(got[~nan], want[~nan])
    assert torch.isnan(torch.from_numpy(got[nan].copy()).view(torch.bfloat16)).all()


def test_fp16_inputs(tmp_path):
    sds, paths = _inputs(tmp_path, dtype=torch.float16)
    r = riverbed.merge(tmp_path / "out", paths, "wma", verbose=False, progress=False)
    got, ref = load_dir(tmp_path / "out"), reference(sds, r.weights)
    for k, v in ref.items():
        assert got[k].dtype == torch.float16
        assert torch.allclose(got[k].double(), v, rtol=2**-10, atol=2**-24), k
