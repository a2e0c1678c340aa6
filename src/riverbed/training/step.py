"""One optimizer step, and what a callback may ask for between steps (a restore).

:func:`train_step` is the fenced hot path of the loop with nothing else in it: set the LR,
run the micro-batches (forward, scaled loss, backward; DDP syncs gradients only on the last,
FSDP2 reduce-scatters each: riverbed.training.parallel.grad_sync), clip by the global norm, step, zero the gradients. It takes the batch and returns the step's loss and gradient
norm as tensors (no host sync), so it can be tested and timed alone.

>>> import torch
>>> from riverbed.model import ModelConfig, build_model
>>> m = build_model(ModelConfig.preset("tiny", vocab_size=32, max_seq_len=8), seed=0)
>>> opt = torch.optim.AdamW(m.parameters())
>>> x = torch.randint(0, 32, (2, 8))
>>> out = train_step(m, opt, x, x, lr=1e-3, micro=1, accum=2, clip=1.0)
>>> out.loss.ndim, out.grad_norm.ndim
(0, 0)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from riverbed.checkpoints.state import apply_model_tensors, load_optimizer_tensors
from riverbed.training import distributed as D
from riverbed.training import parallel as P
from riverbed.training.callbacks import TrainContext
from riverbed.training.optim import set_lr


@dataclass(frozen=True)
class StepOutput:
    loss: torch.Tensor
    """Mean training loss over the global batch (all-reduced; the MoE aux loss excluded)."""
    grad_norm: torch.Tensor
    """Global gradient L2 norm before clipping."""


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    micro: int,
    accum: int,
    clip: float,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    dist: D.DistInfo | None = None,
) -> StepOutput:
    """Apply one optimizer update with learning rate ``lr`` from this process's share ``(x, y)``
    of the global batch (``accum`` micro-batches of ``micro`` rows). ``model`` is what
    forward/backward run through (the DDP wrapper or the FSDP2-sharded model under data
    parallelism: riverbed.training.parallel.wrap_model)."""
    dist = dist or D.DistInfo()
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    # ------------------------------------------------------------------ the step --
    # Losses are scaled so the gradient is the mean over the global batch; DDP syncs
    # gradients only on the last micro-batch (FSDP2 on each, keeping them sharded).
    set_lr(optimizer, lr)
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    loss_sum = torch.zeros((), device=device)
    for i in range(accum):
        xs, ys = x[i * micro:(i + 1) * micro], y[i * micro:(i + 1) * micro]
        with P.grad_sync(model, last=i == accum - 1):
            with autocast():
                out = model(xs, ys)
                loss = (out.loss + out.aux_loss) / accum
            loss.backward()
        loss_sum += out.loss.detach()
    grad_norm = P.clip_grad_norm(params, clip)  # the global norm, also of FSDP's DTensor shards
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    # -------------------------------------------------------------- end of step --
    return StepOutput(D.mean_(loss_sum.div_(accum), dist), grad_norm)


def apply_restore(ctx: TrainContext, position: Callable[[int], tuple[int, float]]) -> bool:
    """Apply ``ctx.restore_request`` (weights, optimizer state, LR scale, a rewind); True when
    the step was rewound. ``position(step)`` gives the tokens and FLOPs after a step."""
    req, ctx.restore_request = ctx.restore_request, None
    if req is None:
        return False
    apply_model_tensors(ctx.model, req.model_state, source="restore(model_state)")
    if req.reset_optimizer:
        ctx.optimizer.state.clear()
    elif req.optimizer_state is not None:
        load_optimizer_tensors(req.optimizer_state, ctx.model, ctx.optimizer, source="restore(optimizer_state)")
    if req.lr_scale is not None:
        ctx.lr_scale = float(req.lr_scale)
    rewound = req.step is not None and req.step != ctx.step
    ctx.logger.log({"kind": "event", "step": ctx.step, "tokens": ctx.tokens, "event": "restore", "reason": req.reason,
                    "lr_scale": ctx.lr_scale, "to_step": req.step if req.step is not None else ctx.step,
                    "optimizer": "reset" if req.reset_optimizer else ("loaded" if req.optimizer_state is not None else "kept")})
    if rewound:
        ctx.step = int(req.step)
        ctx.tokens, ctx.flops = position(ctx.step)
    return rewound
