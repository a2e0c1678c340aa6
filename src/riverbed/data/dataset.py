"""``load_dataset``: source -> tokens -> a fixed train / held-out split.

Held-out split (text sources and single ``.bin`` files): the token stream is cut into blocks of
``heldout_block`` tokens and every k-th block (``b % k == k - 1``, ``k = round(1/heldout_fraction)``)
goes to held-out, the rest to train. Interleaving keeps every part of the corpus (Shakespeare *and*
the Bible) in both splits, and the split depends only on the data config, never on the seed or
the batch size, so no training step can ever see a held-out token. A ``train.bin`` + ``val.bin``
folder is used as given.

BPE: the tokenizer is trained on the whole source text (as GPT-2's was; the split is cut in token
space afterwards), and its tokenization is cached under the user cache dir, keyed by the text's hash.

>>> data = load_dataset(DataConfig())
>>> data.vocab_size, data.meta["kind"], len(data.heldout) / (len(data.train) + len(data.heldout)) < 0.06
(256, 'default', True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from riverbed.io.atomic import atomic_dir
from riverbed.data.bigram import BUCKETS, BigramLanguage, language_from_config
from riverbed.data.buckets import BucketMap
from riverbed.data.config import DataConfig
from riverbed.data.sources import check_vocab, default_corpus, open_bin, resolve_bin_dtype, text_documents
from riverbed.data.tokenizers import BPETokenizer, ByteTokenizer, Tokenizer, load_tokenizer, token_dtype
from riverbed.errors import ConfigError


@dataclass(frozen=True)
class TokenData:
    train: np.ndarray
    """1-D token ids of the training split (uint16/uint32; a read-only np.memmap for train.bin)."""
    heldout: np.ndarray
    """1-D token ids of the held-out split; never sampled by ``get_batch`` during training."""
    tokenizer: Tokenizer | None
    """Encoder/decoder of the ids; None for ``.bin`` sources without a tokenizer file."""
    vocab_size: int
    """Model vocabulary needed (every id < vocab_size)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """JSON-able description: source, kind, tokenizer, split, token counts, per-document sizes,
    ``fingerprint`` (hash of both splits, to check that a resumed run sees the same data)."""
    buckets: BucketMap | None = None
    """Context-token buckets splitting the held-out loss (the bigram source's, or data.bucket_map)."""
    language: BigramLanguage | None = None
    """The generating language of ``source = "bigram"`` (exact entropy rate, true probabilities)."""


