"""Tokenizers: UTF-8 bytes (default) and byte-level BPE trained with the ``tokenizers`` library.

Both save to and load from JSON (``save(path)`` / :func:`load_tokenizer`); the BPE file is the
``tokenizer.json`` Hugging Face tools read.

>>> tok = ByteTokenizer()
>>> ids = tok.encode("Hark!")
>>> ids.tolist(), tok.decode(ids), tok.vocab_size
([72, 97, 114, 107, 33], 'Hark!', 256)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from riverbed.io.atomic import write_text
from riverbed.io.strict_json import read_json
from riverbed.errors import ConfigError


def token_dtype(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype holding every token id (uint16 up to 65536 ids, else uint32)."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> np.ndarray: ...
    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...
    def save(self, path: str | os.PathLike[str]) -> None: ...


class ByteTokenizer:
    """Token = UTF-8 byte. Lossless on any text, no training, vocab 256."""

    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return bytes(np.asarray(ids, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")

    def save(self, path: str | os.PathLike[str]) -> None:
        write_text(path, json.dumps({"riverbed_tokenizer": "byte", "vocab_size": 256}) + "\n")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByteTokenizer)

    def __hash__(self) -> int:
        return hash("ByteTokenizer")


def _require_tokenizers() -> Any:
    try:
        import tokenizers  # lazy: optional dependency (ImportError handled here)
    except ImportError:
        raise ConfigError(
            "data.tokenizer='bpe' needs the 'tokenizers' package: pip install 'riverbed[bpe]'"
        ) from None
    return tokenizers


class BPETokenizer:
    """Byte-level BPE (GPT-2 style pre-tokenization) backed by ``tokenizers.Tokenizer``.

    >>> tok = BPETokenizer.train(["to be or not to be"] * 50, vocab_size=300)
    >>> tok.decode(tok.encode("to be or not")) == "to be or not"
    True
    """

    def __init__(self, backend: Any) -> None:
        self._tok = backend

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        """Train on ``texts``; deterministic for the same texts and vocab size."""
        tk = _require_tokenizers()
        if vocab_size < 257:
            raise ConfigError(f"data.bpe_vocab_size must be >= 257 (256 byte symbols + merges), got {vocab_size}")
        tok = tk.Tokenizer(tk.models.BPE())
        tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> BPETokenizer:
        tk = _require_tokenizers()
        try:
            return cls(tk.Tokenizer.from_file(str(path)))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ConfigError(f"{path}: not a valid tokenizer.json ({exc})") from None

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text).ids, dtype=token_dtype(self.vocab_size))

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """Encode many documents (in parallel inside ``tokenizers``) into one concatenated stream."""
        parts = [np.asarray(e.ids, dtype=token_dtype(self.vocab_size)) for e in self._tok.encode_batch(texts)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=token_dtype(self.vocab_size))

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self._tok.decode([int(i) for i in np.asarray(ids).tolist()])

    def to_json(self) -> str:
        return self._tok.to_str()

    def save(self, path: str | os.PathLike[str]) -> None:
        write_text(path, self.to_json())


def load_tokenizer(path: str | os.PathLike[str]) -> ByteTokenizer | BPETokenizer:
    """Load a tokenizer saved by ``save`` (byte) or any Hugging Face ``tokenizer.json`` (BPE)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"data.tokenizer: tokenizer file {p} not found")
    head = read_json(p, ConfigError, name=f"data.tokenizer: {p}")
    if isinstance(head, dict) and head.get("riverbed_tokenizer") == "byte":
        return ByteTokenizer()
    return BPETokenizer.from_file(p)
