"""Model shape: one frozen dataclass, validated on construction, with exact parameter and FLOP counts.

>>> cfg = ModelConfig.preset("tiny")
>>> cfg.n_params()
102720
>>> ModelConfig.preset("tiny", n_experts=4, top_k=2).n_params() > cfg.n_params()
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from riverbed.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """A Llama-style decoder (RMSNorm, RoPE, SwiGLU, GQA); ``n_experts > 0`` makes it a Mixtral-style MoE."""

    vocab_size: int = 256
    """Token vocabulary size (256 for the byte tokenizer)."""
    d_model: int = 64
    """Residual stream width (HF ``hidden_size``)."""
    n_layers: int = 2
    """Number of decoder blocks."""
    n_heads: int = 4
    """Query heads; head_dim = d_model / n_heads, must be even for RoPE."""
    n_kv_heads: int = 2
    """Key/value heads (grouped-query attention); divides n_heads. n_kv_heads == n_heads is plain MHA."""
    d_ff: int = 160
    """SwiGLU hidden width of the dense MLP, and of each expert in the MoE variant."""
    max_seq_len: int = 256
    """Longest sequence the RoPE tables cover (HF ``max_position_embeddings``)."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    tie_embeddings: bool = True
    """Share the input embedding with the output projection (no ``lm_head.weight`` tensor then)."""
    n_experts: int = 0
    """Routed experts per MoE layer; 0 = dense model."""
    top_k: int = 2
    """Experts each token is routed to (MoE only)."""
    aux_loss_coef: float = 0.01
    """Weight of the load-balancing loss (Switch Transformer's alpha; MoE only)."""
    init_std: float = 0.02
    """Std of the normal init of every matrix; output projections get init_std / sqrt(2 n_layers)."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "max_seq_len"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("n_experts", self.n_experts, minimum=0)
        _check_int("top_k", self.top_k, minimum=1)
        for name in ("rope_theta", "norm_eps", "init_std"):
            _check_float(name, getattr(self, name), positive=True)
        _check_float("aux_loss_coef", self.aux_loss_coef, positive=False)
        if not isinstance(self.tie_embeddings, bool):
            raise ConfigError(f"model.tie_embeddings must be true or false, got {self.tie_embeddings!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"model.d_model={self.d_model} must be divisible by model.n_heads={self.n_heads}"
            )
        if (self.d_model // self.n_heads) % 2:
            raise ConfigError(
                f"model head_dim = d_model/n_heads = {self.d_model // self.n_heads} must be even (RoPE rotates pairs)"
            )
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"model.n_kv_heads={self.n_kv_heads} must divide model.n_heads={self.n_heads}"
            )
        if self.n_experts and self.top_k > self.n_experts:
            raise ConfigError(
                f"model.top_k={self.top_k} must be <= model.n_experts={self.n_experts}"
            )

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named size (see ``PRESETS``) with optional field overrides.

        >>> ModelConfig.preset("5m", max_seq_len=512).d_model
        256
        """
        if name not in PRESETS:
            raise ConfigError(f"model.preset={name!r} is not one of {sorted(PRESETS)}")
        fields = dict(PRESETS[name])
        fields.update(overrides)
        return cls.from_dict(fields)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a TOML ``[model]`` table; ``preset = "NAME"`` starts from a named size.

        >>> ModelConfig.from_dict({"preset": "tiny", "n_layers": 3}).n_layers
        3
        """
        d = dict(d)
        base: dict[str, Any] = {}
        if "preset" in d:
            name = d.pop("preset")
            if name not in PRESETS:
                raise ConfigError(f"model.preset={name!r} is not one of {sorted(PRESETS)}")
            base = dict(PRESETS[name])
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                raise ConfigError(f"unknown key model.{key} (known: preset, {', '.join(sorted(known))})")
        base.update(d)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        """All fields, JSON/TOML-serialisable; ``from_dict(to_dict())`` round-trips."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------------------- counts
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    def _attn_params(self) -> int:
        d, hd = self.d_model, self.head_dim
        return d * self.n_heads * hd * 2 + d * self.n_kv_heads * hd * 2  # q, o + k, v

    def _expert_params(self) -> int:
        return 3 * self.d_model * self.d_ff  # SwiGLU: gate (w1), up (w3), down (w2)

    def _layer_params(self, active: bool) -> int:
        norms = 2 * self.d_model
        if not self.is_moe:
            return self._attn_params() + self._expert_params() + norms
        experts = self.top_k if active else self.n_experts
        router = self.d_model * self.n_experts
        return self._attn_params() + router + experts * self._expert_params() + norms

    def n_params(self, non_embedding: bool = False, active: bool = False) -> int:
        """Exact parameter count of ``build_model(self)``.

        ``non_embedding`` leaves out the input embedding and an untied ``lm_head`` (Kaplan et al.'s N).
        ``active`` counts only ``top_k`` of the ``n_experts`` experts per layer (what one token uses).
        """
        body = self.n_layers * self._layer_params(active) + self.d_model  # + final norm
        if non_embedding:
            return body
        emb = self.vocab_size * self.d_model
        return body + emb * (1 if self.tie_embeddings else 2)

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward) at context ``seq_len``.

        ``6 * N_matmul + 12 * n_layers * d_model * seq_len`` (Kaplan et al. 2020, PaLM appendix B):
        ``N_matmul`` = active non-embedding parameters + the output projection (vocab x d_model,
        tied or not; the embedding lookup itself is not a matmul), and the second term is the
        QK^T and AV products (2 x 2 x L x d x T forward, x3 with backward, no causal discount).
        For MoE only the ``top_k`` routed experts count.

        >>> ModelConfig.preset("tiny").flops_per_token(128)
        812928.0
        """
        _check_int("seq_len", seq_len, minimum=1)
        n_matmul = self.n_params(non_embedding=True, active=True) + self.vocab_size * self.d_model
        return float(6 * n_matmul + 12 * self.n_layers * self.d_model * seq_len)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model.{name} must be an integer >= {minimum}, got {value!r}")


def _check_float(name: str, value: Any, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"model.{name} must be a finite number, got {value!r}")
    if (positive and value <= 0) or value < 0:
        raise ConfigError(f"model.{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")


# Named sizes. Counts are at the listed vocab; the byte tokenizer (vocab 256) is the default.
# "124m" is GPT-2-small's shape (d 768, 12 layers, 12 heads) at GPT-2's padded vocab 50304.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=160, max_seq_len=256),
    "tiny-moe": dict(vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64,
                     max_seq_len=256, n_experts=4, top_k=2),
    "1m": dict(vocab_size=256, d_model=128, n_layers=5, n_heads=4, n_kv_heads=4, d_ff=352, max_seq_len=512),
    "5m": dict(vocab_size=256, d_model=256, n_layers=6, n_heads=8, n_kv_heads=8, d_ff=688, max_seq_len=512),
    "20m": dict(vocab_size=256, d_model=512, n_layers=6, n_heads=8, n_kv_heads=8, d_ff=1376, max_seq_len=1024),
    "124m": dict(vocab_size=50304, d_model=768, n_layers=12, n_heads=12, n_kv_heads=12, d_ff=2048,
                 max_seq_len=1024),
}
