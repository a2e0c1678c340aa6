"""The decoder: Llama's blocks (RMSNorm, RoPE, SwiGLU, GQA) with Hugging Face parameter names.

Module paths mirror ``LlamaForCausalLM`` (``model.layers.0.self_attn.q_proj.weight`` ...), and for
the MoE variant the Mixtral checkpoint layout (``model.layers.0.block_sparse_moe.experts.0.w1.weight``),
so ``state_dict()`` is directly a Hugging Face checkpoint. With tied embeddings there is no
``lm_head`` module at all: the logits reuse ``model.embed_tokens.weight``, exactly as HF stores a
tied model on disk (safetensors rejects shared tensors).

>>> from riverbed.model import ModelConfig, build_model
>>> import torch
>>> model = build_model(ModelConfig.preset("tiny"), seed=0)
>>> out = model(torch.zeros(2, 8, dtype=torch.long), targets=torch.zeros(2, 8, dtype=torch.long))
>>> tuple(out.logits.shape), out.loss.ndim, float(out.aux_loss)
((2, 8, 256), 0, 0.0)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from riverbed.errors import ConfigError
from riverbed.model.config import ModelConfig
from riverbed.model.moe import SparseMoeBlock


class ModelOutput(NamedTuple):
    logits: torch.Tensor
    """(batch, seq, vocab)."""
    loss: torch.Tensor | None
    """Mean token cross-entropy against ``targets`` (entries -100 ignored), or None without targets."""
    aux_loss: torch.Tensor
    """MoE load-balancing loss already times ``aux_loss_coef``; a zero scalar for dense models."""


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 and cast back before the gain, as LlamaRMSNorm does (bit-parity).
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (max_seq_len, head_dim) in HF's "rotate_half" layout (halves, not pairs)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        d = cfg.d_model
        self.q_proj = nn.Linear(d, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(d, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(d, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.n_kv_heads != self.n_heads:  # GQA: each kv head serves n_heads / n_kv_heads queries
            rep = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))


class MLP(nn.Module):
    """SwiGLU feed-forward (Shazeer 2020), Llama names."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=False)
        self.up_proj = nn.Linear(d_model, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.self_attn = Attention(cfg)
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        # Attribute names are the HF checkpoint names: Llama "mlp", Mixtral "block_sparse_moe".
        if cfg.is_moe:
            self.block_sparse_moe = SparseMoeBlock(cfg.d_model, cfg.d_ff, cfg.n_experts, cfg.top_k)
        else:
            self.mlp = MLP(cfg.d_model, cfg.d_ff)
        self.is_moe = cfg.is_moe

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        h = self.post_attention_layernorm(x)
        if self.is_moe:
            out, balance = self.block_sparse_moe(h)
            return x + out, balance
        return x + self.mlp(h), None


class Backbone(nn.Module):
    """HF's ``model.`` prefix: embeddings, blocks, final norm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)


class Transformer(nn.Module):
    """Causal LM. ``forward(input_ids, targets=None) -> ModelOutput(logits, loss, aux_loss)``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        # RoPE tables are derived, not learned: non-persistent so they never enter a checkpoint.
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None) -> ModelOutput:
        t = input_ids.shape[1]
        if t > self.cfg.max_seq_len:
            raise ConfigError(f"sequence length {t} exceeds model.max_seq_len={self.cfg.max_seq_len}")
        x = self.model.embed_tokens(input_ids)
        cos, sin = self.rope_cos[:t].to(x.dtype), self.rope_sin[:t].to(x.dtype)
        balance = []
        for layer in self.model.layers:
            x, b = layer(x, cos, sin)
            if b is not None:
                balance.append(b)
        x = self.model.norm(x)
        weight = self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, weight)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        if balance:
            # Mean over layers of each router's Switch loss, times alpha (see riverbed.model.moe).
            aux = torch.stack(balance).mean() * self.cfg.aux_loss_coef
        else:
            aux = logits.new_zeros((), dtype=torch.float32)
        return ModelOutput(logits, loss, aux)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Deterministic init from ``torch.Generator().manual_seed(seed)``, in parameter-name order.

        Matrices ~ N(0, init_std); output projections (o_proj, down_proj / w2) ~ N(0, init_std /
        sqrt(2 n_layers)) so the residual stream's variance does not grow with depth (GPT-2, OLMo);
        RMSNorm gains = 1. Draws happen on the CPU, so a seed gives the same weights on any device.
        """
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
                continue
            s = std / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("o_proj.weight", "down_proj.weight", "w2.weight")) else std
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32).mul_(s).to(p.dtype))
        cos, sin = rope_tables(self.cfg.head_dim, self.cfg.max_seq_len, self.cfg.rope_theta)
        self.rope_cos = cos.to(self.rope_cos.device)
        self.rope_sin = sin.to(self.rope_sin.device)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(cfg: ModelConfig, seed: int = 0, device: str | torch.device = "cpu") -> Transformer:
    """Build and initialise a model; the same ``(cfg, seed)`` gives the same weights everywhere.

    >>> m = build_model(ModelConfig.preset("tiny"), seed=1)
    >>> m.num_parameters() == ModelConfig.preset("tiny").n_params()
    True
    """
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"build_model expects a ModelConfig, got {type(cfg).__name__}")
    # Built on the CPU with torch's default init, then overwritten by reset_parameters. Building
    # on the meta device would skip that init, but meta-tensor init ops import torch._dynamo
    # (~2-4 s per process, i.e. per CLI call and per torchrun worker): more than the init costs.
    model = Transformer(cfg)
    model.reset_parameters(seed)
    return model.to(device)
