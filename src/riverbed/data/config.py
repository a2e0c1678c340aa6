"""Data configuration: where tokens come from, how text is tokenized, how the held-out split is cut.

>>> DataConfig().source, DataConfig().tokenizer
('default', 'byte')
>>> DataConfig.from_dict({"source": "corpus.txt", "heldout_fraction": 0.1}).heldout_every
10
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from riverbed.errors import ConfigError

TOKEN_DTYPES = ("uint16", "uint32")


@dataclass(frozen=True)
class DataConfig:
    source: str = "default"
    """"default" (the embedded Shakespeare + King James Bible corpus), "bigram" (a synthetic Markov
    language with a known optimal loss, riverbed.data.bigram), a UTF-8 text file, a folder of
    ``*.txt`` files (read recursively in sorted path order), a pre-tokenized ``.bin`` file, or a folder
    holding ``train.bin`` + ``val.bin`` (nanoGPT layout; that split is used as given)."""
    tokenizer: str = "byte"
    """"byte" (UTF-8 bytes, vocab 256), "bpe" (byte-level BPE trained on the source with the
    ``tokenizers`` library; needs ``riverbed[bpe]``), or a path to a saved tokenizer JSON file."""
    bpe_vocab_size: int = 4096
    """Vocabulary size of a BPE tokenizer trained here."""
    heldout_fraction: float = 0.05
    """Share of the token stream held out for evaluation: every k-th block, k = round(1/fraction)."""
    heldout_block: int = 4096
    """Block size (tokens) of the interleaved held-out split."""
    token_dtype: str | None = None
    """dtype of ``.bin`` files, "uint16" or "uint32"; None: from ``vocab_size`` (uint16 up to 65536)."""
    vocab_size: int | None = None
    """Vocabulary of ``.bin`` tokens (checked against the data); None: max token + 1. Ignored for text.
    For ``source = "bigram"``: the language's vocabulary (None: 64)."""
    cache_dir: str | None = None
    """Where BPE tokenizations are cached; None: $RIVERBED_CACHE or ~/.cache/riverbed."""
    bigram_deterministic: float = 0.5
    """source = "bigram": share of contexts with exactly one successor (the rest are high-entropy)."""
    bigram_successors: int = 16
    """source = "bigram": most successors of a high-entropy context (each draws 2 .. this many; a few
    more only where few high-entropy contexts must together cover every token as a successor)."""
    bigram_tokens: int = 1 << 20
    """source = "bigram": tokens in the training chain (the held-out chain has heldout_fraction of it)."""
    bigram_seed: int = 0
    """source = "bigram": seeds the language and both chains (independent of train.seed)."""
    bucket_map: str | None = None
    """JSON file {"<token id>": "<bucket>"}: eval rows split the held-out loss by the bucket of each
    position's context token (``eval_loss_by_bucket``). The bigram source has its own buckets."""

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ConfigError(f"data.source must be a non-empty string, got {self.source!r}")
        if not isinstance(self.tokenizer, str) or not self.tokenizer:
            raise ConfigError(f"data.tokenizer must be 'byte', 'bpe' or a tokenizer JSON path, got {self.tokenizer!r}")
        if isinstance(self.bpe_vocab_size, bool) or not isinstance(self.bpe_vocab_size, int) or not 257 <= self.bpe_vocab_size <= 2**32:
            raise ConfigError(f"data.bpe_vocab_size must be an integer in [257, 2^32], got {self.bpe_vocab_size!r}")
        f = self.heldout_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or not 0 < f <= 0.5:
            raise ConfigError(f"data.heldout_fraction must be in (0, 0.5], got {f!r}")
        if isinstance(self.heldout_block, bool) or not isinstance(self.heldout_block, int) or self.heldout_block < 1:
            raise ConfigError(f"data.heldout_block must be an integer >= 1, got {self.heldout_block!r}")
        if self.token_dtype is not None and self.token_dtype not in TOKEN_DTYPES:
            raise ConfigError(f"data.token_dtype must be one of {TOKEN_DTYPES} or unset, got {self.token_dtype!r}")
        v = self.vocab_size
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 2**32):
            raise ConfigError(f"data.vocab_size must be an integer in [1, 2^32] or unset, got {v!r}")
        if self.token_dtype == "uint16" and v is not None and v > 2**16:
            raise ConfigError(f"data.vocab_size={v} does not fit data.token_dtype='uint16'")
        if self.source == "bigram" and self.tokenizer != "byte":
            raise ConfigError(f"data.tokenizer={self.tokenizer!r}: source='bigram' generates token ids, it has no tokenizer")
        b = self.bigram_deterministic
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1:
            raise ConfigError(f"data.bigram_deterministic must be in [0, 1), got {b!r}")
        for key, lo in (("bigram_successors", 2), ("bigram_tokens", 2), ("bigram_seed", 0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"data.{key} must be an integer >= {lo}, got {v!r}")
        if self.bucket_map is not None and (not isinstance(self.bucket_map, str) or not self.bucket_map):
            raise ConfigError(f"data.bucket_map must be a JSON file path or unset, got {self.bucket_map!r}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, str):
            raise ConfigError(f"data.cache_dir must be a path string or unset, got {self.cache_dir!r}")

    @property
    def heldout_every(self) -> int:
        """k: block ``b`` is held out iff ``b % k == k - 1``."""
        return max(2, round(1 / self.heldout_fraction))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        """Build from a TOML ``[data]`` table; unknown keys are an error naming the key."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                raise ConfigError(f"unknown key data.{key} (known: {', '.join(sorted(known))})")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """All fields; unset ones (None) are dropped so the result is TOML-serialisable."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.source != "bigram":  # keep other sources' configs free of keys they ignore
            for f in dataclasses.fields(self):
                if f.name.startswith("bigram_") and out.get(f.name) == f.default:
                    del out[f.name]
        return out