def interleaved_split(tokens: np.ndarray, block: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, heldout): block ``b`` of ``block`` tokens is held out iff ``b % every == every - 1``.

    >>> tr, ho = interleaved_split(np.arange(10), block=2, every=3)
    >>> tr.tolist(), ho.tolist()
    ([0, 1, 2, 3, 6, 7, 8, 9], [4, 5])
    """
    n = len(tokens)
    n_blocks = -(-n // block)
    held = [b for b in range(n_blocks) if b % every == every - 1]
    if not held:
        raise ConfigError(
            f"data has {n} tokens, too few for a held-out block (data.heldout_block={block}, "
            f"every {every}th block held out); lower data.heldout_block"
        )
    kept = [b for b in range(n_blocks) if b % every != every - 1]
    train = np.concatenate([tokens[b * block:(b + 1) * block] for b in kept])
    heldout = np.concatenate([tokens[b * block:(b + 1) * block] for b in held])
    return train, heldout


_FULL_HASH_LIMIT = 1 << 26  # tokens; beyond this only the head and tail of each split are hashed


def fingerprint(train: np.ndarray, heldout: np.ndarray) -> str:
    """SHA-256 (hex, 16 chars) of both splits: a cheap "same data?" check when a run resumes.

    Splits longer than 2^26 tokens hash their length, dtype, first and last 2^25 tokens.
    """
    h = hashlib.sha256()
    for arr in (train, heldout):
        h.update(f"{len(arr)}|{arr.dtype.str}|".encode())
        parts = [arr] if len(arr) <= _FULL_HASH_LIMIT else [arr[: _FULL_HASH_LIMIT // 2], arr[-_FULL_HASH_LIMIT // 2:]]
        for part in parts:
            h.update(np.ascontiguousarray(part).data)
    return h.hexdigest()[:16]


def cache_root(cfg: DataConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    if os.environ.get("RIVERBED_CACHE"):
        return Path(os.environ["RIVERBED_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "riverbed"


def _bpe_tokens(cfg: DataConfig, texts: list[str]) -> tuple[BPETokenizer, np.ndarray]:
    """Train BPE on ``texts`` and encode them, through a content-addressed cache."""
    import tokenizers  # noqa: F401  (version enters the key; ImportError handled by BPETokenizer)

    h = hashlib.sha256(f"bpe-v1|{cfg.bpe_vocab_size}|{tokenizers.__version__}|{len(texts)}".encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    entry = cache_root(cfg) / f"bpe-{h.hexdigest()[:24]}"
    if (entry / "tokenizer.json").is_file() and (entry / "tokens.npy").is_file():
        return BPETokenizer.from_file(entry / "tokenizer.json"), np.load(entry / "tokens.npy", allow_pickle=False)

    mb = sum(len(t) for t in texts) / 1e6
    with Console(stderr=True).status(f"training a {cfg.bpe_vocab_size}-token BPE tokenizer on {mb:.1f} MB "
                                     f"of text (cached afterwards in {entry.parent})"):
        # Train on line chunks (parallel inside tokenizers); encode whole documents.
        chunks = (c for t in texts for c in _line_chunks(t))
        tok = BPETokenizer.train(chunks, cfg.bpe_vocab_size)
        tokens = tok.encode_batch(texts)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with atomic_dir(entry, overwrite=True) as tmp:
            tok.save(tmp / "tokenizer.json")
            np.save(tmp / "tokens.npy", tokens, allow_pickle=False)
    except OSError:
        pass  # a read-only cache only costs time
    return tok, tokens


def _line_chunks(text: str, lines: int = 2000) -> list[str]:
    parts = text.split("\n")
    return ["\n".join(parts[i:i + lines]) for i in range(0, len(parts), lines)]


def _tokenize_text(cfg: DataConfig, docs: list[tuple[str, str]]) -> tuple[Tokenizer, np.ndarray, str]:
    # Documents are joined with one blank line; each ends where the next begins.
    texts = [t + "\n\n" for _, t in docs[:-1]] + [docs[-1][1]]
    if cfg.tokenizer == "byte":
        tok: Tokenizer = ByteTokenizer()
        return tok, tok.encode("".join(texts)), "byte"
    if cfg.tokenizer == "bpe":
        tok, tokens = _bpe_tokens(cfg, texts)
        return tok, tokens, "bpe"
    tok = load_tokenizer(Path(cfg.tokenizer).expanduser())
    if isinstance(tok, BPETokenizer):
        return tok, tok.encode_batch(texts), cfg.tokenizer
    return tok, tok.encode("".join(texts)), cfg.tokenizer


def _load_bin(cfg: DataConfig, path: Path) -> TokenData:
    dtype = resolve_bin_dtype(cfg.token_dtype, cfg.vocab_size)
    tokenizer = None
    if cfg.tokenizer not in ("byte", "bpe"):
        tokenizer = load_tokenizer(Path(cfg.tokenizer).expanduser())
    meta: dict[str, Any] = {"source": str(path), "tokenizer": cfg.tokenizer if tokenizer else None,
                            "token_dtype": dtype.name}
    if path.is_dir():
        train = open_bin(path / "train.bin", dtype)
        val_path = path / "val.bin"
        if not val_path.is_file():
            raise ConfigError(f"data.source: {path} has train.bin but no val.bin (the held-out split)")
        heldout = open_bin(val_path, dtype)
        vocab = check_vocab(train, cfg.vocab_size, path / "train.bin")
        vocab = max(vocab, check_vocab(heldout, cfg.vocab_size, val_path))
        meta.update(kind="bin-split", split="given: train.bin / val.bin")
    else:
        tokens = open_bin(path, dtype)
        vocab = check_vocab(tokens, cfg.vocab_size, path)
        train, heldout = interleaved_split(tokens, cfg.heldout_block, cfg.heldout_every)
        meta.update(kind="bin", split=_split_desc(cfg))
    if tokenizer is not None and tokenizer.vocab_size < vocab:
        raise ConfigError(f"data.tokenizer {cfg.tokenizer} has {tokenizer.vocab_size} ids but {path} uses {vocab}")
    if tokenizer is not None:
        vocab = max(vocab, tokenizer.vocab_size)
    meta.update(n_train=int(len(train)), n_heldout=int(len(heldout)), vocab_size=vocab,
                fingerprint=fingerprint(train, heldout))
    return TokenData(train, heldout, tokenizer, vocab, meta)


def _split_desc(cfg: DataConfig) -> str:
    return f"interleaved: every {cfg.heldout_every}th block of {cfg.heldout_block} tokens held out"


def _load_bigram(cfg: DataConfig) -> TokenData:
    """Two independent chains of the language, both started from its stationary distribution:
    train (``bigram_tokens``) and held-out (``heldout_fraction`` of that). No cut is needed, so
    every adjacent pair of either split is a true transition (see riverbed.data.bigram)."""
    lang = language_from_config(cfg)
    train = lang.sample(cfg.bigram_tokens, seed=cfg.bigram_seed, stream=1)
    heldout = lang.sample(max(2, round(cfg.bigram_tokens * cfg.heldout_fraction)), seed=cfg.bigram_seed, stream=2)
    buckets = BucketMap(BUCKETS, lang.buckets())
    meta = {
        "source": "bigram", "kind": "bigram", "tokenizer": None,
        "split": "independent train and held-out chains from the stationary distribution",
        "n_train": int(len(train)), "n_heldout": int(len(heldout)), "vocab_size": lang.vocab,
        "deterministic_contexts": lang.n_deterministic, "entropy_rate": lang.entropy_rate,
        "buckets": buckets.to_meta(), "fingerprint": fingerprint(train, heldout),
    }
    return TokenData(train, heldout, None, lang.vocab, meta, buckets=buckets, language=lang)


def load_dataset(cfg: DataConfig) -> TokenData:
    """Read, tokenize and split ``cfg.source``. Same config -> same arrays, on every machine."""
    if not isinstance(cfg, DataConfig):
        raise TypeError(f"load_dataset expects a DataConfig, got {type(cfg).__name__}")
    data = _load_source(cfg)
    if cfg.bucket_map is not None:
        # A user's bucket map replaces the source's own (the bigram buckets included).
        buckets = BucketMap.from_json(cfg.bucket_map, data.vocab_size)
        data = dataclasses.replace(data, buckets=buckets, meta={**data.meta, "buckets": buckets.to_meta()})
    return data


def _load_source(cfg: DataConfig) -> TokenData:
    if cfg.source == "bigram":
        return _load_bigram(cfg)
    if cfg.source == "default":
        docs, kind = default_corpus(), "default"
    else:
        path = Path(cfg.source).expanduser()
        if path.suffix == ".bin" or (path.is_dir() and (path / "train.bin").exists()):
            return _load_bin(cfg, path)
        docs, kind = text_documents(path), "text"
    tok, tokens, tok_name = _tokenize_text(cfg, docs)
    tokens = tokens.astype(token_dtype(tok.vocab_size), copy=False)
    train, heldout = interleaved_split(tokens, cfg.heldout_block, cfg.heldout_every)
    meta = {
        "source": cfg.source, "kind": kind, "tokenizer": tok_name, "split": _split_desc(cfg),
        "documents": [{"name": n, "chars": len(t)} for n, t in docs],
        "n_tokens": int(len(tokens)), "n_train": int(len(train)), "n_heldout": int(len(heldout)),
        "vocab_size": tok.vocab_size, "fingerprint": fingerprint(train, heldout),
    }
    return TokenData(train, heldout, tok, tok.vocab_size, meta)
