"""The hand-written safetensors header parser is exactly as strict as the safetensors library
(issue 9, item 8): every malformed file is refused by both, every odd-but-valid one read by both."""

import json
import struct

import pytest
from safetensors import safe_open

from riverbed.errors import CheckpointError
from riverbed.merging.formats import read_header

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
