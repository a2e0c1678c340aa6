"""load_dataset: sources, the fixed interleaved held-out split, .bin files, errors naming the path."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from riverbed.data import DataConfig, get_batch, interleaved_split, load_dataset
from riverbed.data import sources as sources_mod
from riverbed.errors import ConfigError


@pytest.fixture(scope="module")
def default_data():
    return load_dataset(DataConfig())


def test_default_corpus_size_and_split(default_data):
    d = default_data
    assert d.vocab_size == 256 and d.meta["kind"] == "default"
    assert [doc["name"] for doc in d.meta["documents"]] == ["shakespeare.txt", "kjv.txt"]
    # Golden sizes of the embedded corpus (byte tokens = UTF-8 bytes, + the 2-byte document separator).
    assert d.meta["n_tokens"] == 5_052_230 + 2 + 4_303_853
    assert len(d.train) + len(d.heldout) == d.meta["n_tokens"]
    assert len(d.heldout) / d.meta["n_tokens"] == pytest.approx(0.05, abs=0.001)
    text = d.tokenizer.decode(d.heldout)
    assert "thou" in text and "LORD" in text  # both Shakespeare and the Bible are held out
    assert "HAMLET" in d.tokenizer.decode(d.train[:2_000_000])
    assert d.meta["fingerprint"] == "7230bdc4c5fa41e2"  # same bytes, same split, on every machine


def test_default_corpus_checksum_is_enforced(monkeypatch):
    bad = (("shakespeare.txt.gz", "0" * 64),)
    monkeypatch.setattr(sources_mod, "CORPUS_FILES", bad)
    with pytest.raises(ConfigError, match="shakespeare.txt.gz does not match"):
        load_dataset(DataConfig())


def test_interleaved_split_is_disjoint_and_complete():
    tokens = np.arange(103, dtype=np.uint32)
    train, held = interleaved_split(tokens, block=10, every=4)
    assert held.tolist() == list(range(30, 40)) + list(range(70, 80))
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(103))
    with pytest.raises(ConfigError, match="heldout_block"):
        interleaved_split(tokens[:25], block=10, every=4)


def test_no_heldout_token_is_ever_trained_on(tmp_path):
    # Unique token ids (value = position) through the real loader, then every training batch of
    # two epochs: no held-out id may appear.
    path = tmp_path / "ids.bin"
    np.arange(70_000, dtype=np.uint32).tofile(path)
    data = load_dataset(DataConfig(source=str(path), token_dtype="uint32", heldout_block=500, heldout_fraction=0.1))
    held = set(data.heldout.tolist())
    assert len(held) == 7_000 and held.isdisjoint(data.train.tolist())
    seen = np.concatenate([get_batch(data.train, s, 32, 63, seed=0)[1].numpy().ravel() for s in range(64)])
    assert held.isdisjoint(seen.tolist())
    assert data.vocab_size == 70_000


def test_text_file_and_folder(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("zzz\r\n" * 3000)
    (tmp_path / "a.txt").write_text("aaa\n" * 3000)
    (tmp_path / "ignored.md").write_text("not text data")
    cfg = DataConfig(source=str(tmp_path), heldout_block=256)
    data = load_dataset(cfg)
    assert [d["name"] for d in data.meta["documents"]] == ["a.txt", "b/z.txt"]
    full = data.tokenizer.decode(np.concatenate([data.train, data.heldout]))
    assert "\r" not in full and sorted(full) == sorted("aaa\n" * 3000 + "\n\n" + "zzz\n" * 3000)
    again = load_dataset(cfg)
    assert np.array_equal(again.train, data.train) and np.array_equal(again.heldout, data.heldout)
    single = load_dataset(DataConfig(source=str(tmp_path / "a.txt"), heldout_block=64))
    assert single.meta["n_tokens"] == 12_000


def test_bin_pair_used_as_given(tmp_path):
    train = np.arange(5000, dtype=np.uint16) % 1000
    val = np.arange(600, dtype=np.uint16) % 1000
    train.tofile(tmp_path / "train.bin")
    val.tofile(tmp_path / "val.bin")
    data = load_dataset(DataConfig(source=str(tmp_path)))
    assert isinstance(data.train, np.memmap)
    assert np.array_equal(data.train, train) and np.array_equal(data.heldout, val)
    assert data.vocab_size == 1000 and data.tokenizer is None and data.meta["kind"] == "bin-split"
    assert load_dataset(DataConfig(source=str(tmp_path), vocab_size=50_257)).vocab_size == 50_257


def test_bin_dtype_from_vocab_size(tmp_path):
    tokens = np.array([0, 70_000, 5, 99_999] * 3000, dtype=np.uint32)
    tokens.tofile(tmp_path / "big.bin")
    data = load_dataset(DataConfig(source=str(tmp_path / "big.bin"), vocab_size=100_000, heldout_block=100))
    assert data.train.dtype == np.uint32 and data.vocab_size == 100_000
    assert np.array_equal(np.concatenate([data.train[:900], data.heldout[:100]]), tokens[:1000])


@pytest.mark.parametrize(
    "setup, kwargs, match",
    [
        (lambda p: None, {"source": "missing.txt"}, "missing.txt does not exist"),
        (lambda p: None, {"source": "missing.bin"}, "missing.bin not found"),
        (lambda p: (p / "empty").mkdir(), {"source": "empty"}, "empty holds no .txt"),
        (lambda p: (p / "odd.bin").write_bytes(b"\x00" * 6), {"source": "odd.bin", "token_dtype": "uint32"},
         r"odd.bin has 6 bytes.*uint32"),
        (lambda p: (p / "nul.bin").write_bytes(b""), {"source": "nul.bin"}, "nul.bin is empty"),
        (lambda p: np.array([0, 7], np.uint16).tofile(p / "v.bin"), {"source": "v.bin", "vocab_size": 5},
         r"v.bin holds token id 7 >= data.vocab_size=5"),
        (lambda p: (p / "latin.txt").write_bytes("caf\u00e9".encode("latin-1")), {"source": "latin.txt"},
         "latin.txt is not UTF-8"),
        (lambda p: (p / "d").mkdir() or np.zeros(9, np.uint16).tofile(p / "d" / "train.bin"), {"source": "d"},
         "no val.bin"),
        (lambda p: (p / "t.txt").write_text("hi"), {"source": "t.txt", "tokenizer": "nope.json"},
         "nope.json not found"),
    ],
)
def test_errors_name_the_path(tmp_path, setup, kwargs, match):
    setup(tmp_path)
    kwargs = dict(kwargs, source=str(tmp_path / kwargs["source"]))
    with pytest.raises(ConfigError, match=match):
        load_dataset(DataConfig(**kwargs))


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("heldout_fraction", 0.0, "heldout_fraction"),
        ("heldout_fraction", 0.9, "heldout_fraction"),
        ("token_dtype", "int8", "token_dtype"),
        ("heldout_block", 0, "heldout_block"),
        ("bpe_vocab_size", 100, "bpe_vocab_size"),
        ("vocab_size", 0, "vocab_size"),
        ("source", "", "source"),
    ],
)
def test_config_validation(field, value, match):
    with pytest.raises(ConfigError, match=match):
        DataConfig(**{field: value})


def test_config_from_dict():
    cfg = DataConfig.from_dict({"source": "x.bin", "token_dtype": "uint32"})
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="data.path"):
        DataConfig.from_dict({"path": "x"})


def test_corpus_files_are_deterministic_gzip():
    from importlib import resources

    for name, _ in sources_mod.CORPUS_FILES:
        raw = (resources.files("riverbed.data") / "corpus" / name).read_bytes()
        assert raw[4:8] == b"\x00\x00\x00\x00"  # gzip mtime = 0: the same bytes whenever rebuilt
        assert gzip.decompress(raw).decode("utf-8").endswith("\n")
