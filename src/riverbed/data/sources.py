"""Where text and tokens come from: the embedded corpus, user text files/folders, nanoGPT ``.bin`` files.

The embedded corpus is the complete works of Shakespeare (42 modern-spelling Project Gutenberg
texts) and the King James Bible, ~9.4 MB of UTF-8, shipped as ``corpus/*.txt.gz`` and checked
against the SHA-256 below on every load (see ``corpus/SOURCES.md``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from importlib import resources
from pathlib import Path

import numpy as np

from riverbed.io.input_files import read_text, regular_file
from riverbed.errors import ConfigError

# (file, sha256 of the decompressed UTF-8 text); order = order in the token stream.
CORPUS_FILES: tuple[tuple[str, str], ...] = (
    ("shakespeare.txt.gz", "233f3954cb89b4ff94ef856d4ae18705e4aea9b352082215b36132dee5a3daad"),
    ("kjv.txt.gz", "8984ad90806080665e2f6a5b6e5db9555d53975ac6d5e9fc39f75e046c0f0ec4"),
)


def default_corpus() -> list[tuple[str, str]]:
    """[(name, text)] of the embedded corpus; raises ConfigError if a file is missing or altered."""
    root = resources.files("riverbed.data") / "corpus"
    docs = []
    for name, sha in CORPUS_FILES:
        res = root / name
        try:
            raw = gzip.decompress(res.read_bytes())
        except (OSError, EOFError) as exc:
            raise ConfigError(f"embedded corpus file {res} is missing or unreadable ({exc}); reinstall riverbed") from None
        if hashlib.sha256(raw).hexdigest() != sha:
            raise ConfigError(f"embedded corpus file {res} does not match its SHA-256 {sha}; reinstall riverbed")
        docs.append((name.removesuffix(".gz"), raw.decode("utf-8")))
    return docs


def _read_text(path: Path) -> str:
    text = read_text(path, "data.source", limit=None)  # a corpus may be large: regular files only, no bound
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_documents(path: Path) -> list[tuple[str, str]]:
    """[(relative name, text)] of a text file, or of every ``*.txt`` under a folder in sorted path order."""
    if path.is_file():
        files = [path]
        names = [path.name]
    elif path.is_dir():
        files = sorted((p for p in path.rglob("*.txt") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
        names = [p.relative_to(path).as_posix() for p in files]
        if not files:
            raise ConfigError(f"data.source: folder {path} holds no .txt files (and no train.bin/val.bin)")
    elif not os.path.lexists(path):
        raise ConfigError(f"data.source: {path} does not exist")
    else:
        regular_file(path, "data.source")  # /dev/zero, a FIFO: says what it is
    docs = [(n, _read_text(f)) for n, f in zip(names, files)]
    if not any(text for _, text in docs):
        raise ConfigError(f"data.source: {path} contains no text")
    return docs


def resolve_bin_dtype(token_dtype: str | None, vocab_size: int | None) -> np.dtype:
    if token_dtype is not None:
        return np.dtype(token_dtype)
    if vocab_size is not None and vocab_size > 2**16:
        return np.dtype(np.uint32)
    return np.dtype(np.uint16)  # nanoGPT's default (GPT-2 vocab fits)


def open_bin(path: Path, dtype: np.dtype) -> np.memmap:
    """Memory-map a raw little-endian token array; errors name the file and the dtype."""
    if not os.path.lexists(path):
        raise ConfigError(f"data.source: token file {path} not found")
    regular_file(path, "data.source: token file")
    size = path.stat().st_size
    if size == 0:
        raise ConfigError(f"data.source: token file {path} is empty")
    if size % dtype.itemsize:
        raise ConfigError(
            f"data.source: {path} has {size} bytes, not a multiple of {dtype.itemsize} "
            f"(data.token_dtype={dtype.name}); wrong dtype?"
        )
    return np.memmap(path, dtype=dtype.newbyteorder("<"), mode="r")


def check_vocab(tokens: np.ndarray, vocab_size: int | None, path: Path) -> int:
    """The vocab size of ``tokens``: ``vocab_size`` if every id fits (error naming the file if not), else max + 1."""
    top = int(tokens.max())
    if vocab_size is None:
        return top + 1
    if top >= vocab_size:
        raise ConfigError(f"data.source: {path} holds token id {top} >= data.vocab_size={vocab_size} (wrong dtype or vocab?)")
    return vocab_size
