"""riverbed.data: the embedded corpus, text and token-file sources, the synthetic bigram language,
tokenizers, a fixed held-out split, context buckets, and batches that are a pure function of (seed, step).

``DataConfig`` imports without torch or numpy; the rest loads on use.

>>> from riverbed.data import DataConfig, load_dataset, get_batch
>>> data = load_dataset(DataConfig())
>>> x, y = get_batch(data.train, step=0, batch_size=4, seq_len=64, seed=0)
>>> tuple(x.shape)
(4, 64)
"""

from __future__ import annotations

import importlib
from typing import Any

from riverbed.data.config import DataConfig

__all__ = [
    "BPETokenizer", "BigramLanguage", "BucketMap", "ByteTokenizer", "DataConfig", "TokenData", "Tokenizer", "epoch_permutation",
    "get_batch", "heldout_batches", "interleaved_split", "load_dataset", "load_tokenizer", "n_windows",
]

_LAZY = {
    "BigramLanguage": "riverbed.data.bigram",
    "BucketMap": "riverbed.data.buckets",
    "epoch_permutation": "riverbed.data.batches",
    "get_batch": "riverbed.data.batches",
    "heldout_batches": "riverbed.data.batches",
    "n_windows": "riverbed.data.batches",
    "TokenData": "riverbed.data.dataset",
    "interleaved_split": "riverbed.data.dataset",
    "load_dataset": "riverbed.data.dataset",
    "BPETokenizer": "riverbed.data.tokenizers",
    "ByteTokenizer": "riverbed.data.tokenizers",
    "Tokenizer": "riverbed.data.tokenizers",
    "load_tokenizer": "riverbed.data.tokenizers",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'riverbed.data' has no attribute {name!r}")
