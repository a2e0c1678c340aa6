"""Bad input: a clear error naming the tensor and files, and nothing left at OUT."""

import errno
import json
import struct

import pytest
import torch

import riverbed
from riverbed.errors import CheckpointError, MergeError
from riverbed.merging import merge_plan as plan_mod
from riverbed.merging import writer
from .helpers import load_dir, random_state, write_dir


def _two(tmp_path, **kw):
    return [write_dir(tmp_path / f"in{i}", random_state(i, **kw)) for i in range(2)]


def _merge(tmp_path, inputs, **kw):
    return riverbed.merge(tmp_path / "out", inputs, kw.pop("method", "sma"), verbose=False, progress=False, **kw)


def _leftovers(tmp_path):
    return [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_shape_mismatch_names_tensor_and_files(tmp_path):
    a = write_dir(tmp_path / "a", random_state(0))
    b = write_dir(tmp_path / "b", random_state(1, shapes={**{k: tuple(v.shape) for k, v in random_state(0).items()}, "lm_head.weight": (66, 24)}))
    with pytest.raises(MergeError, match=r"'lm_head.weight' has shape \[67, 24\] in .*a/model.safetensors but \[66, 24\] in .*b/model.safetensors"):
        _merge(tmp_path, [a, b])
    assert not (tmp_path / "out").exists()


def test_name_and_dtype_mismatch(tmp_path):
    a = write_dir(tmp_path / "a", random_state(0))
    sd = random_state(1)
    sd["extra.weight"] = torch.zeros(2)
    b = write_dir(tmp_path / "b", sd)
    with pytest.raises(MergeError, match=r"'extra.weight' is in .*b but missing from .*a"):
        _merge(tmp_path, [a, b])
    c = write_dir(tmp_path / "c", random_state(2, dtype=torch.bfloat16))
    with pytest.raises(MergeError, match=r"dtype F32 in .*a/model.safetensors but BF16 in .*c/model.safetensors"):
        _merge(tmp_path, [a, c])


def test_truncated_file(tmp_path):
    a, b = _two(tmp_path)
    f = b / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=r"model.safetensors: truncated safetensors file: tensor '.*' data_offsets end at \d+, beyond the file size"):
        _merge(tmp_path, [a, b])
    f.write_bytes(struct.pack("<Q", 10**6) + b"{}")
    with pytest.raises(CheckpointError, match=r"header length 1000000 is beyond the file size 10"):
        _merge(tmp_path, [a, b])
    f.write_bytes(struct.pack("<Q", 4) + b"{no}")
    with pytest.raises(CheckpointError, match="not JSON"):
        _merge(tmp_path, [a, b])
    f.write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="truncated"):
        _merge(tmp_path, [a, b])
    assert not (tmp_path / "out").exists()


def test_index_naming_missing_shard(tmp_path):
    a = write_dir(tmp_path / "a", random_state(0), shards=2)
    b = write_dir(tmp_path / "b", random_state(1), shards=2)
    (b / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"names shard 'model-00002-of-00002.safetensors', which is missing"):
        _merge(tmp_path, [a, b])


def test_missing_input_and_non_checkpoint_dir(tmp_path):
    a, _ = _two(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        _merge(tmp_path, [a, tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no weights found"):
        _merge(tmp_path, [a, tmp_path / "empty"])


def test_weights_must_sum_positive(tmp_path):
    a, b = _two(tmp_path)
    with pytest.raises(MergeError, match="sum to a positive number"):
        _merge(tmp_path, [a, b], method="weights", weights=[1.0, -1.0])


def test_existing_out_refused(tmp_path):
    a, b = _two(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(MergeError, match="already exists"):
        _merge(tmp_path, [a, b])
    assert (tmp_path / "out" / "keep.txt").read_text() == "x"


def test_disk_full_mid_write_keeps_old_out(tmp_path, monkeypatch):
    a, b = _two(tmp_path)
    _merge(tmp_path, [a, b])
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    calls = {"n": 0}
    real = writer._pwrite

    def full(fd, data, offset):
        calls["n"] += 1
        if calls["n"] > 2:  # header and one chunk written, then the disk fills
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(writer, "_pwrite", full)
    with pytest.raises(MergeError, match=r"disk full while merging tensor '[\w.]+' into model.safetensors \(inputs: .*in1/model.safetensors, .*in0/model.safetensors\)"):
        _merge(tmp_path, [b, a], overwrite=True, threads=2)
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert after == before  # the old OUT survived intact
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    # fresh OUT + disk full: nothing at OUT
    monkeypatch.setattr(writer, "_pwrite", lambda fd, data, off: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(MergeError, match="disk full"):
        riverbed.merge(tmp_path / "fresh", [a, b], verbose=False, progress=False)
    assert not (tmp_path / "fresh").exists() and _leftovers(tmp_path) == []


def test_overwrite_replaces(tmp_path):
    a, b = _two(tmp_path)
    _merge(tmp_path, [a, b])
    _merge(tmp_path, [a, b], method="weights", weights=[1, 0], overwrite=True)
    got = load_dir(tmp_path / "out")
    assert all(torch.equal(got[k], v) for k, v in random_state(0).items())
    assert json.loads((tmp_path / "out" / "merge.json").read_text())["weights"] == [1.0, 0.0]  # explicit weights, as given


def test_not_enough_disk_space_refused_before_writing(tmp_path, monkeypatch):
    a, b = _two(tmp_path)

    class Usage:
        free = 100

    monkeypatch.setattr(plan_mod.shutil, "disk_usage", lambda p: Usage())
    with pytest.raises(MergeError, match=r"not enough free disk space .* 100 B free"):
        _merge(tmp_path, [a, b])
    assert not (tmp_path / "out").exists()


def test_bad_options(tmp_path):
    a, b = _two(tmp_path)
    with pytest.raises(MergeError, match="max shard size"):
        _merge(tmp_path, [a, b], max_shard_size="lots")
    with pytest.raises(MergeError, match="accumulate"):
        _merge(tmp_path, [a, b], accumulate="fp16")
    with pytest.raises(MergeError, match="output dtype"):
        _merge(tmp_path, [a, b], dtype="int8")
