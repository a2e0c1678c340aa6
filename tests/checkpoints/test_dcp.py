"""torch distributed-checkpoint (DCP) folders as merge and eval inputs: written by the real
``torch.distributed.checkpoint.save`` (one process, no process group), read without torch's
unpickler, streamed by file offset, and a foreign type in ``.metadata`` refused by name."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file, save_file

import riverbed
from riverbed.cli.main import main
from riverbed.errors import CheckpointError
from riverbed.checkpoints.dcp import MetadataUnpickler
from riverbed.checkpoints.formats import TensorEntry, load_tensors, open_input, read_span

from merging.helpers import random_state

HERE = Path(__file__).resolve().parent


def save_dcp(path: Path, sd: dict[str, object]) -> Path:
    with warnings.catch_warnings():  # "torch.distributed is disabled ... assuming a single process"
        warnings.simplefilter("ignore")
        dcp.save(sd, checkpoint_id=str(path))
    return path


def test_single_process_dcp_save_is_read_exactly(tmp_path):
    sd = random_state(1)
    sd["model.norm.weight"] = sd["model.norm.weight"].to(torch.bfloat16)
    sd["strided"] = torch.randn(3, 5).t()  # a transposed view: saved with its strides, not contiguous
    sd["step"] = torch.tensor(7)
    src = open_input(save_dcp(tmp_path / "ck", sd))
    assert src.kind == "dcp" and set(src.tensors) == set(sd)
    assert src.tensors["lm_head.weight"].offset > 0  # streamed by offset ...
    assert src.tensors["strided"].offset == -1  # ... a strided view assembled in memory
    got = load_tensors(src)
    for k, v in sd.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


def test_small_chunks_read_whole_and_large_ones_in_place_give_the_same_tensors(tmp_path):
    """Chunks up to SMALL_CHUNK are parsed from one read, larger ones through a window on the file: both exact."""
    from riverbed.checkpoints.dcp import SMALL_CHUNK

    sd = {"big": torch.randn(SMALL_CHUNK // 4 + 1000), "big_t": torch.randn(600, 500).t(),
          **{f"small.{i}": torch.randn(7) for i in range(50)}}
    assert sd["big"].numel() * 4 > SMALL_CHUNK and sd["big_t"].numel() * 4 > SMALL_CHUNK
    src = open_input(save_dcp(tmp_path / "ck", sd))
    got = load_tensors(src)
    for k, v in sd.items():
        assert torch.equal(got[k], v), k


def test_dcp_safetensors_serialisation_is_read_from_its_headers(tmp_path):
    from torch.distributed.checkpoint.filesystem import SerializationFormat

    sd = random_state(2)
    sd["model.norm.weight"] = sd["model.norm.weight"].to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(sd, storage_writer=dcp.FileSystemWriter(str(tmp_path / "ck"), serialization_format=SerializationFormat.SAFETENSORS))
    got = load_tensors(open_input(tmp_path / "ck"))  # its recorded offsets are 0 for every tensor: the header says where
    assert all(got[k].dtype == v.dtype and torch.equal(got[k], v) for k, v in sd.items())


def test_merge_of_dcp_folders_equals_merge_of_the_same_weights_in_safetensors(tmp_path):
    sds = [random_state(i) for i in range(3)]
    dcps = [str(save_dcp(tmp_path / f"step-{100 * (i + 1)}", sd)) for i, sd in enumerate(sds)]
    sts = []
    for i, sd in enumerate(sds):
        sts.append(str(tmp_path / f"step{100 * (i + 1)}.safetensors"))
        save_file(sd, sts[-1])
    a = riverbed.merge(tmp_path / "from_dcp", dcps, method="ema", alpha=0.3, progress=False, verbose=False)
    b = riverbed.merge(tmp_path / "from_st", sts, method="ema", alpha=0.3, progress=False, verbose=False)
    assert a.weights == b.weights
    ma, mb = load_file(tmp_path / "from_dcp" / "model.safetensors"), load_file(tmp_path / "from_st" / "model.safetensors")
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    # the CLI, with the steps read from the torchtitan-style step-N folder names
    assert main(["merge", str(tmp_path / "cli"), dcps[2], dcps[0], dcps[1], "--no-progress"]) == 0
    recipe = json.loads((tmp_path / "cli" / "merge.json").read_text())
    assert [Path(p).name for p in recipe["inputs"]] == ["step-100", "step-200", "step-300"]


def test_optimizer_state_and_bytes_are_left_out_and_model_prefix_dropped(tmp_path):
    w = random_state(0)
    sd = {"model": dict(w), "optim": {"state": {k: {"exp_avg": torch.zeros_like(v)} for k, v in w.items()}},
          "train_state": {"step": 10, "note": "not a tensor"}}
    src = open_input(save_dcp(tmp_path / "olmo", sd))  # OLMo-core's {"model", "optim"} layout
    assert set(src.tensors) == set(w)
    sd = {**w, "optimizer": {"state": {"lm_head.weight": {"exp_avg": torch.ones(67, 24)}}},
          "train_state": {"step": torch.tensor(10, dtype=torch.int32)}, "lr_scheduler": {"last_epoch": 10}}
    src = open_input(save_dcp(tmp_path / "titan", sd))  # torchtitan: weights at the top, optimizer.*, train_state.step
    assert set(src.tensors) == set(w)


def test_eval_of_a_dcp_folder_equals_eval_of_the_same_weights(tmp_path, tiny_toml):
    from riverbed.checkpoints.state import model_tensors
    from riverbed.config import load_config_text
    from riverbed.model import build_model
    from riverbed.training.evaluate import evaluate_checkpoints

    cfg = load_config_text(tiny_toml, source="tiny")
    weights = model_tensors(build_model(cfg.model, seed=3))
    save_file(weights, str(tmp_path / "w.safetensors"))
    save_dcp(tmp_path / "ck", dict(weights))
    a, b = evaluate_checkpoints([tmp_path / "ck", tmp_path / "w.safetensors"], cfg)
    assert a.kind == "dcp" and a.loss == b.loss


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_foreign_type_in_dcp_metadata_is_refused_by_name(tmp_path, capsys, monkeypatch):
    ck = save_dcp(tmp_path / "ck", random_state(0))
    reader = dcp.FileSystemReader(str(ck))
    md = reader.read_metadata()  # torch's own reader, on a file this test just wrote
    md.storage_meta.modules = [_Payload()]
    (ck / ".metadata").write_bytes(pickle.dumps(md))
    before = {p.name: p.read_bytes() for p in ck.iterdir()}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        open_input(ck)
    assert main(["merge", str(tmp_path / "out"), str(ck), str(ck)]) == 2
    err = capsys.readouterr().err
    assert "system" in err and ".metadata" in err and "Traceback" not in err
    assert not (tmp_path / "pwned.txt").exists() and not (tmp_path / "out").exists()
    assert {p.name: p.read_bytes() for p in ck.iterdir()} == before


def test_metadata_unpickler_admits_only_dcp_types(tmp_path):
    import collections
    import datetime
    import io

    for obj in (collections.Counter(a=1), datetime.date(2020, 1, 1), torch.zeros(2)):
        data = pickle.dumps(obj)
        with pytest.raises(CheckpointError, match="refusing to unpickle"):
            MetadataUnpickler(io.BytesIO(data), tmp_path / ".metadata").load()


def test_corrupt_metadata_and_missing_data_file_name_the_file(tmp_path):
    ck = save_dcp(tmp_path / "ck", random_state(0))
    good = (ck / ".metadata").read_bytes()
    (ck / ".metadata").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=r"ck/\.metadata: corrupt DCP metadata"):
        open_input(ck)
    (ck / ".metadata").write_bytes(good)
    (ck / "__0_0.distcp").unlink()
    with pytest.raises(CheckpointError, match=r"data file .*__0_0\.distcp is missing"):
        open_input(ck)


def test_read_span_crosses_pieces(tmp_path):
    data = torch.arange(10, dtype=torch.float32)
    f1, f2 = tmp_path / "a", tmp_path / "b"
    f1.write_bytes(b"xx" + data[:4].numpy().tobytes())
    f2.write_bytes(data[4:].numpy().tobytes())
    e = TensorEntry("w", "F32", (10,), f1, 2, 40, ((0, f1, 2, 4), (4, f2, 0, 6)))
    fds = {f: os.open(f, os.O_RDONLY) for f in (f1, f2)}
    try:
        buf = bytearray(7 * 4)
        read_span(e, 2, 7, memoryview(buf), fds.__getitem__)
    finally:
        for fd in fds.values():
            os.close(fd)
    assert torch.equal(torch.frombuffer(buf, dtype=torch.float32), data[2:9])


@pytest.mark.slow
def test_dcp_saved_by_two_processes_streams_row_shards_and_assembles_column_shards(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(HERE / "dcp_shard_worker.py"), str(tmp_path / "ck")], check=True, env=env, timeout=300)
    src = open_input(tmp_path / "ck")
    assert len(src.tensors["rows"].pieces) == 2 and len(src.tensors["odd"].pieces) == 2  # FSDP row shards, streamed
    assert src.tensors["cols"].offset == -1  # column shards: assembled
    full = load_file(tmp_path / "full.safetensors")
    got = load_tensors(src)
    assert all(torch.equal(full[k], got[k]) for k in full)
    riverbed.merge(tmp_path / "m", [tmp_path / "ck", tmp_path / "ck"], progress=False, verbose=False)
    merged = load_file(tmp_path / "m" / "model.safetensors")
    assert all(torch.equal(full[k], merged[k]) for k in full)
