"""An exactly solvable model for the probes: the bigram logit table.

``LogitTable`` predicts the next token from the current one alone, with one free logit per
(context, successor) pair: its parameter *is* the V x V table. On bigram data (riverbed.data.bigram)
its optimal loss is the entropy rate, reached at logits = log P (up to a constant per row), and
the Hessian of the loss is block-diagonal with one block per context i:

    H_i = c_i (diag(p_i) - p_i p_i^T),   c_i = share of the evaluated positions whose context is i,

where p_i = softmax(row i). :func:`dense_hessian` builds it, so the Lanczos probe can be checked
against a dense eigen-decomposition. A deterministic row has p_i -> one-hot and H_i -> 0: a flat
"river" direction; a high-entropy row keeps curvature: a "hill" direction.

>>> import torch
>>> m = LogitTable(3)
>>> out = m(torch.tensor([[0, 1]]), torch.tensor([[1, 2]]))
>>> round(out.loss.item(), 6) == round(float(torch.log(torch.tensor(3.0))), 6)
True
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class TableOutput(NamedTuple):
    logits: torch.Tensor
    loss: torch.Tensor | None
    aux_loss: torch.Tensor


class LogitTable(nn.Module):
    """``forward(input_ids, targets=None)`` like riverbed's Transformer; ``logits = table[input_ids]``."""

    def __init__(self, vocab: int, init: torch.Tensor | None = None) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(vocab, vocab) if init is None else init.detach().clone())

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None) -> TableOutput:
        logits = self.table[input_ids]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        return TableOutput(logits, loss, logits.new_zeros(()))


def context_weights(batches: list[tuple[torch.Tensor, torch.Tensor]], vocab: int) -> torch.Tensor:
    """c_i of the held-out objective (mean over batches of per-batch mean token losses)."""
    c = torch.zeros(vocab, dtype=torch.float64)
    for x, _ in batches:
        c += torch.bincount(x.flatten(), minlength=vocab).double() / x.numel()
    return c / len(batches)


def dense_hessian(table: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The (V*V) x (V*V) Hessian of the held-out loss w.r.t. the flattened table (row-major)."""
    v = table.shape[0]
    p = torch.softmax(table.double(), dim=1)
    h = torch.zeros(v * v, v * v, dtype=torch.float64)
    for i in range(v):
        block = weights[i] * (torch.diag(p[i]) - torch.outer(p[i], p[i]))
        h[i * v:(i + 1) * v, i * v:(i + 1) * v] = block
    return h
