"""Batches as a pure function of (seed, step): exact resume, and the same global batch for any world size.

The token array is cut into ``n = (len(tokens) - 1) // seq_len`` windows; window ``w`` gives
``x = tokens[w*L : w*L + L]`` and ``y = tokens[w*L + 1 : w*L + L + 1]`` (inputs never overlap, so
one epoch predicts every token once). Global sample ``i`` of the run is
``perm(seed, epoch)[i mod n]`` with ``epoch = i // n``; step ``s`` holds samples
``s*B ... s*B + B - 1``, and rank ``r`` of ``K`` takes the contiguous share ``r*B/K ... (r+1)*B/K - 1``.
No state: resuming at step ``s`` (or changing ``K``) replays exactly the same tokens.

The per-epoch permutation is ``argsort`` of ``n`` raw 64-bit draws of PCG64 seeded with
``SeedSequence([seed, epoch])``; numpy guarantees the bit stream (not ``Generator.permutation``)
across versions, so the order is the same on every machine and numpy release.

>>> import numpy as np
>>> toks = np.arange(1000, dtype=np.uint16)
>>> x, y = get_batch(toks, step=3, batch_size=4, seq_len=8, seed=0)
>>> tuple(x.shape), bool((y[:, :-1] == x[:, 1:]).all())
((4, 8), True)
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from riverbed.errors import ConfigError


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, n_windows: int) -> np.ndarray:
    """The window order of ``epoch``: a permutation of ``range(n_windows)``, cached."""
    raw = np.random.PCG64(np.random.SeedSequence([seed, epoch])).random_raw(n_windows)
    perm = np.argsort(raw, kind="stable")
    perm.flags.writeable = False
    return perm


def n_windows(tokens: np.ndarray, seq_len: int) -> int:
    """Windows of ``seq_len`` inputs (+1 target) that fit in ``tokens``."""
    return max(0, (len(tokens) - 1) // seq_len)


def _check(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def window_indices(tokens: np.ndarray, step: int, batch_size: int, seq_len: int, seed: int,
                   rank: int = 0, world: int = 1) -> np.ndarray:
    """Window ids (into ``tokens``) of rank ``rank``'s share of global step ``step``."""
    step, batch_size = _check("step", step, 0), _check("batch_size", batch_size, 1)
    seq_len, seed = _check("seq_len", seq_len, 1), _check("seed", seed, 0)
    world, rank = _check("world", world, 1), _check("rank", rank, 0)
    if rank >= world:
        raise ConfigError(f"rank={rank} must be < world={world}")
    if batch_size % world:
        raise ConfigError(f"batch_size={batch_size} must be divisible by the world size {world}")
    n = n_windows(tokens, seq_len)
    if n < 1:
        raise ConfigError(f"seq_len={seq_len} needs at least {seq_len + 1} tokens, the data has {len(tokens)}")
    share = batch_size // world
    first = step * batch_size + rank * share
    samples = np.arange(first, first + share, dtype=np.int64)
    epochs, pos = np.divmod(samples, n)
    out = np.empty(share, dtype=np.int64)
    for e in np.unique(epochs):  # a share spans at most a few epochs
        sel = epochs == e
        out[sel] = epoch_permutation(seed, int(e), n)[pos[sel]]
    return out


def gather_windows(tokens: np.ndarray, windows: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) int64 tensors for the given window ids; one fancy-index read (works on np.memmap)."""
    idx = windows[:, None] * seq_len + np.arange(seq_len + 1, dtype=np.int64)
    block = torch.from_numpy(np.asarray(tokens[idx], dtype=np.int64))
    return block[:, :-1], block[:, 1:]


def get_batch(tokens: np.ndarray, step: int, batch_size: int, seq_len: int, seed: int,
              rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s share (``batch_size / world`` rows) of global step ``step``: (x, y), each (rows, seq_len).

    Concatenating the shares of ranks ``0..world-1`` gives exactly ``get_batch(..., world=1)``.
    """
    windows = window_indices(tokens, step, batch_size, seq_len, seed, rank, world)
    return gather_windows(tokens, windows, seq_len)


def heldout_batches(tokens: np.ndarray, seq_len: int, batch_size: int, n_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed evaluation set: ``n_batches`` batches of windows spread evenly over ``tokens``.

    Windows ``floor(j * n / (batch_size * n_batches))`` for ``j = 0 ..``: every part of the held-out
    set is represented; if more samples are asked for than windows exist, windows repeat evenly.

    >>> import numpy as np
    >>> [tuple(x.shape) for x, _ in heldout_batches(np.arange(100), 9, 2, 3)]
    [(2, 9), (2, 9), (2, 9)]
    """
    seq_len, batch_size = _check("seq_len", seq_len, 1), _check("batch_size", batch_size, 1)
    n_batches = _check("n_batches", n_batches, 1)
    n = n_windows(tokens, seq_len)
    if n < 1:
        raise ConfigError(f"held-out set has {len(tokens)} tokens, fewer than seq_len+1={seq_len + 1}")
    total = batch_size * n_batches
    windows = (np.arange(total, dtype=np.int64) * n) // total
    return [gather_windows(tokens, w, seq_len) for w in windows.reshape(n_batches, batch_size)]
