"""get_batch is a pure function of (seed, step); rank shares rebuild the global batch; epochs cover every window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from riverbed.data import epoch_permutation, get_batch, heldout_batches, n_windows
from riverbed.errors import ConfigError

TOKENS = np.arange(10_001, dtype=np.uint32)  # unique ids: a token's value is its position


def test_permutation_golden():
    # PCG64(SeedSequence([seed, epoch])).random_raw -> argsort: numpy guarantees this bit stream.
    assert epoch_permutation(0, 0, 10).tolist() == GOLDEN_PERM
    assert sorted(epoch_permutation(3, 1, 1000).tolist()) == list(range(1000))
    assert epoch_permutation(0, 1, 10).tolist() == [7, 4, 5, 1, 9, 8, 6, 2, 0, 3]


# Recorded once; numpy guarantees the PCG64 bit stream, so this must never change (exact resume).
GOLDEN_PERM = [3, 2, 1, 8, 6, 0, 7, 4, 5, 9]


def test_batch_is_shifted_windows_of_the_data():
    x, y = get_batch(TOKENS, step=5, batch_size=8, seq_len=16, seed=1)
    assert x.dtype == torch.int64 and x.shape == (8, 16) and y.shape == (8, 16)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y[:, -1], x[:, -1] + 1)  # next token of the stream
    assert bool((x[:, 0] % 16 == 0).all())  # windows start at multiples of seq_len


def test_pure_function_of_seed_and_step():
    a = get_batch(TOKENS, 7, 4, 32, seed=2)
    get_batch(TOKENS, 0, 4, 32, seed=2)  # no hidden state between calls
    b = get_batch(TOKENS, 7, 4, 32, seed=2)
    c = get_batch(TOKENS, 7, 4, 32, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("world", [2, 3, 6])
def test_rank_shares_concatenate_to_global_batch(world):
    for step in (0, 11, 200):  # 200 * 6 samples crosses an epoch boundary (312 windows)
        full_x, full_y = get_batch(TOKENS, step, 6, 32, seed=4)
        parts = [get_batch(TOKENS, step, 6, 32, seed=4, rank=r, world=world) for r in range(world)]
        assert torch.equal(torch.cat([p[0] for p in parts]), full_x)
        assert torch.equal(torch.cat([p[1] for p in parts]), full_y)


def test_each_epoch_covers_every_window_once():
    seq_len, bs = 50, 8
    n = n_windows(TOKENS, seq_len)  # 200 windows -> 25 steps per epoch
    assert n == 200
    for epoch in range(2):
        starts = torch.cat([get_batch(TOKENS, s, bs, seq_len, seed=0)[0][:, 0] for s in range(epoch * 25, epoch * 25 + 25)])
        assert sorted((starts // seq_len).tolist()) == list(range(n))
    e0 = torch.cat([get_batch(TOKENS, s, bs, seq_len, 0)[0][:, 0] for s in range(25)])
    e1 = torch.cat([get_batch(TOKENS, s, bs, seq_len, 0)[0][:, 0] for s in range(25, 50)])
    assert not torch.equal(e0, e1)  # a fresh order each epoch


def test_memmap_source(tmp_path):
    path = tmp_path / "t.bin"
    TOKENS.astype(np.uint16 if TOKENS.max() < 2**16 else np.uint32).tofile(path)
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    a = get_batch(mm, 3, 4, 16, seed=0)
    b = get_batch(TOKENS.astype(np.uint16), 3, 4, 16, seed=0)
    assert torch.equal(a[0], b[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=6, world=4), "divisible"),
        (dict(rank=2, world=2), "rank=2"),
        (dict(step=-1), "step"),
        (dict(seq_len=20_000), "seq_len=20000"),
        (dict(seed=-3), "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(step=0, batch_size=4, seq_len=16, seed=0)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        get_batch(TOKENS, **args)


def test_heldout_batches_fixed_and_even():
    held = np.arange(1_001, dtype=np.uint32)
    batches = heldout_batches(held, seq_len=10, batch_size=4, n_batches=5)  # 20 of 100 windows
    again = heldout_batches(held, 10, 4, 5)
    assert len(batches) == 5 and all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    starts = torch.cat([x[:, 0] for x, _ in batches]).tolist()
    assert starts == [w * 50 for w in range(20)]  # every 5th window: evenly spread over the set
    x, y = batches[-1]
    assert torch.equal(y[:, :-1], x[:, 1:])
    with pytest.raises(ConfigError, match="held-out"):
        heldout_batches(held[:5], 10, 1, 1)
