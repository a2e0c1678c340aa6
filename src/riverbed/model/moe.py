"""Mixtral-style sparse MoE: top-k routed SwiGLU experts and the Switch load-balancing loss.

Routing (Mixtral, Jiang et al. 2024): ``p = softmax(W_g x)``; each token goes to its ``top_k``
experts with weights ``p_i / sum_{j in top-k} p_j``.

Load balancing (Switch Transformer, Fedus et al. 2022, eq. 4; HF ``load_balancing_loss_func``):

    L_balance = E * sum_i F_i * P_i

with ``E`` experts, ``F_i`` = fraction of (token, slot) assignments sent to expert ``i`` summed over
the ``top_k`` slots (so ``sum_i F_i = top_k``; no gradient) and ``P_i`` = mean router probability of
expert ``i`` over the tokens. With a uniform router (``P_i = 1/E``) it equals ``top_k`` whatever the
dispatch; when one expert takes every token with probability -> 1 it tends to ``E`` (top_k = 1).
The model averages it over layers and multiplies by ``aux_loss_coef``. (HF concatenates all
layers' router logits before averaging; for one layer the two agree exactly.)

Parameter names follow the Mixtral checkpoint layout that ``MixtralForCausalLM.save_pretrained``
writes (``block_sparse_moe.gate.weight``, ``block_sparse_moe.experts.{j}.w1/w2/w3.weight``);
transformers >= 5 fuses the experts in memory and converts this layout on load.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Expert(nn.Module):
    """One SwiGLU expert, Mixtral names: w1 = gate, w3 = up, w2 = down."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)
        self.w3 = nn.Linear(d_model, d_ff, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def load_balancing_loss(probs: torch.Tensor, top_idx: torch.Tensor, n_experts: int) -> torch.Tensor:
    """``E * sum_i F_i P_i`` for router probabilities ``probs`` (tokens, E) and choices (tokens, k).

    >>> probs = torch.full((6, 4), 0.25)
    >>> float(load_balancing_loss(probs, torch.tensor([[0, 1]] * 6), 4))  # uniform router: = top_k
    2.0
    """
    n_tokens = probs.shape[0]
    counts = torch.bincount(top_idx.flatten(), minlength=n_experts).to(probs.dtype)
    frac = counts / n_tokens  # F_i, sums to top_k; discrete, so no gradient flows through it
    return n_experts * torch.sum(frac * probs.mean(dim=0))


class SparseMoeBlock(nn.Module):
    def __init__(self, d_model: int, d_ff: int, n_experts: int, top_k: int) -> None:
        super().__init__()
        self.n_experts, self.top_k = n_experts, top_k
        self.gate = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(Expert(d_model, d_ff) for _ in range(n_experts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (output, unscaled balance loss of this layer)."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs = F.softmax(self.gate(x).float(), dim=-1)
        top_w, top_idx = torch.topk(probs, self.top_k, dim=-1)
        top_w = (top_w / top_w.sum(dim=-1, keepdim=True)).to(x.dtype)

        # Group the (token, slot) pairs by expert with one sort: one host sync per layer for the
        # split sizes, then each expert runs once on its contiguous slice.
        flat_idx = top_idx.flatten()
        order = torch.argsort(flat_idx, stable=True)
        token_of = order // self.top_k
        sizes = torch.bincount(flat_idx, minlength=self.n_experts).tolist()
        routed = x.index_select(0, token_of)
        outs = [
            expert(chunk)
            for expert, chunk in zip(self.experts, routed.split(sizes, dim=0))
        ]
        weighted = torch.cat(outs, dim=0) * top_w.flatten().index_select(0, order).unsqueeze(-1)
        y = torch.zeros_like(x).index_add_(0, token_of, weighted)
        return y.reshape(shape), load_balancing_loss(probs, top_idx, self.n_experts)
