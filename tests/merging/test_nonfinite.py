"""A merge input holding NaN or inf is refused, naming the file and tensor (issue 9, item 9)."""

import pytest
import torch

import riverbed
from riverbed.cli.main import main
from riverbed.errors import MergeError
from riverbed.merging import engine
from .helpers import load_dir, random_state, write_dir


def _inputs(tmp_path, bad_value, dtype=torch.float32):
    sds = [random_state(i, dtype=dtype) for i in range(3)]
    sds[1]["model.layers.0.mlp.up_proj.weight"].view(-1)[777] = bad_value
    return [write_dir(tmp_path / f"in{i}", sd) for i, sd in enumerate(sds)]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_nonfinite_input_refused_naming_file_and_tensor(tmp_path, bad, dtype):
    paths = _inputs(tmp_path, bad, dtype)
    with pytest.raises(MergeError, match=r"in1/model.safetensors: tensor 'model.layers.0.mlp.up_proj.weight' holds a non-finite value .* at flat index 777"):
        riverbed.merge(tmp_path / "out", paths, verbose=False, progress=False, threads=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in0", "in1", "in2"]  # nothing half-written


def test_allow_nonfinite_and_zero_weight(tmp_path, capsys):
    paths = _inputs(tmp_path, float("nan"))
    assert main(["merge", str(tmp_path / "out"), *map(str, paths), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "in1" in err and "model.layers.0.mlp.up_proj.weight" in err and "--allow-nonfinite" in err
    assert not (tmp_path / "out").exists()
    assert main(["merge", str(tmp_path / "out"), *map(str, paths), "--no-progress", "--allow-nonfinite"]) == 0
    assert torch.isnan(load_dir(tmp_path / "out")["model.layers.0.mlp.up_proj.weight"].view(-1)[777])
    # an input with weight 0 is never read, so its NaN cannot reach the merge
    riverbed.merge(tmp_path / "w", paths, "weights", weights=[1, 0, 1], verbose=False, progress=False)
    assert torch.isfinite(load_dir(tmp_path / "w")["model.layers.0.mlp.up_proj.weight"]).all()


def test_overflow_of_finite_inputs_is_refused(tmp_path):
    sds = [random_state(i) for i in range(2)]
    sds[0]["model.norm.weight"][3], sds[1]["model.norm.weight"][3] = -3e38, 3e38  # -0.5*-3e38 + 1.5*3e38 > fp32 max
    paths = [write_dir(tmp_path / f"in{i}", sd) for i, sd in enumerate(sds)]
    with pytest.raises(MergeError, match=r"tensor 'model.norm.weight': the merge overflows"):
        riverbed.merge(tmp_path / "out", paths, "weights", weights=[-1, 3], verbose=False, progress=False)


def test_check_reads_nothing_extra(tmp_path, monkeypatch):
    """The finite check works on the chunk already in memory: the number of input reads is unchanged."""
    paths = [write_dir(tmp_path / f"in{i}", random_state(i)) for i in range(3)]
    counts = {}
    real = engine._Reader.read

    def counting(self, entry, start, count, buf):
        counts[entry.file] = counts.get(entry.file, 0) + 1
        return real(self, entry, start, count, buf)

    monkeypatch.setattr(engine._Reader, "read", counting)
    riverbed.merge(tmp_path / "a", paths, verbose=False, progress=False)
    checked = dict(counts)
    counts.clear()
    riverbed.merge(tmp_path / "b", paths, verbose=False, progress=False, allow_nonfinite=True)
    assert checked == counts and sum(checked.values()) == 3 * 5  # one read per tensor per input


def test_fp16_output_overflow_is_refused(tmp_path):
    sds = [random_state(i) for i in range(2)]
    sds[0]["model.norm.weight"][5] = sds[1]["model.norm.weight"][5] = 1e6  # finite in fp32, inf in fp16
    paths = [write_dir(tmp_path / f"in{i}", sd) for i, sd in enumerate(sds)]
    with pytest.raises(MergeError, match=r"tensor 'model.norm.weight': merged values exceed the range of the output dtype F16"):
        riverbed.merge(tmp_path / "out", paths, dtype="fp16", verbose=False, progress=False)
    assert not (tmp_path / "out").exists()
    riverbed.merge(tmp_path / "bf", paths, dtype="bf16", verbose=False, progress=False)  # bf16 has fp32's range
