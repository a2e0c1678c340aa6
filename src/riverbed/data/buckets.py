"""Context buckets: token id -> bucket name, to split the held-out loss by kind of context.

A target position belongs to the bucket of its *context* token (the input token just before it;
for bigram data that is the whole context). The bigram source builds its buckets from the
language (deterministic / low / mid / high entropy); any other source may name a JSON file with
``[data] bucket_map = "buckets.json"``::

    {"0": "digits", "1": "digits", "32": "space"}

Keys are token ids (decimal strings), values non-empty bucket names; ids not listed are in no
bucket. Bad files raise ConfigError naming the file and the entry.

>>> b = BucketMap.from_mapping({0: "a", 2: "b"}, vocab_size=3)
>>> b.names, b.of_token.tolist()
(('a', 'b'), [0, -1, 1])
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from typing import Any

import numpy as np

from riverbed.errors import ConfigError


@dataclass(frozen=True)
class BucketMap:
    names: tuple[str, ...]
    """Bucket names in first-seen order (for the bigram source: BUCKETS order)."""
    of_token: np.ndarray
    """(vocab,) int64: index into ``names`` of each context token, -1 = no bucket."""

    @classmethod
    def from_mapping(cls, mapping: Mapping[int, str], vocab_size: int, *, source: str = "bucket map") -> BucketMap:
        names: list[str] = []
        of_token = np.full(vocab_size, -1, dtype=np.int64)
        for tok, name in mapping.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{source}: token {tok}: bucket name must be a non-empty string, got {name!r}")
            if not 0 <= tok < vocab_size:
                raise ConfigError(f"{source}: token id {tok} is outside the vocabulary (size {vocab_size})")
            if name not in names:
                names.append(name)
            of_token[tok] = names.index(name)
        if not names:
            raise ConfigError(f"{source}: maps no token to a bucket")
        return cls(tuple(names), of_token)

    @classmethod
    def from_json(cls, path: str | Path, vocab_size: int) -> BucketMap:
        """Read and validate ``{"<token id>": "<bucket>"}``; errors name ``data.bucket_map`` and the file."""
        path = Path(path).expanduser()
        src = f"data.bucket_map {path}"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{src}: file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{src}: not a readable JSON file ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{src}: expected a JSON object {{\"<token id>\": \"<bucket>\"}}, got {type(raw).__name__}")
        mapping = {}
        for key, name in raw.items():
            try:
                tok = int(key)
            except ValueError:
                raise ConfigError(f"{src}: key {key!r} is not a token id") from None
            mapping[tok] = name
        return cls.from_mapping(mapping, vocab_size, source=src)

    def of(self, x: Any, y: Any) -> Any:
        """Bucket id of each target position: that of its context token ``x`` (-1 = none). This is
        what ``training.evaluate.evaluate_stats`` reads for per-bucket losses."""
        import torch  # lazy: the map itself is numpy; only evaluation hands it tensors

        return torch.as_tensor(self.of_token)[x]

    def to_meta(self) -> dict[str, int]:
        """Tokens per bucket (JSON-able, for the dataset's meta)."""
        return {n: int((self.of_token == i).sum()) for i, n in enumerate(self.names)}
