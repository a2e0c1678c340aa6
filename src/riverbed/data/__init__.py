"""riverbed.data: the embedded corpus, text and token-file sources, tokenizers, a fixed held-out split,
and batches that are a pure function of (seed, step).

>>> from riverbed.data import DataConfig, load_dataset, get_batch
>>> data = load_dataset(DataConfig())
>>> x, y = get_batch(data.train, step=0, batch_size=4, seq_len=64, seed=0)
>>> tuple(x.shape), data.tokenizer.decode(x[0, :0].numpy())
((4, 64), '')
"""

from __future__ import annotations

from riverbed.data.batches import epoch_permutation, get_batch, heldout_batches, n_windows
from riverbed.data.config import DataConfig
from riverbed.data.dataset import TokenData, interleaved_split, load_dataset
from riverbed.data.tokenizers import BPETokenizer, ByteTokenizer, Tokenizer, load_tokenizer

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "DataConfig",
    "TokenData",
    "Tokenizer",
    "epoch_permutation",
    "get_batch",
    "heldout_batches",
    "interleaved_split",
    "load_dataset",
    "load_tokenizer",
    "n_windows",
]
