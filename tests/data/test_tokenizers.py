"""Byte and BPE tokenizers: round trips, JSON save/load, determinism, the missing-dependency error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from riverbed.data import BPETokenizer, ByteTokenizer, DataConfig, load_dataset, load_tokenizer
from riverbed.errors import ConfigError

TEXT = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n" * 40


def test_byte_round_trip_and_save(tmp_path):
    tok = ByteTokenizer()
    ids = tok.encode("naïve – ok")
    assert ids.dtype == np.uint16 and len(ids) == len("naïve – ok".encode())
    assert tok.decode(ids) == "naïve – ok"
    tok.save(tmp_path / "tok.json")
    assert load_tokenizer(tmp_path / "tok.json") == tok


def test_bpe_train_encode_decode_save(tmp_path):
    pytest.importorskip("tokenizers")
    tok = BPETokenizer.train([TEXT], vocab_size=300)
    assert tok.vocab_size == 300
    ids = tok.encode("Shall I compare thee?")
    assert len(ids) < len("Shall I compare thee?")  # merges happened
    assert tok.decode(ids) == "Shall I compare thee?"
    assert tok.decode(tok.encode("unseen ŧext ✓")) == "unseen ŧext ✓"  # byte-level: lossless
    tok.save(tmp_path / "tokenizer.json")
    back = load_tokenizer(tmp_path / "tokenizer.json")
    assert isinstance(back, BPETokenizer) and np.array_equal(back.encode(TEXT), tok.encode(TEXT))
    assert BPETokenizer.train([TEXT], vocab_size=300).to_json() == tok.to_json()  # deterministic


def test_bpe_dataset_is_cached_under_cache_dir(tmp_path):
    pytest.importorskip("tokenizers")
    (tmp_path / "c.txt").write_text(TEXT * 5)
    cfg = DataConfig(source=str(tmp_path / "c.txt"), tokenizer="bpe", bpe_vocab_size=320,
                     heldout_block=128, cache_dir=str(tmp_path / "cache"))
    first = load_dataset(cfg)
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and (entries[0] / "tokenizer.json").is_file()
    second = load_dataset(cfg)
    assert np.array_equal(first.train, second.train)
    assert second.vocab_size == first.vocab_size <= 320  # small text: fewer merges than asked for
    assert first.tokenizer.decode(np.concatenate([first.train, first.heldout]))[:60] != ""
    # The saved tokenizer can be given back as data.tokenizer.
    third = load_dataset(DataConfig(source=cfg.source, tokenizer=str(entries[0] / "tokenizer.json"), heldout_block=128))
    assert np.array_equal(third.heldout, first.heldout)


def test_missing_tokenizers_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ConfigError, match=r"riverbed\[bpe\]"):
        BPETokenizer.train([TEXT], vocab_size=300)
