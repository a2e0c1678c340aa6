"""A synthetic bigram (first-order Markov) language whose optimal loss is known exactly.

The river-valley picture (Wen et al. 2024) already arises on bigram data in which some contexts
have one successor (flat "river" directions: the loss keeps falling as the logit margin grows)
and others many ("hill" directions, row Hessian diag(p) - pp^T). This module builds such a
language over ``vocab`` tokens with a controllable mix:

* a share ``deterministic`` of the tokens are *deterministic* contexts (exactly one successor);
* every other token is a *high-entropy* context with ``2 .. max_successors`` successors
  (the count drawn uniformly per context) and Dirichlet(1) probabilities over them. Every token
  must be the successor of some high-entropy context, so with very few of them a context can get
  more than ``max_successors``; the attribute then holds the largest count actually used.

The chain is irreducible by construction (deterministic successors form a DAG that always ends
in a high-entropy context; the high-entropy contexts form a ring, and every token is a successor
of some high-entropy context), so it has one stationary distribution pi.

Exact optimum. Both splits are independent chains *started from pi*, so every position's
context is distributed as pi and the expected loss of the true model at every position is the
**entropy rate** ``H = sum_i pi_i H(P_i)`` (nats/token). That is the optimum of the expected
held-out loss; :meth:`BigramLanguage.sample_loss` gives the true model's loss on exactly the
tokens of a given evaluation set (its expectation is H), so ``model loss - sample_loss`` on the
same tokens is an unbiased, low-variance estimate of the model's excess loss (the pi-weighted
KL divergence from the true rows).

Everything is drawn from raw PCG64 bits (``random_raw``), whose stream numpy guarantees across
versions, so a seed gives the same language and the same tokens on every machine.

>>> lang = BigramLanguage.generate(vocab=16, deterministic=0.5, max_successors=4, seed=0)
>>> lang.n_deterministic, round(float(lang.stationary.sum()), 6)
(8, 1.0)
>>> x = lang.sample(1000, seed=1)
>>> bool(all(lang.probs[a, b] > 0 for a, b in zip(x[:-1], x[1:])))
True
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from riverbed.errors import ConfigError

DETERMINISTIC = "deterministic"
ENTROPY_BUCKETS = ("low", "mid", "high")
"""High-entropy contexts by H(P_i) / log(max_successors): (0, 1/3], (1/3, 2/3], (2/3, 1]."""
BUCKETS = (DETERMINISTIC, *ENTROPY_BUCKETS)


class _Bits:
    """Uniform draws from raw PCG64 bits (stable across numpy versions, unlike Generator methods)."""

    def __init__(self, seed: int, stream: int) -> None:
        self._bg = np.random.PCG64(np.random.SeedSequence([int(seed), int(stream)]))

    def uniform(self, n: int) -> np.ndarray:
        """``n`` floats in [0, 1) with 53 random bits each."""
        raw = self._bg.random_raw(n)
        return (raw >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def permutation(self, n: int) -> np.ndarray:
        return np.argsort(self._bg.random_raw(n), kind="stable")


def _check_int(key: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ConfigError(f"{key} must be an integer in {rng}, got {value!r}")
    return int(value)


def _row_entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -(p * logs).sum(axis=-1)


@dataclass(frozen=True)
class BigramLanguage:
    """A Markov chain over ``vocab`` tokens: ``probs[i, j] = P(next = j | current = i)``."""

    probs: np.ndarray
    """(V, V) float64 transition matrix; each row sums to 1."""
    max_successors: int
    """The largest successor count of a high-entropy context (scales the entropy buckets)."""

    @classmethod
    def generate(cls, vocab: int = 64, deterministic: float = 0.5, max_successors: int = 16, seed: int = 0) -> BigramLanguage:
        """Draw a language; same arguments -> the same matrix on every machine."""
        vocab = _check_int("data.vocab_size (bigram vocabulary)", vocab, 2, 1 << 14)
        if isinstance(deterministic, bool) or not isinstance(deterministic, (int, float)) or not 0 <= deterministic < 1:
            raise ConfigError(f"data.bigram_deterministic must be in [0, 1), got {deterministic!r}")
        max_successors = _check_int("data.bigram_successors", max_successors, 2, vocab)
        seed = _check_int("data.bigram_seed", seed, 0)
        bits = _Bits(seed, 0)
        order = bits.permutation(vocab)  # which tokens are deterministic / high-entropy
        n_det = min(int(round(deterministic * vocab)), vocab - 1)  # at least one high-entropy context
        det, ent = order[:n_det], np.sort(order[n_det:])
        probs = np.zeros((vocab, vocab), dtype=np.float64)
        # Deterministic contexts: successor = a later deterministic token or any high-entropy one,
        # a DAG that always ends in a high-entropy context (no absorbing deterministic cycle).
        u = bits.uniform(max(n_det, 1))
        for k, tok in enumerate(det):
            pool = np.concatenate([det[k + 1:], ent])
            probs[tok, pool[int(u[k] * len(pool))]] = 1.0
        # High-entropy contexts: a ring through them (strong connectivity), every token covered by
        # some context's support (reachability), then random successors up to the drawn count.
        m = len(ent)
        cover = bits.permutation(vocab)
        counts = 2 + (bits.uniform(m) * (max_successors - 1)).astype(np.int64)  # uniform in 2..max
        supports: list[set[int]] = [{int(ent[(j + 1) % m])} for j in range(m)]
        for k, tok in enumerate(cover):
            supports[k % m].add(int(tok))
        for j, row in enumerate(ent):
            extra = [int(t) for t in bits.permutation(vocab) if int(t) not in supports[j]]
            need = max(0, int(counts[j]) - len(supports[j]))
            supports[j].update(extra[:need])
            succ = np.array(sorted(supports[j]), dtype=np.int64)
            w = -np.log1p(-bits.uniform(len(succ)))  # Exp(1) draws -> Dirichlet(1) after normalising
            w = np.maximum(w, 1e-12)
            probs[row, succ] = w / w.sum()
        return cls(probs, int(max(max_successors, max(len(s) for s in supports))))

    # ---- exact quantities ------------------------------------------------------------------
    @property
    def vocab(self) -> int:
        return int(self.probs.shape[0])

    @property
    def successors(self) -> np.ndarray:
        """Number of successors of each context."""
        return (self.probs > 0).sum(axis=1)

    @property
    def n_deterministic(self) -> int:
        return int((self.successors == 1).sum())

    @property
    def row_entropy(self) -> np.ndarray:
        """H(P_i) in nats for every context i."""
        return _row_entropy(self.probs)

    @property
    def stationary(self) -> np.ndarray:
        """pi with pi P = pi (the unique one: the chain is irreducible), by a dense linear solve."""
        v = self.vocab
        a = self.probs.T - np.eye(v)
        a[-1, :] = 1.0  # replace one balance equation by sum(pi) = 1
        rhs = np.zeros(v)
        rhs[-1] = 1.0
        pi = np.linalg.solve(a, rhs)
        return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()

    @property
    def entropy_rate(self) -> float:
        """sum_i pi_i H(P_i): the optimal expected loss per token (nats) at stationarity."""
        return float(self.stationary @ self.row_entropy)

    def buckets(self) -> np.ndarray:
        """Bucket index (into BUCKETS) of every context token, by its row entropy."""
        h = self.row_entropy / math.log(self.max_successors)
        idx = np.where(h <= 1 / 3, 1, np.where(h <= 2 / 3, 2, 3))
        return np.where(self.successors == 1, 0, idx).astype(np.int64)

    def sample_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """The true model's mean loss -log P(y|x) on exactly these (context, target) pairs."""
        p = self.probs[np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)]
        if (p <= 0).any():
            raise ConfigError("bigram sample_loss: a (context, target) pair has probability 0 (not from this language)")
        return float(-np.log(p).mean())

    # ---- sampling ---------------------------------------------------------------------------
    def sample(self, n: int, seed: int, stream: int = 1) -> np.ndarray:
        """``n`` tokens of the chain started from pi (so every position is stationary)."""
        n = _check_int("bigram sample length", n, 1)
        bits = _Bits(seed, stream)
        u = bits.uniform(n).tolist()
        cdf0 = np.cumsum(self.stationary)
        cdf0[-1] = 1.0
        succ = [np.flatnonzero(row) for row in self.probs]
        # Per-row cumulative probabilities as Python lists: bisect in a plain loop is ~5x faster
        # than a numpy call per token for a sequential chain.
        cdfs = []
        for row, s in zip(self.probs, succ):
            c = np.cumsum(row[s])
            c[-1] = 1.0
            cdfs.append(c.tolist())
        succ_l = [s.tolist() for s in succ]
        out = [0] * n
        cur = int(np.searchsorted(cdf0, u[0], side="right"))
        out[0] = cur
        for t in range(1, n):
            cur = succ_l[cur][bisect.bisect_right(cdfs[cur], u[t])]
            out[t] = cur
        return np.asarray(out, dtype=np.uint16 if self.vocab <= 1 << 16 else np.uint32)


def language_from_config(cfg: object) -> BigramLanguage:
    """The language a ``DataConfig`` with ``source = "bigram"`` describes."""
    return BigramLanguage.generate(
        vocab=getattr(cfg, "vocab_size", None) or DEFAULT_VOCAB,
        deterministic=getattr(cfg, "bigram_deterministic"),
        max_successors=getattr(cfg, "bigram_successors"),
        seed=getattr(cfg, "bigram_seed"),
    )


DEFAULT_VOCAB = 64
"""Bigram vocabulary when ``data.vocab_size`` is unset."""

__all__ = ["BUCKETS", "DEFAULT_VOCAB", "DETERMINISTIC", "ENTROPY_BUCKETS", "BigramLanguage", "language_from_config"]
